"""What quality.py and time_to_quality.py share: a spec from benchmarks/sweeps/, overridden from
the command line, run as a sweep (`sgm_core.sweep`: a local pool or Ray) and timed.

A rerun with the same --out skips the finished cells (and is not timed): the table can be
regenerated from results.csv in seconds, or resumed after an interruption."""

from __future__ import annotations

import argparse
import os
import platform
import time
import tomllib
from pathlib import Path

import sgm_core as sgm

SPECS = Path(__file__).with_name("sweeps")
REPO = Path(__file__).resolve().parents[1]


def add_sweep_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--out", default=str(REPO / "runs" / name), help="sweep folder (default runs/NAME)")
    parser.add_argument("--workers", type=int, default=None, help="processes, or local Ray CPUs (default: all)")
    parser.add_argument("--engine", default="local", choices=["local", "ray"])
    parser.add_argument("--address", default=None, help="Ray cluster address (auto, ray://...)")
    parser.add_argument("--presets", default=None, help="comma-separated presets instead of the spec's")
    parser.add_argument("--losses", default=None, help="comma-separated losses instead of the spec's")


def run_spec(name: str, args: argparse.Namespace, **overrides) -> tuple[list[dict[str, str]], dict, float | None]:
    """Rows of SPECS/NAME.toml with --presets/--losses and `overrides` (None: the spec's value),
    the spec that ran, and the wall seconds when every cell ran in this call (else None)."""
    spec = tomllib.loads((SPECS / f"{name}.toml").read_text())
    picked = {"data": args.presets, "loss": args.losses}
    spec |= {k: v.split(",") for k, v in picked.items() if v} | {k: v for k, v in overrides.items() if v is not None}
    fresh = not (Path(args.out) / "results.csv").exists()
    started = time.perf_counter()
    rows = sgm.sweep(spec, args.out, workers=args.workers, engine=args.engine, address=args.address)
    return rows, spec, (time.perf_counter() - started) if fresh else None


def machine(args: argparse.Namespace) -> str:
    import torch

    workers = args.workers or len(os.sched_getaffinity(0))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, engine {args.engine}"
            f"{f' at {args.address}' if args.address else ''}, {workers} worker(s), 1 torch thread each, "
            f"load average {load:.1f} at the end")

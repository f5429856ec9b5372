"""Time to quality: training seconds until the samples' sliced-Wasserstein distance to fresh data
is within 1.5x of the data-vs-data baseline, per 2D preset and loss (default settings).

The sweep benchmarks/sweeps/time_to_quality.toml trains every preset x loss at a ladder of
budgets (500 ... 8000 steps, each its own run with its own learning-rate decay) on a local pool or
on Ray; the table reports the smallest budget that reaches the target, its training seconds and
its ratio. Appends the table to benchmarks/RESULTS.md.

    python benchmarks/time_to_quality.py [--presets a,b] [--losses dsm,ncsn,ssm] [--budgets 500,1000,...]
                                         [--workers N] [--engine local|ray] [--address A] [--out DIR]
"""

from __future__ import annotations

import argparse
import math
from datetime import date
from pathlib import Path

from results import append_results  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from sweep_spec import add_sweep_arguments, machine, run_spec

TARGET = 1.5  # SW2(samples, data) / SW2(data, data)


def ratio_text(ratio: float) -> str:
    """The SW ratio, or what it means when sampling blew up (Langevin on a score that is wrong
    far from the data can throw particles to infinity)."""
    if not math.isfinite(ratio):
        return "not finite (particles diverged)"
    return f"{ratio:.3g} (particles diverged)" if ratio > 1e3 else f"{ratio:.2f}"


def first_reaching(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """Per (preset, loss): the row of the smallest budget at the target (`reached` set), else the
    largest budget's row."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for row in sorted(rows, key=lambda r: int(r["steps"])):
        key = (row["data"], row["loss"])
        if key in out and out[key]["reached"]:
            continue
        ratio = float(row["sw_ratio"]) if row.get("sw_ratio") else math.inf
        out[key] = {**row, "reached": "yes" if ratio <= TARGET else "", "ratio": str(ratio)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser, "time-to-quality")
    parser.add_argument("--budgets", default=None, help="comma-separated training steps instead of the spec's")
    parser.add_argument("--out-table", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else None
    rows, spec, wall_s = run_spec("time_to_quality", args, steps=budgets)
    timed = f"{wall_s:.0f} s wall" if wall_s is not None else "resumed, not timed"
    lines = [f"\n## Time to quality — {date.today()} — {machine(args)}; SW2 within {TARGET}x of data-vs-data with "
             f"{spec['n']} samples, budgets {', '.join(str(s) for s in spec['steps'])} steps; sweep {timed}\n",
             "| preset | loss | training s to 1.5x | steps | SW ratio then |", "|---|---|---|---|---|"]
    for (preset, loss), row in first_reaching(rows).items():
        if row["reached"]:
            lines.append(f"| {preset} | {loss} | {float(row['train_seconds']):.1f} | {row['steps']} | "
                         f"{ratio_text(float(row['ratio']))} |")
        else:
            lines.append(f"| {preset} | {loss} | > {float(row['train_seconds'] or 'nan'):.1f} (not reached) | "
                         f"{row['steps']} | {row['error'] or ratio_text(float(row['ratio']))} |")
    append_results("\n".join(lines) + "\n", args.out_table)


if __name__ == "__main__":
    main()

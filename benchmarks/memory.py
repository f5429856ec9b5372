"""Memory: does a long playground session grow? Resident memory of the engine loop the GUI worker
runs (train a chunk, advance 10k particles with trails, build a frame with field and maps),
sampled over a run and extrapolated to one hour at the measured speed.

    python benchmarks/memory.py [--minutes 2]
Appends its table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from results import append_results  # noqa: E402 - benchmarks/ is on sys.path when run as a script

from sgm_core.config import RunConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.live import FieldView, LiveEngine, default_bounds


def rss_mb() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = make_preset("8gaussians")
    engine = LiveEngine(data, RunConfig(train=TrainConfig(steps=10**7)), n_particles=10_000)
    engine.set_trails(20)
    view = FieldView(default_bounds(data.points), resolution=32, sigma=0.1)
    t0 = time.perf_counter()
    samples = []
    warm = None
    every_s = max(10.0, args.minutes * 60 / 30)  # about 30 rows, however long the run
    while time.perf_counter() - t0 < args.minutes * 60:
        engine.train(25)
        engine.advance(1)
        engine.frame(view, training=True)
        now = time.perf_counter() - t0
        if warm is None and now > 10:  # allocator and caches settle in the first seconds
            warm = (now, engine.trainer.step, rss_mb())
        if not samples or now - samples[-1][0] > every_s:
            samples.append((now, engine.trainer.step, rss_mb()))
    end = (time.perf_counter() - t0, engine.trainer.step, rss_mb())
    rate = end[1] / end[0]
    # RSS wobbles by tens of MiB (allocator): a least-squares slope over the samples after warm-up,
    # not two end points, says whether it grows.
    after = [(s, m) for t, s, m in samples + [end] if t >= warm[0]]
    growth_per_step = float(np.polyfit([s for s, _ in after], [m for _, m in after], 1)[0]) if len(after) > 2 else 0.0
    hour_steps = rate * 3600
    lines = [f"\n## Memory — {date.today()} — {platform.machine()}, torch {torch.__version__}, 10k particles, "
             f"trails 20, 32x32 field + maps every iteration, {args.minutes:g} min\n",
             "| t (s) | training step | RSS MiB |", "|---|---|---|"]
    lines += [f"| {t:.0f} | {s} | {m:.1f} |" for t, s, m in samples + [end]]
    lines.append(f"\nGrowth after warm-up: {growth_per_step * 1e6:.1f} MiB per million steps; at {rate:.0f} steps/s "
                 f"one hour is {hour_steps:,.0f} steps -> {growth_per_step * hour_steps:.1f} MiB "
                 "(the loss history alone is 8 bytes/step).")
    text = "\n".join(lines) + "\n"
    append_results(text, args.out)


if __name__ == "__main__":
    main()

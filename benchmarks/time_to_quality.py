"""Time to quality: training seconds until the samples' sliced-Wasserstein distance to fresh data
is within 1.5x of the data-vs-data baseline, per 2D preset and loss (default settings).

Every `--every` steps the EMA model is sampled with the loss's default sampler (500 particles;
sampling time is not counted) and compared with fresh data on fixed projections.

    python benchmarks/time_to_quality.py [--presets a,b] [--losses dsm,ncsn,ssm] [--budget 60]
Appends its table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from datetime import date
from pathlib import Path

import torch
from results import append_results  # noqa: E402 - benchmarks/ is on sys.path when run as a script

from sgm_core.config import LossConfig, RunConfig, SamplerConfig, TrainConfig
from sgm_core.datasets import PRESETS, make_preset
from sgm_core.losses import LOSSES
from sgm_core.metrics import sliced_wasserstein
from sgm_core.samplers import make_sampler, run_sampler
from sgm_core.training import Trainer

TARGET = 1.5  # SW2(samples, data) / SW2(data, data)


def time_to_quality(preset: str, loss: str, budget_s: float, every: int, n: int) -> tuple[float | None, int, float]:
    data = make_preset(preset)
    cfg = RunConfig(loss=LossConfig(name=loss), train=TrainConfig())
    trainer = Trainer(data, cfg)
    g_ref = torch.Generator().manual_seed(9)
    ref, ref2 = data.sample(n, g_ref), data.sample(n, g_ref)
    base = sliced_wasserstein(ref2, ref, torch.Generator().manual_seed(123))
    sampler = make_sampler(SamplerConfig(name=LOSSES[loss].default_sampler), cfg.noise, loss)
    trained_s, ratio = 0.0, float("inf")
    while trained_s < budget_s:
        t0 = time.perf_counter()
        trainer.run(every)
        trained_s += time.perf_counter() - t0
        g = torch.Generator().manual_seed(5)
        x = run_sampler(sampler, trainer.score_fn(), sampler.init(n, data.dim, g), g)
        ratio = sliced_wasserstein(trainer.standardizer.inverse(x), ref, torch.Generator().manual_seed(123)) / base
        if ratio <= TARGET:
            return trained_s, trainer.step, ratio
    return None, trainer.step, ratio


def ratio_text(ratio: float) -> str:
    """The SW ratio, or what it means when sampling blew up (Langevin on a score that is wrong
    far from the data can throw particles to infinity)."""
    if not math.isfinite(ratio):
        return "not finite (particles diverged)"
    return f"{ratio:.3g} (particles diverged)" if ratio > 1e3 else f"{ratio:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default=",".join(p for p, s in PRESETS.items() if s.dim == 2))
    parser.add_argument("--losses", default="dsm,ncsn,ssm")
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds before giving up")
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [f"\n## Time to quality — {date.today()} — {platform.machine()}, torch {torch.__version__}, 1 thread; "
             f"SW2 within {TARGET}x of data-vs-data, checked every {args.every} steps with {args.n} samples, "
             f"budget {args.budget:.0f} s of training\n",
             "| preset | loss | training s to 1.5x | steps | SW ratio then |", "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for preset in args.presets.split(","):
        for loss in args.losses.split(","):
            secs, steps, ratio = time_to_quality(preset, loss, args.budget, args.every, args.n)
            shown = f"{secs:.1f}" if secs is not None else f"> {args.budget:.0f} (not reached)"
            line = f"| {preset} | {loss} | {shown} | {steps} | {ratio_text(ratio)} |"
            lines.append(line)
            print(line, flush=True)
    append_results("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()

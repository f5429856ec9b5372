"""Sample quality of the default settings: sliced-Wasserstein ratio to the data-vs-data baseline.

For every 2D preset and each chosen loss: train with the CLI defaults (`sgm train DATA --loss L`),
sample with the loss's default sampler, and compare SW2(samples, fresh data) with
SW2(fresh data, fresh data) at the same sample size. A ratio near 1 means the samples are as
close to the data as another draw of the data is. Writes benchmarks/QUALITY.md.

    python benchmarks/quality.py [--losses ncsn,dsm,...] [--presets a,b] [--steps N] [--n 2000]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from sgm_core.config import LossConfig, RunConfig, SamplerConfig, TrainConfig
from sgm_core.datasets import PRESETS, make_preset
from sgm_core.losses import LOSSES
from sgm_core.metrics import mode_weights, sliced_wasserstein
from sgm_core.samplers import make_sampler, run_sampler
from sgm_core.training import Trainer


def evaluate(preset: str, loss: str, steps: int, n: int, seed: int = 0) -> dict:
    dataset = make_preset(preset, seed=seed)
    config = RunConfig(data=preset, loss=LossConfig(name=loss), train=TrainConfig(steps=steps, seed=seed))
    trainer = Trainer(dataset, config)
    t0 = time.perf_counter()
    trainer.run(steps)
    train_s = time.perf_counter() - t0
    sampler = make_sampler(SamplerConfig(name=LOSSES[loss].default_sampler), config.noise, loss)
    g = torch.Generator().manual_seed(seed + 5)
    t0 = time.perf_counter()
    x = run_sampler(sampler, trainer.score_fn(), sampler.init(n, dataset.dim, g), g)
    sample_s = time.perf_counter() - t0
    samples = trainer.standardizer.inverse(x)
    g_ref = torch.Generator().manual_seed(seed + 9)  # the same reference draws for every loss
    ref, ref2 = dataset.sample(n, g_ref), dataset.sample(n, g_ref)
    # The same projection directions for both distances, so their ratio is not noise.
    sw = sliced_wasserstein(samples, ref, torch.Generator().manual_seed(123))
    base = sliced_wasserstein(ref2, ref, torch.Generator().manual_seed(123))
    row = {"preset": preset, "loss": loss, "sw": sw, "base": base, "ratio": sw / base,
           "train_s": train_s, "sample_s": sample_s, "on_mode": None}
    if dataset.gmm is not None:
        row["on_mode"] = mode_weights(samples, dataset.gmm)[1]
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--losses", default="ncsn,dsm,ssm,ve-sde,vp-sde")
    parser.add_argument("--presets", default=",".join(p for p, s in PRESETS.items() if s.dim == 2))
    parser.add_argument("--steps", type=int, default=TrainConfig().steps)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).with_name("QUALITY.md")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    header = "| preset | loss | SW2 ratio | SW2 | baseline | on-mode | train s | sample s |\n|---|---|---|---|---|---|---|---|"
    print(header)
    for preset in args.presets.split(","):
        for loss in args.losses.split(","):
            r = evaluate(preset, loss, args.steps, args.n)
            rows.append(r)
            on = f"{r['on_mode']:.3f}" if r["on_mode"] is not None else "—"
            line = (f"| {preset} | {loss} | {r['ratio']:.2f} | {r['sw']:.4f} | {r['base']:.4f} | {on} | "
                    f"{r['train_s']:.1f} | {r['sample_s']:.1f} |")
            rows[-1]["line"] = line
            print(line, flush=True)
    text = (f"# Sample quality with default settings\n\nMachine: {platform.machine()}, {platform.processor() or 'cpu'}, "
            f"torch {torch.__version__}, {args.threads} thread(s); {args.steps} steps, batch 512, n={args.n}; "
            f"command: `python benchmarks/quality.py --losses {args.losses}`\n\n"
            "SW2 ratio = sliced-Wasserstein(samples, fresh data) / sliced-Wasserstein(fresh data, fresh data); "
            "1.0 is indistinguishable from another draw of the data at this sample size.\n\n"
            + header + "\n" + "\n".join(r["line"] for r in rows) + "\n")
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

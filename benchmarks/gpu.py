"""GPU speed-up: the same work on CUDA and on the CPU in one run, as ratios.

1. Trainer steps/s per loss at batch 512 and 4096: CPU with one thread (as the app's worker
   runs), CPU with every core (as the CLI runs), CUDA.
2. Langevin particle-steps/s through LiveEngine.advance at 10k, 100k and 1M particles.
3. One 32x32 learned field (what each GUI frame asks for), in milliseconds.

    python benchmarks/gpu.py [--seconds 2] [--gpu cuda]
Needs a CUDA device (says so and exits 2 otherwise). Appends its table to benchmarks/RESULTS.md;
run `python benchmarks/core_speed.py --device cuda` for the trainer-overhead table on the GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch
from core_speed import langevin_rates, rate, sync  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from results import append_results  # noqa: E402

from sgm_core.config import LossConfig, RunConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.live import FieldView, LiveEngine, default_bounds
from sgm_core.losses import LOSSES, loss_spec
from sgm_core.training import Trainer, device_label

OT_MAX_BATCH = 1024  # minibatch OT pairs by POT's exact EMD on the CPU: 0.26 s a step at 1024, 3.6 s at 4096 (measured, 1 thread)


def trainer_rate(loss: str, batch: int, device: str, seconds: float) -> float:
    cfg = RunConfig(loss=LossConfig(name=loss), train=TrainConfig(batch=batch, steps=10**6, device=device))
    trainer = Trainer(make_preset("8gaussians"), cfg)
    return rate(lambda: trainer.run(10), seconds, warmup=1, device=device) * 10  # a device run has 15 minutes in all


def field_ms(device: str, repeats: int = 20) -> float:
    data = make_preset("8gaussians")
    eng = LiveEngine(data, RunConfig(train=TrainConfig(device=device)), n_particles=10)
    view = FieldView(default_bounds(data.points), resolution=32, sigma=0.1, truth=False)
    eng.field(view)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        eng.field(view)
    sync(device)
    return (time.perf_counter() - t0) / repeats * 1e3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--gpu", default="cuda", help="the accelerated device (cpu: a dry run of this script)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    if args.gpu == "cuda" and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here, nothing to compare (run it on a machine with a GPU)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    cores = os.cpu_count() or 1
    gpu = device_label(torch.device(args.gpu))
    lines = [f"\n## GPU speed-up — {date.today()} — {gpu} vs {platform.machine()} CPU ({cores} cores), "
             f"torch {torch.__version__}\n",
             "| loss | batch | CPU 1 thread steps/s | CPU all cores | CUDA | CUDA / CPU 1 thread | CUDA / CPU all |",
             "|---|---|---|---|---|---|---|"]
    for loss in LOSSES:
        for batch in (512, 4096):
            if loss_spec(loss).coupling == "ot" and batch > OT_MAX_BATCH:
                lines.append(f"| {loss} | {batch} | – | – | – | skipped: its exact OT pairing runs on the CPU, "
                             f"O(batch³) | – |")
                continue
            torch.set_num_threads(1)
            one = trainer_rate(loss, batch, "cpu", args.seconds)
            torch.set_num_threads(cores)
            every = trainer_rate(loss, batch, "cpu", args.seconds)
            cuda = trainer_rate(loss, batch, args.gpu, args.seconds)
            lines.append(f"| {loss} | {batch} | {one:.0f} | {every:.0f} | {cuda:.0f} | {cuda / one:.1f} | {cuda / every:.1f} |")
            print(lines[-1], flush=True)
    print(f"trainers done at {time.perf_counter() - started:.0f} s", flush=True)
    torch.set_num_threads(1)
    sizes = (10_000, 100_000, 1_000_000)
    cpu = {n: e for n, e, _ in langevin_rates(args.seconds, "cpu", sizes)}
    lines += ["", "| particles | CPU 1 thread particle-steps/s | CUDA | CUDA / CPU | CUDA engine / bare CUDA loop |",
              "|---|---|---|---|---|"]
    for n, eng, bare in langevin_rates(args.seconds, args.gpu, sizes):
        lines.append(f"| {n:,} | {cpu[n]:.3g} | {eng:.3g} | {eng / cpu[n]:.1f} | {eng / bare:.2f} |")
    print(f"particles done at {time.perf_counter() - started:.0f} s", flush=True)
    cpu_ms, cuda_ms = field_ms("cpu"), field_ms(args.gpu)
    lines += ["", "| 32x32 learned field | CPU 1 thread ms | CUDA ms | speed-up |", "|---|---|---|---|",
              f"| LiveEngine.field | {cpu_ms:.2f} | {cuda_ms:.2f} | {cpu_ms / cuda_ms:.1f} |"]
    append_results("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Core speed, each as a ratio against a plain hand-written reference in the same run.

1. Trainer steps/s per loss vs a minimal torch loop (same MLP, batch), once with torch's default
   Adam (the plain reference) and once with the trainer's own (fused) Adam (its bookkeeping alone).
2. Exact score matching's Jacobian trace: autograd loop over D vs torch.func (vmap(jacrev)).
3. Langevin particle-steps/s through LiveEngine.advance vs a bare torch loop, 1k/10k/100k.

    python benchmarks/core_speed.py [--threads 1] [--seconds 2] [--device cpu|cuda]
Appends its table to benchmarks/RESULTS.md (with the machine it ran on).
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
from torch import nn

from sgm_core.config import LossConfig, ModelConfig, RunConfig, SamplerConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.live import LiveEngine
from sgm_core.losses import LOSSES
from sgm_core.training import Trainer, make_adam


def sync(device: str) -> None:
    """Wait for queued GPU work, so a timer sees it done (a no-op on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(fn, seconds: float, warmup: int = 5, device: str = "cpu") -> float:
    """Calls per second of fn() over about `seconds` of wall time (GPU work included)."""
    for _ in range(warmup):
        fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    sync(device)
    return n / (time.perf_counter() - t0)


def best_rates(fns: list, seconds: float, rounds: int = 3, device: str = "cpu") -> list[float]:
    """Each fn's best rate over `rounds` interleaved measurements: a load spike on a shared
    machine lowers one round of one fn, not the comparison."""
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = max(best[i], rate(fn, seconds / rounds, device=device))
    return best


def bare_loop(loss: str, batch: int, adam=torch.optim.Adam, device: str = "cpu"):
    """The reference: the same net and loss function with a bare Adam loop on pre-drawn data —
    no trainer, no EMA, no LR schedule, no clipping, no NaN checks. `adam` builds the optimiser
    from (params, lr): torch's default Adam, or the trainer's own (fused) one."""
    from sgm_core.losses import make_loss

    cfg = RunConfig(loss=LossConfig(name=loss))
    net = LOSSES[loss].make_model(2, cfg.model, cfg.noise).to(device)
    opt = adam(net.parameters(), lr=1e-3)
    loss_fn = make_loss(cfg.loss, cfg.noise)
    g = torch.Generator(device).manual_seed(0)
    x_all = torch.as_tensor(make_preset("8gaussians").points).to(device)

    def step() -> None:
        x = x_all[torch.randint(len(x_all), (batch,), generator=g, device=device)]
        value = loss_fn(net, x, g).mean()
        opt.zero_grad()
        value.backward()
        opt.step()

    return step


def trainer_rates(seconds: float, batch: int, device: str = "cpu") -> list[tuple[str, float, float, float]]:
    """Per loss: Trainer, bare loop with torch's default Adam, bare loop with the trainer's Adam."""
    out = []
    data = make_preset("8gaussians")
    for loss in LOSSES:
        cfg = RunConfig(loss=LossConfig(name=loss), train=TrainConfig(batch=batch, steps=10**6, device=device))
        tr = Trainer(data, cfg)
        ours, ref, ref_same = best_rates(
            [lambda tr=tr: tr.run(10), bare_loop(loss, batch, device=device),
             bare_loop(loss, batch, make_adam, device=device)], seconds, device=device)
        out.append((loss, ours * 10, ref, ref_same))
    return out


def trace_costs(seconds: float, batch: int, device: str = "cpu") -> tuple[float, float]:
    """Steps/s of the exact-SM trace: D backprops vs torch.func.vmap(jacrev)."""
    from torch.func import jacrev, vmap

    net = nn.Sequential(nn.Linear(2, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2)).to(device)
    x0 = torch.randn(batch, 2, device=device)

    def loop() -> None:
        x = x0.clone().requires_grad_(True)
        s = net(x)
        tr = sum(torch.autograd.grad(s[:, d].sum(), x, create_graph=True)[0][:, d] for d in range(2))
        (0.5 * (s**2).sum(1) + tr).mean().backward()

    def func() -> None:
        s = net(x0)
        jac = vmap(jacrev(lambda v: net(v[None])[0]))(x0)
        (0.5 * (s**2).sum(1) + jac.diagonal(dim1=1, dim2=2).sum(1)).mean().backward()

    return rate(loop, seconds, device=device), rate(func, seconds, device=device)


def langevin_rates(seconds: float, device: str = "cpu",
                   sizes: tuple[int, ...] = (1_000, 10_000, 100_000)) -> list[tuple[int, float, float]]:
    data = make_preset("8gaussians")
    out = []
    for n in sizes:
        cfg = RunConfig(model=ModelConfig(), train=TrainConfig(device=device))
        eng = LiveEngine(data, cfg, SamplerConfig(name="langevin"), n_particles=n)
        model = eng.trainer.score_fn()
        x = eng.particles.clone()
        g = torch.Generator(device).manual_seed(0)

        def bare(x=x, model=model, g=g) -> None:
            with torch.no_grad():
                s = model(x, torch.full((len(x),), 0.1, device=device))
                x.add_(1e-3 * s + math.sqrt(2e-3) * torch.randn(x.shape, generator=g, device=device))

        engine_rate = rate(lambda eng=eng: eng.advance(1), seconds, warmup=2, device=device) * n
        bare_rate = rate(bare, seconds, warmup=2, device=device) * n
        out.append((n, engine_rate, bare_rate))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--device", default="cpu", help="cpu or cuda: the whole table on that device")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [f"\n## Core speed — {date.today()} — {platform.machine()} {platform.processor() or ''}, "
             f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, device {args.device}\n"]
    lines += ["| loss | Trainer steps/s | bare loop, torch Adam | Trainer / bare | bare loop, the trainer's Adam "
              "| Trainer / that bare |", "|---|---|---|---|---|---|"]
    for loss, ours, ref, ref_same in trainer_rates(args.seconds, args.batch, args.device):
        lines.append(f"| {loss} | {ours:.0f} | {ref:.0f} | {ours / ref:.2f} | {ref_same:.0f} | {ours / ref_same:.2f} |")
    loop, func = trace_costs(args.seconds, args.batch, args.device)
    lines += ["", "| exact-SM trace | steps/s | ratio |", "|---|---|---|",
              f"| autograd loop over D | {loop:.0f} | 1.00 |", f"| torch.func vmap(jacrev) | {func:.0f} | {func / loop:.2f} |"]
    lines += ["", "| particles | LiveEngine.advance particle-steps/s | bare torch loop | ratio |", "|---|---|---|---|"]
    for n, eng, bare in langevin_rates(args.seconds, args.device):
        lines.append(f"| {n} | {eng:.3g} | {bare:.3g} | {eng / bare:.2f} |")
    text = "\n".join(lines) + "\n"
    append_results(text, args.out)


if __name__ == "__main__":
    main()

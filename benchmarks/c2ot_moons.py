"""8gaussians -> moons, the toy table of Cheng & Schwing 2025 (C2OT, arXiv 2503.10636, Fig. 1; code
hkchengrex/C2OT `moons.py`): squared 2-Wasserstein distance W2^2 between the flow's samples and fresh
moons, at one Euler step and with a many-step solver, for plain fm and minibatch ot-fm.

Their data (re-implemented from their definitions, not their code):
- source: 8 Gaussians with centres on the circle of radius 5 at angles k pi/4 and covariance
  sqrt(0.1) I (their `MultivariateNormal(0, sqrt(var) I)` with var = 0.1 is a covariance, so the
  std is 0.1^(1/4) = 0.562);
- target: torchdyn's moons (two half circles at evenly spaced angles, each point shifted along the
  diagonal by one U[0, 0.2) draw), scaled by 3 and shifted by -1;
- W2^2: POT's exact `ot.emd2` on the squared-Euclidean cost between N generated points (from fresh
  source draws) and N fresh moons, uniform weights.

Ours differs (stated in the table): our own MLP and Adam schedule (`sgm train` defaults but for the
batch and steps), fixed training pools of `POOL` draws of each set (theirs are fresh every batch),
ot-fm pairs each batch of 256 by exact EMD (theirs plans 1,024 and trains on four 256-slices), the
path runs on the data's standardised coordinates from t = 0.99 (source) to 1e-3 (data), and the many-step
solver is Heun (EDM Alg. 1, 100 steps, 199 NFE) instead of dopri5. Quality only: the machine is shared,
so no timing is reported.

    python benchmarks/c2ot_moons.py [--seeds 0,1,2] [--steps 20000] [--n 5000]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import ot
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import append_results  # noqa: E402

import sgm_core as sgm  # noqa: E402
from sgm_core.samplers import run_sampler  # noqa: E402

POOL = 100_000  # training draws of each set (fixed pools; theirs are fresh per batch)
THEIRS = {("fm", "euler-1"): 6.232, ("fm", "adaptive"): 0.120, ("ot-fm", "euler-1"): 0.072,
          ("ot-fm", "adaptive"): 0.050}
SOLVERS = (("euler-1", "euler", 1), ("heun-100", "heun", 100))


def c2ot_8gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    """Their source: centres 5 (cos k pi/4, sin k pi/4), covariance sqrt(0.1) I."""
    angles = rng.integers(0, 8, n) * math.pi / 4
    centres = 5.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return (centres + rng.standard_normal((n, 2)) * 0.1**0.25).astype(np.float32)


def c2ot_moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """Their target: torchdyn's moons with noise 0.2 (a U[0, 0.2) shift shared by x and y), x 3 - 1."""
    n_out = n // 2
    a_out, a_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n - n_out)
    x = np.concatenate([np.cos(a_out), 1 - np.cos(a_in)])
    y = np.concatenate([np.sin(a_out), 1 - np.sin(a_in) - 0.5])
    points = np.stack([x, y], 1) + rng.random((n, 1)) * 0.2
    return (points * 3 - 1).astype(np.float32)


def w2_squared(a: np.ndarray, b: np.ndarray) -> float:
    """Exact squared 2-Wasserstein distance between two equal-size point sets (POT's network simplex)."""
    cost = ot.dist(a.astype(np.float64), b.astype(np.float64))  # squared Euclidean
    return float(ot.emd2([], [], cost, numItermax=int(1e8)))


def sample_from(run: sgm.Run, start: np.ndarray, sampler: str, steps: int, seed: int) -> np.ndarray:
    """The run's ODE from given source points (data coordinates) to the data end."""
    schedule = run.schedule(sampler, steps)
    x = torch.as_tensor(run.standardizer.forward(start), dtype=torch.float32)
    out = run_sampler(schedule, run.model, x, torch.Generator().manual_seed(seed))
    return run.standardizer.inverse(out).numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=20_000, help="training steps (theirs: 20,000)")
    parser.add_argument("--batch", type=int, default=256, help="theirs: 256")
    parser.add_argument("--n", type=int, default=5000, help="points per W2^2 (theirs: 10,000)")
    parser.add_argument("--losses", default="fm,ot-fm")
    parser.add_argument("--out-table", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    losses = args.losses.split(",")
    results: dict[tuple[str, str], list[float]] = {}
    floors = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            source_file = Path(tmp) / f"8gaussians-{seed}.npy"
            np.save(source_file, c2ot_8gaussians(POOL, rng))
            moons = c2ot_moons(POOL, rng)
            test_source, test_moons = c2ot_8gaussians(args.n, rng), c2ot_moons(args.n, rng)
            floors.append(w2_squared(c2ot_moons(args.n, rng), test_moons))
            for loss in losses:
                run = sgm.train(moons, loss=loss, source=str(source_file), steps=args.steps, batch=args.batch,
                                seed=seed, progress=False)
                for label, sampler, steps in SOLVERS:
                    w2 = w2_squared(sample_from(run, test_source, sampler, steps, seed), test_moons)
                    results.setdefault((loss, label), []).append(w2)
                    print(f"seed {seed} {loss} {label}: W2^2 {w2:.4f}", flush=True)
    load = os.getloadavg()[0]
    lines = [f"\n## C2OT toy table: 8gaussians -> moons — {date.today()} — {platform.machine()}, {os.cpu_count()} cores, "
             f"torch {torch.__version__}, 1 thread, load average {load:.1f} at the end (quality only, not timed)\n",
             f"W2² (squared, POT `ot.emd2`) between {args.n:,} samples from fresh source draws and {args.n:,} fresh "
             f"moons; mean ± std over seeds {args.seeds}. Data as Cheng & Schwing 2025 define it (8 Gaussians at radius "
             f"5, covariance √0.1·I; torchdyn moons, noise 0.2, ×3 − 1). Ours: `sgm train` defaults (MLP 3×128 SiLU, "
             f"lr 5e-3 cosine to 5e-4, EMA 0.999) with batch {args.batch} and {args.steps:,} steps on fixed pools of "
             f"{POOL:,} draws, ot-fm pairs each batch of {args.batch} exactly (theirs: a 1,024 plan split into 256s), "
             f"many-step = Heun 100 steps (199 NFE) instead of dopri5, {len(seeds)} seeds instead of 10, "
             f"{args.n:,} points instead of 10,000. Moons vs fresh moons (the sampling floor at this N): "
             f"{np.mean(floors):.4f} ± {np.std(floors):.4f}.\n",
             "| loss | solver | W2² ours | W2² theirs (Fig. 1) |", "|---|---|---|---|"]
    for (loss, label), values in results.items():
        theirs = THEIRS.get((loss, "euler-1" if label == "euler-1" else "adaptive"))
        lines.append(f"| {loss} | {label} | {np.mean(values):.3f} ± {np.std(values):.3f} | "
                     f"{theirs:.3f} ({'Euler 1' if label == 'euler-1' else 'dopri5'}) |")
    append_results("\n".join(lines) + "\n", args.out_table)


if __name__ == "__main__":
    main()

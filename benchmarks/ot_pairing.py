"""What ot-fm's minibatch coupling costs, and whether a cheaper exact method or smaller OT batches help.

ot-fm pairs each training batch of data x and noise z by the exact OT plan under squared Euclidean
cost (POT's network-simplex `ot.emd`, Tong et al. 2024). For two uniform sets of equal size that plan
is a permutation, so the same optimum is an assignment problem: scipy's `linear_sum_assignment`
(shortest augmenting paths, Crouse 2016) solves it exactly too. Also measured: pairing within
sub-batches of the batch (k sub-plans of n/k), which is cheaper but a coarser coupling, so its
paths are less straight (a different loss, not a faster one): the mean squared pairing distance
says how much.

Timings are per pairing call, median of interleaved repeats in one run, so the ratios hold on a
shared machine even when the absolute numbers wander. Writes a table to benchmarks/RESULTS.md.

    python benchmarks/ot_pairing.py [--sizes 128,256,512,1024] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import append_results  # noqa: E402

from sgm_core.datasets import make_preset  # noqa: E402
from sgm_core.losses import OT_MAX_ITER  # noqa: E402


def cost_matrix(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - z[None]) ** 2).sum(-1)


def emd_perm(cost: np.ndarray) -> np.ndarray:
    n = len(cost)
    return ot.emd(ot.unif(n), ot.unif(n), cost, numItermax=OT_MAX_ITER).argmax(1)


def lsa_perm(cost: np.ndarray) -> np.ndarray:
    return linear_sum_assignment(cost)[1]


def sub_batched(x: np.ndarray, z: np.ndarray, k: int) -> np.ndarray:
    """Exact EMD within k consecutive sub-batches: the permutation of z as one array."""
    n = len(x)
    perm = np.empty(n, dtype=np.int64)
    for i in range(k):
        rows = slice(i * n // k, (i + 1) * n // k)
        start = i * n // k
        perm[rows] = start + emd_perm(cost_matrix(x[rows], z[rows]))
    return perm


def timed(fns: dict[str, object], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, the calls interleaved (one of each per round)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="128,256,512,1024")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data", default="8gaussians")
    parser.add_argument("--out-table", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = make_preset(args.data)
    std = dataset.standardizer()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        x = std.forward(dataset.sample(n, gen)).double().numpy()
        z = torch.randn(n, 2, generator=gen, dtype=torch.float64).numpy()
        cost = cost_matrix(x, z)
        emd, lsa = emd_perm(cost), lsa_perm(cost)
        total = {"emd": cost[np.arange(n), emd].mean(), "lsa": cost[np.arange(n), lsa].mean(),
                 "independent": np.diag(cost).mean()}
        fns = {"emd": lambda x=x, z=z: emd_perm(cost_matrix(x, z)), "lsa": lambda x=x, z=z: lsa_perm(cost_matrix(x, z))}
        ks = [k for k in (2, 4) if n // k >= 32]
        fns.update({k: (lambda x=x, z=z, k=k: sub_batched(x, z, k)) for k in ks})
        t = timed(fns, args.repeats)
        t_emd, t_lsa = t["emd"], t["lsa"]
        subs = {k: (t[k], cost[np.arange(n), sub_batched(x, z, k)].mean()) for k in ks}
        rows.append((n, t_emd, t_lsa, total, subs))
        print(n, t_emd, t_lsa, total, subs, flush=True)
    load = os.getloadavg()[0]
    lines = [f"\n## ot-fm's minibatch OT pairing — {date.today()} — {platform.machine()}, {os.cpu_count()} cores, "
             f"POT {ot.__version__}, load average {load:.1f} at the end\n",
             f"One pairing call (cost matrix + plan) on {args.data} (standardised) against N(0, I) draws; median of "
             f"{args.repeats} interleaved repeats (the machine is shared: read the ratios). Mean squared pairing distance: "
             "the coupling's quality (lower is straighter paths; independent pairs for scale).\n",
             "| batch | ot.emd ms | linear_sum_assignment ms | emd / lsa | pair dist² emd = lsa | independent | "
             "emd in 2 sub-batches: ms, dist² | in 4 sub-batches: ms, dist² |",
             "|---|---|---|---|---|---|---|---|"]
    for n, t_emd, t_lsa, total, subs in rows:
        same = "yes" if abs(total["emd"] - total["lsa"]) < 1e-9 * max(1.0, total["emd"]) else "NO"
        cells = [f"{subs[k][0] * 1e3:.1f}, {subs[k][1]:.3f}" if k in subs else "–" for k in (2, 4)]
        lines.append(f"| {n} | {t_emd * 1e3:.1f} | {t_lsa * 1e3:.1f} | {t_emd / t_lsa:.1f}× | {total['emd']:.4f} "
                     f"({same}) | {total['independent']:.3f} | {cells[0]} | {cells[1]} |")
    append_results("\n".join(lines) + "\n", args.out_table)


if __name__ == "__main__":
    main()

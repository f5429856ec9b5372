"""Reference scores for any dataset: the analytic mixture score when the data is a Gaussian
mixture, else the exact score of the sigma-smoothed empirical distribution.

For data points d_1..d_M, q_sigma(x) = 1/M sum_j N(x; d_j, sigma^2 I), whose score is
sum_j softmax_j(-|x - d_j|^2 / 2 sigma^2) (d_j - x) / sigma^2: a log-sum-exp over the data, so
every drawn or loaded dataset gets a reference field (it converges to the true q_sigma score as
M grows).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .datasets import Dataset, Standardizer

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EMPIRICAL_SIGMA_FLOOR = 1e-3  # the empirical score at sigma -> 0 is a sum of deltas: floor it


def empirical_score(x: torch.Tensor, data: torch.Tensor, sigma: torch.Tensor | float, chunk: int = 4096) -> torch.Tensor:
    """Exact score of (1/M) sum_j N(x; d_j, sigma^2 I) at x (N, D); sigma scalar or per-sample (N,)."""
    sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if sig.numel() == 1:
        sig = sig.expand(x.shape[0])
    sig = sig.clamp_min(EMPIRICAL_SIGMA_FLOOR)
    x64, d64 = x.detach().to("cpu", torch.float64), data.detach().to("cpu", torch.float64)
    out = torch.empty_like(x64)
    for start in range(0, len(x64), chunk):
        xs, ss = x64[start:start + chunk], sig[start:start + chunk, None]
        logits = -torch.cdist(xs, d64) ** 2 / (2 * ss**2)  # (n, M)
        w = torch.softmax(logits, dim=1)
        out[start:start + chunk] = (w @ d64 - xs) / ss**2
    return out.to(x)


def reference_score_fn(dataset: Dataset, standardizer: Standardizer, max_points: int = 2000) -> tuple[ScoreFn, str]:
    """A score function in standardised coordinates, and its kind: "analytic" or "empirical"."""
    if dataset.gmm is not None:
        gmm = dataset.gmm.transformed(torch.tensor(standardizer.shift), float(standardizer.scale))
        return (lambda x, sigma: gmm.score(x, sigma)), "analytic"
    pts = torch.as_tensor(standardizer.forward(dataset.points[:max_points]), dtype=torch.float64)
    return (lambda x, sigma: empirical_score(x, pts, sigma)), "empirical"

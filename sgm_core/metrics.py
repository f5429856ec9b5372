"""Sample and score metrics against data or analytic truth.

Distances between sample sets (MMD, sliced Wasserstein, energy distance), score error against a
known score (relative Fisher divergence), and mode weights for Gaussian mixtures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .gmm import GaussianMixture
from .lazy import lazy_module

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

ScoreFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def _as64(x) -> torch.Tensor:
    return torch.as_tensor(x).detach().to("cpu", torch.float64)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> float:
    """Median pairwise distance of the pooled set: the usual RBF bandwidth heuristic. Each pair once
    (pdist) and a linear-time selection: the full matrix's torch median took ~100 ms at 1,000
    points, a hitch in the window's live metrics; this is ~15 ms."""
    z = torch.cat([x[:1000], y[:1000]])  # both sets count, whatever their sizes
    d = torch.pdist(z).cpu().numpy()
    d = d[d > 0]
    return float(np.partition(d, (len(d) - 1) // 2)[(len(d) - 1) // 2])  # torch's median: the lower middle


SW_PROJECTION_SEED = 123  # the same directions for every SW distance: ratios comparable over time


SW_BASE_DRAWS = 8  # data draws the data-vs-data SW is averaged over (see SWBaseline)
SW_SEED = 17  # the seed of an SW ratio's reference draws (lessons and compare runs add their seed, 0 by
# default): the window's Metrics and a lesson's checks draw the same reference, one number for one set of particles


class SWBaseline:
    """Sliced Wasserstein of samples against data, as a ratio to the data-vs-data SW of the same size.

    A finite sample never reaches SW 0 against another finite sample, so the raw distance has no
    scale; over the SW between independent data draws of that size and the reference, 1.0 means
    "as close as data is to itself". That baseline is the mean over `draws` draws: one draw's SW
    ranged 0.09-0.34 over 30 seeds (1,000 points of 8 Gaussians, the modes' counts fluctuate), so
    the same particles read anywhere from 7.8x to 13.5x; over 8 draws the spread is a third.
    Draws are fixed by `seed`, so a curve over time moves only with the samples.
    """

    def __init__(self, sample: Callable[[int, torch.Generator], torch.Tensor], n: int, seed: int,
                 draws: int = SW_BASE_DRAWS) -> None:
        g = torch.Generator().manual_seed(seed)
        self.reference = sample(n, g)  # data coordinates, (n, D)
        # the reference's projections sorted once (as `sliced_wasserstein` projects, same directions)
        self._dirs = _directions(self.reference.shape[1], torch.Generator().manual_seed(SW_PROJECTION_SEED), 256)
        self._ref = _sorted_projections(self.reference, self._dirs)
        self.base = float(np.mean([self._sw(sample(n, g)) for _ in range(max(int(draws), 1))]))

    def _sw(self, points) -> float:
        return _sw_sorted(_sorted_projections(points, self._dirs), self._ref)

    def distance(self, points) -> tuple[float, float]:
        """(SW of `points` vs the reference draw, that SW over the data-vs-data baseline)."""
        sw = self._sw(points)
        return sw, sw / max(self.base, 1e-12)


def mmd_rbf(x, y, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with an RBF kernel exp(-|a-b|^2 / (2 h^2)) (Gretton et al. 2012)."""
    x, y = _as64(x), _as64(y)
    h = bandwidth or median_bandwidth(x, y)

    def k(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * h * h))

    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * k(x, y).mean())


def sliced_wasserstein(x, y, generator: torch.Generator, n_projections: int = 256) -> float:
    """Sliced 2-Wasserstein distance: mean over random directions of the 1D W2 between projections.

    Unequal sizes are compared on a common quantile grid.
    """
    x, y = _as64(x), _as64(y)
    dirs = _directions(x.shape[1], generator, n_projections)
    return _sw_sorted(_sorted_projections(x, dirs), _sorted_projections(y, dirs))


def _directions(dim: int, generator: torch.Generator, n: int) -> torch.Tensor:
    dirs = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return dirs / dirs.norm(dim=1, keepdim=True)


def _sorted_projections(x: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    return torch.sort(_as64(x) @ dirs.T, dim=0)[0]


def _sw_sorted(px: torch.Tensor, py: torch.Tensor) -> float:
    if len(px) != len(py):
        q = torch.linspace(0, 1, min(len(px), len(py)), dtype=torch.float64)
        px = torch.quantile(px, q, dim=0)
        py = torch.quantile(py, q, dim=0)
    return float(((px - py) ** 2).mean().sqrt())


ENERGY_MAX_POINTS = 4000  # per set: the pairwise distances cost O(n^2) memory (4000^2 float64 = 128 MB)


def energy_distance(x, y, generator: torch.Generator | None = None, max_points: int = ENERGY_MAX_POINTS) -> float:
    """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (Szekely & Rizzo) between the two empirical
    distributions (V-statistic, self-pairs included), so it is >= 0 and 0 for identical sets;
    the unbiased U-statistic would go negative for samples of one law.

    A set larger than `max_points` is replaced by a uniform random subset of that size drawn
    with `generator` (a fixed seed when None: the same subset on every call), never by its first
    rows, which may be ordered (by mode, by time). Each set draws its own subset."""
    x, y = _as64(x), _as64(y)
    if max(len(x), len(y)) > max_points:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        x, y = (v[torch.randperm(len(v), generator=g)[:max_points]] if len(v) > max_points else v for v in (x, y))
    dxy = torch.cdist(x, y).mean()
    dxx = torch.cdist(x, x).mean()
    dyy = torch.cdist(y, y).mean()
    return float((2 * dxy - dxx - dyy).clamp_min(0.0))  # clamp: round-off only


def relative_fisher_divergence(score_fn: ScoreFn, true_score: ScoreFn, x: torch.Tensor, sigma: float) -> float:
    """E|s_theta - s|^2 / E|s|^2 at points x and noise level sigma: 0 is perfect, 1 is 'predicts 0'."""
    sig = torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device)
    with torch.no_grad():
        learned = _as64(score_fn(x, sig))
    truth = _as64(true_score(x, sig))
    return float(((learned - truth) ** 2).sum(1).mean() / (truth**2).sum(1).mean().clamp_min(1e-12))


def mode_weights(samples, gmm: GaussianMixture, radius_std: float = 3.0) -> tuple[torch.Tensor, float]:
    """Fraction of samples assigned to each component (by responsibility) and the fraction of
    samples 'on a mode' (within radius_std standard deviations of its assigned mean)."""
    x = _as64(samples)
    resp = gmm.responsibilities(x)
    idx = resp.argmax(1)
    weights = torch.bincount(idx, minlength=gmm.n_components).double() / len(x)
    diff = x - gmm.means[idx]
    std = torch.sqrt(torch.diagonal(gmm.covs, dim1=-2, dim2=-1).max(-1).values)[idx]
    on_mode = (diff.norm(dim=1) <= radius_std * std).double().mean()
    return weights, float(on_mode)


def mode_weight_error(samples, gmm: GaussianMixture) -> float:
    """Max absolute difference between sample mode weights and the mixture weights."""
    weights, _ = mode_weights(samples, gmm)
    return float((weights - gmm.weights).abs().max())


def class_mode_stats(samples, gmm: GaussianMixture, c: int, radius_std: float = 3.0) -> dict[str, object]:
    """How samples asked for class c of a labelled mixture sit on that class's modes:

    - `on_class`: the fraction within `radius_std` std of a mode of class c (as `mode_weights`);
    - `weights`: the within-class mode weights of those samples (class c's components, in order),
      to compare with the class's own weights `gmm.given_class(c).weights`;
    - `spread`: RMS distance of each mode's samples to their own mean, averaged over the modes
      (guidance shrinks it, Ho & Salimans 2022);
    - `offset`: the mean distance from each mode's sample mean to the mode's centre (guidance moves
      the samples past their mode, away from the other classes).
    """
    x = _as64(samples)
    idx = gmm.responsibilities(x).argmax(1)
    std = torch.sqrt(torch.diagonal(gmm.covs, dim1=-2, dim2=-1).max(-1).values)[idx]
    near = (x - gmm.means[idx]).norm(dim=1) <= radius_std * std
    mine = torch.nonzero(gmm.labels == int(c)).flatten()
    on = near & (gmm.labels[idx] == int(c))
    counts = torch.stack([(on & (idx == k)).sum() for k in mine]).double()
    spreads, offsets = [], []
    for k in mine:
        xs = x[on & (idx == k)]
        if len(xs) >= 2:
            centre = xs.mean(0)
            spreads.append(((xs - centre) ** 2).sum(1).mean().sqrt())
            offsets.append((centre - gmm.means[k]).norm())
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return {"on_class": float(on.double().mean()), "weights": counts / counts.sum().clamp_min(1),
            "spread": float(torch.stack(spreads).mean() if spreads else nan),
            "offset": float(torch.stack(offsets).mean() if offsets else nan)}

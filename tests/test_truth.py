"""The empirical reference score: exact for the smoothed point cloud, and converging to the
analytic mixture score as the number of data points grows."""

import numpy as np
import torch

from sgm_core.datasets import EmpiricalDataset, make_preset
from sgm_core.gmm import GaussianMixture
from sgm_core.truth import empirical_score, reference_score_fn


def _mixture() -> GaussianMixture:
    return GaussianMixture.isotropic([0.3, 0.7], [[-1.0, 0.0], [1.0, 0.5]], 0.3)


def test_empirical_score_is_the_exact_score_of_the_smoothed_point_cloud():
    pts = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.5, 0.5]], dtype=torch.float64)
    smoothed = GaussianMixture.isotropic([1, 1, 1], pts, 0.4)  # (1/M) sum N(d_j, 0.4^2 I)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(empirical_score(x, pts, 0.4), smoothed.score(x), rtol=1e-9, atol=1e-9)


def test_empirical_score_approaches_the_analytic_score_as_n_grows():
    """At sigma, the smoothed empirical density of M samples of p tends to q_sigma = p * N(0, sigma^2):
    its score error against the analytic q_sigma score shrinks as M grows."""
    gmm, sigma = _mixture(), 0.3
    x = gmm.sample(400, torch.Generator().manual_seed(1)).double()
    truth = gmm.score(x, sigma)
    errors = []
    for m in (100, 1_000, 10_000):
        data = gmm.sample(m, torch.Generator().manual_seed(m)).double()
        # The empirical density smooths data with sigma; data already carry the mixture's own spread,
        # so compare with q at the same sigma: mean relative squared error.
        est = empirical_score(x, data, sigma)
        errors.append(float(((est - truth) ** 2).sum(1).mean() / (truth**2).sum(1).mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05  # 10k points: within a few percent (Monte-Carlo error ~ 1/M)


def test_reference_is_analytic_for_mixtures_and_empirical_otherwise():
    mix = make_preset("8gaussians", n_points=500)
    fn, kind = reference_score_fn(mix, mix.standardizer())
    assert kind == "analytic"
    pts = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    data = EmpiricalDataset(pts, "cloud")
    fn, kind = reference_score_fn(data, data.standardizer())
    assert kind == "empirical"
    out = fn(torch.zeros(4, 2), torch.full((4,), 0.5))
    assert out.shape == (4, 2) and torch.isfinite(out).all()

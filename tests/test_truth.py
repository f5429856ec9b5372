"""The empirical reference score: exact for the smoothed point cloud, and converging to the
analytic mixture score as the number of data points grows."""

import numpy as np
import torch

from sgm_core.datasets import EmpiricalDataset, make_preset
from sgm_core.gmm import GaussianMixture
from sgm_core.truth import empirical_score, perturb, reference_score_fn, relative_score_error, vp_score


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


def test_vp_reference_is_the_score_of_the_scaled_and_smoothed_mixture():
    """The VP marginal at std s is alpha x_0 + s z with alpha = sqrt(1 - s^2): for a mixture that is
    N(alpha mu_k, alpha^2 Sigma_k + s^2 I), computed here directly and compared."""
    gmm = _mixture()
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 1.5
    score = vp_score(lambda y, s: gmm.score(y, s))
    for s in (0.05, 0.5, 0.9):
        alpha = (1 - s**2) ** 0.5
        direct = gmm.transformed(torch.zeros(2), 1 / alpha).score(x, s)  # means alpha mu, covs alpha^2 Sigma, + s^2
        torch.testing.assert_close(score(x, torch.full((200,), s)), direct, rtol=1e-7, atol=1e-7)
    # ... and it is not the VE score x + s z: at s = 0.9 the two differ by far more than rounding
    ve = gmm.score(x, 0.9)
    assert (score(x, 0.9) - ve).norm(dim=1).mean() > 0.3 * ve.norm(dim=1).mean()


def test_vp_reference_for_point_clouds_scales_the_points():
    pts = torch.randn(30, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    s = 0.7
    alpha = (1 - s**2) ** 0.5
    got = vp_score(lambda y, sig: empirical_score(y, pts, sig))(x, s)
    torch.testing.assert_close(got, empirical_score(x, alpha * pts, s), rtol=1e-9, atol=1e-9)


def test_vp_perturbation_keeps_unit_variance_data_at_unit_variance():
    """alpha^2 + s^2 = 1: standard normal data stay standard normal at every VP std (20k draws)."""
    x = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 + 1
    for s in (0.3, 0.8):
        ve, vp = perturb(x, s, "ve", torch.Generator().manual_seed(6)), perturb(x, s, "vp", torch.Generator().manual_seed(6))
        assert abs(ve.mean().item() - 1) < 0.05 and abs(ve.var().item() - (4 + s**2)) < 0.15
        alpha = (1 - s**2) ** 0.5
        assert abs(vp.mean().item() - alpha) < 0.05 and abs(vp.var().item() - (4 * alpha**2 + s**2)) < 0.15


def test_a_trained_vp_model_matches_the_vp_reference_not_the_ve_one():
    """A vp-sde model at std 0.8 has learned the VP marginal's score: its relative error against
    the VP reference is a fraction of its error against the VE one (the old approximation)."""
    from sgm_core.config import LossConfig, ModelConfig, RunConfig, TrainConfig
    from sgm_core.training import Trainer

    torch.manual_seed(0)
    data = make_preset("8gaussians", n_points=2000)
    cfg = RunConfig(model=ModelConfig(width=64, depth=2), loss=LossConfig("vp-sde"),
                    train=TrainConfig(steps=1500, batch=256, device="cpu"))
    trainer = Trainer(data, cfg)
    trainer.run(1500)
    x = torch.as_tensor(trainer.standardizer.forward(data.points[:1000]), dtype=torch.float32)
    vp_ref, _ = reference_score_fn(data, trainer.standardizer, kind="vp")
    ve_ref, _ = reference_score_fn(data, trainer.standardizer)
    err_vp = relative_score_error(trainer.score_fn(), vp_ref, x, 0.8, "vp")
    err_ve = relative_score_error(trainer.score_fn(), ve_ref, x, 0.8, "ve")
    assert err_vp < 0.1 and err_vp < 0.3 * err_ve

"""Curl and divergence of score fields, against fields whose derivatives we know exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgm_core.config import LossConfig, ModelConfig, RunConfig, SamplerConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.fields import curl_2d, divergence, jacobian, relative_curl
from sgm_core.gmm import GaussianMixture
from sgm_core.live import FieldView, LiveEngine, default_bounds
from sgm_core.nets import make_model

EXACT = 1e-10  # float64 autograd of closed-form fields: round-off only
F32_RELATIVE = 1e-4  # float32 energy net: mixed partials agree to round-off relative to |∂s/∂x|


def _points(n: int = 200, dim: int = 2, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2


def _rotation(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """s = (−y, x): a pure rotation, curl 2 and divergence 0 everywhere (no density has it)."""
    return torch.stack([-x[:, 1], x[:, 0]], dim=1)


def test_rotation_has_curl_two_and_no_divergence():
    x = _points()
    torch.testing.assert_close(curl_2d(_rotation, x, 0.1), torch.full((len(x),), 2.0, dtype=x.dtype), atol=EXACT, rtol=0)
    torch.testing.assert_close(divergence(_rotation, x, 0.1), torch.zeros(len(x), dtype=x.dtype), atol=EXACT, rtol=0)


def test_gaussian_score_has_known_jacobian():
    """s = −x / s² for N(0, s² I): J = −I / s², divergence −D / s², curl 0; in 3D too."""
    x = _points(dim=3)
    score = lambda a, sig: -a / sig[:, None] ** 2
    j = jacobian(score, x, 0.5)
    torch.testing.assert_close(j, (-4.0 * torch.eye(3, dtype=x.dtype)).expand(len(x), 3, 3), atol=EXACT, rtol=0)
    torch.testing.assert_close(divergence(score, x, 0.5), torch.full((len(x),), -12.0, dtype=x.dtype), atol=EXACT, rtol=0)
    assert curl_2d(score, x, 0.5).abs().max() < EXACT


def _mixture_score(gmm: GaussianMixture):
    """The analytic mixture score −Σ_k r_k(x) Σ_k⁻¹(x − μ_k) of q_σ, written out so autograd sees it
    (`GaussianMixture.score` detaches its input; the values are checked against it below)."""

    def score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        covs = gmm.covs + float(sigma[0]) ** 2 * torch.eye(gmm.dim, dtype=torch.float64)
        prec = torch.linalg.inv(covs)
        diff = x[:, None, :] - gmm.means[None]  # (N, K, D)
        maha = torch.einsum("nki,kij,nkj->nk", diff, prec, diff)
        logits = torch.log(gmm.weights)[None] - 0.5 * torch.logdet(covs)[None] - 0.5 * maha
        resp = torch.softmax(logits, dim=1)
        return -(resp[..., None] * torch.einsum("kij,nkj->nki", prec, diff)).sum(1)

    return score


def test_analytic_mixture_score_is_curl_free():
    # anisotropic, rotated covariances: a curl-free result needs the precisions' symmetry
    a = torch.tensor([[0.5, 0.3], [0.0, 0.2]], dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64)
    covs = torch.stack([a @ a.T, torch.diag(torch.tensor([0.1, 0.6], dtype=torch.float64)), 0.3 * eye])
    gmm = GaussianMixture(torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64),
                          torch.tensor([[-1.0, 0.0], [1.0, 1.0], [0.5, -1.5]], dtype=torch.float64), covs)
    score = _mixture_score(gmm)
    x = _points()
    sig = torch.full((len(x),), 0.2, dtype=torch.float64)
    torch.testing.assert_close(score(x, sig), gmm.score(x, 0.2), atol=1e-9, rtol=1e-9)  # it is the codebase's score
    assert curl_2d(score, x, 0.2).abs().max() < EXACT
    assert divergence(score, x, 0.2).abs().max() > 0.1  # ... while the field is far from trivial


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_energy_net_is_conservative_and_score_net_is_not(dtype):
    cfg = ModelConfig(width=32, depth=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        energy = make_model(2, ModelConfig(kind="energy", width=32, depth=2)).to(dtype)
        score = make_model(2, cfg).to(dtype)
    x = _points(dtype=dtype)
    j_norm = jacobian(energy, x, 0.3).flatten(1).norm(dim=1)
    tol = EXACT if dtype == torch.float64 else F32_RELATIVE
    assert (curl_2d(energy, x, 0.3).abs() <= tol * (1 + j_norm)).all()
    assert relative_curl(energy, x, 0.3).abs().max() < tol
    assert relative_curl(score, x, 0.3).abs().max() > 1e-2  # a random score net rotates


def test_curl_runs_under_no_grad():
    x = _points()
    with torch.no_grad():
        assert torch.allclose(curl_2d(_rotation, x, 1.0), torch.full((len(x),), 2.0, dtype=x.dtype))


def test_live_curl_map_is_blank_for_energy_nets_only():
    data = make_preset("8gaussians", n_points=500)
    view = FieldView(default_bounds(data.points), resolution=8, sigma=0.3, heatmap_resolution=12)
    maps = {}
    for kind in ("energy", "score"):
        eng = LiveEngine(data, RunConfig(model=ModelConfig(kind=kind, width=32, depth=2), train=TrainConfig(batch=64)),
                         n_particles=10)
        eng.train(20)
        maps[kind] = eng.curl_map(view)
        assert maps[kind].shape == (12, 12) and np.isfinite(maps[kind]).all()
    assert np.abs(maps["energy"]).max() < F32_RELATIVE
    assert np.abs(maps["score"]).max() > 1e-2


def test_reference_score_drives_particles_to_the_modes():
    data = make_preset("8gaussians", n_points=1000)
    cfg = RunConfig(model=ModelConfig(width=16, depth=1))
    annealed = SamplerConfig(name="annealed", steps=8)  # 16 levels x 8 steps
    eng = LiveEngine(data, cfg, annealed, n_particles=300, use_reference_score=True)  # untrained net: truth only
    eng.advance(130)
    assert eng.sample_metrics()["on_mode"] > 0.9
    eng.use_reference_score = False  # the untrained net sends them nowhere near
    eng.reset_particles()
    eng.advance(130)
    assert eng.sample_metrics()["on_mode"] < 0.5


def test_metric_sigmas_follow_the_loss():
    data = make_preset("8gaussians", n_points=200)
    for loss, expected in (("dsm", (0.1,)), ("sm", (0.01,))):
        eng = LiveEngine(data, RunConfig(loss=LossConfig(name=loss)), n_particles=2)
        assert eng.metric_sigmas() == pytest.approx(expected)
    sigmas = LiveEngine(data, RunConfig(), n_particles=2).metric_sigmas(4)
    assert sigmas[0] == pytest.approx(0.01) and sigmas[-1] == pytest.approx(3.0)
    ratios = [b / a for a, b in zip(sigmas[:-1], sigmas[1:], strict=True)]
    assert ratios == pytest.approx([math.pow(300, 1 / 3)] * 3)  # geometric across the ladder


# --------------------------------------------------------------------------- the curl heatmap, drawn

CURL_BLANK = 0.01  # an energy net's curl heatmap may differ visibly from no heatmap in at most 1% of pixels
CURL_DRAWN = 0.10  # a score net's covers the view: well over 10% of the pixels change
CURL_VISIBLE = 12  # a pixel counts as changed when a channel moves by more than this (of 255): the
# colour scale's white middle renders as 0xfbfafa under the offscreen platform, 0xffffff under Xvfb


def test_curl_heatmap_draws_a_score_net_and_leaves_an_energy_net_white(qtbot):
    from dataclasses import replace

    from app.views.plot2d import Plot2D

    data = make_preset("8gaussians", n_points=500)
    view = FieldView(default_bounds(data.points), resolution=8, sigma=0.3, heatmap_resolution=32)

    def pixels(plot: Plot2D) -> np.ndarray:
        img = plot.grab().toImage()
        argb = np.array([[img.pixel(x, y) for x in range(0, img.width(), 3)] for y in range(0, img.height(), 3)],
                        dtype=np.uint32)
        return np.stack([(argb >> shift) & 0xFF for shift in (16, 8, 0)], axis=-1).astype(int)  # r, g, b

    changed = {}
    for kind in ("energy", "score"):
        eng = LiveEngine(data, RunConfig(model=ModelConfig(kind=kind, width=32, depth=2), train=TrainConfig(batch=64)),
                         n_particles=10)
        eng.train(20)
        frame = replace(eng.frame(None), curl_map=eng.curl_map(view), heatmap_bounds=tuple(view.bounds[:2]))
        plot = Plot2D()
        qtbot.addWidget(plot)
        plot.resize(320, 320)
        plot.show()
        plot.fit_to(data.points)
        plot.set_layers(data=False, field=False, particles=False, trails=False, heatmap="off")
        plot.set_legend_visible(False)  # its colour bar names the heatmap: this test reads the heatmap's pixels
        plot.show_frame(frame)
        blank = pixels(plot)
        plot.set_layers(heatmap="curl")
        changed[kind] = float((np.abs(pixels(plot) - blank).max(axis=-1) > CURL_VISIBLE).mean())
    assert changed["energy"] < CURL_BLANK < CURL_DRAWN < changed["score"], changed

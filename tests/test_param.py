"""Parameterisations: a net that outputs a velocity, the noise or EDM's preconditioned denoiser is
still a score function, and the exact targets of each (from the mixture's posteriors, not from its
score) turn into the exact mixture score."""

from __future__ import annotations

import math

import pytest
import torch

from sgm_core.config import ModelConfig, NoiseConfig
from sgm_core.gmm import GaussianMixture
from sgm_core.losses import LOSSES, loss_spec
from sgm_core.noise import DDPMChain, EDMNoise, LinearInterpolant
from sgm_core.param import SCORE, DenoiserOutput, EpsOutput, VelocityOutput
from sgm_core.truth import denoiser_fn, scaled_score, target_fn, velocity_fn

FLOAT64_TOL = 1e-8  # two float64 routes to one closed form: round-off only (divisions by t ~ 0.05)
CONDITIONAL = [name for name, spec in LOSSES.items() if spec.conditional]


def mixture(dim: int = 2) -> GaussianMixture:
    g = torch.Generator().manual_seed(30 + dim)
    means = 1.2 * torch.randn(3, dim, generator=g, dtype=torch.float64)
    a = 0.3 * torch.randn(3, dim, dim, generator=g, dtype=torch.float64)
    covs = a @ a.transpose(1, 2) + 0.04 * torch.eye(dim, dtype=torch.float64)
    return GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), means, covs)


def points(n: int = 64, dim: int = 2, seed: int = 0) -> torch.Tensor:
    return 1.5 * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", CONDITIONAL)
@pytest.mark.parametrize("sigma", [0.05, 0.5, 0.85])
def test_every_parameterisation_round_trips_the_score(name: str, sigma: float) -> None:
    output = loss_spec(name).parameterisation(NoiseConfig())
    x, s = points(), points(seed=1)
    std = torch.full((len(x),), sigma, dtype=torch.float64)
    torch.testing.assert_close(output.to_score(output.from_score(s, x, std), x, std), s,
                               rtol=FLOAT64_TOL, atol=FLOAT64_TOL)


def test_new_losses_name_their_papers_parameterisation() -> None:
    kinds = {name: loss_spec(name).parameterisation(NoiseConfig()).name for name in LOSSES}
    assert kinds["fm"] == kinds["ot-fm"] == "velocity"
    assert kinds["ddpm"] == "eps" and kinds["edm"] == "edm"
    assert all(kinds[name] == "score" for name in ("sm", "dsm", "ncsn", "ve-sde", "vp-sde"))


@pytest.mark.parametrize("t", [0.05, 0.4, 0.9])
def test_exact_flow_matching_velocity_gives_the_mixture_score(t: float) -> None:
    """On x_t = (1 - t) x0 + t z: y = (1 - t) x0 is the mixture scaled by 1 - t, so
    E[z - x0 | x_t] = (x_t - E[y|x_t]) / t - E[y|x_t] / (1 - t), from the posterior means alone."""
    gmm = mixture()
    scaled = gmm.transformed(torch.zeros(2), 1 / (1 - t))
    x = points()
    y_hat = scaled.denoised(x, t)
    velocity = (x - y_hat) / t - y_hat / (1 - t)
    std = torch.full((len(x),), t, dtype=torch.float64)
    path = LinearInterpolant()
    torch.testing.assert_close(VelocityOutput(path).to_score(velocity, x, std), scaled.score(x, t),
                               rtol=FLOAT64_TOL, atol=FLOAT64_TOL)
    exact_score = scaled_score(gmm.score, path.coef_of_std)
    torch.testing.assert_close(velocity_fn(exact_score, path)(x, std), velocity, rtol=FLOAT64_TOL, atol=FLOAT64_TOL)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_exact_ddpm_noise_gives_the_mixture_score(schedule: str) -> None:
    chain = DDPMChain(100, schedule)
    t = torch.full((64,), 30 / 100, dtype=torch.float64)
    coef, std = chain.marginal(t)
    a, s = float(coef[0]), float(std[0])
    gmm = mixture()
    scaled = gmm.transformed(torch.zeros(2), 1 / a)
    x = points()
    eps = (x - scaled.denoised(x, s)) / s  # E[z | x_t]
    torch.testing.assert_close(EpsOutput().to_score(eps, x, std), scaled.score(x, s), rtol=FLOAT64_TOL,
                               atol=FLOAT64_TOL)
    exact_score = scaled_score(gmm.score, chain.coef_of_std)
    torch.testing.assert_close(target_fn(exact_score, EpsOutput())(x, std), eps, rtol=FLOAT64_TOL, atol=FLOAT64_TOL)


@pytest.mark.parametrize("sigma", [0.01, 0.7, 20.0])
def test_exact_edm_denoiser_gives_the_mixture_score(sigma: float) -> None:
    """F = (D - c_skip x) / c_out with Karras et al.'s c_skip, c_out (sigma_data = 1) and D the
    mixture's posterior mean; the preconditioned wrapper turns it into grad log q_sigma."""
    gmm, x = mixture(), points()
    denoised = gmm.denoised(x, sigma)
    c_skip, c_out = 1 / (sigma**2 + 1), sigma / math.sqrt(sigma**2 + 1)
    std = torch.full((len(x),), sigma, dtype=torch.float64)
    out = DenoiserOutput(EDMNoise(), 1.0)
    torch.testing.assert_close(out.to_score((denoised - c_skip * x) / c_out, x, std), gmm.score(x, sigma),
                               rtol=FLOAT64_TOL, atol=FLOAT64_TOL * max(1.0, 1 / sigma**2))
    torch.testing.assert_close(denoiser_fn(gmm.score, EDMNoise())(x, std), denoised, rtol=FLOAT64_TOL,
                               atol=FLOAT64_TOL)


@pytest.mark.parametrize("name", ["fm", "ddpm", "edm"])
def test_net_returns_the_score_of_its_raw_output_and_keeps_the_score_nets_weights(name: str) -> None:
    """forward = to_score(MLP(net_input)); the parameterisation holds no weights, so the state dict
    is a plain score net's (checkpoints load either way)."""
    spec, cfg = loss_spec(name), ModelConfig(width=16, depth=2)
    torch.manual_seed(0)
    net = spec.make_model(2, cfg, NoiseConfig()).double()
    assert net.output is not SCORE
    plain = loss_spec("ve-sde").make_model(2, cfg, NoiseConfig()).double()
    plain.load_state_dict(net.state_dict())
    assert net.state_dict().keys() == plain.state_dict().keys()
    x, std = points(8), torch.linspace(0.05, 0.8, 8, dtype=torch.float64)
    x_in, sigma_in = net.output.net_input(x, std)
    expected = net.output.to_score(net._raw(x_in, sigma_in), x, std)
    torch.testing.assert_close(net(x, std), expected, rtol=0, atol=0)
    assert not torch.allclose(net(x, std), plain(x, std))  # same weights, another meaning

"""Conditional sampling (issue 16, inpainting) against the analytic conditional of a mixture.

The analytic conditional (GaussianMixture.conditional) is checked against Bayes' rule and Monte
Carlo; the conditioned samplers against it. The mixture is 6gaussians-unequal (weights 1:2:...:6
on a ring of radius 2.5): the line x = 1.25 crosses the modes of weight 2 and 6, so p(y | x = 1.25)
puts 0.25 / 0.75 on y = +-2.17 -- unequal weights that a sampler ignoring the condition, or mixing
badly, gets visibly wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgm_core.conditioning import (
    Condition,
    ConditionedSampler,
    conditional_weights,
    given_axes,
    parse_given,
    range_warning,
    reference_mixture,
)
from sgm_core.config import NoiseConfig, SamplerConfig
from sgm_core.datasets import make_preset
from sgm_core.errors import ConfigError
from sgm_core.gmm import GaussianMixture
from sgm_core.losses import loss_spec
from sgm_core.samplers import SAMPLERS, WithLogDensity, make_sampler, run_sampler
from sgm_core.truth import reference_score_fn

PRESET, X0, WANT = "6gaussians-unequal", 1.25, (0.25, 0.75)
WEIGHT_TOL = 0.05  # the acceptance tolerance on the conditional's mode weights
PLANE_TOL = 0.08  # gmm3d's plane: annealed Langevin's measured bias 0.03-0.06 (seeds 0-2) + 2000-sample noise
MC_WEIGHT_TOL = 0.02  # Monte Carlo conditional from ~20k accepted joint draws: SE ~0.003


def _random_mixture(dim: int, k: int, seed: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, dim, dim, generator=g, dtype=torch.float64)
    covs = a @ a.transpose(1, 2) * 0.3 + 0.1 * torch.eye(dim, dtype=torch.float64)
    w = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    return GaussianMixture(w / w.sum(), torch.randn(k, dim, generator=g, dtype=torch.float64) * 2, covs)


@pytest.mark.parametrize("fixed", [(0,), (2,), (0, 2), (1, 2)])
def test_conditional_is_bayes_rule(fixed) -> None:
    """p(y | x_f = v) = p(v, y) / p(v), pointwise, for full covariances in 3D (lines and planes)."""
    gmm = _random_mixture(3, 4, seed=1)
    v = torch.tensor([0.3, -0.7][: len(fixed)], dtype=torch.float64)
    cond = gmm.conditional(fixed, v)
    free = [i for i in range(3) if i not in fixed]
    y = torch.randn(50, len(free), generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2
    x = torch.empty(50, 3, dtype=torch.float64)
    x[:, free], x[:, list(fixed)] = y, v
    bayes = gmm.log_prob(x) - gmm.marginal(fixed).log_prob(v[None])
    assert torch.allclose(cond.log_prob(y), bayes, atol=1e-9)
    assert math.isclose(float(cond.weights.sum()), 1.0, abs_tol=1e-12)


def test_conditional_matches_monte_carlo() -> None:
    """Joint draws with |x - x0| < h (a thin strip) have the conditional's mode weights and moments."""
    gmm = make_preset(PRESET).gmm
    x = gmm.sample(1_500_000, torch.Generator().manual_seed(0)).double()
    strip = x[(x[:, 0] - X0).abs() < 0.02]
    cond = gmm.conditional([0], [X0])
    assert len(strip) > 10_000
    got = torch.bincount(cond.responsibilities(strip[:, 1:]).argmax(1), minlength=6).double() / len(strip)
    assert torch.allclose(got, cond.weights, atol=MC_WEIGHT_TOL)
    assert np.allclose(cond.weights[[1, 5]].numpy(), WANT, atol=1e-6)  # 2/(2+6), 6/(2+6): same x-mean
    upper = strip[strip[:, 1] > 0, 1]
    assert math.isclose(float(upper.mean()), float(cond.means[1, 0]), abs_tol=0.01)
    assert math.isclose(float(upper.std()), math.sqrt(float(cond.covs[1, 0, 0])), rel_tol=0.05)


@pytest.mark.parametrize("loss", ["ncsn", "vp-sde", "fm"])
def test_held_free_score_is_the_noisy_conditional_score(loss) -> None:
    """The reduced score of a held condition is grad_y log p_t(y | x_t = coef v): the score of the
    conditional of the noisy marginal (coef v + std z's mixture), for VE, VP and the linear path."""
    data = make_preset(PRESET)
    std = data.standardizer()
    process = loss_spec(loss).process(NoiseConfig())
    score, _ = reference_score_fn(data, std, kind=process)
    cond = Condition.from_data({0: X0}, std, 2)
    gmm, _ = reference_mixture(data, std)
    sampler = ConditionedSampler(make_sampler(SamplerConfig(name="annealed"), NoiseConfig(), process), cond, process)
    y = torch.linspace(-2, 2, 41, dtype=torch.float64)[:, None]
    for s in (0.05, 0.4, 0.9):
        coef = float(process.coef_of_std(torch.tensor(s)))
        noisy = GaussianMixture(gmm.weights, coef * gmm.means, coef**2 * gmm.covs + s**2 * torch.eye(2, dtype=torch.float64))
        want = noisy.conditional([0], [coef * cond.values[0]]).score(y)
        got = sampler.free_score(score)(y, torch.full((41,), s, dtype=torch.float64))
        assert torch.allclose(got, want, atol=1e-6), (loss, s)


def _condition_run(sampler_name: str, n: int, seed: int = 0, loss: str = "ncsn", fixed: str = "hold"):
    data = make_preset(PRESET)
    std = data.standardizer()
    process = loss_spec(loss).process(NoiseConfig())
    score, _ = reference_score_fn(data, std, kind=process)
    gmm, _ = reference_mixture(data, std)
    cond = Condition.from_data({0: X0}, std, 2)
    sampler = ConditionedSampler(make_sampler(SamplerConfig(name=sampler_name), NoiseConfig(), process), cond,
                                 process, fixed)
    g = torch.Generator().manual_seed(seed)
    x = run_sampler(sampler, score, sampler.init(n, 2, g), g)
    return x, gmm, cond


def test_inpainting_with_the_exact_score_matches_the_analytic_conditional() -> None:
    """Acceptance: annealed Langevin, given x = x0, puts the analytic p(y | x0)'s weights on its modes."""
    x, gmm, cond = _condition_run("annealed", 4000)
    assert torch.all(x[:, 0] == cond.values[0])  # the fixed coordinate never moves
    got, want = conditional_weights(gmm, cond, x)
    assert float((got - want).abs().max()) < WEIGHT_TOL, (got, want)


def test_mala_leaves_the_noisy_conditional_invariant() -> None:
    """MALA with the joint log-density log p_sigma(v, y) leaves p_sigma(y | x = v) exactly invariant;
    ULA at the same step inflates it. On 8 Gaussians at x = 2.5 one mode is on the line: started
    from exact draws of the analytic conditional, MALA keeps its variance, Langevin does not."""
    data = make_preset("8gaussians")
    std = data.standardizer()
    gmm, _ = reference_mixture(data, std)
    process = loss_spec("ncsn").process(NoiseConfig())
    truth = WithLogDensity(lambda x, s: gmm.score(x, s), lambda x, s: gmm.log_prob(x, float(s.reshape(-1)[0])))
    cond = Condition.from_data({0: 2.5}, std, 2)
    variances = {}
    for name in ("mala", "langevin"):
        inner = make_sampler(SamplerConfig(name=name, steps=200, step_size=2e-3, denoise=False), NoiseConfig(), process)
        target = gmm.perturbed(inner.sigma).conditional([0], cond.values)
        sampler = ConditionedSampler(inner, cond, process)
        g = torch.Generator().manual_seed(0)
        start = cond.assemble(target.sample(2000, g), cond.fixed_tensor(torch.zeros(1)))
        y = run_sampler(sampler, truth, start, g)[:, 1].double()
        k = int(target.weights.argmax())
        assert float(target.weights[k]) > 0.999
        assert math.isclose(float(y.mean()), float(target.means[k, 0]), abs_tol=0.01)
        variances[name] = float(y.var()) / float(target.covs[k, 0, 0])
    # relative SE of a variance from 2000 draws: sqrt(2 / 2000) = 3.2%; ULA's O(eps) bias here is ~+16%
    assert math.isclose(variances["mala"], 1.0, abs_tol=0.08), variances
    assert variances["langevin"] > 1.08, variances


@pytest.mark.parametrize("name", [s for s in SAMPLERS if s not in ("mala", "ddpm")])
def test_every_sampler_runs_conditioned_and_holds_the_line(name) -> None:
    """Every sampler drives a held condition (on the process it can drive): the fixed coordinate
    stays at x0 and the samples land on the conditional's two modes; weights are only loosely
    checked here (benchmarks/conditional.py measures each; only Langevin-type ones are claimed exact)."""
    loss = "ncsn" if name in ("langevin", "annealed") else "ve-sde"
    x, gmm, cond = _condition_run(name, 400, loss=loss)
    assert torch.isfinite(x).all() and torch.all(x[:, 0] == cond.values[0])
    c = gmm.conditional(cond.fixed, cond.values)
    y = x[:, 1:].double()
    near = (y[:, None, :] - c.means[None, [1, 5]]).norm(dim=2).min(1).values
    on = float((near < 3 * math.sqrt(float(c.covs[1, 0, 0])) + 0.05).double().mean())
    if name != "langevin":  # plain Langevin at sigma_min from a uniform start barely moves in 1000 steps
        assert on > 0.9, on


def test_dpm_solver_keeps_its_history_through_the_condition() -> None:
    """The wrapper hands DPM-Solver++ the very tensor it returned, so its second-order history is used."""
    data = make_preset(PRESET)
    std = data.standardizer()
    process = loss_spec("ve-sde").process(NoiseConfig())
    score, _ = reference_score_fn(data, std, kind=process)
    inner = make_sampler(SamplerConfig(name="dpm-solver"), NoiseConfig(), process)
    sampler = ConditionedSampler(inner, Condition.from_data({0: X0}, std, 2), process)
    g = torch.Generator().manual_seed(0)
    x = sampler.init(10, 2, g)
    x = sampler.step(score, x, 0, g)
    assert inner.history.find(1, sampler._free_part(x)) is not None


def test_plane_and_line_conditionals_in_3d() -> None:
    """3D: a plane z = z0 and a line (x, y) fixed, annealed Langevin with the exact score. The plane's
    two modes (0.8 / 0.2) come out 0.74-0.77 at z = 0.5 and 0.8, seeds 0-2 (measured): annealing pulls unequal
    weights toward equal where the modes separate, so the tolerance here is PLANE_TOL."""
    data = make_preset("gmm3d")
    std = data.standardizer()
    process = loss_spec("ncsn").process(NoiseConfig())
    score, _ = reference_score_fn(data, std, kind=process)
    gmm, _ = reference_mixture(data, std)
    for given in ({2: 0.8}, {0: 1.0, 1: 0.9}):
        cond = Condition.from_data(given, std, 3)
        sampler = ConditionedSampler(make_sampler(SamplerConfig(name="annealed"), NoiseConfig(), process),
                                     cond, process)
        g = torch.Generator().manual_seed(0)
        x = run_sampler(sampler, score, sampler.init(2000, 3, g), g)
        assert torch.all(x[:, list(cond.fixed)] == torch.tensor(cond.values, dtype=x.dtype))
        got, want = conditional_weights(gmm, cond, x)
        assert float((got - want).abs().max()) < PLANE_TOL, (given, got, want)


@pytest.mark.parametrize("text, message", [
    ("x=1,y=2", "fixes all 2 axes"), ("q=1", "not one of x, y"), ("z=1", "this run is 2D"),
    ("x=abc", "not a number"), ("x=inf", "finite"), ("x=1,x=2", "twice"), ("x", "AXIS=VALUE"),
    ("x=1e308", "x=1e308 is beyond the float32 range"), ("y=-1e100", "y=-1e100 is beyond the float32 range"),
])
def test_bad_given_specs_are_one_sentence(text, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_given(text, 2)


def test_far_values_get_log_space_weights_and_no_density_is_one_sentence() -> None:
    """x = 1e308 used to reach torch.multinomial with NaN weights (a traceback): every component's
    log-likelihood was -inf. Far values whose likelihoods are all finite but would underflow as
    probabilities (exp(-5e5)) still get exact weights; all -inf is a ConfigError."""
    from sgm_core.conditioning import conditional_reference

    gmm = GaussianMixture(torch.tensor([0.5, 0.5], dtype=torch.float64),
                          torch.tensor([[0.0, 0.0], [1.0, 3.0]], dtype=torch.float64),
                          torch.eye(2, dtype=torch.float64).repeat(2, 1, 1))
    far = gmm.conditional([0], [1000.0])  # log-likelihoods -5e5 and -4.995e5: exp() of either is 0.0
    assert far.weights.tolist() == [0.0, 1.0] and torch.allclose(far.means, torch.tensor([[0.0], [3.0]]).double())
    with pytest.raises(ConfigError, match="no density: their likelihood underflows to zero under every component"):
        gmm.conditional([0], [1e300])  # (1e300)^2 overflows float64: -inf for both
    dataset = make_preset(PRESET)
    std = dataset.standardizer()
    with pytest.raises(ConfigError, match=r"^given x = [\d.]+e\+300: the fixed values lie where the data has no density"):
        conditional_reference(dataset, std, Condition(2, (0,), (1e300,)))


def test_given_forms_and_range_warning() -> None:
    assert parse_given("x=0.5, z = -1", 3) == {0: 0.5, 2: -1.0}
    assert given_axes({"y": 2}, 2) == given_axes({1: 2.0}, 2) == {1: 2.0}
    points = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert range_warning({0: 0.5}, points) is None
    assert "far outside" in range_warning({0: 50.0}, points)


# --------------------------------------------------------------------------- a trained net, API and CLI

TRAINED = dict(steps=1500, width=64, depth=3, batch=512, ema=0.995, seed=0)  # ~10-25 s on one busy core


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    import sgm_core as sgm

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = sgm.train(PRESET, progress=False, **TRAINED)
    finally:
        torch.set_num_threads(before)
    path = run.save(tmp_path_factory.mktemp("cond") / "run")
    return run, path


@pytest.mark.slow
def test_inpainting_with_a_trained_net_matches_the_analytic_conditional(trained_run, capsys) -> None:
    """Acceptance: `sgm sample RUN --given x=1.25` on a small trained NCSN (unlabelled mixture):
    the samples' y-weights are p(y | x = 1.25)'s within 0.05, and the API gives the same samples."""
    from cli_helpers import run_cli

    run, path = trained_run
    out = path.parent / "given.npy"
    code, _, err = run_cli(["sample", path, "--out", out, "--n", 2000, "--given", f"x={X0}"], capsys)
    assert code == 0, err
    assert f"given x = {X0}" in err
    x = np.load(out)
    assert np.all(x[:, 0] == np.float32(X0))
    gmm = make_preset(PRESET).gmm
    cond = gmm.conditional([0], [X0])
    got = torch.bincount(cond.responsibilities(torch.as_tensor(x[:, 1:], dtype=torch.float64)).argmax(1),
                         minlength=6).double() / len(x)
    assert float((got - cond.weights).abs().max()) < WEIGHT_TOL, (got, cond.weights)
    assert np.array_equal(run.sample(2000, given={"x": X0}, seed=0), x)  # the API is the CLI's engine


@pytest.mark.parametrize("given, message", [
    ("x=1,y=2", "fixes all 2 axes"), ("z=0", "this run is 2D"), ("x=one", "not a number"), ("w=1", "not one of"),
])
def test_cli_bad_given_exits_2_with_one_line(trained_run, capsys, given, message) -> None:
    from cli_helpers import run_cli

    _, path = trained_run
    out = path.parent / "bad.npy"
    code, _, err = run_cli(["sample", path, "--out", out, "--given", given], capsys)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists()


def test_cli_far_given_warns_and_samples(trained_run, capsys) -> None:
    from cli_helpers import run_cli

    _, path = trained_run
    out = path.parent / "far.npy"
    code, _, err = run_cli(["sample", path, "--out", out, "--n", 50, "--steps", 5, "--given", "x=40"], capsys)
    assert code == 0
    assert "far outside the data" in err and len(err.strip().splitlines()) == 2
    assert np.all(np.load(out)[:, 0] == 40.0)


def test_render_given_draws_particles_on_the_line(trained_run, capsys) -> None:
    """`sgm render --given x=V`: the last frame's particles lie on the vertical line x = V (pixels)."""
    from cli_helpers import run_cli
    from PIL import Image

    _, path = trained_run
    out = path.parent / "given.gif"
    code, _, err = run_cli(["render", path, "--out", out, "--frames", 3, "--n", 400, "--steps", 20, "--given", "x=1.25",
                            "--size", "128x128"], capsys)
    assert code == 0, err
    with Image.open(out) as im:
        im.seek(im.n_frames - 1)
        a = np.asarray(im.convert("RGB")).astype(int)
    from sgm_core.render import FrameStyle

    particle = np.array(FrameStyle().particle_color)
    hit = np.abs(a - particle).sum(-1) < 60
    cols = np.nonzero(hit.any(0))[0]
    assert len(cols) and cols.max() - cols.min() <= 6, cols  # one narrow column of particles

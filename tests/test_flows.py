"""Flows between two distributions (`LossConfig.source`, `sgm train --source`): fm and ot-fm learn
the velocity that carries a source preset into the data, and every sampler of the run starts from
the source (Tong et al. 2024; torchcfm's 8gaussians -> moons)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_helpers import one_thread, run_cli  # noqa: F401 - one_thread is an autouse fixture

from sgm_core import api
from sgm_core.datasets import load_dataset
from sgm_core.errors import ConfigError
from sgm_core.metrics import sliced_wasserstein

STEPS = 1500  # ~5 s on one core with a 64-wide net; SW to the moons at 16 Euler steps then ~0.13


def sw(a: np.ndarray, b: np.ndarray) -> float:
    return sliced_wasserstein(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                              torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def flows() -> dict[str, api.Run]:
    return {loss: api.train("moons", loss=loss, source="8gaussians", steps=STEPS, batch=256, width=64, seed=0,
                            progress=False) for loss in ("fm", "ot-fm")}


@pytest.fixture(scope="module")
def points() -> dict[str, np.ndarray]:
    return {name: load_dataset(name, seed=5).points[:2000] for name in ("moons", "8gaussians")}


def test_the_sampler_starts_from_the_source_and_ends_at_the_data(flows, points):
    run = flows["fm"]
    start = run.schedule("euler", 16).init(2000, 2, torch.Generator().manual_seed(0))
    start = run.standardizer.inverse(start).numpy()
    assert sw(start, points["8gaussians"]) < 0.5 * sw(start, points["moons"])  # the draws are the source's
    end = run.sample(2000, sampler="euler", steps=16, seed=1)
    assert sw(end, points["moons"]) < 0.5 * sw(end, points["8gaussians"])  # carried to the data
    assert sw(end, points["moons"]) < 0.3  # measured 0.13 (moons against fresh moons: 0.05)


def test_minibatch_ot_makes_one_euler_step_enough(flows, points):
    """Straighter paths (Tong et al. 2024): at one Euler step OT-FM measured SW 0.15 to the moons,
    plain FM 0.70 (at 16 steps both ~0.13)."""
    one = {loss: sw(run.sample(2000, sampler="euler", steps=1, seed=1), points["moons"]) for loss, run in flows.items()}
    assert one["ot-fm"] < 0.5 * one["fm"]


def test_a_flow_from_a_source_has_no_likelihood(flows):
    run = flows["fm"]
    assert "nll" not in run.metrics(run.sample(200, sampler="euler", steps=4, seed=1), nll=True)
    with pytest.raises(ConfigError, match="no prior density"):
        run.log_likelihood(np.zeros((4, 2), np.float32), n_steps=2)


def test_the_cli_trains_and_samples_a_flow(tmp_path, capsys):
    code, _, err = run_cli(["train", "moons", "--loss", "fm", "--source", "8gaussians", "--steps", "30", "--batch", "64",
                            "--width", "16", "--depth", "1", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["sample", tmp_path / "run", "--n", "300", "--sampler", "euler", "--steps", "2",
                            "--out", tmp_path / "s.npy"], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "s.npy").shape == (300, 2)


# -- the exact field of a flow between two mixtures (sgm_core.gmm.linear_flow_velocity) --------
MC_DRAWS = 100_000  # pairs (x_0, z) per Monte-Carlo check: ~2 s
MC_Z = 5.0  # |MC mean - exact| in standard errors: a right field sits within ~2 (measured up to 2.2 at 200k)


def _tower_z_scores(velocity, data, source, t: float, seed: int = 0) -> torch.Tensor:
    """E[(z - x_0) phi(x_t)] = E[v(x_t) phi(x_t)] for any test function phi when v(x) = E[z - x_0 | x_t = x]
    (the tower property): the Monte-Carlo difference of both sides in standard errors, for Gaussian
    bumps phi at a few centres. No kernel smoothing, so no bias: a right field reads N(0, 1) noise."""
    gen = torch.Generator().manual_seed(seed)
    x0, z = data.sample(MC_DRAWS, gen).double(), source.sample(MC_DRAWS, gen).double()
    xt = (1 - t) * x0 + t * z
    centres = torch.tensor([[0.0, 0.0], [2.0, 1.0], [-1.0, -2.0], [3.0, 0.0]], dtype=torch.float64)
    phi = torch.exp(-((xt[:, None] - centres[None]) ** 2).sum(-1) / 2)[..., None]  # (n, 4, 1)
    diff = ((z - x0)[:, None] - velocity(xt)[:, None]) * phi
    return diff.mean(0) / (diff.std(0) / MC_DRAWS**0.5)


@pytest.mark.parametrize("t", [0.3, 0.7])
def test_the_exact_flow_between_two_mixtures_matches_monte_carlo(t):
    from sgm_core.datasets import make_preset
    from sgm_core.gmm import GaussianMixture, linear_flow_velocity

    data, source = make_preset("8gaussians").gmm, make_preset("mixture-unequal").gmm
    z = _tower_z_scores(lambda x: linear_flow_velocity(data, source, x, t), data, source, t)
    assert z.abs().max() < MC_Z, z
    # The check can fail: the field of a flow from N(0, I) instead (what the window showed before) is far off.
    gauss = GaussianMixture.isotropic([1.0], torch.zeros(1, 2, dtype=torch.float64), 1.0)
    wrong = _tower_z_scores(lambda x: linear_flow_velocity(data, gauss, x, t), data, source, t)
    assert wrong.abs().max() > 10 * MC_Z


def test_from_gaussian_noise_the_flow_is_the_one_the_score_gives():
    """With a one-component N(0, I) source the pair mixture is the data's marginal: the velocity equals
    the PF-ODE drift of the exact score (truth.velocity_fn), to rounding."""
    from sgm_core.datasets import make_preset
    from sgm_core.gmm import GaussianMixture, linear_flow_velocity
    from sgm_core.noise import LinearInterpolant
    from sgm_core.truth import scaled_score, velocity_fn

    data, process = make_preset("8gaussians").gmm, LinearInterpolant()
    gauss = GaussianMixture.isotropic([1.0], torch.zeros(1, 2, dtype=torch.float64), 1.0)
    score = scaled_score(lambda x, s: data.score(x, s), process.coef_of_std)
    x = 2 * torch.randn(400, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for t in (0.1, 0.5, 0.9):
        exact = velocity_fn(score, process)(x, torch.full((400,), t, dtype=torch.float64))
        assert torch.allclose(linear_flow_velocity(data, gauss, x, t), exact, atol=1e-9)


def test_the_window_engine_shows_truth_only_where_it_is_exact():
    """fm between two mixtures: the true field is the exact flow (drawn as -v, like the net); ot-fm or a
    point-cloud end: no truth, no score error, and one line that says why; particles start on the source."""
    from sgm_core.config import LossConfig, ModelConfig, RunConfig, TrainConfig
    from sgm_core.datasets import make_preset
    from sgm_core.gmm import linear_flow_velocity
    from sgm_core.live import FieldView, LiveEngine

    data, source = make_preset("25gaussians"), make_preset("8gaussians")
    view = FieldView(bounds=((-3.0, 3.0), (-3.0, 3.0)), resolution=8, sigma=0.5)

    def engine(loss: str, src) -> LiveEngine:
        cfg = RunConfig(data="25gaussians", loss=LossConfig(name=loss), model=ModelConfig(width=16, depth=1),
                        train=TrainConfig(steps=10, batch=64))
        return LiveEngine(data, cfg, n_particles=300, source=src)

    fm = engine("fm", source)
    assert fm.reference_kind == "analytic"
    shown = fm.true_field(view)
    std = fm.standardizer
    x = torch.as_tensor(std.forward(shown.positions), dtype=torch.float64)
    v = linear_flow_velocity(data.gmm.transformed(torch.tensor(std.shift), std.scale),
                             source.gmm.transformed(torch.tensor(std.shift), std.scale), x, 0.5)
    assert np.allclose(shown.vectors, -v.numpy() * std.scale, atol=1e-4)  # the view draws -v in data units
    # 8gaussians' modes have std 0.15 (data units), ~1.9 apart: a start within 0.6 (4 std) of one is on it
    assert torch.all(torch.cdist(torch.as_tensor(fm.particles_data()).double(), source.gmm.means).min(1).values < 0.6)
    assert fm.data_log_likelihood(10, 2) is None  # a flow from a source has no prior density

    for loss, src, why in (("ot-fm", source, "optimal transport"), ("fm", make_preset("moons"), "the source is not")):
        eng = engine(loss, src)
        frame = eng.frame(view)
        assert eng.reference is None and frame.true_field is None and frame.score_error is None
        assert why in frame.reference_note and frame.reference_kind == "none"


def test_a_session_keeps_the_flow_source(flows, tmp_path):
    """Run.save(.sgm) stores the source points; api.load samples from them (no preset or file needed)."""
    run = flows["fm"]
    path = run.save(tmp_path / "flow.sgm")
    loaded = api.load(path)
    start = loaded.schedule("euler", 4).init(500, 2, torch.Generator().manual_seed(0))
    source = torch.as_tensor(run.standardizer.forward(run._trainer.source.points))
    assert torch.cdist(start.double(), source.double()).min(1).values.max() < 1e-5  # every start is a source point


EXACT_TOL = 1e-8  # the exact velocity through a float32 score and back: roundoff (~1e-7 relative, squared)
UNTRAINED = (0.3, 3.0)  # an untrained net's relative velocity error: O(1) ("predicts zero" reads 1)


@pytest.mark.parametrize("source", [None, "8gaussians"])
def test_a_flow_net_is_judged_by_its_velocity_against_the_exact_one(source):
    """The Metrics dock's curve for fm: E|v_θ - v|² / E|v|² at each t. The exact velocity
    (gmm.linear_flow_velocity, or the mixture's from N(0, I)) plugged in as the model — through a
    float32 score s = -(x + (1 - t) v) / t, as a net gives it — reads ~0 at every t, t = 0.001 too;
    an untrained net reads O(1), where the score form of the same error read 10²-10⁴."""
    from sgm_core.config import LossConfig, ModelConfig, RunConfig, TrainConfig
    from sgm_core.datasets import make_preset
    from sgm_core.gmm import linear_flow_velocity
    from sgm_core.live import LiveEngine
    from sgm_core.truth import velocity_fn

    data = make_preset("25gaussians" if source else "8gaussians", n_points=600)
    src = make_preset(source, n_points=600) if source else None
    cfg = RunConfig(loss=LossConfig(name="fm"), model=ModelConfig(width=16, depth=1), train=TrainConfig(steps=10))
    eng = LiveEngine(data, cfg, n_particles=10, source=src)
    assert eng.error_measure == "velocity" and eng.reference_kind == "analytic"
    std = eng.standardizer
    shift = torch.tensor(std.shift)
    gmm = data.gmm.transformed(shift, std.scale)

    def exact_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x64, t0 = x.double(), float(t.reshape(-1)[0])
        if src is None:
            score = lambda y, s: gmm.score(y / (1 - s[:, None]), s / (1 - s)) / (1 - s[:, None])  # noqa: E731
            return velocity_fn(score, eng.process)(x64, t.double())
        return linear_flow_velocity(gmm, src.gmm.transformed(shift, std.scale), x64, t0)

    def exact_net(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # what a perfect velocity net returns
        return eng.process.score_from_velocity(x, t, exact_velocity(x, t).float()).float()

    untrained = [eng.field_error(t) for t in eng.metric_sigmas()]
    assert all(UNTRAINED[0] < e < UNTRAINED[1] for e in untrained), untrained
    assert eng.score_error(eng.metric_sigmas()[0]) > 30  # the score form at t = 0.001: what the dock showed
    eng.trainer.score_fn = lambda ema=True: exact_net
    exact = [eng.field_error(t) for t in eng.metric_sigmas()]
    assert all(e < EXACT_TOL for e in exact), exact


def test_ot_fm_has_no_exact_velocity_even_from_gaussian_noise():
    """Minibatch-OT pairs change the path's marginals, so the independent pairs' flow is not ot-fm's
    truth: no reference (and no error curve), with the one line that says why."""
    from sgm_core.config import LossConfig, ModelConfig, RunConfig
    from sgm_core.datasets import make_preset
    from sgm_core.live import LiveEngine

    eng = LiveEngine(make_preset("8gaussians", n_points=300),
                     RunConfig(loss=LossConfig(name="ot-fm"), model=ModelConfig(width=16, depth=1)), n_particles=10)
    assert eng.reference is None and eng.field_error(0.5) is None and "optimal transport" in eng.reference_note

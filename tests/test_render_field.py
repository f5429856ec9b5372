"""An exported animation names and draws the field as the window does: one core function,
`losses.field_output`, says what a run's field view draws (a score, a flow −v, a denoiser's
displacement) for the window's legend and for the export's legend and arrows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("imageio.v3")

from sgm_core import render  # noqa: E402
from sgm_core.config import ModelConfig, NoiseConfig, RunConfig, TrainConfig  # noqa: E402
from sgm_core.losses import LOSSES, field_output, field_shows  # noqa: E402
from sgm_core.param import SCORE  # noqa: E402

FLOW, DENOISER, SCORE_NAME = "flow −v_θ(x, t) (toward the data)", "denoiser D_θ(x, σ) − x", "score s_θ(x, σ)"
ROUND_TRIP = 1e-4  # float32: score -> velocity -> score through the linear path's coefficients


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_names_its_field_and_an_energy_net_always_a_score(loss):
    config = RunConfig(loss=replace(RunConfig().loss, name=loss))
    want = {"fm": FLOW, "ot-fm": FLOW, "edm": DENOISER}.get(loss, SCORE_NAME)
    assert field_shows(config) == want
    energy = config.with_(model=replace(config.model, kind="energy"))
    assert field_output(energy) is SCORE and field_shows(energy) == SCORE_NAME  # -∇E is a score


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny trained fm and ncsn runs (20 steps, 2x16 net), saved and loaded back as `sgm render` reads them."""
    import torch

    from sgm_core.checkpoint import save_run
    from sgm_core.datasets import load_dataset
    from sgm_core.training import Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    made = {}
    try:
        for loss in ("fm", "ncsn"):
            base = RunConfig(data="8gaussians", model=ModelConfig(width=16, depth=2), noise=NoiseConfig(n_levels=4),
                             train=TrainConfig(steps=20, batch=128, device="cpu"))
            config = base.with_(loss=replace(base.loss, name=loss))
            dataset = load_dataset("8gaussians", n_points=300)
            trainer = Trainer(dataset, config)
            trainer.run(20)
            path = save_run(tmp_path_factory.mktemp(loss), config, trainer.model, trainer.ema_model,
                            trainer.standardizer, trainer.step, trainer.loss_history(), dataset.points)
            made[loss] = path
        yield made
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(("loss", "label"), [("fm", f"Learned {FLOW}, colour ∝ |·|"),
                                             ("ncsn", f"Learned {SCORE_NAME}, colour ∝ |·|")])
def test_an_exported_frame_names_the_field_as_the_window_does(trained, tmp_path, monkeypatch, loss, label):
    seen = []
    original = render.render_frames

    def spy(contents, **kw):  # the frames the export really draws, and their legend
        seen.append(kw["decor"])
        yield from original(contents, **kw)

    monkeypatch.setattr(render, "render_frames", spy)
    out = render.render_run(trained[loss], tmp_path / "a.gif", frames=2, size=(160, 160), n=50, steps=2)
    assert out.exists()
    (decor,) = seen
    assert decor.legend[0].label == label
    from sgm_core.checkpoint import load_run

    assert decor.legend[0].label == f"Learned {field_shows(load_run(trained[loss]).config)}, colour ∝ |·|"


def test_an_fm_export_draws_minus_the_nets_velocity_in_data_units(trained):
    """The arrows are −v_θ, the MLP's own output (not the score it is turned into), times the data's
    scale: what the window's field view draws for a velocity net (live.LiveEngine._shown_data)."""
    import torch

    from sgm_core.checkpoint import load_run
    from sgm_core.config import SamplerConfig
    from sgm_core.losses import bound_process
    from sgm_core.samplers import make_sampler

    run = load_run(trained["fm"])
    process = bound_process(run.config, run.standardizer, run.dim)
    schedule = make_sampler(SamplerConfig(name="heun", steps=2), run.config.noise, process)
    anchors = np.array([[0.0, 0.0], [1.0, -0.5], [-2.0, 1.5]])
    frames = list(render.sample_contents(run, schedule, 2, 20, 0, anchors, output=field_output(run.config, process)))
    sigma = schedule.sigma_at(0)
    x = run.standardizer.forward(torch.as_tensor(anchors, dtype=torch.float32))
    sig = torch.full((len(x),), float(sigma))
    with torch.no_grad():
        velocity = run.model._raw(*run.model.output.net_input(x, sig), None)  # the MLP's output: v_θ
    want = -velocity.double().numpy() * run.standardizer.scale
    np.testing.assert_allclose(frames[0].field[1], want, rtol=ROUND_TRIP, atol=ROUND_TRIP)
    score = render.sample_contents(run, schedule, 2, 20, 0, anchors)  # the default: the score
    assert not np.allclose(next(score).field[1], want, atol=0.05)  # a score is another field

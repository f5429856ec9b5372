"""The live engine's guidance (what the window's Sampler dock drives): particles asked for a class
follow the guided score as w changes, without restarting; the true field is the exact guided one;
an unconditional model refuses a class with one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_helpers import one_thread  # noqa: F401 - one_thread is an autouse fixture

from sgm_core.config import LossConfig, ModelConfig, RunConfig, SamplerConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.engine import Engine, EngineSpec, Failed, SetEngine, SetGuidance
from sgm_core.errors import ConfigError
from sgm_core.live import FieldView, LiveEngine
from sgm_core.metrics import class_mode_stats
from sgm_core.truth import guided_reference_fn

HEUN = SamplerConfig(name="heun", steps=32)


def _engine(classes: bool = True, loss: str = "fm") -> LiveEngine:
    ds = make_preset("8gaussians-labelled")
    cfg = RunConfig(data=ds.name, model=ModelConfig(width=16, depth=2, classes=ds.classes if classes else ()),
                    loss=LossConfig(name=loss), train=TrainConfig(steps=1))
    return LiveEngine(ds, cfg, HEUN if loss == "fm" else None, n_particles=1000, use_reference_score=True)


def test_particles_asked_for_a_class_follow_the_exact_guided_score_and_move_with_w():
    eng = _engine()
    eng.set_guidance(1, 0.0)
    eng.advance(eng.sampler.n_steps)
    w0 = eng.particles_data()
    plain = class_mode_stats(w0, eng.dataset.gmm, 1)
    assert plain["on_class"] > 0.95  # exact score, Heun 32: 98% measured
    eng.reset_particles()
    eng.set_guidance(1, 4.0)
    eng.advance(eng.sampler.n_steps)
    frame = eng.frame(None)
    assert frame.guide_class == 1 and frame.guidance == 4.0
    guided = class_mode_stats(frame.particles, eng.dataset.gmm, 1)
    assert guided["spread"] < 0.85 * plain["spread"]  # the lesson's measurement: 0.71 of the class's own
    assert np.abs(frame.particles - w0).max() > 0.1  # same starts, other score: the particles moved


def test_the_true_field_is_the_exact_guided_score():
    eng = _engine(loss="ncsn")  # a score net: the field view draws the score itself
    view = FieldView(bounds=((-3.0, 3.0), (-3.0, 3.0)), resolution=8, sigma=0.5)
    plain = eng.true_field(view).vectors
    eng.set_guidance(0, 3.0)
    guided = eng.true_field(view)
    x = torch.as_tensor(eng.standardizer.forward(guided.positions), dtype=torch.float32)
    exact = guided_reference_fn(eng.dataset, eng.standardizer, 0, 3.0, eng.process)(x, torch.full((len(x),), 0.5))
    assert np.allclose(guided.vectors, eng.standardizer.score_to_data(exact).numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(plain, guided.vectors)


def test_a_class_on_an_unconditional_model_is_one_sentence():
    eng = _engine(classes=False)
    with pytest.raises(ConfigError, match="not class-conditional"):
        eng.set_guidance(0, 1.0)
    events = []
    engine = Engine(events.append)
    engine.handle([SetEngine(EngineSpec(eng.dataset, eng.config, HEUN, 100)), SetGuidance(0, 1.0)])
    assert any(isinstance(e, Failed) and "not class-conditional" in e.message for e in events)

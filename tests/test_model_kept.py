"""The core of "work is never lost": which changes need a new model, fine-tuning a trained one on
new data or settings (Trainer.retarget, Engine UpdateEngine), and finite blow-ups caught as
divergence."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sgm_core import engine as core
from sgm_core.config import RunConfig, SamplerConfig, fresh_model_reason
from sgm_core.datasets import load_dataset
from sgm_core.errors import ConfigError, TrainingDiverged
from sgm_core.training import Trainer


def small(steps: int = 40, **train) -> RunConfig:
    cfg = RunConfig()
    return replace(cfg, model=replace(cfg.model, width=32, depth=2),
                   train=replace(cfg.train, steps=steps, batch=128, device="cpu", **train))


def test_only_the_net_the_loss_the_device_and_d_need_a_new_model():
    cfg = small()
    assert fresh_model_reason(cfg, replace(cfg, train=replace(cfg.train, lr=1.0, batch=7, steps=9, ema=0.5)), 2, 2) is None
    assert fresh_model_reason(cfg, replace(cfg, noise=replace(cfg.noise, sigma_max=3.0, n_levels=5)), 2, 2) is None
    assert fresh_model_reason(cfg, cfg, 2, 3) == "the data changed from 2D to 3D"
    assert fresh_model_reason(cfg, replace(cfg, model=replace(cfg.model, width=64)), 2, 2) == \
        "the network's shape changed"
    assert fresh_model_reason(cfg, replace(cfg, loss=replace(cfg.loss, name="dsm")), 2, 2) == \
        "the loss changed from ncsn to dsm"


def test_retarget_keeps_weights_adam_step_and_losses_and_refits_the_standardiser():
    t = Trainer(load_dataset("8gaussians", n_points=500), small())
    t.run(30)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    adam = {k: v.clone() for k, v in t.optimizer.state[t._params[0]].items()}
    other = load_dataset("moons", n_points=500)
    t.retarget(other, replace(t.config, train=replace(t.config.train, lr=1e-4)))
    assert t.step == 30 and len(t.loss_history()) == 30
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    assert all(torch.equal(adam[k], v) for k, v in t.optimizer.state[t._params[0]].items())
    assert t.standardizer.scale == pytest.approx(other.standardizer().scale)
    t.run(5)
    assert t.step == 35
    with pytest.raises(ConfigError, match="cannot keep the model: the data changed from 2D to 3D"):
        t.retarget(load_dataset("helix", n_points=500), t.config)


def test_a_finite_blow_up_is_divergence_and_the_good_model_returns():
    t = Trainer(load_dataset("8gaussians", n_points=500), small(steps=100_000))
    t.run(20)
    t.mark_good()
    good = {k: v.clone() for k, v in t.model.state_dict().items()}
    with torch.no_grad():
        next(t.model.parameters()).mul_(1e12)  # finite, but the loss is ~1e20 times the first one
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 21 \(loss .*\); the last good model "
                                               r"\(step 20\) is back"):
        t.run(5)
    assert t.step == 20 and all(torch.equal(good[k], v) for k, v in t.model.state_dict().items())


def test_update_engine_keeps_the_model_and_a_new_loss_rebuilds():
    events: list[object] = []
    e = core.Engine(events.append)
    ds = load_dataset("8gaussians", n_points=500)
    spec = core.EngineSpec(ds, small(), SamplerConfig(name="annealed"), 50)
    e.handle([core.SetEngine(spec), core.Train()])
    while e.state.training:
        e.work()
    model = e.engine
    assert model.trainer.step == 40
    moons = load_dataset("moons", n_points=500)
    e.handle([core.UpdateEngine(replace(spec, dataset=moons))])
    assert e.engine is model and model.trainer.step == 40 and model.dataset is moons
    e.handle([core.UpdateEngine(replace(spec, dataset=None))])  # an undone load: the model waits
    assert e.engine is model
    e.handle([core.UpdateEngine(replace(spec, config=replace(spec.config, loss=replace(spec.config.loss, name="dsm"))))])
    assert e.engine is not model and e.engine.trainer.step == 0

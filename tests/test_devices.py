"""The accelerator paths: every loss, sampler, the live engine, sessions and the metrics on each
device this machine has (the CPU always; CUDA and MPS where torch sees them). On a CPU-only
machine these run on the CPU and check the tests themselves; on a lent GPU (`pytest
tests/test_devices.py`) the same assertions run every CUDA path, which the rest of the suite
never reaches. Tiny nets and a few steps: what is checked is that the work runs where it should
and gives finite numbers and CPU arrays to the GUI, not how well it learns."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sgm_core.config import LossConfig, ModelConfig, RunConfig, SamplerConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.live import FieldView, LiveEngine, default_bounds
from sgm_core.losses import LOSSES, loss_spec
from sgm_core.samplers import SAMPLER_SPECS, make_sampler, run_sampler
from sgm_core.training import Trainer, device_label, resolve_device

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available() else [])
STEPS = 3


def tiny(loss: str, device: str, **train) -> RunConfig:
    return RunConfig(loss=LossConfig(name=loss), model=ModelConfig(width=16, depth=2),
                     train=TrainConfig(batch=64, steps=100, device=device, **train))


def on(t: torch.Tensor, device: str) -> bool:
    return t.device.type == torch.device(device).type


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_trains_on_the_device(loss, device):
    trainer = Trainer(make_preset("8gaussians"), tiny(loss, device))
    trainer.run(STEPS)
    assert trainer.step == STEPS and np.isfinite(trainer.losses).all()
    assert all(on(p, device) for p in trainer.model.parameters())
    assert all(on(p, device) for p in trainer.ema_model.parameters())


def _sampleable(loss: str) -> list[str]:
    """The samplers a score net of this loss can run (mala needs an energy net)."""
    spec = loss_spec(loss)
    names = []
    for name, sampler in SAMPLER_SPECS.items():
        if sampler.needs_density:
            continue
        try:
            make_sampler(SamplerConfig(name=name, steps=2), tiny(loss, "cpu").noise, spec.process(tiny(loss, "cpu").noise))
        except Exception:  # noqa: BLE001 - a sampler this process cannot use says so; it is not run
            continue
        names.append(name)
    return names


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loss", ["ncsn", "vp-sde", "fm", "ddpm", "edm"])
def test_every_sampler_runs_on_the_device(loss, device):
    trainer = Trainer(make_preset("8gaussians"), tiny(loss, device))
    trainer.run(STEPS)
    names = _sampleable(loss)
    assert names
    for name in names:
        sampler = make_sampler(SamplerConfig(name=name, steps=2), trainer.config.noise, trainer.process)
        g = torch.Generator(device=torch.device(device)).manual_seed(0) if device != "mps" else torch.Generator()
        x = run_sampler(sampler, trainer.score_fn(), sampler.init(64, 2, g).to(device), g)
        assert on(x, device) and torch.isfinite(x).all(), (loss, name)


@pytest.mark.parametrize("device", DEVICES)
def test_the_live_engine_trains_moves_particles_and_hands_the_gui_cpu_arrays(device):
    data = make_preset("8gaussians")
    eng = LiveEngine(data, tiny("ncsn", device), SamplerConfig(name="annealed", steps=5), n_particles=500)
    eng.train(STEPS)
    eng.advance(3)
    assert on(eng.particles, device) and eng.sampler_step == 3
    view = FieldView(default_bounds(data.points), resolution=8, sigma=0.2)
    frame = eng.frame(view, training=True)
    assert frame.device == device_label(resolve_device(device))
    for array in (frame.particles, frame.field.positions, frame.field.vectors, frame.losses):
        assert isinstance(array, np.ndarray) and np.isfinite(array).all()
    assert frame.score_error is not None and np.isfinite(frame.score_error)
    metrics = eng.sample_metrics(max_points=200)
    assert np.isfinite(metrics["sw_ratio"]) and np.isfinite(metrics["mmd"])


@pytest.mark.parametrize("device", DEVICES)
def test_a_session_written_on_the_device_opens_on_the_cpu_with_the_same_weights(device, tmp_path):
    from sgm_core.sessions import load_session, save_session

    data = make_preset("8gaussians")
    eng = LiveEngine(data, tiny("ncsn", device), n_particles=100)
    eng.train(STEPS)
    path = tmp_path / "run.sgm"
    save_session(path, eng.export_state(data.points, "8gaussians"))
    state = load_session(path)
    cpu = LiveEngine.from_state(data, replace(state, run=state.run.with_(train=replace(state.run.train, device="cpu"))))
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    sigma = torch.full((32,), 0.3)
    with torch.no_grad():
        here = cpu.trainer.score_fn()(x, sigma)
        there = eng.trainer.score_fn()(x.to(device), sigma.to(device)).cpu()
    torch.testing.assert_close(here, there, atol=1e-5, rtol=1e-4)  # the same weights, on either device
    assert cpu.trainer.step == STEPS


@pytest.mark.parametrize("device", DEVICES)
def test_the_api_trains_on_the_device_and_samples_to_numpy(device, tmp_path):
    import sgm_core as sgm

    run = sgm.train("moons", loss="fm", steps=STEPS, device=device, width=16, depth=2, batch=64, progress=False)
    samples = run.sample(100, steps=4)
    assert isinstance(samples, np.ndarray) and samples.shape == (100, 2) and np.isfinite(samples).all()
    run.save(tmp_path / "run")
    back = sgm.load(tmp_path / "run")  # loads on the CPU, wherever it was trained
    assert np.isfinite(back.sample(50, steps=4)).all()

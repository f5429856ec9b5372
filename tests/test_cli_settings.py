"""`sgm train`'s settings (issue 15): every setting the window has, a --config file under the
flags, `--sigma-max auto`, `--source` for flows; `sgm sample`'s impossible combinations. Every bad
value is exit 2 and one line, and leaves no run directory behind."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
import torch
from cli_helpers import one_thread, run_cli  # noqa: F401 - one_thread is an autouse fixture

from sgm_core import losses
from sgm_core.config import LossConfig, RunConfig
from sgm_core.datasets import load_dataset
from sgm_core.noise import LinearInterpolant, sigma_max_from_data

TINY = ["--steps", "20", "--batch", "32", "--width", "8", "--depth", "1", "--device", "cpu"]




def saved_config(run: Path) -> RunConfig:
    return RunConfig.from_json(json.loads((run / "config.json").read_text())["config"])


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], lines
    for word in words:
        assert word in lines[0], lines[0]


def test_every_flag_reaches_its_field(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "8gaussians", "--out", run, "--steps", "20", "--batch", "32", "--width", "12",
                            "--depth", "2", "--ema", "0.9", "--lr", "1e-3", "--sigma-min", "0.02", "--sigma-max", "4",
                            "--levels", "5", "--sigma", "0.2", "--timesteps", "100", "--schedule", "cosine",
                            "--t-sampling", "logit-normal",
                            "--model", "energy", "--seed", "3", "--device", "cpu"], capsys)
    assert code == 0, err
    c = saved_config(run)
    assert (c.model.kind, c.model.width, c.model.depth) == ("energy", 12, 2)
    assert (c.noise.sigma_min, c.noise.sigma_max, c.noise.n_levels, c.noise.sigma) == (0.02, 4.0, 5, 0.2)
    assert (c.noise.timesteps, c.noise.schedule, c.noise.t_sampling) == (100, "cosine", "logit-normal")
    assert (c.train.steps, c.train.batch, c.train.lr, c.train.ema, c.train.seed) == (20, 32, 1e-3, 0.9, 3)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_config_file_sets_the_run_and_flags_override_it(tmp_path, capsys, suffix: str) -> None:
    settings = {"data": "moons", "model": {"width": 8, "depth": 1}, "noise": {"n_levels": 4, "sigma_max": 5.0},
                "loss": {"name": "ve-sde"}, "train": {"steps": 10, "batch": 16, "device": "cpu"}}
    if suffix == ".json":
        text = json.dumps(settings)
    else:
        text = ('data = "moons"\n[model]\nwidth = 8\ndepth = 1\n[noise]\nn_levels = 4\nsigma_max = 5.0\n'
                '[loss]\nname = "ve-sde"\n[train]\nsteps = 10\nbatch = 16\ndevice = "cpu"\n')
    config = tmp_path / f"run{suffix}"
    config.write_text(text)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--config", config, "--out", run, "--width", "6", "--steps", "12"], capsys)
    assert code == 0, err
    c = saved_config(run)
    assert c.data == "moons" and c.loss.name == "ve-sde" and (c.noise.n_levels, c.noise.sigma_max) == (4, 5.0)
    assert (c.model.width, c.model.depth) == (6, 1) and (c.train.steps, c.train.batch) == (12, 16)  # flags win


def test_sigma_max_auto_is_the_standardised_data_diameter(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "8gaussians", "--out", run, "--sigma-max", "auto", *TINY], capsys)
    assert code == 0, err
    data = load_dataset("8gaussians", seed=0)
    expected = sigma_max_from_data(data.standardizer().forward(data.points), seed=0)
    assert saved_config(run).noise.sigma_max == pytest.approx(expected)
    assert 2.5 < expected < 4.5  # 8 modes on a circle: the diameter in standardised units


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_SETTINGS = {
    "width 0": (["--width", "0"], "width"),
    "depth not a number": (["--depth", "two"], "--depth"),
    "ema 1": (["--ema", "1"], "ema"),
    "negative sigma-min": (["--sigma-min", "-0.1"], "sigma_min"),
    "sigma-max below sigma-min": (["--sigma-min", "2", "--sigma-max", "1"], "sigma_min < sigma_max"),
    "sigma-max a word": (["--sigma-max", "big"], "--sigma-max"),
    "one level": (["--levels", "1"], "n_levels"),
    "zero timesteps": (["--timesteps", "0"], "timesteps"),
    "unknown schedule": (["--schedule", "quadratic"], "--schedule"),
    "unknown time sampling": (["--t-sampling", "beta"], "--t-sampling"),
    "source on ncsn": (["--source", "moons"], "--source needs --loss fm or ot-fm"),
    "missing config": (["--config", "nope.toml"], "nope.toml"),
    "config of another kind": (["--config", "CONFIG.yaml"], ".toml or .json"),
    "config with a bad value": (["--config", "BAD.toml"], "n_levels"),
    "config with an unknown key": (["--config", "UNKNOWN.json"], "colour"),
    "config not toml": (["--config", "BROKEN.toml"], "TOML"),
    "config nested 5,000 deep (was RecursionError)": (["--config", "DEEP.toml"], "DEEP.toml is nested too deeply"),
    "config with a 5,000-digit integer": (["--config", "HUGE.toml"], "HUGE.toml holds a value this program cannot read"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_settings_exit_2_with_one_line_and_no_run(tmp_path, capsys, case: str) -> None:
    files = {"CONFIG.yaml": "width: 3\n", "BAD.toml": "[noise]\nn_levels = -3\n", "UNKNOWN.json": '{"model": {"colour": 1}}',
             "BROKEN.toml": "[model\nwidth = 3\n", "DEEP.toml": "[train]\nsteps = " + "[" * 5000 + "]" * 5000 + "\n",
             "HUGE.toml": "[train]\nlr = 1" + "0" * 5000 + "\n"}
    args, word = BAD_SETTINGS[case]
    args = [str(write(tmp_path / a, files[a])) if a in files else a for a in args]
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "8gaussians", "--out", run, *TINY, *args], capsys)
    assert_one_line_error(code, err, word)
    assert not run.exists()


def test_train_without_data_anywhere_is_one_line(tmp_path, capsys) -> None:
    code, _, err = run_cli(["train", "--out", tmp_path / "run", *TINY], capsys)
    assert_one_line_error(code, err, "DATA")


def fake_flow_loss(seen: list) -> losses.LossSpec:
    """A stand-in for fm (being written elsewhere): a loss on the linear interpolant whose binder
    records the LossConfig it is given."""
    def bind(loss: LossConfig, process):
        seen.append(loss)
        return lambda f, x, g: (f(x, torch.full((len(x),), 0.5)) ** 2).sum(1)
    return losses.LossSpec("flow", "test flow", "", LinearInterpolant, bind, "heun")


def test_source_reaches_the_loss_binder_through_loss_config(tmp_path, capsys, monkeypatch) -> None:
    seen: list[LossConfig] = []
    monkeypatch.setattr(losses, "LOSSES", MappingProxyType({**losses.LOSSES, "flow": fake_flow_loss(seen)}))
    source = tmp_path / "source.npy"
    np.save(source, np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32))
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "moons", "--loss", "flow", "--source", source, "--out", run, *TINY], capsys)
    assert code == 0, err
    assert seen and seen[0].source == str(source)
    assert saved_config(run).loss.source == str(source)  # kept with the run

    code, _, err = run_cli(["train", "moons", "--loss", "flow", "--source", "gmm3d", "--out", tmp_path / "r2", *TINY],
                           capsys)
    assert_one_line_error(code, err, "3D")  # a 3D source for 2D data
    code, _, err = run_cli(["train", "moons", "--loss", "flow", "--source", tmp_path / "none.npy",
                            "--out", tmp_path / "r3", *TINY], capsys)
    assert_one_line_error(code, err)
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    from sgm_core.cli import main

    folder = tmp_path_factory.mktemp("runs")
    for loss in ("sm", "ncsn"):
        assert main(["train", "8gaussians", "--out", str(folder / loss), "--loss", loss, *TINY]) == 0
    return folder


@pytest.mark.parametrize(("run", "sampler", "word"), [
    ("sm", "ode", "no noise path"), ("sm", "heun", "no noise path"), ("sm", "dpm-solver", "no noise path"),
    ("ncsn", "mala", "energy net"), ("ncsn", "nope", "unknown sampler"),
])
def test_impossible_sampler_for_a_run_is_one_line(runs, tmp_path, capsys, run: str, sampler: str, word: str) -> None:
    out = tmp_path / "x.npy"
    code, _, err = run_cli(["sample", runs / run, "--out", out, "--sampler", sampler, "--n", "10"], capsys)
    assert_one_line_error(code, err, word)
    assert not out.exists()


@pytest.mark.parametrize("sampler", ["heun", "euler", "dpm-solver", "ode", "sde", "annealed", "langevin"])
def test_steps_is_each_samplers_step_count(runs, tmp_path, capsys, sampler: str) -> None:
    out = tmp_path / "x.npy"
    code, _, err = run_cli(["sample", runs / "ncsn", "--out", out, "--sampler", sampler, "--steps", "3", "--n", "20"],
                           capsys)
    assert code == 0, err
    assert np.load(out).shape == (20, 2)


def test_mala_on_an_energy_run_reports_its_acceptance_rate(tmp_path, capsys) -> None:
    run, out = tmp_path / "energy", tmp_path / "x.npy"
    assert run_cli(["train", "8gaussians", "--out", run, "--model", "energy", *TINY], capsys)[0] == 0
    code, _, err = run_cli(["sample", run, "--out", out, "--sampler", "mala", "--steps", "20", "--n", "50"], capsys)
    assert code == 0, err
    assert "(mala, " in err and "% of proposals accepted" in err
    assert np.load(out).shape == (50, 2)

"""`sgm train --loss fm|ot-fm|ddpm|edm` then `sgm sample` with their samplers; impossible
combinations (an SDE/ODE sampler on a run without a noise path) are exit 2 and one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import one_thread  # noqa: F401 - one_thread is an autouse fixture
from cli_helpers import run_cli as sgm

TINY = ["--steps", "30", "--batch", "64"]




@pytest.mark.parametrize(("loss", "samplers"), [
    ("fm", ["heun", "ddim", "euler"]),
    ("ot-fm", ["heun"]),
    ("ddpm", ["ddpm", "ddim", "heun"]),
    ("edm", ["heun", "ddim"]),
])
def test_new_losses_train_and_sample_end_to_end(tmp_path, capsys, loss: str, samplers: list[str]) -> None:
    run = tmp_path / "run"
    code, _, err = sgm(["train", "8gaussians", "--out", run, "--loss", loss, *TINY], capsys)
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["config"]["loss"]["name"] == loss
    out = tmp_path / "default.npy"
    code, _, err = sgm(["sample", run, "--out", out, "--n", "50", "--steps", "4"], capsys)
    assert code == 0, err
    assert {"fm": "heun", "ot-fm": "heun", "ddpm": "ddpm", "edm": "heun"}[loss] in err  # the loss's own sampler
    for name in samplers:
        out = tmp_path / f"{name}.npy"
        code, _, err = sgm(["sample", run, "--out", out, "--n", "50", "--sampler", name, "--steps", "4"], capsys)
        assert code == 0, err
        x = np.load(out)
        assert x.shape == (50, 2) and np.isfinite(x).all()


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "heun"])
def test_path_samplers_on_an_sm_run_exit_2_with_one_line(tmp_path, capsys, sampler: str) -> None:
    run = tmp_path / "run"
    assert sgm(["train", "8gaussians", "--out", run, "--loss", "sm", *TINY], capsys)[0] == 0
    out = tmp_path / "s.npy"
    code, _, err = sgm(["sample", run, "--out", out, "--sampler", sampler], capsys)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no noise path" in lines[0], lines
    assert not out.exists()

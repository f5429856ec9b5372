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

"""Steps versus quality (sgm_core.steps, `sgm steps`): rows per sampler and step count, quality
that improves with steps on analytic truth, a CSV and a PNG that open, one-line refusals."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest
import torch
from cli_helpers import one_thread, run_cli  # noqa: F401 - one_thread is an autouse fixture

from sgm_core.config import NoiseConfig
from sgm_core.datasets import make_preset
from sgm_core.errors import ConfigError
from sgm_core.guidance import Guided
from sgm_core.noise import VESDE
from sgm_core.param import SCORE
from sgm_core.steps import COLUMNS, plot_rows, steps_vs_quality
from sgm_core.truth import reference_score_fn

N = 1000  # samples per cell: SW ratio's noise (~0.1) is far below heun's 1-step vs 32-step gap (measured ~5 vs ~1.1)




def truth_rows(samplers, steps):
    """The exact 8-Gaussians score on the VE SDE: quality depends on the solver alone."""
    dataset = make_preset("8gaussians", seed=0)
    standardizer = dataset.standardizer()
    process = VESDE.from_noise(NoiseConfig())
    score, kind = reference_score_fn(dataset, standardizer, kind=process)
    assert kind == "analytic"
    return steps_vs_quality(score, process, NoiseConfig(), dataset, standardizer, samplers, steps, n=N, seed=0)


def test_heun_improves_with_steps_on_the_exact_score() -> None:
    rows = truth_rows(["heun", "euler"], [1, 32])
    assert [(r.sampler, r.steps) for r in rows] == [("heun", 1), ("heun", 32), ("euler", 1), ("euler", 32)]
    by = {(r.sampler, r.steps): r for r in rows}
    assert by["heun", 32].sw_ratio < by["heun", 1].sw_ratio
    assert by["heun", 32].mode_weight_error < 0.05  # the exact score, 64 evaluations: the mixture's weights
    assert by["heun", 1].nfe == 2 and by["heun", 32].nfe == 64 and by["euler", 32].nfe == 32  # counted calls
    image = plot_rows(rows)
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 4  # lines in several colours, not a blank page


GIVEN_X = 1.25  # on 6gaussians-unequal the line x = 1.25 meets two modes, truth weights 0.25 / 0.75
ODE_CONDITIONAL_BIAS = 0.09  # heun holding x with the exact joint score: weight error 0.07-0.09 (docs/conditioning.md)


def test_conditional_reference_is_the_analytic_conditional() -> None:
    """`sgm steps --given`'s reference: draws on the line x = x0 (data units) whose y-weights are
    the preset mixture's p(y | x0), and weights for the samples from the same conditional."""
    import torch

    from sgm_core.conditioning import Condition, conditional_reference, conditional_weights

    data = make_preset("6gaussians-unequal")
    std = data.standardizer()
    cond = Condition.from_data({0: GIVEN_X}, std, 2)
    reference, truth = conditional_reference(data, std, cond)
    x = reference.sample(4000, torch.Generator().manual_seed(1))
    np.testing.assert_allclose(x[:, 0].numpy(), GIVEN_X, atol=1e-5)
    exact = data.gmm.conditional([0], [GIVEN_X])  # data units
    idx = exact.responsibilities(x[:, 1:].double()).argmax(1)
    got = torch.bincount(idx, minlength=exact.n_components).double() / len(x)
    assert float((got - exact.weights).abs().max()) < 0.02  # 4000 exact draws: SE ~0.007
    got, want = conditional_weights(truth, cond, torch.as_tensor(std.forward(x.numpy())))
    assert float((got - want).abs().max()) < 0.02
    assert sorted(np.round(want[want > 0.01].numpy(), 2).tolist()) == [0.25, 0.75]


def test_steps_given_scores_the_conditional_against_its_truth() -> None:
    """Heun on the exact VE score with x held at x0: one step misses p(y | x0), 32 steps come within
    the held ODE's known bias; SW ratio against the conditional truth falls with the steps."""
    from sgm_core.conditioning import Condition

    dataset = make_preset("6gaussians-unequal", seed=0)
    standardizer = dataset.standardizer()
    process = VESDE.from_noise(NoiseConfig())
    score, _ = reference_score_fn(dataset, standardizer, kind=process)
    cond = Condition.from_data({0: GIVEN_X}, standardizer, 2)
    one, many = steps_vs_quality(score, process, NoiseConfig(), dataset, standardizer, ["heun"], [1, 32], n=2000,
                                 seed=0, condition=cond)
    assert (one.nfe, many.nfe) == (2, 64)  # the reduced score is counted as the joint one
    assert many.mode_weight_error < ODE_CONDITIONAL_BIAS < one.mode_weight_error, (one, many)  # measured 0.071, 0.229
    assert many.sw_ratio < 0.5 * one.sw_ratio and many.mmd < 0.2 * one.mmd, (one, many)  # 2.6 vs 6.6; 0.013 vs 0.10


class ExactClassNet(torch.nn.Module):
    """A labelled mixture's exact scores as a class-conditional net: s(x, sigma, c) is the score of
    p_sigma(x | c) (`GaussianMixture.given_class`), the null class the whole mixture's."""

    output = SCORE

    def __init__(self, mixture) -> None:  # noqa: ANN001 - GaussianMixture (standardised coordinates)
        super().__init__()
        self.mixture, self.dim = mixture, mixture.means.shape[1]
        self.n_classes = int(mixture.labels.max()) + 1
        self.null_class = self.n_classes

    def forward(self, x, sigma, labels):  # noqa: ANN001, ANN201
        labels = torch.as_tensor(labels).reshape(-1).expand(len(x))
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1).expand(len(x))
        out = torch.empty_like(x)
        for c in labels.unique().tolist():
            rows = labels == c
            own = self.mixture if c == self.null_class else self.mixture.given_class(c)
            out[rows] = own.score(x[rows].double(), sigma[rows].double()[:, None]).to(x.dtype)
        return out


def test_steps_with_a_class_sample_it_and_score_it_against_that_class() -> None:
    """On the exact class-conditional scores of 8gaussians-labelled (class 1: four of the eight
    modes), heun samples class 1 and is scored against class 1: its four modes' weights and its
    own draws. The same samples against the whole data miss half the modes' weight."""
    from sgm_core.conditioning import reference_mixture

    dataset = make_preset("8gaussians-labelled", seed=0)
    standardizer = dataset.standardizer()
    process = VESDE.from_noise(NoiseConfig())
    mixture, kind = reference_mixture(dataset, standardizer)
    assert kind == "analytic"
    net = ExactClassNet(mixture)
    (row,) = steps_vs_quality(net, process, NoiseConfig(), dataset, standardizer, ["heun"], [32], n=N, seed=0,
                              guide=(1, 0.0))
    assert row.mode_weight_error < 0.05 and row.sw_ratio < 1.6, row  # class 1 as it is: measured 0.026, 1.11
    class_score = Guided(net, 1, 0.0)  # the same score, as a plain (unguided) score function
    (whole,) = steps_vs_quality(class_score, process, NoiseConfig(), dataset, standardizer, ["heun"], [32], n=N, seed=0)
    assert whole.mode_weight_error > 0.1 and whole.sw_ratio > 2 * row.sw_ratio, whole  # 4 of 8 modes empty: 0.145, 4.6
    (sharp,) = steps_vs_quality(net, process, NoiseConfig(), dataset, standardizer, ["heun"], [32], n=N, seed=0,
                                guide=(1, 4.0))
    assert math.isfinite(sharp.sw_ratio) and sharp.nfe == 64  # guided: one batched call per evaluation


def test_unknown_sampler_is_one_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown sampler 'ddim-typo'"):
        truth_rows(["heun", "ddim-typo"], [1])


TINY = ["--steps", "40", "--batch", "64", "--width", "16", "--depth", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("steps")
    from sgm_core.cli import main

    assert main(["train", "8gaussians", "--out", str(folder / "ve"), "--loss", "ve-sde", *TINY]) == 0
    assert main(["train", "8gaussians", "--out", str(folder / "sm"), "--loss", "sm", *TINY]) == 0
    assert main(["train", "8gaussians-labelled", "--out", str(folder / "labelled"), "--loss", "ve-sde", "--conditional",
                 *TINY]) == 0
    return folder


def test_sgm_steps_writes_a_table_and_a_plot(trained, tmp_path, capsys) -> None:
    table, figure = tmp_path / "table.csv", tmp_path / "fig.png"
    code, out, err = run_cli(["steps", trained / "ve", "--samplers", "heun,euler,dpm-solver", "--steps", "1,2,4",
                              "--out", table, "--plot", figure, "--n", 200], capsys)
    assert code == 0, err
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 9
    assert [(r["sampler"], int(r["steps"])) for r in rows[:3]] == [("heun", 1), ("heun", 2), ("heun", 4)]
    assert all(math.isfinite(float(r["sw_ratio"])) and int(r["nfe"]) >= int(r["steps"]) for r in rows)
    from PIL import Image

    with Image.open(figure) as im:
        im.load()
        assert im.format == "PNG" and im.size[0] > 500
    assert len(out.strip().splitlines()) == 9


def test_sgm_steps_given_samples_the_conditional(trained, tmp_path, capsys) -> None:
    table = tmp_path / "given.csv"
    code, out, err = run_cli(["steps", trained / "ve", "--samplers", "heun", "--steps", "1,4", "--out", table,
                              "--n", 200, "--given", "x=0.5"], capsys)
    assert code == 0, err
    assert "given x = 0.5" in err
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["sampler"], int(r["steps"])) for r in rows] == [("heun", 1), ("heun", 4)]
    assert all(math.isfinite(float(r["sw_ratio"])) and math.isfinite(float(r["mode_weight_error"])) for r in rows)


def test_sgm_steps_class_samples_that_class_with_guidance(trained, tmp_path, capsys) -> None:
    table = tmp_path / "class.csv"
    code, out, err = run_cli(["steps", trained / "labelled", "--samplers", "heun", "--steps", "1,4", "--out", table,
                              "--n", 200, "--class", "1", "--guidance", "2"], capsys)
    assert code == 0, err
    assert "class 1, guidance 2, scored against that class" in err
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["sampler"], int(r["steps"]), int(r["nfe"])) for r in rows] == [("heun", 1, 2), ("heun", 4, 8)]
    assert all(math.isfinite(float(r["sw_ratio"])) and math.isfinite(float(r["mode_weight_error"])) for r in rows)


@pytest.mark.parametrize(("case", "run", "args", "out"), [
    ("a class of an unconditional run", "ve", ["--samplers", "heun", "--class", "1"], "t.csv"),
    ("a class the run lacks", "labelled", ["--samplers", "heun", "--class", "7"], "t.csv"),
    ("guidance without a class", "labelled", ["--samplers", "heun", "--guidance", "2"], "t.csv"),
    ("unknown sampler", "ve", ["--samplers", "heun,nope"], "t.csv"),
    ("zero steps", "ve", ["--samplers", "heun", "--steps", "1,0"], "t.csv"),
    ("not a csv", "ve", ["--samplers", "heun"], "t.txt"),
    ("an ODE sampler on an sm run", "sm", ["--samplers", "heun"], "t.csv"),
    ("a given axis the run lacks", "ve", ["--samplers", "heun", "--given", "z=0"], "t.csv"),
    ("every axis given", "ve", ["--samplers", "heun", "--given", "x=0,y=1"], "t.csv"),
    ("a given that is not a number", "ve", ["--samplers", "heun", "--given", "x=one"], "t.csv"),
    ("a given beyond float32 (was a multinomial traceback)", "ve", ["--samplers", "heun", "--given", "x=1e308"], "t.csv"),
])
def test_sgm_steps_refuses_in_one_line(trained, tmp_path, capsys, case, run, args, out) -> None:
    code, _, err = run_cli(["steps", trained / run, *args, "--out", tmp_path / out, "--n", 50], capsys)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "error" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("case", "out", "plot", "words"), [
    ("a missing folder", "nodir/t.csv", None, "the folder '{tmp}/nodir' does not exist"),
    ("the plot's folder missing", "t.csv", "nodir/p.png", "cannot write '{tmp}/nodir/p.png': the folder"),
    ("a directory as the table", "adir.csv", None, "cannot write '{tmp}/adir.csv': it is a directory"),
    ("under a regular file", "afile/t.csv", None, "the folder '{tmp}/afile' is not a folder"),
])
def test_sgm_steps_checks_its_outputs_before_sampling(trained, tmp_path, capsys, monkeypatch, case, out, plot,
                                                      words) -> None:
    """The outputs used to be tried only after every sampler ran, and the error named a temp file."""
    from sgm_core import steps

    (tmp_path / "adir.csv").mkdir()
    (tmp_path / "afile").write_text("mine")
    ran = []
    monkeypatch.setattr(steps, "run_steps_vs_quality", lambda *a, **k: ran.append(1))
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["--plot", tmp_path / plot] if plot else []
    code, _, err = run_cli(["steps", trained / "ve", "--samplers", "heun", "--out", tmp_path / out, *args, "--n", 50],
                           capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words.format(tmp=tmp_path) in err, err
    assert ".tmp-" not in err and ran == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (tmp_path / "afile").read_text() == "mine"


def test_sgm_steps_writes_no_table_when_its_plot_fails(trained, tmp_path, capsys, monkeypatch) -> None:
    """A plot that fails to write (a full disk) used to leave the new table behind; now both or
    neither are written, the old table stays byte for byte, and the message names the plot."""
    import errno

    from sgm_core import steps

    def full_disk(f):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real = steps._png_write
    monkeypatch.setattr(steps, "_png_write", lambda image, path: (path, full_disk, *real(image, path)[2:]))
    table, figure = tmp_path / "t.csv", tmp_path / "p.png"
    table.write_text("my old table\n")
    code, _, err = run_cli(["steps", trained / "ve", "--samplers", "heun", "--steps", "1", "--out", table,
                            "--plot", figure, "--n", 50], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == f"sgm: error: cannot write '{figure}': No space left on device"
    assert table.read_text() == "my old table\n" and sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]

"""Classifier-free guidance: the guided-score formula against the exact labelled mixture, the
`Guided` wrapper over class-conditional nets of every loss family, label dropout, checkpoints
(new and old), and the CLI's --conditional / --class / --guidance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import one_thread, run_cli  # noqa: F401 (one_thread: an autouse fixture)

from sgm_core.config import LossConfig, ModelConfig, RunConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.errors import ConfigError, DataError
from sgm_core.gmm import GaussianMixture
from sgm_core.guidance import ExactGuided, Guided, drop_labels, guided
from sgm_core.losses import LOSSES
from sgm_core.noise import VPSDE
from sgm_core.training import Trainer
from sgm_core.truth import guided_reference_fn, reference_score_fn, scaled_score

ATOL = 1e-9  # float64 mixture arithmetic


def _mixture() -> GaussianMixture:
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, 1.5], [0.5, -1.0]], dtype=torch.float64)
    return GaussianMixture.isotropic(torch.tensor([0.1, 0.2, 0.3, 0.4]), means, torch.tensor([0.3, 0.5, 0.4, 0.6]),
                                     labels=torch.tensor([0, 1, 0, 1]))


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
@pytest.mark.parametrize("sigma", [0.05, 0.5, 2.0])
def test_exact_guided_score_is_the_formula_and_the_gradient_of_its_log_density(w, sigma):
    gmm = _mixture()
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    uncond, cond = gmm.score(x, sigma), gmm.given_class(1).score(x, sigma)
    exact = ExactGuided(gmm, 1, w)
    assert torch.allclose(exact(x, sigma), uncond + (1 + w) * (cond - uncond), atol=ATOL)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(exact.log_density(xr, torch.tensor([sigma])).sum(), xr)
    assert torch.allclose(grad, exact(x, sigma), atol=1e-8)  # (1+w) log p(x|c) - w log p(x) has that gradient
    if w == 0:
        assert torch.allclose(exact(x, sigma), cond, atol=ATOL)  # w = 0 is the plain conditional


def test_guided_truth_follows_a_process_with_a_mean_coefficient():
    ds = make_preset("8gaussians-labelled")
    st = ds.standardizer()
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(2))
    sigma = torch.full((40,), 0.6)
    gmm = ds.gmm.transformed(torch.tensor(st.shift), st.scale)
    for kind in ("vp", LOSSES["fm"].process(RunConfig().noise)):
        got = guided_reference_fn(ds, st, 0, 2.0, kind)(x, sigma)
        uncond = reference_score_fn(ds, st, kind=kind)[0](x, sigma)
        process = VPSDE() if kind == "vp" else kind
        cond = scaled_score(lambda a, s: gmm.given_class(0).score(a, s), process.coef_of_std)(x, sigma)
        assert torch.allclose(got, uncond + 3.0 * (cond - uncond), atol=1e-5)  # float32 in and out


def _net(loss: str = "ncsn", kind: str = "score"):
    ds = make_preset("8gaussians-labelled", n_points=200)
    cfg = RunConfig(model=ModelConfig(kind=kind, width=16, depth=2, classes=ds.classes), loss=LossConfig(name=loss))
    return LOSSES[loss].make_model(2, cfg.model, cfg.noise)


def test_guided_net_is_the_formula_in_one_batched_call():
    net = _net()
    x, sigma = torch.randn(30, 2), torch.full((30,), 0.4)
    with torch.no_grad():
        cond, null = net(x, sigma, 1), net(x, sigma, net.null_class)
        assert torch.equal(net(x, sigma), null)  # called without a class: the null class
        assert torch.allclose(Guided(net, 1, 2.5)(x, sigma), null + 3.5 * (cond - null), atol=1e-5)
        assert torch.equal(Guided(net, 1, 0.0)(x, sigma), cond)
        assert guided(net, None) is net
    with pytest.raises(ValueError):
        Guided(net, 2)  # index 2 is the null class, not a class


def test_guided_energy_net_has_the_guided_energy_and_a_score_net_has_none():
    net = _net(kind="energy")
    x, sigma = torch.randn(10, 2), torch.full((10,), 0.4)
    g = Guided(net, 0, 2.0)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(g.energy(xr, sigma).sum(), xr)
    assert torch.allclose(-grad, g(x, sigma), atol=1e-5)  # the guided score is -grad of the guided energy
    assert not hasattr(Guided(_net(), 0, 2.0), "energy")  # so MALA refuses a score net, as before


def test_drop_labels_drops_with_probability_p():
    labels = torch.zeros(20000, dtype=torch.int64)
    dropped = drop_labels(labels, 0.1, 5, torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) == {0, 5}
    assert abs(float((dropped == 5).double().mean()) - 0.1) < 0.01  # 20,000 draws: std 0.002


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_family_trains_a_class_conditional_net(loss):
    ds = make_preset("8gaussians-labelled", n_points=500)
    cfg = RunConfig(model=ModelConfig(width=16, depth=2, classes=ds.classes), loss=LossConfig(name=loss),
                    train=TrainConfig(steps=3, batch=64))
    trainer = Trainer(ds, cfg)
    before = trainer.model.class_embed.weight.detach().clone()
    records = trainer.run(3)
    assert all(np.isfinite(r.loss) for r in records)
    assert not torch.equal(trainer.model.class_embed.weight, before)  # the class embedding learns
    _, labels = trainer.labelled_batch()
    assert labels is not None and int(labels.max()) <= trainer.model.null_class


def test_a_conditional_config_needs_labelled_data_with_its_classes():
    cfg = RunConfig(model=ModelConfig(width=16, depth=2, classes=("0", "1")), train=TrainConfig(steps=1))
    with pytest.raises(DataError, match="needs labelled data"):
        Trainer(make_preset("moons", n_points=100), cfg)
    other = RunConfig(model=ModelConfig(width=16, depth=2, classes=("a", "b")), train=TrainConfig(steps=1))
    with pytest.raises(DataError, match="are not the model's"):
        Trainer(make_preset("moons-labelled", n_points=100), other)
    with pytest.raises(ConfigError, match="cfg_dropout"):
        TrainConfig(cfg_dropout=1.0)


def test_checkpoints_store_the_classes_and_old_ones_still_load(tmp_path):
    import sgm_core as sgm

    run = sgm.train("moons-labelled", steps=2, width=16, depth=2, conditional=True, progress=False)
    assert run.classes == ("0", "1")
    back = sgm.load(run.save(tmp_path / "cond"))
    assert back.classes == ("0", "1") and np.array_equal(back.labels, run.labels)
    x = torch.randn(5, 2)
    with torch.no_grad():
        assert torch.equal(back.model(x, 0.3, 1), run.model(x, 0.3, 1))
    session = sgm.load(run.save(tmp_path / "cond.sgm"))
    assert session.classes == ("0", "1") and np.array_equal(session.labels, run.labels)
    # A run written before classes existed: its config has no `classes` and no labels.npy.
    plain = sgm.train("moons", steps=2, width=16, depth=2, progress=False).save(tmp_path / "old")
    meta = json.loads((plain / "config.json").read_text())
    del meta["config"]["model"]["classes"], meta["config"]["train"]["cfg_dropout"]
    (plain / "config.json").write_text(json.dumps(meta))
    old = sgm.load(plain)
    assert old.classes == () and old.labels is None and old.sample(10).shape == (10, 2)
    with pytest.raises(ConfigError, match="not class-conditional"):
        old.sample(10, label="0")


def test_cli_conditional_train_and_class_sampling(tmp_path, capsys):
    def cli(*args):
        code, _, err = run_cli(args, capsys)
        return code, err

    run_dir = tmp_path / "run"
    code, err = cli("train", "moons-labelled", "--conditional", "--cfg-dropout", "0.2", "--steps", "5", "--width", "16",
                    "--depth", "2", "--out", str(run_dir))
    assert code == 0, err
    assert json.loads((run_dir / "config.json").read_text())["config"]["train"]["cfg_dropout"] == 0.2
    out = tmp_path / "s.npy"
    code, err = cli("sample", str(run_dir), "--class", "1", "--guidance", "2", "--n", "20", "--out", str(out))
    assert code == 0, err
    assert np.load(out).shape == (20, 2)
    for args, message in (
        (("sample", str(run_dir), "--class", "7", "--out", str(out)), "unknown class '7'"),
        (("sample", str(run_dir), "--guidance", "2", "--out", str(out)), "--guidance needs --class"),
        (("train", "moons", "--conditional", "--steps", "1", "--out", str(tmp_path / "x")), "needs labelled data"),
    ):
        code, err = cli(*args)
        assert code == 2 and message in err and err.count("\n") == 1, err
    plain = tmp_path / "plain"
    assert cli("train", "moons", "--steps", "2", "--width", "16", "--depth", "2", "--out", str(plain))[0] == 0
    code, err = cli("sample", str(plain), "--class", "0", "--out", str(out))
    assert code == 2 and "not class-conditional" in err and err.count("\n") == 1, err
    gif = tmp_path / "a.gif"
    code, err = cli("render", str(run_dir), "--class", "0", "--guidance", "1", "--frames", "3", "--n", "50",
                    "--size", "64x64", "--out", str(gif))
    assert code == 0 and gif.stat().st_size > 0, err
    code, err = cli("render", str(plain), "--class", "0", "--frames", "3", "--out", str(gif))
    assert code == 2 and "not class-conditional" in err

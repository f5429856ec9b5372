"""Run directories: every damaged or absurd file is one SessionError line before anything is built,
a save is atomic as a whole (the old run survives a failure half way, or a full disk, byte for
byte), and a session file with a trained model loads like a run."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from full_disk import fill
from safetensors.torch import load_file, save_file

from sgm_core import checkpoint
from sgm_core.checkpoint import load_run, save_run
from sgm_core.config import LossConfig, ModelConfig, NoiseConfig, RunConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.errors import ConfigError, SessionError
from sgm_core.limits import MAX_JSON_BYTES
from sgm_core.live import LiveEngine
from sgm_core.sessions import load_session, save_session
from sgm_core.training import Trainer

SMALL = ModelConfig(width=16, depth=2)
FAST_S = 2.0  # seconds: a refusal reads a header, never builds what the file asks for


def small_trainer(steps: int = 10, seed: int = 0) -> Trainer:
    cfg = RunConfig(model=SMALL, train=TrainConfig(steps=steps, batch=64, device="cpu", seed=seed))
    trainer = Trainer(make_preset("8gaussians", n_points=400), cfg)
    trainer.run(steps)
    return trainer


def save_trainer(path: Path, trainer: Trainer) -> Path:
    return save_run(path, trainer.config, trainer.model, trainer.ema_model, trainer.standardizer, trainer.step,
                    trainer.loss_history(), trainer.dataset.points)


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    return save_trainer(tmp_path_factory.mktemp("base") / "run", small_trainer())


@pytest.fixture
def run(saved_run, tmp_path) -> Path:
    """A private copy of a small trained run."""
    return Path(shutil.copytree(saved_run, tmp_path / "run"))


def refused(path: Path, *fragments: str) -> str:
    """load_run refuses `path` quickly with one SessionError line holding every fragment."""
    t0 = time.perf_counter()
    with pytest.raises(SessionError) as info:
        loaded = load_run(path)
        _ = loaded.data
    message = str(info.value)
    assert "\n" not in message and time.perf_counter() - t0 < FAST_S
    for fragment in fragments:
        assert fragment in message
    return message


def set_field(run_dir: Path, dotted: str, value: object) -> None:
    meta = json.loads((run_dir / "config.json").read_text())
    *head, last = dotted.split(".")
    node = meta
    for key in head:
        node = node[key]
    node[last] = value
    (run_dir / "config.json").write_text(json.dumps(meta))


# --------------------------------------------------------------------------- validation before building


@pytest.mark.parametrize(("dotted", "value", "fragment"), [
    ("step", "abc", "step must be a whole number, not 'abc'"),
    ("step", True, "step must be a whole number"),
    ("dim", 7, "dim must be from 2 to 3"),
    ("dim", 10**6, "dim must be from 2 to 3"),
    ("config.model.depth", 10**9, "model depth must be from 1 to 64"),  # used to hang building 10^9 layers
    ("config.model.width", 20000, "model width must be from 1 to 8,192"),  # used to take GBs, then a mismatch
    ("config.model", {"width": 2048, "depth": 8}, "has 29,"),  # 29.4 M parameters > MAX_NET_PARAMS
    ("config.noise.sigma", 1e300, "noise sigma must be at least"),  # used to be an OverflowError
    ("config.loss.name", "nope", "unknown loss 'nope'"),
    ("config.train.batch", 2.5, "train batch must be a whole number"),
    ("config.model.kind", ["score"], "unknown model kind"),
    ("standardizer.shift", [0.0, 0.0, 0.0], "a standardizer for 3D data, but the data is 2D"),
    ("standardizer", None, "no standardizer"),
    ("version", "1", "has no version number (found '1'); this program reads version 1"),
    ("version", 2, "has format version 2; this program reads version 1"),
    ("format", "other", "is not a Score Field Playground run"),
])
def test_every_config_field_is_checked_before_building(run, dotted, value, fragment):
    set_field(run, dotted, value)
    refused(run, fragment)


def test_json_numbers_beyond_every_range_are_refused(run):
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text.replace('"step": 10', '"step": 1e400'))  # parses as inf
    refused(run, "step must be a whole number, not inf")
    (run / "config.json").write_text(text.replace('"scale": ', '"scale": 1' + "0" * 400 + ', "x": '))
    refused(run, "invalid standardizer")


@pytest.mark.parametrize(("content", "fragment"), [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # RecursionError inside json
    (b'{"a": ' + b"9" * 5000 + b"}", "cannot read"),  # ValueError: over the int-digits limit
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{not json", "not valid JSON"),
])
def test_unparseable_config_json_is_one_line(run, content, fragment):
    (run / "config.json").write_bytes(content)
    refused(run, fragment)


def test_config_json_is_size_checked_before_it_is_read(run, monkeypatch):
    with open(run / "config.json", "ab") as f:
        f.truncate(MAX_JSON_BYTES + 1)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    refused(run, f"{MAX_JSON_BYTES + 1:,} bytes", "the most this program reads is")


def safetensors_blob(run_dir: Path) -> bytes:
    return (run_dir / "model.safetensors").read_bytes()


@pytest.mark.parametrize(("damage", "fragment"), [
    (lambda b: b"", "empty or truncated"),
    (lambda b: b[:7], "empty or truncated"),
    (lambda b: b[: len(b) // 2], "damaged or not a safetensors file"),  # header intact, data cut
    (lambda b: b[:200], "truncated or not a safetensors file"),  # header cut
    (lambda b: bytes(range(256)) * 20, "truncated or not a safetensors file"),
    (lambda b: (2**40).to_bytes(8, "little") + b"{}", "its header claims 1,099,511,627,776 bytes"),
    (lambda b: (20).to_bytes(8, "little") + b'{"a": [1, 2, 3]}    ', "damaged or not a safetensors file"),
])
def test_damaged_weights_are_one_sentence(run, damage, fragment):
    """SafetensorError is not an OSError: these used to end in tracebacks."""
    (run / "model.safetensors").write_bytes(damage(safetensors_blob(run)))
    refused(run, "model.safetensors", fragment)


def test_weights_of_another_shape_are_named_before_load_state_dict(run):
    set_field(run, "config.model.width", 32)
    refused(run, "model.safetensors does not fit the config: layer net.0.weight has shape (16, 11), expected (32, 11)")
    set_field(run, "config.model.width", 16)
    set_field(run, "config.model.depth", 3)
    refused(run, "does not fit the config: it has no layer net.6.weight")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(run, bad):
    tensors = load_file(run / "model.safetensors")
    tensors["ema.net.0.weight"][0, 0] = bad
    save_file(tensors, run / "model.safetensors")
    refused(run, "the run's weights contain NaN/Inf")


def npy_header_only(path: Path, shape: tuple[int, ...]) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})


def test_a_data_header_of_a_trillion_values_costs_nothing(run):
    """data.npy used to be read eagerly (MemoryError even for `sample`): it is read on first use,
    bounded, and a damaged one does not stop sampling."""
    npy_header_only(run / "data.npy", (500_000_000_000, 2))
    loaded = load_run(run)
    assert loaded.model(torch.zeros(3, 2), 0.5).shape == (3, 2)  # sampling needs no data
    with pytest.raises(SessionError, match="declares 1,000,000,000,000 values") as info:
        _ = loaded.data
    assert "\n" not in str(info.value)
    (run / "data.npy").write_bytes(b"\x93NUMPY garbage")
    refused(run, "data.npy cannot be used")
    np.save(run / "data.npy", np.zeros((10, 3), np.float32))
    refused(run, "holds 3D points, but the model is 2D")


def test_missing_weights_and_missing_dirs(run, tmp_path):
    (run / "model.safetensors").unlink()
    refused(run, "is not a complete run: it has no model.safetensors")
    refused(tmp_path / "nowhere", "is not a run directory")


def test_config_bounds_live_in_the_dataclasses():
    """One place for every bound: the CLI, the GUI and the files all get them."""
    for make, fragment in [
        (lambda: ModelConfig(width=30000), "model width"),
        (lambda: ModelConfig(depth=10**9), "model depth"),
        (lambda: ModelConfig(kind="energy", activation="relu"), "smooth activation"),
        (lambda: ModelConfig(n_frequencies=-1), "n_frequencies"),
        (lambda: NoiseConfig(sigma=float("nan")), "noise sigma"),
        (lambda: NoiseConfig(n_levels=1), "n_levels"),
        (lambda: NoiseConfig(sigma_min=2.0, sigma_max=1.0), "sigma_min < sigma_max"),
        (lambda: LossConfig(name="nope"), "unknown loss"),
        (lambda: TrainConfig(steps=-1), "train steps"),
        (lambda: TrainConfig(lr=float("inf")), "train lr"),
        (lambda: TrainConfig(ema=1.0), "ema"),
        (lambda: TrainConfig(device="tpu"), "device"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            make()
    assert ModelConfig(width=np.int64(8)).width == 8 and type(ModelConfig(width=np.int64(8)).width) is int
    assert type(NoiseConfig(sigma=1).sigma) is float


def test_n_params_matches_the_built_net():
    from sgm_core.nets import make_model

    for kind in ("score", "energy"):
        for dim in (2, 3):
            for conditional in (True, False):
                cfg = ModelConfig(kind=kind, width=7, depth=3, n_frequencies=2)
                net = make_model(dim, cfg, conditional)
                assert sum(p.numel() for p in net.parameters()) == cfg.n_params(dim, conditional)


# --------------------------------------------------------------------------- atomic saves


def test_a_save_failing_half_way_leaves_the_old_run_byte_for_byte(run, monkeypatch):
    before = snapshot(run)
    real = checkpoint._write_synced
    calls = []

    def full_after_first(path: Path, blob: bytes) -> None:
        calls.append(path.name)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, blob)

    monkeypatch.setattr(checkpoint, "_write_synced", full_after_first)
    with pytest.raises(SessionError) as info:
        save_trainer(run, small_trainer(steps=5, seed=1))
    assert str(info.value) == f"cannot save the run to {run}: No space left on device"
    assert len(calls) == 2 and snapshot(run) == before and leftovers(run.parent) == []


def test_a_save_that_does_not_read_back_changes_nothing(run, monkeypatch):
    before = snapshot(run)
    real = checkpoint._write_synced

    def corrupt_weights(path: Path, blob: bytes) -> None:
        real(path, blob[:100] if path.name == "model.safetensors" else blob)

    monkeypatch.setattr(checkpoint, "_write_synced", corrupt_weights)
    with pytest.raises(SessionError, match="the written files do not read back"):
        save_trainer(run, small_trainer(steps=5, seed=1))
    assert snapshot(run) == before and leftovers(run.parent) == []


def test_a_new_save_replaces_the_run_whole_and_keeps_the_users_files(run):
    (run / "samples.npy").write_bytes(b"the user's samples")
    trainer = small_trainer(steps=5, seed=1)
    save_run(run, trainer.config, trainer.model, trainer.ema_model, trainer.standardizer, trainer.step,
             trainer.loss_history(), None)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "loss.csv", "model.safetensors", "samples.npy"]
    assert (run / "samples.npy").read_bytes() == b"the user's samples"  # kept; the stale data.npy is gone
    loaded = load_run(run)
    assert loaded.step == 5 and loaded.data is None
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.model(x, 0.3), trainer.ema_model(x, 0.3))
    assert leftovers(run.parent) == []


def test_a_folder_that_is_not_a_run_is_never_replaced(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "letter.txt").write_text("keep me")
    with pytest.raises(SessionError, match="not a run directory"):
        save_trainer(folder, small_trainer(steps=2))
    assert snapshot(folder) == {"letter.txt": b"keep me"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(SessionError, match="not a directory"):
        save_trainer(tmp_path / "file", small_trainer(steps=2))


def test_an_ema_that_is_the_net_itself_saves(tmp_path):
    """Shared tensors used to be a safetensors error: the files hold private copies."""
    trainer = small_trainer(steps=2)
    save_run(tmp_path / "run", trainer.config, trainer.model, trainer.model, trainer.standardizer, 2,
             trainer.loss_history(), None)
    assert load_run(tmp_path / "run").step == 2


# --------------------------------------------------------------------------- sessions as runs


def test_a_session_with_a_trained_model_loads_like_a_run(tmp_path):
    data = make_preset("8gaussians", n_points=300)
    cfg = RunConfig(model=SMALL, train=TrainConfig(steps=10, batch=64, device="cpu"))
    engine = LiveEngine(data, cfg, n_particles=50)
    engine.train(7)
    path = save_session(tmp_path / "s.sgm", engine.export_state(data.points, "8gaussians"))
    loaded = load_run(path)
    assert loaded.config == cfg and loaded.dim == 2 and loaded.step == 7
    assert loaded.standardizer == engine.standardizer
    np.testing.assert_array_equal(loaded.data, data.points)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.model(x, 0.2), engine.trainer.ema_model(x, 0.2))  # the EMA weights, bit-exact
        assert not torch.equal(loaded.model(x, 0.2), engine.trainer.model(x, 0.2))
    state = load_session(path)
    untrained = save_session(tmp_path / "u.sgm", replace(state, model=None, ema=None, resume=None))
    refused(untrained, "u.sgm holds no trained model")
    (tmp_path / "bad.sgm").write_bytes(b"not a zip")
    refused(tmp_path / "bad.sgm", "bad.sgm is not a valid session file")


# --------------------------------------------------------------------------- a real full disk


def test_train_over_an_existing_run_on_a_full_disk_keeps_it(tiny_disk):
    """`sgm train --out EXISTING_RUN` on a full disk: exit 2, one error line, the old run intact."""
    run = save_trainer(tiny_disk / "run", small_trainer())
    before = snapshot(run)
    fill(tiny_disk, leave=64 * 1024)  # less than one run (~100 KB for the default 3 x 128 net)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "sgm_core.cli", "train", "8gaussians", "--out", str(run),
                           "--steps", "20", "--device", "cpu"], capture_output=True, text=True, env=env, timeout=120)
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(errors) == 1
    assert errors[0].startswith("sgm: error: ") and "No space left on device" in errors[0]
    assert snapshot(run) == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "run"]


def test_save_session_on_a_full_disk_keeps_the_old_file(tiny_disk):
    data = make_preset("8gaussians", n_points=300)
    cfg = RunConfig(model=ModelConfig(width=64, depth=3), train=TrainConfig(batch=64, device="cpu"))
    engine = LiveEngine(data, cfg, n_particles=50)
    engine.train(3)
    path = save_session(tiny_disk / "s.sgm", engine.export_state(data.points, "8gaussians"))
    before = path.read_bytes()
    fill(tiny_disk, leave=8 * 1024)
    engine.train(3)
    with pytest.raises(SessionError) as info:
        save_session(path, engine.export_state(data.points, "8gaussians"))
    assert "No space left on device" in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "s.sgm"]

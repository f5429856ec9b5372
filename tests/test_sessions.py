"""Session files (.sgm) in the core: every damaged member or absurd value is one SessionError line
before anything is built, sizes are capped from the zip directory before anything is inflated,
non-finite weights never open, and a save is verified before it replaces the old file."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from sgm_core import sessions
from sgm_core.config import ModelConfig, RunConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.errors import SessionError
from sgm_core.limits import MAX_JSON_BYTES, MAX_POINTS
from sgm_core.live import LiveEngine
from sgm_core.sessions import SessionState, load_session, save_session

INFLATE_PEAK = 16 * 2**20  # bytes: a few 1 MB chunks, far below the 64 MB bomb


@pytest.fixture(scope="module")
def state() -> SessionState:
    data = make_preset("8gaussians", n_points=300)
    cfg = RunConfig(model=ModelConfig(width=16, depth=2), train=TrainConfig(batch=64, device="cpu"))
    engine = LiveEngine(data, cfg, n_particles=40)
    engine.train(5)
    engine.advance(2)
    return engine.export_state(data.points, "8gaussians", settings={"k": 1})


@pytest.fixture(scope="module")
def members(state, tmp_path_factory) -> dict[str, bytes]:
    path = save_session(tmp_path_factory.mktemp("good") / "good.sgm", state)
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    return path


def refused(path: Path, *fragments: str) -> str:
    with pytest.raises(SessionError) as info:
        load_session(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def with_meta(members: dict[str, bytes], dotted: str, value: object) -> dict[str, bytes | str]:
    meta = json.loads(members["session.json"])
    *head, last = dotted.split(".")
    node = meta
    for key in head:
        node = node[key]
    node[last] = value
    return {**members, "session.json": json.dumps(meta)}


@pytest.mark.parametrize(("dotted", "value", "fragment"), [
    ("run.model.width", 30000, "model width must be from 1 to 8,192"),  # used to open, then take GBs
    ("sampler.name", "warp-drive", "unknown sampler 'warp-drive'"),  # used to open, then fail in the engine
    ("sampler.steps", "many", "sampler steps must be a whole number"),
    ("standardizer.shift", [0.0, 0.0, 0.0], "a standardizer for 3D data, but the data is 2D"),
    ("step", "abc", "step must be a whole number"),
    ("sampler_step", -1, "sampler_step must be from 0"),
    ("brush_radius", "wide", "brush_radius must be a number"),
    ("has_model", "yes", "has_model must be true or false"),
    ("settings", [1, 2], "the settings an object"),
    ("version", "1", "has no version number (found '1'); this program reads version 1"),
    ("run.noise.sigma", 1e300, "noise sigma must be at least"),
])
def test_every_session_field_is_checked_on_open(members, tmp_path, dotted, value, fragment):
    refused(write_zip(tmp_path / "bad.sgm", with_meta(members, dotted, value)), fragment)


def test_json_infinity_and_nan_are_refused(members, tmp_path):
    text = members["session.json"].decode()
    refused(write_zip(tmp_path / "a.sgm", {**members, "session.json": text.replace('"step": 5', '"step": 1e400')}),
            "step must be a whole number, not inf")  # was an OverflowError
    refused(write_zip(tmp_path / "b.sgm", {**members, "session.json": text.replace('"snr": 0.08', '"snr": NaN')}),
            "sampler snr must be non-negative")


@pytest.mark.parametrize(("member", "blob", "fragment"), [
    ("model.safetensors", b"", "empty or truncated"),
    ("model.safetensors", b"\x10" + b"\0" * 7 + b"{garbage json}  ", "damaged or not a safetensors file"),
    ("model.safetensors", (2**40).to_bytes(8, "little"), "its header claims"),
    ("resume.safetensors", bytes(range(256)), "resume.safetensors is truncated or not a safetensors file"),
    ("data.npy", b"\x93NUMPY\x01\x00garbage", "data.npy cannot be used"),
    ("particles.npy", b"", "particles.npy cannot be used"),
    ("losses.npy", b"x,y\n", "losses.npy cannot be used"),
    ("session.json", b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    ("session.json", b"\xff\xfe", "not UTF-8"),
])
def test_damaged_members_are_one_sentence(members, tmp_path, member, blob, fragment):
    refused(write_zip(tmp_path / "bad.sgm", {**members, member: blob}), fragment)


def test_weights_that_do_not_fit_the_settings_are_named(members, tmp_path):
    path = write_zip(tmp_path / "bad.sgm", with_meta(members, "run.model.width", 32))
    refused(path, "does not fit the config: layer net.0.weight has shape (16, 11), expected (32, 11)")
    path = write_zip(tmp_path / "no.sgm", {k: v for k, v in members.items() if k != "model.safetensors"})
    refused(path, "says it holds a trained model but has no model.safetensors")


@pytest.mark.parametrize(("member", "prefix", "fragment"), [
    ("model.safetensors", "model.", "the session's weights contain NaN/Inf"),
    ("model.safetensors", "ema.", "the session's weights contain NaN/Inf"),
    ("resume.safetensors", "adam.", "the session's training state"),
])
def test_non_finite_weights_never_open(members, tmp_path, member, prefix, fragment):
    tensors = load_safetensors(members[member])
    name = next(k for k in tensors if k.startswith(prefix) and tensors[k].is_floating_point())
    tensors[name].view(-1)[0] = float("nan")
    refused(write_zip(tmp_path / "nan.sgm", {**members, member: save_safetensors(tensors)}), fragment, "NaN/Inf")


def test_sizes_are_capped_from_the_zip_directory(members, tmp_path, monkeypatch):
    huge_json = members["session.json"][:-1] + b" " * MAX_JSON_BYTES + b"}"
    refused(write_zip(tmp_path / "json.sgm", {**members, "session.json": huge_json}),
            "session member session.json is", "the most this program reads is 16,777,216")
    path = write_zip(tmp_path / "total.sgm", members)
    cap = path.stat().st_size + 1  # the file passes, its unpacked members (more: they compress) do not
    assert sum(len(b) for b in members.values()) > cap
    monkeypatch.setattr(sessions, "MAX_SESSION_BYTES", cap)
    refused(path, "would unpack to", f"the most this program reads is {cap:,}")
    monkeypatch.undo()
    many = {**members, **{f"extra{i}.bin": b"" for i in range(sessions.MAX_MEMBERS)}}
    refused(write_zip(tmp_path / "many.sgm", many), "a session has at most 16")


def test_point_counts_are_capped(members, tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros((MAX_POINTS + 1, 2), np.float32))
    refused(write_zip(tmp_path / "big.sgm", {**members, "data.npy": buf.getvalue()}), "holds 2,000,001 points")
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 2)})
    refused(write_zip(tmp_path / "claim.sgm", {**members, "particles.npy": buf.getvalue()}), "declares 2,000,000,000,000")


def understate(path: Path, member: str, size: int) -> None:
    """Rewrite `member`'s uncompressed size in the zip's local and central headers (a lying directory)."""
    blob = bytearray(path.read_bytes())
    name = member.encode()
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = blob.find(signature)
        while at >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if blob[name_at:name_at + len(name)] == name:
                blob[at + offset:at + offset + 4] = struct.pack("<I", size)
            at = blob.find(signature, at + 4)
    path.write_bytes(bytes(blob))


def test_a_directory_that_understates_a_member_never_inflates_it(members, tmp_path):
    """zipfile's plain read inflates a member in one go whatever the directory says; the session
    reader inflates a chunk at a time, so a lie ends in a CRC error after 1 MB."""
    bomb = members["session.json"][:-1] + b" " * (64 * 2**20) + b"}"  # 64 MB of spaces: 64 KB deflated
    path = write_zip(tmp_path / "lie.sgm", {**members, "session.json": bomb})
    understate(path, "session.json", 1000)
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("session.json").file_size == 1000
    tracemalloc.start()
    try:
        refused(path, "lie.sgm is not a valid session file", "CRC")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < INFLATE_PEAK, f"{peak:,} bytes allocated"  # z.read() allocates the whole 64 MB at once


# --------------------------------------------------------------------------- saving


def test_a_session_without_an_ema_saves_and_opens(state, tmp_path):
    """save_session with ema=None used to raise safetensors' shared-tensors error."""
    back = load_session(save_session(tmp_path / "s.sgm", replace(state, ema=None)))
    assert back.ema.keys() == state.model.keys()
    for k, v in state.model.items():
        assert torch.equal(back.ema[k], v) and torch.equal(back.model[k], v)


def test_a_save_that_does_not_read_back_keeps_the_old_file(state, tmp_path, monkeypatch):
    path = save_session(tmp_path / "s.sgm", state)
    before = path.read_bytes()
    monkeypatch.setattr(sessions, "save_safetensors", lambda tensors: b"\x08" + b"\0" * 7 + b"{}broken")
    with pytest.raises(SessionError) as info:
        save_session(path, state)
    assert "the written file does not read back" in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["s.sgm"]


def test_a_good_session_round_trips_exactly(state, tmp_path):
    back = load_session(save_session(tmp_path / "s.sgm", state))
    assert back.run == state.run and back.sampler == state.sampler and back.step == 5 and back.settings == {"k": 1}
    assert back.standardizer == state.standardizer and back.sampler_step == 2
    np.testing.assert_array_equal(back.points, state.points)
    np.testing.assert_array_equal(back.particles, state.particles)
    for k, v in state.resume.items():
        assert torch.equal(back.resume[k], v)


def test_the_training_time_round_trips_and_older_files_open_with_none(members, state, tmp_path):
    path = save_session(tmp_path / "timed.sgm", replace(state, elapsed=83.25))
    assert load_session(path).elapsed == 83.25
    meta = json.loads(members["session.json"])
    meta.pop("elapsed", None)  # a file written before sessions kept the training time
    old = write_zip(tmp_path / "old.sgm", {**members, "session.json": json.dumps(meta)})
    assert load_session(old).elapsed == 0.0
    refused(write_zip(tmp_path / "bad.sgm", with_meta(members, "elapsed", -1.0)), "elapsed")


def test_the_guided_class_and_w_round_trip_and_older_files_open_unguided(members, tmp_path):
    data = make_preset("8gaussians-labelled", n_points=300)
    cfg = RunConfig(model=ModelConfig(width=16, depth=2, classes=tuple(data.classes)),
                    train=TrainConfig(batch=64, device="cpu"))
    engine = LiveEngine(data, cfg, n_particles=40)
    engine.train(3)
    engine.set_guidance(1, 3.0)
    state = engine.export_state(data.points, "8gaussians-labelled")
    assert state.guide == (1, 3.0)
    path = save_session(tmp_path / "guided.sgm", state)
    back = load_session(path)
    assert back.guide == (1, 3.0)
    reopened = LiveEngine.from_state(data, back)
    assert reopened.guide == (1, 3.0) and reopened.frame(None).guide_class == 1 and reopened.frame(None).guidance == 3.0
    with zipfile.ZipFile(path) as z:
        guided = {name: z.read(name) for name in z.namelist()}
    meta = json.loads(guided["session.json"])
    meta.pop("guide")  # a file written before sessions kept the guidance
    old = load_session(write_zip(tmp_path / "old.sgm", {**guided, "session.json": json.dumps(meta)}))
    assert old.guide is None and LiveEngine.from_state(data, old).guide is None
    for value, fragment in (({"class": 2, "w": 1.0}, "guide class must be from 0 to 1"),
                            ({"class": 0, "w": -1.0}, "guidance scale w must be"),
                            ({"class": 0, "w": float("nan")}, "not nan"), ("class 1", "guide must be an object")):
        refused(write_zip(tmp_path / "bad.sgm", with_meta(guided, "guide", value)), fragment)
    # an unconditional model cannot be guided towards a class
    refused(write_zip(tmp_path / "plain.sgm", with_meta(members, "guide", {"class": 0, "w": 1.0})),
            "not class-conditional")

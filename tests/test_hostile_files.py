"""Hostile files: random bytes, truncations, flipped bytes and single-field JSON mutations of every
file kind the project reads. The property: a clean load or an SGMError whose message is one line,
always; nothing else escapes. Then the nastiest refusals under a 2 GiB address-space limit.

Hypothesis runs derandomised (the same examples on every machine) and with few examples, so CI
stays fast; the tally of cases tried and loaded cleanly is printed at the end (`-s` shows it).
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgm_core.checkpoint import load_run, save_run
from sgm_core.config import ModelConfig, RunConfig, TrainConfig
from sgm_core.datasets import from_brush, make_preset
from sgm_core.errors import SGMError
from sgm_core.io import load_points
from sgm_core.lessons import LESSON_DIR, load_lesson_file
from sgm_core.live import LiveEngine
from sgm_core.sessions import load_session, save_session
from sgm_core.training import Trainer

EXAMPLES = 25  # per file kind and kind of damage: ~600 cases in ~20 s on one core
HOSTILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SMALL = ModelConfig(width=16, depth=2)
TALLY: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # kind -> [tried, loaded cleanly]


def check(kind: str, load) -> None:  # noqa: ANN001 - a no-argument callable
    """The property: `load()` returns, or raises an SGMError with a one-line message."""
    TALLY[kind][0] += 1
    try:
        load()
    except SGMError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"{kind}: not one line: {message!r}"
        return
    TALLY[kind][1] += 1


# --------------------------------------------------------------------------- damage


def flipped(blob: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(blob)
    for at, value in flips:
        out[at % len(out)] = value
    return bytes(out)


def damaged(blob: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, a truncation at a random offset, or up to 8 bytes overwritten."""
    return st.one_of(
        st.binary(max_size=4096),
        st.integers(0, max(0, len(blob) - 1)).map(lambda k: blob[:k]),
        st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=8).map(
            lambda flips: flipped(blob, flips)),
    )


HUGE = st.sampled_from([10**400, -(10**400), 2**63, 2**64, -(2**63) - 1, 1e308, -1e308, 5e-324, 10**12])
ODD_TEXT = st.sampled_from(["NaN", "Infinity", "-Infinity", "1", "1e400", "abc", "", "../../etc/passwd", "é" * 50])
NESTED = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                      max_leaves=8)
HOSTILE_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), HUGE,
                           st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), ODD_TEXT, NESTED)


def json_paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a JSON document (the root included)."""
    paths = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            paths += json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths += json_paths(value, (*prefix, i))
    return paths


def mutated(doc: object, path: tuple, value: object) -> bytes:
    """`doc` with the value at `path` replaced (NaN/Infinity written as JSON's non-standard words)."""
    if not path:
        return json.dumps(value).encode()
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc).encode()


def json_mutations(doc: object) -> st.SearchStrategy[bytes]:
    paths = json_paths(doc)
    return st.tuples(st.sampled_from(paths), HOSTILE_VALUES).map(lambda pv: mutated(doc, *pv))


# --------------------------------------------------------------------------- good files to damage


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """One good file of every kind: data files, a run directory, a session, a lesson."""
    from PIL import Image, ImageDraw

    root = tmp_path_factory.mktemp("good")
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(200, 3)).astype(np.float32)
    out = {"npy": root / "d.npy", "csv": root / "d.csv", "png": root / "d.png", "ply": root / "d.ply",
           "xyz": root / "d.xyz"}
    np.save(out["npy"], pts[:, :2])
    out["csv"].write_text("x,y\n" + "".join(f"{a:.6g},{b:.6g}\n" for a, b, _ in pts))
    out["xyz"].write_text("".join(f"{a:.6g} {b:.6g} {c:.6g} 0 0 1\n" for a, b, c in pts))
    out["ply"].write_text("ply\nformat ascii 1.0\nelement vertex 200\nproperty float x\nproperty float y\n"
                          "property float z\nend_header\n" + "".join(f"{a:.6g} {b:.6g} {c:.6g}\n" for a, b, c in pts))
    img = Image.new("L", (48, 32), 255)
    ImageDraw.Draw(img).ellipse((8, 6, 40, 26), fill=40)
    img.save(out["png"])

    cfg = RunConfig(model=SMALL, train=TrainConfig(steps=5, batch=64, device="cpu"))
    trainer = Trainer(make_preset("8gaussians", n_points=300), cfg)
    trainer.run(5)
    out["run"] = save_run(root / "run", cfg, trainer.model, trainer.ema_model, trainer.standardizer, trainer.step,
                          trainer.loss_history(), trainer.dataset.points)
    engine = LiveEngine(make_preset("8gaussians", n_points=300), cfg, n_particles=30)
    engine.train(3)
    out["sgm"] = save_session(root / "s.sgm", engine.export_state(engine.dataset.points, "8gaussians"))
    out["lesson"] = LESSON_DIR / "03-mixture-weights.json"
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scratch")


def use_session(path: Path) -> None:
    """Open a session as the window does: load it, then build its engine from it."""
    state = load_session(path)
    if state.model is not None:
        LiveEngine.from_state(from_brush(state.points, 0.1), state)


def use_run(path: Path) -> None:
    """Load a run as `sgm sample` and `sgm render` do: the model, one score, the data."""
    run = load_run(path)
    with torch.no_grad():
        run.model(torch.zeros(2, run.dim), 0.5)
    _ = run.data


# --------------------------------------------------------------------------- the properties


@pytest.mark.parametrize("suffix", ["npy", "csv", "png", "ply", "xyz"])
@HOSTILE
@given(data=st.data())
def test_damaged_data_files(good, scratch, suffix, data):
    path = scratch / f"data.{suffix}"
    path.write_bytes(data.draw(damaged(good[suffix].read_bytes())))
    check(f"data .{suffix}", lambda: load_points(path, n_image_points=200))


@pytest.mark.parametrize("member", ["config.json", "model.safetensors", "data.npy", "loss.csv"])
@HOSTILE
@given(data=st.data())
def test_damaged_run_files(good, scratch, member, data):
    run = scratch / "run"
    if not run.exists():
        run.mkdir()
    for p in good["run"].iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    (run / member).write_bytes(data.draw(damaged((good["run"] / member).read_bytes())))
    check(f"run {member}", lambda: use_run(run))


@HOSTILE
@given(data=st.data())
def test_mutated_run_config_fields(good, scratch, data):
    run = scratch / "run-fields"
    if not run.exists():
        run.mkdir()
    for p in good["run"].iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    (run / "config.json").write_bytes(data.draw(json_mutations(json.loads((good["run"] / "config.json").read_text()))))
    check("run config.json field", lambda: use_run(run))


def session_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    return path


@pytest.mark.parametrize("member", ["session.json", "data.npy", "losses.npy", "particles.npy", "model.safetensors",
                                    "resume.safetensors"])
@HOSTILE
@given(data=st.data())
def test_damaged_session_members(good, scratch, member, data):
    members = session_members(good["sgm"])
    members[member] = data.draw(damaged(members[member]))
    path = write_zip(scratch / "member.sgm", members)
    check(f"session {member}", lambda: use_session(path))


@HOSTILE
@given(data=st.data())
def test_damaged_session_zip(good, scratch, data):
    path = scratch / "zip.sgm"
    path.write_bytes(data.draw(damaged(good["sgm"].read_bytes())))
    check("session zip", lambda: use_session(path))


@HOSTILE
@given(data=st.data())
def test_mutated_session_fields(good, scratch, data):
    members = session_members(good["sgm"])
    members["session.json"] = data.draw(json_mutations(json.loads(members["session.json"])))
    path = write_zip(scratch / "fields.sgm", members)
    check("session.json field", lambda: use_session(path))
    check("session as a run", lambda: use_run(path))


@HOSTILE
@given(data=st.data())
def test_damaged_lesson_files(good, scratch, data):
    path = scratch / "lesson.json"
    path.write_bytes(data.draw(damaged(good["lesson"].read_bytes())))
    check("lesson file", lambda: load_lesson_file(path))


@HOSTILE
@given(data=st.data())
def test_mutated_lesson_fields(good, scratch, data):
    path = scratch / "lesson-fields.json"
    path.write_bytes(data.draw(json_mutations(json.loads(good["lesson"].read_text()))))
    check("lesson field", lambda: load_lesson_file(path))


def test_zz_tally(capsys):
    """The count of cases tried and loaded cleanly (the rest were refused with one line)."""
    with capsys.disabled():
        print("\nhostile files: kind, cases tried, loaded cleanly")
        for kind, (tried, clean) in sorted(TALLY.items()):
            print(f"  {kind:<26} {tried:>4} {clean:>4}")
        print(f"  {'all':<26} {sum(t for t, _ in TALLY.values()):>4} {sum(c for _, c in TALLY.values()):>4}")
    assert all(tried > 0 for tried, _ in TALLY.values())


# --------------------------------------------------------------------------- memory


ADDRESS_SPACE = 2 * 2**30  # bytes: every refusal must fit in this (torch's import needs < 1 GiB, measured)
PER_CASE_S = 5  # seconds: a refusal reads headers only


def claim_size(path: Path, member: str, size: int) -> None:
    """Rewrite `member`'s uncompressed size in the zip's local header and central directory."""
    blob = bytearray(path.read_bytes())
    name = member.encode()
    for signature, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = blob.find(signature)
        while at >= 0:
            if blob[at + name_at:at + name_at + len(name)] == name:
                blob[at + offset:at + offset + 4] = struct.pack("<I", size)
            at = blob.find(signature, at + 4)
    path.write_bytes(bytes(blob))


def npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_the_nastiest_refusals_fit_in_2_gib_and_seconds(good, tmp_path):
    """In a child limited to 2 GiB of address space, with an alarm per case: each ends in its
    one-line refusal (no MemoryError, no hang), and `sgm sample` ignores data it does not need."""
    def run_copy(name: str) -> Path:
        run = tmp_path / name
        run.mkdir()
        for p in good["run"].iterdir():
            (run / p.name).write_bytes(p.read_bytes())
        return run

    def set_model(run: Path, **changes: int) -> None:
        meta = json.loads((run / "config.json").read_text())
        meta["config"]["model"].update(changes)
        (run / "config.json").write_text(json.dumps(meta))

    huge_data = run_copy("huge-data")
    (huge_data / "data.npy").write_bytes(npy_header((500_000_000_000, 2)))  # 10^12 values
    wide, deep = run_copy("wide"), run_copy("deep")
    set_model(wide, width=30000)
    set_model(deep, depth=10**9)
    members = session_members(good["sgm"])
    json_claim = write_zip(tmp_path / "json.sgm", members)
    claim_size(json_claim, "session.json", 500 * 10**6)  # 500 MB session.json in a ~40 KB file
    three = write_zip(tmp_path / "three.sgm", members)
    for member in ("data.npy", "particles.npy", "losses.npy"):
        claim_size(three, member, 400 * 10**6)  # three members of 400 MB: 1.2 GB together
    bomb = write_zip(tmp_path / "bomb.sgm", {**members, "session.json": b" " * (100 * 2**20) + b"{}"})
    claim_size(bomb, "session.json", 1000)  # 100 MB inflating from 100 KB behind a directory that says 1 KB
    particles = write_zip(tmp_path / "particles.sgm", {**members, "particles.npy": npy_header((10**12, 2))})
    cases = {
        "data.npy of 10^12 values": (f"load_run({str(huge_data)!r}).data", "declares 1,000,000,000,000 values"),
        "width 30000": (f"load_run({str(wide)!r})", "model width must be from 1 to 8,192"),
        "depth 10^9": (f"load_run({str(deep)!r})", "model depth must be from 1 to 64"),
        "500 MB session.json": (f"load_session({str(json_claim)!r})", "session member session.json is 500,000,000"),
        "three big members": (f"load_session({str(three)!r})", "would unpack to 1,200,"),
        "understated zip bomb": (f"load_session({str(bomb)!r})", "CRC"),
        "particles of 10^12 values": (f"load_session({str(particles)!r})", "declares 2,000,000,000,000"),
    }
    child = textwrap.dedent(f"""
        import json, resource, signal, sys, time
        resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))
        import torch  # the core imports it on first use; here before the cases, not inside one's alarm
        from sgm_core.checkpoint import load_run
        from sgm_core.cli import main
        from sgm_core.errors import SGMError
        from sgm_core.sessions import load_session
        def on_alarm(*_):
            raise TimeoutError
        signal.signal(signal.SIGALRM, on_alarm)
        out = {{}}
        for name, expr in json.loads(sys.argv[1]).items():
            signal.alarm({PER_CASE_S})
            t0 = time.perf_counter()
            try:
                eval(expr)
                out[name] = ["loaded", ""]
            except SGMError as exc:
                out[name] = [type(exc).__name__, str(exc)]
            except BaseException as exc:
                out[name] = ["escaped " + type(exc).__name__, str(exc)[:300]]
            signal.alarm(0)
            out[name].append(time.perf_counter() - t0)
        signal.alarm({PER_CASE_S} * 4)
        out["sgm sample"] = [main(["sample", {str(huge_data)!r}, "--out", {str(tmp_path / "s.npy")!r}, "--n", "100",
                                   "--steps", "2"]), "", 0.0]
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", child, json.dumps({k: e for k, (e, _) in cases.items()})],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (_, fragment) in cases.items():
        kind, message, seconds = results[name]
        assert kind == "SessionError" and fragment in message and "\n" not in message, (name, kind, message)
        assert seconds < PER_CASE_S, (name, seconds)
    assert results["sgm sample"][0] == 0 and np.load(tmp_path / "s.npy").shape == (100, 2)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: kB
    assert peak < ADDRESS_SPACE
    print(f"\nrefusals under RLIMIT_AS 2 GiB: {', '.join(f'{k} {v[2]:.2f} s' for k, v in results.items())}; "
          f"peak RSS of the children {peak / 2**20:.0f} MB")

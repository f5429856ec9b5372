"""The CLI under signals, absurd counts and sessions: nothing left behind, one line, exit 2.

SIGTERM is what `kill`, `timeout` and a closing terminal send; it must clean up exactly as Ctrl+C
does (issue 11). Every signal test waits for a real sign that the work is under way (the
"training" line, or the render's temp file) before it signals, so it never races the start-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sgm_core import cli, limits
from sgm_core.sessions import load_session

START_TIMEOUT_S = 60.0  # import torch + build the trainer on a loaded 2-core machine
EXIT_TIMEOUT_S = 30.0  # a signalled run unwinds, removes its files and exits


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default. A shell without job control starts
    background jobs with SIGINT ignored, and an ignored SIGINT stays ignored across exec, so a
    suite launched as `pytest &` would see `sgm` ignore the signal these tests send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sgm(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sgm_core.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=_default_sigint)


def _wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _signal_and_finish(proc: subprocess.Popen, signum: int) -> tuple[int, str]:
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()  # never leave the child training on after the test
        _, err = proc.communicate()
        pytest.fail(f"sgm did not exit within {EXIT_TIMEOUT_S} s of signal {signum}; its stderr: {err[-500:]}")
    return proc.returncode, err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run directory and a session of it, trained once for the module."""
    folder = tmp_path_factory.mktemp("trained")
    assert cli.main(["train", "8gaussians", "--out", str(folder / "run"), "--steps", "30"]) == 0
    assert cli.main(["train", "8gaussians", "--out", str(folder / "s.sgm"), "--steps", "30"]) == 0
    return folder


EXPECTED_EXIT = {signal.SIGINT: cli.EXIT_SIGINT, signal.SIGTERM: cli.EXIT_SIGTERM}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("target", ["new-run", "existing-run", "existing-session"])
def test_a_signal_during_train_leaves_nothing_behind(tmp_path, trained, signum, target):
    if target == "new-run":
        out = tmp_path / "run"
    elif target == "existing-run":
        out = tmp_path / "run"
        cli.shutil.copytree(trained / "run", out)
    else:
        out = tmp_path / "s.sgm"
        out.write_bytes((trained / "s.sgm").read_bytes())
    before = _snapshot(tmp_path)
    proc = _sgm("train", "8gaussians", "--out", str(out), "--steps", "1000000")
    lines: list[str] = []
    _wait_until(lambda: lines.append(proc.stderr.readline()) or "training" in lines[-1], "training to start")
    code, err = _signal_and_finish(proc, signum)
    assert code == EXPECTED_EXIT[signum], err
    assert _snapshot(tmp_path) == before  # a new run is removed whole; an old one is byte-for-byte intact
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [] if target == "new-run" else [out.name])  # no *.tmp-* and no empty folder


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_render_leaves_nothing_behind(tmp_path, trained, signum):
    out = tmp_path / "movie.gif"
    proc = _sgm("render", str(trained / "run"), "--out", str(out), "--frames", "5000", "--size", "64x64",
                "--n", "200", "--steps", "2")
    _wait_until(lambda: any(".tmp-" in p.name for p in tmp_path.iterdir()) or proc.poll() is not None,
                "the render's temp file")
    assert proc.poll() is None, proc.stderr.read()
    code, err = _signal_and_finish(proc, signum)
    assert code == EXPECTED_EXIT[signum], err
    assert list(tmp_path.iterdir()) == []


CEILINGS = [
    (["sample", "RUN", "--out", "x.npy", "--n", str(limits.MAX_SAMPLES + 1)], "--n"),
    (["sample", "RUN", "--out", "x.npy", "--n", "1000000000"], "--n"),
    (["render", "RUN", "--out", "x.gif", "--n", "1000000000"], "--n"),
    (["render", "RUN", "--out", "x.gif", "--frames", str(limits.MAX_FRAMES + 1)], "--frames"),
    (["render", "RUN", "--out", "x.gif", "--fps", "100000"], "--fps"),
    (["train", "8gaussians", "--out", "r", "--steps", str(limits.MAX_STEPS + 1)], "--steps"),
    (["train", "8gaussians", "--out", "r", "--batch", "1000000000"], "--batch"),
    (["train", "8gaussians", "--out", "r", "--seed", str(2**64)], "--seed"),
    (["sample", "RUN", "--out", "x.npy", "--seed", "-1"], "--seed"),
    (["sample", "RUN", "--out", "x.npy", "--steps", "10000000000"], "--steps"),
]


@pytest.mark.parametrize(("argv", "flag"), CEILINGS, ids=[" ".join(a[-2:]) for a, _ in CEILINGS])
def test_absurd_counts_are_one_line_and_exit_2(tmp_path, trained, capsys, argv, flag):
    argv = [str(trained / "run") if a == "RUN" else a for a in argv]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err
    assert list(tmp_path.iterdir()) == []


def test_sample_streams_in_chunks_reproducibly(tmp_path, trained, monkeypatch):
    """Above SAMPLE_CHUNK the sampler runs chunk by chunk on one generator: bounded memory, same
    result on a rerun, and every sample finite and near the data (within the preset's span)."""
    from sgm_core import api

    monkeypatch.setattr(api, "SAMPLE_CHUNK", 7)
    args = ["sample", str(trained / "run"), "--n", "30", "--steps", "5", "--seed", "3"]
    assert cli.main([*args, "--out", str(tmp_path / "a.npy")]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "b.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (30, 2)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a, axis=0)) == 30  # no chunk repeats another's draws
    DATA_SPAN = 10.0  # 8gaussians sits within radius ~4.5; a 30-step net's samples stay well inside 10
    assert np.all(np.abs(a) < DATA_SPAN)


def test_train_writes_a_session_the_app_and_the_cli_open(tmp_path, trained):
    """`sgm train --out FILE.sgm` is a real session: it loads with its weights and training state,
    the window's own loader rebuilds the engine from it, and sample/render accept it."""
    session = trained / "s.sgm"
    state = load_session(session)
    assert state.step == 30 and state.model is not None and state.resume
    assert state.source == "8gaussians" and state.points.shape == (5000, 2)
    from app.session_io import build_engine  # the window's Open, without a window

    engine, spec, opened = build_engine(session)
    assert engine is not None and engine.trainer.step == 30
    assert opened.dataset is not None and opened.dataset.gmm is not None  # recognised as the preset: exact truth
    assert cli.main(["sample", str(session), "--out", str(tmp_path / "x.npy"), "--n", "50", "--steps", "3"]) == 0
    assert np.load(tmp_path / "x.npy").shape == (50, 2)
    assert cli.main(["render", str(session), "--out", str(tmp_path / "x.gif"), "--frames", "3", "--size", "64x64",
                     "--n", "50", "--steps", "2"]) == 0
    from PIL import Image

    with Image.open(tmp_path / "x.gif") as gif:
        assert gif.size == (64, 64) and gif.n_frames >= 1


def test_train_to_a_session_in_a_missing_folder_fails_before_training(tmp_path, capsys):
    code = cli.main(["train", "8gaussians", "--out", str(tmp_path / "nope" / "s.sgm"), "--steps", "10"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    assert "training" not in err


CPU_OOM = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
           "allocate 80000000000 bytes. Error code 12 (Cannot allocate memory)")  # torch's CPU allocator, verbatim


@pytest.mark.parametrize("error", [lambda: RuntimeError(CPU_OOM), lambda: MemoryError(),
                                   lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")],
                         ids=["cpu-allocator", "MemoryError", "OutOfMemoryError"])
def test_running_out_of_memory_in_torch_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, error):
    """torch's CPU allocator raises RuntimeError, not MemoryError: it used to end in a traceback.
    Every out-of-memory error is now the same sentence, and the run folder it made is removed."""
    from sgm_core.training import Trainer

    def out_of_memory(self, n_steps):
        raise error()

    monkeypatch.setattr(Trainer, "run", out_of_memory)
    code = cli.main(["train", "8gaussians", "--out", str(tmp_path / "run"), "--steps", "10"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == ("sgm: error: not enough memory for this request; try fewer points, samples or a "
                                    "smaller net")
    assert list(tmp_path.iterdir()) == []


def test_a_runtime_error_that_is_not_out_of_memory_is_not_called_one(tmp_path, monkeypatch):
    from sgm_core.training import Trainer

    def bug(self, n_steps):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x2 and 3x64)")

    monkeypatch.setattr(Trainer, "run", bug)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        cli.main(["train", "8gaussians", "--out", str(tmp_path / "run"), "--steps", "10"])

"""`sgm` in-process (sgm_core.cli.main) and once as a real process: it lists, trains and samples,
and every bad input exits 2 with one line on stderr, no traceback, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_thread, run_cli  # noqa: F401 - one_thread is an autouse fixture

from sgm_core.datasets import PRESETS

REPO = Path(__file__).resolve().parents[1]
TINY = ["--steps", "50", "--batch", "64"]  # a run that trains in well under a second
SUBPROCESS_TIMEOUT_S = 120  # a cold interpreter importing torch on a busy 2-core machine




sgm = run_cli


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert "error" in lines[0]


def test_datasets_lists_every_preset_with_its_dimension(capsys) -> None:
    code, out, _ = sgm(["datasets"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(PRESETS)
    for line, (name, spec) in zip(lines, PRESETS.items(), strict=True):
        assert line.split()[:2] == [name, f"{spec.dim}D"]


@pytest.mark.parametrize(("preset", "loss", "suffix"), [("8gaussians", "ncsn", ".npy"), ("gmm3d", "vp-sde", ".csv")])
def test_train_then_sample_writes_a_run_and_points(tmp_path, capsys, preset: str, loss: str, suffix: str) -> None:
    run = tmp_path / "run"
    code, _, err = sgm(["train", preset, "--out", run, "--loss", loss, *TINY], capsys)
    assert code == 0, err
    assert {"config.json", "model.safetensors", "loss.csv"} <= {p.name for p in run.iterdir()}
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["loss"]["name"] == loss and meta["step"] == 50 and meta["dim"] == PRESETS[preset].dim
    assert len((run / "loss.csv").read_text().splitlines()) == 51  # header + one row per step
    assert not list(run.glob("*.tmp-*")) and not (run / ".sgm-write-test").exists()

    out = tmp_path / f"samples{suffix}"
    code, _, err = sgm(["sample", run, "--out", out, "--n", "100", "--steps", "5"], capsys)
    assert code == 0, err
    x = np.load(out) if suffix == ".npy" else np.loadtxt(out, delimiter=",", skiprows=1)
    assert x.shape == (100, PRESETS[preset].dim) and np.isfinite(x).all()


def test_sample_is_reproducible_from_its_seed(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert sgm(["train", "8gaussians", "--out", run, *TINY], capsys)[0] == 0
    draws = []
    for i, seed in enumerate([3, 3, 4]):
        out = tmp_path / f"s{i}.npy"
        assert sgm(["sample", run, "--out", out, "--n", "50", "--steps", "3", "--seed", seed], capsys)[0] == 0
        draws.append(np.load(out))
    assert np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], draws[2])


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


BAD_TRAIN_DATA = {
    "unknown preset": lambda d: "no-such-preset",
    "missing file": lambda d: d / "missing.npy",
    "corrupt npy": lambda d: write(d / "bad.npy", b"\x93NUMPY garbage that is not a header"),
    "corrupt png": lambda d: write(d / "bad.png", b"\x89PNG\r\n\x1a\n not really"),
    "corrupt ply": lambda d: write(d / "bad.ply", b"ply\nformat nonsense\n"),
    "text in csv": lambda d: write(d / "words.csv", "x,y\n1,2\nthree,four\n"),
    "wrong shape csv": lambda d: write(d / "wide.csv", "1,2,3,4\n5,6,7,8\n"),
    "ragged csv": lambda d: write(d / "ragged.csv", "1,2\n3,4,5\n"),
    "NaN data": lambda d: write(d / "nan.csv", "1,2\nnan,3\n4,5\n"),
    "1-point data": lambda d: write(d / "one.csv", "1,2\n"),
    "coincident points": lambda d: write(d / "same.csv", "1,2\n1,2\n1,2\n"),
    "a directory": lambda d: d,
}


@pytest.mark.parametrize("case", list(BAD_TRAIN_DATA))
def test_bad_training_data_exits_2_with_one_line_and_no_run_dir(tmp_path, capsys, case: str) -> None:
    data = BAD_TRAIN_DATA[case](tmp_path)
    run = tmp_path / "run"
    code, _, err = sgm(["train", data, "--out", run, *TINY], capsys)
    assert_one_line_error(code, err)
    assert not run.exists()


@pytest.mark.parametrize(
    ("case", "args"),
    [
        ("unknown loss", ["train", "8gaussians", "--loss", "nope"]),
        ("zero steps", ["train", "8gaussians", "--steps", "0"]),
        ("negative lr", ["train", "8gaussians", "--lr", "-1"]),
        ("unknown command", ["fly"]),
    ],
)
def test_bad_training_options_exit_2_with_one_line(tmp_path, capsys, case: str, args: list[str]) -> None:
    run = tmp_path / "run"
    extra = ["--out", run] if args[0] == "train" else []
    code, _, err = sgm([*args, *extra], capsys)
    assert_one_line_error(code, err)
    assert not run.exists()


def test_unwritable_train_out_exits_2(tmp_path, capsys) -> None:
    blocker = write(tmp_path / "a-file", "x")
    for out in (blocker / "run", blocker):  # under a regular file, and a regular file itself
        code, _, err = sgm(["train", "8gaussians", "--out", out, *TINY], capsys)
        assert_one_line_error(code, err)
    assert blocker.read_text() == "x"


def test_failed_training_removes_the_run_dir_it_made_but_not_one_it_found(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    code, _, err = sgm(["train", "8gaussians", "--out", run, "--lr", "1e30", *TINY], capsys)
    assert code == 2 and "diverged" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("sgm: error:")
    assert not run.exists()

    existing = tmp_path / "mine"
    existing.mkdir()
    keep = write(existing / "notes.txt", "keep me")
    code, _, _ = sgm(["train", "8gaussians", "--out", existing, "--lr", "1e30", *TINY], capsys)
    assert code == 2 and keep.read_text() == "keep me"


@pytest.fixture
def trained_run(tmp_path, capsys) -> Path:
    run = tmp_path / "run"
    assert sgm(["train", "8gaussians", "--out", run, *TINY], capsys)[0] == 0
    return run


@pytest.mark.parametrize(
    ("case", "args"),
    [
        ("--n 0", ["--n", "0"]),
        ("--n not a number", ["--n", "many"]),
        ("unknown sampler", ["--sampler", "nope"]),
        ("--steps 0", ["--steps", "0"]),
    ],
)
def test_bad_sample_options_exit_2_with_one_line(trained_run, tmp_path, capsys, case: str, args: list[str]) -> None:
    out = tmp_path / "s.npy"
    code, _, err = sgm(["sample", trained_run, "--out", out, *args], capsys)
    assert_one_line_error(code, err)
    assert not out.exists()


def test_bad_sample_outputs_and_runs_exit_2_with_one_line(trained_run, tmp_path, capsys) -> None:
    blocker = write(tmp_path / "a-file", "x")
    cases = [
        [trained_run, "--out", blocker / "s.npy"],  # unwritable: a path under a regular file
        [trained_run, "--out", tmp_path / "s.txt"],  # unsupported output type
        [tmp_path / "no-run", "--out", tmp_path / "s.npy"],  # not a run directory
        [blocker, "--out", tmp_path / "s.npy"],  # a regular file, not a run directory
    ]
    for args in cases:
        code, _, err = sgm(["sample", *args, "--n", "10", "--steps", "2"], capsys)
        assert_one_line_error(code, err)
    (trained_run / "config.json").write_text("{broken")
    code, _, err = sgm(["sample", trained_run, "--out", tmp_path / "s.npy", "--n", "10"], capsys)
    assert_one_line_error(code, err)
    assert not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize(("out", "words"), [
    ("nodir/s.npy", "cannot write '{tmp}/nodir/s.npy': the folder '{tmp}/nodir' does not exist"),
    ("adir.npy", "cannot write '{tmp}/adir.npy': it is a directory"),
])
def test_sample_checks_its_output_before_sampling(trained_run, tmp_path, capsys, monkeypatch, out, words) -> None:
    """The output path used to be tried only after every sample was drawn."""
    from sgm_core import api

    (tmp_path / "adir.npy").mkdir()
    drawn = []
    monkeypatch.setattr(api.Run, "sample", lambda *a, **k: drawn.append(1))
    code, _, err = sgm(["sample", trained_run, "--out", tmp_path / out, "--n", "10"], capsys)
    assert_one_line_error(code, err)
    assert words.format(tmp=tmp_path) in err and drawn == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.npy", "run"] and not any((tmp_path / "adir.npy").iterdir())


def test_train_into_a_folder_of_other_files_fails_before_training(tmp_path, capsys, monkeypatch) -> None:
    """The refusal used to come from the save, after the whole training; an earlier run or an
    empty folder is still a fine --out."""
    from sgm_core.training import Trainer

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    trained = []
    real_run = Trainer.run
    monkeypatch.setattr(Trainer, "run", lambda self, n: trained.append(n) or real_run(self, n))
    code, _, err = sgm(["train", "8gaussians", "--out", mine, *TINY], capsys)
    assert_one_line_error(code, err)
    assert f"cannot save the run to {mine}: it is a folder with other files, not a run directory" in err
    assert trained == [] and "training" not in err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "my notes"
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "empty"):  # an empty folder, then the run it now holds
        assert sgm(["train", "8gaussians", "--out", out, *TINY], capsys)[0] == 0
    assert trained and (tmp_path / "empty" / "config.json").is_file()


def cli_process(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "sgm_core.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)


@pytest.mark.parametrize("command", ["datasets", "lessons"])
def test_a_closed_stdout_pipe_is_quiet_and_exit_141(tmp_path, command) -> None:
    """`sgm datasets | head -1` used to print 'sgm: error: Broken pipe' and exit 2. The reader
    here is closed before sgm writes a byte, so the pipe is broken whatever the timing."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run([sys.executable, "-m", "sgm_core.cli", command], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path, env=env, timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error(capsys, monkeypatch) -> None:
    from sgm_core import cli

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "datasets", broken)
    code, _, err = sgm(["datasets"], capsys)
    assert code == 2 and err == "sgm: error: Broken pipe\n"


def test_command_line_smoke_as_a_real_process(tmp_path) -> None:
    done = cli_process(["train", "8gaussians", "--out", "run", "--steps", "10", "--batch", "32", "--device", "cpu"],
                       tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()
    failed = cli_process(["train", "no-such-preset", "--out", "run2"], tmp_path)
    assert failed.returncode == 2 and failed.stdout == ""
    assert_one_line_error(failed.returncode, failed.stderr)
    assert not (tmp_path / "run2").exists()

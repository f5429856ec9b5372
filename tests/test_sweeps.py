"""`sgm sweep`: a 2x2 spec gives 4 rows and every cell's run, a rerun skips all 4, a sweep killed
after its first cell resumes with the rest, and bad specs are one line and exit 2. The Ray
engine: tests/test_sweeps_ray.py."""

from __future__ import annotations

import csv
import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from PIL import Image

import sgm_core as sgm
from sgm_core import api, sweeps

REPO = Path(__file__).resolve().parents[1]
# Tiny cells: a few dozen steps, few samples, a 2-step sampler, no likelihood: about a second each.
TINY = 'steps = 30\nbatch = 64\nn = 200\nsample_steps = 2\nlikelihood = false\n'
SPEC_2X2 = 'data = ["moons", "8gaussians"]\nloss = ["ncsn", "dsm"]\n' + TINY
SUBPROCESS_TIMEOUT_S = 240  # a cold interpreter and its spawned worker import torch on a busy 2-core box
POLL_S = 0.02


sgm_cli = run_cli


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def write_spec(tmp_path: Path, text: str | bytes, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_2x2_sweep_gives_4_rows_4_runs_a_summary_and_a_rerun_skips_all_4(tmp_path, capsys) -> None:
    spec, out = write_spec(tmp_path, SPEC_2X2), tmp_path / "out"
    code, _, err = sgm_cli(["sweep", spec, "--out", out, "--workers", "2"], capsys)
    assert code == 0, err
    assert "4 cells; skipping 0 finished; 4 to run" in err
    rows = read_rows(out)
    assert [(r["data"], r["loss"]) for r in rows] == [("moons", "ncsn"), ("moons", "dsm"), ("8gaussians", "ncsn"),
                                                      ("8gaussians", "dsm")], "one row per cell, in the spec's order"
    for row in rows:
        assert row["error"] == "" and row["sampler"] == {"ncsn": "annealed", "dsm": "langevin"}[row["loss"]]
        assert float(row["sw_ratio"]) > 0 and float(row["train_seconds"]) > 0 and float(row["sample_seconds"]) > 0
        assert (row["on_mode"] != "") == (row["data"] == "8gaussians"), "mode metrics for the mixture only"
        assert row["nll"] == "", "likelihood = false"
        run = sgm.load(out / row["run_dir"])  # every cell's run is a real run
        assert (run.config.data, run.config.loss.name, run.step) == (row["data"], row["loss"], 30)
        assert np.isclose(run.metrics(run.sample(200, steps=2, seed=0), nll=False)["sw_ratio"], float(row["sw_ratio"]))
    before = (out / "results.csv").read_bytes()

    code, _, err = sgm_cli(["sweep", spec, "--out", out, "--workers", "2"], capsys)
    assert code == 0 and "4 cells; skipping 4 finished; 0 to run" in err
    assert (out / "results.csv").read_bytes() == before

    summary = (out / "summary.md").read_text()
    table = [line for line in summary.splitlines() if line.startswith("| moons") or line.startswith("| 8gaussians")][:2]
    for line in table:  # the pivot holds each cell's own sw_ratio
        label, *values = [c.strip() for c in line.strip("|").split("|")]
        expect = [f"{float(r['sw_ratio']):.3g}" for r in rows if r["data"] == label]
        assert values == expect
    assert "| data \\ loss | ncsn | dsm |" in summary

    # The heat map: the best (lowest) value's cell is the brightest colour of the scale, the worst the darkest.
    image = np.asarray(Image.open(out / "summary.png").convert("RGB"))
    table = sweeps.pivot(sweeps.read_spec(spec), rows, "sw_ratio")
    x0, width, height = sweeps.heat_layout(table, sweeps.heat_font())
    assert image.shape == (height, width, 3)
    values = {(r["data"], r["loss"]): float(r["sw_ratio"]) for r in rows}
    for at, colour in ((min(values, key=values.get), sweeps.HEAT_ANCHORS[-1]),
                       (max(values, key=values.get), sweeps.HEAT_ANCHORS[0])):
        i, j = table.row_labels.index(at[0]), table.col_labels.index(at[1])
        corner = image[2 * sweeps.CELL_H + i * sweeps.CELL_H + 2, x0 + j * sweeps.CELL_W + 2]  # inside, left of the text
        assert tuple(corner) == colour


def test_a_killed_sweep_resumes_and_redoes_only_the_unfinished_cells(tmp_path, capsys) -> None:
    spec = write_spec(tmp_path, 'seed = [0, 1, 2, 3]\ndata = "moons"\nloss = "dsm"\nsteps = 150\nbatch = 64\n'
                                'n = 200\nsample_steps = 2\nlikelihood = false\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-m", "sgm_core.cli", "sweep", str(spec), "--out", str(out),
                              "--workers", "1"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        while time.monotonic() < deadline and child.poll() is None:
            if (out / "results.csv").is_file() and len(read_rows(out)) >= 1:
                break
            time.sleep(POLL_S)
        assert child.poll() is None, f"the sweep ended before it was killed: {child.stderr.read().decode()}"
        os.kill(child.pid, signal.SIGKILL)  # the driver only, as the OOM killer would: its worker must not live on
        child.wait(timeout=30)
        if sys.platform.startswith("linux"):
            assert _group_empties(child.pid), "a pool worker outlived the killed sweep"
    finally:
        _kill_group(child.pid)
        child.stderr.close()
    finished = read_rows(out)
    assert 1 <= len(finished) < 4, "killed after the first cell and before the last"
    before = (out / "results.csv").read_text().splitlines()

    code, _, err = sgm_cli(["sweep", spec, "--out", out, "--workers", "1"], capsys)
    assert code == 0, err
    assert f"4 cells; skipping {len(finished)} finished; {4 - len(finished)} to run" in err
    rows = read_rows(out)
    assert [r["seed"] for r in rows] == ["0", "1", "2", "3"] and all(r["error"] == "" for r in rows)
    assert (out / "results.csv").read_text().splitlines()[:len(before)] == before, "finished rows are kept as they were"
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(Path(r["run_dir"]).name for r in rows)
    assert not list(out.rglob("*.tmp-*")), "what the kill left half-written is gone"


def _group_empties(pgid: int, timeout_s: float = 10.0) -> bool:
    """No live process is left in the group (Linux /proc; a zombie is dead: in a container the
    PID 1 that inherits orphans may never reap them)."""
    def alive() -> bool:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended while we looked
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            return True
        time.sleep(POLL_S)
    return False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.parametrize(("text", "words"), [
    ('data = "moons"\nlos = "ncsn"\n', "unknown key 'los'"),
    ('steps = "ten"\n', "steps must be a whole number"),
    ('steps = [10, 2.5]\n', "steps must be a whole number or a list of them, not 2.5"),
    ('seed = true\n', "seed must be a whole number"),
    ('loss = []\n', "loss is an empty list"),
    ('loss = ["ncsn", "bogus"]\n', "unknown loss 'bogus'"),
    ('lr = -1\n', "train lr must be above 0"),
    ('sampler = "warp"\n', "unknown sampler 'warp'"),
    ('data = "no/such/file.npy"\n', "data 'no/such/file.npy' is neither a preset nor an existing file"),
    ('seed = [1, 1]\n', "seed lists 1 twice"),
    ('gpus = [0, 1]\n', "gpus cannot be swept"),
    ('metric = "accuracy"\n', "unknown metric 'accuracy'"),
    ('n = 1\n', "n must be from 2"),
    ('sigma_min = 4.0\n', "sigma_min < sigma_max"),
    ('steps = [[1, 2]]\n', "steps must be a whole number or a list of them"),
    ('[train]\nsteps = 3\n', "unknown key 'train'"),
    ('steps = \n', "is not valid TOML"),
    pytest.param('seed = [' + ", ".join(str(i) for i in range(101)) + ']\nbatch = ['
                 + ", ".join(str(i) for i in range(1, 101)) + ']\n', "makes 10,100 cells; the most one sweep runs is 10,000",
                 id="too-many-cells"),
    pytest.param(b"data = '\xff'\n", "not UTF-8 text", id="not-utf8"),
    pytest.param("seed = " + "[" * 5000 + "]" * 5000 + "\n", "is nested too deeply", id="deep-nesting"),
    pytest.param("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "is nested too deeply", id="deep-tables"),
    pytest.param("lr = 1" + "0" * 400 + "\n", "lr = 1" + "0" * 38 + "… is too large a number",
                 id="huge-int-for-a-float"),
    pytest.param("gpus = 1" + "0" * 400 + "\n", "gpus = 1000", id="huge-gpus"),
    pytest.param("steps = 1" + "0" * 5000 + "\n", "holds a value this program cannot read", id="5000-digits"),
    pytest.param("", "names no settings, so it has no cells to run", id="empty"),  # used to train one default cell
    pytest.param("gpus = 0\nmetric = 'mmd'\n", "names no settings", id="resources-only"),
])
def test_a_bad_spec_is_one_line_naming_it_and_exit_2(tmp_path, capsys, text, words) -> None:
    spec, out = write_spec(tmp_path, text), tmp_path / "out"
    code, _, err = sgm_cli(["sweep", spec, "--out", out], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(("sgm: error: spec.toml: ", "sgm: error: spec.toml is not valid TOML",
                           "sgm: error: spec.toml is nested", "sgm: error: spec.toml holds",
                           "sgm: error: spec.toml names no settings"))
    assert words in err
    assert not out.exists(), "nothing is created before the spec is known good"


@pytest.mark.parametrize(("args", "words"), [
    (["--engine", "local", "--address", "auto"], "an address is for the ray engine"),
    (["--engine", "warp"], "invalid choice: 'warp'"),
    (["--workers", "0"], "must be a positive integer"),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, capsys, args, words) -> None:
    code, _, err = sgm_cli(["sweep", write_spec(tmp_path, SPEC_2X2), "--out", tmp_path / "out", *args], capsys)
    assert code == 2 and err.count("\n") == 1 and words in err, err


def test_without_ray_the_ray_engine_says_how_to_install_it(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    code, _, err = sgm_cli(["sweep", write_spec(tmp_path, SPEC_2X2), "--out", tmp_path / "out", "--engine", "ray"],
                           capsys)
    assert code == 2 and err.count("\n") == 1
    assert 'pip install -e ".[cluster]"' in err


def test_gpus_in_the_spec_are_refused_where_no_gpu_is_visible(tmp_path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the cell would run on it")
    code, _, err = sgm_cli(["sweep", write_spec(tmp_path, SPEC_2X2 + "gpus = 1\n"), "--out", tmp_path / "out"], capsys)
    assert code == 2 and "gpus = 1 but no CUDA GPU is visible" in err
    assert not (tmp_path / "out").exists()


def test_a_results_file_of_something_else_is_refused_not_overwritten(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("name,score\nalice,3\n")
    code, _, err = sgm_cli(["sweep", write_spec(tmp_path, SPEC_2X2), "--out", out], capsys)
    assert code == 2 and "is not a sweep's results file" in err
    assert (out / "results.csv").read_text() == "name,score\nalice,3\n"


def test_spec_train_keys_are_exactly_the_api_train_keywords() -> None:
    """One list of settings: a keyword added to sgm.train is a sweep key too, and no key trains
    something sgm.train does not know."""
    keywords = [p for p in inspect.signature(api.train).parameters if p != "progress"]
    assert list(sweeps.TRAIN_KEYS) == keywords
    assert set(sweeps.TRAIN_KEYS) <= set(sweeps.SPEC_KEYS)


def test_growing_a_spec_reuses_the_cells_it_already_has_and_shrinking_it_is_refused(tmp_path) -> None:
    """Cells are known by their settings: adding a seed runs only the new seed's cells (here the
    engine is replaced by one that records what it is asked to run)."""
    asked: list[dict] = []

    def engine(tasks, workers, address, gpus):
        for cell, _ in tasks:
            asked.append(dict(cell.settings))
            yield cell, {**cell.settings, "sw_ratio": 1.0, "train_seconds": 0.1, "sample_seconds": 0.1}

    spec = {"data": ["moons", "8gaussians"], "seed": [0], "steps": 5}
    original = sweeps.ENGINES
    sweeps.ENGINES = {"local": engine}
    try:
        sgm.sweep(spec, tmp_path / "out", log=lambda line: None)
        sgm.sweep({**spec, "seed": [0, 1]}, tmp_path / "out", log=lambda line: None)
    finally:
        sweeps.ENGINES = original
    assert [(a["data"], a["seed"]) for a in asked] == [("moons", 0), ("8gaussians", 0), ("moons", 1), ("8gaussians", 1)]
    assert [(r["data"], r["seed"]) for r in read_rows(tmp_path / "out")] == [
        ("moons", "0"), ("moons", "1"), ("8gaussians", "0"), ("8gaussians", "1")]
    before = (tmp_path / "out" / "results.csv").read_bytes()
    with pytest.raises(sgm.DataError, match="holds 2 finished cells that are not in this spec"):
        sgm.sweep(spec, tmp_path / "out", log=lambda line: None)  # a smaller spec never drops finished rows
    assert (tmp_path / "out" / "results.csv").read_bytes() == before


def test_a_cell_whose_run_cannot_be_saved_stops_the_sweep_and_is_redone_on_the_rerun(tmp_path, capsys,
                                                                                       monkeypatch) -> None:
    """A full disk used to make every cell a finished row with an error and exit 0, naming run
    folders that did not exist, and a rerun skipped them. Now the sweep stops with exit 2 at the
    first unsaved run, results.csv keeps only cells whose runs exist, and the rerun redoes the rest.
    The engine runs `run_cell` in this process, so the monkeypatched disk reaches it."""
    import errno

    from sgm_core import checkpoint

    asked: list[int] = []

    def engine(tasks, workers, address, gpus):
        for cell, run_dir in tasks:
            asked.append(cell.settings["seed"])
            yield cell, sweeps.run_cell(dict(cell.settings), run_dir)

    real_write = checkpoint._write_synced

    def full_disk(path, blob):  # the disk fills up while the second cell's run is written
        if path.parent.name.startswith(".1-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, blob)

    monkeypatch.setattr(sweeps, "ENGINES", {"local": engine})
    monkeypatch.setattr(checkpoint, "_write_synced", full_disk)
    spec, out = write_spec(tmp_path, 'seed = [0, 1, 2]\nsteps = 5\nbatch = 32\nn = 50\nsample_steps = 2\n'
                                     'likelihood = false\n'), tmp_path / "out"
    code, _, err = sgm_cli(["sweep", spec, "--out", out], capsys)
    message = err.splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err
    assert message.startswith("sgm: error: sweep stopped: cell 1-") and "No space left on device" in message
    assert "the 1 finished cell(s) are in" in message and "rerun the same command to resume" in message
    assert asked == [0, 1], "no cell trains after the disk is full"
    assert [r["seed"] for r in read_rows(out)] == ["0"] and read_rows(out)[0]["error"] == ""
    assert sorted(p.name.split("-")[0] for p in (out / "runs").iterdir()) == ["0"], "no half-written run is left"

    monkeypatch.setattr(checkpoint, "_write_synced", real_write)  # space freed
    code, _, err = sgm_cli(["sweep", spec, "--out", out], capsys)
    assert code == 0 and "3 cells; skipping 1 finished; 2 to run" in err, err
    assert asked == [0, 1, 1, 2]
    rows = read_rows(out)
    assert [r["seed"] for r in rows] == ["0", "1", "2"] and all(r["error"] == "" for r in rows)
    assert all((out / r["run_dir"] / "config.json").is_file() for r in rows)


def _cut_last_row(text: str) -> str:
    return text[:-30]


def _cut_middle_row(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return lines[0] + lines[1][:15] + "\n" + "".join(lines[2:])


def _runaway_quote(text: str) -> str:  # csv.Error: field larger than field limit (131072)
    lines = text.splitlines(keepends=True)
    return lines[0] + lines[1] + '"' + "x" * 200_000 + "".join(lines[2:])


@pytest.mark.parametrize(("damage", "redone", "said"), [
    (_cut_last_row, [2], "its last row is cut short"),
    (lambda text: text[:-1], [2], "its last row is cut short"),  # only the newline lost: the fields look whole
    (_cut_middle_row, [0], "1 damaged row(s)"),
    (_runaway_quote, [1, 2], "unreadable from line 3 on (field larger than field limit"),
], ids=["cut-last-row", "cut-last-newline", "cut-middle-row", "runaway-quote"])
def test_a_damaged_results_file_redoes_the_damaged_cells(tmp_path, monkeypatch, damage, redone, said) -> None:
    """A truncated last row used to count as a finished cell (its run_dir and error columns empty)
    and a runaway quote was a csv.Error traceback; both now leave those cells to run again."""
    asked: list[int] = []

    def engine(tasks, workers, address, gpus):
        for cell, _ in tasks:
            asked.append(cell.settings["seed"])
            yield cell, {**cell.settings, "sw_ratio": 1.0, "train_seconds": 0.1, "sample_seconds": 0.1}

    monkeypatch.setattr(sweeps, "ENGINES", {"local": engine})
    spec, out, said_lines = {"seed": [0, 1, 2], "steps": 5}, tmp_path / "out", []
    sgm.sweep(spec, out, log=lambda line: None)
    good = (out / "results.csv").read_text()
    (out / "results.csv").write_text(damage(good))
    asked.clear()
    sgm.sweep(spec, out, log=said_lines.append)
    assert asked == redone
    assert said in said_lines[0] and "not counted as finished and run again" in said_lines[0]
    assert (out / "results.csv").read_text() == good


@pytest.mark.parametrize(("spec", "out", "words"), [
    (None, "out", "a sweep spec is a TOML file's path or a dict of its keys, not NoneType"),
    (42, "out", "not int"),
    ({"steps": 5}, None, "a sweep's out is a folder path, not NoneType"),
])
def test_the_api_refuses_a_spec_or_out_of_the_wrong_type_in_one_sentence(tmp_path, monkeypatch, spec, out,
                                                                         words) -> None:
    """sgm.sweep(None, ...) used to be a TypeError from pathlib."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(sgm.ConfigError, match=words):
        sgm.sweep(spec, out, log=lambda line: None)
    assert list(tmp_path.iterdir()) == []

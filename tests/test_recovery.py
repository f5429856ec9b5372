"""Crash recovery: unsaved work is written aside, a window that ends normally leaves nothing, and
the work of a window that died (killed, or ended by a signal) is offered back and restored whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from gui_helpers import TIMEOUT_MS, frame, open_window, small_config, wait
from process_helpers import gone_within

from app.main_window import MainWindow
from app.recovery import lost_sessions
from sgm_core.sessions import load_session

ROOT = Path(__file__).resolve().parents[1]
STEPS = 40
PROCESS_TIMEOUT_S = 120  # a spawned GUI and its engine child import torch: slow on a loaded 2-core box

pytestmark = pytest.mark.usefixtures("warm_torch")


def trained_window(qtbot, steps: int = STEPS) -> MainWindow:
    w = open_window(qtbot)
    w.session.set_run_config(small_config(steps=steps))
    w.session.set_particles(n_particles=200)
    w.actions_["train"].trigger()
    wait(qtbot, lambda: frame(w) is not None and frame(w).step == steps and not w.worker_state.training)
    return w


def write_aside(qtbot, w: MainWindow) -> Path:
    with qtbot.waitSignal(w.recovery.written, timeout=TIMEOUT_MS) as blocker:
        w.recovery.autosave()
    return Path(blocker.args[0])


def score_on_probe(qtbot, w: MainWindow) -> np.ndarray:
    out: list[np.ndarray] = []

    def probe(engine) -> None:  # noqa: ANN001 - LiveEngine, worker thread
        x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out.append(engine.trainer.score_fn()(x, torch.full((32,), 0.3)).numpy().copy())

    w.worker.call(probe)
    wait(qtbot, lambda: out)
    return out[0]


def test_unsaved_work_is_written_aside_whole_and_a_normal_close_removes_it(qtbot):
    w = trained_window(qtbot)
    assert w.files.is_dirty()
    path = write_aside(qtbot, w)
    state = load_session(path)  # a real session file: the data, the settings and the trained model
    np.testing.assert_array_equal(state.points, w.session.points)
    assert state.step == STEPS and state.model is not None
    note = json.loads(path.with_suffix(".json").read_text())
    assert note["step"] == STEPS and note["n_points"] == len(w.session.points) and note["document"] is None
    assert lost_sessions(path.parent) == []  # its window still runs: nobody else is offered it
    w.close()  # answered Discard (conftest): the user chose to lose it
    assert not path.exists() and not path.with_suffix(".json").exists() and not path.with_suffix(".lock").exists()


def test_nothing_is_written_again_until_the_work_changes_and_a_save_removes_it(qtbot, tmp_path):
    w = trained_window(qtbot)
    path = write_aside(qtbot, w)
    written = path.stat().st_mtime_ns
    w.recovery.autosave()  # same work: nothing to write
    qtbot.wait(300)
    assert path.stat().st_mtime_ns == written
    with qtbot.waitSignal(w.files.saved, timeout=TIMEOUT_MS):
        w.files.save_to(tmp_path / "kept.sgm")
    wait(qtbot, lambda: not path.exists())  # saved: nothing unsaved to keep aside
    assert not w.files.is_dirty()
    w.close()


def test_a_window_ended_by_a_signal_keeps_its_work_and_the_next_window_restores_it(qtbot):
    old = trained_window(qtbot)
    old.session.add_points(np.array([[3.5, -3.5], [3.6, -3.4]], np.float32))  # an edit after training too
    points, scores = old.session.points.copy(), score_on_probe(qtbot, old)
    old.end_by_signal()  # what SIGTERM / Ctrl+C does: write aside, close without asking
    wait(qtbot, lambda: old.close_seconds is not None)
    kept = lost_sessions(old.recovery.folder)
    assert len(kept) == 1 and kept[0].step == STEPS and kept[0].n_points == len(points)

    new = open_window(qtbot)
    bar = new.recovery_bar
    assert bar.isVisible() and f"trained {STEPS} steps" in bar.text() and f"{len(points):,} points" in bar.text()
    with qtbot.waitSignal(new.files.opened, timeout=TIMEOUT_MS):
        bar.restore_button.click()
    wait(qtbot, lambda: frame(new) is not None and frame(new).step == STEPS)
    np.testing.assert_array_equal(new.session.points, points)  # the drawing, edit included
    np.testing.assert_allclose(score_on_probe(qtbot, new), scores, atol=1e-6)  # the very weights
    assert new.files.path is None and new.files.is_dirty() and new.isWindowModified()  # untitled, unsaved
    assert not bar.isVisible() and not kept[0].session.exists()  # it lives on in this window now
    recent = new.recent_files()
    assert not any("recovery" in p for p in recent)  # the recovery file never becomes a recent file
    again = write_aside(qtbot, new)  # and this window keeps it aside in turn
    assert again != kept[0].session and load_session(again).step == STEPS
    new.close()


def test_discard_deletes_the_lost_session_and_the_next_one_is_offered(qtbot):
    for steps in (20, 30):
        w = trained_window(qtbot, steps)
        w.end_by_signal()
        wait(qtbot, lambda w=w: w.close_seconds is not None)
    new = open_window(qtbot)
    bar = new.recovery_bar
    assert "trained 30 steps" in bar.text() and "1 more" in bar.text()  # the newest first
    bar.discard_button.click()
    assert bar.isVisible() and "trained 20 steps" in bar.text() and "more" not in bar.text()
    bar.discard_button.click()
    assert not bar.isVisible() and lost_sessions(new.recovery.folder) == []
    new.close()


def test_an_unreadable_recovery_file_is_reported_and_kept_until_discarded(qtbot):
    w = trained_window(qtbot)
    w.end_by_signal()
    wait(qtbot, lambda: w.close_seconds is not None)
    path = w.recovery.path
    path.write_bytes(b"PK\x03\x04 not a session any more")
    new = open_window(qtbot)
    assert new.recovery_bar.isVisible()
    with qtbot.waitSignal(new.files.open_failed, timeout=TIMEOUT_MS):
        new.recovery_bar.restore_button.click()
    assert new.banner.isVisible() and "not opened" in new.banner.text()
    assert new.recovery_bar.isVisible() and path.exists()  # offered again: only Discard deletes it
    assert len(new.session.points) == 5000 and new.files.path is None  # the window's own data is untouched
    new.recovery_bar.discard_button.click()
    assert not path.exists()
    new.close()


def test_a_failed_write_is_said_once_and_the_work_stays_on_screen(qtbot, tmp_path, monkeypatch):
    w = trained_window(qtbot)
    said: list[str] = []
    monkeypatch.setattr(w, "show_error", said.append)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    w.recovery.folder = blocker / "recovery"  # cannot be made, as on a read-only disk
    w.recovery.path, w.recovery.note = w.recovery.folder / "s.sgm", w.recovery.folder / "s.json"
    w.recovery.autosave()
    w.recovery.autosave()
    assert len(said) == 1 and "could not be written aside for recovery" in said[0] and "a-file" in said[0]
    w.recovery.folder = tmp_path / "ok"  # the disk has room again: it writes, and a later failure is said anew
    w.recovery.path, w.recovery.note = w.recovery.folder / "s.sgm", w.recovery.folder / "s.json"
    write_aside(qtbot, w)
    assert load_session(w.recovery.path).step == STEPS and frame(w).step == STEPS
    w.close()


def test_a_full_disk_is_said_once_leaves_no_partial_file_and_the_next_write_lands(qtbot, tiny_disk, monkeypatch):
    from full_disk import fill

    w = trained_window(qtbot)
    said: list[str] = []
    monkeypatch.setattr(w, "show_error", said.append)
    r = w.recovery
    r.folder, r.path, r.note = tiny_disk, tiny_disk / "s.sgm", tiny_disk / "s.json"
    fill(tiny_disk, leave=4096)  # the lock file fits; the session does not
    r.autosave()
    wait(qtbot, lambda: said and not r._writing)
    r.autosave()  # the next minute: tried again, not said again
    wait(qtbot, lambda: not r._writing)
    assert len(said) == 1 and "could not be written aside for recovery" in said[0], said
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "s.lock"]  # nothing half-written
    (tiny_disk / "filler").unlink()  # room again
    write_aside(qtbot, w)
    assert load_session(r.path).step == STEPS and frame(w).step == STEPS  # and the work on screen never moved
    w.close()
    assert sorted(p.name for p in tiny_disk.iterdir()) == []


DRIVER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def main():
        app = QApplication([])
        app.setOrganizationName("ScoreFieldPlayground")
        app.setApplicationName("Playground")
        from app.main import run_window
        from app.main_window import MainWindow
        w = MainWindow(data=None)
        w.confirm_discard = lambda *a: (_ for _ in ()).throw(AssertionError("asked on a signal"))
        w.show()
        while not w.worker.is_running() or w.worker.device is None:
            app.processEvents(); time.sleep(0.01)
        rng = np.random.default_rng(7)
        w.session.add_points(rng.normal(size=(300, 2)).astype(np.float32))
        w.recovery.written.connect(lambda path: print("written", path, flush=True))
        if sys.argv[1] == "kill":
            w.recovery.autosave()  # the minute's tick, now
        ready = lambda: print("ready", w.worker.pid, w.recovery.folder, flush=True)
        QTimer.singleShot(0, ready)  # once run_window listens for signals
        raise SystemExit(run_window(app, w))

    if __name__ == "__main__":
        main()
""")


def _drawn_points() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(300, 2)).astype(np.float32)


def _start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, int, Path, list[str]]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SGM_ENGINE": "process", "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}  # its window's settings stay its own
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if line.startswith("ready"):
            _, child, folder = line.split(maxsplit=2)
            return proc, int(child), Path(folder.strip()), lines
    proc.kill()
    raise AssertionError(f"the driver did not get ready: {lines} {proc.stderr.read()}")


def _restore_into_new_window(qtbot, folder: Path) -> MainWindow:
    new = open_window(qtbot)
    new.recovery.folder = folder
    assert new.recovery.offer() is not None and new.recovery_bar.isVisible()
    with qtbot.waitSignal(new.files.opened, timeout=TIMEOUT_MS):
        new.recovery_bar.restore_button.click()
    wait(qtbot, lambda: len(new.session.points) == 300)
    np.testing.assert_array_equal(new.session.points, _drawn_points())
    assert new.files.is_dirty()
    return new


@pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not Path("/proc/self/stat").exists(),
                    reason="POSIX signals, /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_to_the_process_group_writes_the_work_aside_and_ends_everything(qtbot, tmp_path, sig):
    proc, child, folder, _lines = _start(tmp_path, "signal")
    try:
        os.killpg(proc.pid, sig)  # as Ctrl+C in its terminal, or a logout, signals every process of the group
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, (out, err)
    assert f"ended by {signal.Signals(sig).name}; the unsaved work was written aside" in err
    assert "Traceback" not in err and "leaked" not in err, err  # the engine child ignored it and was ended cleanly
    assert "written" in out
    assert gone_within(child, 5.0), "the engine process outlived its window"
    new = _restore_into_new_window(qtbot, folder)
    assert lost_sessions(folder) == []
    new.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_killed_window_loses_nothing_written_aside(qtbot, tmp_path):
    shm = Path("/dev/shm")
    before = set(shm.glob("psm_*")) if shm.is_dir() else set()
    proc, _child, folder, lines = _start(tmp_path, "kill")
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not any(line.startswith("written") for line in lines) and time.monotonic() < deadline:
            lines.append(proc.stdout.readline().strip())
        os.killpg(proc.pid, signal.SIGKILL)  # the window, and its engine: no clean-up of any kind
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        time.sleep(0.5)  # the engine child's death, then no process is left to unlink its frame ring
        for leaked in (set(shm.glob("psm_*")) if shm.is_dir() else set()) - before:
            leaked.unlink(missing_ok=True)  # SIGKILL to the whole group, resource tracker included: ours to clean
    new = _restore_into_new_window(qtbot, folder)
    new.close()

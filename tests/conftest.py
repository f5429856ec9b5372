"""Test set-up shared by every test: a Qt platform that works without a screen, settings that
never touch the user's, and a fixture that fails any test leaving a thread running.

Qt is not imported here (the core's tests prove `sgm_core` loads no Qt); the Qt parts act only
once a test module has imported PySide6.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

# pytest-xvfb starts Xvfb and sets DISPLAY in its own pytest_configure, after this file is read:
# only when there is neither a display nor an Xvfb to start do we fall back to offscreen.
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and not shutil.which("Xvfb"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Offscreen's one screen is 800x800: windows opened at their default size were cut to it and a
# class-colour test found a 73 px wide canvas. Give it the desktop-sized screen Xvfb gets
# (pyproject's xvfb_width/height), through the plugin's own screen file.
OFFSCREEN_SCREEN = {"screens": [{"name": "desktop", "x": 0, "y": 0, "width": 1920, "height": 1200,
                                 "logicalDpi": 96, "dpr": 1}]}
if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
    _screen_file = os.path.join(tempfile.mkdtemp(prefix="sgm-test-screen-"), "screen.json")
    with open(_screen_file, "w", encoding="utf-8") as _f:
        json.dump(OFFSCREEN_SCREEN, _f)
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_screen_file}"

# Windows run the engine in a thread of this process (the same sgm_core.engine.Engine as the
# engine process): a spawned engine costs every window ~2 s of start-up, and tests monkeypatch its
# constants. tests/test_engine_process.py runs windows against a real child (SGM_ENGINE=process).
os.environ.setdefault("SGM_ENGINE", "thread")

# Belt and braces: even a QSettings made before the per-test path is set lands in a temp dir.
_SETTINGS_HOME = tempfile.mkdtemp(prefix="sgm-test-settings-")
os.environ["XDG_CONFIG_HOME"] = _SETTINGS_HOME
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="sgm-test-data-")

THREAD_GRACE_S = 2.0  # a thread still running this long after teardown has leaked
KNOWN_DAEMONS = ("tqdm_monitor",)  # process-wide helpers that libraries start once and keep
TINY_DISK_KB = 1536  # a full-disk test's tmpfs: room for a small render or run, filled in a blink


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests use tiny tensors: with 2 intra-op threads on a busy 2-core box they ran up to 10x
    slower (test_losses 22 s -> 2 s with one thread, measured)."""
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def warm_torch():
    """Torch imported and one Adam step taken before a GUI test's first Train (not autouse, and
    app.workers imported only here, so core-only runs never load Qt)."""
    from app.workers import warm_up_torch

    warm_up_torch()


@pytest.fixture(autouse=True)
def temp_qsettings(tmp_path, monkeypatch):
    """Every test gets empty QSettings in its own temporary folder, and a data folder of its own
    (app/recovery.py writes unsaved work aside under XDG_DATA_HOME)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    if "PySide6.QtCore" in sys.modules:
        from PySide6.QtCore import QSettings

        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
            for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
                QSettings.setPath(fmt, scope, str(tmp_path / "qsettings"))
    yield


@pytest.fixture(autouse=True)
def discard_unsaved_work_on_close(monkeypatch):
    """Windows never wait on the Save / Discard / Cancel or "Discard the trained model?" questions:
    here they are answered Discard (tests of a question replace it on their window)."""
    main_window = sys.modules.get("app.main_window")
    if main_window is not None:
        monkeypatch.setattr(main_window.MainWindow, "ask_unsaved_changes", lambda self, answer: answer("discard"),
                            raising=False)  # raising=False: a checkout whose window predates the question
        monkeypatch.setattr(main_window.MainWindow, "ask_discard_model", lambda self, steps, reason, answer: answer(True),
                            raising=False)  # "Discard the trained model?": tests that ask replace it on their window
    yield


def _running_qthreads() -> set:
    threads = sys.modules.get("app.queued_worker")
    return set(threads.running_threads()) if threads is not None else set()


def _leaked_threads(before: set[threading.Thread], before_q: set) -> list[str]:
    names = []
    for t in threading.enumerate():
        # _DummyThread: Python's record of a foreign (Qt) thread; QThreads are checked below.
        if t in before or not t.is_alive() or isinstance(t, threading._DummyThread):
            continue
        if t.daemon and t.name in KNOWN_DAEMONS:
            continue
        names.append(f"threading.Thread {t.name!r}")
    names += [f"QThread {q.objectName()!r}" for q in _running_qthreads() - before_q]
    return names


@pytest.fixture(autouse=True)
def no_thread_leak():
    """Fail a test that leaves a QThread or a Python thread running after its teardown.

    Autouse fixtures are set up first and torn down last, so this runs after pytest-qt has closed
    the test's widgets (which stops their workers)."""
    before, before_q = set(threading.enumerate()), _running_qthreads()
    yield
    deadline = time.monotonic() + THREAD_GRACE_S
    leaked = _leaked_threads(before, before_q)
    while leaked and time.monotonic() < deadline:
        if "PySide6.QtCore" in sys.modules:
            from PySide6.QtCore import QCoreApplication

            if QCoreApplication.instance() is not None:
                QCoreApplication.processEvents()
        threading.Event().wait(0.01)
        leaked = _leaked_threads(before, before_q)
    if not leaked:
        # No app thread runs now, so collection in any thread is safe again: the tests that follow
        # (most of them core-only) get Python's automatic GC back; a worker's start switches it off.
        gc.enable()
    if leaked:
        pytest.fail(f"test left threads running: {', '.join(leaked)}")


@pytest.fixture
def tiny_disk(tmp_path):
    """A fresh TINY_DISK_KB tmpfs under tmp_path, unmounted afterwards (lazily, if a file is still open)."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TINY_DISK_KB}k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)

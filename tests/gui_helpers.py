"""Helpers shared by the GUI tests: waiting on a condition, a tiny run config, and an open window.

Imported as `from gui_helpers import ...` (tests/ is on sys.path under pytest's default "prepend"
import mode). The torch warm-up these tests want lives in conftest.py as the `warm_torch` fixture.
"""

from __future__ import annotations

from dataclasses import replace

# Imported with the test module, not lazily: conftest's discard_unsaved_work_on_close patches the
# window only when app.main_window is already loaded as a test starts.
from app.main_window import MainWindow
from sgm_core.config import RunConfig

TIMEOUT_MS = 30_000  # generous for a loaded 2-core CI machine; typical waits are well under 2 s
N_POINTS = 5000  # points in a preset as the window loads it


def wait(qtbot, predicate, timeout: int = TIMEOUT_MS) -> None:
    """Process events until predicate() is truthy (pytest-qt insists on a strict bool)."""
    qtbot.waitUntil(lambda: bool(predicate()), timeout=timeout)


def ask_engine(qtbot, window, fn):  # noqa: ANN001, ANN201 - what fn(engine) returns
    """fn(engine), run in the engine's host after every command sent before, and waited for."""
    got: list = []
    window.worker.call(lambda eng: got.append(fn(eng)))
    wait(qtbot, lambda: got)
    return got[0]


def small_config(steps: int = 200, loss: str | None = None, **train) -> RunConfig:
    """A 32x2 net and batch 128, so a test trains in a second or two on one core; `train` overrides
    other training settings (e.g. lr), `loss` names the loss (default: RunConfig's)."""
    cfg = RunConfig()
    if loss is not None:
        cfg = replace(cfg, loss=replace(cfg.loss, name=loss))
    return replace(cfg, model=replace(cfg.model, width=32, depth=2),
                   train=replace(cfg.train, steps=steps, batch=128, **train))


def open_window(qtbot, data: str | None = "8gaussians", size: tuple[int, int] | None = None,
                timeout: int = TIMEOUT_MS) -> MainWindow:
    """A shown CPU window on `data`, its points loaded (None: no data, nothing to wait for)."""
    w = MainWindow(data=data, device="CPU")
    qtbot.addWidget(w)
    if size is not None:
        w.resize(*size)
    w.show()
    if data is not None:  # the points, and the σ max the window chooses from them
        wait(qtbot, lambda: len(w.session.points) == N_POINTS and not w.sigma_max_pending, timeout)
    return w


def frame(window: MainWindow):  # noqa: ANN201
    return window.session.last_frame

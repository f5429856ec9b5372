"""What a feature may use of the window (STYLE.md habit 16): a narrow context, not the window.

A feature (the exports, the figure export, ...) gets a `FeatureContext`: the session, the engine
link, the action registry, a notifier for the banner and the status bar, the file questions, the
canvas, and the parent for its dialogs. It never reaches into the window's private members, so it
can be built and tested against a plain Plot2D and a recording notifier, without a window.

The window's side is `window_context`: small adapters that look the window's public methods up
when called (tests replace `ask_save_path` on the window after it is built).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from .main_window import MainWindow
    from .session import Session
    from .views.plot2d import Plot2D


class ActionRegistry:
    """The window's named actions: features add theirs here and look others up by key (the
    toolbar, the menus, the shortcut list and tests read the same mapping)."""

    def __init__(self, owner: QWidget, actions: dict[str, QAction] | None = None) -> None:
        self._owner = owner
        self.actions: dict[str, QAction] = actions if actions is not None else {}

    def add(self, key: str, text: str, tip: str, shortcut: str | QKeySequence | None = None,
            slot: Callable[..., Any] | None = None, checkable: bool = False) -> QAction:
        """A new action `key`; its tooltip names its shortcut, which works wherever the focus is."""
        action = QAction(text, self._owner)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            tip = f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})"
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.setCheckable(checkable)
        if slot is not None:
            action.triggered.connect(slot)
        self._owner.addAction(action)  # shortcuts work even when a dock is hidden
        self.actions[key] = action
        return action

    def get(self, key: str) -> QAction | None:
        return self.actions.get(key)

    def __getitem__(self, key: str) -> QAction:
        return self.actions[key]

    def __contains__(self, key: object) -> bool:
        return key in self.actions


class Notifier(Protocol):
    """Messages to the user: the banner for a problem, the status bar for news."""

    def error(self, message: str) -> None: ...

    def status(self, text: str, ms: int = 4000) -> None: ...


class FileQuestions(Protocol):
    """Every save / open file question (tests answer them)."""

    def ask_save_path(self, title: str, file_filter: str, default: str = "") -> str | None: ...

    def ask_open_path(self, title: str, file_filter: str, default: str = "") -> str | None: ...


class Canvas(Protocol):
    """The view in the middle: the 2D plot always exists; in 3D mode the GL view is shown instead."""

    @property
    def plot(self) -> Plot2D: ...

    @property
    def is_3d(self) -> bool: ...

    def active_view(self) -> QWidget:
        """The view shown now (the 2D plot, or the 3D view)."""

    def camera_angles(self) -> tuple[float, float] | None:
        """(azimuth, elevation) of the 3D camera in 3D mode, else None."""


@dataclass(frozen=True)
class FeatureContext:
    """Exactly what a feature may use of the window."""

    session: Session
    engine: Any  # the engine link (app.engine_link / queued_worker): typed commands, EngineTasks
    actions: ActionRegistry
    notifier: Notifier
    questions: FileQuestions
    canvas: Canvas
    parent: QWidget  # the dialogs' parent (window-modal)
    session_path: Callable[[], Path | None]  # the open session file, for default folders


# -- the window's side ----------------------------------------------------------------------------
class _WindowNotifier:
    def __init__(self, window: MainWindow) -> None:
        self._window = window

    def error(self, message: str) -> None:
        self._window.show_error(message)

    def status(self, text: str, ms: int = 4000) -> None:
        self._window.statusBar().showMessage(text, ms)


class _WindowQuestions:
    def __init__(self, window: MainWindow) -> None:
        self._window = window

    def ask_save_path(self, title: str, file_filter: str, default: str = "") -> str | None:
        return self._window.ask_save_path(title, file_filter, default)

    def ask_open_path(self, title: str, file_filter: str, default: str = "") -> str | None:
        return self._window.ask_open_path(title, file_filter, default)


class _WindowCanvas:
    """The 2D plot and, once the window has built it, the 3D mode (app/mode3d.py)."""

    def __init__(self, window: MainWindow) -> None:
        self._window = window

    @property
    def plot(self) -> Plot2D:
        return self._window.plot

    @property
    def _mode3d(self):  # noqa: ANN202 - Mode3D, built after the exporters
        return getattr(self._window, "mode3d", None)

    @property
    def is_3d(self) -> bool:
        mode3d = self._mode3d
        return mode3d is not None and mode3d.is_3d

    def active_view(self) -> QWidget:
        mode3d = self._mode3d
        return mode3d.active_view() if mode3d is not None else self._window.plot

    def camera_angles(self) -> tuple[float, float] | None:
        return self._mode3d.camera_angles() if self.is_3d else None


def window_context(window: MainWindow, actions: ActionRegistry) -> FeatureContext:
    """The window's features' context (built once, before the features)."""

    def session_path() -> Path | None:
        files = getattr(window, "files", None)
        return files.path if files is not None else None

    return FeatureContext(session=window.session, engine=window.worker, actions=actions,
                          notifier=_WindowNotifier(window), questions=_WindowQuestions(window),
                          canvas=_WindowCanvas(window), parent=window, session_path=session_path)

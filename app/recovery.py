"""Crash recovery: unsaved work is written aside every minute and offered back after a crash.

A killed, crashed or powered-off window would otherwise lose everything since the last Save: the
drawing, the settings and the trained model. So while the session is unsaved, `Recovery` writes
it (the same .sgm a Save writes, through the engine, atomically) to a recovery folder every
`AUTOSAVE_S` seconds, with a small JSON note of what it is. A window that ends normally removes
its files (the user saved, or answered Discard); one that dies cannot, and the next window to
open finds them and offers them in a bar above the canvas: Restore opens the session as it was,
unsaved and standing for the file it had (or untitled); Discard deletes it.

Whose files are whose: each window holds a `QLockFile` beside its files for as long as it lives.
A file whose lock can be taken belongs to a window that is gone (QLockFile sees a dead owner's
pid, and a pid reused by another program, as stale), so two windows open at once never offer
each other's work.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtWidgets import QBoxLayout, QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from .context import FeatureContext
from .session_io import SavedSession, SessionFiles, write_session

AUTOSAVE_S = 60.0  # seconds between writes while there is unsaved work
WIDE_BAR_PX = 640  # narrower than this, the offer's buttons go under its text
_WINDOWS = itertools.count(1)  # several windows in one process each keep files of their own


def recovery_folder() -> Path:
    """Where recovery files live: the application's local data folder (not the user's documents)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
    return Path(base or Path.home() / ".score-field-playground") / "recovery"


@dataclass(frozen=True)
class RecoveryFile:
    """A lost window's unsaved session: its .sgm, its note, and what the note says."""

    session: Path
    note: Path
    saved_at: float  # time.time() of the write
    title: str  # what the window's title showed
    document: Path | None  # the session file it had (None: untitled)
    step: int  # training steps it holds
    n_points: int

    def describe(self) -> str:
        when = time.strftime("%a %d %b, %H:%M", time.localtime(self.saved_at))
        trained = f", trained {self.step:,} steps" if self.step else ""
        return f"“{self.title}”, {self.n_points:,} points{trained} ({when})"

    def remove(self) -> None:
        for path in (self.session, self.note, self.session.with_suffix(".lock")):
            path.unlink(missing_ok=True)


def _read_note(note: Path) -> RecoveryFile | None:
    """The note and its session, or None when either is missing or unreadable (a half-written pair)."""
    session = note.with_suffix(".sgm")
    try:
        raw = json.loads(note.read_text(encoding="utf-8"))
        document = raw.get("document")
        found = RecoveryFile(session, note, float(raw["saved_at"]), str(raw["title"]),
                             Path(document) if document else None, int(raw["step"]), int(raw["n_points"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if session.is_file() else None


def lost_sessions(folder: Path) -> list[RecoveryFile]:
    """Recovery files whose window is gone, newest first."""
    found = []
    for note in sorted(folder.glob("session-*.json")):
        lock = QLockFile(str(note.with_suffix(".lock")))
        lock.setStaleLockTime(0)  # stale only when its owner is dead, however long a live window has held it
        if not lock.tryLock(0):
            continue  # its window still runs
        lock.unlock()
        entry = _read_note(note)
        if entry is not None:
            found.append(entry)
    return sorted(found, key=lambda f: f.saved_at, reverse=True)


class RecoveryBar(QFrame):
    """The offer above the canvas: what was lost, Restore, Discard."""

    restore_clicked = Signal()
    discard_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("recoveryBar")
        self.setStyleSheet("#recoveryBar { background: #e8f0fe; border: 1px solid #9db7e8; border-radius: 4px; }"
                           "#recoveryBar QLabel { color: #1a3a6e; }")
        layout = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.setSpacing(4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip("Open the unsaved session as it was when it was written aside")
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Delete the unsaved session for good")
        self.restore_button.clicked.connect(self.restore_clicked)
        self.discard_button.clicked.connect(self.discard_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.discard_button)
        layout.addWidget(self.label, 1)
        layout.addLayout(buttons)
        self.hide()

    def offer(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        """Buttons beside the text where there is room, under it in a narrow canvas column (at
        1024x700 beside them the text wrapped to 8 lines and took 136 px from the canvas)."""
        super().resizeEvent(event)
        wide = event.size().width() >= WIDE_BAR_PX
        direction = QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        if self.layout().direction() != direction:
            self.layout().setDirection(direction)

    def text(self) -> str:
        return self.label.text()


class Recovery(QObject):
    """Writes this window's unsaved session aside, and offers back those of windows that died."""

    written = Signal(str)  # the recovery file, each time it was written

    def __init__(self, ctx: FeatureContext, files: SessionFiles, bar: RecoveryBar, folder: Path | None = None,
                 interval_s: float = AUTOSAVE_S) -> None:
        super().__init__(ctx.parent)
        self.ctx, self.files, self.bar = ctx, files, bar
        self.folder = folder if folder is not None else recovery_folder()
        stem = f"session-{os.getpid()}-{next(_WINDOWS)}"
        self.path = self.folder / f"{stem}.sgm"  # this window's recovery file
        self.note = self.folder / f"{stem}.json"
        self._lock: QLockFile | None = None
        self._written: tuple[object, ...] | None = None  # the work signature last written aside
        self._writing = False
        self._failed_once = False  # an autosave failure is said once, not every minute
        self._then: list[Callable[[], None]] = []  # run once the write in flight lands (or fails)
        self._offered: RecoveryFile | None = None  # shown in the bar
        self._restoring: RecoveryFile | None = None  # being opened
        self.timer = QTimer(self, interval=int(interval_s * 1000))
        self.timer.timeout.connect(self.autosave)
        self.timer.start()
        bar.restore_clicked.connect(self.restore)
        bar.discard_clicked.connect(self.discard_offered)
        files.opened.connect(self._on_opened)
        files.open_failed.connect(self._on_open_failed)
        files.saved.connect(lambda _path: self.autosave())  # saved: nothing to keep aside any more

    # -- this window's work ----------------------------------------------------------------
    def _hold_lock(self) -> str | None:
        """Take this window's lock (once); what went wrong, or None."""
        if self._lock is None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return f"{self.folder}: {exc.strerror or exc}"
            lock = QLockFile(str(self.path.with_suffix(".lock")))
            lock.setStaleLockTime(0)  # held for the window's whole life: never stale while it runs
            if not lock.tryLock(0):
                return f"{self.path.with_suffix('.lock')}: cannot be locked ({lock.error().name})"
            self._lock = lock
        return None

    def autosave(self, then: Callable[[], None] | None = None) -> None:
        """Write the session aside when it has unsaved work not yet written; remove the files when
        there is none. `then` runs once that is done (at once when there is nothing to do)."""
        if then is not None:
            self._then.append(then)
        if self._writing:
            return  # `then` runs when the write in flight lands
        files = self.files
        if not files.is_dirty():
            self.remove_own()
        elif files.opening:
            pass  # the engine is being replaced: write on the next tick
        elif (signature := files.work_signature()) != self._written:
            problem = self._hold_lock()
            if problem is not None:
                self._on_write_failed(problem)
                return
            request = files.save_request(self.path)
            self._writing = True
            files.tasks.submit(partial(write_session, request), lambda done: self._on_written(done, signature),
                               self._on_write_failed)
            return
        self._run_then()

    def _on_written(self, done: SavedSession, signature: tuple[object, ...]) -> None:
        self._writing, self._written, self._failed_once = False, signature, False
        document = self.files.path
        note = {"saved_at": time.time(), "title": self.files.title_name(), "document": str(document) if document else None,
                "step": done.step, "n_points": int(len(self.ctx.session.points))}
        scratch = self.note.with_suffix(".json.tmp")
        try:
            scratch.write_text(json.dumps(note), encoding="utf-8")
            scratch.replace(self.note)  # the note lands whole, after its session: a pair is never half there
        except OSError as exc:
            scratch.unlink(missing_ok=True)
            self._on_write_failed(f"{self.note}: {exc.strerror or exc}")
            return
        self.written.emit(str(self.path))
        self._run_then()

    def _on_write_failed(self, message: str) -> None:
        self._writing = False
        if not self._failed_once:
            self._failed_once = True
            self.ctx.notifier.error(f"unsaved work could not be written aside for recovery: {message}")
        self._run_then()

    def _run_then(self) -> None:
        waiting, self._then = self._then, []
        for then in waiting:
            then()

    def remove_own(self) -> None:
        """Nothing unsaved (or the user discarded it): this window's recovery files go."""
        self.path.unlink(missing_ok=True)
        self.note.unlink(missing_ok=True)
        self._written = None

    def release(self, keep: bool = False) -> None:
        """The window closes: stop writing; its files go unless `keep` (ended by a signal)."""
        self.timer.stop()
        if not keep:
            self.remove_own()
        if self._lock is not None:
            self._lock.unlock()  # removes the lock file: a kept session is offered to the next window
            self._lock = None

    # -- lost windows' work ----------------------------------------------------------------
    def offer(self) -> RecoveryFile | None:
        """Show the newest lost session in the bar (or hide it when there is none)."""
        lost = [f for f in lost_sessions(self.folder) if f.session != self.path]
        self._offered = lost[0] if lost else None
        if self._offered is None:
            self.bar.hide()
            return None
        more = f" ({len(lost) - 1} more after this one)" if len(lost) > 1 else ""
        self.bar.offer(f"Not saved when the playground last ended: {self._offered.describe()}.{more}")
        return self._offered

    def restore(self) -> None:
        """Open the offered session; its files go once it is open (`_on_opened`)."""
        found = self._offered
        if found is None:
            return
        self.bar.hide()
        self._restoring = found
        self.files.open_recovered(found.session, found.document)  # Cancel to its question: offered next time

    def discard_offered(self) -> None:
        found, self._offered = self._offered, None
        if found is not None:
            found.remove()
            self.ctx.notifier.status("The unsaved session was discarded", 4000)
        self.offer()

    def _on_opened(self, path: str) -> None:
        found = self._restoring
        if found is not None and Path(path) == found.session:
            self._restoring = self._offered = None
            found.remove()  # it lives on in this window, which writes it aside again while unsaved
            self.ctx.notifier.status(f"Restored {found.describe()}: unsaved until you save it", 8000)
            self._written = None
            self.autosave()
            self.offer()

    def _on_open_failed(self, _message: str) -> None:
        if self._restoring is not None:
            self._restoring = None  # the banner says why; the file stays, offered again (Discard deletes it)
            self.offer()

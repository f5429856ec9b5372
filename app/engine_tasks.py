"""Work sent to the engine worker with a callback for its answer: `EngineTasks` routes each reply
(by a token no other task shares) to the GUI-thread callback that asked for it. Sessions, exports,
the steps window and compare's "use the main window's model" all ask the engine this way."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from sgm_core.live import LiveEngine

from .workers import EngineSpec, EngineWorker

_TOKENS = itertools.count(1)  # one token space for every EngineTasks: answers never cross


class EngineTasks(QObject):
    """Run functions in the engine worker's thread; their results come back to callbacks here,
    in the GUI thread (`on_done(result)` or `on_fail(message)`)."""

    def __init__(self, worker: EngineWorker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self._pending: dict[int, tuple[Callable[[Any], None], Callable[[str], None]]] = {}
        worker.task_finished.connect(self._on_finished)
        worker.task_failed.connect(self._on_failed)

    def submit(self, fn: Callable[[LiveEngine | None], Any], on_done: Callable[[Any], None],
               on_fail: Callable[[str], None]) -> int:
        """fn(engine or None) runs in the worker; on_done gets what it returns."""
        token = next(_TOKENS)
        self._pending[token] = (on_done, on_fail)
        self.worker.run_task(token, fn)
        return token

    def replace_engine(self, build: Callable[[], tuple[LiveEngine | None, EngineSpec, Any]],
                       on_done: Callable[[Any], None], on_fail: Callable[[str], None]) -> int:
        """build() makes a new engine in the worker, which installs it; on_done gets the payload."""
        token = next(_TOKENS)
        self._pending[token] = (on_done, on_fail)
        self.worker.replace_engine(token, build)
        return token

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def _on_finished(self, token: int, result: object) -> None:
        callbacks = self._pending.pop(token, None)
        if callbacks is not None:
            callbacks[0](result)

    def _on_failed(self, token: int, message: str) -> None:
        callbacks = self._pending.pop(token, None)
        if callbacks is not None:
            callbacks[1](message)

"""The thread host of a Qt-free task (SGM_ENGINE=thread): a QThread of its own and a queue of typed
commands that any thread may post to.

The task (`self.core`: `sgm_core.engine.Engine` or `sgm_core.compare.CompareTask`) holds all the
state and the "the GUI drew the last frame" handshake (its `FrameDrawn` command), so frames never
pile up in the GUI's event queue (newest wins, never a backlog). The loop hands it the commands
posted since the last iteration (`handle`), runs one `work()`, and waits its `idle_timeout()`.
The process host (`sgm_core.engine_process` + app.engine_link) runs the very same tasks.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
import weakref
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Slot

IDLE_WAIT = 0.25  # seconds between checks when there is nothing to do (commands wake the loop early)
GC_INTERVAL_S = 1.0  # the GUI thread's garbage collection period (see collect_garbage_in_gui_thread)
ERROR_PAUSE = 0.05  # after an unexpected error, so a failing iteration never spins hot

_LIVE_THREADS: weakref.WeakSet[QThread] = weakref.WeakSet()


def running_threads() -> list[QThread]:
    """App threads that are still running (the test fixture fails a test that leaks one)."""
    return [t for t in list(_LIVE_THREADS) if t.isRunning()]


def collect_garbage_in_gui_thread() -> None:
    """Python's cyclic garbage collector runs in whichever thread happens to allocate when a
    threshold trips. When that is a worker thread and the garbage holds Qt objects made in the GUI
    thread (a closed window in a reference cycle), their destructors run in the worker and can
    deadlock against the GUI thread: seen here, the worker holding a Qt mutex and waiting for the
    GIL while the GUI thread held the GIL and waited for that mutex. So automatic collection is
    switched off and the GUI thread collects on a timer instead (pyqtgraph's GarbageCollector, made
    for exactly this). Call it from the GUI thread before starting a thread."""
    app = QCoreApplication.instance()
    if app is None:
        return
    if getattr(app, "gui_thread_gc", None) is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        app.gui_thread_gc = GarbageCollector(interval=GC_INTERVAL_S)
    gc.disable()  # again: a test harness may have switched it back on between windows


def track_thread(thread: QThread) -> None:
    """Count another app thread (e.g. an export job's) in `running_threads`, so leaks are caught."""
    _LIVE_THREADS.add(thread)


class QueuedWorker(QObject):
    """A QObject living in its own QThread that runs `self.core` (set by the subclass); public
    methods only enqueue, so they are thread-safe."""

    core: Any  # the task: handle(commands), work() -> busy, idle_timeout(), on_error(exc), close()

    def __init__(self, name: str, threads: int = 1) -> None:
        super().__init__()
        self.threads = threads
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName(name)
        track_thread(self._thread)
        self.moveToThread(self._thread)
        self._thread.started.connect(self._run)

    # -- lifecycle (GUI thread) -------------------------------------------------------------
    def start(self) -> None:
        collect_garbage_in_gui_thread()  # before any worker thread could run a collection
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def shutdown(self, timeout: float = 1.0) -> float:
        """Stop the loop and join the thread; returns the seconds it took.

        The loop notices the flag after its current piece of work (tens of ms). Should one piece
        take longer than `timeout` (e.g. a step over 100k particles), we keep waiting rather than
        destroy a running thread, which would abort the process.
        """
        t0 = time.monotonic()
        self._stop.set()
        self._wake.set()
        if self._thread.isRunning() and not self._thread.wait(int(timeout * 1000)):
            self._thread.wait()
        return time.monotonic() - t0

    # -- commands (any thread) --------------------------------------------------------------
    def send(self, command: object) -> None:
        """Post one typed command to the task and wake the loop."""
        self._queue.put(command)
        self._wake.set()

    def _pending(self) -> list[Any]:
        """Every command posted so far, oldest first (worker thread)."""
        commands = []
        while True:
            try:
                commands.append(self._queue.get_nowait())
            except queue.Empty:
                return commands

    # -- the loop (worker thread) -----------------------------------------------------------
    @Slot()
    def _run(self) -> None:
        import torch  # the thread host trains in this process (SGM_ENGINE=thread)

        torch.set_num_threads(self.threads)  # 1: no contention with the GUI thread (shared/FACTS.md)
        try:
            while not self._stop.is_set():
                try:
                    self._drain()
                    if self._stop.is_set():
                        break
                    if not self._work():
                        self._idle()
                except Exception as exc:  # noqa: BLE001 - report, pause, keep the loop alive
                    self._on_error(exc)
                    self._wake.wait(ERROR_PAUSE)
                    self._wake.clear()
        finally:
            self._on_exit()
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())  # let the GUI thread own (and delete) us again
            self._thread.quit()

    def _drain(self) -> None:
        self.core.handle(self._pending())

    def _work(self) -> bool:
        """One iteration; True while busy (the loop goes straight on), False to `_idle`."""
        return self.core.work()

    def _idle(self) -> None:
        self._wake.wait(self.core.idle_timeout())
        self._wake.clear()

    def _on_error(self, exc: Exception) -> None:
        """An unexpected error escaped `_work` or a command: the task stops what runs and says so."""
        self.core.on_error(exc)

    def _on_exit(self) -> None:
        """The loop ended: the task drops what holds memory (engines, tensors)."""
        self.core.close()

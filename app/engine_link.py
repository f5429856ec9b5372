"""The GUI's end of the engine process: the same Qt API as `EngineWorker`, across a pipe.

`EngineLink` spawns `sgm_core.engine_process.serve` (the `spawn` start method: the same on Linux,
macOS and Windows), sends it typed commands (callables inside them travel by value, with
cloudpickle) and turns its events back into the signals the window listens to. A socket notifier
on the pipe wakes the GUI thread when an event arrives; frames come through shared memory
(`sgm_core.frame_shm`). Nothing here touches torch state.

`make_engine()` picks the host: this process link, or (SGM_ENGINE=thread) the in-process
`EngineWorker` thread that runs the very same Engine (the test suite's windows use it: a spawned
engine costs each window ~2 s of start-up).
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util  # before _end_children_at_exit is registered: atexit runs the later one first
import os
import pickle
import time
import weakref
from collections.abc import Callable
from typing import Any

import cloudpickle
from PySide6.QtCore import QObject, QSocketNotifier, Signal

from sgm_core import engine as core
from sgm_core.engine import MAX_FPS, EngineSpec, EngineState
from sgm_core.engine_process import Ready, SetMaxFps, Shutdown, child_main
from sgm_core.frame_shm import FrameReader

from .engine_commands import EngineCommands


class ProcessHost(QObject):
    """A spawned child that runs one task loop (`sgm_core.engine_process.serve`): its pipe, its
    events on the GUI thread, its end and its death. Subclasses say what an event means (`_deliver`)."""

    ready = Signal(str)  # the child is up; its device label
    died = Signal(int)  # the child ended on its own; its exit code (negative: killed by a signal)

    task = "engine"  # what the child runs (sgm_core.engine_process.TASKS)
    default_fps = MAX_FPS

    def __init__(self, threads: int | None = None, max_fps: float | None = None) -> None:
        super().__init__()
        self.threads = int(threads or os.environ.get("SGM_WORKER_THREADS", 1))
        self._max_fps = self.default_fps if max_fps is None else float(max_fps)
        self.frames_emitted = 0  # frames received
        self.pid: int | None = None
        self.device: str | None = None  # set once ready
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn = None
        self._notifier: QSocketNotifier | None = None
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=child_main, args=(theirs, os.getpid(), self.threads, self.task),
                           name=f"sgm-{self.task}", daemon=True)
        proc.start()
        theirs.close()  # only the child holds that end now: its death reads as EOF here
        self._proc, self._conn, self.pid, self._closing = proc, ours, proc.pid, False
        _LIVE_HOSTS.add(self)
        self._started()
        self._notifier = QSocketNotifier(ours.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._on_readable)
        if self._max_fps != self.default_fps:
            self.send(SetMaxFps(self._max_fps))

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def shutdown(self, timeout: float = 1.0) -> float:
        """End the child process; returns the seconds it took (a second call is a no-op)."""
        t0 = time.monotonic()
        proc = self._proc
        if proc is None:
            return 0.0
        self._closing = True
        self._end_child(proc, timeout)
        self._detach(unlink=True)
        return time.monotonic() - t0

    def _end_child(self, proc: multiprocessing.process.BaseProcess, timeout: float) -> None:
        """Shutdown (the child unlinks its frames' shared memory), then a kill past `timeout`
        (SIGTERM would give a busy child TERM_GRACE_S more). No Qt object is touched."""
        self.send(Shutdown())
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join()

    def end_at_exit(self) -> None:
        """End the child as the interpreter exits with its window still open (a script that never
        closed it). At exit the application may already be gone, so no Qt object is touched."""
        proc = self._proc
        if proc is None or not proc.is_alive():
            return
        self._end_child(proc, 1.0)
        self._release(unlink=True)

    def _started(self) -> None:
        """A new child runs (subclasses reset what they read from the last one)."""

    def _release(self, unlink: bool) -> None:
        """The child is gone: drop what was shared with it."""

    def _detach(self, unlink: bool) -> None:
        if self._notifier is not None:
            self._notifier.setEnabled(False)
            self._notifier.deleteLater()
            self._notifier = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._release(unlink)
        if self._proc is not None and not self._proc.is_alive():
            self._proc.close()
        self._proc = None

    # -- commands ---------------------------------------------------------------------------
    def send(self, command: object) -> None:
        """Post one typed command (dropped when no child runs)."""
        if self._conn is None:
            return
        try:
            self._conn.send_bytes(cloudpickle.dumps(command, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, EOFError):
            pass  # the process died: the notifier reports it

    @property
    def max_fps(self) -> float:
        return self._max_fps

    @max_fps.setter
    def max_fps(self, value: float) -> None:
        self._max_fps = float(value)
        self.send(SetMaxFps(self._max_fps))

    # -- events (GUI thread) ----------------------------------------------------------------
    def _on_readable(self, *_args: object) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                self._receive(pickle.loads(conn.recv_bytes()))
                if self._conn is None:  # a handler shut us down
                    return
        except (EOFError, OSError):
            self._on_eof()

    def _receive(self, event: object) -> None:
        if isinstance(event, Ready):
            self.device = event.device
            self.ready.emit(event.device)
        else:
            self._deliver(event)

    def _on_eof(self) -> None:
        proc = self._proc
        if proc is not None:
            proc.join(1.0)
        code = proc.exitcode if proc is not None and proc.exitcode is not None else -1
        self._detach(unlink=True)
        if not self._closing:
            self._on_died()
            self.died.emit(code)

    def _on_died(self) -> None:
        """The child died on its own, before `died` is emitted (subclasses answer what it owed)."""

    def _deliver(self, event: object) -> None:
        raise NotImplementedError


class EngineLink(EngineCommands, ProcessHost):
    """The engine process's proxy in the GUI thread; public methods only send."""

    progressed = Signal(object)  # Frame
    failed = Signal(str)
    finished_training = Signal(int)
    stopped = Signal()
    loaded = Signal(object)  # LoadedData
    load_failed = Signal(int, str)
    state_changed = Signal(object)  # EngineState
    metrics_updated = Signal(object)
    lesson_checked = Signal(str, object)  # the variant shown, tuple of Claim (sgm_core.engine.LessonChecked)
    task_finished = Signal(int, object)
    task_failed = Signal(int, str)

    def __init__(self, threads: int | None = None, max_fps: float = MAX_FPS) -> None:
        super().__init__(threads, max_fps)
        self._reader = FrameReader()
        self._asked: set[int] = set()  # task tokens not answered yet: a dying child fails them
        self._gen = 0  # the engine generation the child last reported
        self.checkpoint: core.Checkpoint | None = None  # the newest weights of that generation

    def _started(self) -> None:
        self._reader = FrameReader()

    def _release(self, unlink: bool) -> None:
        self._reader.close(unlink=unlink)  # a killed child could not unlink its frames' segments

    def run_task(self, token: int, fn: Callable[[Any], Any]) -> None:
        self._asked.add(token)  # a dying child fails it
        super().run_task(token, fn)

    def replace_engine(self, token: int, build: Callable[[], tuple[Any, EngineSpec, Any]]) -> None:
        self._asked.add(token)
        super().replace_engine(token, build)

    def _on_died(self) -> None:
        asked, self._asked = sorted(self._asked), set()
        for token in asked:  # whoever waits on these gets an answer
            self.task_failed.emit(token, "the engine process stopped before it finished this")

    def _deliver(self, event: object) -> None:
        match event:
            case core.FrameReady(header):
                frame = self._reader.unpack(header)
                self.frames_emitted += 1
                self.progressed.emit(frame)
            case core.TaskFinished(token, _) | core.TaskFailed(token, _):
                self._asked.discard(token)
                self.deliver_common(event)
            case core.EngineBuilt(gen):
                self._gen, self.checkpoint = gen, None
            case core.Checkpoint() if event.gen == self._gen:
                self.checkpoint = event
            case _:
                self.deliver_common(event)


_LIVE_HOSTS: weakref.WeakSet[ProcessHost] = weakref.WeakSet()  # hosts that started a child, for the exit hook


@atexit.register
def _end_children_at_exit() -> None:
    """Before multiprocessing's own exit handler (which terminates daemon children, and a child
    given SIGTERM serves on for TERM_GRACE_S): end every child still running, cleanly."""
    for host in list(_LIVE_HOSTS):
        host.end_at_exit()


def uses_processes() -> bool:
    """Torch work runs in child processes (the default), or with SGM_ENGINE=thread in threads of
    this process (the test suite's windows: a spawned child costs each window ~2 s of start-up)."""
    return os.environ.get("SGM_ENGINE", "process") != "thread"


def make_engine() -> QObject:
    """The window's engine host: the engine process, or SGM_ENGINE=thread for the in-process thread."""
    if not uses_processes():
        from .workers import EngineWorker

        return EngineWorker()
    return EngineLink()


__all__ = ["EngineLink", "EngineState", "ProcessHost", "make_engine", "uses_processes"]

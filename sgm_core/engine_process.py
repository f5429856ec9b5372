"""The engine in a process of its own: the loop a spawned child runs, and its messages.

The GUI process and the training loop share no interpreter lock this way: in one process a
Python drawing thread held a torch loop to a third of its speed, or to almost nothing at 100k
particles (shared/FACTS.md). The child runs `sgm_core.engine.Engine`, reads typed commands from
its end of a pipe and answers with the engine's events; frames go through shared memory
(`frame_shm`). It ends on `Shutdown`, and on its own when the parent goes away (the pipe reads EOF,
or the parent pid changes): no orphan keeps a core busy after the GUI was killed.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

IGNORED_SIGNALS = ("SIGINT", "SIGHUP")  # the window's to answer, not the child's
TERM_GRACE_S = 8.0  # after SIGTERM the child serves its window this long, then ends (see child_main)
PARENT_POLL_S = 0.5  # seconds between checks that the parent still lives while the loop is busy


@dataclass(frozen=True)
class Shutdown:
    """End the engine process (its frames' shared memory is unlinked first)."""


@dataclass(frozen=True)
class SetMaxFps:
    max_fps: float


@dataclass(frozen=True)
class Ready:
    """The engine process is up: torch imported and warmed, the loop listening."""

    device: str
    pid: int


def warm_up_torch() -> str:
    """Import torch and take one Adam step so the first Train does not stall (the first
    `torch.optim.Adam` imports torch._dynamo, ~1 s). Returns the device label."""
    import torch

    from .training import device_label, make_adam, resolve_device

    net = torch.nn.Linear(2, 2)
    opt = make_adam(net.parameters(), 1e-3)
    net(torch.zeros(4, 2)).square().sum().backward()
    opt.step()
    return device_label(resolve_device("auto"))


TASKS = ("engine", "compare", "export")  # what a child hosts: the live engine, a compare window's runs, an export


def make_task(kind: str, emit: Callable[[object], None], stopping: Callable[[], bool]) -> Any:
    """The loop object a child runs: `handle(commands)`, `work()`, `idle_timeout()`, `on_error`, `close`."""
    if kind == "engine":
        from .engine import Engine

        return Engine(emit, stopping=stopping)
    if kind == "compare":
        from .compare import CompareTask

        return CompareTask(emit, stopping=stopping)
    if kind == "export":
        from .render import ExportTask

        return ExportTask(emit, stopping=stopping)
    raise ValueError(f"unknown task {kind!r}; expected one of {TASKS}")


def child_main(conn: Connection, parent_pid: int, threads: int = 1, task: str = "engine") -> None:
    """The spawned process's entry: serve, then leave at once (an interpreter teardown with
    torch loaded took ~1 s here, and Close should end the child within a second).

    Ctrl+C in a terminal, a closed terminal and a logout signal the whole process group, and the
    window answers them by writing unsaved work aside through this very process before it ends
    it (app/recovery.py). So the child ignores SIGINT and SIGHUP, and after SIGTERM it serves on
    for TERM_GRACE_S (the window needs at most its SIGNAL_SAVE_S), then ends by itself: a plain
    `kill`, or multiprocessing's exit handler terminating its daemon children, still ends it.
    It ends with its window in any case: on Shutdown, on EOF, or when its parent is gone."""
    for name in IGNORED_SIGNALS:
        if hasattr(signal, name):  # SIGHUP does not exist on Windows
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    deadline: list[float] = []  # when SIGTERM's grace ends

    def on_term(_signum: int, _frame: object) -> None:
        if not deadline:
            deadline.append(time.monotonic() + TERM_GRACE_S)

    signal.signal(signal.SIGTERM, on_term)
    code = 0
    try:
        serve(conn, parent_pid, threads, task, lambda: bool(deadline) and time.monotonic() > deadline[0])
    except BaseException:  # noqa: BLE001 - the traceback is the bug report; the GUI sees EOF
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(conn: Connection, parent_pid: int, threads: int = 1, task: str = "engine",
          expired: Callable[[], bool] = lambda: False) -> None:
    """Run the task's loop (the engine's by default) until Shutdown, until the parent is gone, or
    until `expired()` (SIGTERM's grace is over)."""
    import cloudpickle  # a dataset's sampler may be a closure: plain pickle refuses those
    import torch

    from .engine import FrameReady
    from .frame_shm import FrameWriter

    torch.set_num_threads(threads)  # one: the GUI process keeps the other core (shared/FACTS.md)
    writer = FrameWriter()
    outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    parent_gone = threading.Event()

    def send_all() -> None:
        """A thread of its own sends, so the loop never blocks on a GUI that is busy drawing
        (while the GUI blocks sending a big command, the two would wait on each other)."""
        while True:
            event = outbox.get()
            if event is None:
                return
            try:
                conn.send_bytes(cloudpickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL))
            except (OSError, EOFError):
                parent_gone.set()
                return

    def emit(event: object) -> None:
        if isinstance(event, FrameReady):
            event = FrameReady(writer.pack(event.frame))
        outbox.put(event)

    sender = threading.Thread(target=send_all, name="engine-sender", daemon=True)
    sender.start()
    engine = make_task(task, emit, parent_gone.is_set)
    try:
        outbox.put(Ready(warm_up_torch(), os.getpid()))
        busy = False
        while not parent_gone.is_set():
            commands = []
            try:
                if conn.poll(0.0 if busy else min(PARENT_POLL_S, engine.idle_timeout())):
                    while True:
                        commands.append(pickle.loads(conn.recv_bytes()))
                        if not conn.poll():
                            break
            except (EOFError, OSError):
                break  # the parent closed its end, or died
            if os.getppid() != parent_pid or expired():
                break  # re-parented (the GUI is gone), or told to end
            if any(isinstance(c, Shutdown) for c in commands):
                break
            for c in commands:
                if isinstance(c, SetMaxFps):
                    engine.max_fps = c.max_fps
            try:
                engine.handle([c for c in commands if not isinstance(c, SetMaxFps)])
                busy = engine.work()
            except Exception as exc:  # noqa: BLE001 - report, pause, keep the loop alive
                engine.on_error(exc)
                busy = False
    finally:
        engine.close()
        outbox.put(None)
        sender.join(timeout=1.0)
        writer.close()

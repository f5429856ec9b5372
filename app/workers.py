"""The engine worker: the Qt face of `sgm_core.engine.Engine`, run in a thread of its own.

The GUI thread sends typed commands (`sgm_core.engine`) through a thread-safe queue (methods of
`EngineWorker` only enqueue); the worker thread hands them to the Engine, runs its loop, and turns
its events into signals. Frames go out only once the GUI acknowledged the last one
(`frame_consumed`), newest wins, never a backlog. Errors become `failed(str)` signals and the loop
keeps running.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Signal

from sgm_core import engine as core
from sgm_core.engine import CHUNK_SECONDS, MAX_FPS, EngineSpec, LoadedData
from sgm_core.engine import EngineState as WorkerState

from .engine_commands import EngineCommands
from .queued_worker import QueuedWorker, running_threads, track_thread

__all__ = ["EngineSpec", "EngineWorker", "LoadedData", "WorkerState", "running_threads", "track_thread",
           "warm_up_torch"]


def warm_up_torch() -> str:
    """Import torch and take one Adam step so the first Train does not freeze the GUI
    (the first `torch.optim.Adam` imports torch._dynamo, ~1 s). Returns the device label."""
    import torch  # in this process: the thread host trains here

    from sgm_core.training import device_label, make_adam, resolve_device

    net = torch.nn.Linear(2, 2)
    opt = make_adam(net.parameters(), 1e-3)
    net(torch.zeros(4, 2)).square().sum().backward()
    opt.step()
    return device_label(resolve_device("auto"))


class EngineWorker(EngineCommands, QueuedWorker):
    """Runs the Engine in a QThread of its own; every public method is thread-safe."""

    progressed = Signal(object)  # Frame
    failed = Signal(str)  # one sentence: diverged training, bad config, unexpected error
    finished_training = Signal(int)  # the configured step count was reached
    stopped = Signal()  # training stopped (Stop, or the engine was rebuilt while training)
    loaded = Signal(object)  # LoadedData
    load_failed = Signal(int, str)  # token, message
    state_changed = Signal(object)  # WorkerState
    metrics_updated = Signal(object)  # dict of live metrics (see Engine._maybe_metrics), while set_metrics(True)
    lesson_checked = Signal(str, object)  # the variant shown, tuple of Claim (sgm_core.engine.LessonChecked)
    task_finished = Signal(int, object)  # token, result of a `run_task` / `replace_engine` function
    task_failed = Signal(int, str)  # token, one sentence; the engine is unchanged
    ready = Signal(str)  # the engine can take commands; its device label (as EngineLink's)
    died = Signal(int)  # never emitted by a thread; EngineLink's process may die

    def __init__(self, threads: int | None = None, max_fps: float = MAX_FPS,
                 chunk_seconds: float = CHUNK_SECONDS) -> None:
        super().__init__("EngineWorker", int(threads or os.environ.get("SGM_WORKER_THREADS", 1)))
        self.core = core.Engine(self._deliver, max_fps, chunk_seconds, stopping=self._stop.is_set)

    @property
    def max_fps(self) -> float:
        return self.core.max_fps

    @max_fps.setter
    def max_fps(self, value: float) -> None:
        self.core.max_fps = value

    @property
    def frames_emitted(self) -> int:
        return self.core.frames_emitted

    def start(self) -> None:
        super().start()
        from sgm_core.training import device_label, resolve_device

        self.ready.emit(device_label(resolve_device("auto")))

    # -- events (worker thread) -------------------------------------------------------------
    def _deliver(self, event: object) -> None:
        """An engine event, as the signal the window listens to (worker thread; queued to the GUI)."""
        match event:
            case core.FrameReady(frame):
                self.progressed.emit(frame)
            case _:
                self.deliver_common(event)

"""The engine worker: the Qt face of `sgm_core.engine.Engine`, run in a thread of its own.

The GUI thread sends typed commands (`sgm_core.engine`) through a thread-safe queue (methods of
`EngineWorker` only enqueue); the worker thread hands them to the Engine, runs its loop, and turns
its events into signals. Frames go out only once the GUI acknowledged the last one
(`frame_consumed`), newest wins, never a backlog. Errors become `failed(str)` signals and the loop
keeps running.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from PySide6.QtCore import Signal

from sgm_core import engine as core
from sgm_core.config import SamplerConfig
from sgm_core.engine import CHUNK_SECONDS, MAX_FPS, EngineSpec, LoadedData
from sgm_core.engine import EngineState as WorkerState
from sgm_core.lessons import Lesson
from sgm_core.live import FieldView, LiveEngine

from .queued_worker import QueuedWorker, running_threads, track_thread

__all__ = ["EngineSpec", "EngineWorker", "LoadedData", "WorkerState", "running_threads", "track_thread",
           "warm_up_torch"]


def warm_up_torch() -> str:
    """Import torch and take one Adam step so the first Train does not freeze the GUI
    (the first `torch.optim.Adam` imports torch._dynamo, ~1 s). Returns the device label."""
    from sgm_core.training import device_label, make_adam, resolve_device

    net = torch.nn.Linear(2, 2)
    opt = make_adam(net.parameters(), 1e-3)
    net(torch.zeros(4, 2)).square().sum().backward()
    opt.step()
    return device_label(resolve_device("auto"))


class EngineWorker(QueuedWorker):
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

    # -- commands (any thread) --------------------------------------------------------------
    def send(self, command: object) -> None:
        """Post one `sgm_core.engine` command."""
        self._put(command)

    def frame_consumed(self) -> None:
        """The GUI drew the last frame: the next one may be sent."""
        self._put(core.FrameDrawn())

    def set_engine(self, spec: EngineSpec) -> None:
        """Rebuild the engine from data + config (training stops; particles restart)."""
        self._put(core.SetEngine(spec))

    def update_engine(self, spec: EngineSpec) -> None:
        """New data or settings for the same model: training goes on from it (sgm_core.engine.UpdateEngine)."""
        self._put(core.UpdateEngine(spec))

    def load(self, source: str, token: int, n_points: int = 5000, seed: int = 0) -> None:
        """Load a preset or a file in the worker (presets and images draw with torch)."""
        self._put(core.Load(source, token, n_points, seed))

    def train(self) -> None:
        self._put(core.Train())

    def pause_training(self) -> None:
        self._put(core.PauseTraining())

    def stop_training(self) -> None:
        self._put(core.StopTraining())

    def reset_training(self) -> None:
        self._put(core.ResetTraining())

    def play(self) -> None:
        self._put(core.Play())

    def pause_particles(self) -> None:
        self._put(core.PauseParticles())

    def step_particles(self) -> None:
        self._put(core.StepParticles())

    def reset_particles(self, n: int | None = None) -> None:
        self._put(core.ResetParticles(n))

    def spawn(self, point: tuple[float, ...], n: int, radius: float) -> None:
        """Restart n particles in a Gaussian blob of `radius` around `point` (data coordinates;
        a 2D point in 3D data lands at z = 0)."""
        self._put(core.Spawn(tuple(float(v) for v in point), int(n), float(radius)))

    def set_sampler(self, cfg: SamplerConfig) -> None:
        self._put(core.SetSampler(cfg))

    def set_steps_per_frame(self, n: int) -> None:
        self._put(core.SetStepsPerFrame(max(1, int(n))))

    def set_trails(self, length: int) -> None:
        self._put(core.SetTrails(max(0, int(length))))

    def set_view(self, view: FieldView | None, heatmap: str = "off") -> None:
        self._put(core.SetView(view, heatmap))

    def call(self, fn: Callable[[LiveEngine], Any]) -> None:
        """Run fn(engine) in the worker thread (tests, benchmarks); its errors become `failed`."""
        self._put(core.Call(fn))

    def run_task(self, token: int, fn: Callable[[LiveEngine | None], Any]) -> None:
        """Run fn(engine, or None without data) in the worker thread (saving, exporting); answers
        task_finished(token, result) or task_failed(token, message)."""
        self._put(core.RunTask(token, fn))

    def replace_engine(self, token: int, build: Callable[[], tuple[LiveEngine | None, EngineSpec, Any]]) -> None:
        """Build an engine in the worker (an opened session: weights, particles, history) and
        install it in place of the current one; answers task_finished(token, payload) or
        task_failed(token, message), in which case the current engine is left untouched."""
        self._put(core.ReplaceEngine(token, build))

    def check_lesson(self, lesson: Lesson | None, label: str = "") -> None:
        """Measure the lesson's claims live (its variant `label` is the one running); None stops."""
        self._put(core.CheckLesson(lesson, label))

    def set_metrics(self, enabled: bool) -> None:
        """Compute live metrics (score error per σ, sample metrics, likelihood) only while enabled."""
        self._put(core.SetMetrics(bool(enabled)))

    def set_reference_score(self, on: bool) -> None:
        """Drive the particles with the reference (true) score instead of the learned one."""
        self._put(core.SetReferenceScore(bool(on)))

    def set_follow_training(self, on: bool) -> None:
        """On: Train also plays the particles, and while it trains each finished sampler chain
        restarts from the prior (after CHAIN_HOLD) so the particles show what the current model
        samples. Off: particles move only when played."""
        self._put(core.SetFollowTraining(bool(on)))

    # -- the loop (worker thread) -----------------------------------------------------------
    def _drain(self) -> None:
        self.core.handle(self._pending())

    def _work(self) -> bool:
        return self.core.work()

    def _idle(self) -> None:
        self._wake.wait(self.core.idle_timeout())
        self._wake.clear()

    def _on_error(self, exc: Exception) -> None:
        self.core.on_error(exc)

    def _on_exit(self) -> None:
        self.core.close()

    def _deliver(self, event: object) -> None:  # noqa: C901 - one case per event type
        """An engine event, as the signal the window listens to (worker thread; queued to the GUI)."""
        match event:
            case core.FrameReady(frame):
                self.progressed.emit(frame)
            case core.Failed(message):
                self.failed.emit(message)
            case core.FinishedTraining(step):
                self.finished_training.emit(step)
            case core.Stopped():
                self.stopped.emit()
            case core.Loaded(data):
                self.loaded.emit(data)
            case core.LoadFailed(token, message):
                self.load_failed.emit(token, message)
            case core.StateChanged(state):
                self.state_changed.emit(state)
            case core.MetricsUpdated(metrics):
                self.metrics_updated.emit(metrics)
            case core.LessonChecked(label, claims):
                self.lesson_checked.emit(label, claims)
            case core.TaskFinished(token, result):
                self.task_finished.emit(token, result)
            case core.TaskFailed(token, message):
                self.task_failed.emit(token, message)

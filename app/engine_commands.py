"""The engine's command API, written once for both hosts (`EngineWorker`'s thread and
`EngineLink`'s process): each method builds one typed `sgm_core.engine` command and hands it to
the host's `send`; `deliver_common` turns the events both hosts share into their signals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sgm_core import engine as core
from sgm_core.config import SamplerConfig
from sgm_core.engine import EngineSpec
from sgm_core.lessons import Lesson
from sgm_core.live import FieldView


class EngineCommands:
    """Mixed into a QObject that has the engine signals and a `send(command)` (the host's:
    `QueuedWorker.send` or `ProcessHost.send`)."""

    send: Callable[[object], None]

    def frame_consumed(self) -> None:
        """The GUI drew the last frame: the next one may be sent (newest wins)."""
        self.send(core.FrameDrawn())

    def set_engine(self, spec: EngineSpec) -> None:
        """Rebuild the engine from data + config (training stops; particles restart)."""
        self.send(core.SetEngine(spec))

    def update_engine(self, spec: EngineSpec) -> None:
        """New data or settings for the same model: training goes on from it (sgm_core.engine.UpdateEngine)."""
        self.send(core.UpdateEngine(spec))

    def load(self, source: str, token: int, n_points: int = 5000, seed: int = 0) -> None:
        """Load a preset or a file in the engine (presets and images draw with torch)."""
        self.send(core.Load(source, token, n_points, seed))

    def train(self) -> None:
        self.send(core.Train())

    def resume_training(self) -> None:
        """A round paused by a question goes on; nothing starts if none is paused."""
        self.send(core.Train(resume=True))

    def pause_training(self) -> None:
        self.send(core.PauseTraining())

    def stop_training(self) -> None:
        self.send(core.StopTraining())

    def reset_training(self) -> None:
        self.send(core.ResetTraining())

    def play(self) -> None:
        self.send(core.Play())

    def pause_particles(self) -> None:
        self.send(core.PauseParticles())

    def step_particles(self) -> None:
        self.send(core.StepParticles())

    def reset_particles(self, n: int | None = None) -> None:
        self.send(core.ResetParticles(n))

    def spawn(self, point: tuple[float, ...], n: int, radius: float) -> None:
        """Restart n particles in a Gaussian blob of `radius` around `point` (data coordinates;
        a 2D point in 3D data lands at z = 0)."""
        self.send(core.Spawn(tuple(float(v) for v in point), int(n), float(radius)))

    def set_sampler(self, cfg: SamplerConfig) -> None:
        self.send(core.SetSampler(cfg))

    def set_condition(self, given: dict[int, float] | None) -> None:
        """Hold these coordinates (axis index: value, data units) and sample the conditional; None: the joint."""
        self.send(core.SetCondition(tuple(sorted((int(k), float(v)) for k, v in (given or {}).items()))))

    def set_guidance(self, c: int | None, w: float = 0.0) -> None:
        """Ask the particles and the field for class index c with guidance scale w, live; None: unconditional."""
        self.send(core.SetGuidance(None if c is None else int(c), float(w)))

    def set_steps_per_frame(self, n: int) -> None:
        self.send(core.SetStepsPerFrame(max(1, int(n))))

    def set_trails(self, length: int) -> None:
        self.send(core.SetTrails(max(0, int(length))))

    def set_view(self, view: FieldView | None, heatmap: str = "off") -> None:
        self.send(core.SetView(view, heatmap))

    def call(self, fn: Callable[[Any], Any]) -> None:
        """Run fn(engine) in the engine's host (tests, benchmarks); its errors become `failed`."""
        self.send(core.Call(fn))

    def run_task(self, token: int, fn: Callable[[Any], Any]) -> None:
        """Run fn(engine, or None without data) in the engine's host (saving, exporting); answers
        task_finished(token, result) or task_failed(token, message)."""
        self.send(core.RunTask(token, fn))

    def replace_engine(self, token: int, build: Callable[[], tuple[Any, EngineSpec, Any]]) -> None:
        """Build an engine in the host (an opened session: weights, particles, history) and install
        it in place of the current one; answers task_finished(token, payload) or task_failed(token,
        message), in which case the current engine is left untouched."""
        self.send(core.ReplaceEngine(token, build))

    def check_lesson(self, lesson: Lesson | None, label: str = "") -> None:
        """Measure the lesson's claims live (its variant `label` is the one running); None stops."""
        self.send(core.CheckLesson(lesson, label))

    def set_metrics(self, enabled: bool) -> None:
        """Compute live metrics (score error per σ, sample metrics, likelihood) only while enabled."""
        self.send(core.SetMetrics(bool(enabled)))

    def set_reference_score(self, on: bool) -> None:
        """Drive the particles with the reference (true) score instead of the learned one."""
        self.send(core.SetReferenceScore(bool(on)))

    def set_follow_training(self, on: bool) -> None:
        """On: Train also plays the particles, and while it trains each finished sampler chain
        restarts from the prior (after CHAIN_HOLD) so the particles show what the current model
        samples. Off: particles move only when played."""
        self.send(core.SetFollowTraining(bool(on)))

    def deliver_common(self, event: object) -> bool:  # noqa: C901 - one case per event type
        """Emit the signal of an event both hosts share; False when the event is not one of them."""
        match event:
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
            case _:
                return False
        return True

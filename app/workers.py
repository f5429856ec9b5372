"""The engine worker: one thread that owns all torch state and turns it into frames.

The GUI thread sends commands through a thread-safe queue (methods of `EngineWorker` only
enqueue); the worker thread drains them, trains a chunk sized to ~25 ms, advances the particles
on the frame clock, and emits the newest `Frame` only once the GUI has drawn the previous one
(newest wins, never a backlog). Errors become `failed(str)` signals and the loop keeps running.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import Signal

from sgm_core.config import RunConfig, SamplerConfig
from sgm_core.datasets import PRESETS, Dataset, load_dataset
from sgm_core.errors import SGMError, TrainingDiverged
from sgm_core.live import FieldView, Frame, LiveEngine

from .queued_worker import IDLE_WAIT, QueuedWorker, running_threads, track_thread

CHUNK_SECONDS = 0.025  # training work between command checks: responsive stop, small overhead
MIN_CHUNK_SECONDS = 0.005  # ... but never so short that loop overhead dominates
MAX_CHUNK_STEPS = 500  # even a trivially fast net returns to the loop this often
MAX_FPS = 30.0  # frame clock; the GUI never sees more than this
PARTICLE_BUDGET = 0.012  # seconds of particle steps per frame: steps/frame is a ceiling, not a promise
FRAME_BUDGET = 0.3  # at most this share of the worker's time goes to building frames
SLOW_EVERY = 0.5  # seconds between refreshes of costly frame parts (error map, score error)
SLOW_COST_FACTOR = 8.0  # ... and never more often than this many times their own cost
METRICS_CURVE_EVERY = 0.5  # seconds between score-error points per σ (4 levels: ~25 ms on one core)
METRICS_SAMPLES_EVERY = 2.5  # seconds between sample metrics + PF-ODE likelihood (~0.1–0.4 s)
METRICS_POINTS = 500  # particles and data draws the sample metrics compare (MMD is quadratic in it)
CHAIN_HOLD = 1.5  # seconds a finished chain stays on screen before it restarts with the newer model
JOB_ROOM = 0.012  # a costly metric's next piece starts only this long or longer before the next frame

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


@dataclass(frozen=True)
class EngineSpec:
    """What the engine is built from; dataset None means no trainable data (empty drawing)."""

    dataset: Dataset | None
    config: RunConfig
    sampler: SamplerConfig
    n_particles: int = 2000


@dataclass(frozen=True)
class LoadedData:
    token: int  # the request's token: the GUI ignores answers to requests it has superseded
    source: str  # preset name or file path
    kind: str  # "preset" | "file"
    dataset: Dataset


@dataclass(frozen=True)
class WorkerState:
    """The worker's run state, for buttons and menus."""

    has_engine: bool = False
    training: bool = False
    paused: bool = False  # training paused with steps left (Resume continues)
    playing: bool = False
    target: int = 0  # the step count the current round trains to


class _Throttle:
    """Due when at least `every` seconds and `factor` x its last cost have passed."""

    def __init__(self, every: float, factor: float = SLOW_COST_FACTOR) -> None:
        self.every, self.factor = every, factor
        self.last, self.cost = -1e9, 0.0

    def due(self, now: float) -> bool:
        return now - self.last >= max(self.every, self.factor * self.cost)

    def done(self, start: float, end: float) -> None:
        self.record(end, end - start)

    def record(self, end: float, cost: float) -> None:
        """A computation that ended at `end` after `cost` seconds of its own work."""
        self.last, self.cost = end, cost


class EngineWorker(QueuedWorker):
    """Owns the LiveEngine in a QThread of its own; every public method is thread-safe."""

    progressed = Signal(object)  # Frame
    failed = Signal(str)  # one sentence: diverged training, bad config, unexpected error
    finished_training = Signal(int)  # the configured step count was reached
    stopped = Signal()  # training stopped (Stop, or the engine was rebuilt while training)
    loaded = Signal(object)  # LoadedData
    load_failed = Signal(int, str)  # token, message
    state_changed = Signal(object)  # WorkerState
    metrics_updated = Signal(object)  # dict of live metrics (see _maybe_metrics), while set_metrics(True)
    task_finished = Signal(int, object)  # token, result of a `run_task` / `replace_engine` function
    task_failed = Signal(int, str)  # token, one sentence; the engine is unchanged

    def __init__(self, threads: int | None = None, max_fps: float = MAX_FPS,
                 chunk_seconds: float = CHUNK_SECONDS) -> None:
        super().__init__("EngineWorker", int(threads or os.environ.get("SGM_WORKER_THREADS", 1)))
        self.max_fps = max_fps
        self.chunk_seconds = chunk_seconds
        self.frames_emitted = 0
        # -- worker-thread state (touched only inside the loop) --
        self._engine: LiveEngine | None = None
        self._spec: EngineSpec | None = None
        self._view: FieldView | None = None
        self._heatmap = "off"
        self._training = False
        self._paused = False
        self._playing = False
        self._target = 0
        self._steps_per_frame = 5
        self._particle_step_time = 0.0  # EMA of one sampler step's cost, for the frame budget
        self._advanced = False  # the particles already took their steps for the next frame
        self._trail_length = 0
        self._step_time = 0.0  # EMA seconds per training step, sizes the chunks
        self._train_seconds = 0.0
        self._needs_frame = False
        self._next_frame = 0.0
        self._gen = 0  # engine generation: caches are keyed by it
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._slow = {"error": _Throttle(SLOW_EVERY), "score": _Throttle(1.0), "density": _Throttle(0.2, 4.0)}
        self._state = WorkerState()
        self._slow["curl"] = _Throttle(SLOW_EVERY)
        self._reference_score = False  # particles follow the reference score instead of the model
        self._follow_training = True  # Train starts the particles, and their chain restarts as the model learns
        self._chain_end: float | None = None  # when the running chain reached its schedule's end
        self._metrics_on = False
        self._metrics: dict[str, Any] = {}
        self._metric_idents: dict[str, Any] = {}
        self._metric_throttles = {"curve": _Throttle(METRICS_CURVE_EVERY), "samples": _Throttle(METRICS_SAMPLES_EVERY)}
        self._metric_job: _Job | None = None  # the sample metrics + likelihood, done piece by piece

    # -- commands (any thread) --------------------------------------------------------------
    def set_engine(self, spec: EngineSpec) -> None:
        """Rebuild the engine from data + config (training stops; particles restart)."""
        self._post("set_engine", spec)

    def load(self, source: str, token: int, n_points: int = 5000, seed: int = 0) -> None:
        """Load a preset or a file in the worker (presets and images draw with torch)."""
        self._post("load", source, token, n_points, seed)

    def train(self) -> None:
        self._post("train")

    def pause_training(self) -> None:
        self._post("pause_training")

    def stop_training(self) -> None:
        self._post("stop_training")

    def reset_training(self) -> None:
        self._post("reset_training")

    def play(self) -> None:
        self._post("play")

    def pause_particles(self) -> None:
        self._post("pause_particles")

    def step_particles(self) -> None:
        self._post("step_particles")

    def reset_particles(self, n: int | None = None) -> None:
        self._post("reset_particles", n)

    def spawn(self, point: tuple[float, ...], n: int, radius: float) -> None:
        """Restart n particles in a Gaussian blob of `radius` around `point` (data coordinates;
        a 2D point in 3D data lands at z = 0)."""
        self._post("spawn", tuple(float(v) for v in point), int(n), float(radius))

    def set_sampler(self, cfg: SamplerConfig) -> None:
        self._post("set_sampler", cfg)

    def set_steps_per_frame(self, n: int) -> None:
        self._post("set_steps_per_frame", max(1, int(n)))

    def set_trails(self, length: int) -> None:
        self._post("set_trails", max(0, int(length)))

    def set_view(self, view: FieldView | None, heatmap: str = "off") -> None:
        self._post("set_view", view, heatmap)

    def call(self, fn: Callable[[LiveEngine], Any]) -> None:
        """Run fn(engine) in the worker thread (tests, benchmarks); its errors become `failed`."""
        self._post("call", fn)

    def run_task(self, token: int, fn: Callable[[LiveEngine | None], Any]) -> None:
        """Run fn(engine, or None without data) in the worker thread (saving, exporting); answers
        task_finished(token, result) or task_failed(token, message)."""
        self._post("run_task", token, fn)

    def replace_engine(self, token: int, build: Callable[[], tuple[LiveEngine | None, EngineSpec, Any]]) -> None:
        """Build an engine in the worker (an opened session: weights, particles, history) and
        install it in place of the current one; answers task_finished(token, payload) or
        task_failed(token, message), in which case the current engine is left untouched."""
        self._post("replace_engine", token, build)

    def set_metrics(self, enabled: bool) -> None:
        """Compute live metrics (score error per σ, sample metrics, likelihood) only while enabled."""
        self._post("set_metrics", bool(enabled))

    def set_reference_score(self, on: bool) -> None:
        """Drive the particles with the reference (true) score instead of the learned one."""
        self._post("set_reference_score", bool(on))

    def set_follow_training(self, on: bool) -> None:
        """On: Train also plays the particles, and while it trains each finished sampler chain
        restarts from the prior (after CHAIN_HOLD) so the particles show what the current model
        samples. Off: particles move only when played."""
        self._post("set_follow_training", bool(on))

    # -- the loop (worker thread) -----------------------------------------------------------
    def _on_error(self, exc: Exception) -> None:
        self._training = self._playing = False
        self._needs_frame = False  # a frame that failed would only fail again
        self._publish_state()
        self.failed.emit(_describe(exc))

    def _on_exit(self) -> None:
        self._engine = None

    def _drain(self) -> None:
        commands = self._pending()
        last_build = max((i for i, (name, _) in enumerate(commands) if name == "set_engine"), default=-1)
        for i, (name, args) in enumerate(commands):
            if name == "set_engine" and i != last_build:
                continue  # a newer rebuild follows: skip the stale one
            try:
                getattr(self, f"_do_{name}")(*args)
            except SGMError as exc:
                self.failed.emit(str(exc))
                self._needs_frame = True
        if self._engine is not None:  # however the engine came (built, replaced), it follows the switch
            self._engine.use_reference_score = self._reference_score
        self._publish_state()

    def _idle(self) -> None:
        if self._playing or self._needs_frame:
            timeout = max(0.002, min(IDLE_WAIT, self._next_frame - time.perf_counter()))
            if not self._consumed.is_set():
                timeout = IDLE_WAIT  # frame_consumed() wakes us
        else:
            timeout = IDLE_WAIT
        self._wake.wait(timeout)
        self._wake.clear()

    def _work(self) -> bool:
        """One iteration: a training chunk, then (on the frame clock) particles + a frame."""
        busy = False
        eng = self._engine
        if eng is not None:
            self._maybe_restart_chain(eng)
        if eng is not None and self._playing and not self._advanced:
            # The next frame's particle steps run right after the last frame went out, i.e. while
            # the GUI thread draws it: on two cores the two overlap instead of taking turns.
            self._advance_particles(eng)
        if eng is not None and self._training:
            self._train_chunk(eng)
            busy = True
        now = time.perf_counter()
        if (eng is not None and (self._needs_frame or self._training or self._playing)
                and self._consumed.is_set() and now >= self._next_frame):
            if self._playing and not self._advanced:
                self._advance_particles(eng)
            self._emit_frame(now)
        if self._metrics_on and eng is not None and not self._stop.is_set():
            self._maybe_metrics(eng, now)
            # a metric job left with nothing animating goes on at once; while animating, the frame
            # clock wakes the loop and the job continues after the next frame
            busy = busy or (self._metric_job is not None and not (self._playing or self._training))
        return busy

    def _maybe_restart_chain(self, eng: LiveEngine) -> None:
        """While training with particles following it: a chain that finished its schedule is shown
        for CHAIN_HOLD, then starts again from the prior under the newer model (annealed chains
        would otherwise keep the mode weights their first pass, under an untrained model, gave)."""
        if not (self._training and self._follow_training and self._playing):
            self._chain_end = None
            return
        if eng.sampler_step < eng.sampler.n_steps:
            return
        now = time.perf_counter()
        if self._chain_end is None:
            self._chain_end = now
        elif now - self._chain_end >= CHAIN_HOLD:
            self._chain_end = None
            eng.reset_particles()
            self._advanced = True  # the next frame shows the fresh draw from the prior, unmoved
            self._needs_frame = True

    def _advance_particles(self, eng: LiveEngine) -> None:
        """Up to steps-per-frame sampler steps, as many as fit PARTICLE_BUDGET (at least one):
        100k particles keep the frame clock instead of stalling it (measured: 10k x 5 steps took
        ~50 ms a frame on one core, 12 fps)."""
        n = 1  # no estimate yet (new engine or particle count): one step to measure
        if self._particle_step_time > 0:
            n = max(1, min(self._steps_per_frame, int(PARTICLE_BUDGET / self._particle_step_time)))
        t0 = time.perf_counter()
        eng.advance(n)
        per_step = (time.perf_counter() - t0) / n
        self._particle_step_time = (per_step if self._particle_step_time <= 0
                                    else 0.7 * self._particle_step_time + 0.3 * per_step)
        self._advanced = True
        following = self._training and self._follow_training  # the chain will restart: keep playing
        if eng.sampler.name in ("sde", "pc", "ode") and eng.sampler_step >= eng.sampler.n_steps and not following:
            self._playing = False  # the integrators stop at t = eps: nothing left to show
            self._needs_frame = True  # ... but the end itself is
            self._publish_state()

    def _train_chunk(self, eng: LiveEngine) -> None:
        left = self._target - eng.trainer.step
        budget = self.chunk_seconds
        if self._consumed.is_set():  # end the chunk when the next frame is due: a steady frame clock
            budget = min(budget, max(MIN_CHUNK_SECONDS, self._next_frame - time.perf_counter()))
        n = 1 if self._step_time <= 0 else int(budget / self._step_time)
        n = max(1, min(n, MAX_CHUNK_STEPS, left))
        t0 = time.perf_counter()
        try:
            eng.train(n)
        except TrainingDiverged as exc:
            self._training, self._paused = False, False
            eng.pause_clock()
            self._needs_frame = True
            self._publish_state()
            self.failed.emit(str(exc))
            return
        finally:
            dt = time.perf_counter() - t0
            self._train_seconds += dt
        per_step = dt / n
        self._step_time = per_step if self._step_time <= 0 else 0.7 * self._step_time + 0.3 * per_step
        if eng.trainer.step >= self._target:
            self._training = False
            _mark_good(eng)
            eng.pause_clock()
            self._needs_frame = True
            self._publish_state()
            self.finished_training.emit(eng.trainer.step)

    # -- frames -----------------------------------------------------------------------------
    def _cached(self, key: str, ident: Any, compute: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == ident:
            return hit[1]
        value = compute()
        self._cache[key] = (ident, value)
        return value

    def _slow_part(self, key: str, ident: Any, now: float, compute: Callable[[], Any]) -> Any:
        """A costly frame part: recomputed when its inputs change, at most on its throttle."""
        hit = self._cache.get(key)
        # Same engine and view: reuse until the step changes and the throttle allows a refresh.
        if hit is not None and hit[0][:2] == ident[:2] and (hit[0] == ident or not self._slow[key].due(now)):
            return hit[1]
        t0 = time.perf_counter()
        value = compute()
        self._slow[key].done(t0, time.perf_counter())
        self._cache[key] = (ident, value)
        return value

    def build_frame(self) -> Frame:
        """The newest snapshot (worker thread); costly parts are cached per engine/view/step."""
        eng = self._engine
        assert eng is not None
        now = time.perf_counter()
        base = eng.frame(None, training=self._training)
        step = eng.trainer.step
        eta = None
        if self._training and base.steps_per_second > 0 and step < self._target:
            eta = (self._target - step) / base.steps_per_second
        changes: dict[str, Any] = {"elapsed": self._train_seconds, "eta": eta}
        view = self._view
        if view is not None and len(view.bounds) != eng.dataset.dim:
            view = None  # the view of the data before (2D ↔ 3D): its own view follows the new engine
        if view is not None:
            ident = (self._gen, view, step)
            changes["field"] = self._cached("field", ident, lambda: eng.field(view))
            changes["field_sigma"] = view.sigma
            if view.truth:
                changes["true_field"] = self._cached("true", (self._gen, view), lambda: eng.true_field(view))
            if eng.dataset.dim == 2:
                changes["heatmap_bounds"] = tuple(view.bounds[:2])
                if self._heatmap == "error":
                    changes["error_map"] = self._slow_part("error", ident, now, lambda: eng.error_map(view))
                elif self._heatmap == "density":
                    changes["heatmap"] = self._slow_part("density", ident, now, lambda: eng.log_density(view))
                elif self._heatmap == "curl":
                    changes["curl_map"] = self._slow_part("curl", ident, now, lambda: eng.curl_map(view))
            changes["score_error"] = self._slow_part("score", ident, now, lambda: eng.score_error(view.sigma))
        return replace(base, **changes)

    def _emit_frame(self, now: float) -> None:
        t0 = time.perf_counter()
        frame = self.build_frame()
        cost = time.perf_counter() - t0
        period = max(1.0 / self.max_fps, cost / FRAME_BUDGET)
        # On a schedule, not "a period after this one": a frame that went out a little late does
        # not push every later frame back (that alone held 30 fps to ~28).
        self._next_frame += period
        if self._next_frame < now:  # more than a period behind (idle, or a slow GUI): restart the schedule
            self._next_frame = now + period
        self._needs_frame = False
        self._advanced = False
        self._consumed.clear()
        self.frames_emitted += 1
        self.progressed.emit(frame)

    def _publish_state(self) -> None:
        eng = self._engine
        state = WorkerState(eng is not None, self._training, self._paused, self._playing, self._target)
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    # -- command handlers (worker thread) ---------------------------------------------------
    def _do_set_engine(self, spec: EngineSpec) -> None:
        self._particle_step_time = 0.0
        was_training = self._training
        self._training = self._paused = False
        self._engine = None
        self._spec = spec
        self._gen += 1
        self._cache.clear()
        self._step_time = 0.0
        self._train_seconds = 0.0
        self._needs_frame = True
        if was_training:
            self.stopped.emit()
        if spec.dataset is None:
            return
        eng = LiveEngine(spec.dataset, spec.config, spec.sampler, spec.n_particles, seed=spec.config.train.seed)
        eng.set_trails(self._trail_length)
        self._engine = eng
        self._target = spec.config.train.steps

    def _do_load(self, source: str, token: int, n_points: int, seed: int) -> None:
        try:
            dataset = load_dataset(source, n_points=n_points, seed=seed)
        except SGMError as exc:
            self.load_failed.emit(token, str(exc))
            return
        self.loaded.emit(LoadedData(token, source, "preset" if source in PRESETS else "file", dataset))

    def _require_engine(self) -> LiveEngine:
        if self._engine is None:
            raise _NoEngine("there is no data to train on: draw at least 2 points or load a preset")
        return self._engine

    def _do_train(self) -> None:
        eng = self._require_engine()
        if eng.trainer.step >= self._target:  # finished or stopped: train another round
            self._target = eng.trainer.step + max(1, eng.config.train.steps)
        self._training, self._paused = True, False
        eng.pause_clock()
        if self._follow_training and not self._playing:
            if eng.sampler_step >= eng.sampler.n_steps:  # a finished chain: start a new one
                eng.reset_particles()
                self._particle_step_time = 0.0
            self._playing = True

    def _do_pause_training(self) -> None:
        if self._training:
            self._training, self._paused = False, True
            if self._engine is not None:
                _mark_good(self._engine)
                self._engine.pause_clock()
            self._needs_frame = True

    def _do_stop_training(self) -> None:
        eng = self._engine
        was = self._training or self._paused
        self._training = self._paused = False
        if eng is not None:
            self._target = eng.trainer.step
            if was:
                _mark_good(eng)
            eng.pause_clock()
        self._needs_frame = True
        if was:
            self.stopped.emit()

    def _do_reset_training(self) -> None:
        if self._spec is not None:
            self._do_set_engine(self._spec)

    def _do_play(self) -> None:
        self._require_engine()
        self._playing = True

    def _do_pause_particles(self) -> None:
        self._playing = False
        self._needs_frame = True

    def _do_step_particles(self) -> None:
        eng = self._require_engine()
        eng.advance(self._steps_per_frame)
        self._needs_frame = True

    def _do_reset_particles(self, n: int | None) -> None:
        self._particle_step_time = 0.0
        if self._engine is not None:
            self._engine.reset_particles(n)
            self._needs_frame = True

    def _do_spawn(self, point: tuple[float, ...], n: int, radius: float) -> None:
        eng = self._require_engine()
        center = np.zeros(eng.dataset.dim, np.float32)
        k = min(len(point), eng.dataset.dim)
        center[:k] = point[:k]
        eng.spawn_at(center, n, radius)
        self._needs_frame = True

    def _do_set_sampler(self, cfg: SamplerConfig) -> None:
        self._particle_step_time = 0.0
        if self._spec is not None:
            self._spec = replace(self._spec, sampler=cfg)
        if self._engine is not None:
            self._engine.set_sampler(cfg)
            self._needs_frame = True

    def _do_set_steps_per_frame(self, n: int) -> None:
        self._steps_per_frame = n

    def _do_set_trails(self, length: int) -> None:
        self._trail_length = length
        if self._engine is not None:
            self._engine.set_trails(length)
            self._needs_frame = True

    def _do_set_view(self, view: FieldView | None, heatmap: str) -> None:
        self._view, self._heatmap = view, heatmap
        self._needs_frame = True

    def _do_call(self, fn: Callable[[LiveEngine], Any]) -> None:
        fn(self._require_engine())
        self._needs_frame = True

    def _do_run_task(self, token: int, fn: Callable[[LiveEngine | None], Any]) -> None:
        try:
            result = fn(self._engine)
        except (SGMError, OSError) as exc:
            self.task_failed.emit(token, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the caller waits on the token: always answer
            traceback.print_exception(exc)
            self.task_failed.emit(token, f"unexpected error ({type(exc).__name__}: {exc})")
            return
        self.task_finished.emit(token, result)

    def _do_replace_engine(self, token: int, build: Callable[[], tuple[LiveEngine | None, EngineSpec, Any]]) -> None:
        try:
            engine, spec, payload = build()  # everything that can fail happens before the swap
        except (SGMError, OSError) as exc:
            self.task_failed.emit(token, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - as in _do_run_task
            traceback.print_exception(exc)
            self.task_failed.emit(token, f"unexpected error ({type(exc).__name__}: {exc})")
            return
        self._do_set_engine(replace(spec, dataset=None))  # stop training, drop caches, no engine
        self._spec, self._playing = spec, False  # Reset rebuilds a fresh engine on the same data
        if engine is not None:
            engine.set_trails(self._trail_length)
            self._engine = engine
            self._target = engine.trainer.step  # Train starts another round from the saved step
        self.task_finished.emit(token, payload)

    def _do_set_metrics(self, on: bool) -> None:
        self._metrics_on = on
        self._metric_idents.clear()  # shown again: refresh at once

    def _do_set_reference_score(self, on: bool) -> None:
        self._reference_score = on
        self._needs_frame = True

    def _do_set_follow_training(self, on: bool) -> None:
        self._follow_training = on

    # -- live metrics (worker thread) -------------------------------------------------------
    def _samples_job(self, eng: LiveEngine):  # noqa: ANN202 - a Steps[dict]
        """Sample metrics, then the PF-ODE likelihood, as one step-wise job (~0.1 s in ~35 pieces)."""
        out = {"train_step": eng.trainer.step, "sampler_step": eng.sampler_step,
               "reference_score": eng.use_reference_score}
        out.update((yield from eng.sample_metrics_steps(METRICS_POINTS)))
        # the likelihood is the model's: meaningless while the true score drives the particles
        out["log_likelihood"] = (None if eng.use_reference_score
                                 else (yield from eng.data_log_likelihood_steps(n_points=100, n_steps=30)))
        return out

    def _run_job_pieces(self, job: _Job) -> dict | None:
        """Pieces of `job` while a frame is not about to be due (always one when nothing is
        animating); its result once finished, else None."""
        animating = self._playing or self._training
        while not self._stop.is_set():
            if animating and self._next_frame - time.perf_counter() < JOB_ROOM and job.spent > 0:
                return None  # the next frame first; the job goes on after it
            t0 = time.perf_counter()
            try:
                next(job.steps)
            except StopIteration as done:
                job.spent += time.perf_counter() - t0
                return done.value
            job.spent += time.perf_counter() - t0
            if not animating:
                return None  # one piece per loop turn: commands stay responsive
        return None

    def _maybe_metrics(self, eng: LiveEngine, now: float) -> None:
        """Refresh the Metrics dock's numbers on their throttles, and only when their inputs moved:
        the score error per σ (cheap) when training steps; the sample metrics and the PF-ODE
        likelihood (costly) when the model or the particles change. Emits one dict with the
        newest of both; `updated` names the parts recomputed this time."""
        m = self._metrics
        if m.get("gen") != self._gen:
            m.clear()
            self._metric_idents.clear()
            m.update(gen=self._gen, reference_kind=eng.reference_kind, sigmas=list(eng.metric_sigmas()),
                     reference_points=min(len(eng.dataset.points), 2000), conditional=eng.trainer.spec.conditional)
        updated = []
        curve = (self._gen, eng.trainer.step)
        if self._metric_idents.get("curve") != curve and self._metric_throttles["curve"].due(now):
            t0 = time.perf_counter()
            m.update(score_step=eng.trainer.step, score_errors=[eng.score_error(s) for s in m["sigmas"]])
            self._metric_throttles["curve"].done(t0, time.perf_counter())
            self._metric_idents["curve"] = curve
            updated.append("curve")
        samples = (self._gen, eng.trainer.step, eng.sampler_step, id(eng.particles), eng.use_reference_score)
        job = self._metric_job
        if job is not None and job.gen != self._gen:
            job = self._metric_job = None  # a new engine: its metrics start afresh
        if (job is None and self._metric_idents.get("samples") != samples
                and self._metric_throttles["samples"].due(now) and not self._stop.is_set()):
            job = self._metric_job = _Job(self._gen, samples, self._samples_job(eng))
        if job is not None:
            result = self._run_job_pieces(job)
            if result is not None:
                self._metric_job = None
                for key in ("sw", "sw_ratio", "mmd", "energy", "mode_weights", "true_weights", "on_mode"):
                    m.pop(key, None)
                m.update(result)
                self._metric_throttles["samples"].record(time.perf_counter(), job.spent)
                self._metric_idents["samples"] = job.ident
                updated.append("samples")
        if updated:
            self.metrics_updated.emit({**m, "updated": tuple(updated)})


class _Job:
    """A step-wise computation the loop runs a piece at a time (sgm_core.stepwise)."""

    def __init__(self, gen: int, ident: Any, steps: Any) -> None:
        self.gen, self.ident, self.steps = gen, ident, steps
        self.spent = 0.0  # seconds of its own pieces, not the frames between them


def _mark_good(engine: LiveEngine) -> None:
    """Where training rests (paused, stopped, finished) is what a later divergence returns to."""
    if all(torch.isfinite(p).all() for p in engine.trainer.model.parameters()):
        engine.trainer.mark_good()


class _NoEngine(SGMError):
    """A command needs an engine but there is no trainable data."""


def _describe(exc: BaseException) -> str:
    """One line for the banner; the traceback goes to stderr for bug reports."""
    traceback.print_exception(exc)
    return f"unexpected error in the engine ({type(exc).__name__}: {exc}); training was paused"

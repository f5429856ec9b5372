"""The playground's engine loop, without Qt: typed commands in, typed events out.

An `Engine` owns one `LiveEngine` (all torch state) and an explicit `RunState` (what the user set,
what runs, whether a frame is due). Its host, a thread or a child process, hands it batches of
commands (`handle`), calls `work()` while it is busy and waits `idle_timeout()` when it is not; the
engine answers through one `emit(event)` callback. Every command and event is a small frozen
dataclass, so the same loop runs behind a queue in a thread or a pipe to another process, and a
test drives it directly, without either.

One iteration trains a chunk sized to ~25 ms (ending when the next frame is due), advances the
particles on the frame clock within a time budget, and builds the newest frame only once the host
said the last one was drawn (`FrameDrawn`): newest wins, never a backlog. While training, the
particle steps run on a second thread beside the chunk (`_start_particles`); everything else that
reads the particles waits for them first (`_join_particles`).
"""

from __future__ import annotations

import copy
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .config import RunConfig, SamplerConfig, fresh_model_reason
from .datasets import PRESETS, Dataset, load_dataset
from .errors import ConfigError, SGMError, TrainingDiverged
from .frames import FrameBuilder, FrameRequest, Throttle
from .lazy import lazy_module
from .lessons import Claim, Lesson, LiveVariant, lesson_coordinates, live_claims, needs_particles
from .live import FieldView, Frame, LiveEngine
from .truth import EMPIRICAL_POINTS

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

IDLE_WAIT = 0.25  # seconds between checks when there is nothing to do (commands wake the loop early)
CHUNK_SECONDS = 0.025  # training work between command checks: responsive stop, small overhead
MIN_CHUNK_SECONDS = 0.005  # ... but never so short that loop overhead dominates
MAX_CHUNK_STEPS = 500  # even a trivially fast net returns to the loop this often
# The frame clock: the GUI never sees more than this. It sits above the 30 fps a view should show,
# so a late frame costs a little margin, not the rate (at 30 Hz, 3D read 29.5-30.0 fps; at 40, 37-38).
MAX_FPS = 40.0
# Seconds of particle steps per frame while training (steps/frame is a ceiling, not a promise): 36 %
# of a frame, the share measured at 30 Hz, 12 ms, kept per second as the clock rose.
PARTICLE_BUDGET = 0.36 / MAX_FPS
PLAY_BUDGET = (2 / 3) / MAX_FPS  # ... and with no training to share the engine's time with
FIRST_SLICE = 1000  # particles that take the first step of a new chain, to measure the cost per particle
UPDATE_RATE_FRAMES = 16  # the particle update rate is over the last this-many frames that moved them
UPDATE_RATE_STALE = 1.0  # seconds without a particle update after which the rate reads 0
FRAME_BUDGET = 0.3  # at most this share of the engine's time goes to building frames
METRICS_CURVE_EVERY = 0.5  # seconds between score-error points per σ (4 levels: ~25 ms on one core)
METRICS_SAMPLES_EVERY = 2.5  # seconds between sample metrics + PF-ODE likelihood (~0.1–0.4 s)
METRICS_POINTS = 500  # particles and data draws the sample metrics compare (MMD is quadratic in it)
CHAIN_HOLD = 1.5  # seconds a finished chain stays on screen before it restarts with the newer model
JOB_ROOM = 0.012  # a costly metric's next piece starts only this long or longer before the next frame
STOPPING_SAMPLERS = ("sde", "pc", "ode")  # integrators that end at t = eps: play stops there
CHECKPOINT_EVERY = 2.0  # seconds between copies of the weights sent to the host while training


# -- what the engine is built from, and what it reports ------------------------------------------
@dataclass(frozen=True)
class EngineSpec:
    """What the engine is built from; dataset None means no trainable data (empty drawing)."""

    dataset: Dataset | None
    config: RunConfig
    sampler: SamplerConfig
    n_particles: int = 2000
    source: Dataset | None = None  # a flow's source distribution (fm / ot-fm; the window's Source layer)
    guide: tuple[int, float] | None = None  # (class index, w): particles asked for a class, guided


@dataclass(frozen=True)
class LoadedData:
    token: int  # the request's token: the GUI ignores answers to requests it has superseded
    source: str  # preset name or file path
    kind: str  # "preset" | "file"
    dataset: Dataset


@dataclass(frozen=True)
class EngineState:
    """The engine's run state, for buttons and menus."""

    has_engine: bool = False
    training: bool = False
    paused: bool = False  # training paused with steps left (Resume continues)
    playing: bool = False
    target: int = 0  # the step count the current round trains to


@dataclass
class RunState:
    """Everything the loop decides with, besides the torch state itself: what the user set, what
    runs, and whether the next frame has something new to show."""

    spec: EngineSpec | None = None  # what Reset rebuilds from
    gen: int = 0  # engine generation: caches and metrics are keyed by it
    view: FieldView | None = None
    heatmap: str = "off"
    training: bool = False
    paused: bool = False
    playing: bool = False
    target: int = 0
    steps_per_frame: int = 5
    trail_length: int = 0
    reference_score: bool = False  # particles follow the reference score instead of the model
    follow_training: bool = True  # Train starts the particles; their chain restarts as the model learns
    metrics_on: bool = False
    frame_due: bool = False  # something changed that the next frame must show, even when idle
    advanced: bool = False  # the particles already took their steps for the next frame
    chain_end: float | None = None  # when the running chain reached its schedule's end
    lesson: CheckLesson | None = None  # the lesson whose claims are measured live
    moved: int = 0  # particle-steps taken for the next frame (a slice of the set, or all x steps)
    update_rate: float = 0.0  # frames per second that showed moved particles
    given: tuple[tuple[int, float], ...] = ()  # the Condition tool's fixed coordinates, kept across rebuilds

    @property
    def animating(self) -> bool:
        return self.training or self.playing

    def wants_frame(self) -> bool:
        return self.frame_due or self.animating

    def summary(self, has_engine: bool) -> EngineState:
        return EngineState(has_engine, self.training, self.paused, self.playing, self.target)

    def request(self, eng: LiveEngine, now: float) -> FrameRequest:
        clock = eng.clock
        return FrameRequest(self.view, self.heatmap, self.training, self.target, clock.elapsed(now),
                            self.moved, self.update_rate, eta=clock.eta(now, eng.trainer.step, self.target))


# -- commands (host -> engine) --------------------------------------------------------------------
@dataclass(frozen=True)
class SetEngine:
    """Rebuild the engine from data + config (training stops; particles restart)."""

    spec: EngineSpec


@dataclass(frozen=True)
class UpdateEngine:
    """Replace the data and settings, keep the model (weights, Adam, step, loss curve): training
    goes on, fine-tuning. No dataset keeps the model idle until data returns (an undone load);
    where the model cannot follow (`fresh_model_reason`) it is rebuilt as SetEngine would."""

    spec: EngineSpec


@dataclass(frozen=True)
class Load:
    """Load a preset or a file (presets and images draw with torch); answers Loaded or LoadFailed."""

    source: str
    token: int
    n_points: int = 5000
    seed: int = 0


@dataclass(frozen=True)
class Train:
    """Train (another round once one has finished); resume=True only lets a paused round go on
    (a question that paused training has closed): nothing starts if none is paused."""

    resume: bool = False


@dataclass(frozen=True)
class PauseTraining:
    pass


@dataclass(frozen=True)
class StopTraining:
    pass


@dataclass(frozen=True)
class ResetTraining:
    pass


@dataclass(frozen=True)
class Play:
    pass


@dataclass(frozen=True)
class PauseParticles:
    pass


@dataclass(frozen=True)
class StepParticles:
    pass


@dataclass(frozen=True)
class ResetParticles:
    n: int | None = None


@dataclass(frozen=True)
class Spawn:
    """Restart n particles in a Gaussian blob around `point` (data coordinates; 2D in 3D: z = 0)."""

    point: tuple[float, ...]
    n: int
    radius: float


@dataclass(frozen=True)
class SetSampler:
    config: SamplerConfig


@dataclass(frozen=True)
class SetGuidance:
    """Ask the particles and the field for class `c` (an index into the model's classes) with
    classifier-free guidance scale `w`, live; None: unconditional. An unconditional model: Failed."""

    c: int | None
    w: float = 0.0


@dataclass(frozen=True)
class SetCondition:
    """Hold coordinates fixed ((axis, value) pairs, data units) and sample the conditional; () for the joint."""

    given: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class SetStepsPerFrame:
    n: int


@dataclass(frozen=True)
class SetTrails:
    length: int


@dataclass(frozen=True)
class SetView:
    view: FieldView | None
    heatmap: str = "off"


@dataclass(frozen=True)
class SetMetrics:
    """Compute live metrics (score error per σ, sample metrics, likelihood) only while enabled."""

    enabled: bool


@dataclass(frozen=True)
class SetReferenceScore:
    on: bool


@dataclass(frozen=True)
class SetFollowTraining:
    on: bool


@dataclass(frozen=True)
class CheckLesson:
    """Measure `lesson`'s claims live, the window running its variant `label` (None: stop).
    They are measured (LessonChecked) each time that variant has something new to show: its
    training reached the lesson's step count, and, for claims about particles, a sampler pass
    begun after that reached the end of its schedule."""

    lesson: Lesson | None
    label: str = ""
    seed: int = 0


@dataclass(frozen=True)
class Call:
    """Run fn(engine) (tests, benchmarks); its errors become Failed."""

    fn: Callable[[LiveEngine], Any]


@dataclass(frozen=True)
class RunTask:
    """Run fn(engine, or None without data); answers TaskFinished or TaskFailed with `token`."""

    token: int
    fn: Callable[[LiveEngine | None], Any]


@dataclass(frozen=True)
class ReplaceEngine:
    """build() -> (engine or None, spec, payload): installed in place of the current engine;
    if build fails, the current engine is left untouched and TaskFailed answers."""

    token: int
    build: Callable[[], tuple[LiveEngine | None, EngineSpec, Any]]


@dataclass(frozen=True)
class FrameDrawn:
    """The GUI drew the last frame: the next one may be sent."""


# Commands that touch no particle: they need not wait for the particle thread (FrameDrawn comes
# every frame, a few ms after it went out, while the next frame's particle steps still run).
CHAIN_FREE = (FrameDrawn,)


# -- events (engine -> host) ----------------------------------------------------------------------
@dataclass(frozen=True)
class FrameReady:
    frame: Frame


@dataclass(frozen=True)
class Failed:
    message: str  # one sentence: diverged training, bad config, unexpected error


@dataclass(frozen=True)
class FinishedTraining:
    step: int


@dataclass(frozen=True)
class Stopped:
    """Training stopped (Stop, or the engine was rebuilt while training)."""


@dataclass(frozen=True)
class Loaded:
    data: LoadedData


@dataclass(frozen=True)
class LoadFailed:
    token: int
    message: str


@dataclass(frozen=True)
class StateChanged:
    state: EngineState


@dataclass(frozen=True)
class MetricsUpdated:
    metrics: dict  # see Engine._maybe_metrics


@dataclass(frozen=True)
class LessonChecked:
    """The live lesson's claims, measured (`CheckLesson`), with the variant whose run they used."""

    label: str
    claims: tuple[Claim, ...]


@dataclass(frozen=True)
class TaskFinished:
    token: int
    result: Any


@dataclass(frozen=True)
class TaskFailed:
    token: int
    message: str


@dataclass(frozen=True)
class EngineBuilt:
    """A new engine generation began (built, reset, replaced, or none for no data)."""

    gen: int


@dataclass(frozen=True)
class Checkpoint:
    """The last good weights of engine generation `gen`, as numpy arrays: what the host keeps to
    restore the engine should its process die (no torch needed to hold them)."""

    gen: int
    config: RunConfig
    step: int
    model: dict[str, np.ndarray]
    ema: dict[str, np.ndarray]
    losses: np.ndarray


def checkpoint_of(engine: LiveEngine, gen: int) -> Checkpoint:
    t = engine.trainer
    return Checkpoint(gen, engine.config, t.step,
                      {k: v.detach().cpu().numpy().copy() for k, v in t.model.state_dict().items()},
                      {k: v.detach().cpu().numpy().copy() for k, v in t.ema_model.state_dict().items()},
                      np.array(t.loss_history(), dtype=np.float64))


def restore_engine(spec: EngineSpec, saved: Checkpoint | None) -> tuple[LiveEngine | None, EngineSpec, int]:
    """The engine of `spec` with `saved`'s weights, loss history and step (a ReplaceEngine build);
    the payload is the step restored. Weights that do not fit the config start afresh."""
    if spec.dataset is None:
        return None, spec, 0
    eng = LiveEngine(spec.dataset, spec.config, spec.sampler, spec.n_particles, seed=spec.config.train.seed,
                     source=spec.source)
    if saved is None or saved.config != spec.config:
        return eng, spec, 0
    t = eng.trainer
    t.model.load_state_dict({k: torch.as_tensor(v) for k, v in saved.model.items()})
    t.ema_model.load_state_dict({k: torch.as_tensor(v) for k, v in saved.ema.items()})
    t.step = saved.step
    t.losses = [float(v) for v in saved.losses]
    t.mark_good()
    return eng, spec, saved.step


class NoEngine(SGMError):
    """A command needs an engine but there is no trainable data."""


class Engine:
    """The loop's logic for one LiveEngine; the host supplies the thread (or process) and the waiting."""

    def __init__(self, emit: Callable[[object], None], max_fps: float = MAX_FPS,
                 chunk_seconds: float = CHUNK_SECONDS, stopping: Callable[[], bool] = lambda: False) -> None:
        self.emit = emit
        self.max_fps = max_fps
        self.chunk_seconds = chunk_seconds
        self.stopping = stopping  # the host is shutting down: a long metric job ends early
        self.engine: LiveEngine | None = None
        self.state = RunState()
        self.frames = FrameBuilder()
        self.frames_emitted = 0
        self.drawn = True  # the host drew the last frame (FrameDrawn): the next may go
        self._published = EngineState()
        self._next_frame = 0.0
        self._step_time = 0.0  # EMA seconds per training step, sizes the chunks
        self._particle_cost = 0.0  # EMA seconds per particle per sampler step, for the frame budget
        self._frame_cost = 0.0  # EMA seconds to build a frame, for FRAME_BUDGET
        self._update_times: deque[float] = deque(maxlen=UPDATE_RATE_FRAMES)  # frames that moved particles
        self._metrics: dict[str, Any] = {}
        self._metric_idents: dict[str, Any] = {}
        self._metric_throttles = {"curve": Throttle(METRICS_CURVE_EVERY), "samples": Throttle(METRICS_SAMPLES_EVERY)}
        self._metric_job: _Job | None = None  # the sample metrics + likelihood, done piece by piece
        self._curve_job: _Job | None = None  # the score error at each metric σ, a σ a piece
        self._checkpoint_at = 0.0
        self._lesson_ident: Any = None  # what the last lesson check measured
        self._chain_at_finish = -1  # the particle pass running when training last finished
        self._mover: ThreadPoolExecutor | None = None  # the particle thread, started on first use
        self._moving: tuple[LiveEngine, Future] | None = None  # particle steps under way beside training

    # -- the host's calls ---------------------------------------------------------------------
    def handle(self, commands: list[object]) -> None:
        """Apply a batch of commands, oldest first; of several rebuilds only the newest runs."""
        if not all(isinstance(c, CHAIN_FREE) for c in commands):
            self._join_particles()  # a command may touch the chain: the particle thread ends its steps first
        last_build = max((i for i, c in enumerate(commands) if isinstance(c, SetEngine)), default=-1)
        for i, command in enumerate(commands):
            if isinstance(command, SetEngine) and i != last_build:
                continue  # a newer rebuild follows: skip the stale one
            try:
                self._apply(command)
            except SGMError as exc:
                self.emit(Failed(str(exc)))
                self.state.frame_due = True
        if self.engine is not None:  # however the engine came (built, replaced), it follows the switch
            self.engine.use_reference_score = self.state.reference_score
        self._publish_state()

    def idle_timeout(self) -> float:
        """How long the host may wait for commands before the next `work()`."""
        if self.state.playing or self.state.frame_due:
            if not self.drawn:
                return IDLE_WAIT  # FrameDrawn wakes the host
            return max(0.002, min(IDLE_WAIT, self._next_frame - time.perf_counter()))
        return IDLE_WAIT

    def work(self) -> bool:
        """One iteration: a training chunk, then (on the frame clock) particles + a frame.
        True while busy (the host goes straight on), False when it may wait."""
        busy = False
        st, eng = self.state, self.engine
        if self._moving is not None and self._moving[1].done():
            self._join_particles()
        if eng is not None and self._moving is None:
            self._maybe_restart_chain(eng)
        if eng is not None and st.playing and not st.advanced:
            # The next frame's particle steps run right after the last frame went out, i.e. while
            # the GUI draws it: on two cores the two overlap instead of taking turns. While training
            # they run beside the chunk, on the particle thread.
            if st.training:
                self._start_particles(eng)
            else:
                self._advance_particles(eng)
        if eng is not None and st.training:
            self._train_chunk(eng)
            busy = True
        now = time.perf_counter()
        if eng is not None and st.wants_frame() and self.drawn and now >= self._next_frame:
            self._join_particles()
            if st.playing and not st.advanced:
                self._advance_particles(eng)
            self._emit_frame(now)
        if self._moving is not None:
            return busy  # the metrics and the lesson read the particles: after their steps
        if st.metrics_on and eng is not None and not self.stopping():
            self._maybe_metrics(eng, now)
            # a metric job left with nothing animating goes on at once; while animating, the frame
            # clock wakes the loop and the job continues after the next frame
            busy = busy or (self._metric_job is not None and not st.animating)
        if st.lesson is not None and eng is not None and not self.stopping():
            self._maybe_check_lesson(eng)
        return busy

    def on_error(self, exc: Exception) -> None:
        """An unexpected error escaped `work` or a command: stop what runs and say so."""
        try:
            self._join_particles()
        except Exception:  # noqa: BLE001, S110 - the error being reported comes first
            pass
        self.state.training = self.state.playing = False
        self.state.frame_due = False  # a frame that failed would only fail again
        self._publish_state()
        self.emit(Failed(describe(exc)))

    def close(self) -> None:
        self._moving = None
        if self._mover is not None:
            self._mover.shutdown(wait=True, cancel_futures=True)
            self._mover = None
        self.engine = None

    def build_frame(self) -> Frame:
        """The newest snapshot; costly parts are cached per engine/view/step."""
        assert self.engine is not None
        self._join_particles()
        now = time.perf_counter()
        return self.frames.build(self.engine, self.state.request(self.engine, now), self.state.gen, now)

    # -- one iteration's parts ----------------------------------------------------------------
    def _maybe_restart_chain(self, eng: LiveEngine) -> None:
        """While training with particles following it: a chain that finished its schedule is shown
        for CHAIN_HOLD, then starts again from the prior under the newer model (annealed chains
        would otherwise keep the mode weights their first pass, under an untrained model, gave)."""
        st = self.state
        if not (st.training and st.follow_training and st.playing):
            st.chain_end = None
            return
        if not eng.chain.done:
            return
        now = time.perf_counter()
        if st.chain_end is None:
            st.chain_end = now
        elif now - st.chain_end >= CHAIN_HOLD:
            st.chain_end = None
            eng.reset_particles()
            st.advanced = True  # the next frame shows the fresh draw from the prior, unmoved
            st.frame_due = True

    def _advance_particles(self, eng: LiveEngine) -> None:
        """The next frame's particle steps, here and now."""
        self._particles_moved(eng, *self._move_particles(eng, *self._particle_plan(eng)))

    def _start_particles(self, eng: LiveEngine) -> None:
        """The next frame's particle steps on the particle thread, beside the training chunk: both
        are torch ops that release the GIL, so on two cores training keeps the time the particles
        took from it (issue 12: 0.36 of the engine's one core at 10k particles). The steps read the
        weights the trainer updates in place; a frame's particles may mix two adjacent steps' weights."""
        plan = self._particle_plan(eng)
        self.state.advanced = True
        if self._mover is None:
            self._mover = ThreadPoolExecutor(1, thread_name_prefix="particles")
        self._moving = (eng, self._mover.submit(self._move_particles, eng, *plan))

    def _join_particles(self) -> None:
        """Wait for the particle thread's steps and book them (its error, if any, is raised here)."""
        if self._moving is None:
            return
        (eng, future), self._moving = self._moving, None
        self._particles_moved(eng, *future.result())

    def _particle_plan(self, eng: LiveEngine) -> tuple[int, int]:
        """(particle-steps, steps per frame) that fit PARTICLE_BUDGET (PLAY_BUDGET when not training):
        up to steps-per-frame whole steps, or, when not even one fits (100k particles: ~0.2 s a step on
        one core), the next slice round-robin, so the frame clock never waits on the sampler and every
        particle moves within ceil(n / slice) frames (measured: 10k x 5 steps took ~50 ms a frame on
        one core, 12 fps)."""
        st = self.state
        seconds = PARTICLE_BUDGET if st.training else PLAY_BUDGET
        n = len(eng.particles)
        budget = n * st.steps_per_frame if self._particle_cost <= 0 else int(seconds / self._particle_cost)
        if self._particle_cost <= 0:  # no estimate yet (new chain or count): a small slice measures it
            budget = min(budget, FIRST_SLICE)
        return budget, st.steps_per_frame

    @staticmethod
    def _move_particles(eng: LiveEngine, budget: int, steps: int) -> tuple[int, float]:
        """Take the planned steps; (particle-steps taken, seconds). Touches the chain only."""
        n = len(eng.particles)
        t0 = time.perf_counter()
        moved = 0
        if budget >= n and eng.chain.cursor:
            # A sweep a slice began (the first slice of a chain, which measures the cost): end it, so
            # whole steps follow. Left mid-sweep, a budget of n moved n round-robin from the same
            # cursor every frame: one step a frame, whatever steps-per-frame asked (2,000 particles
            # in the Condition tool's test: 1,601 frames for 1,600 steps, ~70 s instead of ~5).
            moved = eng.advance_some(n - eng.chain.cursor)
            budget, steps = budget - moved, steps - 1
        if budget >= n and steps > 0:
            steps = min(steps, budget // n)
            eng.advance(steps)
            moved += steps * n
        elif not moved:
            moved = eng.advance_some(max(1, min(budget, n)))
        return moved, time.perf_counter() - t0

    def _particles_moved(self, eng: LiveEngine, moved: int, seconds: float) -> None:
        st = self.state
        per_particle = seconds / max(moved, 1)
        self._particle_cost = _ema(self._particle_cost, per_particle, 0.7)
        st.moved += moved
        st.advanced = True
        following = st.training and st.follow_training  # the chain will restart: keep playing
        if eng.sampler.name in STOPPING_SAMPLERS and eng.chain.done and not following:
            st.playing = False  # the integrators stop at t = eps: nothing left to show
            st.frame_due = True  # ... but the end itself is
            self._publish_state()

    def _checkpoint(self, eng: LiveEngine, rest: bool = True) -> None:
        """Send the weights where training rests (marked good: a divergence returns there too),
        and every CHECKPOINT_EVERY while it trains (finite ones only, not marked)."""
        good = mark_good(eng) if rest else all(torch.isfinite(p).all() for p in eng.trainer.model.parameters())
        self._checkpoint_at = time.perf_counter()
        if good:
            self.emit(checkpoint_of(eng, self.state.gen))

    def _train_chunk(self, eng: LiveEngine) -> None:
        st = self.state
        left = st.target - eng.trainer.step
        budget = self.chunk_seconds
        if st.wants_frame():
            # End the chunk when the next frame is due: a steady frame clock. Waiting for the GUI's
            # FrameDrawn past that time, chunks stay short, so the frame goes out soon after it
            # arrives (a full 25 ms chunk there held 10k particles + training to 24 fps, not 30).
            budget = min(budget, max(MIN_CHUNK_SECONDS, self._next_frame - time.perf_counter()))
        n = 1 if self._step_time <= 0 else int(budget / self._step_time)
        n = max(1, min(n, MAX_CHUNK_STEPS, left))
        t0 = time.perf_counter()
        try:
            eng.train(n)
        except TrainingDiverged as exc:
            st.training = st.paused = False
            eng.pause_clock()
            st.frame_due = True
            self._publish_state()
            self.emit(Failed(str(exc)))
            return
        finally:
            dt = time.perf_counter() - t0
        per_step = dt / n
        self._step_time = _ema(self._step_time, per_step, 0.7)
        if eng.trainer.step >= st.target:
            st.training = False
            self._checkpoint(eng)
            eng.pause_clock()
            st.frame_due = True
            self._publish_state()
            self._chain_at_finish = eng.chain.restarts
            self.emit(FinishedTraining(eng.trainer.step))
        elif time.perf_counter() - self._checkpoint_at >= CHECKPOINT_EVERY:
            self._checkpoint(eng, rest=False)

    def _emit_frame(self, now: float) -> None:
        st = self.state
        if st.moved:
            self._update_times.append(now)
        times = self._update_times
        fresh = len(times) > 1 and now - times[-1] < UPDATE_RATE_STALE
        st.update_rate = (len(times) - 1) / (times[-1] - times[0]) if fresh and times[-1] > times[0] else 0.0
        t0 = time.perf_counter()
        frame = self.build_frame()
        cost = time.perf_counter() - t0
        # The budget is a share of the engine's time, so it holds for the mean cost: one costly
        # frame (a slow part's refresh, e.g. an error map) must not stretch the next period (a
        # 30 ms one once a second set it to ~100 ms and held the 3D view to ~28 fps).
        self._frame_cost = _ema(self._frame_cost, cost, 0.8)
        period = max(1.0 / self.max_fps, self._frame_cost / FRAME_BUDGET)
        # On a schedule, not "a period after this one": a frame that went out a little late does
        # not push every later frame back (that alone held 30 fps to ~28).
        self._next_frame += period
        if self._next_frame < now:  # more than a period behind (idle, or a slow GUI): restart the schedule
            self._next_frame = now + period
        st.frame_due = False
        st.advanced = False
        st.moved = 0
        self.drawn = False
        self.frames_emitted += 1
        self.emit(FrameReady(frame))

    def _publish_state(self) -> None:
        self._sync_clock()
        state = self.state.summary(self.engine is not None)
        if state != self._published:
            self._published = state
            self.emit(StateChanged(state))

    def _sync_clock(self) -> None:
        """The model's wall-clock training time runs exactly while training runs (every change of
        `training` is published): a pause holds the round, a finish or Stop ends it."""
        st, eng = self.state, self.engine
        if eng is None or eng.clock.running == st.training:
            return
        now = time.perf_counter()
        if st.training:
            eng.clock.start(now, eng.trainer.step)
        else:
            eng.clock.stop(now, finished=eng.trainer.step >= st.target)

    # -- commands -----------------------------------------------------------------------------
    def _apply(self, command: object) -> None:  # noqa: C901, PLR0912 - one case per command type
        st = self.state
        match command:
            case FrameDrawn():
                self.drawn = True
            case SetEngine(spec):
                self._set_engine(spec)
            case UpdateEngine(spec):
                self._update_engine(spec)
            case Load(source, token, n_points, seed):
                self._load(source, token, n_points, seed)
            case Train(resume):
                if st.paused or not resume:
                    self._train()
            case PauseTraining():
                if st.training:
                    st.training, st.paused = False, True
                    if self.engine is not None:
                        self._checkpoint(self.engine)
                        self.engine.pause_clock()
                    st.frame_due = True
            case StopTraining():
                self._stop_training()
            case ResetTraining():
                if st.spec is not None:
                    self._set_engine(st.spec)
            case Play():
                self._require_engine()
                st.playing = True
            case PauseParticles():
                st.playing = False
                st.frame_due = True
            case StepParticles():
                eng = self._require_engine()
                eng.advance(st.steps_per_frame)
                st.moved += st.steps_per_frame * len(eng.particles)
                st.frame_due = True
            case ResetParticles(n):
                self._particle_cost = 0.0
                if self.engine is not None:
                    self.engine.reset_particles(n)
                    st.frame_due = True
            case Spawn(point, n, radius):
                eng = self._require_engine()
                center = np.zeros(eng.dataset.dim, np.float32)
                k = min(len(point), eng.dataset.dim)
                center[:k] = point[:k]
                eng.spawn_at(center, n, radius)
                st.frame_due = True
            case SetSampler(cfg):
                self._particle_cost = 0.0
                if st.spec is not None:
                    st.spec = replace(st.spec, sampler=cfg)
                if self.engine is not None:
                    self.engine.set_sampler(cfg)
                    st.frame_due = True
            case SetGuidance(c, w):
                if st.spec is not None:
                    st.spec = replace(st.spec, guide=None if c is None else (int(c), float(w)))
                if self.engine is not None:
                    self.engine.set_guidance(c, w)
            case SetCondition(given):
                st.given = tuple(given)
                self._particle_cost = 0.0
                if self.engine is not None:
                    self._apply_condition(self.engine)
                    st.frame_due = True
            case SetStepsPerFrame(n):
                st.steps_per_frame = max(1, int(n))
            case SetTrails(length):
                st.trail_length = max(0, int(length))
                if self.engine is not None:
                    self.engine.set_trails(st.trail_length)
                    st.frame_due = True
            case SetView(view, heatmap):
                st.view, st.heatmap = view, heatmap
                st.frame_due = True
            case SetMetrics(enabled):
                st.metrics_on = bool(enabled)
                self._metric_idents.clear()  # shown again: refresh at once
            case SetReferenceScore(on):
                st.reference_score = bool(on)
                st.frame_due = True
            case SetFollowTraining(on):
                st.follow_training = bool(on)
            case CheckLesson():
                st.lesson = command if command.lesson is not None else None
                self._lesson_ident = None
            case Call(fn):
                fn(self._require_engine())
                st.frame_due = True
            case RunTask(token, fn):
                self._answer(token, lambda: fn(self.engine), lambda result: self.emit(TaskFinished(token, result)))
            case ReplaceEngine(token, build):
                self._answer(token, build, lambda built: self._install(token, *built))
            case _:
                raise TypeError(f"not an engine command: {command!r}")

    def _answer(self, token: int, compute: Callable[[], Any], then: Callable[[Any], None]) -> None:
        """Run compute(); its result goes to then(), its failure to TaskFailed(token): the caller
        waits on the token, so it always gets an answer."""
        try:
            result = compute()
        except (SGMError, OSError) as exc:
            self.emit(TaskFailed(token, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001
            traceback.print_exception(exc)
            self.emit(TaskFailed(token, f"unexpected error ({type(exc).__name__}: {exc})"))
            return
        then(result)

    def _set_engine(self, spec: EngineSpec) -> None:
        st = self.state
        self._particle_cost = 0.0
        was_training = st.training
        st.training = st.paused = False
        self.engine = None
        st.spec = spec
        st.gen += 1
        self.emit(EngineBuilt(st.gen))
        self.frames.clear()
        self._step_time = 0.0
        self._chain_at_finish = -1
        st.frame_due = True
        if was_training:
            self.emit(Stopped())
        if spec.dataset is None:
            return
        eng = LiveEngine(spec.dataset, spec.config, spec.sampler, spec.n_particles, seed=spec.config.train.seed,
                         source=spec.source)
        eng.set_trails(st.trail_length)
        if spec.guide is not None and spec.config.model.classes:
            eng.set_guidance(*spec.guide)
        self._apply_condition(eng)
        self.engine = eng
        st.target = spec.config.train.steps

    def _apply_condition(self, eng: LiveEngine) -> None:
        """The Condition tool's fixed coordinates on this engine; one that does not fit its data
        (an axis it lacks, every axis fixed) is dropped and the joint sampled."""
        if not self.state.given and eng.given is None:
            return  # nothing held, nothing to undo: the chain is left as it is
        try:
            eng.set_condition(dict(self.state.given) or None)
        except ConfigError:
            self.state.given = ()
            eng.set_condition(None)

    def _update_engine(self, spec: EngineSpec) -> None:
        st, eng = self.state, self.engine
        if eng is None or (spec.dataset is not None and fresh_model_reason(
                eng.config, spec.config, eng.dataset.dim, spec.dataset.dim) is not None):
            self._set_engine(spec)
            return
        if spec.dataset is None:  # nothing to train on: the model waits, unchanged
            if st.training or st.paused:
                self._stop_training()
            st.playing = False
            return
        old_steps = eng.config.train.steps
        eng.update(spec.dataset, spec.config, spec.source)
        if spec.sampler != eng.sampler_config:
            eng.set_sampler(spec.sampler)
        if spec.n_particles != len(eng.particles):
            eng.reset_particles(spec.n_particles)
        eng.set_guidance(*(spec.guide if spec.guide is not None and spec.config.model.classes else (None,)))
        if eng.trainer.step < st.target:  # a round under way or not yet begun keeps its start; a new step count moves its end
            st.target = max(eng.trainer.step, st.target - old_steps + spec.config.train.steps)
        st.spec = spec
        st.gen += 1  # caches and metrics describe the old data: a new generation, the same model
        self.emit(EngineBuilt(st.gen))
        self.frames.clear()
        self._step_time = self._particle_cost = 0.0
        st.frame_due = True
        self._checkpoint(eng, rest=False)  # the host holds these weights under the new generation

    def _install(self, token: int, engine: LiveEngine | None, spec: EngineSpec, payload: Any) -> None:
        self._set_engine(replace(spec, dataset=None))  # stop training, drop caches, no engine
        self.state.spec, self.state.playing = spec, False  # Reset rebuilds a fresh engine on the same data
        if engine is not None:
            engine.set_trails(self.state.trail_length)
            self._apply_condition(engine)
            self.engine = engine
            self.state.target = engine.trainer.step  # Train starts another round from the saved step
            self._checkpoint(engine, rest=False)  # the host holds these weights from the start
        self.emit(TaskFinished(token, payload))

    def _load(self, source: str, token: int, n_points: int, seed: int) -> None:
        try:
            dataset = load_dataset(source, n_points=n_points, seed=seed)
        except SGMError as exc:
            self.emit(LoadFailed(token, str(exc)))
            return
        self.emit(Loaded(LoadedData(token, source, "preset" if source in PRESETS else "file", dataset)))

    def _require_engine(self) -> LiveEngine:
        if self.engine is None:
            raise NoEngine("there is no data to train on: draw at least 2 points or load a preset")
        return self.engine

    def _train(self) -> None:
        st = self.state
        eng = self._require_engine()
        if eng.trainer.step >= st.target:  # finished or stopped: train another round
            st.target = eng.trainer.step + max(1, eng.config.train.steps)
        st.training, st.paused = True, False
        eng.pause_clock()
        if st.follow_training and not st.playing:
            if eng.chain.done:  # a finished chain: start a new one
                eng.reset_particles()
                self._particle_cost = 0.0
            st.playing = True

    def _stop_training(self) -> None:
        st, eng = self.state, self.engine
        was = st.training or st.paused
        st.training = st.paused = False
        if eng is not None:
            st.target = eng.trainer.step
            if was:
                self._checkpoint(eng)
            eng.pause_clock()
        st.frame_due = True
        if was:
            self.emit(Stopped())

    # -- the live lesson ------------------------------------------------------------------------
    def _maybe_check_lesson(self, eng: LiveEngine) -> None:
        """Measure the lesson's claims once its shown variant has something new to measure
        (`CheckLesson`); the other variants are measured headless (cached in sgm_core.lessons)."""
        st, check = self.state, self.state.lesson
        lesson = check.lesson
        learned = lesson.score == "learned"
        if learned and (st.training or eng.trainer.step < lesson.train_steps):
            return  # the net is not the one the lesson judges yet
        particles = needs_particles(lesson)
        if particles and not (eng.chain.done and (not learned or eng.chain.restarts > self._chain_at_finish)):
            return  # no finished pass of the sampler (with the trained net) to measure
        ident = (st.gen, check, eng.trainer.step, eng.chain.restarts if particles else None)
        if ident == self._lesson_ident:
            return
        self._lesson_ident = ident
        ours = lesson_coordinates(lesson, check.seed)
        if ours.dim != eng.dataset.dim:
            return  # the user loaded other data (a 3D preset) with the lesson still open: nothing of it to judge

        def theirs(x: torch.Tensor) -> torch.Tensor:  # the window's standardised units -> the lesson's
            return torch.as_tensor(ours.forward(eng.standardizer.inverse(x.detach().float().cpu())))

        try:
            model = None
            if learned:
                if not (np.allclose(ours.shift, eng.standardizer.shift) and np.isclose(ours.scale, eng.standardizer.scale)):
                    raise SGMError("the window's data is not the lesson's draw: its net cannot be judged live")
                model = copy.deepcopy(eng.trainer.score_fn()).cpu()  # judged on the CPU, like the headless nets
            shown = LiveVariant(theirs(eng.chain.start) if particles else None,
                                theirs(eng.particles) if particles else None, model,
                                tuple(eng.trainer.loss_history().tolist()),
                                eng.clock.elapsed(time.perf_counter()) / max(eng.trainer.step, 1),
                                eng.chain.acceptance_rate if particles else None)
            claims = live_claims(lesson, check.label, shown, check.seed)
        except SGMError as exc:
            self.emit(Failed(f"the lesson's checks could not be measured: {exc}"))
            return
        self.emit(LessonChecked(check.label, tuple(claims)))

    # -- live metrics -------------------------------------------------------------------------
    def _samples_job(self, eng: LiveEngine):  # noqa: ANN202 - a Steps[dict]
        """Sample metrics, then the PF-ODE likelihood, as one step-wise job (~0.1 s in ~35 pieces)."""
        out = {"train_step": eng.trainer.step, "sampler_step": eng.sampler_step, "sampler_steps": eng.sampler.n_steps,
               "reference_score": eng.use_reference_score}
        out.update((yield from eng.sample_metrics_steps(METRICS_POINTS)))
        # the likelihood is the model's: meaningless while the true score drives the particles
        out["log_likelihood"] = (None if eng.use_reference_score
                                 else (yield from eng.data_log_likelihood_steps(n_points=100, n_steps=30)))
        return out

    def _run_job_pieces(self, job: _Job) -> dict | None:
        """Pieces of `job` while a frame is not about to be due (always one when nothing is
        animating); its result once finished, else None."""
        animating = self.state.animating
        while not self.stopping():
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
        m, gen = self._metrics, self.state.gen
        if m.get("gen") != gen:
            m.clear()
            self._metric_idents.clear()
            sigmas = eng.metric_sigmas()
            m.update(gen=gen, reference_kind=eng.reference_kind, reference_note=eng.reference_note,
                     sigmas=list(sigmas), measure=eng.error_measure,
                     reference_points=min(len(eng.dataset.points), EMPIRICAL_POINTS), reference_spacing=eng.reference_spacing,
                     level_noise=list(eng.level_noise(sigmas)), conditional=eng.trainer.spec.conditional)
        updated = []
        # The score error per σ, one σ a piece: against an empirical reference (a 3D point cloud)
        # the four levels took 220 ms at once, a 7-frame hitch every two seconds.
        curve = (gen, eng.trainer.step, eng.error_target)  # a class asked for: its guided score error
        cjob = self._curve_job
        if cjob is not None and (cjob.gen != gen or cjob.ident[2] != curve[2]):
            cjob = self._curve_job = None
        if (cjob is None and eng.reference is not None and self._metric_idents.get("curve") != curve
                and self._metric_throttles["curve"].due(now)):
            cjob = self._curve_job = _Job(gen, curve, _score_errors(eng, m["sigmas"]))
        if cjob is not None:
            errors = self._run_job_pieces(cjob)
            if errors is not None:
                self._curve_job = None
                m.update(score_step=cjob.ident[1], score_errors=errors, error_target=cjob.ident[2])  # at its start
                self._metric_throttles["curve"].record(time.perf_counter(), cjob.spent)
                self._metric_idents["curve"] = cjob.ident
                updated.append("curve")
        samples = (gen, eng.trainer.step, eng.sampler_step, id(eng.particles), eng.use_reference_score)
        job = self._metric_job
        if job is not None and job.gen != gen:
            job = self._metric_job = None  # a new engine: its metrics start afresh
        # The throttle is waived when the particles come to rest or their schedule has just ended:
        # the state the user now looks at is measured at once, so the Metrics header does not lag
        # the status bar by a refresh (seen: "1,556/1,600" beside "1,600/1,600").
        measured = int(m.get("sampler_step") or 0)
        waive = not self.state.animating or eng.sampler_step >= eng.sampler.n_steps > measured
        if (job is None and self._metric_idents.get("samples") != samples
                and (waive or self._metric_throttles["samples"].due(now)) and not self.stopping()):
            job = self._metric_job = _Job(gen, samples, self._samples_job(eng))
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
        if updated:  # train_target: the score-error axis spans the whole run
            self.emit(MetricsUpdated({**m, "train_target": self.state.target, "updated": tuple(updated)}))


def _ema(mean: float, value: float, keep: float) -> float:
    """An exponential moving average of the engine's timings; a mean of 0 (none yet, or reset
    when what it times changed) starts from `value`."""
    return value if mean <= 0 else keep * mean + (1 - keep) * value


def _score_errors(eng: LiveEngine, sigmas: list[float]) -> Any:
    """`LiveEngine.field_error` (the score's, or a flow net's velocity's) at each σ, one per `next()`;
    the list is the generator's value."""
    errors = []
    for sigma in sigmas:
        errors.append(eng.field_error(sigma))
        yield
    return errors


class _Job:
    """A step-wise computation the loop runs a piece at a time (sgm_core.stepwise)."""

    def __init__(self, gen: int, ident: Any, steps: Any) -> None:
        self.gen, self.ident, self.steps = gen, ident, steps
        self.spent = 0.0  # seconds of its own pieces, not the frames between them


def mark_good(engine: LiveEngine) -> bool:
    """Where training rests (paused, stopped, finished) is what a later divergence returns to;
    False (and nothing marked) when the weights are not finite."""
    if all(torch.isfinite(p).all() for p in engine.trainer.model.parameters()):
        engine.trainer.mark_good()
        return True
    return False


def describe(exc: BaseException) -> str:
    """One line for the banner; the traceback goes to stderr for bug reports."""
    traceback.print_exception(exc)
    return f"unexpected error in the engine ({type(exc).__name__}: {exc}); training was paused"

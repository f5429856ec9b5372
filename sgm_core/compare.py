"""Compare runs: several engines side by side, as one task an engine host runs (Qt-free).

Two experiments, one loop:
- **losses**: K LiveEngines on the same data, seed and network, one loss each, trained in
  round-robin chunks of the same number of steps (so they are compared after equal steps), with
  live particles; once trained, every loss samples again from identical starting particles.
- **samplers**: one model trained first, then K samplers walk their schedules from one shared
  initial draw (the noise model's prior), each in the same number of rounds so they finish together.

Like `sgm_core.engine.Engine`, `CompareTask` is driven by typed commands (`handle`) and a loop
(`work`) that a host supplies: a process of its own (`sgm_core.engine_process`, the window's
default) or a thread (app.compare_worker, SGM_ENGINE=thread). It emits the newest list of
`CompareFrame`s at most `max_fps` times a second and only once the GUI drew the previous one
(`FrameDrawn`). Each run's particles are a `sgm_core.chain.ParticleChain`.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .chain import ParticleChain
from .config import RunConfig, SamplerConfig
from .datasets import Dataset
from .errors import SGMError, TrainingDiverged
from .geometry import in_plane_axes, project_field
from .lazy import lazy_module
from .live import FieldGrid, FieldView, Frame, LiveEngine, decimated_losses
from .losses import loss_spec
from .metrics import SW_SEED, SWBaseline
from .noise import make_sde
from .samplers import make_sampler
from .training import device_label

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

MAX_FPS = 20.0  # frame lists per second at most (K plots each)
ROUND_SECONDS = 0.04  # training work per round-robin pass over all engines, between command checks
MAX_ROUND_STEPS = 200  # steps per engine per round, whatever the speed
LIVE_STEPS = 3  # sampler steps per drawn frame for the live particles while the models train
SAMPLE_ROUNDS = 150  # after training, every sampler walks its whole schedule in this many rounds
METRIC_EVERY = 1.0  # seconds between score-error / SW-ratio refreshes...
METRIC_COST_FACTOR = 6.0  # ... and never more often than this many times their own cost
METRIC_POINTS = 500  # particles and data draws the SW ratio compares
FIELD_RESOLUTION = 24  # arrows per axis in each small plot
MAX_CURVE_POINTS = 1000  # loss curves are decimated beyond this so frame lists stay small
# The GUI draws K plots per frame list in Python (pyqtgraph), ~20–35 ms on one core; the next list
# comes no sooner than GUI_DUTY x the time the GUI took to draw and acknowledge the last one.
GUI_DUTY = 2.5
IDLE_WAIT = 0.25  # seconds between checks when there is nothing to do (commands wake the host early)
PHASES = ("idle", "training", "sampling", "done")


@dataclass(frozen=True)
class CompareEntry:
    label: str  # what the plot's title names: a loss or a sampler
    config: RunConfig
    sampler: SamplerConfig


@dataclass(frozen=True)
class CompareSpec:
    """One experiment. In "samplers" mode every entry shares the first entry's run config."""

    dataset: Dataset
    mode: str  # "losses" | "samplers"
    entries: tuple[CompareEntry, ...]
    n_particles: int = 1000
    train_steps: int = 2000  # per loss ("losses") or for the one shared model ("samplers")
    bounds: tuple[tuple[float, float], ...] = ((-3.0, 3.0), (-3.0, 3.0))  # field box, data coordinates
    seed: int = 0  # the starting particles' draw (the networks use their config's seed)
    view_axis: int = 2  # 3D data: the plots look along this axis (particles projected, field on the mid plane)
    model: Any = None  # "samplers": a render.PackedModel (the main window's trained model) instead of training one
    source: Dataset | None = None  # a flow's source (the window's Source layer): fm / ot-fm entries start from it


@dataclass(frozen=True)
class CompareFrame:
    """One plot's snapshot: `frame` is what Plot2D draws, the rest is for its title and curves."""

    label: str
    frame: Frame
    phase: str  # idle | training | sampling | done
    steps_per_second: float  # training steps per second of this entry's own training time
    score_error: float | None  # relative error vs the reference at `eval_sigma` (`LiveEngine.field_error`)
    eval_sigma: float
    sw_ratio: float | None  # sliced Wasserstein particles↔data over data↔data
    sampler_steps: int  # the schedule length
    initial_particles: np.ndarray  # (n, D) data coordinates: where this run's particles started
    sw_history: tuple[tuple[float, float], ...] = ()  # (schedule progress 0..1, SW ratio) while sampling
    error_measure: str = "score"  # what score_error compares: "score", or "velocity" for a flow net


def _with_source(config: RunConfig, source: Dataset | None) -> tuple[RunConfig, Dataset | None]:
    """An entry's config and source: the window's source for a loss whose path transports one (fm,
    ot-fm), as the main window's engine gets it; none (and no LossConfig.source) for the others,
    which start from their Gaussian prior."""
    if source is not None and loss_spec(config.loss.name).process_type.transports:
        return config, source
    return (replace(config, loss=replace(config.loss, source="")) if config.loss.source else config), None


def eval_sigma(config: RunConfig) -> float:
    """Where a model is judged (as in sgm_core.lessons): its one σ, else the smallest level."""
    spec = loss_spec(config.loss.name)
    return config.noise.sigma if spec.noise == "single" else config.noise.sigma_min


@dataclass
class _Run:
    """One plot's state in the worker thread: its engine (own or shared) and its particle chain
    (whose blown-up particles restart at the chain's `initial` start)."""

    label: str
    engine: LiveEngine
    chain: ParticleChain
    done: bool = False
    train_seconds: float = 0.0
    trained: int = 0
    step_time: float = 0.0
    score_error: float | None = None
    sw_ratio: float | None = None
    sw_history: list[tuple[float, float]] = field(default_factory=list)
    field_cache: tuple[Any, FieldGrid] | None = None




# -- commands (host -> task) -------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """Build the engines of `spec` (nothing runs until `Run`)."""

    spec: CompareSpec


@dataclass(frozen=True)
class Run:
    """Start, or resume after `Pause`."""


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class SampleAgain:
    """Every entry samples again from the same starting particles with the current model(s)."""


@dataclass(frozen=True)
class SetBounds:
    """The plots' view box: 2D bounds (for 3D data, of the plane the plots show)."""

    bounds: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class SetViewAxis:
    """3D data: look along x (0), y (1) or z (2)."""

    axis: int


@dataclass(frozen=True)
class FrameDrawn:
    """The GUI drew the last frame list: the next one may come."""


# -- events (task -> host) ---------------------------------------------------------------------
@dataclass(frozen=True)
class CompareFrames:
    frames: list[CompareFrame]  # one per entry, in entry order


@dataclass(frozen=True)
class CompareFailed:
    message: str


@dataclass(frozen=True)
class PhaseChanged:
    phase: str  # one of PHASES


class CompareTask:
    """Owns every engine of a comparison; the host calls `handle`, `work` and waits `idle_timeout`."""

    def __init__(self, emit: Callable[[object], None], max_fps: float = MAX_FPS,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.emit = emit
        self.max_fps = max_fps
        self.stopping = stopping
        self.frames_emitted = 0
        self.drawn = True  # the GUI drew the last frame list (FrameDrawn)
        self._spec: CompareSpec | None = None
        self._runs: list[_Run] = []
        self._running = False
        self._phase = "idle"
        self._needs_frame = False
        self._next_frame = 0.0
        self._next_metrics = 0.0
        self._reference: SWBaseline | None = None  # data draws and the data-vs-data SW
        self._emitted_at = 0.0
        self._gui_seconds = 0.0  # how long the GUI took to draw and acknowledge the last frame list

    # -- the host's calls ---------------------------------------------------------------------
    def handle(self, commands: list[object]) -> None:
        for command in commands:
            try:
                self._apply(command)
            except SGMError as exc:
                self._running = False
                self.emit(CompareFailed(str(exc)))

    def idle_timeout(self) -> float:
        if self._needs_frame and self.drawn:
            return max(0.002, min(IDLE_WAIT, self._next_frame - time.perf_counter()))
        return IDLE_WAIT

    def work(self) -> bool:
        """One iteration: a training round (or sampling steps), metrics and a frame list on their
        clocks. True while busy (the host goes straight on), False when it may wait."""
        busy = False
        if self._running and self._runs:
            if self._phase == "training":
                self._train_round()
                frame_due = self.drawn and time.perf_counter() >= self._next_frame
                if self._phase == "training" and frame_due:  # live particles move on the frame clock
                    for run in self._live_runs():
                        self._advance(run, LIVE_STEPS)
            elif self._phase == "sampling":
                for run in self._runs:
                    if not run.done:
                        self._advance(run, max(1, math.ceil(run.chain.sampler.n_steps / SAMPLE_ROUNDS)))
                if all(run.done for run in self._runs):
                    self._next_metrics = 0.0  # the final SW ratios at once
                    self._update_metrics(time.perf_counter())
                    self._running = False
                    self._set_phase("done")
            busy = self._running
            self._needs_frame = True
        now = time.perf_counter()
        if self._runs and self._running and now >= self._next_metrics:
            self._update_metrics(now)
        if self._runs and self._needs_frame and self.drawn and now >= self._next_frame:
            self._emit_frames(now)
        return busy

    def on_error(self, exc: Exception) -> None:
        """An unexpected error escaped `work` or a command: stop and say so."""
        self._running = False
        traceback.print_exception(exc)
        self.emit(CompareFailed(f"the comparison stopped ({type(exc).__name__}: {exc})"))

    def close(self) -> None:
        self._runs = []

    def _apply(self, command: object) -> None:
        match command:
            case Setup(spec):
                self._setup(spec)
            case Run():
                self._run()
            case Pause():
                self._pause()
            case SampleAgain():
                self._sample_again()
            case SetBounds(bounds):
                self._set_bounds(bounds)
            case SetViewAxis(axis):
                self._set_view_axis(axis)
            case FrameDrawn():
                self._gui_seconds = time.perf_counter() - self._emitted_at
                self.drawn = True
            case _:
                raise SGMError(f"unknown compare command {type(command).__name__}")

    # -- one iteration's parts ----------------------------------------------------------------
    def _set_phase(self, phase: str) -> None:
        if phase != self._phase:
            self._phase = phase
            self.emit(PhaseChanged(phase))

    def _live_runs(self) -> list[_Run]:
        """Live particles while training: one chain per engine in "losses" mode, none in "samplers"
        mode (its chains wait for the trained model at their shared start)."""
        return self._runs if self._spec is not None and self._spec.mode == "losses" else []

    def _engines(self) -> list[tuple[LiveEngine, list[_Run]]]:
        out: dict[int, tuple[LiveEngine, list[_Run]]] = {}
        for run in self._runs:
            out.setdefault(id(run.engine), (run.engine, []))[1].append(run)
        return list(out.values())

    def _train_round(self) -> None:
        """Every engine trains the same number of steps, sized so one pass costs ~ROUND_SECONDS."""
        spec = self._spec
        assert spec is not None
        engines = self._engines()
        per_step = sum(runs[0].step_time for _, runs in engines)
        left = min(spec.train_steps - eng.trainer.step for eng, _ in engines)
        n = 1 if per_step <= 0 else int(ROUND_SECONDS / per_step)
        n = max(1, min(n, MAX_ROUND_STEPS, left))
        for eng, runs in engines:
            t0 = time.perf_counter()
            try:
                eng.train(n)
            except TrainingDiverged as exc:
                self._running = False
                self.emit(CompareFailed(f"{runs[0].label}: {exc}"))
                return
            dt = time.perf_counter() - t0
            for run in runs:
                run.train_seconds += dt
                run.trained += n
                run.step_time = dt / n if run.step_time <= 0 else 0.7 * run.step_time + 0.3 * dt / n
        if all(eng.trainer.step >= spec.train_steps for eng, _ in engines):
            self._begin_sampling()

    def _begin_sampling(self) -> None:
        for run in self._runs:
            run.chain.restart(run.chain.initial.clone())
            run.chain.generator = torch.Generator().manual_seed(self._spec.seed + 7)  # the same noise for every run
            run.done = False
            run.sw_history.clear()
        self._next_metrics = 0.0
        self._set_phase("sampling")

    def _advance(self, run: _Run, n: int) -> None:
        model = run.engine.trainer.score_fn()
        sampling = self._phase == "sampling"  # the schedule ends the chain; while training it goes on
        run.chain.advance(model, n, stop_at_end=sampling)
        if sampling and run.chain.done:
            run.chain.finish(model)  # e.g. the last Tweedie denoise
            run.done = True

    def _sw_ratio(self, run: _Run) -> float:
        assert self._reference is not None
        pts = run.engine.standardizer.inverse(run.chain.particles[:METRIC_POINTS].detach().float().cpu())
        return self._reference.distance(pts)[1]

    def _update_metrics(self, now: float) -> None:
        t0 = time.perf_counter()
        errors: dict[int, float] = {}
        for run in self._runs:
            eng = run.engine
            if id(eng) not in errors:
                errors[id(eng)] = eng.field_error(eval_sigma(eng.config))  # a flow net: its velocity's
            run.score_error = errors[id(eng)]
            run.sw_ratio = self._sw_ratio(run)
            if self._phase in ("sampling", "done"):
                progress = min(1.0, run.chain.step / max(run.chain.sampler.n_steps, 1))
                if not run.sw_history or progress > run.sw_history[-1][0]:
                    run.sw_history.append((progress, run.sw_ratio))
        cost = time.perf_counter() - t0
        self._next_metrics = now + max(METRIC_EVERY, METRIC_COST_FACTOR * cost)

    def _field(self, run: _Run) -> tuple[FieldGrid, float]:
        """The plot's field: at the model's judging σ ("losses"), or at the σ the sampler is at now."""
        spec = self._spec
        assert spec is not None
        eng = run.engine
        if spec.mode == "samplers":
            sigma = max(run.chain.sigma, eng.config.noise.sigma_min)
        else:
            sigma = eval_sigma(eng.config)
        ident = (eng.trainer.step, round(sigma, 6), spec.bounds, spec.view_axis)
        if run.field_cache is None or run.field_cache[0] != ident:
            if eng.dataset.dim == 3:  # the field on the plane through the box centre, seen face-on
                lo, hi = spec.bounds[spec.view_axis]
                grid = eng.field(FieldView(spec.bounds, FIELD_RESOLUTION, sigma, slice_axis=spec.view_axis,
                                           slice_value=(lo + hi) / 2, truth=False))
                positions, vectors = project_field(grid.positions, grid.vectors, spec.view_axis)
                grid = FieldGrid(positions, vectors, (FIELD_RESOLUTION, FIELD_RESOLUTION))
            else:
                grid = eng.field(FieldView(spec.bounds, FIELD_RESOLUTION, sigma, truth=False))
            run.field_cache = (ident, grid)
        return run.field_cache[1], sigma

    def _shown(self, points: np.ndarray) -> np.ndarray:
        """Points as the plots show them: 2D as they are, 3D projected along the view axis."""
        if points.shape[1] != 3 or self._spec is None:
            return points
        return np.ascontiguousarray(points[:, list(in_plane_axes(self._spec.view_axis))])

    def _emit_frames(self, now: float) -> None:
        t0 = time.perf_counter()
        frames = []
        for run in self._runs:
            eng = run.engine
            losses, steps = decimated_losses(eng.trainer.losses, MAX_CURVE_POINTS)
            fld, sigma = self._field(run)
            chain = run.chain
            particles = self._shown(eng.standardizer.inverse(chain.particles.detach().float().cpu()).numpy())
            frame = Frame(
                step=eng.trainer.step, losses=losses, loss_steps=steps, particles=particles, trails=None,
                sampler_step=chain.step, sampler_sigma=chain.sigma, sampler_done=run.done,
                field=fld, true_field=None, field_sigma=sigma, heatmap=None, error_map=None, heatmap_bounds=None,
                score_error=run.score_error, reference_kind=eng.reference_kind,
                steps_per_second=run.trained / run.train_seconds if run.train_seconds > 0 else 0.0,
                elapsed=run.train_seconds, eta=None, device=device_label(eng.device), dim=2)
            frames.append(CompareFrame(
                label=run.label, frame=frame, phase=self._phase, steps_per_second=frame.steps_per_second,
                score_error=run.score_error, eval_sigma=eval_sigma(eng.config), sw_ratio=run.sw_ratio,
                sampler_steps=chain.sampler.n_steps,
                initial_particles=self._shown(eng.standardizer.inverse(chain.initial.float().cpu()).numpy()),
                sw_history=tuple(run.sw_history), error_measure=eng.error_measure))
        cost = time.perf_counter() - t0
        self._next_frame = now + max(1.0 / self.max_fps, cost / 0.3, GUI_DUTY * self._gui_seconds)
        self._needs_frame = False
        self.drawn = False
        self._emitted_at = time.perf_counter()
        self.frames_emitted += 1
        self.emit(CompareFrames(frames))

    def _setup(self, spec: CompareSpec) -> None:
        if spec.mode not in ("losses", "samplers"):
            raise SGMError(f"unknown comparison {spec.mode!r}")
        if not spec.entries:
            raise SGMError("nothing to compare: tick at least one entry")
        self._running = False
        self._runs = []
        self._spec = spec
        dim = spec.dataset.dim
        runs: list[_Run] = []
        shared: LiveEngine | None = None
        shared_start: torch.Tensor | None = None
        for entry in spec.entries:
            if spec.mode == "samplers" and shared is not None:
                eng = shared
            else:
                config, source = _with_source(entry.config, spec.source)
                eng = LiveEngine(spec.dataset, config, entry.sampler, n_particles=1, seed=spec.seed, source=source)
                shared = eng
                if spec.model is not None:  # sample with the main window's EMA weights, as they are
                    state = spec.model.unpack().model.state_dict()
                    eng.trainer.model.load_state_dict(state)
                    eng.trainer.ema_model.load_state_dict(state)
            sampler = make_sampler(entry.sampler, eng.config.noise, eng.process)  # a flow's starts on its source
            if spec.mode == "samplers":
                if shared_start is None:  # one draw from the noise model's prior, shared by every sampler
                    prior = make_sde(eng.config.noise, eng.noise_kind)
                    shared_start = prior.prior_sample(spec.n_particles, dim, torch.Generator().manual_seed(spec.seed))
                start = shared_start.clone().to(eng.device)
            else:  # each loss's own sampler, from the same generator state: equal draws for equal priors
                start = sampler.init(spec.n_particles, dim, torch.Generator().manual_seed(spec.seed)).to(eng.device)
            runs.append(_Run(entry.label, eng, ParticleChain(sampler, start.clone(), torch.Generator().manual_seed(
                spec.seed + 7), initial=start)))
        self._runs = runs
        self._reference = SWBaseline(spec.dataset.sample, METRIC_POINTS, seed=spec.seed + SW_SEED)  # same draws for every run
        self._phase = ""
        self._set_phase("training" if spec.train_steps > 0 else "sampling")
        self._next_metrics = 0.0
        self._needs_frame = True

    def _run(self) -> None:
        if self._runs and self._phase != "done":
            self._running = True
            for eng, _ in self._engines():
                eng.pause_clock()

    def _pause(self) -> None:
        self._running = False
        self._needs_frame = True

    def _sample_again(self) -> None:
        if self._runs and self._phase in ("sampling", "done"):
            self._begin_sampling()
            self._running = True
            self._needs_frame = True

    def _set_bounds(self, bounds: tuple[tuple[float, float], ...]) -> None:
        spec = self._spec
        if spec is None:
            return
        if spec.dataset.dim == 3 and len(bounds) == 2:  # the plane's box; the depth keeps the data's extent
            full = list(spec.bounds)
            for axis, pair in zip(in_plane_axes(spec.view_axis), bounds, strict=True):
                full[axis] = pair
            bounds = tuple(full)
        if bounds != spec.bounds:
            self._spec = replace(spec, bounds=bounds)
            self._needs_frame = True

    def _set_view_axis(self, axis: int) -> None:
        if axis not in (0, 1, 2):
            raise SGMError(f"view axis must be 0, 1 or 2, got {axis}")
        if self._spec is not None and axis != self._spec.view_axis:
            self._spec = replace(self._spec, view_axis=axis)
            self._needs_frame = True

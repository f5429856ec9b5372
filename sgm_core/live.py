"""The live engine: everything the playground animates, without Qt.

One `LiveEngine` owns all torch state of a playground session — the trainer, the particles and
their sampler, and the field grid — and turns it into immutable numpy `Frame`s. The GUI's worker
thread calls it in a loop (train a chunk, advance particles, refresh the field, emit a frame);
tests and benchmarks call the very same methods without a window.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .chain import ParticleChain
from .conditioning import Condition, ConditionalCurve, condition_sampler, conditional_curve
from .config import RunConfig, SamplerConfig
from .datasets import Dataset, Standardizer
from .errors import ConfigError, SessionError
from .fields import relative_curl
from .gmm import GaussianMixture
from .lazy import lazy_module
from .likelihood import ode_log_likelihood_steps
from .losses import loss_spec
from .metrics import SW_SEED, SWBaseline, energy_distance, mmd_rbf, mode_weights
from .noise import geometric_sigmas
from .param import SCORE
from .progress import RunClock
from .samplers import Sampler, make_sampler
from .sessions import SessionState, session_source
from .stepwise import Steps, run_to_end
from .training import Trainer, device_label
from .truth import empirical_spacing, relative_score_error, run_reference

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it


@dataclass(frozen=True)
class MetricTarget:
    """What the sample metrics compare the particles with (LiveEngine.metric_target)."""

    name: str  # shown beside the metrics: "the data", "class 1", "p(y | x = 1.25)"
    sample: Callable[[int, torch.Generator], torch.Tensor]  # fresh (n, D) draws, data coordinates
    modes: GaussianMixture | None  # its mixture over `coords` (data units), for the mode weights; None: not one
    coords: tuple[int, ...]  # the coordinates `modes` is over (the free ones under a condition)
    key: tuple  # what the reference draws depend on


@dataclass(frozen=True)
class FieldView:
    """What the field panel asks for: a grid over `bounds` (data coordinates) at noise `sigma`."""

    bounds: tuple[tuple[float, float], ...]  # per axis (lo, hi), data coordinates
    resolution: int = 32  # arrows per axis (2D); 3D uses resolution // 3 per axis
    sigma: float = 0.1  # standardised units (the units of NoiseConfig)
    slice_axis: int | None = None  # 3D: evaluate only the plane axis == slice_value
    slice_value: float = 0.0
    heatmap_resolution: int = 64  # energy log-density / score-error images (2D)
    truth: bool = True  # also compute the reference field and error map


@dataclass(frozen=True)
class FieldGrid:
    positions: np.ndarray  # (P, D) data coordinates
    vectors: np.ndarray  # (P, D) score in data coordinates (or the net's own output: param.field)
    shape: tuple[int, ...]  # grid shape, prod == P


@dataclass(frozen=True)
class Frame:
    """An immutable snapshot for drawing; everything in data coordinates, numpy only."""

    step: int  # training steps done
    losses: np.ndarray  # loss per step (possibly decimated for long runs), float64
    loss_steps: np.ndarray  # the step index of each entry of `losses`
    particles: np.ndarray  # (n, D) float32
    trails: np.ndarray | None  # (T, n, D): oldest first, when trails are on
    sampler_step: int
    sampler_sigma: float
    sampler_done: bool
    field: FieldGrid | None
    true_field: FieldGrid | None
    field_sigma: float
    heatmap: np.ndarray | None  # (H, W): learned log-density (energy nets) over the 2D bounds
    error_map: np.ndarray | None  # (H, W): |s_theta - s_ref| / (|s_ref| + 1) over the 2D bounds
    heatmap_bounds: tuple[tuple[float, float], ...] | None
    score_error: float | None  # relative Fisher divergence on data at field_sigma vs the reference
    reference_kind: str  # "analytic" | "empirical"
    steps_per_second: float
    elapsed: float
    eta: float | None  # seconds to the configured step count, while training
    device: str
    dim: int
    curl_map: np.ndarray | None = None  # (H, W): curl / typical |∂s/∂x| of the learned score (2D)
    sampler_steps: int = 0  # the sampler's schedule length (Langevin-type chains go on past it)
    target: int = 0  # the step count the round under way trains to (0: not known)
    particles_moved: int = 0  # particle-steps taken since the previous frame (n x steps, or a slice)
    particle_rate: float = 0.0  # frames per second that showed moved particles (the engine's count)
    acceptance_rate: float | None = None  # MALA's accepted / proposed so far; None for samplers without one
    reference_note: str = ""  # reference_kind "none": the one line that says why no truth is shown
    guide_class: int | None = None  # the class the particles are asked for (classifier-free guidance), or None
    guidance: float = 0.0  # its guidance scale w
    conditional: ConditionalCurve | None = None  # the Condition tool's analytic p(y | x0) along its line


MAX_LOSS_POINTS = 4000  # the loss curve is decimated beyond this so frames stay small
# particles the SW ratio compares: a lesson's whole 1,000, so its live check and the Metrics panel
# read one number (the ratio grows with n: at 500 the panel read 7.4x where the check said 9.9x)
SW_POINTS = 1000


def decimated_losses(history: np.ndarray, max_points: int = MAX_LOSS_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(every k-th loss, its 1-based step) with k chosen so at most ~max_points remain: a long
    run's curve stays small in every frame. `history` may be a view: only what is kept is copied."""
    stride = max(1, math.ceil(len(history) / max_points))
    return np.array(history[::stride], dtype=np.float64), np.arange(1, len(history) + 1)[::stride]


class LiveEngine:
    """Trainer + particles + field for one dataset and one run configuration."""

    def __init__(self, dataset: Dataset, config: RunConfig, sampler: SamplerConfig | None = None,
                 n_particles: int = 2000, seed: int = 0, standardizer: Standardizer | None = None,
                 use_reference_score: bool = False, source: Dataset | None = None) -> None:
        self.dataset = dataset
        self.use_reference_score = use_reference_score  # particles follow the reference (true) score, not the model
        self.config = config
        self.trainer = Trainer(dataset, config, standardizer, source)
        self.source = self.trainer.source  # a flow's source distribution (None: N(0, I))
        self.standardizer = self.trainer.standardizer
        self.device = self.trainer.device
        self.process = self.trainer.process  # how q_sigma is made from data (and a flow's source)
        self.noise_kind = self.process  # its old name (the compare worker reads it)
        self._set_reference()
        # On the GPU the particles' noise is drawn there too: no CPU draw and copy every sampler step.
        gen_device = self.device if self.device.type == "cuda" else "cpu"
        self.sampler_config = sampler or SamplerConfig(name=loss_spec(config.loss.name).default_sampler)
        self.given: dict[int, float] | None = None  # coordinates held fixed (data units): the Condition tool
        self._curve: tuple[object, ConditionalCurve | None] | None = None  # (its key, the analytic curve)
        if n_particles < 1:
            raise ConfigError("need at least one particle")
        self.chain = ParticleChain.from_prior(self._make_sampler(self.sampler_config), n_particles, dataset.dim,
                                              torch.Generator(gen_device).manual_seed(seed + 101), self.device)
        self._sw: tuple[tuple, MetricTarget, SWBaseline] | None = None  # the metrics' target and draws, per size
        self._spacing: tuple[int, float] | None = None  # (id of the dataset, its reference spacing)
        self._rate = 0.0
        self._rate_clock = (time.perf_counter(), 0)
        self.clock = RunClock()  # wall-clock training time of this model (the engine starts and stops it)
        self._eval_points = torch.as_tensor(self.standardizer.forward(dataset.points[:1000]), dtype=torch.float32)
        self.guide: tuple[int, float] | None = None  # (class index, w): the particles and field are guided

    # -- guidance -------------------------------------------------------------------------
    def set_guidance(self, c: int | None, w: float = 0.0) -> None:
        """Ask the particles (and the field) for class c with guidance scale w (Ho & Salimans 2022),
        live: the particles go on from where they are. None: the unconditional score. A class the
        model does not know (an unconditional net) is a ConfigError sentence."""
        if c is None:
            self.guide = None
            return
        from .config import finite_number
        from .limits import MAX_GUIDANCE

        w = finite_number(w, "guidance", 0.0, MAX_GUIDANCE)
        n = self.trainer.model.n_classes
        if not 0 <= int(c) < n:
            raise ConfigError("this model is not class-conditional; train it on labelled data with classes on"
                              if n == 0 else f"class index {c} is not one of the model's {n} classes")
        self.guide = (int(c), w)

    def _guided(self, model):  # noqa: ANN001, ANN202 - a ScoreFn
        from .guidance import Guided

        return model if self.guide is None else Guided(model, *self.guide)

    def _guided_reference(self):  # noqa: ANN202 - a ScoreFn
        """The true guided score where the data is a labelled mixture, else the (unguided) reference."""
        gmm = self.dataset.gmm
        if self.guide is None or gmm is None or gmm.labels is None:
            return self.reference
        from .truth import guided_reference_fn

        return guided_reference_fn(self.dataset, self.standardizer, self.guide[0], self.guide[1], self.noise_kind)

    @property
    def reference_spacing(self) -> float | None:
        """An empirical reference's point spacing (`truth.empirical_spacing`), None for the others."""
        if self.reference_kind != "empirical":
            return None
        if self._spacing is None or self._spacing[0] != id(self.dataset):
            self._spacing = (id(self.dataset), empirical_spacing(self.dataset, self.standardizer))
        return self._spacing[1]

    def level_noise(self, levels: tuple[float, ...]) -> tuple[float, ...]:
        """Each level (a marginal std, as `metric_sigmas` gives them) as the noise it puts on the
        data, std / coef: what an empirical truth's point spacing compares with (a flow's t = 0.01
        is a noise of 0.0101, VP's std 0.5 one of 0.58, VE's σ itself)."""
        return tuple(float(s / self.process.coef_of_std(torch.tensor(s))) for s in levels)

    # -- the particle chain ---------------------------------------------------------------
    @property
    def sampler(self) -> Sampler:
        return self.chain.sampler

    @property
    def particles(self) -> torch.Tensor:
        return self.chain.particles

    @particles.setter
    def particles(self, value: torch.Tensor) -> None:
        self.chain.particles = value

    @property
    def sampler_step(self) -> int:
        return self.chain.step

    @sampler_step.setter
    def sampler_step(self, value: int) -> None:
        self.chain.step = int(value)

    @property
    def particle_generator(self) -> torch.Generator:
        return self.chain.generator

    @property
    def trail_length(self) -> int:
        return self.chain.trail_length

    # -- configuration --------------------------------------------------------------------
    def _make_sampler(self, cfg: SamplerConfig) -> Sampler:
        condition = self.condition
        return condition_sampler(make_sampler(cfg, self.config.noise, self.process), condition, self.process)

    @property
    def condition(self) -> Condition | None:
        """The Condition tool's held coordinates as a Condition (standardised), or None: the joint."""
        return Condition.from_data(self.given, self.standardizer, self.dataset.dim) if self.given else None

    def set_condition(self, given: dict[int, float] | None) -> None:
        """Hold these coordinates (data units) and sample the rest from the conditional, or the joint
        again (None). The chain restarts from the prior: annealing must carry the new line's weights."""
        if given:
            Condition.from_data(given, self.standardizer, self.dataset.dim)  # ConfigError before anything changes
        self.given = dict(given) if given else None
        self.chain.sampler = self._make_sampler(self.sampler_config)
        self.reset_particles()

    def conditional_curve(self) -> ConditionalCurve | None:
        """The truth's p(y | fixed) along the one free axis (None without a condition, or with two free axes)."""
        if not self.given:
            return None
        key = (tuple(sorted(self.given.items())), id(self.dataset), self.standardizer)
        if self._curve is None or self._curve[0] != key:
            self._curve = (key, conditional_curve(self.dataset, self.standardizer, self.given))
        return self._curve[1]

    def set_sampler(self, cfg: SamplerConfig, restart: bool = True) -> None:
        """Switch sampler; particles restart from the new sampler's initial distribution."""
        self.chain.sampler = self._make_sampler(cfg)
        self.sampler_config = cfg
        if restart:
            self.reset_particles()

    def _set_reference(self) -> None:
        """The truth this run is checked against (`truth.run_reference`): None, with a note, where
        none is exact (a flow from a point cloud, or paired by minibatch OT)."""
        ref = run_reference(self.dataset, self.standardizer, self.process, self.source, self.trainer.spec.coupling)
        self.reference, self.reference_kind, self.reference_note = ref.score, ref.kind, ref.note

    def update(self, dataset: Dataset, config: RunConfig, source: Dataset | None = None) -> None:
        """Keep the model (weights, Adam, step, loss curve) and go on with other data or settings
        (`Trainer.retarget`); the particles stay where they are in data coordinates."""
        shown = self.standardizer.inverse(self.particles.detach().float().cpu())
        self.trainer.retarget(dataset, config, source)
        self.dataset, self.config, self.standardizer = dataset, config, self.trainer.standardizer
        self.source = self.trainer.source
        self.process = self.noise_kind = self.trainer.process
        self._set_reference()
        self._sw = None
        self._eval_points = torch.as_tensor(self.standardizer.forward(dataset.points[:1000]), dtype=torch.float32)
        self.chain.sampler = self._make_sampler(self.sampler_config)  # the σ settings may have changed
        self.chain.particles = torch.as_tensor(self.standardizer.forward(shown), dtype=torch.float32).to(self.device)
        length = self.trail_length
        self.chain.set_trails(0)  # the old trails are in the old standardised units
        self.chain.set_trails(length)

    def set_trails(self, length: int) -> None:
        self.chain.set_trails(length)

    def _init_particles(self, n: int) -> torch.Tensor:
        if n < 1:
            raise ConfigError("need at least one particle")
        return self.sampler.init(n, self.dataset.dim, self.particle_generator).to(self.device)

    def reset_particles(self, n: int | None = None) -> None:
        self.chain.restart(self._init_particles(n or len(self.particles)))

    def spawn_at(self, center_data: np.ndarray, n: int, radius_data: float) -> None:
        """Replace the particles with n new ones in a Gaussian blob around a clicked point."""
        center = torch.as_tensor(self.standardizer.forward(np.asarray(center_data, np.float32)[None]))
        r = radius_data / self.standardizer.scale
        z = torch.randn(n, self.dataset.dim, generator=self.particle_generator, device=self.particle_generator.device)
        self.chain.restart((center.to(z.device) + r * z).float().to(self.device))

    # -- work -----------------------------------------------------------------------------
    def train(self, n_steps: int) -> None:
        """n optimiser steps (TrainingDiverged propagates with the last good weights restored)."""
        self.trainer.run(n_steps)
        now, step = time.perf_counter(), self.trainer.step
        t0, s0 = self._rate_clock
        if now - t0 > 0.5:
            rate = (step - s0) / (now - t0)
            self._rate = rate if self._rate == 0 else 0.5 * self._rate + 0.5 * rate
            self._rate_clock = (now, step)

    def pause_clock(self) -> None:
        """Call when training pauses so the next rate estimate does not count the pause."""
        self._rate_clock = (time.perf_counter(), self.trainer.step)

    def advance(self, n_steps: int) -> None:
        """Advance the particles n sampler steps with the current (EMA) model, or with the
        reference score when `use_reference_score` is set (lessons about samplers, not training)."""
        self.chain.advance(self._particle_score(), n_steps)

    def advance_some(self, count: int) -> int:
        """One sampler step for the next `count` particles, round-robin (`ParticleChain.advance_some`)."""
        return self.chain.advance_some(self._particle_score(), count)

    def _particle_score(self):  # noqa: ANN202 - a ScoreFn
        reference = self._guided_reference()
        if self.use_reference_score and reference is not None:
            return reference
        return self._guided(self.trainer.score_fn())

    # -- fields ---------------------------------------------------------------------------
    def _grid(self, view: FieldView) -> tuple[np.ndarray, tuple[int, ...]]:
        d = self.dataset.dim
        res = view.resolution if d == 2 else max(2, view.resolution // 3)
        axes = [np.linspace(lo, hi, res, dtype=np.float32) for lo, hi in view.bounds[:d]]
        if d == 3 and view.slice_axis is not None:
            axes[view.slice_axis] = np.array([view.slice_value], np.float32)
            axes = [np.linspace(lo, hi, view.resolution, dtype=np.float32) if i != view.slice_axis else a
                    for i, ((lo, hi), a) in enumerate(zip(view.bounds[:d], axes, strict=False))]
        mesh = np.meshgrid(*axes, indexing="xy" if d == 2 else "ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=1), mesh[0].shape

    def _score_data(self, score_fn, points: np.ndarray, sigma: float) -> np.ndarray:
        x = torch.as_tensor(self.standardizer.forward(points), dtype=torch.float32)
        sig = torch.full((len(x),), float(sigma))
        with torch.no_grad():
            s = score_fn(x.to(self.device), sig.to(self.device)).float().cpu()
        return self.standardizer.score_to_data(s).numpy()

    def _shown_data(self, score_fn, points: np.ndarray, sigma: float) -> np.ndarray:
        """What the field view draws in data coordinates: the score, or what the net outputs instead
        (a velocity, a denoiser's displacement), as its parameterisation says (`param.field`)."""
        output = getattr(self.trainer.model, "output", SCORE)
        if output is SCORE or not self.trainer.spec.conditional:
            return self._score_data(score_fn, points, sigma)
        x = torch.as_tensor(self.standardizer.forward(points), dtype=torch.float32).to(self.device)
        sig = torch.full((len(x),), float(sigma), device=self.device)
        with torch.no_grad():
            shown, power = output.field(score_fn(x, sig), x, sig)
        return (shown.float().cpu() * self.standardizer.scale**power).numpy()

    def field(self, view: FieldView, ema: bool = True) -> FieldGrid:
        pos, shape = self._grid(view)
        return FieldGrid(pos, self._shown_data(self._guided(self.trainer.score_fn(ema)), pos, view.sigma), shape)

    def true_field(self, view: FieldView) -> FieldGrid | None:
        """The reference field (the exact guided one for a labelled mixture when guidance is on); None
        where no truth is exact."""
        if self.reference is None:
            return None
        pos, shape = self._grid(view)
        return FieldGrid(pos, self._shown_data(self._guided_reference(), pos, max(view.sigma, 1e-3)), shape)

    def _heat_points(self, view: FieldView) -> np.ndarray:
        (x0, x1), (y0, y1) = view.bounds[:2]
        r = view.heatmap_resolution
        gx, gy = np.meshgrid(np.linspace(x0, x1, r, dtype=np.float32), np.linspace(y0, y1, r, dtype=np.float32))
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    def log_density(self, view: FieldView) -> np.ndarray | None:
        """-E_theta(x, sigma) on the heatmap grid (2D energy nets only), rows = y."""
        from .nets import EnergyNet  # torch.nn at import

        model = self.trainer.score_fn()
        if not isinstance(model, EnergyNet) or self.dataset.dim != 2:
            return None
        pts = self._heat_points(view)
        x = torch.as_tensor(self.standardizer.forward(pts), dtype=torch.float32).to(self.device)
        with torch.no_grad():
            e = model.energy(x, torch.full((len(x),), float(view.sigma), device=self.device))
        r = view.heatmap_resolution
        return (-e).float().cpu().numpy().reshape(r, r)

    def error_map(self, view: FieldView) -> np.ndarray | None:
        if self.dataset.dim != 2 or self.reference is None:
            return None
        pts = self._heat_points(view)
        sigma = max(view.sigma, 1e-3)
        learned = self._score_data(self.trainer.score_fn(), pts, view.sigma)
        truth = self._score_data(self.reference, pts, sigma)
        err = np.linalg.norm(learned - truth, axis=1) / (np.linalg.norm(truth, axis=1) + 1.0)
        r = view.heatmap_resolution
        return err.reshape(r, r)

    def score_error(self, sigma: float) -> float | None:
        """Relative Fisher divergence of the EMA model vs the reference on noisy data at sigma
        (None where no truth is exact: `reference_note`). With a class asked for on a labelled
        mixture (`error_target`), of the guided net against the exact guided score on that class's
        points: the score error of the class the particles sample."""
        if self.reference is None:
            return None
        model, reference, points = self._error_inputs()
        # A fixed seed: the same noisy points every time, so the curve over training is smooth.
        return relative_score_error(model, reference, points, sigma, self.noise_kind, seed=7, device=self.device)

    @property
    def error_target(self) -> str:
        """What the score-error curve compares: "" (the net against the truth on the data), or
        "class c, w = …" when a class is asked for and the data is a labelled mixture, whose exact
        class-conditional scores give the exact guided score (Ho & Salimans 2022)."""
        gmm = self.dataset.gmm
        if self.guide is None or gmm is None or gmm.labels is None or self.reference is None:
            return ""
        return f"class {self.dataset.classes[self.guide[0]]}, w = {self.guide[1]:g}"

    def _error_inputs(self):  # noqa: ANN202 - (ScoreFn, ScoreFn, Tensor)
        """(model, reference, points) of the field error: see `error_target`."""
        if not self.error_target:
            return self.trainer.score_fn(), self.reference, self._eval_points
        c = self.guide[0]
        own = self.dataset.points[self.dataset.labels == c][:1000]
        points = torch.as_tensor(self.standardizer.forward(own), dtype=torch.float32)
        return self._guided(self.trainer.score_fn()), self._guided_reference(), points

    @property
    def error_measure(self) -> str:
        """What `field_error` compares with the truth: "score", or "velocity" for a flow net
        (`Parameterisation.measures`)."""
        output = getattr(self.trainer.model, "output", SCORE)
        return output.measures if self.trainer.spec.conditional else SCORE.measures

    def field_error(self, sigma: float) -> float | None:
        """The relative error of what the EMA net predicts against the truth's, at noise level (or
        flow time) sigma: `score_error` for score-type nets; for a flow net E|v_θ - v|² / E|v|² of
        its velocity against the exact one (`gmm.linear_flow_velocity` from a source, else the
        mixture's), whose score form divides by t and reads 10²-10⁴ at t = 0.001. None where no
        truth is exact (`reference_note`)."""
        if self.reference is None:
            return None
        if self.error_measure == SCORE.measures:
            return self.score_error(sigma)
        model, reference, points = self._error_inputs()
        return relative_score_error(model, reference, points, sigma, self.noise_kind, seed=7, device=self.device,
                                    measured=self.trainer.model.output.measured)

    def curl_map(self, view: FieldView) -> np.ndarray | None:
        """Relative curl of the learned (EMA) score on the heatmap grid (2D only), rows = y.

        `fields.relative_curl`: dimensionless, so standardised and data coordinates agree; an
        energy net reads ~0 (it is a gradient), a score net shows where it learned a rotation."""
        if self.dataset.dim != 2:
            return None
        x = torch.as_tensor(self.standardizer.forward(self._heat_points(view)), dtype=torch.float32).to(self.device)
        curl = relative_curl(self.trainer.score_fn(), x, float(view.sigma))
        r = view.heatmap_resolution
        return curl.float().cpu().numpy().reshape(r, r)

    # -- live metrics ---------------------------------------------------------------------
    def sample_metrics(self, max_points: int = 1000) -> dict[str, float | list[float]]:
        """Particles vs fresh data: sliced Wasserstein (and its data-vs-data baseline), MMD,
        energy distance, and mode weights for mixtures. All in data coordinates."""
        return run_to_end(self.sample_metrics_steps(max_points))

    def sample_metrics_steps(self, max_points: int = 1000) -> Steps[dict[str, float | list[float]]]:
        """`sample_metrics` one metric per `next()` (each ~10-30 ms on one core), against what the
        particles are asked to sample (`metric_target`); `target` names it. MMD and the energy
        distance (quadratic) compare `max_points` particles, the SW ratio up to SW_POINTS."""
        every = torch.as_tensor(self.particles_data()[:max(max_points, SW_POINTS)])
        if len(every) < 2:
            return {}
        key = (min(len(every), SW_POINTS), self._metric_target_key())
        if self._sw is None or self._sw[0] != key:  # the same target and reference draws every time
            target = self.metric_target()
            self._sw = (key, target, SWBaseline(target.sample, key[0], seed=SW_SEED))
        _, target, baseline = self._sw
        sw, ratio = baseline.distance(every[:SW_POINTS])
        parts, ref = every[:max_points], baseline.reference[:max_points]
        out: dict[str, float | list[float]] = {"sw": sw, "sw_ratio": ratio, "target": target.name}
        yield
        out["mmd"] = mmd_rbf(parts, ref)
        yield
        out["energy"] = energy_distance(parts, ref)
        yield
        if target.modes is not None:
            weights, on_mode = mode_weights(parts[:, list(target.coords)], target.modes)
            out["mode_weights"] = weights.tolist()
            out["true_weights"] = target.modes.weights.tolist()
            out["on_mode"] = on_mode
        return out

    def _metric_target_key(self) -> tuple:
        """What `metric_target` depends on besides the data (a data change clears the cache)."""
        if self.given:
            return ("given", tuple(sorted(self.given.items())))
        if self.guide is not None and self.dataset.labels is not None:
            return ("class", self.guide[0])
        return ()

    def metric_target(self) -> MetricTarget:
        """The distribution the particles are asked for, which the sample metrics compare them with:
        the data; with the Condition tool, the truth's p(y | x_f = v) (analytic for a mixture, else
        the data's kernel density, as the Conditional dock draws it); with a class asked for, that
        class's data. Under guidance w > 0 that is still the class's data: the guided density is
        not the class density (Ho & Salimans 2022; lesson 12), and the metrics say how far."""
        if self.given:
            from .conditioning import reference_mixture

            cond = self.condition
            mixture, _ = reference_mixture(self.dataset, self.standardizer)  # standardised coordinates
            free = mixture.conditional(cond.fixed, cond.values)
            std = self.standardizer

            def sample_given(n: int, g: torch.Generator) -> torch.Tensor:
                y = free.sample(n, g).double()
                return torch.as_tensor(std.inverse(cond.assemble(y, cond.fixed_tensor(y)).numpy()), dtype=torch.float32)

            gmm = self.dataset.gmm
            modes = None if gmm is None else gmm.conditional(cond.fixed, cond.data_values(std))
            return MetricTarget(f"p(y | {cond.describe(std)})", sample_given, modes, cond.free,
                                self._metric_target_key())
        if self.guide is not None and self.dataset.labels is not None:
            from .guidance import class_reference

            c = self.guide[0]
            own = class_reference(self.dataset, c)
            return MetricTarget(f"class {self.dataset.classes[c]}", own.sample, own.gmm,
                                tuple(range(self.dataset.dim)) if own.gmm is not None else (), self._metric_target_key())
        return MetricTarget("the data", self.dataset.sample, self.dataset.gmm, tuple(range(self.dataset.dim)), ())

    def metric_sigmas(self, n: int = 4) -> tuple[float, ...]:
        """Noise levels (standardised) at which to track the score error: n geometric levels across
        the ladder / SDE range of noise-conditional losses (VP: its marginal std, up to 0.9), the
        one training σ of single-σ losses, and σmin for
        sm/ssm (their nets ignore σ: the clean score, against the least-smoothed reference)."""
        lo, hi = self.process.display_range()
        if lo == hi:  # one σ, or none (sm/ssm: the nominal σmin)
            return (float(lo),)
        return tuple(float(s) for s in geometric_sigmas(lo, hi, n).flip(0))

    def data_log_likelihood(self, n_points: int = 200, n_steps: int = 50) -> float | None:
        """Mean log-likelihood (nats per point, data coordinates) of data under the probability-flow
        ODE of the current model; None for models with no noise ladder (sm/ssm)."""
        return run_to_end(self.data_log_likelihood_steps(n_points, n_steps))

    def data_log_likelihood_steps(self, n_points: int = 200, n_steps: int = 50) -> Steps[float | None]:
        """`data_log_likelihood` one ODE step per `next()`. The weights are copied first, so
        training between the pieces does not change the model half-way."""
        if not self.process.has_path or getattr(self.process, "source", None) is not None:
            return None  # no path, or a flow from a source: no prior density to integrate from
        sde = self.process.path
        x = torch.as_tensor(self.standardizer.forward(self.dataset.points[:n_points]), dtype=torch.float32)
        model = copy.deepcopy(self.trainer.score_fn())
        ll = yield from ode_log_likelihood_steps(lambda a, s: model(a.to(self.device), s.to(self.device)).cpu(), sde,
                                                 x, n_steps)
        return float(ll.mean()) - self.dataset.dim * math.log(self.standardizer.scale)

    # -- sessions -------------------------------------------------------------------------
    def export_state(self, points: np.ndarray, source: str, brush_radius: float = 0.2,
                     settings: dict | None = None) -> SessionState:
        """Everything to restore this engine exactly: data, configs, weights, particles."""
        if np.asarray(points).ndim != 2 or np.asarray(points).shape[1] != self.dataset.dim:
            raise SessionError(f"the data ({np.asarray(points).shape[-1]}D) is not the engine's ({self.dataset.dim}D): "
                               "it changed while saving; save again")
        return SessionState(
            points=np.asarray(points, np.float32), source=source, run=self.config, sampler=self.sampler_config,
            brush_radius=brush_radius, settings=dict(settings or {}),
            model={k: v.detach().cpu().clone() for k, v in self.trainer.model.state_dict().items()},
            ema={k: v.detach().cpu().clone() for k, v in self.trainer.ema_model.state_dict().items()},
            standardizer=self.standardizer, step=self.trainer.step, losses=self.trainer.loss_history(),
            particles=self.particles_data(), sampler_step=self.sampler_step,
            elapsed=self.clock.elapsed(time.perf_counter()),
            resume={**self.trainer.resume_state(), "rng.particles": self.particle_generator.get_state()},
            source_points=None if self.source is None else np.asarray(self.source.points, np.float32),
            guide=self.guide)

    @classmethod
    def from_state(cls, dataset: Dataset, state: SessionState, source: Dataset | None = None) -> LiveEngine:
        """Rebuild an engine from a saved session (weights, loss history, particles, step); a flow's
        source is `source`, else the session's own (`sessions.session_source`)."""
        n = len(state.particles) if state.particles is not None else 2000
        engine = cls(dataset, state.run, state.sampler, n_particles=n, standardizer=state.standardizer,
                     source=source if source is not None else session_source(state))
        if state.model is not None:
            try:
                engine.trainer.model.load_state_dict(state.model)
                engine.trainer.ema_model.load_state_dict(state.ema or state.model)
            except RuntimeError as exc:
                raise SessionError(f"the session's weights do not fit its model settings: {exc}") from exc
            engine.trainer.step = state.step
            engine.trainer.losses = [float(v) for v in state.losses]
            if state.resume:
                try:
                    engine.trainer.load_resume_state(state.resume)
                except ConfigError as exc:
                    raise SessionError(f"the session's training state does not fit its model settings: {exc}") from exc
                if "rng.particles" in state.resume:
                    try:
                        engine.particle_generator.set_state(state.resume["rng.particles"].to(torch.uint8))
                    except RuntimeError:  # not a generator state: the particles go on with fresh draws
                        pass
            engine.trainer.mark_good()
            engine.clock = RunClock(state.elapsed)
        if state.particles is not None:
            engine.particles = torch.as_tensor(engine.standardizer.forward(state.particles), dtype=torch.float32).to(
                engine.device)
            engine.sampler_step = state.sampler_step
        if state.guide is not None:  # load_session checked it against the run's classes
            engine.set_guidance(*state.guide)
        return engine

    # -- frames ---------------------------------------------------------------------------
    def particles_data(self) -> np.ndarray:
        return self.standardizer.inverse(self.particles.detach().float().cpu()).numpy()

    def frame(self, view: FieldView | None, *, training: bool = False) -> Frame:
        """A snapshot for the views; computes the field (and maps) only when a view is given."""
        losses, steps = decimated_losses(self.trainer.losses)
        trails = None
        if self.chain.trail_length and self.chain.trail:
            trails = np.stack([self.standardizer.inverse(t.float().cpu()).numpy() for t in self.chain.trail])
        fld = tfld = heat = err = None
        score_err = None
        if view is not None:
            fld = self.field(view)
            if view.truth:
                tfld = self.true_field(view)
                err = self.error_map(view)
                score_err = self.score_error(view.sigma)
            heat = self.log_density(view)
        total = self.config.train.steps
        step = self.trainer.step
        eta = (total - step) / self._rate if training and self._rate > 0 and step < total else None
        return Frame(
            step=step, losses=losses, loss_steps=steps, particles=self.particles_data(), trails=trails,
            sampler_step=self.sampler_step, sampler_sigma=self.sampler.sigma_at(self.sampler_step),
            sampler_done=self.sampler_step >= self.sampler.n_steps, field=fld, true_field=tfld,
            field_sigma=view.sigma if view else 0.0, heatmap=heat, error_map=err,
            heatmap_bounds=tuple(view.bounds[:2]) if view is not None and self.dataset.dim == 2 else None,
            score_error=score_err, reference_kind=self.reference_kind, reference_note=self.reference_note,
            steps_per_second=self._rate,
            elapsed=self.trainer.elapsed(), eta=eta, device=device_label(self.device), dim=self.dataset.dim,
            sampler_steps=self.sampler.n_steps, acceptance_rate=self.chain.acceptance_rate,
            guide_class=None if self.guide is None else self.guide[0],
            guidance=0.0 if self.guide is None else self.guide[1],
            conditional=self.conditional_curve())


def default_bounds(points: np.ndarray, margin: float = 0.15) -> tuple[tuple[float, float], ...]:
    """A square (cubic) box around the data with a margin, in data coordinates."""
    lo, hi = points.min(0), points.max(0)
    center, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * (1 + margin) + 1e-6
    return tuple((float(c - half), float(c + half)) for c in center)




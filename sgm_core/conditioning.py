"""Conditional sampling (inpainting): fix some coordinates at x_f = v and sample the others.

Any net here is called as a joint score s(x, sigma) (`param.py`), and for the free coordinates y
its free components are grad_y log p_sigma(v, y): the score of p_sigma(y | x_sigma = v), the
conditional of the *noisy* density q_sigma. `ConditionedSampler` therefore runs any sampler on
the free coordinates only, calling the joint score with the fixed ones filled in:

- "hold": the fixed coordinates sit at coef(sigma) v (v itself for Langevin-type samplers, whose
  processes have coef 1). The stationary law of Langevin / MALA at the last level sigma_min is then
  p_sigma_min(y | x = v), which tends to p(y | v) as sigma_min -> 0; MALA keeps it exactly invariant
  (log-density log p_sigma(v, y)). That is the only exactness claimed, and it is about the target,
  not the finite run: plain Langevin or MALA from a uniform start do not cross between far modes,
  and annealed Langevin's weights are set where the modes separate (measured below).
- "impute": the fixed coordinates are re-drawn as coef v + std z at every call (Song et al. 2021,
  App. I.2, "imputation"): the reverse SDE / ODE then sees noisy fixed coordinates like those it
  was trained on. Neither variant is exact for the SDE / ODE samplers: the exact drift needs
  grad_y log p_t(y_t | x_0 = v), which a joint score does not give.

Measured with the exact score (benchmarks/conditional.py, docs/conditioning.md; 6gaussians-unequal
given x = 1.25, truth 0.25 / 0.75, 4,000 samples; exact draws of the conditional score 0.004-0.012):
the largest mode-weight error is 0.028 for annealed Langevin, 0.05-0.07 for sde / pc / ddpm,
0.07-0.09 for the ODE samplers (held), 0.25 for langevin / mala from a uniform start. Imputation
was worse for every ODE sampler (by 0.01-0.02) and better only for the reverse SDE on VP and the
linear path (0.063 vs 0.070, about one standard error), so "hold" is the default. On gmm3d's plane
z = 0.5 the reverse SDE / heun put 0.19 / 0.26 of the samples on the footprints of components the
plane does not meet (annealed: under 0.015).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .gmm import GaussianMixture
from .lazy import lazy_module
from .noise import Process

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

AXES = ("x", "y", "z")
FIXED_MODES = ("hold", "impute")
LANGEVIN_TYPE = ("langevin", "annealed", "mala")  # samplers whose last level targets p_sigma_min(y | v)
FAR_OUTSIDE_STD = 4.0  # a fixed value this many data std beyond the data's range is warned about
FLOAT32_MAX = float(np.finfo(np.float32).max)  # nets and samples are float32: a value beyond this is inf there
EMPIRICAL_TRUTH_POINTS = 2000  # data points in the smoothed-empirical reference conditional
EMPIRICAL_TRUTH_FLOOR = 0.03  # smallest smoothing (standardised units) of that reference


@dataclass(frozen=True)
class Condition:
    """Coordinates `fixed` held at `values` (standardised units) in a `dim`-dimensional run."""

    dim: int
    fixed: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.fixed) != len(self.values) or len(set(self.fixed)) != len(self.fixed):
            raise ConfigError("a condition names each fixed coordinate once, with one value")
        if not self.fixed or len(self.fixed) >= self.dim:
            raise ConfigError(f"fix 1 to {self.dim - 1} of the {self.dim} coordinates; the rest are sampled")
        if any(not 0 <= i < self.dim for i in self.fixed):
            raise ConfigError(f"coordinates run from 0 to {self.dim - 1}")
        if not all(math.isfinite(v) for v in self.values):
            raise ConfigError("a fixed coordinate's value must be a finite number")

    @property
    def free(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.dim) if i not in self.fixed)

    def fixed_tensor(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.values, dtype=like.dtype, device=like.device)

    def assemble(self, y: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The full (N, D) points from free coordinates y (N, U) and fixed ones (N, F) or (F,)."""
        x = torch.empty(len(y), self.dim, dtype=y.dtype, device=y.device)
        x[:, list(self.free)] = y
        x[:, list(self.fixed)] = fixed.to(y)
        return x

    def hold(self, x: torch.Tensor) -> torch.Tensor:
        """x with its fixed coordinates set to the condition's values (a copy)."""
        return self.assemble(x[:, list(self.free)], self.fixed_tensor(x))

    def describe(self, standardizer=None) -> str:
        """'x = 1.25' (in data units when a standardizer is given)."""
        values = self.data_values(standardizer) if standardizer is not None else self.values
        return ", ".join(f"{AXES[i]} = {v:.4g}" for i, v in zip(self.fixed, values, strict=True))

    def data_values(self, standardizer) -> tuple[float, ...]:
        shift = _shift(standardizer, self.dim)
        return tuple(float(v * standardizer.scale + shift[i]) for i, v in zip(self.fixed, self.values, strict=True))

    @staticmethod
    def from_data(given: Mapping[int, float], standardizer, dim: int) -> Condition:
        """A condition from values in data units ({axis index: value}), standardised as the run's data."""
        shift = _shift(standardizer, dim)
        fixed = tuple(sorted(given))
        return Condition(dim, fixed, tuple(float((given[i] - shift[i]) / standardizer.scale) for i in fixed))


def _shift(standardizer, dim: int) -> np.ndarray:
    """The standardiser's shift per coordinate (it may be stored as one value or one per axis)."""
    return np.broadcast_to(np.asarray(standardizer.shift, dtype=np.float64), (dim,))


def parse_given(text: str, dim: int) -> dict[int, float]:
    """'x=0.5,y=-1' into {0: 0.5, 1: -1.0}; ConfigError (one sentence) on a bad spec: an unknown
    axis, z on a 2D run, an axis twice, a value that is not a finite number, or every axis fixed."""
    axes = AXES[:dim]
    out: dict[int, float] = {}
    for part in (p.strip() for p in str(text).split(",")):
        match = re.fullmatch(r"([A-Za-z]\w*)\s*=\s*(\S+)", part)
        if match is None:
            raise ConfigError(f"--given takes AXIS=VALUE pairs separated by commas, e.g. x=0.5; got {part!r}")
        name, raw = match.group(1).lower(), match.group(2)
        if name not in axes:
            extra = " (this run is 2D)" if name == "z" and dim == 2 else ""
            raise ConfigError(f"--given axis {name!r} is not one of {', '.join(axes)}{extra}")
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"--given {name}={raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"--given {name} must be a finite number, got {raw}")
        if abs(value) > FLOAT32_MAX:
            raise ConfigError(f"--given {name}={raw} is beyond the float32 range (±{FLOAT32_MAX:.3g}) that the model "
                              "and its samples use")
        index = axes.index(name)
        if index in out:
            raise ConfigError(f"--given names {name} twice")
        out[index] = value
    if len(out) >= dim:
        raise ConfigError(f"--given fixes all {dim} axes; leave at least one free to sample")
    return out


def given_axes(given: str | Mapping[str | int, float], dim: int) -> dict[int, float]:
    """The API's forms of a condition into {axis index: value}: 'x=0.5,y=1' (as `--given`), or a
    mapping keyed by axis name ('x', 'y', 'z') or index; the same checks and sentences as parse_given."""
    if isinstance(given, str):
        return parse_given(given, dim)
    if not isinstance(given, Mapping) or not given:
        raise ConfigError(f"given must be 'x=V[,y=V]' or a mapping such as {{'x': 0.5}}, not {given!r}")
    parts = []
    for key, value in given.items():
        name = AXES[key] if isinstance(key, int) and 0 <= key < len(AXES) else str(key)
        parts.append(f"{name}={value}")
    return parse_given(",".join(parts), dim)


def range_warning(given: Mapping[int, float], points: np.ndarray | None) -> str | None:
    """A sentence when a fixed value lies far outside the data (FAR_OUTSIDE_STD std beyond its
    range): the conditional there is the model's extrapolation, which nothing trained. None if fine."""
    if points is None or not len(points):
        return None
    far = []
    for i, v in sorted(given.items()):
        col = np.asarray(points[:, i], dtype=np.float64)
        lo, hi, std = float(col.min()), float(col.max()), float(col.std()) or 1.0
        if v < lo - FAR_OUTSIDE_STD * std or v > hi + FAR_OUTSIDE_STD * std:
            far.append(f"{AXES[i]}={v:g} (data {lo:.3g} to {hi:.3g})")
    if not far:
        return None
    return (f"warning: {', '.join(far)} lies far outside the data; the model was never trained there, so its "
            "conditional is extrapolation")


def make_condition(given: str | Mapping[str | int, float], standardizer, dim: int,
                   points: np.ndarray | None = None) -> Condition:
    """The Condition `given` ('x=0.5' or {'x': 0.5}, data units) means for a run; a RuntimeWarning
    (one sentence, `range_warning`) when a value lies far outside `points`. The API's and render's edge."""
    axes = given_axes(given, dim)
    note = range_warning(axes, points)
    if note is not None:
        warnings.warn(note, RuntimeWarning, stacklevel=3)
    return Condition.from_data(axes, standardizer, dim)


def default_fixed_mode(sampler_name: str) -> str:
    """'hold' for every sampler: against the analytic conditional (benchmarks/conditional.py,
    docs/conditioning.md) it beat imputation for every ODE sampler and was within about one
    standard error of it for the reverse SDE."""
    return "hold"


def is_exact(sampler_name: str) -> bool:
    """Is this sampler's target p(y | v) (up to sigma_min smoothing) with a joint score? Only the
    Langevin-type ones: their last level's stationary law is p_sigma_min(y | x = v). (A finite run
    need not reach it: see the module docstring's measurements.)"""
    return sampler_name in LANGEVIN_TYPE


class ConditionedSampler:
    """Any sampler, run on the free coordinates of `condition` with the joint score (see the module
    docstring). It has the samplers' interface (init/step/finish/sigma_at/n_steps) on full (N, D)
    particles whose fixed coordinates show the condition's values, so the CLI, the render and the
    window's particle chain drive it as they drive any schedule."""

    def __init__(self, inner, condition: Condition, process: Process, fixed: str = "hold") -> None:
        if fixed not in FIXED_MODES:
            raise ConfigError(f"fixed coordinates are held or imputed ({', '.join(FIXED_MODES)}), not {fixed!r}")
        self.inner = inner
        self.condition = condition
        self.process = process
        self.fixed = fixed
        self.name = inner.name
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (particles returned, their free part)

    def __getattr__(self, name: str):  # n_steps, sigma_at, acceptance_rate, levels, ...: the inner schedule's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def n_steps(self) -> int:
        return self.inner.n_steps

    def sigma_at(self, i: int) -> float:
        return self.inner.sigma_at(i)

    @property
    def exact(self) -> bool:
        return is_exact(self.name)

    def free_score(self, score_fn, generator: torch.Generator | None = None):
        """The reduced score (y, sigma) -> grad_y log p_sigma(v, y): the joint score's free components,
        with the fixed coordinates held (coef(sigma) v) or imputed (coef v + std z, fresh z per call).
        It carries a `log_density` when the joint one has one (MALA), always at the held values."""
        cond = self.condition
        free, fixed = list(cond.free), list(cond.fixed)

        def fill(y: torch.Tensor, sigma: torch.Tensor, impute: bool) -> torch.Tensor:
            std = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1).expand(len(y))
            coef = self.process.coef_of_std(std.detach().cpu()).to(y)[:, None]
            values = coef * cond.fixed_tensor(y)[None]
            if impute:
                z = torch.randn((len(y), len(fixed)), generator=generator, dtype=y.dtype,
                                device=generator.device).to(y.device)
                values = values + std[:, None] * z
            return cond.assemble(y, values)

        def score(y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return score_fn(fill(y, sigma, self.fixed == "impute" and generator is not None), sigma)[:, free]

        own = getattr(score_fn, "log_density", None)
        energy = getattr(score_fn, "energy", None)
        if own is not None or energy is not None:
            joint = own if own is not None else (lambda x, s: -energy(x, s))
            from .samplers import WithLogDensity

            return WithLogDensity(score, lambda y, sigma: joint(fill(y, sigma, False), sigma))
        return score

    def _free_part(self, x: torch.Tensor) -> torch.Tensor:
        """x's free coordinates; the very tensor returned last time when x is what this returned, so
        a multistep solver (DPM-Solver++) recognises its own particles and keeps its history."""
        if self._last is not None and self._last[0] is x:
            return self._last[1]
        return x[:, list(self.condition.free)]

    def _show(self, y: torch.Tensor) -> torch.Tensor:
        x = self.condition.assemble(y, self.condition.fixed_tensor(y))
        self._last = (x, y)
        return x

    def init(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        x = self.inner.init(n, dim, generator)  # the full prior (a flow's source has D columns), then y
        return self._show(x[:, list(self.condition.free)])

    def step(self, score_fn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        y = self.inner.step(self.free_score(score_fn, generator), self._free_part(x), i, generator)
        return self._show(y)

    def finish(self, score_fn, x: torch.Tensor) -> torch.Tensor:
        return self._show(self.inner.finish(self.free_score(score_fn), self._free_part(x)))


def condition_sampler(sampler, condition: Condition | None, process: Process, fixed: str | None = None):
    """`sampler` itself without a condition, else a ConditionedSampler (fixed: the sampler's default)."""
    if condition is None:
        return sampler
    return ConditionedSampler(sampler, condition, process, fixed or default_fixed_mode(sampler.name))


def reference_mixture(dataset, standardizer, sigma: float = 0.0) -> tuple[GaussianMixture, str]:
    """The truth as a mixture in standardised coordinates, and its kind: a preset's own mixture
    (smoothed by sigma), else the data smoothed by max(sigma, EMPIRICAL_TRUTH_FLOOR) (a kernel
    density: the exact q_sigma of the empirical distribution, which `truth.empirical_score` uses)."""
    if dataset.gmm is not None:
        gmm = dataset.gmm.transformed(torch.as_tensor(standardizer.shift, dtype=torch.float64),
                                      float(standardizer.scale))
        return (gmm.perturbed(sigma) if sigma > 0 else gmm), "analytic"
    pts = torch.as_tensor(standardizer.forward(np.asarray(dataset.points[:EMPIRICAL_TRUTH_POINTS])), dtype=torch.float64)
    return GaussianMixture.isotropic(torch.ones(len(pts)), pts, max(float(sigma), EMPIRICAL_TRUTH_FLOOR)), "empirical"


def conditional_reference(dataset, standardizer, condition: Condition):  # noqa: ANN201 - (Dataset, GaussianMixture)
    """What conditional samples are scored against (`sgm steps --given`): the truth's p(x | x_f = v)
    as a Dataset of fresh draws in data coordinates (the free coordinates from the conditional of
    `reference_mixture`, exact for a preset, the smoothed data otherwise; the fixed ones held at v),
    and that truth (standardised, all D coordinates) for `conditional_weights`."""
    from .datasets import Dataset

    mixture, _kind = reference_mixture(dataset, standardizer)
    try:
        cond = mixture.conditional(condition.fixed, condition.values)
    except ConfigError as exc:
        raise ConfigError(f"given {condition.describe(standardizer)}: {exc}") from None

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        y = cond.sample(n, generator).double()
        return standardizer.inverse(condition.assemble(y, condition.fixed_tensor(y))).float()

    points = draw(EMPIRICAL_TRUTH_POINTS, torch.Generator().manual_seed(0)).numpy()
    return Dataset(f"{dataset.name} given {condition.describe(standardizer)}", points, draw), mixture


def conditional_density(mixture: GaussianMixture, condition: Condition, grid: torch.Tensor) -> torch.Tensor:
    """p(y | x_f = v) on `grid` (M, U) of free coordinates, for the window's 1D plot and the tests."""
    cond = mixture.conditional(condition.fixed, condition.values)
    return cond.log_prob(grid.to(torch.float64)).exp()


def conditional_weights(mixture: GaussianMixture, condition: Condition, samples: torch.Tensor,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(the samples' component weights, the analytic conditional's weights): samples (N, D) are
    assigned by their free coordinates' responsibility under p(y | v), as `metrics.mode_weights`."""
    cond = mixture.conditional(condition.fixed, condition.values)
    y = torch.as_tensor(samples, dtype=torch.float64)[:, list(condition.free)]
    idx = cond.responsibilities(y).argmax(1)
    return torch.bincount(idx, minlength=cond.n_components).double() / len(y), cond.weights



CURVE_POINTS = 200  # samples of the window's 1D conditional density


@dataclass(frozen=True)
class ConditionalCurve:
    """The truth's p(y | x_f = v) along the one free axis, in data units (numpy only: it rides in a
    Frame to the window): `axis` is the free coordinate, `kind` "analytic" or "empirical"."""

    axis: int
    grid: np.ndarray  # (M,) values of the free coordinate
    density: np.ndarray  # (M,) p(y | v) per data unit
    kind: str
    weights: np.ndarray  # (K,) the conditional mixture's component weights (analytic kind; else empty)
    means: np.ndarray  # (K,) their means along the axis, data units


def conditional_curve(dataset, standardizer, given: Mapping[int, float], n: int = CURVE_POINTS) -> ConditionalCurve | None:
    """p(y | given) of the dataset's truth (`reference_mixture`) on a grid over the data's range of
    the free axis; None when more than one axis is free (a 3D plane) or the condition is invalid."""
    dim = dataset.dim
    try:
        cond = Condition.from_data(given, standardizer, dim)
    except ConfigError:
        return None
    if len(cond.free) != 1:
        return None
    axis = cond.free[0]
    mixture, kind = reference_mixture(dataset, standardizer)
    col = np.asarray(dataset.points[:, axis], dtype=np.float64)
    lo, hi = float(col.min()), float(col.max())
    pad = 0.15 * (hi - lo or 1.0)
    grid = np.linspace(lo - pad, hi + pad, n)
    shift = float(_shift(standardizer, dim)[axis])
    scale = float(standardizer.scale)
    grid_std = torch.as_tensor((grid - shift) / scale)[:, None]
    try:
        c = mixture.conditional(cond.fixed, cond.values)
    except ConfigError:  # no density there: nothing to draw
        return None
    density = c.log_prob(grid_std).exp().numpy() / scale
    if not np.isfinite(density).all():
        return None
    analytic = kind == "analytic"
    return ConditionalCurve(axis, grid, density, kind,
                            c.weights.numpy() if analytic else np.zeros(0),
                            (c.means[:, 0].numpy() * scale + shift) if analytic else np.zeros(0))

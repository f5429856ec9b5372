"""Toy distributions, user data, and the standardisation that every model trains in.

A `Dataset` pairs fixed display points with a way to draw *fresh* samples, because score
matching needs new draws every step while the views need a stable picture. Presets are
generative processes (the classic 2D/3D toy sets); Gaussian-mixture presets also carry the exact
mixture so truth-vs-learned comparisons are possible. User data (files, the brush) becomes an
`EmpiricalDataset`: a resampled point cloud with optional Gaussian jitter.

A dataset may carry class labels: an integer per point in [0, C) and the C class names as they
appear in the file (or the preset's own), for class-conditional models and guidance.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from sgm_core.errors import DataError
from sgm_core.gmm import GaussianMixture
from sgm_core.lazy import lazy_module, loaded

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, "torch.Tensor")
Sampler = Callable[[int, "torch.Generator"], "torch.Tensor"]
LabelledSampler = Callable[[int, "torch.Generator"], "tuple[torch.Tensor, torch.Tensor]"]

MAX_CLASSES = 64  # a class-conditional net has one embedding row per class (plus the null class)
MAX_CLASS_NAME = 64  # characters of one class name
_MIN_SCALE = 1e-8  # below this the cloud is a single point: standardising would divide by ~0


# --------------------------------------------------------------------------- validation


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def validate_points(
    x: np.ndarray, *, min_points: int = 2, dims: Sequence[int] | None = (2, 3)
) -> np.ndarray:
    """Check an (N, D) point array at the edge and return it as float32.

    `dims=None` accepts any D >= 1. Each failure raises `DataError` with one sentence that says
    what is wrong, so loaders, the CLI and the GUI can show it as is.
    """
    if not isinstance(x, np.ndarray):
        raise DataError(f"expected a NumPy array of points, got {type(x).__name__}")
    if np.iscomplexobj(x):
        raise DataError("data must be real numbers, got complex values")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"data must be numeric, got dtype {x.dtype}")
    if x.ndim != 2 or (dims is not None and x.shape[1] not in dims) or x.shape[1] < 1:
        if dims is None:
            wanted = "an N×D"
        else:
            wanted = "an " + " or ".join(f"N×{d}" for d in dims)
        raise DataError(f"expected {wanted} array, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n < min_points:
        raise DataError(f"data has {_plural(n, 'point')}; need at least {min_points}")
    bad_in = ~np.isfinite(x).all(axis=1)
    if bad_in.any():
        raise DataError(f"data contains NaN or Inf in {_plural(int(bad_in.sum()), 'row')}")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(x, dtype=np.float32)
    overflow = ~np.isfinite(out).all(axis=1)
    if overflow.any():
        raise DataError(
            f"data has values beyond the float32 range in {_plural(int(overflow.sum()), 'row')}"
        )
    return out


def _rows(rows: np.ndarray) -> str:
    first = ", ".join(str(int(r) + 1) for r in rows[:3])
    return f"{_plural(len(rows), 'row')} (row {first}{', ...' if len(rows) > 3 else ''})"


def validate_labels(raw: object, n_rows: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Check one label per point and return (index (N,) int64 in [0, C), the C class names).

    Labels are whole numbers (class names are their decimal form, in numeric order) or names
    (strings, in order of first appearance). Missing labels ('' or None), NaN, fractions, a single
    class or more than MAX_CLASSES classes are each one DataError sentence.
    """
    values = np.asarray(raw, dtype=object).reshape(-1) if not isinstance(raw, np.ndarray) else raw.reshape(-1)
    if len(values) != n_rows:
        raise DataError(f"there are {len(values)} labels for {_plural(n_rows, 'point')}; need one label per point")
    if values.dtype.kind in "iub":
        if values.dtype.kind == "u" and len(values):  # uint64 above 2^63 - 1 would wrap to negative
            _check_label_range(np.flatnonzero(values > np.iinfo(np.int64).max))
        ints = values.astype(np.int64)
    elif values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(f"labels are NaN or Inf in {_rows(bad)}")
        frac = np.flatnonzero(values != np.round(values))
        if len(frac):
            raise DataError(f"labels must be whole numbers or names; {_rows(frac)} hold fractions")
        _check_label_range(np.flatnonzero((values >= 2.0**63) | (values < -(2.0**63))))  # astype(int64) is undefined there
        ints = values.astype(np.int64)
    else:
        tokens = [("" if v is None else str(v).strip()) for v in values.tolist()]
        missing = np.flatnonzero([t == "" for t in tokens])
        if len(missing):
            raise DataError(f"labels are missing in {_rows(missing)}; every point needs a class")
        nan = np.flatnonzero([t.lower() in ("nan", "inf", "-inf", "+inf") for t in tokens])
        if len(nan):
            raise DataError(f"labels are NaN or Inf in {_rows(nan)}")
        try:
            ints = np.array([int(t) for t in tokens], dtype=np.int64)
        except (ValueError, OverflowError):
            ints = None
        if ints is None:
            names = tuple(dict.fromkeys(tokens))
            _check_class_count(names)
            long = [n for n in names if len(n) > MAX_CLASS_NAME]
            if long:
                raise DataError(f"class name {long[0][:20]!r}... is longer than {MAX_CLASS_NAME} characters")
            lookup = {name: i for i, name in enumerate(names)}
            return np.array([lookup[t] for t in tokens], dtype=np.int64), names
    found, index = np.unique(ints, return_inverse=True)
    names = tuple(str(int(v)) for v in found)
    _check_class_count(names)
    return index.astype(np.int64).reshape(-1), names


def _check_label_range(rows: np.ndarray) -> None:
    if len(rows):
        raise DataError(f"labels must be whole numbers from -2^63 to 2^63 - 1 or names; {_rows(rows)} lie outside")


def _check_class_count(names: tuple[str, ...]) -> None:
    if len(names) < 2:
        raise DataError(f"the labels name only one class ({names[0]!r}); a class-conditional model needs at least 2"
                        if names else "there are no labels")
    if len(names) > MAX_CLASSES:
        raise DataError(f"the labels name {len(names)} classes; the most this program conditions on is {MAX_CLASSES}")


def check_classes(classes: object) -> tuple[str, ...]:
    """Class names as a tuple of 2..MAX_CLASSES distinct non-empty strings (one DataError otherwise)."""
    if isinstance(classes, str) or not isinstance(classes, tuple | list):
        raise DataError(f"class names must be a list of strings, not {type(classes).__name__}")
    names = tuple(classes)
    if not all(isinstance(n, str) and n.strip() and len(n) <= MAX_CLASS_NAME for n in names):
        raise DataError(f"class names must be non-empty strings of at most {MAX_CLASS_NAME} characters")
    if len(set(names)) != len(names):
        raise DataError("class names must be distinct")
    _check_class_count(names)
    return names


def class_index(classes: tuple[str, ...], label: object) -> int:
    """The index of a class given as it appears in the data (a name, or a whole number); one
    DataError sentence naming the classes when it is not one of them."""
    text = str(label).strip()
    if text in classes:
        return classes.index(text)
    try:
        as_int = str(int(text))
    except ValueError:
        as_int = None
    if as_int is not None and as_int in classes:
        return classes.index(as_int)
    raise DataError(f"unknown class {text!r}; the data's classes are {', '.join(classes)}")


# --------------------------------------------------------------------------- standardiser


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Affine map T(x) = (x - shift) / scale into the coordinates models train in.

    One isotropic scale (not per-axis) so circles stay circles and score directions keep
    their geometry; the noise ladders can then assume unit spread.
    """

    shift: np.ndarray  # (D,) float64 data mean
    scale: float  # sqrt of the mean per-axis variance, > 0

    def __post_init__(self) -> None:
        # A private float64 copy, so no caller's array aliases it. It stays writable because
        # torch warns on every from_numpy/as_tensor of a read-only array.
        shift = np.array(self.shift, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "scale", float(self.scale))
        if not (math.isfinite(self.scale) and self.scale > 0) or not np.isfinite(shift).all():
            raise DataError(f"standardizer needs a finite shift and scale > 0, got {self.scale}")

    @staticmethod
    def fit(points: np.ndarray) -> Standardizer:
        """Mean and isotropic spread of (N, D) points; a cloud with no spread is rejected."""
        x = np.asarray(points, dtype=np.float64)
        shift = x.mean(axis=0)
        scale = float(np.sqrt(x.var(axis=0).mean()))
        if not scale >= _MIN_SCALE:  # also catches NaN
            raise DataError("data has no spread (all points coincide), so it cannot be scaled")
        return Standardizer(shift, scale)

    @property
    def dim(self) -> int:
        return self.shift.shape[0]

    def _with_shift(self, x: ArrayOrTensor) -> tuple[ArrayOrTensor, ArrayOrTensor]:
        """x as floats, and the shift in the same container, dtype and device as x."""
        if isinstance(x, torch.Tensor):
            if not x.is_floating_point():
                x = x.to(torch.get_default_dtype())
            return x, torch.tensor(self.shift, dtype=x.dtype, device=x.device)
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        return x, self.shift.astype(x.dtype)

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        """Data coordinates -> standardised coordinates: (x - shift) / scale."""
        x, shift = self._with_shift(x)
        return (x - shift) / self.scale

    def inverse(self, x: ArrayOrTensor) -> ArrayOrTensor:
        """Standardised coordinates -> data coordinates: x * scale + shift."""
        x, shift = self._with_shift(x)
        return x * self.scale + shift

    def score_to_data(self, score: ArrayOrTensor) -> ArrayOrTensor:
        """Score in standardised coordinates -> data coordinates, by the chain rule:
        log p_data(x) = log p_std(T(x)) - D log(scale), so grad_x = s_std(T(x)) / scale."""
        if not isinstance(score, torch.Tensor):
            score = np.asarray(score)
        return score / self.scale

    def to_json(self) -> dict:
        return {"shift": [float(v) for v in self.shift], "scale": self.scale}

    @staticmethod
    def from_json(d: Mapping) -> Standardizer:
        try:
            return Standardizer(np.asarray(d["shift"], dtype=np.float64), float(d["scale"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"invalid standardizer record: {e}") from e

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Standardizer):
            return NotImplemented
        return self.scale == other.scale and np.array_equal(self.shift, other.shift)

    def __hash__(self) -> int:
        return hash((self.scale, self.shift.tobytes()))


# --------------------------------------------------------------------------- datasets


class Dataset:
    """Display points plus a sampler of fresh draws, both in data coordinates.

    `points` is a fixed (N, D) float32 array for drawing and fitting the standardiser; treat it
    as read-only. `sample` gives new (n, D) float32 draws for training. `gmm` is the exact
    density when the data is a Gaussian mixture, else None. A labelled dataset also has `labels`
    (N,) int64 for the points, `classes` (the names), and `sample_labelled` for fresh draws with
    their classes; its `labelled_sampler` returns (x, labels), and `sample` is its x.
    """

    @property
    def gmm(self) -> GaussianMixture | None:
        """The exact density, or None. A dataset unpickled before torch was loaded holds it as numpy
        (the GUI process never loads torch); read after, it comes back as tensors."""
        if self._gmm is not None and loaded("torch"):
            self._gmm = self._gmm.on_torch()
        return self._gmm

    def __init__(
        self,
        name: str,
        points: np.ndarray,
        sampler: Sampler | None,
        gmm: GaussianMixture | None = None,
        *,
        labels: np.ndarray | None = None,
        classes: tuple[str, ...] = (),
        labelled_sampler: LabelledSampler | None = None,
    ) -> None:
        self.name = name
        self.points = validate_points(np.asarray(points), min_points=1, dims=None)
        self._gmm = gmm
        self._labelled = labelled_sampler
        self._sampler = sampler if sampler is not None else (lambda n, g: labelled_sampler(n, g)[0])
        self._standardizer: Standardizer | None = None
        if (labels is None) != (labelled_sampler is None) or (labels is None) != (not classes):
            raise DataError("a labelled dataset needs its labels, class names and labelled sampler together")
        self.classes: tuple[str, ...] = check_classes(classes) if classes else ()
        self.labels: np.ndarray | None = None
        if labels is not None:
            lab = np.asarray(labels).reshape(-1)
            if len(lab) != len(self.points) or lab.dtype.kind not in "iu" or lab.min() < 0 or lab.max() >= len(self.classes):
                raise DataError(f"labels must be {len(self.points)} class indices in [0, {len(self.classes)})")
            self.labels = lab.astype(np.int64)

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n fresh (n, D) float32 draws, reproducible from a CPU `generator`."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return torch.empty(0, self.dim, dtype=torch.float32)
        return self._sampler(n, generator).to(torch.float32)

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n fresh draws and their class indices ((n, D) float32, (n,) int64); the same random
        stream as `sample`. DataError when the dataset has no labels."""
        if self._labelled is None:
            raise DataError(f"the data {self.name!r} has no class labels")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return torch.empty(0, self.dim, dtype=torch.float32), torch.empty(0, dtype=torch.int64)
        x, y = self._labelled(n, generator)
        return x.to(torch.float32), y.to(torch.int64)

    def standardizer(self) -> Standardizer:
        """The map into training coordinates, fitted once on `points`."""
        if self._standardizer is None:
            self._standardizer = Standardizer.fit(self.points)
        return self._standardizer

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, n={len(self.points)})"


def _as_numpy(points: object) -> np.ndarray:
    if isinstance(points, torch.Tensor):
        return points.detach().cpu().numpy()
    return np.asarray(points)


class EmpiricalDataset(Dataset):
    """A point cloud as a distribution: resample rows with replacement, add N(0, jitter^2 I).

    With jitter > 0 this is a Gaussian kernel density estimate, which gives every point a
    neighbourhood (a painted stroke becomes a smooth band instead of isolated spikes).
    """

    def __init__(self, points: np.ndarray, name: str = "data", jitter: float = 0.0,
                 labels: np.ndarray | None = None, classes: tuple[str, ...] = ()) -> None:
        jitter = float(jitter)
        if not (math.isfinite(jitter) and jitter >= 0):
            raise DataError(f"jitter must be a finite number >= 0, got {jitter}")
        self.jitter = jitter
        pts = validate_points(_as_numpy(points), dims=None)
        if labels is None:
            super().__init__(name, pts, self._resample)
        else:
            super().__init__(name, pts, None, labels=labels, classes=tuple(classes),
                             labelled_sampler=self._resample_labelled)

    def _resample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.randint(0, self.points.shape[0], (n,), generator=generator)
        x = torch.from_numpy(self.points)[rows]
        if self.jitter > 0:
            x = x + self.jitter * torch.randn(x.shape, generator=generator, dtype=torch.float32)
        labels = torch.from_numpy(self.labels)[rows] if self.labels is not None else torch.zeros(n, dtype=torch.int64)
        return x, labels

    def _resample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self._resample_labelled(n, generator)[0]


def from_brush(points: np.ndarray, radius: float, labels: np.ndarray | None = None,
               classes: tuple[str, ...] = ()) -> EmpiricalDataset:
    """Painted points as data; fresh draws land about a spray radius away (jitter = radius/2).
    With `labels` (one class index per point) and `classes` the painting is labelled."""
    return EmpiricalDataset(points, name="brush", jitter=float(radius) / 2, labels=labels, classes=classes)


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class PresetSpec:
    """A named generative process; `gmm` builds the exact density when there is one."""

    name: str
    dim: int
    description: str  # one line shown to users
    sampler: Sampler  # (n, generator) -> (n, dim) float32, data coordinates
    gmm: Callable[[], GaussianMixture] | None = None
    labelled: LabelledSampler | None = None  # (n, generator) -> (draws, class indices): a labelled preset
    classes: tuple[str, ...] = ()  # the class names of a labelled preset


def _uniform(n: int, g: torch.Generator, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


def _randn(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=torch.float64)


def _polar(radius: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)


def _finish(x: torch.Tensor, g: torch.Generator, noise: float = 0.0) -> torch.Tensor:
    """Add isotropic N(0, noise^2) (the customary blur of toy sets) and cast to float32."""
    if noise > 0:
        x = x + noise * _randn(tuple(x.shape), g)
    return x.to(torch.float32)


def _ring_means(k: int, radius: float) -> torch.Tensor:
    angle = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return _polar(torch.full((k,), radius, dtype=torch.float64), angle)


def _gmm_8gaussians() -> GaussianMixture:
    return GaussianMixture.isotropic(torch.ones(8), _ring_means(8, 2.5), 0.15)


def _gmm_8gaussians_labelled() -> GaussianMixture:
    # Two classes on alternate modes of the ring: every mode's neighbours are of the other class, so
    # guidance has something to push away from (Ho & Salimans 2022's trade-off in its smallest form).
    return GaussianMixture.isotropic(torch.ones(8), _ring_means(8, 2.5), 0.15, labels=torch.arange(8) % 2)


def _gmm_25gaussians() -> GaussianMixture:
    ticks = torch.arange(-2, 3, dtype=torch.float64) * 1.5
    grid = torch.cartesian_prod(ticks, ticks)  # (25, 2)
    return GaussianMixture.isotropic(torch.ones(25), grid, 0.15)


def _gmm_mixture_unequal() -> GaussianMixture:
    # Song & Ermon 2019, Sec. 3.2.2: 0.2 N((-5,-5), I) + 0.8 N((5,5), I), here at half scale.
    # Far-apart modes: Langevin with the exact score still gets the 0.2/0.8 ratio wrong.
    means = torch.tensor([[-2.5, -2.5], [2.5, 2.5]], dtype=torch.float64)
    return GaussianMixture.isotropic(torch.tensor([0.2, 0.8]), means, 0.5)


def _gmm_6gaussians_unequal() -> GaussianMixture:
    weights = torch.arange(1, 7, dtype=torch.float64)  # 1:2:...:6, smallest mode ~5%
    return GaussianMixture.isotropic(weights, _ring_means(6, 2.5), 0.2)


def _gmm_3d() -> GaussianMixture:
    tetra = torch.tensor(
        [[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64
    )
    return GaussianMixture.isotropic(torch.tensor([0.4, 0.3, 0.2, 0.1]), 1.5 * tetra, 0.35)


def _from_gmm(make: Callable[[], GaussianMixture]) -> Sampler:
    def sampler(n: int, g: torch.Generator) -> torch.Tensor:
        return make().sample(n, g)

    return sampler


def _from_labelled_gmm(make: Callable[[], GaussianMixture]) -> LabelledSampler:
    def sampler(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return make().sample_labelled(n, g)

    return sampler


def _moons_labelled(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The moons and which one each point is on (0 upper, 1 lower)."""
    t = _uniform(n, g, 0.0, math.pi)
    lower = torch.rand(n, generator=g) < 0.5
    upper_xy = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    lower_xy = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    x = torch.where(lower[:, None], lower_xy, upper_xy)
    x = 2.0 * (x - torch.tensor([0.5, 0.25], dtype=torch.float64))  # centre, span ~[-3, 3]
    return _finish(x, g, noise=0.1), lower.to(torch.int64)


def _moons(n: int, g: torch.Generator) -> torch.Tensor:
    return _moons_labelled(n, g)[0]


def _swissroll(n: int, g: torch.Generator) -> torch.Tensor:
    t = _uniform(n, g, 1.5 * math.pi, 4.5 * math.pi)  # two turns of the Archimedean spiral
    return _finish(_polar(t, t) / 5.0, g, noise=0.1)


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    # 4x4 board of 2x2 cells on [-4, 4]^2; keep the 8 cells whose column+row is even.
    col = torch.randint(0, 4, (n,), generator=g)
    row = 2 * torch.randint(0, 2, (n,), generator=g) + col % 2
    cell = torch.stack([col, row], dim=1).to(torch.float64)
    within = torch.rand(n, 2, generator=g, dtype=torch.float64)
    return _finish(-4.0 + 2.0 * (cell + within), g)


def _pinwheel(n: int, g: torch.Generator) -> torch.Tensor:
    # Blobs on the x-axis (radial spread 0.3, tangential 0.08), each bent by an angle that grows
    # like exp(radius) so it curls, then rotated onto one of 5 arms.
    arm = torch.randint(0, 5, (n,), generator=g).to(torch.float64)
    radial = 1.0 + 0.3 * _randn((n,), g)
    tangential = 0.08 * _randn((n,), g)
    angle = arm * (2 * math.pi / 5) + 0.25 * torch.exp(radial)
    c, s = torch.cos(angle), torch.sin(angle)
    x = torch.stack([c * radial - s * tangential, s * radial + c * tangential], dim=1)
    return _finish(2.0 * x, g)


def _circles(n: int, g: torch.Generator) -> torch.Tensor:
    radius = torch.where(torch.rand(n, generator=g) < 0.5, 1.5, 3.0).to(torch.float64)
    return _finish(_polar(radius, _uniform(n, g, 0.0, 2 * math.pi)), g, noise=0.08)


def _spirals_labelled(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The two spirals and which arm each point is on."""
    # Two interleaved Archimedean arms; sqrt(u) spreads points evenly along the growing arm.
    t = torch.sqrt(_uniform(n, g)) * 3 * math.pi
    arm = (torch.rand(n, generator=g) < 0.5).to(torch.float64)
    x = _polar(t * (4.0 / (3 * math.pi)), t + math.pi * arm)  # outer radius 4
    return _finish(x, g, noise=0.1), arm.to(torch.int64)


def _spirals(n: int, g: torch.Generator) -> torch.Tensor:
    return _spirals_labelled(n, g)[0]


def _circle_manifold(n: int, g: torch.Generator) -> torch.Tensor:
    angle = _uniform(n, g, 0.0, 2 * math.pi)
    return _finish(_polar(torch.full((n,), 2.0, dtype=torch.float64), angle), g)


def _line_manifold(n: int, g: torch.Generator) -> torch.Tensor:
    # y = x / 2 exactly: halving is exact in binary floating point, so thickness is truly 0.
    x = _uniform(n, g, -3.0, 3.0).to(torch.float32)
    return torch.stack([x, 0.5 * x], dim=1)


def _swissroll3d(n: int, g: torch.Generator) -> torch.Tensor:
    t = _uniform(n, g, 1.5 * math.pi, 4.5 * math.pi)
    height = _uniform(n, g, -2.0, 2.0)
    x = torch.stack([t * torch.cos(t) / 5.0, height, t * torch.sin(t) / 5.0], dim=1)
    return _finish(x, g, noise=0.05)


def _helix(n: int, g: torch.Generator) -> torch.Tensor:
    t = _uniform(n, g, -3 * math.pi, 3 * math.pi)  # three turns
    x = torch.stack([2.0 * torch.cos(t), 2.0 * torch.sin(t), t / math.pi], dim=1)
    return _finish(x, g, noise=0.05)


def _torus(n: int, g: torch.Generator) -> torch.Tensor:
    # Uniform over the surface area: the area element is (R + r cos v), so accept a tube angle v
    # with probability (R + r cos v) / (R + r) (rejection sampling, <2 rounds on average).
    big, small = 2.5, 1.0
    tube = torch.empty(0, dtype=torch.float64)
    while tube.numel() < n:
        v = _uniform(2 * n, g, 0.0, 2 * math.pi)
        keep = _uniform(2 * n, g) * (big + small) < big + small * torch.cos(v)
        tube = torch.cat([tube, v[keep]])
    v = tube[:n]
    u = _uniform(n, g, 0.0, 2 * math.pi)
    ring = big + small * torch.cos(v)
    x = torch.stack([ring * torch.cos(u), ring * torch.sin(u), small * torch.sin(v)], dim=1)
    return _finish(x, g, noise=0.05)


def _sphere(n: int, g: torch.Generator) -> torch.Tensor:
    z = _randn((n, 3), g)  # a normalised Gaussian is uniform on the sphere
    return _finish(2.5 * z / z.norm(dim=1, keepdim=True), g)


def _gmm_spec(
    name: str, dim: int, description: str, make: Callable[[], GaussianMixture]
) -> PresetSpec:
    """A mixture preset samples from the very mixture it reports as truth."""
    return PresetSpec(name, dim, description, _from_gmm(make), make)


def _labelled_spec(name: str, dim: int, description: str, labelled: LabelledSampler, classes: tuple[str, ...],
                   make: Callable[[], GaussianMixture] | None = None) -> PresetSpec:
    """A labelled preset: its plain sampler is the labelled one's draws (the same random stream)."""
    return PresetSpec(name, dim, description, lambda n, g: labelled(n, g)[0], make, labelled, classes)


_SPECS = (
    _gmm_spec("8gaussians", 2, "8 Gaussians on a ring of radius 2.5 (std 0.15)", _gmm_8gaussians),
    _gmm_spec("25gaussians", 2, "5×5 grid of Gaussians, spacing 1.5 (std 0.15)", _gmm_25gaussians),
    PresetSpec("moons", 2, "two interleaving half-circles with a little noise", _moons),
    PresetSpec("swissroll", 2, "a two-turn spiral band (2D Swiss roll)", _swissroll),
    PresetSpec("checkerboard", 2, "uniform on the dark squares of a 4×4 board", _checkerboard),
    PresetSpec("pinwheel", 2, "five curled arms of a pinwheel", _pinwheel),
    PresetSpec("circles", 2, "two concentric noisy rings (radii 1.5 and 3)", _circles),
    PresetSpec("spirals", 2, "two interleaved spiral arms", _spirals),
    PresetSpec("circle-manifold", 2, "exactly on a circle of radius 2 (zero thickness)",
               _circle_manifold),
    PresetSpec("line-manifold", 2, "exactly on a line segment (zero thickness)", _line_manifold),
    _gmm_spec("mixture-unequal", 2, "two far-apart Gaussians weighted 0.2 / 0.8",
              _gmm_mixture_unequal),
    _gmm_spec("6gaussians-unequal", 2, "6 Gaussians on a ring, weights 1:2:3:4:5:6",
              _gmm_6gaussians_unequal),
    PresetSpec("swissroll3d", 3, "a rolled-up sheet (3D Swiss roll)", _swissroll3d),
    PresetSpec("helix", 3, "a thin three-turn helix", _helix),
    PresetSpec("torus", 3, "a thin shell around a torus (radii 2.5 and 1)", _torus),
    PresetSpec("sphere", 3, "exactly on a sphere of radius 2.5 (zero thickness)", _sphere),
    _gmm_spec("gmm3d", 3, "4 Gaussians at a tetrahedron's corners, weights 0.4 to 0.1", _gmm_3d),
    _labelled_spec("8gaussians-labelled", 2, "8gaussians in two classes on alternate modes (labels 0, 1)",
                   _from_labelled_gmm(_gmm_8gaussians_labelled), ("0", "1"), _gmm_8gaussians_labelled),
    _labelled_spec("moons-labelled", 2, "moons, labelled by moon (0 upper, 1 lower)", _moons_labelled, ("0", "1")),
    _labelled_spec("spirals-labelled", 2, "the two spirals, labelled by arm (0, 1)", _spirals_labelled, ("0", "1")),
)
PRESETS: Mapping[str, PresetSpec] = types.MappingProxyType({s.name: s for s in _SPECS})


def _unknown_preset(name: str) -> DataError:
    return DataError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")


def make_preset(name: str, n_points: int = 5000, seed: int = 0) -> Dataset:
    """A preset with `n_points` display points drawn from its process with `seed`."""
    spec = PRESETS.get(name)
    if spec is None:
        raise _unknown_preset(name)
    if n_points < 2:
        raise DataError(f"n_points must be at least 2, got {n_points}")
    gmm = spec.gmm() if spec.gmm is not None else None
    if spec.labelled is not None:
        points, labels = spec.labelled(n_points, torch.Generator().manual_seed(seed))
        return Dataset(name, points.numpy(), None, gmm, labels=labels.numpy(), classes=spec.classes,
                       labelled_sampler=spec.labelled)
    points = spec.sampler(n_points, torch.Generator().manual_seed(seed)).numpy()
    return Dataset(name, points, spec.sampler, gmm)


def load_dataset(source: str, n_points: int = 5000, seed: int = 0) -> Dataset:
    """A preset name or a data file (see `sgm_core.io.load_points`); `n_points` and `seed`
    set the preset's display draw or the number of points taken from an image."""
    if source in PRESETS:
        return make_preset(source, n_points=n_points, seed=seed)
    from sgm_core.io import load_labelled_points  # late import: io validates with this module

    path = Path(source)
    if not path.exists() and not path.suffix:
        raise DataError(
            f"{source!r} is neither a preset ({', '.join(PRESETS)}) nor an existing file"
        )
    points, labels, classes = load_labelled_points(path, n_image_points=n_points, seed=seed)
    return EmpiricalDataset(points, name=path.stem, labels=labels, classes=classes)


def source_dataset(source: str, dim: int, seed: int = 0) -> Dataset:
    """The distribution a flow starts from (`LossConfig.source`: a preset or a data file), checked
    against the data's dimension. Its draws are standardised with the *data's* standardiser, so
    the flow maps one set onto the other in one coordinate system (torchcfm's 8gaussians -> moons)."""
    dataset = load_dataset(source, seed=seed)
    if dataset.dim != dim:
        raise DataError(f"the source {source!r} is {dataset.dim}D but the data is {dim}D; a flow needs both alike")
    return dataset

"""Lift a 2D drawing into 3D: a custom 3D distribution without a point-cloud file.

Three constructions, each a pure NumPy function returning float32 `(M, 3)` points:

- `place_on_plane`: the drawing embedded in an arbitrary plane (a flat 2D manifold inside 3D,
  the classic case where a score model must learn a zero-thickness direction);
- `extrude`: the drawing swept along z (a "prism" of the shape);
- `revolve`: the drawing turned about one of its axes (a vase from a profile).

Geometry is computed in float64 and cast once, so points lie on their plane / circle to float32
precision. Randomness, where any, comes from a `np.random.Generator` argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sgm_core.datasets import validate_points
from sgm_core.errors import DataError

REVOLVE_AXES = ("x", "y")  # the drawing's axis a profile turns about
_MIN_NORMAL = 1e-12  # a normal shorter than this has no direction


def _drawing(points2d: object) -> np.ndarray:
    """The (N, 2) drawing as float64, validated at the edge (DataError with one sentence)."""
    try:
        arr = np.asarray(points2d)
    except (TypeError, ValueError) as exc:  # ragged rows, objects numpy cannot stack
        raise DataError("the drawing is not an array of 2D points (rows of unequal length?)") from exc
    return validate_points(arr, min_points=1, dims=(2,)).astype(np.float64)


def _finite(name: str, value: float, *, minimum: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v) or (minimum is not None and v < minimum):
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise DataError(f"{name} must be a finite number{bound}, got {value!r}")
    return v


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def plane_basis(normal: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (u, v, n) with n the normalised `normal` and u x v = n.

    (u, v) are the images of the x and y axes under the smallest rotation taking +z to n, so the
    default normal (0, 0, 1) gives u = x, v = y: the drawing keeps its orientation. For
    n = (a, b, c), c > -1, that rotation has the closed form u = (1 - a²/(1+c), -ab/(1+c), -a),
    v = (-ab/(1+c), 1 - b²/(1+c), -b); n = -z (no unique smallest rotation) flips y.
    """
    try:
        n = np.asarray(normal, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"the plane normal must be three numbers, got {normal!r}") from exc
    if n.shape != (3,) or not np.isfinite(n).all():
        raise DataError(f"the plane normal must be three finite numbers, got {normal!r}")
    length = float(np.linalg.norm(n))
    if length < _MIN_NORMAL:
        raise DataError("the plane normal must not be the zero vector")
    a, b, c = n / length
    if c < -1.0 + 1e-9:  # n = -z: rotate 180 degrees about x
        u, v = np.array([1.0, 0.0, 0.0]), np.array([0.0, -1.0, 0.0])
    else:
        k = 1.0 / (1.0 + c)
        u = np.array([1.0 - a * a * k, -a * b * k, -a])
        v = np.array([-a * b * k, 1.0 - b * b * k, -b])
    return u, v, np.array([a, b, c])


def place_on_plane(
    points2d: np.ndarray, normal: Sequence[float] = (0.0, 0.0, 1.0), offset: float = 0.0, rotation_deg: float = 0.0
) -> np.ndarray:
    """The drawing embedded in the plane {p : p·n = offset}, turned `rotation_deg` in that plane.

    `normal` may have any length (it is normalised); each (x, y) maps to
    offset·n + x·u' + y·v' with (u', v') the `plane_basis` rotated by `rotation_deg` about n,
    so distances within the drawing are preserved exactly.
    """
    p = _drawing(points2d)
    offset = _finite("offset", offset)
    theta = math.radians(_finite("rotation_deg", rotation_deg))
    u, v, n = plane_basis(normal)
    c, s = math.cos(theta), math.sin(theta)
    u_rot, v_rot = c * u + s * v, -s * u + c * v
    out = offset * n + p[:, :1] * u_rot + p[:, 1:2] * v_rot
    return out.astype(np.float32)


def extrude(points2d: np.ndarray, depth: float, layers: int = 8, rng: np.random.Generator | None = None) -> np.ndarray:
    """The drawing swept along z over [-depth/2, depth/2]: `layers` copies, (N * layers, 3).

    Without `rng` the copies sit on evenly spaced layers (one layer sits at z = 0); with `rng`
    every copied point draws its own z uniformly, which fills the slab instead of stacking
    sheets. x and y are kept exactly; rows are copy-major (copy k is rows k·N ... (k+1)·N - 1).
    """
    p = _drawing(points2d)
    depth = _finite("depth", depth, minimum=0.0)
    k = _count("layers", layers)
    n = len(p)
    half = depth / 2.0
    if rng is None:
        z = np.repeat(np.linspace(-half, half, k) if k > 1 else np.zeros(1), n)
    else:
        z = rng.uniform(-half, half, size=k * n) if depth > 0 else np.zeros(k * n)
    xy = np.tile(p, (k, 1))
    return np.column_stack([xy, z]).astype(np.float32)


def revolve(points2d: np.ndarray, axis: str = "y", n_copies: int = 24, rng: np.random.Generator | None = None) -> np.ndarray:
    """The drawing turned about its `axis` ("x" or "y"): a solid of revolution, (N * n_copies, 3).

    The other coordinate is the signed radius. About "y", (x, y) -> (x cos t, y, x sin t); about
    "x", (x, y) -> (x, y cos t, y sin t). So the axis coordinate and the distance to the axis are
    kept, and t = 0 is the drawing itself in the z = 0 plane. Without `rng` the copies use evenly
    spaced angles 2πk / n_copies; with `rng` every copied point draws its own angle uniformly.
    Rows are copy-major, as in `extrude`.
    """
    p = _drawing(points2d)
    if axis not in REVOLVE_AXES:
        raise DataError(f"unknown revolve axis {axis!r}; choose one of: {', '.join(REVOLVE_AXES)}")
    k = _count("n_copies", n_copies)
    n = len(p)
    if rng is None:
        t = np.repeat(2.0 * np.pi * np.arange(k) / k, n)
    else:
        t = rng.uniform(0.0, 2.0 * np.pi, size=k * n)
    along, radius = (p[:, 1], p[:, 0]) if axis == "y" else (p[:, 0], p[:, 1])
    along, radius = np.tile(along, k), np.tile(radius, k)
    a, b = radius * np.cos(t), radius * np.sin(t)
    out = np.column_stack([a, along, b]) if axis == "y" else np.column_stack([along, a, b])
    return out.astype(np.float32)


def lift_sources(n_points: int, n_copies: int = 1) -> np.ndarray:
    """Which drawn point each row of a lifted drawing came from: the rows of `extrude` and
    `revolve` are copy-major, so row r is point r mod N (n_copies = 1: `place_on_plane`). A
    subsample of the lift takes the same rows of this index, so every point keeps its source's class."""
    return np.tile(np.arange(int(n_points), dtype=np.int64), _count("n_copies", n_copies))


def lift_labels(labels: np.ndarray, n_copies: int = 1) -> np.ndarray:
    """The class labels of a lifted drawing: each row takes the label of the point it came from."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    return labels[lift_sources(len(labels), n_copies)]

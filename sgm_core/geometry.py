"""Planes through 3D data: which axes span them and a field seen face-on. Pure numpy, shared by the
views (app.views.geometry) and the engine side (the compare runs project in their own process)."""

from __future__ import annotations

import numpy as np


def in_plane_axes(axis: int) -> tuple[int, int]:
    """The two coordinate axes spanning the plane normal to `axis`, in increasing order
    (x-normal: (y, z), y-normal: (x, z), z-normal: (x, y))."""
    if axis not in (0, 1, 2):
        raise ValueError(f"slice axis must be 0, 1 or 2, got {axis!r}")
    a, b = (i for i in range(3) if i != axis)
    return a, b


def project_field(positions: np.ndarray, vectors: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """A 3D field sampled on the plane x[axis] = c as a 2D field: the in-plane coordinates and
    the in-plane components (the normal component is dropped: it points out of the picture)."""
    a, b = in_plane_axes(axis)
    p = np.asarray(positions, dtype=np.float32).reshape(-1, 3)
    v = np.asarray(vectors, dtype=np.float32).reshape(-1, 3)
    return np.ascontiguousarray(p[:, [a, b]]), np.ascontiguousarray(v[:, [a, b]])

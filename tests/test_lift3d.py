"""Lifting a 2D drawing into 3D: exact geometry (plane membership, kept coordinates, kept
distances to the axis) and one-sentence DataErrors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgm_core.errors import DataError
from sgm_core.lift3d import extrude, place_on_plane, plane_basis, revolve

# float32 output of float64 geometry on coordinates of size ~10: a few ulps of 10 in float32
ATOL = 1e-5 * 10

NORMALS = [(0, 0, 1), (0, 0, -1), (1, 0, 0), (0, 1, 0), (1, 2, 3), (-0.3, 0.1, -0.9), (1e-3, 0, -1)]


@pytest.fixture
def drawing() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-5, 5, size=(200, 2)).astype(np.float32)


@pytest.mark.parametrize("normal", NORMALS)
def test_plane_basis_is_orthonormal_and_right_handed(normal):
    u, v, n = plane_basis(normal)
    m = np.stack([u, v, n])
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.cross(u, v), n, atol=1e-12)
    np.testing.assert_allclose(n, np.asarray(normal, float) / np.linalg.norm(normal), atol=1e-12)


@pytest.mark.parametrize("normal", NORMALS)
@pytest.mark.parametrize("offset", [0.0, 2.5, -1.25])
@pytest.mark.parametrize("rotation", [0.0, 37.0, -90.0])
def test_place_on_plane_lies_in_plane_and_keeps_distances(drawing, normal, offset, rotation):
    out = place_on_plane(drawing, normal=normal, offset=offset, rotation_deg=rotation)
    assert out.shape == (len(drawing), 3) and out.dtype == np.float32
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    np.testing.assert_allclose(out.astype(np.float64) @ n, offset, atol=ATOL)
    # an isometry of the plane: pairwise distances are those of the drawing
    d2 = np.linalg.norm(drawing[:50, None].astype(float) - drawing[None, :50], axis=-1)
    d3 = np.linalg.norm(out[:50, None].astype(float) - out[None, :50], axis=-1)
    np.testing.assert_allclose(d3, d2, atol=ATOL)


def test_place_on_plane_defaults_are_the_identity_embedding(drawing):
    out = place_on_plane(drawing)
    np.testing.assert_array_equal(out[:, :2], drawing)
    np.testing.assert_array_equal(out[:, 2], 0.0)


def test_place_on_plane_rotation_turns_the_drawing_in_its_plane():
    out = place_on_plane(np.array([[1.0, 0.0]]), rotation_deg=90.0)
    np.testing.assert_allclose(out, [[0.0, 1.0, 0.0]], atol=1e-7)


def test_place_on_plane_normalises_the_normal(drawing):
    a = place_on_plane(drawing, normal=(0, 3, 4), offset=1.0)
    b = place_on_plane(drawing, normal=(0, 0.6, 0.8), offset=1.0)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_extrude_layers_keep_xy_and_span_the_depth(drawing):
    out = extrude(drawing, depth=3.0, layers=5)
    assert out.shape == (5 * len(drawing), 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :2], np.tile(drawing, (5, 1)))
    np.testing.assert_allclose(np.unique(out[:, 2]), np.linspace(-1.5, 1.5, 5), atol=1e-7)
    np.testing.assert_array_equal(out[: len(drawing), 2], -1.5)  # copy-major rows


def test_extrude_one_layer_is_the_drawing_at_z0(drawing):
    out = extrude(drawing, depth=2.0, layers=1)
    np.testing.assert_array_equal(out[:, :2], drawing)
    np.testing.assert_array_equal(out[:, 2], 0.0)


def test_extrude_with_rng_is_uniform_in_the_slab_and_reproducible(drawing):
    out = extrude(drawing, depth=2.0, layers=10, rng=np.random.default_rng(1))
    again = extrude(drawing, depth=2.0, layers=10, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(out[:, :2], np.tile(drawing, (10, 1)))
    z = out[:, 2]
    assert z.min() >= -1.0 and z.max() <= 1.0
    # 2000 uniform draws on [-1, 1]: the mean's standard error is 0.577 / sqrt(2000) = 0.013
    assert abs(z.mean()) < 5 * 0.013
    assert len(np.unique(z)) > 0.99 * len(z)  # drawn per point, not 10 layers (float32 may tie a few)


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("rng", [None, 3])
def test_revolve_keeps_axis_coordinate_and_distance_to_axis(drawing, axis, rng):
    gen = None if rng is None else np.random.default_rng(rng)
    out = revolve(drawing, axis=axis, n_copies=12, rng=gen)
    assert out.shape == (12 * len(drawing), 3) and out.dtype == np.float32
    p = np.tile(drawing, (12, 1)).astype(np.float64)
    o = out.astype(np.float64)
    if axis == "y":
        np.testing.assert_array_equal(out[:, 1], p[:, 1])
        np.testing.assert_allclose(np.hypot(o[:, 0], o[:, 2]), np.abs(p[:, 0]), atol=ATOL)
    else:
        np.testing.assert_array_equal(out[:, 0], p[:, 0])
        np.testing.assert_allclose(np.hypot(o[:, 1], o[:, 2]), np.abs(p[:, 1]), atol=ATOL)


def test_revolve_first_copy_is_the_drawing_and_copies_are_evenly_turned():
    profile = np.array([[2.0, 0.5], [1.0, -1.0]])
    out = revolve(profile, axis="y", n_copies=4)
    np.testing.assert_allclose(out[:2], [[2.0, 0.5, 0.0], [1.0, -1.0, 0.0]], atol=1e-7)
    angles = np.arctan2(out[::2, 2], out[::2, 0])  # first point of each copy
    np.testing.assert_allclose(np.mod(angles, 2 * math.pi), [0, math.pi / 2, math.pi, 3 * math.pi / 2], atol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: place_on_plane(np.zeros((4, 3))), "N×2"),
        (lambda: place_on_plane(np.array([[0.0, np.nan]])), "NaN"),
        (lambda: place_on_plane(np.zeros((0, 2))), "at least 1"),
        (lambda: place_on_plane(np.zeros((3, 2)), normal=(0, 0, 0)), "zero vector"),
        (lambda: place_on_plane(np.zeros((3, 2)), normal=(1, 0)), "three finite numbers"),
        (lambda: place_on_plane(np.zeros((3, 2)), offset=float("inf")), "offset"),
        (lambda: place_on_plane([[1, 2], [3]]), "not an array"),
        (lambda: extrude(np.zeros((3, 2)), depth=-1.0), "depth"),
        (lambda: extrude(np.zeros((3, 2)), depth=1.0, layers=0), "layers"),
        (lambda: extrude(np.zeros((3, 2)), depth=1.0, layers=2.5), "layers"),
        (lambda: revolve(np.zeros((3, 2)), axis="z"), "axis"),
        (lambda: revolve(np.zeros((3, 2)), n_copies=0), "n_copies"),
    ],
)
def test_bad_input_raises_one_sentence_data_error(call, message):
    with pytest.raises(DataError, match=message) as info:
        call()
    text = str(info.value)
    assert "\n" not in text and text.count(". ") == 0

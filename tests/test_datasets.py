"""Presets, empirical data, validation and the standardiser, checked against exact truth."""

from __future__ import annotations

import dataclasses
import json
import types

import numpy as np
import pytest
import torch

from sgm_core.datasets import (
    PRESETS,
    Dataset,
    EmpiricalDataset,
    PresetSpec,
    Standardizer,
    from_brush,
    load_dataset,
    make_preset,
    validate_points,
)
from sgm_core.errors import DataError
from sgm_core.gmm import GaussianMixture

REQUIRED_2D = {
    "8gaussians", "25gaussians", "moons", "swissroll", "checkerboard", "pinwheel", "circles", "spirals",
    "circle-manifold", "line-manifold", "mixture-unequal", "6gaussians-unequal",
}
REQUIRED_3D = {"swissroll3d", "helix", "torus", "sphere", "gmm3d"}
GMM_PRESETS = {"8gaussians", "25gaussians", "mixture-unequal", "6gaussians-unequal", "gmm3d"}

FLOAT32_REL = 1e-6  # float32 rounding of a value computed in float64 (eps32 = 1.2e-7, a few ulps)
STD_ERRORS = 5.0  # Monte Carlo tolerance in standard errors: a false alarm is < 1e-6 per check


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- registry


def test_registry_is_constant_and_complete():
    assert isinstance(PRESETS, types.MappingProxyType)
    assert REQUIRED_2D | REQUIRED_3D <= set(PRESETS)
    assert {k for k in PRESETS if PRESETS[k].dim == 2} >= REQUIRED_2D
    assert {k for k in PRESETS if PRESETS[k].dim == 3} >= REQUIRED_3D
    assert {k for k, s in PRESETS.items() if s.gmm is not None} >= GMM_PRESETS
    with pytest.raises(TypeError):
        PRESETS["new"] = PRESETS["moons"]  # type: ignore[index]


@pytest.mark.parametrize("name", list(PRESETS))
def test_spec_is_frozen_and_described(name):
    spec = PRESETS[name]
    assert isinstance(spec, PresetSpec) and spec.name == name
    assert spec.description and "\n" not in spec.description
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dim = 4  # type: ignore[misc]


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_points(name):
    ds = make_preset(name, n_points=400, seed=0)
    spec = PRESETS[name]
    assert isinstance(ds, Dataset) and ds.name == name
    assert ds.dim == spec.dim
    assert ds.points.shape == (400, spec.dim) and ds.points.dtype == np.float32
    assert np.isfinite(ds.points).all()
    assert (ds.gmm is not None) == (spec.gmm is not None)
    # Roughly the scale of the classic toy sets: spread of order 1, nothing far out.
    assert 0.5 < ds.standardizer().scale < 5.0
    assert np.abs(ds.points).max() < 8.0


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_display_points_are_seeded(name):
    a = make_preset(name, n_points=200, seed=3).points
    b = make_preset(name, n_points=200, seed=3).points
    c = make_preset(name, n_points=200, seed=4).points
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", list(PRESETS))
def test_sample_is_fresh_and_reproducible(name):
    ds = make_preset(name, n_points=100)
    x = ds.sample(300, gen(7))
    assert x.shape == (300, ds.dim) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x, ds.sample(300, gen(7)), rtol=0, atol=0)
    assert not torch.equal(x, ds.sample(300, gen(8)))
    assert ds.sample(0, gen(7)).shape == (0, ds.dim)


@pytest.mark.parametrize("name", sorted(GMM_PRESETS))
def test_gmm_preset_samples_from_its_mixture(name):
    spec = PRESETS[name]
    assert isinstance(spec.gmm(), GaussianMixture)
    torch.testing.assert_close(spec.sampler(500, gen(1)), spec.gmm().sample(500, gen(1)), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(GMM_PRESETS))
def test_gmm_preset_component_weights_and_means(name):
    ds = make_preset(name, n_points=10)
    gmm = ds.gmm
    n = 20_000
    x = ds.sample(n, gen(11)).double()
    # Modes are >= 10 std apart in every preset, so the most likely component is the true one.
    label = gmm.responsibilities(x).argmax(1)
    for k in range(gmm.n_components):
        w = float(gmm.weights[k])
        count = int((label == k).sum())
        assert abs(count / n - w) < STD_ERRORS * np.sqrt(w * (1 - w) / n)
        std = float(gmm.covs[k].diagonal().sqrt().max())
        torch.testing.assert_close(
            x[label == k].mean(0), gmm.means[k], rtol=0, atol=STD_ERRORS * std / np.sqrt(count)
        )


def test_mixture_unequal_has_unequal_far_modes():
    gmm = PRESETS["mixture-unequal"].gmm()
    assert sorted(gmm.weights.tolist()) == pytest.approx([0.2, 0.8])
    gap = torch.cdist(gmm.means, gmm.means).max()
    assert gap > 10 * gmm.covs.diagonal(dim1=1, dim2=2).sqrt().max()
    assert len(set(PRESETS["6gaussians-unequal"].gmm().weights.tolist())) == 6


@pytest.mark.parametrize(("name", "radius"), [("circle-manifold", 2.0), ("sphere", 2.5)])
def test_round_manifolds_have_zero_thickness(name, radius):
    ds = make_preset(name, n_points=2000)
    for x in (ds.points.astype(np.float64), ds.sample(2000, gen(5)).double().numpy()):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), radius, rtol=FLOAT32_REL, atol=0)
        # ...and cover the whole manifold, not a single point: both signs on every axis.
        assert (x.min(0) < -0.9 * radius).all() and (x.max(0) > 0.9 * radius).all()


def test_line_manifold_is_exactly_a_segment():
    ds = make_preset("line-manifold", n_points=2000)
    for x in (ds.points, ds.sample(2000, gen(5)).numpy()):
        np.testing.assert_array_equal(x[:, 1], 0.5 * x[:, 0])  # exact: no thickness at all
        assert x[:, 0].min() < -2.5 and x[:, 0].max() > 2.5 and np.abs(x[:, 0]).max() <= 3.0


def test_make_preset_rejects_unknown_name_and_tiny_n():
    with pytest.raises(DataError, match="unknown preset 'nope'") as info:
        make_preset("nope")
    assert all(name in str(info.value) for name in PRESETS)
    with pytest.raises(DataError, match="at least 2"):
        make_preset("moons", n_points=1)


# --------------------------------------------------------------------------- standardiser


def anisotropic_cloud(d: int, n: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) * np.linspace(0.5, 3.0, d) + np.arange(d) * 4.0 - 3.0).astype(np.float32)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_standardizer_zero_mean_unit_mean_variance_isotropic(d):
    x = anisotropic_cloud(d)
    st = Standardizer.fit(x)
    z = st.forward(x.astype(np.float64))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-9)
    assert z.var(0).mean() == pytest.approx(1.0, rel=1e-9)
    # One scale for every axis: the ratios of per-axis spreads are unchanged (no distortion).
    np.testing.assert_allclose(z.std(0) / z.std(0)[0], x.std(0) / x.std(0)[0], rtol=1e-5)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize(
    "make",
    [
        lambda x: x,
        lambda x: x.astype(np.float64),
        lambda x: torch.from_numpy(x),
        lambda x: torch.from_numpy(x).double(),
    ],
    ids=["np32", "np64", "torch32", "torch64"],
)
def test_standardizer_round_trip_keeps_type_and_dtype(d, make):
    x = make(anisotropic_cloud(d, n=50))
    st = Standardizer.fit(anisotropic_cloud(d))
    z = st.forward(x)
    assert type(z) is type(x) and z.dtype == x.dtype and z.shape == x.shape
    back = st.inverse(z)
    assert type(back) is type(x) and back.dtype == x.dtype
    s = st.score_to_data(z)
    assert type(s) is type(x) and s.dtype == x.dtype
    if isinstance(x, torch.Tensor):
        torch.testing.assert_close(back, x)
    else:
        np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)


def test_standardizer_rejects_degenerate_data():
    with pytest.raises(DataError, match="no spread"):
        Standardizer.fit(np.ones((10, 2), np.float32))
    with pytest.raises(DataError):
        Standardizer(np.zeros(2), 0.0)


def test_standardizer_is_frozen_and_json_round_trips():
    st = Standardizer.fit(anisotropic_cloud(3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.scale = 2.0  # type: ignore[misc]
    again = Standardizer.from_json(json.loads(json.dumps(st.to_json())))
    assert again == st and hash(again) == hash(st)
    np.testing.assert_array_equal(again.shift, st.shift)
    with pytest.raises(DataError, match="standardizer"):
        Standardizer.from_json({"shift": [0.0, 1.0]})


@pytest.mark.parametrize("name", sorted(GMM_PRESETS))
@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_score_to_data_matches_exact_mixture(name, sigma):
    """s_data(x) = s_std(T(x)) / scale, and noise sigma in standard units is sigma*scale in data."""
    ds = make_preset(name, n_points=2000)
    st = ds.standardizer()
    gmm_std = ds.gmm.transformed(torch.from_numpy(st.shift), st.scale)
    x = ds.sample(500, gen(2)).double()
    expected = ds.gmm.score(x, sigma * st.scale)
    got = st.score_to_data(gmm_std.score(st.forward(x), sigma))
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_dataset_standardizer_is_fitted_on_points_and_cached():
    ds = make_preset("moons", n_points=1000)
    assert ds.standardizer() is ds.standardizer()
    assert ds.standardizer() == Standardizer.fit(ds.points)


# --------------------------------------------------------------------------- empirical data


@pytest.mark.parametrize("d", [2, 3, 5])
def test_empirical_without_jitter_resamples_rows(d):
    pts = anisotropic_cloud(d, n=20)
    ds = EmpiricalDataset(pts, name="cloud")
    assert ds.dim == d and ds.gmm is None and ds.name == "cloud"
    x = ds.sample(500, gen(0)).numpy()
    rows = {tuple(r) for r in pts}
    assert all(tuple(r) in rows for r in x)
    assert len({tuple(r) for r in x}) == 20  # with replacement, 500 draws hit every row
    torch.testing.assert_close(ds.sample(50, gen(0)), ds.sample(50, gen(0)), rtol=0, atol=0)


def test_empirical_jitter_is_gaussian_with_that_std():
    pts = np.array([[0.0, 0.0], [100.0, 0.0]], np.float32)
    ds = EmpiricalDataset(pts, jitter=0.5)
    x = ds.sample(20_000, gen(1)).double()
    nearest = torch.where(x[:, :1] < 50, 0.0, 100.0)
    resid = torch.cat([x[:, :1] - nearest, x[:, 1:]], 1)
    assert resid.mean(0).abs().max() < STD_ERRORS * 0.5 / np.sqrt(20_000)
    # std of a sample std of n normals ~ std / sqrt(2n); 5 of those.
    assert resid.std(0).sub(0.5).abs().max() < STD_ERRORS * 0.5 / np.sqrt(2 * 20_000)


def test_from_brush_jitters_by_half_the_radius_and_accepts_tensors():
    ds = from_brush(torch.tensor([[0.0, 1.0], [2.0, 3.0], [1.0, 1.0]]), radius=0.4)
    assert isinstance(ds, EmpiricalDataset) and ds.jitter == pytest.approx(0.2)
    assert ds.points.dtype == np.float32 and ds.points.shape == (3, 2)
    with pytest.raises(DataError, match="1 point"):
        from_brush(np.zeros((1, 2)), radius=0.4)
    with pytest.raises(DataError, match="jitter"):
        EmpiricalDataset(np.zeros((3, 2)), jitter=-1.0)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("x", "message"),
    [
        ([[0.0, 1.0], [2.0, 3.0]], "expected a NumPy array of points, got list"),
        (np.array([[None, 1], [2, 3]], dtype=object), "data must be numeric, got dtype object"),
        (np.zeros((4, 2), complex), "data must be real numbers"),
        (np.zeros((5, 4)), "expected an N×2 or N×3 array, got shape (5, 4)"),
        (np.zeros(6), "expected an N×2 or N×3 array, got shape (6,)"),
        (np.zeros((1, 2)), "data has 1 point; need at least 2"),
        (np.zeros((0, 3)), "data has 0 points; need at least 2"),
        (np.array([[0, 1], [np.nan, 1], [2, np.inf], [3, 3], [-np.inf, 0]]), "data contains NaN or Inf in 3 rows"),
        (np.array([[0.0, 1e300], [1.0, 2.0]]), "beyond the float32 range in 1 row"),
    ],
)
def test_validate_points_rejects_with_one_clear_sentence(x, message):
    with pytest.raises(DataError) as info:
        validate_points(x)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_validate_points_returns_float32_and_honours_options():
    out = validate_points(np.arange(6, dtype=np.int64).reshape(3, 2))
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert validate_points(np.zeros((2, 7)), dims=None).shape == (2, 7)
    assert validate_points(np.zeros((1, 3)), min_points=1).shape == (1, 3)
    with pytest.raises(DataError, match="N×2 array"):
        validate_points(np.zeros((3, 3)), dims=(2,))


# --------------------------------------------------------------------------- load_dataset


def test_load_dataset_preset_and_file(tmp_path):
    ds = load_dataset("8gaussians", n_points=300, seed=1)
    assert ds.gmm is not None and ds.points.shape == (300, 2)
    np.testing.assert_array_equal(ds.points, make_preset("8gaussians", 300, 1).points)

    pts = anisotropic_cloud(3, n=40)
    np.save(tmp_path / "cloud.npy", pts)
    ds = load_dataset(str(tmp_path / "cloud.npy"))
    assert isinstance(ds, EmpiricalDataset) and ds.name == "cloud" and ds.gmm is None
    np.testing.assert_array_equal(ds.points, pts)


def test_load_dataset_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="neither a preset") as info:
        load_dataset("8gausians")
    assert "8gaussians" in str(info.value)
    with pytest.raises(DataError, match="file not found"):
        load_dataset(str(tmp_path / "missing.csv"))

"""Labelled data: files with a label column, labelled presets, bad labels, and labels that survive
sessions, run directories and 2D -> 3D lifting; the labelled mixture's exact class scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgm_core.datasets import MAX_CLASSES, PRESETS, class_index, load_dataset, make_preset, validate_labels
from sgm_core.errors import DataError, SessionError
from sgm_core.gmm import GaussianMixture
from sgm_core.io import load_labelled_points, load_points
from sgm_core.lift3d import extrude, lift_labels, lift_sources, revolve

LABELLED_PRESETS = [name for name, spec in PRESETS.items() if spec.labelled is not None]


def test_at_least_the_three_labelled_presets_exist():
    assert {"8gaussians-labelled", "moons-labelled", "spirals-labelled"} <= set(LABELLED_PRESETS)


@pytest.mark.parametrize("name", LABELLED_PRESETS)
def test_labelled_preset_draws_the_same_points_as_its_plain_stream_with_classes(name):
    ds = make_preset(name, n_points=2000, seed=3)
    assert ds.labelled and ds.classes == ("0", "1")
    assert ds.labels.shape == (2000,) and set(np.unique(ds.labels)) == {0, 1}
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x, y = ds.sample_labelled(500, g1)
    assert torch.equal(x, ds.sample(500, g2))  # sample is the labelled sampler's x, same stream
    assert y.dtype == torch.int64 and set(y.unique().tolist()) == {0, 1}


def test_moons_labels_name_the_moon_and_8gaussians_labels_alternate_modes():
    moons = make_preset("moons-labelled", n_points=4000)
    upper, lower = moons.points[moons.labels == 0], moons.points[moons.labels == 1]
    assert upper[:, 1].mean() > 0.5 and lower[:, 1].mean() < -0.5  # the upper moon is above
    assert np.array_equal(make_preset("moons", n_points=300).points, make_preset("moons-labelled", n_points=300).points)
    ring = make_preset("8gaussians-labelled", n_points=4000)
    comp = ring.gmm.responsibilities(torch.from_numpy(ring.points)).argmax(1).numpy()
    assert np.array_equal(ring.labels, comp % 2)  # each point's class is its mode's


def test_csv_with_a_label_column_of_names_and_of_ints(tmp_path):
    f = tmp_path / "pts.csv"
    f.write_text("x,y,label\n0,0,cat\n1,1,dog\n2,2,cat\n3,3,bird\n")
    pts, labels, classes = load_labelled_points(f)
    assert pts.shape == (4, 2) and classes == ("cat", "dog", "bird") and labels.tolist() == [0, 1, 0, 2]
    assert load_points(f).shape == (4, 2)  # the label column is not a coordinate
    g = tmp_path / "pts3.csv"
    g.write_text("class,x,y,z\n7,0,0,0\n3,1,1,1\n7,2,2,2\n")
    pts, labels, classes = load_labelled_points(g)
    assert pts.shape == (3, 3) and classes == ("3", "7") and labels.tolist() == [1, 0, 1]
    ds = load_dataset(str(g))
    assert ds.labelled and ds.classes == ("3", "7")
    assert class_index(ds.classes, "7") == 1 and class_index(ds.classes, 3) == 0


def test_npz_points_and_labels(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, points=np.random.default_rng(0).normal(size=(10, 2)), labels=np.array(["a", "b"] * 5))
    pts, labels, classes = load_labelled_points(f)
    assert pts.shape == (10, 2) and classes == ("a", "b") and labels.tolist() == [0, 1] * 5
    g = tmp_path / "plain.npz"
    np.savez(g, points=np.zeros((3, 2)) + np.arange(3)[:, None])
    assert load_labelled_points(g)[1] is None


@pytest.mark.parametrize("rows, message", [
    ("0,0,a\n1,1,\n2,2,b\n", "missing in 1 row (row 2)"),
    ("0,0,a\n1,1\n2,2,b\n", "missing in 1 row (row 2)"),
    ("0,0,a\n1,1,a\n", "only one class"),
    ("0,0,1\n1,1,nan\n2,2,0\n", "NaN"),
    ("".join(f"{i},{i},{i}\n" for i in range(MAX_CLASSES + 1)), f"{MAX_CLASSES + 1} classes"),
])
def test_bad_labels_are_one_clear_sentence(tmp_path, rows, message):
    f = tmp_path / "bad.csv"
    f.write_text("x,y,label\n" + rows)
    with pytest.raises(DataError) as info:
        load_labelled_points(f)
    text = str(info.value)
    assert message in text and "bad.csv" in text and "\n" not in text


def test_npz_float_labels_with_nan_and_fractions_are_refused(tmp_path):
    for labels, message in ((np.array([0.0, np.nan, 1.0]), "NaN"), (np.array([0.0, 0.5, 1.0]), "fractions")):
        f = tmp_path / "bad.npz"
        np.savez(f, points=np.eye(3)[:, :2], labels=labels)
        with pytest.raises(DataError, match=message):
            load_labelled_points(f)
    assert validate_labels(np.array([2.0, 5.0, 2.0]), 3)[1] == ("2", "5")


@pytest.mark.parametrize("labels", [np.array([0, 2**63 + 5, 1], np.uint64), np.array([0.0, 1e300, 1.0]),
                                    np.array([0.0, -(2.0**64), 1.0])], ids=["uint64", "float-1e300", "float-minus-2^64"])
def test_labels_beyond_int64_are_refused_not_wrapped(tmp_path, labels):
    """uint64 2^63 + 5 used to wrap to the class '-9223372036854775803', and 1e300 cast with a
    RuntimeWarning to an undefined integer; both are now one sentence naming the row."""
    import warnings

    f = tmp_path / "big.npz"
    np.savez(f, points=np.eye(3)[:, :2], labels=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"labels must be whole numbers from -2\^63 to 2\^63 - 1 or names; "
                                            r"1 row \(row 2\) lie outside"):
            load_labelled_points(f)
    assert validate_labels(np.array([0, 2**63 - 1], np.uint64), 2)[1] == ("0", str(2**63 - 1))  # the edge is fine


def test_labels_survive_lifting():
    labels = np.array([0, 1, 1, 0])
    drawing = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    lifted = extrude(drawing, 1.0, layers=3)
    assert len(lift_labels(labels, 3)) == len(lifted)
    # copy-major rows: each lifted point keeps the label of the drawn point it came from
    tiled = lift_labels(labels, 3)
    assert np.array_equal(lifted[:, :2], np.tile(drawing, (3, 1)).astype(np.float32))
    assert np.array_equal(tiled, np.tile(labels, 3))
    assert len(revolve(drawing, "y", n_copies=5)) == len(lift_labels(labels, 5))


@pytest.mark.parametrize(("method", "copies"), [("extrude", 4), ("revolve-y", 7), ("revolve-x", 3)])
def test_each_lifted_point_keeps_the_label_of_the_point_it_came_from(method, copies):
    """A labelled dataset lifted with random depths or angles: the source index names the drawn
    point each row came from (its kept coordinates prove it), its label is that point's, and a
    random subsample (the dialog's cap) keeps the classes in proportion."""
    data = make_preset("moons-labelled", n_points=400)
    p, labels = data.points, data.labels
    rng = np.random.default_rng(3)
    if method == "extrude":
        lifted = extrude(p, 2.0, layers=copies, rng=rng)
    else:
        lifted = revolve(p, method[-1], n_copies=copies, rng=rng)
    src = lift_sources(len(p), copies)
    assert len(src) == len(lifted) and np.array_equal(lift_labels(labels, copies), labels[src])
    if method == "extrude":  # x and y are kept
        np.testing.assert_array_equal(lifted[:, :2], p[src].astype(np.float32))
    elif method == "revolve-y":  # the height and the distance to the axis are kept
        np.testing.assert_allclose(lifted[:, 1], p[src, 1], atol=1e-6)
        np.testing.assert_allclose(np.hypot(lifted[:, 0], lifted[:, 2]), np.abs(p[src, 0]), atol=1e-5)
    else:
        np.testing.assert_allclose(lifted[:, 0], p[src, 0], atol=1e-6)
        np.testing.assert_allclose(np.hypot(lifted[:, 1], lifted[:, 2]), np.abs(p[src, 1]), atol=1e-5)
    counts = np.bincount(labels, minlength=2)
    assert np.array_equal(np.bincount(lift_labels(labels, copies), minlength=2), copies * counts)
    keep = np.sort(rng.choice(len(lifted), len(lifted) // 3, replace=False))
    share = np.bincount(labels[src[keep]], minlength=2) / len(keep)
    assert np.abs(share - counts / counts.sum()).max() < 0.05  # a third of 1200-2800 rows: within 0.05


def test_labels_survive_a_session(tmp_path):
    from sgm_core.config import RunConfig, SamplerConfig
    from sgm_core.sessions import SessionState, load_session, save_session

    ds = make_preset("moons-labelled", n_points=50)
    path = save_session(tmp_path / "s.sgm", SessionState(points=ds.points, source="drawn", run=RunConfig(),
                                                         sampler=SamplerConfig(), labels=ds.labels,
                                                         classes=ds.classes))
    back = load_session(path)
    assert np.array_equal(back.labels, ds.labels) and back.classes == ds.classes
    plain = load_session(save_session(tmp_path / "p.sgm", SessionState(points=ds.points, source="drawn",
                                                                       run=RunConfig(), sampler=SamplerConfig())))
    assert plain.labels is None and plain.classes == ()


def test_a_session_whose_labels_do_not_fit_is_refused(tmp_path):
    import zipfile

    from sgm_core.config import RunConfig, SamplerConfig
    from sgm_core.sessions import SessionState, load_session, save_session

    ds = make_preset("moons-labelled", n_points=20)
    path = save_session(tmp_path / "s.sgm", SessionState(points=ds.points, source="drawn", run=RunConfig(),
                                                         sampler=SamplerConfig(), labels=ds.labels, classes=ds.classes))
    bad = tmp_path / "bad.sgm"
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(bad, "w") as out:
        for info in z.infolist():
            blob = z.read(info.filename)
            if info.filename == "labels.npy":
                import io
                buf = io.BytesIO()
                np.save(buf, np.full(20, 5, np.int64))
                blob = buf.getvalue()
            out.writestr(info.filename, blob)
    with pytest.raises(SessionError, match="outside its 2 classes"):
        load_session(bad)


def _labelled_mixture() -> GaussianMixture:
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, 1.5], [0.5, -1.0]], dtype=torch.float64)
    return GaussianMixture.isotropic(torch.tensor([0.1, 0.2, 0.3, 0.4]), means, torch.tensor([0.3, 0.5, 0.4, 0.6]),
                                     labels=torch.tensor([0, 1, 0, 1]))


@pytest.mark.parametrize("sigma", [0.0, 0.2, 1.0, 3.0])
def test_class_conditional_score_is_the_gradient_of_log_p_x_given_c(sigma):
    """p_sigma(x | c) = sum_{k in c} w_k N(x; mu_k, S_k + sigma^2) / p(c): its score by autograd
    of the density written out here, against `given_class(c).score`."""
    gmm = _labelled_mixture()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.5
    assert torch.allclose(gmm.class_weights(), torch.tensor([0.4, 0.6], dtype=torch.float64))
    for c in (0, 1):
        keep = gmm.labels == c
        xr = x.clone().requires_grad_(True)
        var = gmm.covs[keep][:, 0, 0] + sigma**2  # isotropic components
        diff2 = ((xr[:, None, :] - gmm.means[keep][None]) ** 2).sum(-1)
        dens = (gmm.weights[keep] / (2 * torch.pi * var) * torch.exp(-diff2 / (2 * var))).sum(1)
        (grad,) = torch.autograd.grad(torch.log(dens).sum(), xr)
        assert torch.allclose(gmm.given_class(c).score(x, sigma), grad, atol=1e-9)  # float64 round-off


def test_mixture_labels_follow_noise_and_standardisation():
    gmm = _labelled_mixture()
    assert torch.equal(gmm.perturbed(0.5).labels, gmm.labels)
    assert torch.equal(gmm.transformed(torch.tensor([0.2, 0.1]), 2.0).labels, gmm.labels)
    x, y = gmm.sample_labelled(4000, torch.Generator().manual_seed(0))
    assert torch.equal(x, gmm.sample(4000, torch.Generator().manual_seed(0)))
    assert abs(float((y == 1).double().mean()) - 0.6) < 0.03  # p(c = 1) = 0.6; 4000 draws: std 0.008

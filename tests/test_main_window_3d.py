"""The playground in 3D: 3D presets and files, the 3D view and its slice, Make 3D, no-GL fallback,
and every loss and sampler on 3D data.

`gl` tests draw with OpenGL and run only under Xvfb/xcb (pytest-xvfb starts it for
`python -m pytest`); the rest run on any platform, offscreen included.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import frame, open_window, small_config, wait
from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QGuiApplication, QImage

from app.lift_dialog import MAX_POINTS, normal_from_angles
from app.main_window import MainWindow
from app.mode3d import NO_GL_STATUS, TOOL_TIP_3D, data_extent, field_matches, slider_to_value
from app.views import plot3d as plot3d_module
from app.views.geometry import in_plane_axes, project_field, slab
from app.views.plot3d import NO_GL_MESSAGE, Plot3D, opengl_available
from app.workers import EngineSpec, EngineWorker
from sgm_core.config import SamplerConfig
from sgm_core.datasets import PRESETS, make_preset
from sgm_core.errors import ConfigError
from sgm_core.live import FieldGrid, FieldView, default_bounds
from sgm_core.losses import LOSSES
from sgm_core.samplers import SAMPLER_SPECS, SAMPLERS

NEAR_FACTOR = 0.5  # particles must end at least this much closer to the data than they started
NOT_BLANK = 0.02  # share of the 3D view's pixels that data, field and particles must change
PARTICLE_PIXELS = 300  # 300 particles of 5 px discs on the view: far more orange pixels than this
GEOM_ATOL = 1e-5  # float32 geometry of coordinates of size ~10
SMALL_DRAWING = 120  # points in the drawings lifted to 3D


pytestmark = pytest.mark.usefixtures("warm_torch")


@pytest.fixture
def window(qtbot):
    w = open_window(qtbot, data=None, size=(1200, 800))
    w.session.set_run_config(small_config())
    w.session.set_particles(n_particles=300)
    yield w
    w.close()


def choose_preset(qtbot, w: MainWindow, name: str) -> None:
    """As a user does: pick the preset in the Data panel's combo."""
    combo = w.data_panel.preset_combo
    combo.setCurrentIndex(combo.findData(name))
    combo.activated.emit(combo.currentIndex())
    wait(qtbot, lambda: w.session.data.name == name)


def nearest_distance(particles: np.ndarray, data: np.ndarray) -> float:
    """Mean distance from each particle to its nearest data point."""
    d2 = ((particles[:, None, :] - data[None, ::5, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.min(1)).mean())


def drawing(n: int = SMALL_DRAWING, seed: int = 0) -> np.ndarray:
    """A 2D drawing: a noisy arc in x > 0 (so a revolve about y has radius > 0)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1.2, 1.2, n)
    return np.stack([1.5 + np.cos(t), 2.0 * np.sin(t)], axis=1).astype(np.float32)


def needs_gl() -> None:
    if QGuiApplication.platformName() != "xcb" or not opengl_available():
        pytest.skip(f"needs OpenGL under Xvfb/xcb, platform is {QGuiApplication.platformName()!r}")


def rgb(plot: Plot3D) -> np.ndarray:
    img = plot.grab_image().convertToFormat(QImage.Format.Format_RGBA8888)
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.sizeInBytes()).reshape(h, stride)
    return buf[:, : w * 4].reshape(h, w, 4)[..., :3].astype(np.int32)


def orange(pixels: np.ndarray) -> int:
    """Pixels of the particle colour (see tests/test_plot3d.py)."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((r > 190) & (g > 85) & (g < 170) & (b < 120)).sum())


def pale_blue_rows(pixels: np.ndarray) -> float:
    """Mean image row of the slice plane's pale blue tint (see tests/test_plot3d.py)."""
    r, b = pixels[..., 0], pixels[..., 2]
    rows, _ = np.nonzero((b > 235) & (b - r > 8) & (r > 200))
    return float(rows.mean()) if rows.size else float("nan")


# --------------------------------------------------------------------------- pure helpers


def test_slice_projection_helpers():
    assert [in_plane_axes(a) for a in range(3)] == [(1, 2), (0, 2), (0, 1)]
    pos = np.array([[1.0, 2.0, 0.5], [3.0, 4.0, 0.5]], np.float32)
    vec = np.array([[0.1, 0.2, 9.0], [0.3, 0.4, 9.0]], np.float32)
    p2, v2 = project_field(pos, vec, 2)
    np.testing.assert_array_equal(p2, pos[:, :2])
    np.testing.assert_array_equal(v2, vec[:, :2])  # the normal component (9.0) is dropped
    pts = np.array([[0, 0, 0.0], [0, 1, 0.09], [2, 3, 0.2]], np.float32)
    np.testing.assert_array_equal(slab(pts, 2, 0.0, 0.1), [[0, 0], [0, 1]])
    assert data_extent(pts, 1) == (0.0, 3.0)
    assert slider_to_value(100, -1.0, 3.0) == pytest.approx(1.0)
    np.testing.assert_allclose(normal_from_angles(0, 0), (1, 0, 0), atol=1e-12)
    np.testing.assert_allclose(normal_from_angles(90, 0), (0, 1, 0), atol=1e-12)
    np.testing.assert_allclose(normal_from_angles(30, 90), (0, 0, 1), atol=1e-12)
    plane = FieldGrid(np.array([[0.0, 0.7, 0.0]] * 4, np.float32), np.zeros((4, 3), np.float32), (2, 1, 2))
    full = FieldGrid(np.zeros((8, 3), np.float32), np.zeros((8, 3), np.float32), (2, 2, 2))
    assert field_matches(plane, 1, 0.7) and not field_matches(plane, 1, 0.9) and not field_matches(plane, 2, 0.7)
    assert field_matches(full, None, 0.0) and not field_matches(plane, None, 0.0) and not field_matches(full, 1, 0.7)


# --------------------------------------------------------------------------- presets and files


def test_every_preset_is_selectable(window):
    combo = window.data_panel.preset_combo
    for name, spec in PRESETS.items():
        assert window.data_panel.preset_enabled(name), name
        if spec.dim == 3:
            assert "(3D)" in combo.itemText(combo.findData(name))


def test_3d_files_load_and_switch_the_view(qtbot, window, tmp_path: Path):
    from plyfile import PlyData, PlyElement

    pts = make_preset("torus", 400).points.astype(np.float32)
    vertex = np.array([tuple(p) for p in pts], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    files = {
        "ascii.ply": lambda p: PlyData([PlyElement.describe(vertex, "vertex")], text=True).write(str(p)),
        "binary.ply": lambda p: PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(p)),
        "cloud.xyz": lambda p: np.savetxt(p, pts, fmt="%.7g"),
        "cloud.npy": lambda p: np.save(p, pts),
        "cloud.csv": lambda p: np.savetxt(p, pts, delimiter=",", header="x,y,z", comments="", fmt="%.7g"),
    }
    for name, write in files.items():
        path = tmp_path / name
        write(path)
        window.open_file(path)
        wait(qtbot, lambda p=path: window.session.data.name == p.stem)
        assert window.session.points.shape == (400, 3), name
        np.testing.assert_allclose(window.session.points, pts, atol=1e-5)
        assert window.mode3d.is_3d and window.mode3d.stack.currentWidget() is window.mode3d.plot3d
        assert not window.banner.isVisible(), window.banner.text()
    choose_preset(qtbot, window, "moons")  # and back to 2D
    assert not window.mode3d.is_3d and window.mode3d.stack.currentWidget() is window.plot


# --------------------------------------------------------------------------- the 3D view (GL)


@pytest.mark.gl
def test_helix_shows_plot3d_trains_and_particles_approach(qtbot, window):
    needs_gl()
    choose_preset(qtbot, window, "helix")
    m = window.mode3d
    assert m.stack.currentWidget() is m.plot3d and m.plot3d.isVisible() and m.plot3d.gl_available
    assert not window.actions_["tool_brush"].isEnabled()
    assert window.actions_["tool_brush"].toolTip() == TOOL_TIP_3D
    qtbot.waitExposed(m.plot3d)

    cfg = small_config(steps=1000)  # a helix needs a deeper net than 2D toys: 64 x 3, batch 256 (~3 s)
    window.session.set_run_config(replace(cfg, model=replace(cfg.model, width=64, depth=3),
                                          train=replace(cfg.train, batch=256)))
    window.actions_["play"].trigger()
    window.actions_["train"].trigger()
    wait(qtbot, lambda: frame(window) is not None and frame(window).step >= 1000 and not window.worker_state.training)
    trained = frame(window)
    assert trained.dim == 3 and trained.field is not None and trained.field.shape == (10, 10, 10)
    assert trained.losses[-100:].mean() < trained.losses[:20].mean()  # NCSN's weighted loss has a high floor
    assert window.fps > 0

    # the rendered frame is not blank: each layer alone changes a visible share of the view
    s = window.session
    s.set_view(data=False, field=False, particles=False)
    empty = rgb(m.plot3d)
    s.set_view(data=True, field=True)
    full = rgb(m.plot3d)
    s.set_view(data=False, field=False, particles=True)
    dots = rgb(m.plot3d)
    assert (np.abs(full - empty).sum(axis=2) > 60).mean() > NOT_BLANK
    assert orange(dots) > orange(empty) + PARTICLE_PIXELS
    s.set_view(data=True, field=True)

    # particles follow the trained score from the prior to the helix (the whole annealed schedule)
    if window.worker_state.playing:
        window.actions_["play"].trigger()
    s.set_particles(steps_per_frame=100)
    window.actions_["reset_particles"].trigger()
    wait(qtbot, lambda: frame(window).sampler_step == 0)
    data = s.points
    start = nearest_distance(frame(window).particles, data)
    window.actions_["play"].trigger()
    wait(qtbot, lambda: frame(window).sampler_step >= 1600)  # 16 levels × 100 steps
    if window.worker_state.playing:
        window.actions_["play"].trigger()
    end = nearest_distance(frame(window).particles, data)
    print(f"[3d] nearest-data distance {start:.3f} -> {end:.3f}")
    assert end < NEAR_FACTOR * start, (start, end)
    assert not window.banner.isVisible(), window.banner.text()


@pytest.mark.gl
def test_slice_plane_moves_with_the_slider(qtbot, window):
    needs_gl()
    choose_preset(qtbot, window, "helix")
    m, c = window.mode3d, window.mode3d.controls
    qtbot.waitExposed(m.plot3d)
    assert c.isVisible() and not c.slice_view.isVisible()
    c.axis_combo.setCurrentIndex(c.axis_combo.findData("z"))
    lo, hi = data_extent(window.session.points, 2)
    assert m.plot3d.slice() == (2, pytest.approx((lo + hi) / 2, abs=1e-6))
    assert c.slice_view.isVisible()

    rows = []
    for tick in (40, 160):
        c.position_slider.setValue(tick)
        value = slider_to_value(tick, lo, hi)
        assert m.plot3d.slice() == (2, pytest.approx(value, abs=1e-6))
        # the engine answers with the field on that plane; the slice view draws it face-on
        wait(qtbot, lambda v=value: frame(window) is not None and frame(window).field is not None
             and frame(window).field.shape == (32, 32, 1)
             and abs(float(frame(window).field.positions[0, 2]) - v) < 1e-4
             and c.slice_view.field_arrow_count() == 32 * 32)
        assert window.field_view().slice_axis == 2
        np.testing.assert_allclose(m.plot3d._field_item.pos[:, 2], value, atol=1e-5)  # arrows in the plane
        rows.append(pale_blue_rows(rgb(m.plot3d)))
    print(f"[3d] slice plane mean rows {rows}")
    assert rows[1] < rows[0] - 10, rows  # higher z: the tinted plane sits higher in the picture

    c.axis_combo.setCurrentIndex(c.axis_combo.findData("off"))
    assert m.plot3d.slice() is None and not c.slice_view.isVisible()
    wait(qtbot, lambda: frame(window).field is not None and frame(window).field.shape == (10, 10, 10))


@pytest.mark.gl
def test_spawn_tool_restarts_the_particles_where_clicked_in_3d(qtbot, window):
    """Spawn (S) stays enabled in 3D: a click on the slice plane restarts every particle in a
    blob around the clicked point on that plane."""
    needs_gl()
    from PySide6.QtCore import QPoint, Qt

    choose_preset(qtbot, window, "helix")
    m, c = window.mode3d, window.mode3d.controls
    qtbot.waitExposed(m.plot3d)
    assert window.actions_["tool_spawn"].isEnabled() and not window.actions_["tool_brush"].isEnabled()
    c.axis_combo.setCurrentIndex(c.axis_combo.findData("z"))
    _, plane = m.plot3d.slice()
    window.session.brush_radius = 0.05
    window.set_tool("spawn")
    view = m.plot3d._view
    pixel = QPoint(view.width() // 2 + 40, view.height() // 2 - 30)
    target = m.plot3d.pick(pixel.x(), pixel.y())
    assert target[2] == pytest.approx(plane)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=pixel)
    wait(qtbot, lambda: frame(window) is not None and frame(window).sampler_step == 0
         and np.abs(frame(window).particles.mean(0) - target).max() < 0.05)
    spread = frame(window).particles.std(0)
    assert len(frame(window).particles) == 300 and (spread < 0.1).all()  # a blob of radius 0.05, not the prior


@pytest.mark.gl
def test_orbit_changes_the_image_and_round_trips_through_view_settings(qtbot, window):
    needs_gl()
    choose_preset(qtbot, window, "gmm3d")
    plot = window.mode3d.plot3d
    qtbot.waitExposed(plot)
    wait(qtbot, lambda: frame(window) is not None and frame(window).dim == 3)
    before = rgb(plot)
    az = window.view_settings()["azimuth"]
    plot.orbit(60.0)
    assert window.view_settings()["azimuth"] == pytest.approx(az + 60.0)
    changed = (np.abs(rgb(plot) - before).sum(axis=2) > 60).mean()
    assert changed > 0.01, changed  # >1% of the pixels differ: the scene turned
    window.apply_view_settings({"azimuth": az, "elevation": 25.0})
    np.testing.assert_array_equal(rgb(plot), before)


# --------------------------------------------------------------------------- runs everywhere


def test_3d_field_view_follows_the_view_box_and_the_slice(qtbot, window):
    choose_preset(qtbot, window, "sphere")
    m = window.mode3d
    view = window.field_view()
    assert view.bounds == default_bounds(window.session.points)  # the 3D view's cubic data box
    assert len(view.bounds) == 3 and view.slice_axis is None and view.truth is False
    assert not window.view_panel.heatmap_combo.isEnabled()  # heatmaps are 2D only
    wait(qtbot, lambda: frame(window) is not None and frame(window).dim == 3 and frame(window).field is not None)
    assert frame(window).field.shape == (10, 10, 10)
    assert frame(window).heatmap is None and frame(window).error_map is None
    window.apply_view_settings({"slice_axis": "y", "slice_value": 0.25})
    view = window.field_view()
    assert (view.slice_axis, view.slice_value) == (1, pytest.approx(0.25))
    wait(qtbot, lambda: frame(window).field is not None and frame(window).field.shape == (32, 1, 32))
    settings = window.view_settings()
    assert settings["slice_axis"] == "y" and settings["slice_value"] == pytest.approx(0.25)
    with pytest.raises(ConfigError):
        window.apply_view_settings({"slice_axis": "w"})
    with pytest.raises(ConfigError):
        window.apply_view_settings({"elevation": float("nan")})
    assert window.view_settings() == settings  # a refused setting changes nothing
    assert m.is_3d


@pytest.mark.parametrize("method", ["plane", "extrude", "revolve"])
def test_make_3d_from_a_drawing_then_undo(qtbot, window, method):
    s = window.session
    art = drawing()
    assert s.add_points(art)
    wait(qtbot, lambda: window._engine_ok or window._rebuild_timer.isActive())
    assert window.actions_["make_3d"].isEnabled()
    dlg = window.mode3d.open_lift_dialog()
    assert dlg is not None and dlg.isVisible()
    dlg.set_method(method)
    if method == "plane":
        dlg.normal_combo.setCurrentIndex(dlg.normal_combo.findData("x"))
        dlg.offset_box.setValue(0.5)
        expected = SMALL_DRAWING
    elif method == "extrude":
        dlg.depth_box.setValue(2.0)
        dlg.layers_box.setValue(5)
        dlg.fill_check.setChecked(False)
        expected = SMALL_DRAWING * 5
    else:
        dlg.axis_combo.setCurrentIndex(dlg.axis_combo.findData("y"))
        dlg.copies_box.setValue(12)
        expected = SMALL_DRAWING * 12
    assert dlg.count() == expected and f"{expected:,} points in 3D" in dlg.preview_label.text()
    dlg.accept()

    pts = s.points
    assert pts.shape == (expected, 3) and np.isfinite(pts).all()
    assert window.mode3d.is_3d and window.mode3d.stack.currentWidget() is window.mode3d.plot3d
    assert not window.actions_["make_3d"].isEnabled() and not window.actions_["tool_eraser"].isEnabled()
    if method == "plane":  # the plane x = 0.5, the drawing's (x, y) on (y, z)... up to the in-plane basis
        np.testing.assert_allclose(pts[:, 0], 0.5, atol=GEOM_ATOL)
        d_in = np.linalg.norm(art[1:] - art[:-1], axis=1)
        d_out = np.linalg.norm(pts[1:] - pts[:-1], axis=1)
        np.testing.assert_allclose(d_out, d_in, atol=GEOM_ATOL)  # distances within the drawing are kept
    elif method == "extrude":
        np.testing.assert_allclose(pts[:, :2], np.tile(art, (5, 1)), atol=GEOM_ATOL)
        np.testing.assert_allclose(np.unique(pts[:, 2]), np.linspace(-1.0, 1.0, 5), atol=GEOM_ATOL)
    else:  # about y: the height and the distance to the axis are kept
        np.testing.assert_allclose(pts[:, 1], np.tile(art[:, 1], 12), atol=GEOM_ATOL)
        np.testing.assert_allclose(np.hypot(pts[:, 0], pts[:, 2]), np.tile(art[:, 0], 12), atol=GEOM_ATOL)
    window.actions_["train"].trigger()  # a custom 3D distribution trains with no file
    wait(qtbot, lambda: frame(window) is not None and frame(window).dim == 3 and frame(window).step > 0)

    window.actions_["undo"].trigger()
    np.testing.assert_array_equal(s.points, art)  # the 2D drawing is back
    assert not window.mode3d.is_3d and window.mode3d.stack.currentWidget() is window.plot
    assert window.actions_["tool_brush"].isEnabled() and window.actions_["tool_brush"].toolTip() != TOOL_TIP_3D
    window.actions_["redo"].trigger()
    assert s.points.shape == (expected, 3) and window.mode3d.is_3d


def test_make_3d_subsamples_huge_lifts_and_refuses_without_a_drawing(qtbot, window):
    assert window.mode3d.open_lift_dialog() is None  # empty drawing
    assert window.banner.isVisible() and "draw" in window.banner.text()
    window.session.add_points(drawing(1000))
    dlg = window.mode3d.open_lift_dialog()
    dlg.set_method("revolve")
    dlg.copies_box.setValue(200)
    assert dlg.count() == MAX_POINTS and f"of {200_000:,}" in dlg.preview_label.text()
    dlg.accept()
    assert window.session.points.shape == (MAX_POINTS, 3)
    assert window.mode3d.open_lift_dialog() is None  # already 3D


def test_without_opengl_3d_shows_the_fallback_and_2d_keeps_working(qtbot, window, monkeypatch):
    if opengl_available():  # under Xvfb: act as if the GL set-up failed (offscreen needs no patch)
        monkeypatch.setattr(plot3d_module, "opengl_available", lambda: False)
    choose_preset(qtbot, window, "torus")
    m = window.mode3d
    assert m.stack.currentWidget() is m.plot3d and not m.plot3d.gl_available
    label = m.plot3d.message_label
    assert label is not None and label.isVisible() and label.text() == NO_GL_MESSAGE
    assert m.gl_status.isVisible() and m.gl_status.text() == NO_GL_STATUS
    wait(qtbot, lambda: "OpenGL" in window.statusBar().currentMessage())
    window.session.set_run_config(small_config(steps=30))
    window.actions_["play"].trigger()
    window.actions_["train"].trigger()  # 3D still trains; the frames just are not drawn
    wait(qtbot, lambda: frame(window) is not None and frame(window).dim == 3 and frame(window).step >= 30)
    if window.worker_state.playing:
        window.actions_["play"].trigger()
    assert not window.banner.isVisible(), window.banner.text()

    choose_preset(qtbot, window, "moons")
    assert m.stack.currentWidget() is window.plot and window.plot.isVisible()
    assert not m.gl_status.isVisible() and window.actions_["tool_brush"].isEnabled()
    wait(qtbot, lambda: frame(window) is not None and frame(window).dim == 2)
    assert window.session.add_points(np.array([[0.0, 0.0], [0.5, 0.5]], np.float32))  # drawing works again
    assert window.session.points.shape[1] == 2


# --------------------------------------------------------------------------- every loss and sampler in 3D


class Frames(QObject):
    """Collects the worker's frames and failures in the GUI thread, acknowledging each frame."""

    def __init__(self, worker: EngineWorker) -> None:
        super().__init__()
        self.worker, self.last, self.failures = worker, None, []
        worker.progressed.connect(self.on_frame)
        worker.failed.connect(self.failures.append)

    @Slot(object)
    def on_frame(self, f) -> None:  # noqa: ANN001
        self.last = f
        self.worker.frame_consumed()


@pytest.fixture(scope="module")
def dataset3d():
    return make_preset("gmm3d", 1000)


@pytest.fixture
def worker3d(qtbot, dataset3d):
    w = EngineWorker()
    frames = Frames(w)
    w.start()
    w.set_view(FieldView(bounds=default_bounds(dataset3d.points), resolution=12, truth=False))
    yield w, frames
    w.shutdown()


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_trains_on_3d_data(qtbot, worker3d, dataset3d, loss):
    w, frames = worker3d
    cfg = small_config(steps=20, loss=loss)
    w.set_engine(EngineSpec(dataset3d, cfg, SamplerConfig(name=LOSSES[loss].default_sampler), 200))
    w.train()
    wait(qtbot, lambda: frames.last is not None and frames.last.step >= 20)
    f = frames.last
    assert f.dim == 3 and f.particles.shape == (200, 3) and np.isfinite(f.losses).all()
    assert f.field is not None and f.field.shape == (4, 4, 4) and np.isfinite(f.field.vectors).all()
    assert frames.failures == []


@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if not SAMPLER_SPECS[s].needs_density])  # mala: score nets refuse it
def test_every_sampler_runs_on_3d_data(qtbot, worker3d, dataset3d, sampler):
    w, frames = worker3d
    loss = "vp-sde" if sampler in ("sde", "pc", "ode") else "ncsn"  # a loss the sampler is made for
    w.set_engine(EngineSpec(dataset3d, small_config(steps=10, loss=loss), SamplerConfig(name=sampler), 200))
    w.train()
    w.play()
    wait(qtbot, lambda: frames.last is not None and frames.last.step >= 10 and frames.last.sampler_step >= 10)
    w.pause_particles()
    f = frames.last
    assert f.dim == 3 and f.particles.shape == (200, 3) and np.isfinite(f.particles).all()
    assert frames.failures == []



@pytest.mark.parametrize(("method", "copies"), [("extrude", 3), ("revolve", 24)])
def test_make_3d_keeps_each_points_class(qtbot, window, method, copies):
    """A labelled preset lifted with random depths (15,000 points) or angles (120,000, subsampled
    to the cap): every 3D point has the class of the drawn point its kept coordinates name, the
    classes stay in proportion, and the lifted data trains conditional on the same classes."""
    s = window.session
    choose_preset(qtbot, window, "moons-labelled")
    art, labels = s.points.copy(), s.labels().copy()
    dlg = window.mode3d.open_lift_dialog()
    dlg.set_method(method)
    if method == "extrude":
        dlg.layers_box.setValue(copies)
        key_2d, key_3d = art[:, :2], None  # x and y are kept exactly
    else:
        dlg.axis_combo.setCurrentIndex(dlg.axis_combo.findData("y"))
        dlg.copies_box.setValue(copies)
        key_2d = art[:, 1:2]  # about y the height is kept exactly (float32)
    dlg.accept()
    pts, lifted = s.points, s.labels()
    assert pts.shape == (min(len(art) * copies, MAX_POINTS), 3) and lifted is not None and len(lifted) == len(pts)
    key_3d = pts[:, :2] if method == "extrude" else pts[:, 1:2]
    source = {tuple(k): int(c) for k, c in zip(key_2d.tolist(), labels, strict=True)}
    assert len(source) == len(art)  # every drawn point has its own key
    assert [source[tuple(k)] for k in key_3d.tolist()] == lifted.tolist()
    share, drawn = np.bincount(lifted) / len(lifted), np.bincount(labels) / len(labels)
    assert np.abs(share - drawn).max() < 0.02, (share, drawn)  # all copies, or a random half of them
    assert s.classes() == make_preset("moons-labelled").classes
    assert "conditional on 2" in window.train_panel.classes_label.text()

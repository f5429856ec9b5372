"""The 3D view: pure arrow geometry (no window), the no-OpenGL fallback (a subprocess on the
offscreen platform), and pixels of what the GL scene draws (`gl`: only under Xvfb/xcb, which
pytest-xvfb starts for `python -m pytest`; the offscreen platform cannot host a QOpenGLWidget)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from app.views.plot3d import (  # noqa: E402  (after the skip)
    ARROW_COLOR_TOP,
    HEAD_ANGLE,
    HEAD_BARBS,
    Plot3D,
    arrow_lines_3d,
    click_ray,
    grid_spacing,
    opengl_available,
    pick_point,
    plane_quad,
    slice_axis_of,
)
from sgm_core.live import FieldGrid, Frame, default_bounds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VERTS = 2 * (1 + HEAD_BARBS)  # vertices per arrow: shaft + barbs, a pair each
GEOM_ATOL = 1e-5  # float32 vertices of float64 geometry at coordinates of size ~10
SIZE = (480, 360)  # GL test window: small keeps llvmpipe fast


# --------------------------------------------------------------------------- pure geometry


def _arrows(verts: np.ndarray) -> np.ndarray:
    return verts.reshape(-1, VERTS, 3).astype(np.float64)


def test_arrow_shaft_runs_from_position_along_vector():
    rng = np.random.default_rng(0)
    p, v = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    verts, cols = arrow_lines_3d(p, v, 0.5, normalized=False)
    assert verts.shape == (50 * VERTS, 3) and verts.dtype == np.float32
    assert cols.shape == (50 * VERTS, 4) and cols.dtype == np.float32
    a = _arrows(verts)
    np.testing.assert_allclose(a[:, 0], p, atol=GEOM_ATOL)
    np.testing.assert_allclose(a[:, 1], p + 0.5 * v, atol=GEOM_ATOL)
    # every barb starts at the tip
    np.testing.assert_allclose(a[:, 2::2], np.repeat(a[:, 1:2], HEAD_BARBS, axis=1), atol=GEOM_ATOL)


def test_normalized_arrows_have_equal_length_and_cap_applies():
    rng = np.random.default_rng(1)
    p, v = rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) * rng.uniform(0.1, 10, size=(40, 1))
    a = _arrows(arrow_lines_3d(p, v, 0.3, normalized=True)[0])
    np.testing.assert_allclose(np.linalg.norm(a[:, 1] - a[:, 0], axis=1), 0.3, atol=GEOM_ATOL)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    np.testing.assert_allclose((a[:, 1] - a[:, 0]) / 0.3, unit, atol=1e-4)
    capped = _arrows(arrow_lines_3d(p, v, 1.0, normalized=False, max_length=0.7)[0])
    shaft = np.linalg.norm(capped[:, 1] - capped[:, 0], axis=1)
    np.testing.assert_allclose(shaft, np.minimum(np.linalg.norm(v, axis=1), 0.7), atol=GEOM_ATOL)


@pytest.mark.parametrize("direction", [(1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 1, 1), (-2, 0.5, 3)])
def test_head_barbs_open_evenly_around_the_shaft(direction):
    head = 0.3
    v = np.asarray([direction], float)
    a = _arrows(arrow_lines_3d(np.zeros((1, 3)), v, 2.0, normalized=True, head=head)[0])[0]
    tip = a[1]
    unit = v[0] / np.linalg.norm(v[0])
    barbs = a[3::2] - tip  # (HEAD_BARBS, 3)
    np.testing.assert_allclose(np.linalg.norm(barbs, axis=1), head * 2.0, atol=GEOM_ATOL)
    # each barb points back at HEAD_ANGLE from the shaft
    cos = barbs @ -unit / np.linalg.norm(barbs, axis=1)
    np.testing.assert_allclose(cos, math.cos(HEAD_ANGLE), atol=1e-5)
    # their sideways parts are evenly spread around the shaft: they sum to zero
    side = barbs - np.outer(barbs @ unit, unit)
    np.testing.assert_allclose(side.sum(axis=0), 0.0, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slice_arrows_have_flat_heads_in_their_plane(axis):
    rng = np.random.default_rng(5)
    p, v = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    p[:, axis], v[:, axis] = 0.4, 0.0  # a slice: positions on the plane, in-plane vectors
    verts, cols = arrow_lines_3d(p, v, 0.5, normalized=True, plane_normal=np.eye(3)[axis])
    assert verts.shape == (30 * 6, 3) and cols.shape == (30 * 6, 4)  # shaft + 2 barbs
    np.testing.assert_allclose(verts[:, axis], 0.4, atol=GEOM_ATOL)
    a = verts.reshape(30, 6, 3).astype(np.float64)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    for barb in (a[:, 3] - a[:, 1], a[:, 5] - a[:, 1]):
        cos = (barb * -unit).sum(axis=1) / np.linalg.norm(barb, axis=1)
        np.testing.assert_allclose(cos, math.cos(HEAD_ANGLE), atol=1e-5)


def test_zero_and_nonfinite_vectors_collapse_to_their_position():
    p = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [4.0, 5.0, 6.0]])
    v = np.array([[0.0, 0.0, 0.0], [np.nan, 1.0, 0.0], [np.inf, 0.0, 0.0]])
    verts, cols = arrow_lines_3d(p, v, 1.0, normalized=True)
    assert np.isfinite(verts).all() and np.isfinite(cols).all()
    a = _arrows(verts)
    np.testing.assert_allclose(a[0], np.repeat(p[:1], VERTS, axis=0))
    np.testing.assert_allclose(a[2], np.repeat(p[2:], VERTS, axis=0))


def test_arrow_colours_follow_magnitude_up_to_the_reference():
    v = np.array([[0.1, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [50.0, 0, 0]])
    _, cols = arrow_lines_3d(np.zeros((4, 3)), v, 0.1, normalized=False, reference=2.0)
    per_arrow = cols.reshape(4, VERTS, 4)
    assert (per_arrow == per_arrow[:, :1]).all()  # one colour per arrow
    # viridis brightens with magnitude: green rises from purple towards the top colour
    green = per_arrow[:, 0, 1]
    assert green[0] < green[1] < green[2]
    np.testing.assert_allclose(per_arrow[3, 0], per_arrow[2, 0])  # above the reference: clipped
    assert ARROW_COLOR_TOP < 1.0


def test_grid_helpers():
    assert slice_axis_of((10, 10, 10)) is None
    assert slice_axis_of((32, 1, 32)) == 1
    assert slice_axis_of((32, 32)) is None
    bounds = ((-1.0, 1.0), (-2.0, 2.0), (0.0, 3.0))
    quad = plane_quad(0, 0.5, bounds)
    np.testing.assert_array_equal(quad[:, 0], 0.5)
    assert set(quad[:, 1]) == {-2.0, 2.0} and set(quad[:, 2]) == {0.0, 3.0}
    axes = [np.linspace(0, 1, 5), np.linspace(0, 2, 3), np.linspace(0, 4, 9)]
    pos = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    assert grid_spacing((5, 3, 9), pos) == pytest.approx(0.25)


# --------------------------------------------------------------------------- no OpenGL


def _view_matrix(azimuth: float, elevation: float, distance: float, center) -> np.ndarray:
    """pyqtgraph's GLViewWidget.viewMatrix (euler rotation), built with the same Qt calls."""
    from PySide6.QtGui import QMatrix4x4

    m = QMatrix4x4()
    m.translate(0.0, 0.0, -distance)
    m.rotate(elevation - 90, 1, 0, 0)
    m.rotate(azimuth + 90, 0, 0, -1)
    m.translate(-center[0], -center[1], -center[2])
    return np.array(m.data(), dtype=np.float64).reshape(4, 4).T


def _to_pixel(point, view: np.ndarray, fov: float, size) -> np.ndarray:
    """Project a world point to widget pixels with pyqtgraph's frustum (horizontal fov)."""
    eye = view @ np.append(point, 1.0)
    half = math.tan(math.radians(fov) / 2)
    w, h = size
    ndc_x = eye[0] / (-eye[2] * half)
    ndc_y = eye[1] / (-eye[2] * half * h / w)
    return np.array([(ndc_x + 1) * w / 2, (1 - ndc_y) * h / 2])


@pytest.mark.parametrize(("azimuth", "elevation"), [(-60.0, 25.0), (30.0, 70.0), (150.0, -20.0)])
def test_a_click_ray_projects_back_onto_its_pixel(azimuth, elevation):
    center, size, fov = np.array([0.5, -1.0, 2.0]), (640, 480), 60.0
    view = _view_matrix(azimuth, elevation, 8.0, center)
    origin, direction = click_ray(view, fov, size, (320, 240))
    np.testing.assert_allclose(pick_point(origin, direction, center), center, atol=1e-9)  # the middle: the centre
    for pixel in [(10, 20), (600, 400), (100, 450)]:
        origin, direction = click_ray(view, fov, size, pixel)
        hit = pick_point(origin, direction, center)
        np.testing.assert_allclose(_to_pixel(hit, view, fov, size), pixel, atol=1e-6)
        # at the centre's depth: on the plane through it facing the camera
        axis = (center - origin) / np.linalg.norm(center - origin)
        assert abs((hit - center) @ axis) < 1e-9
        on_plane = pick_point(origin, direction, center, (2, 1.5))  # the slice plane z = 1.5
        if (1.5 - origin[2]) / direction[2] > 0:  # the ray meets it in front of the camera
            assert on_plane[2] == pytest.approx(1.5)
            np.testing.assert_allclose(_to_pixel(on_plane, view, fov, size), pixel, atol=1e-6)
        else:  # behind the camera: the centre's depth instead
            np.testing.assert_allclose(on_plane, hit)


def test_a_slice_plane_behind_the_camera_or_edge_on_falls_back_to_the_centre_depth():
    center = np.zeros(3)
    view = _view_matrix(0.0, 0.0, 5.0, center)  # level camera: a z-plane is edge-on through the middle
    origin, direction = click_ray(view, 60.0, (400, 400), (200, 200))
    np.testing.assert_allclose(pick_point(origin, direction, center, (2, 0.0)), center, atol=1e-9)
    np.testing.assert_allclose(pick_point(origin, direction, center, (0, 50.0)), center, atol=1e-9)  # behind


def test_offscreen_platform_falls_back_to_a_label_without_crashing():
    script = textwrap.dedent(
        """
        import numpy as np
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from app.views.plot3d import NO_GL_MESSAGE, Plot3D, opengl_available
        from sgm_core.live import FieldGrid
        from types import SimpleNamespace
        w = Plot3D()
        w.resize(300, 200)
        w.show()
        app.processEvents()
        assert not opengl_available()
        assert w.gl_available is False
        assert w.message_label is not None and w.message_label.text() == NO_GL_MESSAGE
        pts = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
        w.set_points(pts)
        w.fit_to(pts)
        field = FieldGrid(pts[:8], pts[:8], (2, 2, 2))
        w.show_frame(SimpleNamespace(particles=pts, trails=None, field=field))
        w.set_layers(data=False, field=False, particles=False, trails=False, slice_plane=False)
        w.set_slice(2, 0.5)
        w.set_camera(30, 20, 5.0)
        w.orbit(10)
        assert len(w.field_bounds()) == 3
        assert not w.grab_image().isNull()
        print("FALLBACK-OK")
        """
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FALLBACK-OK" in result.stdout


# --------------------------------------------------------------------------- GL pixels


def _frame(particles: np.ndarray, trails: np.ndarray | None = None, field: FieldGrid | None = None,
           guide_class: int | None = None) -> Frame:
    return Frame(
        step=0,
        losses=np.zeros(0),
        loss_steps=np.zeros(0, int),
        particles=particles.astype(np.float32),
        trails=trails,
        sampler_step=0,
        sampler_sigma=1.0,
        sampler_done=False,
        field=field,
        true_field=None,
        field_sigma=0.1,
        heatmap=None,
        error_map=None,
        heatmap_bounds=None,
        score_error=None,
        reference_kind="empirical",
        steps_per_second=0.0,
        elapsed=0.0,
        eta=None,
        device="cpu",
        dim=3,
        guide_class=guide_class,
        guidance=0.0 if guide_class is None else 2.0,
    )


def _rgb(plot: Plot3D) -> np.ndarray:
    from PySide6.QtGui import QImage

    img = plot.grab_image().convertToFormat(QImage.Format.Format_RGBA8888)
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.sizeInBytes()).reshape(h, stride)
    return buf[:, : w * 4].reshape(h, w, 4)[..., :3].astype(np.int32)


def _orange(rgb: np.ndarray) -> int:
    """Pixels of the particle colour (orange over white: about (236, 122, 61)); the red x axis
    (217, 64, 64) and viridis arrows fail the green and blue bounds."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r > 190) & (g > 85) & (g < 170) & (b < 120)).sum())


def _pale_blue(rgb: np.ndarray) -> int:
    """Pixels of the slice plane's tint over white (about (233, 238, 250))."""
    r, b = rgb[..., 0], rgb[..., 2]
    return int(((b > 235) & (b - r > 8) & (r > 200)).sum())


@pytest.fixture
def plot(qtbot):
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.platformName() != "xcb" or not opengl_available():
        pytest.skip(f"needs OpenGL under Xvfb/xcb, platform is {QGuiApplication.platformName()!r}")
    widget = Plot3D()
    qtbot.addWidget(widget)
    widget.resize(*SIZE)
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.gl_available
    data = np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32)
    widget.set_points(data)
    widget.fit_to(data)
    return widget


def _particles(n: int = 500, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.8, size=(n, 3)).astype(np.float32)


@pytest.mark.gl
def test_particles_render_and_toggle_off(plot):
    blank = _orange(_rgb(plot))
    plot.show_frame(_frame(_particles()))
    drawn = _orange(_rgb(plot))
    # 500 particles of 5 px discs (~20 px each), minus overlaps: well over 1000 pixels
    assert drawn > blank + 1000, (blank, drawn)
    plot.set_layers(particles=False)
    assert _orange(_rgb(plot)) <= blank + 20
    plot.set_layers(particles=True)
    assert _orange(_rgb(plot)) > blank + 1000


def _near(rgb: np.ndarray, colour: tuple[int, int, int], tol: int = 30) -> int:
    """Pixels within `tol` of `colour` in every channel."""
    return int((np.abs(rgb - np.array(colour)).max(axis=-1) <= tol).sum())


@pytest.mark.gl
def test_particles_take_the_colour_of_the_class_they_are_asked_for(plot):
    """As in the 2D view: particles asked for class k are drawn in class_color(k) (over the white
    background at their alpha), the legend's swatch follows, and unguided frames turn them back."""
    from app.views import colors
    from sgm_core.palette import class_color, over_background, particle_color

    blue = over_background(particle_color(1))  # class 1: sky blue, about (88, 181, 234)
    plain = _rgb(plot)
    before = (_near(plain, blue), _orange(plain))
    plot.show_frame(_frame(_particles(), guide_class=1))
    guided = _rgb(plot)
    assert plot.particle_color() == (*class_color(1), particle_color(1)[3])
    assert _near(guided, blue) > before[0] + 1000, (before, _near(guided, blue))  # 500 discs of ~20 px
    assert _orange(guided) <= before[1] + 20  # none left in the plain particle colour
    assert plot.legend.entries[0].swatch == (particle_color(1),)
    plot.show_frame(_frame(_particles(), guide_class=None))
    unguided = _rgb(plot)
    assert _orange(unguided) > before[1] + 1000 and _near(unguided, blue) <= before[0] + 20
    assert plot.particle_color() == colors.PARTICLE


@pytest.mark.gl
def test_labelled_data_is_drawn_in_its_classes_pale_colours(plot):
    """As in the 2D view: each labelled point in its class's colour at DATA_CLASS_ALPHA (a lifted
    labelled drawing shows its classes); unlabelled data keeps the plain data colour."""
    from app.views.plot2d import DATA_CLASS_ALPHA
    from sgm_core.palette import class_color, over_background

    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(size=(300, 3)) * 0.5 + (-1.5, 0, 0), rng.normal(size=(300, 3)) * 0.5 + (1.5, 0, 0)])
    pale = [over_background((*class_color(k), DATA_CLASS_ALPHA)) for k in (0, 1)]
    plot.set_points(data.astype(np.float32))
    plain = _rgb(plot)
    plot.set_points(data.astype(np.float32), np.repeat([0, 1], 300))
    labelled = _rgb(plot)
    for k in (0, 1):  # single-layer dots of each class (overlaps are darker)
        assert _near(labelled, pale[k], 20) > 300 + _near(plain, pale[k], 20), k  # measured 689 and 959 vs 0 and 4
    plot.set_points(data.astype(np.float32), None)
    np.testing.assert_array_equal(_rgb(plot), plain)


def test_the_slice_view_draws_the_particles_in_the_asked_class_colour(qtbot):
    """The 3D mode's face-on slice: the particles near the plane take the class colour too."""
    from app.views import colors
    from app.views.slice_view import SliceView
    from sgm_core.palette import over_background, particle_color

    view = SliceView()
    qtbot.addWidget(view)
    view.resize(320, 320)
    view.show()
    qtbot.waitExposed(view)
    view.set_slice(2, 0.0, ((-3.0, 3.0),) * 3)
    flat = _particles(2000) * np.array([1.0, 1.0, 0.01], np.float32)  # all inside the slab around z = 0

    def pixels(guide_class: int | None) -> tuple[int, int]:
        view.show_frame(_frame(flat, guide_class=guide_class))
        qtbot.wait(50)
        img = view.grab().toImage().convertToFormat(view.grab().toImage().Format.Format_RGB32)
        rgb = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[..., 2::-1]
        rgb = rgb.astype(np.int32)
        return _near(rgb, over_background(particle_color(2))), _near(rgb, over_background(colors.PARTICLE))

    green, orange = pixels(2)  # class 2: bluish green (0, 158, 115)
    assert green > 500 and orange < 20, (green, orange)
    green, orange = pixels(None)
    assert orange > 500 and green < 20, (green, orange)
    # labelled data near the plane: in its classes' pale colours, as in the 2D view
    from app.views.plot2d import DATA_CLASS_ALPHA
    from sgm_core.palette import class_color

    view.show_frame(_frame(np.zeros((0, 3), np.float32)))
    view.set_points(flat, np.arange(len(flat)) % 2)
    qtbot.wait(50)
    img = view.grab().toImage().convertToFormat(view.grab().toImage().Format.Format_RGB32)
    rgb = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[..., 2::-1]
    for k in (0, 1):
        assert _near(rgb.astype(np.int32), over_background((*class_color(k), DATA_CLASS_ALPHA)), 20) > 200, k


@pytest.mark.gl
def test_orbit_turns_the_camera_and_changes_the_image(plot):
    plot.show_frame(_frame(_particles()))
    before = _rgb(plot)
    az = plot.camera()["azimuth"]
    plot.orbit(90.0)
    assert plot.camera()["azimuth"] == pytest.approx(az + 90.0)
    after = _rgb(plot)
    changed = (np.abs(after - before).sum(axis=2) > 60).mean()
    assert changed > 0.01, changed  # >1% of pixels differ: the scene turned
    plot.orbit(-90.0)
    np.testing.assert_array_equal(_rgb(plot), before)  # and turns back exactly


@pytest.mark.gl
def test_slice_plane_appears_where_set_and_follows_a_sliced_field(plot):
    plot.show_frame(_frame(_particles(10)))
    hidden = _pale_blue(_rgb(plot))
    plot.set_slice(2, 0.0)
    shown = _pale_blue(_rgb(plot))
    assert shown > hidden + 0.05 * SIZE[0] * SIZE[1], (hidden, shown)
    plot.set_layers(slice_plane=False)
    assert _pale_blue(_rgb(plot)) <= hidden + 50
    plot.set_layers(slice_plane=True)
    # a field evaluated on the plane y = 0.7 moves the plane there and draws arrows in it
    (x0, x1), _, (z0, z1) = plot.field_bounds()
    gx, gz = np.meshgrid(np.linspace(x0, x1, 8), np.linspace(z0, z1, 8), indexing="ij")
    pos = np.stack([gx.ravel(), np.full(64, 0.7), gz.ravel()], axis=1).astype(np.float32)
    field = FieldGrid(pos, -pos, (8, 1, 8))
    plot.show_frame(_frame(_particles(10), field=field))
    assert plot.slice() == (1, pytest.approx(0.7))
    verts = plot._field_item.pos
    np.testing.assert_allclose(verts[:, 1], 0.7, atol=1e-6)  # arrows lie in the plane


@pytest.mark.gl
def test_full_3d_field_and_trails_draw(plot):
    axes = [np.linspace(lo, hi, 5) for lo, hi in plot.field_bounds()]
    pos = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1).astype(np.float32)
    trails = np.cumsum(np.random.default_rng(2).normal(scale=0.1, size=(6, 100, 3)), axis=0).astype(np.float32)
    blank = _rgb(plot)
    plot.show_frame(_frame(trails[-1], trails=trails, field=FieldGrid(pos, -pos, (5, 5, 5))))
    assert plot._field_item.pos.shape == (125 * VERTS, 3)
    assert plot._trail_item.pos.shape == (5 * 100 * 2, 3)
    with_field = _rgb(plot)
    plot.set_layers(field=False)
    without = _rgb(plot)
    assert (np.abs(with_field - without).sum(axis=2) > 60).sum() > 500
    assert (np.abs(with_field - blank).sum(axis=2) > 60).sum() > 500


@pytest.mark.gl
def test_field_bounds_are_the_data_box_and_2d_points_sit_at_z0(plot):
    data = np.random.default_rng(3).normal(size=(300, 3)).astype(np.float32)
    plot.set_points(data)
    assert plot.field_bounds() == default_bounds(data)
    plot.set_points(np.ones((10, 2), np.float32) * [1.0, 2.0])
    assert plot._data_item.pos.shape == (10, 3) and (plot._data_item.pos[:, 2] == 0).all()


@pytest.mark.gl
def test_a_spawn_click_lands_under_the_cursor_and_a_drag_still_orbits(plot, qtbot):
    from PySide6.QtCore import QPoint, Qt

    hits = []
    plot.spawn_requested.connect(lambda x, y, z: hits.append(np.array([x, y, z])))
    view = plot._view
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 80))
    assert hits == []  # not the spawn tool: a click does nothing
    plot.set_spawn_tool(True)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 80))
    assert len(hits) == 1
    # The point projects back to the clicked pixel through the widget's own matrices.
    proj = view.projectionMatrix((0, 0, view.width(), view.height()), (0, 0, view.width(), view.height()))
    from PySide6.QtGui import QVector4D

    clip = (proj * view.viewMatrix()).map(QVector4D(*hits[0], 1.0))
    ndc = np.array([clip.x(), clip.y()]) / clip.w()
    np.testing.assert_allclose([(ndc[0] + 1) * view.width() / 2, (1 - ndc[1]) * view.height() / 2], [100, 80], atol=0.5)
    plot.set_slice(2, 0.75)  # with a slice plane shown, the click lands on it
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(240, 200))
    assert len(hits) == 2 and hits[1][2] == pytest.approx(0.75)
    azimuth = plot.camera()["azimuth"]
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(200, 180))
    qtbot.mouseMove(view, QPoint(260, 180))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(260, 180))
    assert len(hits) == 2  # a drag is not a click ...
    assert plot.camera()["azimuth"] != azimuth  # ... it orbits, as with any other tool


@pytest.mark.gl
def test_the_3d_legend_overlay_names_what_is_drawn_in_its_colours(plot):
    from app.views import colors

    plot.set_legend_names("flow −v_θ(x, t) (toward the data)", "Particles (ode)")
    plot.show_frame(_frame(_particles()))
    assert plot.legend.isVisible()
    assert [r.label for r in plot.legend.entries] == ["Particles (ode)", "Data"]  # no field drawn yet
    img = plot.legend.grab().toImage()
    rgb = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(img.width())] for y in range(img.height())])
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert ((r > 190) & (g > 50) & (g < 170) & (b < 120)).sum() >= 10  # the particle swatch's orange
    assert (np.abs(rgb - np.array(colors.DATA[:3])).max(axis=-1) < 40).sum() >= 10  # the data swatch
    plot.set_layers(particles=False)
    assert [r.label for r in plot.legend.entries] == ["Data"]
    # the overlay lets the mouse through to the view: orbiting still works under it
    from PySide6.QtCore import Qt
    assert plot.legend.testAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)


def _green(rgb: np.ndarray) -> int:
    """Pixels of the Source layer's green over white (palette SOURCE (40, 150, 90) at alpha 150:
    about (128, 193, 158)); the data's blue, the particles' orange and the grey grid fail it."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((g - r > 40) & (g - b > 20) & (g < 235)).sum())


@pytest.mark.gl
def test_the_source_layer_is_drawn_in_green_and_follows_the_data_layer(plot):
    """A flow's source points (app/source_layer.py) in the 3D view, as on the 2D canvas: palette
    SOURCE, hidden with the data layer and with None; faint (alpha 50) while the loss ignores it."""
    blank = _green(_rgb(plot))  # the green y axis
    source = np.random.default_rng(3).normal(scale=0.7, size=(1500, 3)).astype(np.float32) + [1.5, -1.0, 0.5]
    plot.set_source_points(source)
    drawn = _green(_rgb(plot))
    assert drawn > blank + 1500, (blank, drawn)  # 1,500 points of 3 px, minus overlaps
    assert plot.source_points().shape == (1500, 3)
    plot.set_layers(data=False)
    assert _green(_rgb(plot)) <= blank + 20
    plot.set_layers(data=True)
    plot.set_source_points(source, faint=True)
    faint = _green(_rgb(plot))
    assert faint < drawn - 500, (faint, drawn)  # alpha 50 over white is too pale to pass as the green
    plot.set_source_points(None)
    assert _green(_rgb(plot)) <= blank + 20 and len(plot.source_points()) == 0
    plot.set_source_points(source[:, :2])  # a 2D source sits in the z = 0 plane
    assert np.all(plot.source_points()[:, 2] == 0) and _green(_rgb(plot)) > blank + 500

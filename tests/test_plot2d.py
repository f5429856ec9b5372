"""Plot2D: arrow geometry without a window; mouse tools, layers and drawn pixels with one."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication

from app.views import colors
from app.views.geometry import (
    arrow_segments,
    disc_samples,
    grid_cell,
    magnitude_bins,
    robust_length_scale,
    splat_counts,
    upsample_bilinear,
    within_any,
)
from app.views.plot2d import Plot2D
from sgm_core.live import FieldGrid, Frame

ATOL = 1e-5  # float32 geometry
# One screen pixel in data units is ~0.01 here (a 4-unit view across ~400 px); clicks land on
# whole pixels, so a clicked point can be off by up to ~1 px.
PIXEL_TOL = 0.03


# --------------------------------------------------------------------------- geometry (no window)


def _arrows(segs: np.ndarray) -> np.ndarray:
    return segs.reshape(-1, 6, 2)


def test_arrow_segments_layout_starts_at_positions_and_points_along_vectors():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(50, 2))
    vec = rng.normal(size=(50, 2))
    segs = arrow_segments(pos, vec, 0.5, normalized=False)
    assert segs.shape == (50 * 6, 2) and segs.dtype == np.float32
    a = _arrows(segs)
    np.testing.assert_allclose(a[:, 0], pos, atol=ATOL)  # shaft starts at the grid position
    shaft = a[:, 1] - a[:, 0]
    np.testing.assert_allclose(shaft, 0.5 * vec, atol=ATOL)  # ... and is the scaled vector
    np.testing.assert_allclose(a[:, 2], a[:, 1], atol=ATOL)  # both barbs start at the tip
    np.testing.assert_allclose(a[:, 4], a[:, 1], atol=ATOL)


def test_arrow_heads_are_symmetric_barbs_pointing_back():
    segs = _arrows(arrow_segments(np.zeros((1, 2)), np.array([[2.0, 0.0]]), 1.0, False, head=0.25))
    tip = segs[0, 1]
    b1, b2 = segs[0, 3] - tip, segs[0, 5] - tip
    np.testing.assert_allclose(np.linalg.norm(b1), 0.25 * 2.0, atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(b2), 0.25 * 2.0, atol=ATOL)
    assert b1[0] < 0 and b2[0] < 0  # backwards from the tip
    np.testing.assert_allclose(b1[1], -b2[1], atol=ATOL)  # mirror images about the shaft


def test_normalized_arrows_have_equal_length():
    rng = np.random.default_rng(1)
    vec = rng.normal(size=(40, 2)) * rng.uniform(0.01, 100, size=(40, 1))
    a = _arrows(arrow_segments(rng.normal(size=(40, 2)), vec, 0.3, normalized=True))
    lengths = np.linalg.norm(a[:, 1] - a[:, 0], axis=1)
    np.testing.assert_allclose(lengths, 0.3, atol=ATOL)
    direction = (a[:, 1] - a[:, 0]) / lengths[:, None]
    np.testing.assert_allclose(direction, vec / np.linalg.norm(vec, axis=1, keepdims=True), atol=1e-4)


def test_zero_and_nonfinite_vectors_give_points_not_nan():
    pos = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    vec = np.array([[0.0, 0.0], [np.nan, 1.0], [np.inf, 0.0]])
    for normalized in (False, True):
        a = _arrows(arrow_segments(pos, vec, 1.0, normalized))
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, np.repeat(pos[:, None], 6, axis=1), atol=ATOL)


def test_max_length_caps_long_arrows_only():
    vec = np.array([[0.1, 0.0], [10.0, 0.0]])
    a = _arrows(arrow_segments(np.zeros((2, 2)), vec, 1.0, False, max_length=1.0))
    np.testing.assert_allclose(np.linalg.norm(a[:, 1] - a[:, 0], axis=1), [0.1, 1.0], atol=ATOL)


def test_robust_length_scale_maps_95th_percentile_to_fill_of_a_cell():
    mags = np.concatenate([np.linspace(0, 1, 95), np.full(5, 1e6)])  # a few huge outliers
    scale = robust_length_scale(mags, cell=0.2, quantile=95, fill=0.9)
    assert np.percentile(mags, 95) * scale == pytest.approx(0.18)
    assert robust_length_scale(np.zeros(10), cell=0.2) == 0.0  # an all-zero field: no division by 0


def test_grid_cell_and_bins():
    g = np.linspace(-1, 1, 5)
    gx, gy = np.meshgrid(g, np.linspace(0, 1, 3))
    assert grid_cell(np.stack([gx.ravel(), gy.ravel()], 1)) == pytest.approx(0.5)
    bins = magnitude_bins(np.array([0.0, 0.49, 0.51, 0.99, 5.0, np.nan]), 2, reference=1.0)
    assert bins.tolist() == [0, 0, 1, 1, 1, 0]


def test_disc_samples_and_within_any():
    rng = np.random.default_rng(0)
    pts = disc_samples(np.array([1.0, -1.0]), 0.5, 2000, rng)
    r = np.linalg.norm(pts - [1.0, -1.0], axis=1)
    assert pts.dtype == np.float32 and r.max() <= 0.5 + ATOL
    # area-uniform: half the points fall inside radius R / sqrt(2); 4 sigma of a binomial(2000, 1/2) is ~0.045
    assert abs((r < 0.5 / np.sqrt(2)).mean() - 0.5) < 0.045
    again = disc_samples(np.array([1.0, -1.0]), 0.5, 2000, np.random.default_rng(0))
    np.testing.assert_array_equal(pts, again)  # the seeded generator makes strokes reproducible
    mask = within_any(np.array([[0, 0], [1, 0], [3, 0]]), np.array([[0.1, 0], [2.5, 0]]), 0.6)
    assert mask.tolist() == [True, False, True]


def test_upsample_bilinear_keeps_corners_and_interpolates():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    u = upsample_bilinear(a, 4)
    assert u.shape == (9, 13)
    np.testing.assert_allclose(u[::4, ::4], a)  # original samples kept
    np.testing.assert_allclose(u[2, 2], (a[0, 0] + a[0, 1] + a[1, 0] + a[1, 1]) / 4)


def test_splat_counts_bins_points_by_cell_and_drops_the_outside_and_nonfinite():
    xy = np.array([[0.1, 0.1], [0.2, 0.4], [0.9, 0.2], [0.6, 0.9], [1.5, 0.5], [np.nan, 0.5], [-0.1, 0.5]])
    counts = splat_counts(xy, ((0.0, 1.0), (0.0, 1.0)), (2, 2))  # [x, y]: x across, y up
    np.testing.assert_array_equal(counts, [[2, 0], [1, 1]])
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(10_000, 2))
    big = splat_counts(pts, ((-1.0, 1.0), (-1.0, 1.0)), (40, 30))
    ref, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=(40, 30), range=((-1, 1), (-1, 1)))
    np.testing.assert_array_equal(big, ref)  # the same as numpy's histogram
    assert splat_counts(np.zeros((0, 2)), ((0, 1), (0, 1)), (3, 3)).sum() == 0


# --------------------------------------------------------------------------- frames and pixels


def field_grid(res: int = 16, lo: float = -2.0, hi: float = 2.0, sign: float = -1.0) -> FieldGrid:
    g = np.linspace(lo, hi, res, dtype=np.float32)
    gx, gy = np.meshgrid(g, g)
    pos = np.stack([gx.ravel(), gy.ravel()], axis=1)
    return FieldGrid(pos, (sign * pos).astype(np.float32), (res, res))


def make_frame(**overrides) -> Frame:
    fields = dict(
        step=10, losses=np.linspace(2, 1, 10), loss_steps=np.arange(1, 11), particles=np.zeros((0, 2), np.float32),
        trails=None, sampler_step=0, sampler_sigma=1.0, sampler_done=False, field=None, true_field=None,
        field_sigma=0.1, heatmap=None, error_map=None, heatmap_bounds=None, score_error=None,
        reference_kind="analytic", steps_per_second=0.0, elapsed=0.0, eta=None, device="cpu", dim=2,
    )
    fields.update(overrides)
    return Frame(**fields)


@pytest.fixture
def plot(qtbot) -> Plot2D:
    w = Plot2D(seed=0)
    w.set_legend_visible(False)  # these tests check each layer's pixels; tests/test_legend.py checks the legend
    qtbot.addWidget(w)
    w.resize(480, 480)
    w.show()
    qtbot.waitExposed(w)
    w.fit_to(np.array([[-2.0, -2.0], [2.0, 2.0]]), margin=0.0)
    QApplication.processEvents()
    return w


def to_viewport(w: Plot2D, x: float, y: float) -> QPoint:
    """The viewport pixel that shows data point (x, y)."""
    scene = w.getPlotItem().getViewBox().mapViewToScene(QPointF(x, y))
    return w.mapFromScene(scene)


def to_data(w: Plot2D, p: QPoint) -> np.ndarray:
    q = w.getPlotItem().getViewBox().mapSceneToView(w.mapToScene(p))
    return np.array([q.x(), q.y()])


def grab_rgb(w: Plot2D) -> np.ndarray:
    img = w.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, wd, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : wd * 3].reshape(h, wd, 3).astype(int)


def pixel_of(w: Plot2D, x: float, y: float) -> tuple[int, int]:
    """(row, col) in the grabbed image of data point (x, y)."""
    p = w.viewport().mapTo(w, to_viewport(w, x, y))
    return p.y(), p.x()


def particle_mask(rgb: np.ndarray) -> np.ndarray:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r > 190) & (g > 50) & (g < 170) & (b < 120) & (r - b > 110)  # orange-red, nothing else is


def patch(rgb: np.ndarray, rc: tuple[int, int], half: int = 4) -> np.ndarray:
    r, c = rc
    return rgb[r - half : r + half + 1, c - half : c + half + 1].reshape(-1, 3)


def test_particles_are_drawn_where_they_are_and_toggle_off(plot):
    rng = np.random.default_rng(0)
    parts = (np.array([1.0, 1.0]) + 0.05 * rng.standard_normal((300, 2))).astype(np.float32)
    plot.show_frame(make_frame(particles=parts))
    rgb = grab_rgb(plot)
    assert (rgb.reshape(-1, 3) < 200).any(axis=1).sum() > 500  # not blank: axes, ticks, particles
    hits = particle_mask(rgb)
    rows, cols = np.nonzero(hits)
    assert len(rows) > 100
    r0, c0 = pixel_of(plot, 1.0, 1.0)
    assert np.all(np.hypot(rows - r0, cols - c0) < 40)  # all orange pixels are at the particles
    r1, c1 = pixel_of(plot, -1.0, -1.0)
    assert not hits[r1 - 20 : r1 + 20, c1 - 20 : c1 + 20].any()

    plot.set_layers(particles=False)
    assert particle_mask(grab_rgb(plot)).sum() == 0
    plot.set_layers(particles=True)
    assert particle_mask(grab_rgb(plot)).sum() > 100


def test_many_particles_are_splatted_as_a_density_where_they_are_and_follow_pan(plot):
    from app.views.plot2d import SPLAT_ABOVE

    rng = np.random.default_rng(0)
    # The blob sits off the grid lines: where two cross (x = 1, y = -0.5) their grey darkened the
    # densest pixel below the particle-colour mask in one run, depending on sub-pixel alignment.
    n = SPLAT_ABOVE + 5_000
    parts = (np.array([1.13, -0.57]) + 0.1 * rng.standard_normal((n, 2))).astype(np.float32)
    plot.show_frame(make_frame(particles=parts))
    assert plot.splatting
    rgb = grab_rgb(plot)
    hits = particle_mask(rgb)
    rows, cols = np.nonzero(hits)
    assert len(rows) > 300  # a solid blob of particle colour
    r0, c0 = pixel_of(plot, 1.13, -0.57)
    assert np.all(np.hypot(rows - r0, cols - c0) < 60)  # ... only where the particles are
    centre = hits[r0 - 3 : r0 + 4, c0 - 3 : c0 + 4]
    assert centre.all(), (np.argwhere(~centre).tolist(), rgb[r0 - 3 : r0 + 4, c0 - 3 : c0 + 4][~centre].tolist(),
                          plot.size().toTuple(), plot.viewport().size().toTuple(), plot.field_bounds())
    r1, c1 = pixel_of(plot, -0.57, 1.13)  # where x and y swapped would put it
    assert not hits[r1 - 20 : r1 + 20, c1 - 20 : c1 + 20].any()

    plot.getPlotItem().getViewBox().setRange(xRange=(0.0, 4.0), yRange=(-2.0, 2.0), padding=0)  # pan + zoom
    QApplication.processEvents()
    hits = particle_mask(grab_rgb(plot))
    r0, c0 = pixel_of(plot, 1.13, -0.57)
    assert hits[r0 - 3 : r0 + 4, c0 - 3 : c0 + 4].all()  # re-binned over the new rectangle
    plot.set_layers(particles=False)
    assert particle_mask(grab_rgb(plot)).sum() == 0
    plot.set_layers(particles=True)
    plot.show_frame(make_frame(particles=parts[:300]))  # few again: symbols, no density image
    assert not plot.splatting
    hits = particle_mask(grab_rgb(plot))
    assert hits.sum() > 100 and not plot._splat_item.isVisible()


def test_learned_arrows_draw_pixels_and_toggle(plot):
    plot.set_layers(particles=False)
    empty = grab_rgb(plot)
    plot.show_frame(make_frame(field=field_grid()))
    with_field = grab_rgb(plot)
    changed = (np.abs(with_field - empty).max(axis=2) > 60).sum()
    assert changed > 500  # 256 arrows, a few pixels each at least
    plot.set_layers(field=False)
    assert (np.abs(grab_rgb(plot) - empty).max(axis=2) > 60).sum() == 0


def test_true_field_layer_is_grey_and_off_by_default(plot):
    empty = grab_rgb(plot)
    plot.show_frame(make_frame(true_field=field_grid()))
    assert (np.abs(grab_rgb(plot) - empty).max(axis=2) > 40).sum() == 0  # off until asked for
    plot.set_layers(true_field=True)
    rgb = grab_rgb(plot)
    diff = np.abs(rgb - empty).max(axis=2) > 40
    assert diff.sum() > 300
    px = rgb[diff]
    assert np.median(px.max(axis=1) - px.min(axis=1)) < 20  # grey: channels nearly equal


def test_field_is_kept_when_a_frame_has_none_and_cleared_on_request(plot):
    plot.set_layers(particles=False)
    empty = grab_rgb(plot)
    plot.show_frame(make_frame(field=field_grid()))
    drawn = grab_rgb(plot)
    plot.show_frame(make_frame(field=None))  # frames between field refreshes
    np.testing.assert_array_equal(grab_rgb(plot), drawn)
    plot.clear_field()
    np.testing.assert_array_equal(grab_rgb(plot), empty)


def test_normalized_arrows_change_the_drawing(plot):
    f = field_grid()
    plot.show_frame(make_frame(field=f))
    scaled = grab_rgb(plot)
    plot.set_normalized_arrows(True)
    assert (np.abs(grab_rgb(plot) - scaled).max(axis=2) > 60).sum() > 100


def _bump(n: int = 64) -> np.ndarray:
    g = np.linspace(-2, 2, n)
    gx, gy = np.meshgrid(g, g)  # rows = y, as the engine lays heatmaps out
    return -((gx - 1.0) ** 2 + (gy + 1.0) ** 2) / 0.3  # log-density peaked at (1, -1)


def test_heatmaps_show_the_chosen_map_in_the_right_place(plot):
    bump = _bump()
    err = 20 * np.exp(bump)  # high relative error at (1, -1) as well
    plot.set_layers(data=False, field=False, particles=False)
    plot.show_frame(make_frame(heatmap=bump, error_map=err, heatmap_bounds=((-2, 2), (-2, 2))))
    peak, far = pixel_of(plot, 1.1, -0.9), pixel_of(plot, -1.1, 1.1)
    off = grab_rgb(plot)
    assert np.median(patch(off, peak), axis=0).min() > 235  # heatmap "off" by default: white

    plot.set_layers(heatmap="density")
    rgb = grab_rgb(plot)
    r, g, b = np.median(patch(rgb, peak), axis=0)
    assert g - r > 40 and g > b  # the density map's green at the peak...
    assert np.median(patch(rgb, far), axis=0).min() > 235  # ...white where the density is low

    plot.set_layers(heatmap="error")
    r, g, b = np.median(patch(grab_rgb(plot), peak), axis=0)
    assert r - g > 40  # the error map's pink

    plot.set_layers(heatmap="off")
    assert np.median(patch(grab_rgb(plot), peak), axis=0).min() > 235
    with pytest.raises(ValueError, match="heatmap"):
        plot.set_layers(heatmap="bogus")


def test_trails_draw_lines_between_positions(plot):
    plot.set_layers(particles=False, field=False)
    xs = np.linspace(-1.5, 1.5, 10, dtype=np.float32)
    trails = np.stack([np.stack([xs, np.full(10, y, np.float32)], 1) for y in (-1.0, 1.0)], axis=1)  # (10, 2, 2)
    empty = grab_rgb(plot)
    plot.show_frame(make_frame(trails=trails))
    rgb = grab_rgb(plot)
    (r0, c0), (r1, c1) = pixel_of(plot, 0.0, -1.0), pixel_of(plot, 0.0, 0.0)
    assert (np.abs(patch(rgb, (r0, c0), 2) - patch(empty, (r0, c0), 2)).max(axis=1) > 10).any()
    assert (np.abs(patch(rgb, (r1, c1), 2) - patch(empty, (r1, c1), 2)).max() <= 10)  # trails not joined
    plot.show_frame(make_frame(trails=None))
    np.testing.assert_array_equal(grab_rgb(plot), empty)


def test_fit_to_and_field_bounds(plot):
    pts = np.array([[10.0, 20.0], [14.0, 21.0]])
    plot.fit_to(pts)
    QApplication.processEvents()
    (x0, x1), (y0, y1) = plot.field_bounds()
    assert x0 < 10 and x1 > 14 and y0 < 20 and y1 > 21
    a, b = to_viewport(plot, 10, 20), to_viewport(plot, 11, 21)
    assert abs(b.x() - a.x()) == pytest.approx(abs(b.y() - a.y()), abs=1)  # aspect 1:1


# --------------------------------------------------------------------------- mouse tools


def stroke(qtbot, w: Plot2D, path: list[tuple[float, float]]) -> None:
    vp = w.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=to_viewport(w, *path[0]))
    for p in path[1:]:
        qtbot.mouseMove(vp, pos=to_viewport(w, *p))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=to_viewport(w, *path[-1]))


def drag_with_buttons(w: Plot2D, path: list[tuple[float, float]]) -> None:
    """A left-button drag whose move events carry the button state, as a real mouse's do
    (QTest's mouseMove does not, so pyqtgraph would not see a pan)."""
    vp, left = w.viewport(), Qt.MouseButton.LeftButton

    def send(kind, p, button, buttons):
        pos = QPointF(to_viewport(w, *p))
        ev = QMouseEvent(kind, pos, QPointF(vp.mapToGlobal(pos)), button, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(vp, ev)

    send(QEvent.Type.MouseButtonPress, path[0], left, left)
    for p in path[1:]:
        send(QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, left)
    send(QEvent.Type.MouseButtonRelease, path[-1], left, Qt.MouseButton.NoButton)
    QApplication.processEvents()


LINE = [(x, 0.5) for x in np.linspace(-1.0, 1.0, 9)]


def test_brush_stroke_emits_once_with_points_near_the_path(qtbot, plot):
    plot.set_tool("brush")
    plot.set_brush(0.2, 5)
    got = []
    plot.stroke_finished.connect(got.append)
    stroke(qtbot, plot, LINE)
    assert len(got) == 1  # one stroke = one undo step
    pts = got[0]
    assert pts.dtype == np.float32 and pts.shape == (5 * len(LINE), 2)
    centres = np.array(LINE)
    dist = np.min(np.linalg.norm(pts[:, None, :] - centres[None], axis=2), axis=1)
    assert dist.max() <= 0.2 + PIXEL_TOL
    assert pts[:, 0].min() < -0.7 and pts[:, 0].max() > 0.7  # spread along the whole path


def test_brush_previews_during_the_drag_and_does_not_pan(qtbot, plot):
    plot.set_tool("brush")
    before = plot.field_bounds()
    vp = plot.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=to_viewport(plot, 0, 0))
    qtbot.mouseMove(vp, pos=to_viewport(plot, 0.5, 0))
    assert len(plot._preview_item.getData()[0]) == 2 * plot.brush_density  # shown before release
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=to_viewport(plot, 0.5, 0))
    assert len(plot._preview_item.getData()[0]) == 0
    drag_with_buttons(plot, LINE)
    assert plot.field_bounds() == before


def test_pan_tool_pans_and_emits_nothing(qtbot, plot):
    got = []
    plot.stroke_finished.connect(got.append)
    plot.erase_finished.connect(got.append)
    plot.spawn_requested.connect(lambda x, y: got.append((x, y)))
    before = plot.field_bounds()
    stroke(qtbot, plot, LINE)
    drag_with_buttons(plot, LINE)
    assert got == []
    assert plot.field_bounds()[0] != before[0]  # the view panned along x


def test_point_tool_adds_exactly_the_clicked_point(qtbot, plot):
    plot.set_tool("point")
    with qtbot.waitSignal(plot.stroke_finished, timeout=1000) as blocker:
        stroke(qtbot, plot, [(0.3, -0.7), (0.6, -0.2)])  # a drag still adds only the press point
    pts = blocker.args[0]
    assert pts.shape == (1, 2)
    np.testing.assert_allclose(pts[0], [0.3, -0.7], atol=PIXEL_TOL)


def test_eraser_hides_points_while_dragging_and_emits_centres(qtbot, plot):
    g = np.linspace(-1.5, 1.5, 11, dtype=np.float32)
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    plot.set_points(pts)
    plot.set_tool("eraser")
    plot.set_brush(0.4, 3)
    vp = plot.viewport()
    path = [(-0.9, 0.0), (0.0, 0.0), (0.9, 0.0)]
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=to_viewport(plot, *path[0]))
    for p in path[1:]:
        qtbot.mouseMove(vp, pos=to_viewport(plot, *p))
    shown = len(plot._data_item.getData()[0])
    expect = int((~within_any(pts, np.array(path), 0.4)).sum())
    assert abs(shown - expect) <= 2  # boundary points may flip with pixel rounding
    with qtbot.waitSignal(plot.erase_finished, timeout=1000) as blocker:
        qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=to_viewport(plot, *path[-1]))
    centres = blocker.args[0]
    np.testing.assert_allclose(centres, path, atol=PIXEL_TOL)
    assert len(plot._data_item.getData()[0]) == len(pts)  # restored: the session answers with set_points


def test_spawn_tool_emits_the_clicked_coordinates(qtbot, plot):
    plot.set_tool("spawn")
    with qtbot.waitSignal(plot.spawn_requested, timeout=1000) as blocker:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=to_viewport(plot, 1.2, -0.4))
    np.testing.assert_allclose(blocker.args, [1.2, -0.4], atol=PIXEL_TOL)


def test_tool_and_brush_validation(plot):
    with pytest.raises(ValueError, match="tool"):
        plot.set_tool("lasso")
    with pytest.raises(ValueError, match="radius"):
        plot.set_brush(0.0, 3)
    with pytest.raises(ValueError, match="density"):
        plot.set_brush(0.1, 0)
    plot.set_brush(0.3, 7)
    assert plot.brush_radius == 0.3 and plot.brush_density == 7


def test_wheel_zoom_works_in_drawing_tools(qtbot, plot):
    from PySide6.QtGui import QWheelEvent

    plot.set_tool("brush")
    (x0, x1), _ = plot.field_bounds()
    c = QPointF(to_viewport(plot, 0, 0))
    vp = plot.viewport()
    ev = QWheelEvent(c, QPointF(vp.mapToGlobal(c)), QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)
    QApplication.processEvents()
    (a0, a1), _ = plot.field_bounds()
    assert a1 - a0 < 0.95 * (x1 - x0)  # zoomed in


# --------------------------------------------------------------------------- fast scatter, timing


def test_particle_scatter_fast_path_matches_setdata(qtbot):
    from app.views.plot2d import ParticleScatter

    rng = np.random.default_rng(0)
    fast = ParticleScatter(size=5, pen=None, brush=pg.mkBrush(colors.PARTICLE))
    slow = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(colors.PARTICLE))
    for n in (100, 100, 37, 0, 5):
        xy = rng.normal(size=(n, 2)).astype(np.float32)
        fast.set_positions(xy)
        slow.setData(pos=xy)
        for field in ("x", "y", "size", "visible", "sourceRect"):
            np.testing.assert_array_equal(fast.data[field], slow.data[field])
        if n:
            assert fast.dataBounds(0) == slow.dataBounds(0)

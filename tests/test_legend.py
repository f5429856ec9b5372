"""The canvas legend: its rows follow what is drawn (pure), each swatch is painted in the colour
of the mark it names (pixels of the 2D canvas and of the 3D overlay), a heatmap gets a colour bar
with its quantity and the levels it is drawn at, and the names follow the window's loss."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from gui_helpers import open_window, wait
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QApplication
from test_plot2d import _bump, field_grid, grab_rgb, make_frame, particle_mask

from app.views import colors
from app.views.legend import HEATMAP_LABELS, SWATCH_W, legend_entries
from app.views.plot2d import Plot2D
from sgm_core.palette import over_background

NEAR = 40  # max channel distance (0-255) for "this pixel is that colour": antialiased edges blend


def _near(rgb: np.ndarray, colour, tol: int = NEAR) -> np.ndarray:
    return (np.abs(rgb - np.asarray(colour[:3])).max(axis=-1) <= tol)


def test_rows_follow_the_layers_and_name_what_the_net_outputs():
    layers = {"data": True, "field": True, "true_field": True, "particles": True, "trails": False,
              "heatmap": "off"}
    rows = legend_entries(layers, shows="flow −v_θ(x, t) (toward the data)", magnitude_top=2.5,
                          particles="Particles (ode)")
    labels = [r.label for r in rows]
    assert labels == ["Learned flow −v_θ(x, t) (toward the data)", "True flow −v(x, t) (toward the data)",
                      "Particles (ode)", "Data"]
    assert (rows[0].low, rows[0].high) == ("|·| 0", "2.5")  # the arrow colours' scale, as drawn
    assert rows[0].swatch == tuple(colors.bin_colors(8))  # the same bins the arrows use
    assert rows[2].swatch == (colors.PARTICLE,) and rows[3].swatch == (colors.DATA,)
    # nothing drawn, nothing listed; 3D lists no true field and no heatmap
    assert legend_entries({k: False for k in layers} | {"heatmap": "off"}) == []
    rows3 = legend_entries(layers | {"heatmap": "density"}, heat_levels=(-3.0, 0.0), dim=3)
    assert [r.label for r in rows3] == ["Learned score s_θ(x, σ)", "Particles", "Data"]
    heat = legend_entries(layers | {"field": False, "data": False, "particles": False, "true_field": False,
                                    "heatmap": "error"}, heat_levels=(0.0, 1.0))
    assert [(r.kind, r.label, r.low, r.high) for r in heat] == [("ramp", HEATMAP_LABELS["error"][0], "0", "1")]


@pytest.fixture
def plot(qtbot) -> Plot2D:
    w = Plot2D(seed=0)
    qtbot.addWidget(w)
    w.resize(480, 480)
    w.show()
    qtbot.waitExposed(w)
    w.fit_to(np.array([[-2.0, -2.0], [2.0, 2.0]]), margin=0.0)
    QApplication.processEvents()
    return w


def legend_box(plot: Plot2D) -> tuple[slice, slice]:
    """The legend's pixels in `grab_rgb(plot)`: its scene rectangle mapped to the widget."""
    rect: QRectF = plot.legend.sceneBoundingRect()
    view = plot.mapFromScene(rect).boundingRect()
    top_left = plot.viewport().mapTo(plot, view.topLeft())
    return (slice(top_left.y() + 2, top_left.y() + view.height() - 2),
            slice(top_left.x() + 2, top_left.x() + view.width() - 2))


def test_the_legend_shows_each_mark_in_its_colour_and_only_what_is_drawn(plot):
    rng = np.random.default_rng(0)
    parts = (np.array([1.2, -1.2]) + 0.05 * rng.standard_normal((200, 2))).astype(np.float32)  # bottom right
    plot.show_frame(make_frame(particles=parts, field=field_grid()))
    QApplication.processEvents()
    assert [r.label for r in plot.legend.entries] == ["Learned score s_θ(x, σ)", "Particles"]
    rgb = grab_rgb(plot)
    rows, cols = legend_box(plot)
    box = rgb[rows, cols]
    assert box.shape[0] > 15 and box.shape[1] > 60
    assert particle_mask(box).sum() >= 10  # the particle swatch: dots of the particles' orange
    dark, light = colors.bin_colors(8)[0], colors.bin_colors(8)[-1]
    assert _near(box, dark).sum() >= 5 and _near(box, light).sum() >= 5  # the arrows' colour ramp, both ends
    # outside the legend, orange is only at the particles (the legend sits top-left, they bottom-right)
    outside = particle_mask(rgb)
    outside[rows, cols] = False
    r, c = np.nonzero(outside)
    assert len(r) > 50 and r.min() > rgb.shape[0] / 2 and c.min() > rgb.shape[1] / 2

    height = plot.legend.boundingRect().height()
    plot.set_layers(particles=False)
    QApplication.processEvents()
    assert [r.label for r in plot.legend.entries] == ["Learned score s_θ(x, σ)"]
    assert plot.legend.boundingRect().height() < height
    assert particle_mask(grab_rgb(plot)).sum() == 0  # the swatch went with the particles
    plot.set_layers(field=False)
    assert not plot.legend.isVisible()  # nothing to explain: no empty box
    plot.set_legend_visible(False)
    plot.set_layers(field=True)
    assert not plot.legend.isVisible()


def test_a_heatmap_gets_a_colour_bar_with_its_quantity_and_drawn_levels(plot):
    bump = _bump()
    plot.set_layers(data=False, field=False, particles=False, heatmap="density")
    plot.show_frame(make_frame(heatmap=bump, heatmap_bounds=((-2, 2), (-2, 2))))
    QApplication.processEvents()
    (row,) = plot.legend.entries
    assert row.kind == "ramp" and "log-density" in row.label and "nats" in row.label
    lo, hi = plot._heat_item.getLevels()  # what the image is really drawn at
    assert (row.low, row.high) == (f"{lo:.2g}", "0" if abs(hi) <= 0.005 * (hi - lo) else f"{hi:.2g}")
    assert hi - lo == pytest.approx(10.0)  # DENSITY_RANGE nats of the bump's range are shown
    rgb = grab_rgb(plot)
    rows, cols = legend_box(plot)
    assert _near(rgb[rows, cols], colors.DENSITY[-1], 12).sum() >= 5  # the map's top colour, in the bar
    plot.set_layers(heatmap="curl")  # no curl image yet: no bar for it
    assert plot.legend.entries == [] and not plot.legend.isVisible()


def test_the_window_legend_names_the_loss_output_and_the_sampler(qtbot):
    w = open_window(qtbot)
    wait(qtbot, lambda: w.plot.legend.entries and w.plot.legend.entries[0].label.startswith("Learned score"))
    s = w.session
    s.set_run_config(replace(s.run_config, loss=replace(s.run_config.loss, name="fm")))
    wait(qtbot, lambda: w.plot.legend.entries[0].label.startswith("Learned flow −v_θ"))
    s.set_sampler_config(replace(s.sampler_config, name="ode"))
    wait(qtbot, lambda: any(r.label == "Particles (ode)" for r in w.plot.legend.entries))
    s.set_view(true_field=True)
    wait(qtbot, lambda: any(r.label.startswith("True flow −v(x, t)") for r in w.plot.legend.entries))


def _swatch_strip(plot: Plot2D, rgb: np.ndarray) -> np.ndarray:
    """The legend's swatch column (left of its labels: no text is drawn there)."""
    rows, cols = legend_box(plot)
    return rgb[rows, cols.start : cols.start + int(SWATCH_W)]


def source_mask(rgb: np.ndarray) -> np.ndarray:
    """The Source layer's green (palette.SOURCE over white, alone or overlapping); the data's blue is not."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (g - r > 40) & (g - b > 20)


def test_the_source_layer_gets_a_green_row_while_its_points_are_drawn(plot):
    rng = np.random.default_rng(1)
    data = (np.array([-1.2, 1.2]) + 0.05 * rng.standard_normal((100, 2))).astype(np.float32)
    source = (np.array([1.2, -1.2]) + 0.05 * rng.standard_normal((200, 2))).astype(np.float32)  # bottom right
    plot.set_points(data)
    plot.set_source_points(source)
    QApplication.processEvents()
    assert [r.label for r in plot.legend.entries] == ["Data", "Source: flows start here"]
    assert plot.legend.entries[1].swatch == (colors.SOURCE,)
    rgb = grab_rgb(plot)
    assert source_mask(_swatch_strip(plot, rgb)).sum() >= 10  # the source's dots, in its green
    rows, cols = legend_box(plot)
    outside = source_mask(rgb)
    outside[rows, cols] = False
    r, c = np.nonzero(outside)
    assert len(r) > 20 and r.min() > rgb.shape[0] / 2 and c.min() > rgb.shape[1] / 2  # elsewhere: the points only
    plot.set_source_points(source, faint=True)  # a loss that does not flow from it: faint, and said so
    assert [r.label for r in plot.legend.entries][1] == "Source (used by fm / ot-fm only)"
    plot.set_layers(data=False)  # the data layer hides the source too, and the rows go with them
    assert plot.legend.entries == []
    plot.set_layers(data=True)
    plot.set_source_points(None)
    QApplication.processEvents()
    assert [r.label for r in plot.legend.entries] == ["Data"]
    assert source_mask(grab_rgb(plot)).sum() == 0  # no green left: swatch and points went


def test_the_condition_line_gets_a_row_while_it_is_drawn(plot):
    plot.set_points(np.array([[-1.0, -1.0], [1.0, 1.0]], np.float32))
    QApplication.processEvents()
    line = over_background(colors.CONDITION_LINE)
    before = _near(_swatch_strip(plot, grab_rgb(plot)), line, 25).sum()
    plot.set_tool("condition")
    plot.set_condition((0, 1.5))  # x = 1.5: right of the legend
    QApplication.processEvents()
    rows = plot.legend.entries
    assert [r.label for r in rows] == ["Data", "Condition x = 1.5: particles sample p(y | x)"]
    assert rows[1].kind == "line" and rows[1].swatch == (colors.CONDITION_LINE,)
    after = _near(_swatch_strip(plot, grab_rgb(plot)), line, 25).sum()
    assert after >= before + 20  # a ~30 px line in the line's grey
    plot.set_condition((1, -0.25))  # Shift+drag holds y
    assert plot.legend.entries[1].label == "Condition y = -0.25: particles sample p(x | y)"
    plot.set_tool("none")  # leaving the tool removes the line and its row
    QApplication.processEvents()
    assert [r.label for r in plot.legend.entries] == ["Data"]
    assert _near(_swatch_strip(plot, grab_rgb(plot)), line, 25).sum() == before
    assert legend_entries({"data": True}, condition=(0, 1.0), dim=3)[-1].label == "Data"  # 3D: the slice plane, no line


def test_the_window_legend_follows_the_source_layer_and_its_loss(qtbot):
    from app.source_layer import SourceState

    w = open_window(qtbot)
    labels = lambda: [r.label for r in w.plot.legend.entries]  # noqa: E731
    assert not any(label.startswith("Source") for label in labels())  # N(0, I): nothing drawn, nothing listed
    pts = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    w.session.source.choose(SourceState("drawn", "drawing", pts))
    wait(qtbot, lambda: "Source (used by fm / ot-fm only)" in labels())  # the default loss does not flow from it
    s = w.session
    s.set_run_config(replace(s.run_config, loss=replace(s.run_config.loss, name="fm")))
    wait(qtbot, lambda: "Source: flows start here" in labels())
    w.session.undo_stack.undo()  # back to N(0, I): the row goes with the points
    wait(qtbot, lambda: not any(label.startswith("Source") for label in labels()))

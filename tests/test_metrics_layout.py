"""Issue 13: the Metrics dock is readable at the default size (1280×800): whole titles, tick labels
that never overlap, every mode-weight bar, the score-error axis over the whole run, steady widths."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from gui_helpers import open_window
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QImage, QPainter

from app.panels.metrics_panel import BAR_SAMPLE, BAR_TRUE, TABS
from app.views import colors
from app.views.axes import ThinAxis

SIZE = (1280, 800)
TARGET = 10_000  # the run's step count
N_MODES = 8
COLOUR_TOL = 40  # per channel: antialiasing and the grid's alpha tint bar pixels slightly
BASE = {"gen": 10**6, "reference_kind": "analytic", "sigmas": [0.01, 0.1, 0.5, 1.0], "conditional": True,
        "train_target": TARGET}  # gen: newer than any data the window itself loaded (older ones are stale)


@pytest.fixture
def window(qtbot):
    w = open_window(qtbot, data=None, size=SIZE)  # no engine metrics: the test feeds its own
    qtbot.waitExposed(w)
    # the window's own start-up sends to the engine once more (a debounced rebuild), and with no data
    # that forgets every metric shown: let it happen before the test feeds its own
    qtbot.waitUntil(lambda: not w._rebuild_timer.isActive(), timeout=10_000)
    qtbot.wait(50)
    yield w
    w.close()


def _feed(panel, samples: int = 6, last_step: int = TARGET // 2, modes: int | None = N_MODES) -> None:
    for step in range(0, last_step + 1, 250):
        errors = [1 / (1 + step / d) for d in (300, 500, 800, 1000)]
        panel.show_metrics({**BASE, "updated": ("curve",), "score_step": step, "score_errors": errors})
    weights = None if modes is None else list(np.full(modes, 1 / modes) + np.linspace(-0.03, 0.03, modes))
    for i in range(samples):
        panel.show_metrics({**BASE, "updated": ("samples",), "sw_ratio": 9287 / (1 + i**3), "mmd": -3e-4,
                            "energy": 0.02, "on_mode": 0.91, "mode_weights": weights,
                            "true_weights": None if modes is None else [1 / modes] * modes,
                            "log_likelihood": -52_471_987_883.0, "sampler_step": 400, "sampler_steps": 160})


def _on_background(rgba: colors.RGBA) -> tuple[float, ...]:
    """The colour a translucent brush shows over the plot's background."""
    alpha, background = rgba[3] / 255, pg.mkColor(colors.BACKGROUND).getRgb()[:3]
    return tuple(alpha * c + (1 - alpha) * b for c, b in zip(rgba[:3], background, strict=True))


def _label_rects(axis):  # noqa: ANN001, ANN202
    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect, text) for rect, _flags, text in specs[2]]


def _show_tab(qtbot, panel, index: int) -> None:
    panel.tabs.setCurrentIndex(index)
    qtbot.waitUntil(lambda: panel.tabs.currentWidget().isVisible())
    qtbot.wait(50)  # one layout pass of the plot inside (no signal says a pyqtgraph view resized)


def test_tab_titles_are_whole(qtbot, window):
    panel = window.metrics_panel
    _feed(panel)
    bar = panel.tabs.tabBar()
    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())] == list(TABS)
    metrics = bar.fontMetrics()
    for i in range(panel.tabs.count()):
        assert bar.tabRect(i).width() >= metrics.horizontalAdvance(panel.tabs.tabText(i)), panel.tabs.tabText(i)
        assert bar.tabRect(i).right() <= bar.width()  # no scroll arrow hides one
    legend = panel.sigma_legend
    assert legend.height() >= legend.heightForWidth(legend.width())  # the σ keys wrap, never cut


@pytest.mark.parametrize("plot", ["score_plot", "loss"])
def test_tick_labels_never_overlap(qtbot, window, plot):
    panel = window.metrics_panel
    _feed(panel)
    _show_tab(qtbot, panel, 0)
    widget = window.loss_view if plot == "loss" else panel.score_plot
    if plot == "loss":
        widget.getPlotItem().setXRange(0, 98_765, padding=0)  # wide numbers on a 380 px plot
    for name in ("bottom", "left"):
        axis = widget.getPlotItem().getAxis(name)
        assert isinstance(axis, ThinAxis)
        rects = _label_rects(axis)
        assert len(rects) >= 2, (name, rects)  # thinned, not emptied
        for i, (a, ta) in enumerate(rects):
            for b, tb in rects[i + 1:]:
                assert not a.intersects(b), f"{name}: {ta!r} overlaps {tb!r}"


def test_the_score_error_axis_spans_the_whole_run(qtbot, window):
    panel = window.metrics_panel
    _feed(panel, last_step=TARGET // 2)
    _show_tab(qtbot, panel, 0)
    (x0, x1), _ = panel.score_plot.getPlotItem().vb.viewRange()
    assert x0 <= 0 and x1 >= TARGET  # half the run trained: the axis still reaches its end


def test_mode_weights_shows_every_bar(qtbot, window):
    panel = window.metrics_panel
    _feed(panel)
    assert panel.tabs.isTabVisible(2)
    _show_tab(qtbot, panel, 2)
    plot = panel.bar_plot
    image = plot.grab().toImage()
    vb = plot.getPlotItem().vb
    for k in range(1, N_MODES + 1):
        for dx, colour in ((-0.2, BAR_SAMPLE), (0.2, BAR_TRUE)):
            point = plot.mapFromScene(vb.mapViewToScene(QPointF(k + dx, 0.01)))
            assert plot.rect().contains(point) and vb.sceneBoundingRect().contains(vb.mapViewToScene(
                QPointF(k + dx, 0.01))), (k, dx)
            dpr = image.devicePixelRatio()
            got = QColor(image.pixel(int(point.x() * dpr), int(point.y() * dpr)))
            assert all(abs(a - b) <= COLOUR_TOL for a, b in zip(got.getRgb()[:3], _on_background(colour), strict=True)), (k, got)


def test_dock_widths_hold_as_the_content_changes(qtbot, window):
    docks = window.docks
    qtbot.wait(50)
    before = {k: docks[k].width() for k in ("Loss", "Metrics", "Train", "Data")}
    panel = window.metrics_panel
    _feed(panel)  # bars appear, long numbers, a "—"
    qtbot.wait(50)
    assert {k: docks[k].width() for k in before} == before
    _feed(panel, modes=None)  # no mixture: the Mode weights tab goes
    panel.show_metrics({**BASE, "gen": 2, "updated": ("samples",), "sw_ratio": 123456.789, "mmd": 1.0,
                        "energy": 12345.6789, "on_mode": None, "log_likelihood": -1.0})
    qtbot.wait(50)
    assert not panel.tabs.isTabVisible(2)
    assert {k: docks[k].width() for k in before} == before


@pytest.mark.parametrize(("values", "expect"), [((1.05, 1.1, 1.2), ["1.05", "1.10", "1.15", "1.20"]),
                                                ((0.0012, 0.003, 0.008), ["0.002", "0.004", "0.006", "0.008"])])
def test_a_log_axis_under_a_decade_labels_its_values(qtbot, values, expect):
    """Steps vs quality's SW ratios from 1.05 to 1.2 on a log axis got no label at all: pyqtgraph
    labels decades, and its minor ticks read "%0.1g" ("1", "1")."""
    widget = pg.PlotWidget(axisItems={"left": ThinAxis("left"), "bottom": ThinAxis("bottom")})
    qtbot.addWidget(widget)
    widget.resize(600, 250)
    widget.setLogMode(x=True, y=True)
    widget.plot([1, 2, 4], list(values), symbol="o")
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(50)
    widget.grab()  # a paint: the axis sizes itself to its labels
    texts = [text for _rect, text in _label_rects(widget.getPlotItem().getAxis("left"))]
    assert sorted(texts, key=float) == expect
    low, high = (10.0 ** v for v in widget.getPlotItem().getAxis("left").range)
    assert all(low <= float(t) <= high for t in texts)  # each label reads the value where it stands


def test_a_log_axis_past_a_decade_labels_the_decade(qtbot):
    """NFE 1 to 16: pyqtgraph wrote 10 as "10¹", which the thinning did not know for a decade, so
    the 9 beside it won and no label stood past 9."""
    widget = pg.PlotWidget(axisItems={"left": ThinAxis("left"), "bottom": ThinAxis("bottom")})
    qtbot.addWidget(widget)
    widget.resize(600, 250)
    widget.setLogMode(x=True, y=True)
    widget.plot([1, 2, 4, 8, 16], [5, 6, 7, 8, 9], symbol="o")
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(50)
    widget.grab()
    texts = [text for _rect, text in _label_rects(widget.getPlotItem().getAxis("bottom"))]
    assert "1" in texts and "10" in texts, texts

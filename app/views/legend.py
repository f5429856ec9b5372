"""The canvas's legend: what each mark on the plot is, in the colours it is drawn in.

One list of `LegendEntry` (built by `legend_entries` from what is shown: a pure function, tested
without a window) and one painter, `paint_legend`, serve both views: `CanvasLegend` is a scene
item in the 2D plot (so pyqtgraph's PNG/SVG exporters draw it too) and `LegendOverlay` a
transparent widget over the 3D GL view. A heatmap gets a colour bar row: its quantity, its scale
and the values at the two ends of the colour ramp, as drawn (the plot's own levels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QWidget

from app.views import colors

SWATCH_W = 34.0  # px: a line, dot or colour-ramp swatch
SWATCH_H = 8.0  # px: height of a ramp
PAD = 5.0  # px inside the box
GAP = 6.0  # px between swatch and text
FONT_PT = 8.0
BOX: colors.RGBA = (255, 255, 255, 215)  # the legend's background: the plot stays visible under it
BORDER: colors.RGBA = (190, 190, 190, 255)


@dataclass(frozen=True)
class LegendEntry:
    """One row: a swatch ("dot", "line" or "ramp") in `swatch` colours, a label, and for a ramp the
    values at its two ends (`low`, `high`: text, in the quantity's units)."""

    kind: str
    swatch: tuple[colors.RGBA, ...]
    label: str
    low: str = ""
    high: str = ""


def _fmt(value: float, span: float = 0.0) -> str:
    """Two significant digits; a value within 0.5% of the span from 0 reads 0 (not -0.0017)."""
    if abs(value) <= 0.005 * abs(span):
        return "0"
    return f"{value:.2g}" if abs(value) < 1e4 else f"{value:.1e}"


HEATMAP_LABELS = {
    "density": ("Learned log-density −E_θ (nats)", colors.DENSITY),
    "error": ("Score error e/(1+e), e = |s_θ−s_ref|/(|s_ref|+1)", colors.ERROR),
    "curl": ("Curl of s_θ / typical |∂s/∂x| (red: anticlockwise)", colors.CURL),
}


def _ramp(anchors) -> tuple[colors.RGBA, ...]:  # noqa: ANN001 - (k, 3) float anchors
    return tuple((int(r), int(g), int(b), 255) for r, g, b in anchors)


def legend_entries(layers: dict, *, shows: str = "score s_θ(x, σ)", magnitude_top: float | None = None,
                   heat_levels: tuple[float, float] | None = None, noisy_data: bool = False,
                   particles: str = "Particles", dim: int = 2,
                   particle_color: colors.RGBA = colors.PARTICLE, source: str | None = None,
                   source_color: colors.RGBA = colors.SOURCE,
                   condition: tuple[int, float] | None = None) -> list[LegendEntry]:
    """The rows for what is on the canvas now: `layers` as `Plot2D.layers()` gives them, `shows`
    what the arrows are (sgm_core.param's `shows`: a score, a flow −v, a denoiser displacement),
    `magnitude_top` the |·| at which the arrow colours top out (None: no field drawn yet),
    `heat_levels` the heatmap's (low, high) as drawn, `source` the Source layer's row label while
    its points are drawn (in `source_color`), `condition` the Condition tool's line (axis, value)
    while it is drawn (2D only: in 3D the slice plane holds a coordinate). 3D has no true field and no heatmap."""
    rows: list[LegendEntry] = []
    if layers.get("field"):
        known = magnitude_top is not None
        rows.append(LegendEntry("ramp", tuple(colors.bin_colors(8)), f"Learned {shows}",
                                "|·| 0" if known else "|·| low", _fmt(magnitude_top) if known else "high"))
    if layers.get("true_field") and dim == 2:
        rows.append(LegendEntry("line", (colors.TRUE_FIELD,), f"True {shows.replace('_θ', '')}"))
    if layers.get("particles"):
        rows.append(LegendEntry("dot", (particle_color,), particles))
    if layers.get("trails"):
        rows.append(LegendEntry("line", (colors.TRAIL[:3] + (160,),), "Particle trails"))
    if layers.get("data"):
        rows.append(LegendEntry("dot", (colors.DATA,), "Data"))
    if source is not None:
        rows.append(LegendEntry("dot", (source_color,), source))
    if noisy_data and dim == 2:
        rows.append(LegendEntry("dot", (colors.NOISY_DATA[:3] + (200,),), "q_σ: data + σ·noise"))
    heat = layers.get("heatmap", "off")
    if heat in HEATMAP_LABELS and heat_levels is not None and dim == 2:
        label, anchors = HEATMAP_LABELS[heat]
        lo, hi = heat_levels
        rows.append(LegendEntry("ramp", _ramp(anchors), label, _fmt(lo, hi - lo), _fmt(hi, hi - lo)))
    if condition is not None and dim == 2:
        axis, value = condition
        fixed = "xyz"[axis]
        free = "y" if axis == 0 else "x"
        rows.append(LegendEntry("line", (colors.CONDITION_LINE,), f"Condition {fixed} = {value:.3g}: particles "
                                f"sample p({free} | {fixed})"))
    return rows


def legend_font(base: QFont | None = None) -> QFont:
    font = QFont(base) if base is not None else QFont()
    font.setPointSizeF(FONT_PT)
    return font


def _row_height(fm: QFontMetricsF) -> float:
    return max(fm.height(), SWATCH_H + 2) + 2


def _ends_width(entry: LegendEntry, fm: QFontMetricsF) -> float:
    return fm.horizontalAdvance(f"{entry.low} – {entry.high}") + GAP if entry.kind == "ramp" else 0.0


def legend_size(entries: Sequence[LegendEntry], font: QFont) -> QSizeF:
    """The box `paint_legend` fills for these rows (0 x 0 for none)."""
    if not entries:
        return QSizeF(0, 0)
    fm = QFontMetricsF(font)
    width = max(SWATCH_W + GAP + fm.horizontalAdvance(e.label) + _ends_width(e, fm) for e in entries)
    return QSizeF(width + 2 * PAD, len(entries) * _row_height(fm) + 2 * PAD - 2)


def paint_legend(p: QPainter, entries: Sequence[LegendEntry], font: QFont) -> None:
    """Draw the box and its rows at the painter's origin."""
    if not entries:
        return
    size = legend_size(entries, font)
    fm = QFontMetricsF(font)
    row_h = _row_height(fm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(QColor(*BORDER), 1.0))
    p.setBrush(QColor(*BOX))
    p.drawRoundedRect(QRectF(0.5, 0.5, size.width() - 1, size.height() - 1), 3, 3)
    p.setFont(font)
    text = QColor(*colors.FOREGROUND)
    for i, e in enumerate(entries):
        top = PAD + i * row_h
        mid = top + row_h / 2 - 1
        x0 = PAD
        if e.kind == "dot":
            p.setPen(Qt.PenStyle.NoPen)
            c = QColor(*e.swatch[0])
            c.setAlpha(max(c.alpha(), 200))  # a lone legend dot must read; the plot's density shows alpha
            p.setBrush(c)
            for k, dx in enumerate((6.0, 15.0, 24.0)):
                r = 2.6 if k != 1 else 3.0
                p.drawEllipse(QPointF(x0 + dx, mid + (1.5 if k == 1 else -1.0)), r, r)
        elif e.kind == "line":
            p.setPen(QPen(QColor(*e.swatch[0]), 1.6))
            p.drawLine(QPointF(x0 + 2, mid), QPointF(x0 + SWATCH_W - 2, mid))
            if e.label.startswith("True"):  # an arrow head: the true field is drawn as arrows
                p.drawLine(QPointF(x0 + SWATCH_W - 2, mid), QPointF(x0 + SWATCH_W - 7, mid - 3))
                p.drawLine(QPointF(x0 + SWATCH_W - 2, mid), QPointF(x0 + SWATCH_W - 7, mid + 3))
        else:
            rect = QRectF(x0, mid - SWATCH_H / 2, SWATCH_W, SWATCH_H)
            grad = QLinearGradient(rect.topLeft(), rect.topRight())
            n = len(e.swatch)
            for k, c in enumerate(e.swatch):
                grad.setColorAt(k / max(n - 1, 1), QColor(*c))
            p.setPen(QPen(QColor(*BORDER), 0.8))
            p.setBrush(grad)
            p.drawRect(rect)
        p.setPen(text)
        tx = x0 + SWATCH_W + GAP
        baseline = mid + (fm.ascent() - fm.descent()) / 2
        p.drawText(QPointF(tx, baseline), e.label)
        if e.kind == "ramp":
            p.setPen(QColor(110, 110, 110))
            p.drawText(QPointF(tx + fm.horizontalAdvance(e.label) + GAP, baseline), f"{e.low} – {e.high}")


class CanvasLegend(pg.GraphicsWidgetAnchor, pg.GraphicsWidget):
    """The legend as a scene item, anchored to a corner of a ViewBox (it does not move with the
    data). Part of the scene, so the figure exporters draw it."""

    def __init__(self) -> None:
        pg.GraphicsWidget.__init__(self)
        pg.GraphicsWidgetAnchor.__init__(self)
        self.entries: list[LegendEntry] = []
        self._font = legend_font()
        self.setZValue(1000)

    def set_entries(self, entries: Sequence[LegendEntry]) -> None:
        entries = list(entries)
        if entries == self.entries:
            return
        self.entries = entries
        size = legend_size(entries, self._font)
        self.prepareGeometryChange()
        self.setFixedWidth(size.width())
        self.setFixedHeight(size.height())
        self.setVisible(bool(entries))
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        size = legend_size(self.entries, self._font)
        return QRectF(0, 0, size.width(), size.height())

    def paint(self, p: QPainter, *_args: object) -> None:
        paint_legend(p, self.entries, self._font)


class LegendOverlay(QWidget):
    """The legend over another widget (the 3D GL view), in its top-left corner; mouse events go
    through to the view under it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.entries: list[LegendEntry] = []
        self._font = legend_font(self.font())
        self.move(8, 8)
        self.hide()

    def set_entries(self, entries: Sequence[LegendEntry]) -> None:
        self.entries = list(entries)
        size = legend_size(self.entries, self._font)
        self.resize(int(size.width()) + 1, int(size.height()) + 1)
        self.setVisible(bool(self.entries))
        self.raise_()
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        paint_legend(p, self.entries, self._font)
        p.end()

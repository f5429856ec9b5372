"""Axes whose tick labels never run into each other ("10002000" on a narrow plot, "0.90.8" on a
short log axis), and whose log axes label a range under a decade (pyqtgraph labels only the
decades and "%0.1g" minors: SW ratios from 1.05 to 1.2 got no label at all)."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtGui import QFontMetricsF

LABEL_GAP_PX = 12  # clear space between two neighbouring tick labels
NICE_STEPS = (1.0, 2.0, 5.0)  # major spacings are these times a power of ten


def nice_spacing(at_least: float) -> float:
    """The smallest 1, 2 or 5 x 10^k that is >= `at_least` (> 0)."""
    power = 10.0 ** math.floor(math.log10(at_least))
    return next((m * power for m in (*NICE_STEPS, 10.0) if m * power >= at_least * (1 - 1e-12)), 10 * power)


LABEL_GAP_Y_PX = 2  # ... and between two labels stacked on a vertical axis
LOG_LABEL_PX = 40  # a log axis under a decade: about one linear tick per this many pixels


def _is_decade(text: str) -> bool:
    """Whether a tick label reads a power of ten (a log axis' major tick)."""
    try:
        value = float(text.replace("−", "-"))
    except ValueError:
        return False
    return value > 0 and abs(math.log10(value) - round(math.log10(value))) < 1e-9


class ThinAxis(pg.AxisItem):
    """An axis whose tick labels never overlap. Horizontal linear axes space their labelled (major)
    ticks at least a label's width plus LABEL_GAP_PX apart; on every axis a label that would still
    touch one already placed (majors are placed first) is left out, its tick kept."""

    def __init__(self, orientation: str = "bottom", **kwargs) -> None:  # noqa: ANN003 - pg.AxisItem's
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)
        if orientation in ("bottom", "top"):
            self.setStyle(maxTextLevel=0)

    def generateDrawSpecs(self, p):  # noqa: ANN001, ANN201, N802 - pg override
        specs = super().generateDrawSpecs(p)
        if specs is None:
            return specs
        axis, ticks, texts = specs
        dx, dy = (LABEL_GAP_PX / 2, 0.0) if self.orientation in ("bottom", "top") else (0.0, LABEL_GAP_Y_PX / 2)
        kept: list = []
        for spec in sorted(texts, key=lambda t: not _is_decade(t[2])):  # decades first: 0.1 and 1 stay
            rect = spec[0].adjusted(-dx, -dy, dx, dy)
            if not any(rect.intersects(other[0].adjusted(-dx, -dy, dx, dy)) for other in kept):
                kept.append(spec)
        return axis, ticks, kept

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: ANN001, ANN201, N802, N803 - pg override
        """Under a decade shown: ticks at 1, 2 or 5 x 10^k steps of the value itself (log-placed)."""
        self._linear_step = None
        if not 0 < maxVal - minVal < 1 or size <= 0:
            return super().logTickValues(minVal, maxVal, size, stdTicks)
        lo, hi = 10.0 ** minVal, 10.0 ** maxVal
        step = nice_spacing((hi - lo) / max(2.0, size / LOG_LABEL_PX))
        values = [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1) if k > 0]
        self._linear_step = step
        return [(None, [math.log10(v) for v in values])]

    def logTickStrings(self, values, scale, spacing):  # noqa: ANN001, ANN201, N802 - pg override
        step = getattr(self, "_linear_step", None)
        if step is None:  # pyqtgraph's "10¹" is no decade to the thinning: 9 hid it; plain numbers where short
            return [f"{10.0 ** v * scale:g}" if 1e-3 <= 10.0 ** v * scale < 1e4 else text
                    for v, text in zip(values, super().logTickStrings(values, scale, spacing), strict=True)]
        places = max(0, math.ceil(-math.log10(step * scale) - 1e-9))
        return [f"{10.0 ** v * scale:.{places}f}" for v in values]

    def _label_width(self, values: list[float], spacing: float) -> float:
        font = self.style.get("tickFont") or self.font()
        metrics = QFontMetricsF(font)
        return max(metrics.horizontalAdvance(t) for t in self.tickStrings(values, self.scale, spacing))

    def tickSpacing(self, minVal: float, maxVal: float, size: float):  # noqa: ANN201, N802, N803 - pg override
        levels = super().tickSpacing(minVal, maxVal, size)
        if self.orientation not in ("bottom", "top") or not levels or size <= 0 or maxVal <= minVal \
                or self.logMode:
            return levels
        per_px = (maxVal - minVal) / size
        spacing = levels[0][0]
        for _ in range(8):  # wider spacings can shorten labels ("1.5k" -> "2k"): settle in a few turns
            need = (self._label_width([minVal, maxVal], spacing) + LABEL_GAP_PX) * per_px
            if spacing >= need:
                break
            spacing = nice_spacing(need)
        mantissa = round(spacing / 10 ** math.floor(math.log10(spacing)))
        minor = spacing / (4 if mantissa == 2 else 5)
        return [(spacing, 0.0), (minor, 0.0)]


def thin_axes() -> dict[str, pg.AxisItem]:
    """`axisItems` for a PlotWidget/PlotItem: ThinAxis at the bottom and on the left."""
    return {"bottom": ThinAxis("bottom"), "left": ThinAxis("left")}

"""The training-loss plot: the raw loss per step, and an EMA-smoothed line on top."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from app.views import colors
from app.views.axes import thin_axes
from app.views.plot2d import cache_axes, style_plot

SMOOTH_FRACTION = 1 / 15  # the EMA's span is this fraction of the points shown...
MIN_SPAN = 10  # ...but at least this many points


def ema(values: np.ndarray, span: float) -> np.ndarray:
    """Bias-corrected exponential moving average, decay 1 - 1/span (as Adam corrects its moments),
    so the first points are not pulled towards zero."""
    y = np.asarray(values, dtype=np.float64)
    beta = 1.0 - 1.0 / max(float(span), 1.0)
    out = np.empty_like(y)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(y.tolist()):  # a plain loop: exact, and ~0.3 ms for the 4000 points a frame holds
        acc = beta * acc + (1.0 - beta) * v
        norm = beta * norm + (1.0 - beta)
        out[i] = acc / norm
    return out


class LossView(pg.PlotWidget):
    """Loss vs step from `Frame.losses` / `Frame.loss_steps`; `set_log` for a log-y axis."""

    TITLE = "Training loss"

    def __init__(self, parent=None) -> None:
        super().__init__(parent, background=colors.BACKGROUND, axisItems=thin_axes())  # no "10002000" ticks
        pi = self.getPlotItem()
        pi.setTitle(self.TITLE, color=colors.FOREGROUND[:3])
        pi.setLabel("bottom", "step")
        pi.setLabel("left", "loss")
        style_plot(pi)
        cache_axes(pi)
        self._raw = pi.plot(pen=pg.mkPen(colors.LOSS, width=1), skipFiniteCheck=True)
        self._smooth = pi.plot(pen=pg.mkPen(colors.LOSS_EMA, width=2), skipFiniteCheck=True)
        self._smooth.setZValue(1)
        self._log = False
        self._log_active = False
        self._key: tuple | None = None
        self._steps = np.zeros(0)
        self._losses = np.zeros(0)

    @property
    def log_active(self) -> bool:
        """Whether the y axis is logarithmic now: asked for, and every loss shown is > 0."""
        return self._log_active

    def set_log(self, on: bool) -> None:
        """Log-y axis. Losses that can be negative (exact and sliced score matching) fall back to a
        linear axis, said in the title, rather than dropping points."""
        self._log = bool(on)
        self._redraw()

    def show_frame(self, frame) -> None:
        key = (frame.step, len(frame.losses))
        if key == self._key:  # the loss tail only changes when training steps
            return
        self._key = key
        steps = np.asarray(frame.loss_steps, dtype=np.float64)
        losses = np.asarray(frame.losses, dtype=np.float64)
        keep = np.isfinite(losses)
        self._steps, self._losses = steps[keep], losses[keep]
        self._redraw()

    def reset(self) -> None:
        """Forget the curve (a new run); not `clear`, which on a PlotWidget removes the items."""
        self._key = None
        self._steps, self._losses = np.zeros(0), np.zeros(0)
        self._redraw()

    def _redraw(self) -> None:
        x, y = self._steps, self._losses
        log = self._log and len(y) > 0 and bool((y > 0).all())
        if log != self._log_active:
            self._log_active = log
            self.getPlotItem().setLogMode(x=False, y=log)
        note = " (linear: some losses ≤ 0)" if self._log and not log and len(y) else ""
        self.getPlotItem().setTitle(self.TITLE + note, color=colors.FOREGROUND[:3])
        if len(y) == 0:
            self._raw.setData(x=np.zeros(0), y=np.zeros(0))
            self._smooth.setData(x=np.zeros(0), y=np.zeros(0))
            # an empty plot kept the last run's range: steps 0-800, and a log axis's log10 range
            # (2.2-2.6) read as linear losses once the mode fell back; axes of an empty run instead
            pi = self.getPlotItem()
            pi.setRange(xRange=(0.0, 1.0), yRange=(0.0, 1.0), padding=0.0)
            pi.enableAutoRange()  # the next run's points set the range again
            return
        # smooth log-losses in log mode so the EMA line follows the curve the eye sees
        smooth = np.exp(ema(np.log(y), self._span(len(y)))) if log else ema(y, self._span(len(y)))
        self._raw.setData(x=x, y=y)
        self._smooth.setData(x=x, y=smooth)

    @staticmethod
    def _span(n: int) -> float:
        return max(MIN_SPAN, n * SMOOTH_FRACTION)

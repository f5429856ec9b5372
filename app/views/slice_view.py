"""A small 2D view of the score field on the 3D view's slice plane.

The engine evaluates a sliced `FieldView` on the plane x[axis] = value; this view draws the
field's two in-plane components there as 2D arrows coloured by (in-plane) magnitude, the same
arrows `Plot3D` draws in its plane, plus the data and the particles within a thin slab around
the plane. Persistent pyqtgraph items refreshed with `setData`, as in `Plot2D`; the projection
is a pure function tested without a window.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QPen

from app.views import colors
from app.views.geometry import arrow_scale, arrow_segments, grid_cell, in_plane_axes, magnitude_bins, project_field, slab
from app.views.plot2d import DATA_CLASS_ALPHA, style_plot
from sgm_core.palette import CLASS_COLORS, class_color, particle_color

AXIS_NAMES = ("x", "y", "z")
N_BINS = 6  # arrow colour bins: one PlotCurveItem each
SLAB = 0.04  # points within this fraction of the box side of the plane are drawn (each side)
MAX_DRAWN = 5000  # particles / data drawn in the slab at most: a small view needs no more


def _pen(rgba: colors.RGBA, width: float = 1.0) -> QPen:
    pen = pg.mkPen(rgba, width=width)
    pen.setCosmetic(True)
    return pen


class SliceView(pg.PlotWidget):
    """The field on the current slice plane, seen face-on; `set_slice(None, ...)` empties it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, background=colors.BACKGROUND)
        self._axis: int | None = None
        self._value = 0.0
        self._bounds: tuple[tuple[float, float], ...] = ((-1.0, 1.0),) * 3
        self._points = np.zeros((0, 3), np.float32)
        self._labels: np.ndarray | None = None  # (N,) class index per point (labelled data)
        self._data_brushes = [pg.mkBrush(*class_color(k), DATA_CLASS_ALPHA) for k in range(len(CLASS_COLORS))]
        self._field = None
        self._normalized = False
        self._layers = {"data": True, "field": True, "particles": True}
        pi = self.getPlotItem()
        self._vb = pi.getViewBox()
        self._vb.setAspectLocked(True, ratio=1.0)
        self._vb.disableAutoRange()
        self._vb.setMouseEnabled(False, False)  # a fixed picture of the plane; the 3D view navigates
        style_plot(pi)
        pi.setMenuEnabled(False)
        self._data_item = pg.ScatterPlotItem(pxMode=True, size=3, pen=None, brush=pg.mkBrush(colors.DATA))
        self._field_items = [
            pg.PlotCurveItem(connect="pairs", pen=_pen(c, 1.2), antialias=True, skipFiniteCheck=True)
            for c in colors.bin_colors(N_BINS)
        ]
        self._particle_item = pg.ScatterPlotItem(pxMode=True, size=4, pen=None, brush=pg.mkBrush(colors.PARTICLE))
        self._particle_rgba: colors.RGBA = colors.PARTICLE
        for z, item in enumerate([self._data_item, *self._field_items, self._particle_item]):
            item.setZValue(z)
            pi.addItem(item)
        self.setMinimumHeight(160)

    # -- inputs -----------------------------------------------------------------------------
    def set_points(self, points: np.ndarray, labels: np.ndarray | None = None) -> None:
        """The 3D data; the part near the plane is drawn, in its classes' pale colours when labelled."""
        self._points = np.asarray(points, dtype=np.float32).reshape(-1, 3) if len(points) else np.zeros((0, 3), np.float32)
        self._labels = None if labels is None or len(labels) != len(self._points) else np.asarray(labels, np.int64)
        self._draw_data()

    def set_slice(self, axis: int | None, value: float, bounds: tuple[tuple[float, float], ...]) -> None:
        """Show the plane x[axis] = value of the box `bounds` (the 3D view's field box)."""
        if axis is not None:
            in_plane_axes(axis)  # validates
        moved = (axis, float(value)) != (self._axis, self._value)
        self._axis, self._value, self._bounds = axis, float(value), tuple(bounds)
        if moved:
            self.clear_field()  # arrows of another plane must not stay
        if axis is None:
            self._particle_item.setData(x=[], y=[])
            self._data_item.setData(x=[], y=[])
            return
        a, b = in_plane_axes(axis)
        pi = self.getPlotItem()
        pi.setLabel("bottom", AXIS_NAMES[a])
        pi.setLabel("left", AXIS_NAMES[b])
        (a0, a1), (b0, b1) = self._bounds[a], self._bounds[b]
        self._vb.setRange(QRectF(a0, b0, a1 - a0, b1 - b0), padding=0.02)
        self._draw_data()

    def slice(self) -> tuple[int, float] | None:
        return None if self._axis is None else (self._axis, self._value)

    def set_layers(self, *, data: bool | None = None, field: bool | None = None, particles: bool | None = None,
                   **_ignored: object) -> None:
        """Visibility toggles; the 3D view's other layer keywords are accepted and ignored."""
        for key, on in (("data", data), ("field", field), ("particles", particles)):
            if on is not None:
                self._layers[key] = bool(on)
        self._data_item.setVisible(self._layers["data"])
        for item in self._field_items:
            item.setVisible(self._layers["field"])
        self._particle_item.setVisible(self._layers["particles"])

    def set_normalized_arrows(self, on: bool) -> None:
        if bool(on) != self._normalized:
            self._normalized = bool(on)
            self._draw_field()

    def show_frame(self, frame) -> None:  # noqa: ANN001 - sgm_core.live.Frame
        """Particles near the plane; the field when the frame carries a new one sliced along
        this view's axis at its value (a full 3D grid, or another plane, is not drawn here)."""
        if self._axis is None or frame.dim != 3:
            return
        near = slab(frame.particles, self._axis, self._value, self._half_width())[:MAX_DRAWN]
        rgba = particle_color(getattr(frame, "guide_class", None))  # the class asked for, as in the 3D view
        if rgba != self._particle_rgba:
            self._particle_rgba = rgba
            self._particle_item.setBrush(pg.mkBrush(rgba))
        self._particle_item.setData(x=near[:, 0], y=near[:, 1])
        f = frame.field
        if f is not None and f is not self._field and self._is_this_plane(f):
            self._field = f
            self._draw_field()

    def clear_field(self) -> None:
        self._field = None
        for item in self._field_items:
            item.setData(x=np.zeros(0), y=np.zeros(0))

    def field_arrow_count(self) -> int:
        """Arrows drawn now (for tests): each arrow is 6 vertices over the colour bins."""
        return sum(len(item.getData()[0] if item.getData()[0] is not None else ()) for item in self._field_items) // 6

    # -- drawing ----------------------------------------------------------------------------
    def _half_width(self) -> float:
        lo, hi = self._bounds[self._axis] if self._axis is not None else (0.0, 1.0)
        return SLAB * max(hi - lo, 1e-9)

    def _is_this_plane(self, field) -> bool:  # noqa: ANN001 - FieldGrid
        shape = tuple(field.shape)
        if len(shape) != 3 or shape[self._axis] != 1 or not len(field.positions):
            return False
        return bool(np.isclose(field.positions[0, self._axis], self._value, rtol=1e-5, atol=1e-5))

    def _draw_data(self) -> None:
        if self._axis is None:
            return
        near = slab(self._points, self._axis, self._value, self._half_width())[:MAX_DRAWN]
        brushes = None
        if self._labels is not None:  # the same points slab() keeps, in the same order
            kept = np.abs(self._points[:, self._axis] - self._value) <= self._half_width()
            labels = self._labels[kept][:MAX_DRAWN]
            brushes = [self._data_brushes[int(c) % len(self._data_brushes)] for c in labels]
        self._data_item.setData(x=near[:, 0], y=near[:, 1], brush=brushes if brushes is not None else
                                pg.mkBrush(colors.DATA))

    def _draw_field(self) -> None:
        f = self._field
        if f is None or self._axis is None:
            return
        pos, vec = project_field(f.positions, f.vectors, self._axis)
        mag = np.hypot(vec[:, 0], vec[:, 1])
        scale, cap, top = arrow_scale(mag, grid_cell(pos), self._normalized)
        segs = arrow_segments(pos, vec, scale, self._normalized, max_length=cap).reshape(-1, 6, 2)
        bins = magnitude_bins(mag, N_BINS, top)
        for b, item in enumerate(self._field_items):
            sel = segs[bins == b].reshape(-1, 2)
            item.setData(x=sel[:, 0], y=sel[:, 1], connect="pairs")

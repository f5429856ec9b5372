"""The playground's main 2D view: data you can draw on, the live score field, and particles.

Every layer is one persistent pyqtgraph item created once and refreshed with `setData` from the
main window's frame timer (shared/FACTS.md): one `ImageItem` heatmap, one scatter for the data,
one `PlotCurveItem(connect="pairs")` per arrow colour bin, one curve for all trails, and one
scatter for all particles with a single brush. Above `SPLAT_ABOVE` particles the scatter gives way
to a splatted density: one `ImageItem` holding a 2D histogram of the particles over the visible
rectangle (painting 10^5 symbols costs ~100+ ms a frame, the histogram and its image a few).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem

from app.views import colors
from app.views.geometry import (
    arrow_scale,
    arrow_segments,
    disc_samples,
    grid_cell,
    magnitude_bins,
    splat_counts,
    upsample_bilinear,
    within_any,
)
from app.views.legend import CanvasLegend, legend_entries
from sgm_core.palette import CLASS_COLORS, class_color, particle_color

TOOLS = ("none", "brush", "point", "eraser", "spawn", "condition")
HEATMAPS = ("off", "density", "error", "curl")
N_BINS = 8  # arrow colour bins: one PlotCurveItem each
MAX_TRAILS = 1000  # trails of more particles cost painting time without showing more
DENSITY_RANGE = 10.0  # log-density heatmap shows the top this-many nats (e^10 dynamic range)
# relative score error e is shown as e / (1 + e): a fixed scale (comparable as training goes on)
# that never saturates; e = 1 (error as large as |s_ref| + 1) is the middle colour
ERROR_LEVELS = (0.0, 1.0)
HEATMAP_PIXELS = 256  # heatmaps are upsampled bilinearly to about this many pixels across
# curl heatmaps are relative (curl / typical |∂s/∂x|) and symmetric about 0; the scale follows the
# 99th percentile but never zooms below this, so an energy net's round-off (~1e-6) stays white
CURL_FLOOR = 0.02
# particles drawn as a density image above this count: a frame (show + paint, 800x600) cost as
# scatter / as splat 6.6 / 7.9 ms at 10k, 9.7 / 7.9 at 20k, 54 / 10 at 100k (benchmarks/particle_draw.py)
SPLAT_ABOVE = 15_000
SPLAT_CELL_PX = 2  # screen pixels per histogram cell: a lone particle still shows as a dot
SPLAT_MAX_CELLS = 600  # per axis, whatever the window size


DATA_CLASS_ALPHA = 110  # labelled data points: their class colour, pale, so the particles' full colour stands out


def _splat_lut(rgb: tuple[int, ...] = colors.PARTICLE[:3]) -> np.ndarray:
    """(256, 4): the particle colour throughout; transparent for an empty cell, then an opacity
    ramp over log(1 + count), so one particle is visible and a dense mode is solid."""
    lut = np.empty((256, 4), np.uint8)
    lut[:, :3] = rgb[:3]
    lut[0, 3] = 0
    lut[1:, 3] = np.round(np.linspace(90, 235, 255)).astype(np.uint8)
    return lut


SPLAT_LUT = _splat_lut()


def _pen(rgba: colors.RGBA, width: float = 1.0) -> QPen:
    pen = pg.mkPen(rgba, width=width)
    pen.setCosmetic(True)
    return pen


class ParticleScatter(pg.ScatterPlotItem):
    """A `ScatterPlotItem` whose points all share the item's own style, with a fast position update.

    `ScatterPlotItem.setData` looks up the symbol atlas once per point (~20 ms for 10k points);
    when every point uses the default style the atlas entry is the same for all, so
    `set_positions` looks it up once and only rewrites the coordinates (< 1 ms).
    """

    def set_positions(self, xy: np.ndarray) -> None:
        xy = np.asarray(xy)
        n = len(xy)
        if n != len(self.data):
            data = np.empty(n, dtype=self.data.dtype)  # object fields start as None: the default style
            data["size"] = -1
            data["visible"] = True
            data["hovered"] = False
            data["sourceRect"] = 0
            if n:
                self.updateSpots(data[:1])  # renders / finds the one shared symbol in the atlas
                data["sourceRect"][1:] = data["sourceRect"][0]
            self.data = data
        if n:
            self.data["x"] = xy[:, 0]
            self.data["y"] = xy[:, 1]
        self.prepareGeometryChange()
        self.informViewBoundsChanged()
        self.bounds = [None, None]
        self.invalidate()

    def set_brushes(self, brushes: list | None) -> None:
        """One brush per point (e.g. by class), or None: every point in the item's own brush."""
        if len(self.data) == 0:
            return
        if brushes is None and self.data["brush"][0] is None:
            return  # already all default: nothing to re-render
        self.data["brush"] = brushes if brushes is not None else None
        self.data["sourceRect"] = 0
        self.updateSpots(self.data)


def style_plot(plot_item: pg.PlotItem) -> pg.PlotItem:
    """The app's look for a plot: a faint grid, no auto-range button, axes in the foreground
    colour. Every plot (canvas, loss, slice, metrics, comparisons) wears it."""
    plot_item.showGrid(x=True, y=True, alpha=colors.GRID_ALPHA)
    plot_item.hideButtons()
    for name in ("left", "bottom"):
        axis = plot_item.getAxis(name)
        axis.setPen(pg.mkPen(colors.FOREGROUND))
        axis.setTextPen(pg.mkPen(colors.FOREGROUND))
    return plot_item


def cache_axes(plot_item: pg.PlotItem) -> None:
    """Cache each axis (ticks, labels and its grid lines) as a pixmap: it is then redrawn only when
    the view range changes, not on every frame. Replaying the tick text cost ~8 ms per axis per
    frame offscreen, the largest share of a frame (measured with cProfile)."""
    for name in ("left", "bottom", "right", "top"):
        plot_item.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


class Plot2D(pg.PlotWidget):
    """Data (editable with brush/point/eraser tools), learned and true score field, heatmap,
    Langevin particles and trails, on one aspect-locked light plot.

    Frames whose `field`, `true_field`, `heatmap` or `error_map` is None keep the last one drawn
    (the engine refreshes the field only when it is stale); `clear_field` removes them.
    """

    stroke_finished = Signal(object)  # (k, 2) float32: points a brush stroke / point click added
    erase_finished = Signal(object)  # (k, 2) float32: eraser centres; radius is `brush_radius`
    spawn_requested = Signal(float, float)  # a click in "spawn" mode, data coordinates
    condition_moved = Signal(int, float)  # "condition" mode: (axis held fixed, its value); the line x = v or y = v

    def __init__(self, parent=None, *, seed: int = 0) -> None:
        super().__init__(parent, background=colors.BACKGROUND)
        self.brush_radius = 0.25
        self.brush_density = 6
        self._rng = np.random.default_rng(seed)  # stroke sampling: reproducible per widget
        self._tool = "none"
        self._dragging = False
        self._stroke: list[np.ndarray] = []
        self._erase_centres: list[np.ndarray] = []
        self._points = np.zeros((0, 2), np.float32)
        self._labels: np.ndarray | None = None  # the data points' class indices (None: unlabelled)
        self._data_brushes = [pg.mkBrush(*class_color(i), DATA_CLASS_ALPHA) for i in range(len(CLASS_COLORS))]
        self._particle_rgba: tuple[int, ...] = colors.PARTICLE  # the asked-for class's colour while guided
        self._splat_lut = SPLAT_LUT
        self._erased = np.zeros(0, bool)
        self._edit_layer = "data"  # what brush, point and eraser edit: "data" or "source" (the Source layer)
        self._stroke_class: int | None = None  # the class a data stroke paints: its preview takes the colour
        self._source_points = np.zeros((0, 2), np.float32)
        self._source_faint = False  # the loss does not flow from the source: drawn faint
        self._layers = {"data": True, "field": True, "true_field": False, "particles": True, "trails": True}
        self._heatmap_mode = "off"
        self._normalized = False
        self._field = None
        self._true_field = None
        self._heat: dict[str, np.ndarray | None] = {"density": None, "error": None}
        self._heat_bounds = None
        self.splat_above = SPLAT_ABOVE  # more particles than this are drawn as a density image
        self._particles_xy = np.zeros((0, 2), np.float32)
        self._has_trails = False
        self._trails = None
        self._splatting = False

        pi = self.getPlotItem()
        self._vb = pi.getViewBox()
        self._vb.setAspectLocked(True, ratio=1.0)
        self._vb.disableAutoRange()  # frames must not move the camera; `fit_to` does
        style_plot(pi)
        cache_axes(pi)
        self.viewport().setMouseTracking(True)

        # layers, bottom to top
        self._heat_item = pg.ImageItem(axisOrder="row-major")
        self._data_item = ParticleScatter(pxMode=True, size=4, pen=None, brush=pg.mkBrush(colors.DATA))
        self._preview_item = ParticleScatter(pxMode=True, size=4, pen=None, brush=pg.mkBrush(colors.STROKE_PREVIEW))
        self._true_item = pg.PlotCurveItem(connect="pairs", pen=_pen(colors.TRUE_FIELD, 1.0),
                                           antialias=True, skipFiniteCheck=True)
        self._field_items = [
            pg.PlotCurveItem(connect="pairs", pen=_pen(c, 1.5), antialias=True, skipFiniteCheck=True)
            for c in colors.bin_colors(N_BINS)
        ]
        self._trail_item = pg.PlotCurveItem(pen=_pen(colors.TRAIL, 1.0), antialias=False, skipFiniteCheck=True)
        self._particle_item = ParticleScatter(pxMode=True, size=5, pen=None, brush=pg.mkBrush(colors.PARTICLE))
        self._splat_item = pg.ImageItem()
        self._splat_item.setVisible(False)
        self._cursor = QGraphicsEllipseItem()
        self._cursor.setVisible(False)
        items = [self._heat_item, self._data_item, self._preview_item, self._true_item, *self._field_items,
                 self._trail_item, self._splat_item, self._particle_item, self._cursor]
        for z, item in enumerate(items):
            item.setZValue(z)
            pi.addItem(item)
        # q_σ: the data perturbed at the field's σ, just above the clean data
        self._noisy_item = ParticleScatter(pxMode=True, size=3, pen=None, brush=pg.mkBrush(colors.NOISY_DATA))
        self._noisy_item.setZValue(1.5)
        self._noisy_item.setVisible(False)
        pi.addItem(self._noisy_item)
        # a flow's source distribution (app/source_layer.py), beside the data in its own colour
        self._source_item = ParticleScatter(pxMode=True, size=4, pen=None, brush=pg.mkBrush(colors.SOURCE))
        self._source_item.setZValue(1.2)
        self._source_item.setVisible(False)
        pi.addItem(self._source_item)
        # the Condition tool's line: x = v (drag) or y = v (Shift+drag)
        self._condition_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(colors.CONDITION_LINE, width=2))
        self._condition_line.setZValue(len(items) + 1)
        self._condition_line.setVisible(False)
        pi.addItem(self._condition_line)
        self.condition: tuple[int, float] | None = None  # (axis, value) while the line is shown
        self._heat_item.setVisible(False)
        self._apply_layers()
        self.set_tool("none")
        self._vb.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
        self._vb.sigRangeChanged.connect(self._resplat)
        # the legend: top-left of the plot area, fixed on screen; it follows what is shown
        self._shows = "score s_θ(x, σ)"
        self._particles_name = "Particles"
        self._magnitude_top: float | None = None
        self._heat_levels: tuple[float, float] | None = None
        self._legend_on = True
        self.legend = CanvasLegend()
        self.legend.setParentItem(self._vb)
        self.legend.anchor(itemPos=(0, 0), parentPos=(0, 0), offset=(6, 6))
        self._update_legend()

    # -- tools -----------------------------------------------------------------------------
    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        """"none" pans/zooms; "brush", "point", "eraser" edit the data; "spawn" places particles."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
        self._cancel_stroke()
        self._tool = tool
        shape = Qt.CursorShape.ArrowCursor if tool == "none" else Qt.CursorShape.CrossCursor
        self.viewport().setCursor(shape)
        color = colors.ERASER_CURSOR if tool == "eraser" else colors.CURSOR
        self._cursor.setPen(_pen(color, 1.5))
        self._cursor.setBrush(pg.mkBrush(*color[:3], 22))  # a faint fill shows the area covered
        if tool not in ("brush", "eraser"):
            self._cursor.setVisible(False)
        if tool != "condition":
            self.set_condition(None)

    def set_condition(self, condition: tuple[int, float] | None) -> None:
        """Show the line x = v (axis 0) or y = v (axis 1), or hide it (None); no signal."""
        self.condition = condition
        self._condition_line.setVisible(condition is not None)
        if condition is not None:
            axis, value = condition
            self._condition_line.setAngle(90 if axis == 0 else 0)
            self._condition_line.setValue(value)
        self._update_legend()

    def _drag_condition(self, ev, xy: np.ndarray) -> None:
        axis = 1 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 0
        self.set_condition((axis, float(xy[axis])))
        self.condition_moved.emit(axis, float(xy[axis]))

    def set_brush(self, radius: float, density: int) -> None:
        """Spray radius (data units; also the eraser's) and points added per mouse-move event."""
        if not radius > 0:
            raise ValueError(f"brush radius must be > 0, got {radius}")
        if density < 1:
            raise ValueError(f"brush density must be >= 1, got {density}")
        self.brush_radius = float(radius)
        self.brush_density = int(density)
        if self._cursor.isVisible():
            c = self._cursor.rect().center()
            self._place_cursor(np.array([c.x(), c.y()]))

    def _data_pos(self, ev) -> np.ndarray:
        scene = self.mapToScene(ev.position().toPoint())
        p = self._vb.mapSceneToView(scene)
        return np.array([p.x(), p.y()], dtype=np.float64)

    def _place_cursor(self, xy: np.ndarray) -> None:
        if self._tool not in ("brush", "eraser"):
            return
        r = self.brush_radius
        self._cursor.setRect(QRectF(xy[0] - r, xy[1] - r, 2 * r, 2 * r))
        self._cursor.setVisible(True)

    def _extend_stroke(self, xy: np.ndarray) -> None:
        if self._tool == "brush":
            self._stroke.append(disc_samples(xy, self.brush_radius, self.brush_density, self._rng))
        elif self._tool == "point" and not self._stroke:
            self._stroke.append(np.asarray(xy, np.float32)[None])
        elif self._tool == "eraser":
            self._erase_centres.append(np.asarray(xy, np.float32))
            points, item = self._edited()
            if len(points):
                self._erased |= within_any(points, xy[None], self.brush_radius)
                item.set_positions(points[~self._erased])
                if item is self._data_item:
                    self._color_data(~self._erased)
            return
        self._preview_item.set_positions(np.concatenate(self._stroke))

    def _edited(self) -> tuple[np.ndarray, ParticleScatter]:
        """The points the tools edit now, and the item that draws them."""
        if self._edit_layer == "source":
            return self._source_points, self._source_item
        return self._points, self._data_item

    def set_edit_layer(self, layer: str) -> None:
        """"data" or "source": which layer brush, point and eraser edit (the stroke preview takes its colour)."""
        if layer not in ("data", "source"):
            raise ValueError(f"unknown layer {layer!r}; expected data or source")
        self._cancel_stroke()
        self._edit_layer = layer
        self._erased = np.zeros(len(self._edited()[0]), bool)
        self._tint_preview()

    def set_stroke_class(self, c: int | None) -> None:
        """The class a data stroke paints (None: unlabelled): its preview takes the class colour."""
        if c != self._stroke_class:
            self._stroke_class = c
            self._tint_preview()

    def stroke_preview_color(self) -> colors.RGBA:
        """The stroke preview's RGBA: the source layer's green, the painted class's colour, or plain."""
        if self._edit_layer == "source":
            return colors.SOURCE_PREVIEW
        if self._stroke_class is None:
            return colors.STROKE_PREVIEW
        return (*class_color(self._stroke_class), colors.STROKE_PREVIEW[3])

    def _tint_preview(self) -> None:
        self._preview_item.setBrush(pg.mkBrush(self.stroke_preview_color()))

    @property
    def edit_layer(self) -> str:
        return self._edit_layer

    def set_source_points(self, points: np.ndarray | None, faint: bool = False) -> None:
        """A flow's source distribution (first two coordinates); None hides it. `faint` while the
        loss does not flow from it."""
        p = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32)
        self._source_points = np.ascontiguousarray(p[:, :2]) if p.size else np.zeros((0, 2), np.float32)
        if self._edit_layer == "source":
            self._erased = np.zeros(len(self._source_points), bool)
        self._source_item.set_positions(self._source_points)
        rgba = colors.SOURCE if not faint else (*colors.SOURCE[:3], 50)
        self._source_faint = bool(faint)
        self._source_item.setBrush(pg.mkBrush(rgba))
        self._source_item.setVisible(points is not None and self._layers["data"])
        self._update_legend()

    def _cancel_stroke(self) -> None:
        self._dragging = False
        self._stroke = []
        self._erase_centres = []
        self._preview_item.set_positions(np.zeros((0, 2), np.float32))
        if self._erased.any():
            self._erased[:] = False
            points, item = self._edited()
            item.set_positions(points)

    def mousePressEvent(self, ev) -> None:  # noqa: N802 (Qt override)
        if self._tool == "none" or ev.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(ev)
            return
        ev.accept()
        xy = self._data_pos(ev)
        if self._tool == "spawn":
            self.spawn_requested.emit(float(xy[0]), float(xy[1]))
            return
        self._cancel_stroke()
        if self._tool == "condition":
            self._dragging = True
            self._drag_condition(ev, xy)
            return
        self._dragging = True
        self._place_cursor(xy)
        self._extend_stroke(xy)

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802
        if self._tool == "none":
            super().mouseMoveEvent(ev)
            return
        xy = self._data_pos(ev)
        self._place_cursor(xy)
        if self._dragging and self._tool == "condition":
            ev.accept()
            self._drag_condition(ev, xy)
        elif self._dragging:
            ev.accept()
            self._extend_stroke(xy)
        else:
            super().mouseMoveEvent(ev)  # hover, and right-drag zoom, still reach the scene

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802
        if not (self._dragging and ev.button() == Qt.MouseButton.LeftButton):
            super().mouseReleaseEvent(ev)
            return
        ev.accept()
        stroke = np.concatenate(self._stroke).astype(np.float32) if self._stroke else None
        centres = np.stack(self._erase_centres).astype(np.float32) if self._erase_centres else None
        # restore the preview first: a listener answers synchronously with set_points (one undo step)
        self._cancel_stroke()
        if stroke is not None:
            self.stroke_finished.emit(stroke)
        if centres is not None:
            self.erase_finished.emit(centres)

    def leaveEvent(self, ev) -> None:  # noqa: N802
        super().leaveEvent(ev)
        if not self._dragging:
            self._cursor.setVisible(False)

    # -- data and frames --------------------------------------------------------------------
    def set_points(self, points: np.ndarray, labels: np.ndarray | None = None) -> None:
        """The dataset's display points (N, D >= 2; the first two coordinates are drawn), coloured
        by their class (`labels`, class indices, pale `palette.class_color`s) when they have one."""
        p = np.asarray(points, dtype=np.float32)
        self._points = np.ascontiguousarray(p[:, :2]) if p.size else np.zeros((0, 2), np.float32)
        self._labels = None if labels is None or len(labels) != len(self._points) else np.asarray(labels)
        if self._edit_layer == "data":
            self._erased = np.zeros(len(self._points), bool)
        self._data_item.set_positions(self._points)
        self._color_data()
        self._update_legend()

    def _color_data(self, keep: np.ndarray | None = None) -> None:
        """Per-point class brushes on the drawn data (`keep`: the points still drawn mid-erase)."""
        if self._labels is None:
            self._data_item.set_brushes(None)
            return
        labels = self._labels if keep is None else self._labels[keep]
        n = len(self._data_brushes)
        self._data_item.set_brushes([self._data_brushes[int(c) % n] for c in labels])

    def particle_color(self) -> tuple[int, ...]:
        """The particles' RGBA now: the class they are asked for, or the plain particle colour."""
        return self._particle_rgba

    def _set_particle_class(self, c: int | None) -> None:
        rgba = particle_color(c)
        if rgba == self._particle_rgba:
            return
        self._particle_rgba = rgba
        self._particle_item.setBrush(pg.mkBrush(rgba))
        self._splat_lut = _splat_lut(rgba[:3])
        if self._splatting:
            self._draw_splat()

    def show_frame(self, frame) -> None:
        """Draw an `sgm_core.live.Frame`: particles and trails always; field, true field and
        heatmaps when the frame carries new ones (identity check, so repeats cost nothing)."""
        self._set_particle_class(getattr(frame, "guide_class", None))
        self._draw_particles(np.asarray(frame.particles)[:, :2])
        self._draw_trails(frame.trails)
        fields_changed = False
        if frame.field is not None and frame.field is not self._field:
            self._field, fields_changed = frame.field, True
        if frame.true_field is not None and frame.true_field is not self._true_field:
            self._true_field, fields_changed = frame.true_field, True
        stale_truth = self._true_field is not None or self._heat.get("error") is not None
        if getattr(frame, "reference_kind", "") == "none" and stale_truth:
            self._true_field, self._heat["error"] = None, None  # no exact truth for this run: none lingers
            self._true_item.setData(x=np.zeros(0), y=np.zeros(0))
            self._draw_heatmap()
        if fields_changed:
            self._draw_fields()
        heat_changed = False
        for key, img in (("density", frame.heatmap), ("error", frame.error_map),
                         ("curl", getattr(frame, "curl_map", None))):
            if img is not None and img is not self._heat.get(key):
                self._heat[key], heat_changed = img, True
        if frame.heatmap_bounds is not None and frame.heatmap_bounds != self._heat_bounds:
            self._heat_bounds, heat_changed = frame.heatmap_bounds, True
        if heat_changed:
            self._draw_heatmap()
        self._update_legend()  # particles or trails may have come or gone (a no-op when the rows agree)

    def clear_field(self) -> None:
        """Forget the drawn field, true field and heatmaps (e.g. when the dataset changes)."""
        self._field = self._true_field = self._heat_bounds = None
        self._heat = {"density": None, "error": None}
        for item in (*self._field_items, self._true_item):
            item.setData(x=np.zeros(0), y=np.zeros(0))
        self._heat_item.setVisible(False)
        self._magnitude_top = None
        self._update_legend()

    def set_layers(self, *, data: bool | None = None, field: bool | None = None, true_field: bool | None = None,
                   particles: bool | None = None, trails: bool | None = None, heatmap: str | None = None) -> None:
        """Visibility toggles; None leaves a layer as it is. heatmap: "off" | "density" | "error" | "curl"."""
        for key, value in (("data", data), ("field", field), ("true_field", true_field),
                           ("particles", particles), ("trails", trails)):
            if value is not None:
                self._layers[key] = bool(value)
        if heatmap is not None:
            if heatmap not in HEATMAPS:
                raise ValueError(f"unknown heatmap {heatmap!r}; expected one of {', '.join(HEATMAPS)}")
            self._heatmap_mode = heatmap
            self._draw_heatmap()
        self._apply_layers()

    def layers(self) -> dict[str, bool | str]:
        return {**self._layers, "heatmap": self._heatmap_mode}

    def _apply_layers(self) -> None:
        self._data_item.setVisible(self._layers["data"])
        self._source_item.setVisible(self._layers["data"] and len(self._source_points) > 0)
        for item in self._field_items:
            item.setVisible(self._layers["field"])
        self._true_item.setVisible(self._layers["true_field"])
        self._particle_item.setVisible(self._layers["particles"] and not self._splatting)
        self._splat_item.setVisible(self._layers["particles"] and self._splatting)
        self._trail_item.setVisible(self._layers["trails"])
        self._update_legend()

    # -- legend -----------------------------------------------------------------------------
    def set_legend_names(self, shows: str | None = None, particles: str | None = None) -> None:
        """What the arrows are (sgm_core.param's `shows`, e.g. "flow −v_θ(x, t) (toward the data)")
        and what to call the particles (e.g. "Particles (annealed)"); None keeps a name."""
        if shows is not None:
            self._shows = shows
        if particles is not None:
            self._particles_name = particles
        self._update_legend()

    def set_legend_visible(self, on: bool) -> None:
        self._legend_on = bool(on)
        self._update_legend()

    def legend_rows(self) -> list:
        """The legend's rows for what is drawn now (`app.views.legend.LegendEntry`)."""
        layers = dict(self.layers())
        layers["field"] = layers["field"] and self._field is not None
        layers["true_field"] = layers["true_field"] and self._true_field is not None
        layers["data"] = layers["data"] and len(self._points) > 0
        layers["particles"] = layers["particles"] and len(self._particles_xy) > 0
        layers["trails"] = layers["trails"] and self._has_trails
        shown = self._heat_item.isVisible()
        source = None
        if self._layers["data"] and len(self._source_points):
            source = "Source: flows start here" if not self._source_faint else "Source (used by fm / ot-fm only)"
        return legend_entries(layers, shows=self._shows, magnitude_top=self._magnitude_top,
                              heat_levels=self._heat_levels if shown else None,
                              noisy_data=self._noisy_item.isVisible(), particles=self._particles_name,
                              particle_color=self._particle_rgba, source=source,
                              condition=self.condition)

    def _update_legend(self) -> None:
        legend = getattr(self, "legend", None)
        if legend is not None:
            legend.set_entries(self.legend_rows() if self._legend_on else [])

    def set_noisy_points(self, points: np.ndarray | None) -> None:
        """Samples of q_σ (data + σ·noise, data coordinates) under the field; None hides them."""
        if points is None or len(points) == 0:
            self._noisy_item.setVisible(False)
        else:
            self._noisy_item.set_positions(np.ascontiguousarray(np.asarray(points, np.float32)[:, :2]))
            self._noisy_item.setVisible(True)
        self._update_legend()

    def set_normalized_arrows(self, on: bool) -> None:
        """Equal-length arrows (direction only; colour still tells magnitude) vs length ∝ |score|."""
        if bool(on) != self._normalized:
            self._normalized = bool(on)
            self._draw_fields()

    @property
    def splatting(self) -> bool:
        """The particles are drawn as a density image (more than `splat_above` of them)."""
        return self._splatting

    # -- drawing ----------------------------------------------------------------------------
    def _draw_particles(self, xy: np.ndarray) -> None:
        self._particles_xy = xy
        splat = len(xy) > self.splat_above
        if splat != self._splatting:
            self._splatting = splat
            self._apply_layers()
        if splat:
            if len(self._particle_item.data):
                self._particle_item.set_positions(np.zeros((0, 2), np.float32))
            self._draw_splat()
        else:
            self._particle_item.set_positions(xy)

    def _draw_splat(self) -> None:
        """The particles' histogram over the visible rectangle, SPLAT_CELL_PX screen pixels a cell."""
        (x0, x1), (y0, y1) = bounds = self.field_bounds()
        vp = self.viewport().size()
        shape = (min(SPLAT_MAX_CELLS, max(1, vp.width() // SPLAT_CELL_PX)),
                 min(SPLAT_MAX_CELLS, max(1, vp.height() // SPLAT_CELL_PX)))
        level = np.log1p(splat_counts(self._particles_xy, bounds, shape))
        top = max(float(level.max()) if level.size else 0.0, float(np.log(2.0)))
        self._splat_item.setImage(level, autoLevels=False, levels=(0.0, top), lut=self._splat_lut)
        self._splat_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

    def _resplat(self, *_args: object) -> None:
        if self._splatting:  # the histogram is over the visible rectangle: pan and zoom re-bin it
            self._draw_splat()

    def _draw_trails(self, trails: np.ndarray | None) -> None:
        self._has_trails = trails is not None and len(trails) >= 2
        self._trails = trails if self._has_trails else None
        if not self._has_trails:
            self._trail_item.setData(x=np.zeros(0), y=np.zeros(0))
            return
        t = np.asarray(trails)[:, :MAX_TRAILS, :2]  # (T, m, 2), oldest first
        steps, m = t.shape[0], t.shape[1]
        path = t.transpose(1, 0, 2).reshape(-1, 2)  # each particle's polyline in turn
        connect = np.ones(m * steps, dtype=bool)
        connect[steps - 1 :: steps] = False  # do not join one particle's head to the next's tail
        self._trail_item.setData(x=path[:, 0], y=path[:, 1], connect=connect)

    def _draw_fields(self) -> None:
        ref = self._field if self._field is not None else self._true_field
        if ref is None:
            return
        mag = np.hypot(ref.vectors[:, 0], ref.vectors[:, 1])
        scale, cap, top = arrow_scale(mag, grid_cell(ref.positions), self._normalized)
        self._magnitude_top = top
        if self._field is not None:
            f = self._field
            segs = arrow_segments(f.positions, f.vectors, scale, self._normalized, max_length=cap)
            segs = segs.reshape(-1, 6, 2)
            bins = magnitude_bins(mag, N_BINS, top)
            order = np.argsort(bins, kind="stable")
            ends = np.cumsum(np.bincount(bins, minlength=N_BINS))
            for b, item in enumerate(self._field_items):
                sel = segs[order[(ends[b - 1] if b else 0) : ends[b]]].reshape(-1, 2)
                item.setData(x=sel[:, 0], y=sel[:, 1], connect="pairs")
        if self._true_field is not None:
            t = self._true_field
            segs = arrow_segments(t.positions, t.vectors, scale, self._normalized, max_length=cap)
            self._true_item.setData(x=segs[:, 0], y=segs[:, 1], connect="pairs")
        self._update_legend()

    def _draw_heatmap(self) -> None:
        img = self._heat.get(self._heatmap_mode) if self._heatmap_mode != "off" else None
        if img is None or self._heat_bounds is None:
            self._heat_item.setVisible(False)
            self._update_legend()
            return
        img = np.asarray(img, dtype=np.float32)
        finite = img[np.isfinite(img)]
        if self._heatmap_mode == "density":
            hi = float(finite.max()) if finite.size else 1.0
            lo = max(float(np.percentile(finite, 2)) if finite.size else 0.0, hi - DENSITY_RANGE)
            levels, lut = (lo, hi if hi > lo else lo + 1.0), colors.lut(colors.DENSITY)
        elif self._heatmap_mode == "curl":
            top = max(float(np.percentile(np.abs(finite), 99)) if finite.size else 0.0, CURL_FLOOR)
            levels, lut = (-top, top), colors.lut(colors.CURL)
        else:
            img = np.abs(img) / (1.0 + np.abs(img))
            levels, lut = ERROR_LEVELS, colors.lut(colors.ERROR)
        img = np.nan_to_num(img, nan=levels[0], posinf=levels[1], neginf=levels[0])
        img = upsample_bilinear(img, max(1, HEATMAP_PIXELS // max(img.shape)))  # smooth, not blocky
        self._heat_item.setImage(img, autoLevels=False, levels=levels, lut=lut)
        (x0, x1), (y0, y1) = self._heat_bounds[:2]
        h, w = img.shape
        # grid values sit on pixel centres: widen the rect by half a pixel each side
        dx = (x1 - x0) / max(w - 1, 1)
        dy = (y1 - y0) / max(h - 1, 1)
        self._heat_item.setRect(QRectF(x0 - dx / 2, y0 - dy / 2, (x1 - x0) + dx, (y1 - y0) + dy))
        self._heat_item.setVisible(True)
        self._heat_levels = (float(levels[0]), float(levels[1]))
        self._update_legend()

    # -- figures ----------------------------------------------------------------------------
    def figure_copy(self, width: int, height: int) -> Plot2D:
        """A new, unshown Plot2D of `width` x `height` pixels drawing what this one draws now
        (data, source, field, heatmap, particles, trails, q_σ, condition line, legend) over the same
        region: the view is widened to the new aspect about the same centre. For figure export at
        a chosen size; the caller deletes it."""
        fig = Plot2D()
        fig.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
        fig.resize(int(width), int(height))
        fig.show()  # laid out (axes, legend) but never on screen
        fig.set_points(self._points)
        fig._layers = dict(self._layers)
        fig._heatmap_mode = self._heatmap_mode
        fig._normalized = self._normalized
        fig._shows, fig._particles_name, fig._legend_on = self._shows, self._particles_name, self._legend_on
        fig._field, fig._true_field = self._field, self._true_field
        fig._heat, fig._heat_bounds = dict(self._heat), self._heat_bounds
        fig.splat_above = self.splat_above
        (x0, x1), (y0, y1) = self.field_bounds()
        fig._vb.setRange(QRectF(QPointF(x0, y0), QPointF(x1, y1)), padding=0)
        fig._draw_fields()
        fig._draw_heatmap()
        fig._draw_particles(self._particles_xy)
        fig._draw_trails(self._trails)
        if len(self._source_points):
            fig.set_source_points(self._source_points, faint=self._source_faint)
        fig.set_condition(self.condition)
        if self._noisy_item.isVisible():
            fig._noisy_item.set_positions(np.column_stack([self._noisy_item.data["x"], self._noisy_item.data["y"]]))
            fig._noisy_item.setVisible(True)
        fig._apply_layers()
        return fig

    def clip_to_view(self) -> None:
        """Drop what lies outside the visible rectangle: points, particles, q_σ, whole arrows and
        whole trails. A raster grab clips by itself; a vector painter (QSvgGenerator) does not
        honour the ViewBox's clip, so a figure copy is clipped before it is painted as SVG."""
        r = self._vb.viewRect()
        (x0, x1), (y0, y1) = (r.left(), r.right()), (r.top(), r.bottom())

        def inside(xy: np.ndarray) -> np.ndarray:
            return (xy[..., 0] >= x0) & (xy[..., 0] <= x1) & (xy[..., 1] >= y0) & (xy[..., 1] <= y1)

        for item in (self._data_item, self._particle_item, self._noisy_item, self._source_item):
            if len(item.data):
                xy = np.column_stack([item.data["x"], item.data["y"]]).astype(np.float32)
                item.set_positions(xy[inside(xy)])
        for item in (*self._field_items, self._true_item):
            x, y = item.getData()
            if x is not None and len(x):
                pairs = np.column_stack([x, y]).reshape(-1, 2, 2)
                keep = pairs[inside(pairs).all(axis=1)].reshape(-1, 2)
                item.setData(x=keep[:, 0], y=keep[:, 1], connect="pairs")
        if self._trails is not None:
            t = np.asarray(self._trails)[:, :, :2]
            self._draw_trails(t[:, inside(t).all(axis=0)] if inside(t).all(axis=0).any() else None)

    # -- view -------------------------------------------------------------------------------
    def field_bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The visible rectangle in data coordinates, ((x0, x1), (y0, y1)), for `FieldView.bounds`."""
        r = self._vb.viewRect()
        return (float(r.left()), float(r.right())), (float(r.top()), float(r.bottom()))

    def fit_to(self, points: np.ndarray, margin: float = 0.15) -> None:
        """Show the points with a margin; aspect stays 1:1 (the ViewBox widens the short side)."""
        p = np.asarray(points, dtype=np.float64)
        p = p[np.isfinite(p).all(axis=1)][:, :2] if p.size else p.reshape(0, 2)
        if len(p) == 0:
            self._vb.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
            return
        lo, hi = p.min(axis=0), p.max(axis=0)
        c = (lo + hi) / 2
        half = float((hi - lo).max()) / 2 * (1 + margin) + 1e-6
        self._vb.setRange(QRectF(QPointF(c[0] - half, c[1] - half), QPointF(c[0] + half, c[1] + half)), padding=0)

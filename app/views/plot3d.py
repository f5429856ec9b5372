"""The playground's 3D view: data, particles, trails and the score field in an orbitable GL scene.

A mirror of `Plot2D` (`set_points`, `show_frame`, `set_layers`, `fit_to`, `field_bounds`) so the
main window can swap the two by the data's dimension. Every layer is one persistent
`pyqtgraph.opengl` item refreshed with `setData` from the frame timer (shared/FACTS.md): one
`GLScatterPlotItem` for the data and one for all particles, one `GLLinePlotItem(mode="lines")`
for all trails and one for the whole arrow field (per-vertex colours by magnitude).

GL needs a real context: the offscreen platform cannot host a `QOpenGLWidget`, so there (or when
the GL set-up fails) the widget shows a one-line explanation instead and every method still
accepts its calls, so the caller never has to guard.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.views import colors
from app.views.geometry import arrow_scale
from app.views.legend import LegendOverlay, legend_entries, legend_font, paint_legend
from app.views.plot2d import DATA_CLASS_ALPHA
from sgm_core.live import default_bounds
from sgm_core.palette import CLASS_COLORS, class_color, particle_color

NO_GL_MESSAGE = "3D view needs OpenGL (not available here); 2D keeps working"
NO_GL_PLATFORMS = frozenset({"offscreen", "minimal"})  # Qt platforms that cannot host a QOpenGLWidget

DEFAULT_AZIMUTH = -60.0  # degrees about +z; the same default camera as sgm_core.render.Camera
DEFAULT_ELEVATION = 25.0  # degrees above the x-y plane
FIT_MARGIN = 0.0  # extra distance, as a fraction: the bounding sphere is already loose
MAX_TRAILS = 1000  # trails of more particles cost drawing time without showing more
ARROW_HEAD = 0.3  # head barbs, as a fraction of the shaft
ARROW_COLOR_TOP = 0.85  # the top of the viridis range used: its yellow vanishes on white
ARROW_ALPHA = 0.85  # a full 3D grid is ~1000 arrows: let the data show through
HEAD_ANGLE = math.radians(25.0)  # half-opening of an arrow head
HEAD_BARBS = 3  # barbs around the shaft, so a head reads from every camera angle
_TINY = 1e-12  # a vector shorter than this has no direction: its arrow collapses to a point
CLICK_SLOP_PX = 4.0  # a press and release closer than this is a click (spawn), not an orbiting drag

# float RGBA (0..1) for GL, from the shared palette
_DATA = tuple(c / 255 for c in colors.DATA)
_PARTICLE = tuple(c / 255 for c in colors.PARTICLE)
_SOURCE = tuple(c / 255 for c in colors.SOURCE)
SOURCE_FAINT_ALPHA = 50 / 255  # as the 2D canvas: the source shown while the loss does not flow from it
_TRAIL = tuple(c / 255 for c in colors.TRAIL)
_GRID = (0, 0, 0, 40)  # 0..255: mkColor for GLGridItem
_AXES = ((0.85, 0.25, 0.25, 1.0), (0.2, 0.65, 0.3, 1.0), (0.2, 0.4, 0.85, 1.0))  # x red, y green, z blue
_PLANE = (0.35, 0.5, 0.85, 0.13)
_PLANE_EDGE = (0.3, 0.45, 0.8, 0.7)

_gl_ok: bool | None = None  # opengl_available()'s answer, once a QGuiApplication exists


def share_gl_contexts() -> None:
    """Make every GL widget's context share objects with the others (Qt's AA_ShareOpenGLContexts).

    pyqtgraph compiles each item class's shader program once and caches it on the class; in a
    second GL context (another Plot3D, a re-created one, a floated dock) that program id is
    invalid ("glUseProgram: invalid value", pyqtgraph issues #1822, #3455) unless the contexts
    share. Qt reads the attribute only before the QApplication exists: this module calls it on
    import, and `app.main` should call it before creating the application, whatever it imports first.
    """
    if QCoreApplication.instance() is None:
        QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)


share_gl_contexts()


def opengl_available() -> bool:
    """Whether this process can show `GLViewWidget`s (call after the QApplication exists).

    False on the offscreen/minimal platforms (no QOpenGLWidget there, shared/FACTS.md), when
    pyqtgraph.opengl / PyOpenGL cannot be imported, or when no OpenGL context can be made current.
    """
    global _gl_ok
    if _gl_ok is None:
        if QGuiApplication.instance() is None:
            return False  # cannot tell yet: do not cache
        _gl_ok = _probe_opengl()
    return _gl_ok


def _probe_opengl() -> bool:
    if QGuiApplication.platformName() in NO_GL_PLATFORMS:
        return False
    try:
        import pyqtgraph.opengl  # noqa: F401  (PyOpenGL loads libGL here)
        from PySide6.QtGui import QOffscreenSurface, QOpenGLContext
    except Exception:  # ImportError, or OpenGL's own errors when libGL is missing
        return False
    context = QOpenGLContext()
    if not context.create():
        return False
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    ok = surface.isValid() and context.makeCurrent(surface)
    if ok:
        context.doneCurrent()
    surface.destroy()
    return bool(ok)


# --------------------------------------------------------------------------- pure geometry


def _perpendicular_frame(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (e1, e2) with (unit, e1, e2) orthonormal, row-wise; zeros for zero rows.
    e1 = unit x (the coordinate axis least aligned with unit), which is never near-parallel."""
    helper = np.zeros_like(unit)
    helper[np.arange(len(unit)), np.argmin(np.abs(unit), axis=1)] = 1.0
    e1 = np.cross(unit, helper)
    n1 = np.linalg.norm(e1, axis=1, keepdims=True)
    e1 = np.divide(e1, n1, out=np.zeros_like(e1), where=n1 > _TINY)
    return e1, np.cross(unit, e1)


def arrow_lines_3d(
    positions: np.ndarray,
    vectors: np.ndarray,
    length: float,
    normalized: bool,
    head: float = ARROW_HEAD,
    *,
    max_length: float | None = None,
    reference: float | None = None,
    plane_normal: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and per-vertex colours of one 3D arrow per (position, vector), for
    `GLLinePlotItem(mode="lines")`.

    Each arrow is a shaft and k barbs, every segment a vertex pair:
    ``[p, tip, tip, tip + b_1, ..., tip, tip + b_k]``, so ``(P * 2 * (1 + k), 3)`` float32.
    Free arrows have k = `HEAD_BARBS` barbs spread evenly around the shaft (a head that reads
    from every camera angle); with ``plane_normal`` (arrows of a slice, lying in that plane) the
    head is the flat 2D one, k = 2 barbs in the plane. The shaft has length ``length``
    (``normalized``: direction only) or ``|v| * length``, capped at ``max_length``; barbs are
    ``head`` times the shaft, at `HEAD_ANGLE` from it. Colours map ``|v| / reference`` (default:
    the 95th-percentile magnitude) onto viridis, as float RGBA. Zero and non-finite vectors give
    zero-length arrows at their position (never NaN).
    """
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    v = np.where(np.isfinite(v), v, 0.0)
    mag = np.linalg.norm(v, axis=1)
    has_dir = mag > _TINY
    unit = np.divide(v, mag[:, None], out=np.zeros_like(v), where=has_dir[:, None])
    shaft = np.where(has_dir, float(length), 0.0) if normalized else mag * float(length)
    if max_length is not None:
        shaft = np.minimum(shaft, float(max_length))
    tip = p + unit * shaft[:, None]
    if plane_normal is None:
        e1, e2 = _perpendicular_frame(unit)
        barbs = HEAD_BARBS
    else:  # the in-plane perpendicular n x unit: both barbs stay in the plane
        e1 = np.cross(np.asarray(plane_normal, dtype=np.float64).reshape(1, 3), unit)
        n1 = np.linalg.norm(e1, axis=1, keepdims=True)
        e1 = np.divide(e1, n1, out=np.zeros_like(e1), where=n1 > _TINY)
        e2, barbs = np.zeros_like(e1), 2
    h = (head * shaft)[:, None]
    back, side = -math.cos(HEAD_ANGLE), math.sin(HEAD_ANGLE)
    segments = [p, tip]
    for k in range(barbs):
        phi = 2.0 * math.pi * k / barbs
        radial = math.cos(phi) * e1 + math.sin(phi) * e2
        segments += [tip, tip + h * (back * unit + side * radial)]
    verts = np.stack(segments, axis=1).reshape(-1, 3).astype(np.float32)

    if reference is None:
        finite = mag[has_dir]
        reference = float(np.percentile(finite, 95)) if finite.size else 0.0
    t = mag / reference if reference > _TINY else np.zeros_like(mag)
    rgb = colors.sample(colors.VIRIDIS, np.clip(t, 0.0, 1.0) * ARROW_COLOR_TOP) / 255.0
    rgba = np.concatenate([rgb, np.full((len(rgb), 1), ARROW_ALPHA)], axis=1)
    cols = np.repeat(rgba, len(segments), axis=0).astype(np.float32)
    return verts, cols


def grid_spacing(shape: tuple[int, ...], positions: np.ndarray) -> float:
    """The smallest spacing of a regular grid (flattened `positions`, `shape`) over axes with
    more than one sample; 1.0 for a single point."""
    p = np.asarray(positions, dtype=np.float64)
    steps = [float(np.ptp(p[:, a])) / (n - 1) for a, n in enumerate(shape[: p.shape[1]]) if n > 1]
    steps = [s for s in steps if s > 0]
    return min(steps) if steps else 1.0


def slice_axis_of(shape: tuple[int, ...]) -> int | None:
    """The axis a 3D field grid is flat along (`FieldView.slice_axis` gives shape 1 there), or None."""
    if len(shape) != 3:
        return None
    flat = [a for a, n in enumerate(shape) if n == 1]
    return flat[0] if len(flat) == 1 else None


def plane_quad(axis: int, value: float, bounds: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The 4 corners (4, 3) of the plane {x[axis] = value} clipped to `bounds`, in loop order."""
    a, b = [i for i in range(3) if i != axis]
    (a0, a1), (b0, b1) = bounds[a], bounds[b]
    quad = np.zeros((4, 3), np.float32)
    quad[:, axis] = value
    quad[:, a] = (a0, a1, a1, a0)
    quad[:, b] = (b0, b0, b1, b1)
    return quad


def click_ray(view_matrix: np.ndarray, fov_deg: float, size: tuple[float, float],
              pixel: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The world ray (origin, unit direction) under a widget pixel for a GLViewWidget camera:
    `view_matrix` (4x4, world -> eye) and the horizontal field of view `fov_deg` across the width,
    as pyqtgraph's projectionMatrix builds its frustum."""
    w, h = max(float(size[0]), 1.0), max(float(size[1]), 1.0)
    half = math.tan(math.radians(fov_deg) / 2)
    eye = np.array([(2 * pixel[0] / w - 1) * half, (1 - 2 * pixel[1] / h) * half * h / w, -1.0, 1.0])
    to_world = np.linalg.inv(view_matrix)
    origin = to_world @ np.array([0.0, 0.0, 0.0, 1.0])
    direction = (to_world @ eye)[:3] - origin[:3]
    return origin[:3], direction / np.linalg.norm(direction)


def pick_point(origin: np.ndarray, direction: np.ndarray, center: np.ndarray,
               slice_plane: tuple[int, float] | None = None) -> np.ndarray:
    """Where a click ray lands: on the slice plane when one is shown and the ray meets it in front
    of the camera, else on the plane through the orbit centre that faces the camera."""
    if slice_plane is not None:
        axis, value = slice_plane
        if abs(direction[axis]) > _TINY:
            t = (value - origin[axis]) / direction[axis]
            if t > 0:
                return origin + t * direction
    normal = center - origin
    t = float(normal @ normal) / max(float(direction @ normal), _TINY)
    return origin + t * direction


def _nice_step(span: float, lines: int = 10) -> float:
    """A 1/2/5 x 10^k grid step giving about `lines` lines over `span`."""
    raw = max(span, 1e-9) / lines
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1.0, 2.0, 5.0, 10.0) if m * mag >= raw)


def _as3(points: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, 3) float32: 2D data sits in the z = 0 plane, extra columns are dropped."""
    p = np.asarray(points, dtype=np.float32).reshape(len(points), -1) if len(points) else np.zeros((0, 3), np.float32)
    if p.shape[1] < 3:
        p = np.concatenate([p, np.zeros((len(p), 3 - p.shape[1]), np.float32)], axis=1)
    return np.ascontiguousarray(p[:, :3])


# --------------------------------------------------------------------------- the widget


def data_colors(labels: np.ndarray | None, n: int) -> tuple[float, ...] | np.ndarray:
    """The data cloud's GL colour: one plain RGBA, or (N, 4) class colours at the 2D view's pale
    alpha (`plot2d.DATA_CLASS_ALPHA`) for labelled points."""
    if labels is None or len(labels) != n:
        return _DATA
    table = np.array([(*class_color(k), DATA_CLASS_ALPHA) for k in range(len(CLASS_COLORS))], np.float32) / 255
    return table[np.asarray(labels, np.int64) % len(CLASS_COLORS)]


class Plot3D(QWidget):
    """Data, particles, trails, the learned score field (full 3D grid or a slice plane) and a
    floor grid with axes, in a `GLViewWidget` the user orbits (drag), pans (ctrl/middle drag)
    and zooms (wheel).

    Frames whose `field` is None keep the last field drawn (the engine refreshes it only when it
    is stale); `clear_field` removes it. `gl_available` is False where OpenGL is not: the widget
    then shows `NO_GL_MESSAGE` and draws nothing.
    """

    spawn_requested = Signal(float, float, float)  # a click with the spawn tool, data coordinates

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._spawn_tool = False
        self._press: QPointF | None = None
        self._points = np.zeros((0, 3), np.float32)
        self._source_points = np.zeros((0, 3), np.float32)  # a flow's source distribution (app/source_layer.py)
        self._source_faint = False
        self._bounds: tuple[tuple[float, float], ...] = ((-1.0, 1.0),) * 3
        self._layers = {"data": True, "field": True, "particles": True, "trails": True, "slice_plane": True}
        self._normalized = False
        self._field = None
        self._slice: tuple[int, float] | None = None
        self._view = None
        self.gl_available = False
        self.gl_error = ""  # why GL is off, for a tooltip or a log
        self.message_label: QLabel | None = None
        self.legend: LegendOverlay | None = None  # over the GL view (a scene item cannot be: GL has no scene)
        self._shows = "score s_θ(x, σ)"
        self._particles_name = "Particles"
        self._magnitude_top: float | None = None
        self._has_particles = False
        self._has_trails = False
        self._particle_rgba: colors.RGBA = colors.PARTICLE  # the asked-for class's colour while guided

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if opengl_available():
            try:
                self._build_scene()
                self.gl_available = True
            except Exception as exc:  # any GL set-up failure must leave a usable window
                self._view = None
                self.gl_error = f"{type(exc).__name__}: {exc}"
        else:
            self.gl_error = f"no OpenGL on the Qt platform {QGuiApplication.platformName()!r}"
        if self.gl_available:
            layout.addWidget(self._view)
        else:
            label = QLabel(NO_GL_MESSAGE)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setWordWrap(True)
            label.setToolTip(self.gl_error)
            label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            self.message_label = label
            layout.addWidget(label)

    def _build_scene(self) -> None:
        import pyqtgraph.opengl as gl
        from OpenGL import GL

        # Layers that never occlude: no depth test (so no depth writes), plain alpha blending,
        # drawn first. The translucent data cloud must not hide the particles inside it.
        behind = {
            GL.GL_DEPTH_TEST: False,
            GL.GL_BLEND: True,
            GL.GL_CULL_FACE: False,
            "glBlendFuncSeparate": (GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA, GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA),
        }
        view = gl.GLViewWidget()
        view.setBackgroundColor(colors.BACKGROUND)
        view.setMinimumSize(200, 150)

        self._grid_item = gl.GLGridItem(color=_GRID, glOptions=behind)
        self._data_item = gl.GLScatterPlotItem(
            pos=np.zeros((0, 3), np.float32), color=_DATA, size=3.0, pxMode=True, glOptions=behind
        )
        # a flow's source distribution beside the data, in its own colour (as the 2D canvas draws it)
        self._source_item = gl.GLScatterPlotItem(
            pos=np.zeros((0, 3), np.float32), color=_SOURCE, size=3.0, pxMode=True, glOptions=behind
        )
        # trails unsmoothed: line smoothing on llvmpipe costs ~25 ms per 40k faint segments
        self._trail_item = gl.GLLinePlotItem(
            pos=np.zeros((0, 3), np.float32), color=_TRAIL, width=1.0, mode="lines", antialias=False, glOptions=behind
        )
        self._axes_item = gl.GLLinePlotItem(
            pos=np.zeros((0, 3), np.float32), width=2.0, mode="lines", antialias=True, glOptions="translucent"
        )
        self._field_item = gl.GLLinePlotItem(
            pos=np.zeros((0, 3), np.float32), width=1.5, mode="lines", antialias=True, glOptions="translucent"
        )
        self._particle_item = gl.GLScatterPlotItem(
            pos=np.zeros((0, 3), np.float32), color=_PARTICLE, size=5.0, pxMode=True, glOptions="translucent"
        )
        # the slice plane last, so what lies behind it is seen through it
        self._plane_item = gl.GLMeshItem(
            vertexes=np.zeros((4, 3), np.float32),
            faces=np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
            color=_PLANE,
            smooth=False,
            computeNormals=False,
            glOptions="translucent",
        )
        self._plane_edge_item = gl.GLLinePlotItem(
            pos=np.zeros((0, 3), np.float32), color=_PLANE_EDGE, width=1.5, mode="lines", antialias=True, glOptions="translucent"
        )
        order = [
            self._grid_item,
            self._data_item,
            self._source_item,
            self._trail_item,
            self._axes_item,
            self._field_item,
            self._particle_item,
            self._plane_item,
            self._plane_edge_item,
        ]
        for depth, item in enumerate(order):
            item.setDepthValue(depth)  # GLViewWidget draws in depth-value order
            view.addItem(item)
        self._view = view
        self.legend = LegendOverlay(view)
        view.installEventFilter(self)  # clicks for the spawn tool; drags still orbit
        view.setCameraPosition(azimuth=DEFAULT_AZIMUTH, elevation=DEFAULT_ELEVATION)
        self._update_frame_items()
        self._update_plane()
        self._apply_layers()

    # -- data and frames --------------------------------------------------------------------
    def set_points(self, points: np.ndarray, labels: np.ndarray | None = None) -> None:
        """The dataset's display points (N, 3; 2D data is drawn in the z = 0 plane), each in its
        class's pale colour when `labels` (N,) gives one, as in the 2D view. Sets the field bounds
        and the floor grid; the camera moves only on `fit_to`."""
        self._points = _as3(points)
        finite = self._points[np.isfinite(self._points).all(axis=1)]
        self._bounds = default_bounds(finite) if len(finite) else ((-1.0, 1.0),) * 3
        if self._view is None:
            return
        self._data_item.setData(pos=self._points, color=data_colors(labels, len(self._points)))
        self._update_frame_items()
        self._update_plane()

    def set_source_points(self, points: np.ndarray | None, faint: bool = False) -> None:
        """A flow's source distribution (as `Plot2D.set_source_points`; 2D points in the z = 0 plane);
        None hides it. `faint` while the loss does not flow from it."""
        p = np.asarray(points, np.float32) if points is not None else np.zeros((0, 3), np.float32)
        self._source_points = _as3(p) if p.size else np.zeros((0, 3), np.float32)
        self._source_faint = bool(faint)
        if self._view is None:
            return
        color = (*_SOURCE[:3], SOURCE_FAINT_ALPHA) if faint else _SOURCE
        self._source_item.setData(pos=self._source_points, color=color)
        self._apply_layers()

    def source_points(self) -> np.ndarray:
        """The source points drawn now ((0, 3) when hidden)."""
        return self._source_points.copy()

    @property
    def source_faint(self) -> bool:
        """Is the source drawn faint (the loss does not flow from it)?"""
        return self._source_faint

    def show_frame(self, frame) -> None:
        """Draw an `sgm_core.live.Frame`: particles and trails always; the field when the frame
        carries a new one (identity check, so repeats cost nothing). A sliced field (a grid flat
        along one axis) is drawn in its plane and moves the slice plane there."""
        if self._view is None:
            self._field = frame.field if frame.field is not None else self._field
            return
        self._set_particle_class(getattr(frame, "guide_class", None))
        self._particle_item.setData(pos=_as3(frame.particles))
        self._draw_trails(frame.trails)
        self._has_particles = len(frame.particles) > 0
        self._has_trails = frame.trails is not None and len(frame.trails) >= 2
        if frame.field is not None and frame.field is not self._field:
            self._field = frame.field
            axis = slice_axis_of(tuple(frame.field.shape))
            if axis is not None and len(frame.field.positions):
                self._slice = (axis, float(frame.field.positions[0, axis]))
                self._update_plane()
            self._draw_field()
        self._update_legend()

    def particle_color(self) -> colors.RGBA:
        """The particles' RGBA now: the class they are asked for, or the plain particle colour."""
        return self._particle_rgba

    def _set_particle_class(self, c: int | None) -> None:
        rgba = particle_color(c)  # as the 2D view: the particles take the colour of the class asked for
        if rgba != self._particle_rgba:
            self._particle_rgba = rgba
            self._particle_item.setData(color=tuple(v / 255 for v in rgba))

    def clear_field(self) -> None:
        """Forget the drawn field (e.g. when the dataset changes)."""
        self._field = None
        self._magnitude_top = None
        if self._view is not None:
            self._field_item.setData(pos=np.zeros((0, 3), np.float32))
        self._update_legend()

    def set_layers(
        self,
        *,
        data: bool | None = None,
        field: bool | None = None,
        particles: bool | None = None,
        trails: bool | None = None,
        slice_plane: bool | None = None,
        true_field: bool | None = None,
        heatmap: str | None = None,
    ) -> None:
        """Visibility toggles; None leaves a layer as it is. `true_field` and `heatmap` are
        accepted so the main window can send `Plot2D`'s toggles unchanged; 3D draws neither."""
        for key, value in (
            ("data", data),
            ("field", field),
            ("particles", particles),
            ("trails", trails),
            ("slice_plane", slice_plane),
        ):
            if value is not None:
                self._layers[key] = bool(value)
        self._apply_layers()

    def layers(self) -> dict[str, bool]:
        return dict(self._layers)

    def set_normalized_arrows(self, on: bool) -> None:
        """Equal-length arrows (direction only; colour still tells magnitude) vs length ∝ |score|."""
        if bool(on) != self._normalized:
            self._normalized = bool(on)
            self._draw_field()

    def set_slice(self, axis: int | None, value: float = 0.0) -> None:
        """Show the plane x[axis] = value (where `FieldView(slice_axis=axis, slice_value=value)`
        evaluates the field); axis None hides it (a full 3D field)."""
        if axis is not None and axis not in (0, 1, 2):
            raise ValueError(f"slice axis must be 0, 1 or 2, got {axis!r}")
        self._slice = None if axis is None else (int(axis), float(value))
        self._update_plane()

    def slice(self) -> tuple[int, float] | None:
        return self._slice

    def _apply_layers(self) -> None:
        if self._view is None:
            return
        self._data_item.setVisible(self._layers["data"])
        self._source_item.setVisible(self._layers["data"] and len(self._source_points) > 0)
        self._field_item.setVisible(self._layers["field"])
        self._particle_item.setVisible(self._layers["particles"])
        self._trail_item.setVisible(self._layers["trails"])
        show_plane = self._layers["slice_plane"] and self._slice is not None
        self._plane_item.setVisible(show_plane)
        self._plane_edge_item.setVisible(show_plane)
        self._update_legend()

    def set_legend_names(self, shows: str | None = None, particles: str | None = None) -> None:
        """As `Plot2D.set_legend_names`: what the arrows are, what to call the particles."""
        self._shows = shows if shows is not None else self._shows
        self._particles_name = particles if particles is not None else self._particles_name
        self._update_legend()

    def legend_rows(self) -> list:
        layers = dict(self._layers)
        layers["field"] = layers["field"] and self._field is not None
        layers["data"] = layers["data"] and len(self._points) > 0
        layers["particles"] = layers["particles"] and self._has_particles
        layers["trails"] = layers["trails"] and self._has_trails
        return legend_entries(layers, shows=self._shows, magnitude_top=self._magnitude_top,
                              particles=self._particles_name, dim=3, particle_color=self._particle_rgba)

    def _update_legend(self) -> None:
        if self.legend is not None:
            rows = self.legend_rows()
            if rows != self.legend.entries:
                self.legend.set_entries(rows)

    # -- drawing ----------------------------------------------------------------------------
    def _draw_trails(self, trails: np.ndarray | None) -> None:
        if trails is None or len(trails) < 2:
            self._trail_item.setData(pos=np.zeros((0, 3), np.float32))
            return
        t = np.asarray(trails, dtype=np.float32)[:, :MAX_TRAILS]  # (T, m, D), oldest first
        t = _as3(t.reshape(-1, t.shape[2])).reshape(t.shape[0], t.shape[1], 3)
        # every consecutive pair of a particle's path is one segment: (T-1, m, 2, 3)
        seg = np.stack([t[:-1], t[1:]], axis=2)
        self._trail_item.setData(pos=seg.reshape(-1, 3))

    def _draw_field(self) -> None:
        f = self._field
        if self._view is None or f is None:
            return
        pos = _as3(f.positions)
        vec = _as3(f.vectors).astype(np.float64)
        axis = slice_axis_of(tuple(f.shape))
        if axis is not None:
            vec[:, axis] = 0.0  # the in-plane part: the field as the 2D slice view shows it
        scale, cap, top = arrow_scale(np.linalg.norm(vec, axis=1), grid_spacing(tuple(f.shape), pos),
                                      self._normalized)
        self._magnitude_top = top
        normal = None if axis is None else np.eye(3)[axis]
        verts, cols = arrow_lines_3d(pos, vec, scale, self._normalized, max_length=cap, reference=top, plane_normal=normal)
        self._field_item.setData(pos=verts, color=cols)

    def _update_frame_items(self) -> None:
        """Floor grid on round coordinates under the data, and an x/y/z triad at its corner."""
        (x0, x1), (y0, y1), (z0, z1) = self._bounds
        step = _nice_step(max(x1 - x0, y1 - y0))
        # lines on round coordinates, inside the box (so inside the sphere `fit_to` frames)
        gx0, gx1 = math.ceil(x0 / step) * step, math.floor(x1 / step) * step
        gy0, gy1 = math.ceil(y0 / step) * step, math.floor(y1 / step) * step
        self._grid_item.setSize(gx1 - gx0, gy1 - gy0, 1)
        self._grid_item.setSpacing(step, step, step)
        self._grid_item.resetTransform()
        self._grid_item.translate((gx0 + gx1) / 2, (gy0 + gy1) / 2, z0)
        length = 0.2 * max(x1 - x0, y1 - y0, z1 - z0)
        corner = np.array([gx0, gy0, z0], np.float32)
        ends = corner + length * np.eye(3, dtype=np.float32)
        pos = np.stack([np.repeat(corner[None], 3, axis=0), ends], axis=1).reshape(-1, 3)
        cols = np.repeat(np.array(_AXES, np.float32), 2, axis=0)
        self._axes_item.setData(pos=pos, color=cols)

    def _update_plane(self) -> None:
        if self._view is None:
            return
        if self._slice is not None:
            quad = plane_quad(*self._slice, self._bounds)
            self._plane_item.setMeshData(vertexes=quad, faces=np.array([[0, 1, 2], [0, 2, 3]], np.uint32))
            self._plane_edge_item.setData(pos=quad[[0, 1, 1, 2, 2, 3, 3, 0]])
        self._apply_layers()

    # -- clicks ---------------------------------------------------------------------------------
    def set_spawn_tool(self, on: bool) -> None:
        """With the spawn tool a left click (not a drag, which still orbits) asks for particles there."""
        self._spawn_tool = bool(on)

    def pick(self, x: float, y: float) -> np.ndarray:
        """The 3D point under widget pixel (x, y): on the slice plane when shown, else at the depth
        of the orbit centre (`pick_point`)."""
        if self._view is None:
            return np.zeros(3)
        m = self._view.viewMatrix()
        view_matrix = np.array(m.data(), dtype=np.float64).reshape(4, 4).T  # Qt stores column-major
        c = self._view.opts["center"]
        origin, direction = click_ray(view_matrix, float(self._view.opts["fov"]),
                                      (self._view.width(), self._view.height()), (x, y))
        plane = self._slice if self._layers.get("slice_plane", True) else None
        return pick_point(origin, direction, np.array([c.x(), c.y(), c.z()]), plane)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._view and self._spawn_tool:
            kind = event.type()
            if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
                self._press = event.position()
            elif kind == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
                press, self._press = self._press, None
                pos = event.position()
                if press is not None and (pos - press).manhattanLength() <= CLICK_SLOP_PX:
                    self.spawn_requested.emit(*(float(v) for v in self.pick(pos.x(), pos.y())))
        return False  # the view still orbits, pans and zooms

    # -- camera and output ------------------------------------------------------------------
    def field_bounds(self) -> tuple[tuple[float, float], ...]:
        """A cubic box around the data with a margin, ((x0, x1), (y0, y1), (z0, z1)), for
        `FieldView.bounds` (cubic, so the 3D grid's cells are cubes)."""
        return self._bounds

    def fit_to(self, points: np.ndarray | None = None, margin: float = FIT_MARGIN) -> None:
        """Look at the centre of the points' field box (`default_bounds`: what the grid, the
        arrows and the floor span) from far enough that the box's bounding sphere fits the narrower
        field of view at every orbit angle (default: the data)."""
        p = self._points if points is None else _as3(points)
        p = p[np.isfinite(p).all(axis=1)]
        if self._view is None:
            return
        from pyqtgraph import Vector

        box = np.array(default_bounds(p) if len(p) else ((-1.0, 1.0),) * 3, dtype=np.float64)
        center = box.mean(axis=1)
        half = float((box[:, 1] - box[:, 0]).max()) / 2
        radius = max(half * math.sqrt(3), 1e-3)  # the box's circumscribed sphere: fits every angle
        fov = math.radians(self._view.opts["fov"])  # horizontal field of view
        w, h = max(self._view.width(), 1), max(self._view.height(), 1)
        half_angle = math.atan(math.tan(fov / 2) * min(1.0, h / w))  # the narrower half-angle
        distance = radius * (1 + margin) / math.sin(half_angle)
        self._view.setCameraPosition(pos=Vector(*center), distance=distance)

    def set_camera(self, azimuth: float, elevation: float, distance: float | None = None) -> None:
        """Camera angles in degrees (azimuth about +z, elevation above the x-y plane), as in
        `sgm_core.render.Camera`; distance in data units, None keeps it."""
        if self._view is not None:
            self._view.setCameraPosition(
                azimuth=float(azimuth), elevation=float(elevation), distance=None if distance is None else float(distance)
            )

    def camera(self) -> dict[str, float | tuple[float, float, float]]:
        """azimuth, elevation, distance, center: enough to restore the view or match an export."""
        if self._view is None:
            return {"azimuth": DEFAULT_AZIMUTH, "elevation": DEFAULT_ELEVATION, "distance": 10.0, "center": (0.0, 0.0, 0.0)}
        o = self._view.opts
        c = o["center"]
        return {
            "azimuth": float(o["azimuth"]),
            "elevation": float(o["elevation"]),
            "distance": float(o["distance"]),
            "center": (float(c.x()), float(c.y()), float(c.z())),
        }

    def orbit(self, degrees: float) -> None:
        """Turn the camera `degrees` about the vertical axis (an orbiting export calls this per frame)."""
        if self._view is not None:
            self._view.orbit(float(degrees), 0.0)

    def figure_image(self, width: int, height: int) -> QImage | None:
        """The scene rendered off-screen at `width` x `height` pixels for a figure (the camera as
        shown; the field of view is vertical, so a wider figure shows more at the sides), with
        the legend painted top-left as the overlay shows it. None without GL."""
        if self._view is None:
            return None
        w, h = int(width), int(height)
        bgra = self._view.renderToArray((w, h))  # tiles of an off-screen framebuffer
        rgb = np.ascontiguousarray(bgra[..., [2, 1, 0]])
        image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self._view.doneCurrent()
        if self.legend is not None and self.legend.isVisibleTo(self) and self.legend.entries:
            p = QPainter(image)
            p.translate(8, 8)
            paint_legend(p, self.legend.entries, legend_font(self.legend.font()))
            p.end()
        return image

    def grab_image(self) -> QImage:
        """The rendered scene (the GL framebuffer, device pixels), or the widget when GL is off."""
        if self._view is None:
            return self.grab().toImage()
        return self._view.grabFramebuffer()

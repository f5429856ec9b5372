"""The main window's 3D mode: which view is in the middle, the slice controls, Make 3D.

When the session's data is 3D the central area shows `Plot3D` instead of `Plot2D` (a
`QStackedWidget` holds both; Plot3D is built the first time 3D data arrives, so a 2D session
never creates a GL context), the 2D drawing tools are disabled, and the View panel shows a
"3D field" group: the slice axis (off = arrows on a coarse full 3D grid), the slice position
within the data, and a small face-on view of the field in that plane. Tools ▸ Make 3D from
drawing… lifts the 2D canvas into 3D as one undoable step.

Everything here listens to the Session and talks to the window through a few hooks it calls
(`field_view`, `show_frame`, `set_layers`, `clear_field`), so the window's own code stays 2D. It
gets a `FeatureContext` (app/context.py) and `Places3D` (where its widgets go, the window hooks it
calls), never the window itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from sgm_core.errors import ConfigError, DataError
from sgm_core.live import FieldView

from .commands import ReplaceData
from .lift_dialog import LiftDialog
from .panels import action_button, tipped_combo
from .session import DataState
from .views.plot3d import DEFAULT_AZIMUTH, DEFAULT_ELEVATION, Plot3D
from .views.slice_view import SliceView

if TYPE_CHECKING:
    from PySide6.QtWidgets import QLayout, QMenu, QStatusBar

    from .context import FeatureContext
    from .panels.view_panel import ViewPanel

AXIS_CHOICES = ("off", "x", "y", "z")  # "off": the field on a coarse full 3D grid, no plane
SLICE_TICKS = 200  # slider resolution over the data's extent along the slice axis
SLICE_MATCH_TOL = 1e-5  # relative: a field's plane is stored in float32, the slice value in float64
DRAW_TOOLS = ("brush", "point", "eraser")  # window actions "tool_<name>", 2D only (spawn works in 3D too)
TOOL_TIP_3D = 'Drawing is 2D: draw on a 2D canvas, then use Tools ▸ "Make 3D from drawing…"'
MAKE_3D_TIP = "Turn the 2D drawing into 3D points: on a plane, extruded or revolved (undoable)"
MAKE_3D_TIP_IN_3D = "The data is already 3D: undo, or load 2D data, to lift another drawing"
NO_GL_STATUS = "3D needs OpenGL"
NO_GL_DETAIL = ("3D needs OpenGL, which this display does not offer: the 3D data loads and trains, "
                "but is not drawn; 2D works as usual")
HEATMAP_TIP_3D = "Heatmaps are 2D only (off in 3D)"
TRUE_FIELD_TIP_3D = "The reference field is drawn in 2D only"
NOISY_TIP_3D = "q_σ samples are drawn in 2D only"
_LAYER_KEYS = ("data", "field", "particles", "trails")  # the session layers the 3D views draw


def axis_index(name: str) -> int | None:
    """"x"/"y"/"z" -> 0/1/2, "off" -> None (ConfigError for anything else)."""
    if name not in AXIS_CHOICES:
        raise ConfigError(f"slice axis must be one of {', '.join(AXIS_CHOICES)}, got {name!r}")
    return None if name == "off" else AXIS_CHOICES.index(name) - 1


def axis_name(axis: int | None) -> str:
    return "off" if axis is None else AXIS_CHOICES[axis + 1]


def data_extent(points: np.ndarray, axis: int) -> tuple[float, float]:
    """The finite data's (min, max) along `axis`; (-1, 1) without data."""
    p = np.asarray(points, dtype=np.float64)
    col = p[:, axis][np.isfinite(p[:, axis])] if p.ndim == 2 and p.shape[1] > axis else np.zeros(0)
    return (float(col.min()), float(col.max())) if col.size else (-1.0, 1.0)


def slider_to_value(position: int, lo: float, hi: float) -> float:
    frac = min(max(position / SLICE_TICKS, 0.0), 1.0)
    return lo + frac * (hi - lo)


def value_to_slider(value: float, lo: float, hi: float) -> int:
    return 0 if hi <= lo else round(SLICE_TICKS * (min(max(value, lo), hi) - lo) / (hi - lo))


def field_matches(field: Any, axis: int | None, value: float) -> bool:
    """Whether a 3D `FieldGrid` is the one the slice settings ask for: a full grid when `axis` is
    None, else the plane x[axis] = value (shape 1 along the axis, positions on the plane)."""
    shape = tuple(field.shape)
    flat = [a for a, n in enumerate(shape) if n == 1] if len(shape) == 3 else []
    if axis is None:
        return not flat
    if flat != [axis] or not len(field.positions):
        return False
    return abs(float(field.positions[0, axis]) - value) <= SLICE_MATCH_TOL * (1.0 + abs(value))


def _finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return v


class SliceControls(QGroupBox):
    """The View panel's 3D group: slice axis, slice position, and the field on that plane."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("3D field", parent)
        self.setToolTip("Where the 3D view draws the score field: a coarse 3D grid, or a plane you move")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        tips = {"off": "Arrows on a coarse grid through the whole 3D box",
                "x": "Arrows on the plane x = position", "y": "Arrows on the plane y = position",
                "z": "Arrows on the plane z = position"}
        self.axis_combo = tipped_combo((name, name, tips[name]) for name in AXIS_CHOICES)
        self.axis_combo.setToolTip("Slice axis: the field on a plane normal to it (off: a coarse full 3D grid)")
        form.addRow("Slice", self.axis_combo)
        row = QHBoxLayout()
        self.position_slider = QSlider(Qt.Orientation.Horizontal)
        self.position_slider.setRange(0, SLICE_TICKS)
        self.position_slider.setToolTip("Where the slice plane cuts the data (from its lowest to its highest point)")
        self.value_label = QLabel("–")
        self.value_label.setMinimumWidth(48)
        self.value_label.setToolTip("The slice plane's coordinate along its axis (data units)")
        row.addWidget(self.position_slider, 1)
        row.addWidget(self.value_label)
        form.addRow("Position", row)
        self.slice_view = SliceView()
        self.slice_view.setToolTip("The learned field on the slice plane, seen face-on: in-plane components, "
                                   "coloured by magnitude; data and particles near the plane")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.slice_view)


@dataclass(frozen=True)
class Places3D:
    """Where the 3D mode puts its widgets in the window, and the window's hooks it calls."""

    status_bar: QStatusBar  # the "no OpenGL" note
    tools_menu: QMenu | None  # Tools ▸ Make 3D from drawing…
    data_layout: QLayout | None  # the Data panel's: the Make 3D button
    view_panel: ViewPanel  # the slice controls go in; its 2D-only controls are disabled in 3D
    drop_target: QObject  # file drops on the 3D view reach it (the window's event filter)
    set_tool: Callable[[str], None]  # the window's tool ("pan" when 3D data arrives)
    spawn: Callable[[tuple[float, ...]], None]  # a spawn click at a 3D point
    request_view: Callable[[], None]  # ask the engine for a field on the new slice (debounced)


class Mode3D(QObject):
    """Switches the window between its 2D canvas and the 3D view by the data's dimension."""

    mode_changed = Signal(bool)  # True: now showing 3D data
    slice_changed = Signal()  # the slice plane's axis or position moved (the Condition tool holds it)

    def __init__(self, ctx: FeatureContext, places: Places3D) -> None:
        super().__init__(ctx.parent)
        self.ctx = ctx
        self.places = places
        self.session = ctx.session
        self.plot2d = ctx.canvas.plot
        self._plot3d: Plot3D | None = None
        self._legend_names: tuple[str | None, str | None] = (None, None)
        self._source: tuple[np.ndarray | None, bool] = (None, False)  # the Source layer's points, faint
        self._is_3d = False
        self._axis: int | None = None
        self._value: float | None = None  # None: the middle of the data along the axis
        self._camera = (DEFAULT_AZIMUTH, DEFAULT_ELEVATION)  # kept for when there is no GL view
        self._fitted: np.ndarray | None = None  # the points the 3D camera was last fitted to
        self._tool_tips: dict[str, str] = {}
        self._dialog: LiftDialog | None = None

        # the central stack, in the canvas's place
        self.stack = QStackedWidget()
        holder = self.plot2d.parentWidget()
        if holder is not None and holder.layout() is not None:
            holder.layout().replaceWidget(self.plot2d, self.stack)
        self.stack.addWidget(self.plot2d)
        self.stack.setCurrentWidget(self.plot2d)

        bar = places.status_bar
        self.gl_status = QLabel(NO_GL_STATUS)
        self.gl_status.setStyleSheet("color: #8a1c1c;")
        self.gl_status.setToolTip(NO_GL_DETAIL)
        self.gl_status.hide()
        bar.addPermanentWidget(self.gl_status)

        self.make_3d_action = ctx.actions.add("make_3d", "Make 3D from drawing…", MAKE_3D_TIP,
                                              slot=self.open_lift_dialog)
        tools = places.tools_menu
        if tools is not None:
            tools.addSeparator()
            tools.addAction(self.make_3d_action)
        panel_layout = places.data_layout
        if panel_layout is not None:  # under the Open / Clear buttons, above the stretch
            panel_layout.insertWidget(max(panel_layout.count() - 1, 0), action_button(self.make_3d_action))

        self.controls = SliceControls()
        self.controls.hide()
        view_layout = places.view_panel.layout()
        if view_layout is not None:
            view_layout.insertWidget(max(view_layout.count() - 1, 0), self.controls)
        self.controls.axis_combo.currentIndexChanged.connect(
            lambda _: self.set_slice(axis_index(self.controls.axis_combo.currentData())))
        self.controls.position_slider.valueChanged.connect(self._on_slider)

        self.session.data_changed.connect(self._on_data_changed)
        self.session.view_changed.connect(self._on_view_changed)
        self._on_data_changed()

    # ------------------------------------------------------------------ state
    @property
    def is_3d(self) -> bool:
        return self._is_3d

    @property
    def plot3d(self) -> Plot3D:
        """The 3D view, built on first use."""
        if self._plot3d is None:
            plot = Plot3D()
            plot.setToolTip("The 3D view: data, learned score field and particles (drag orbits, wheel zooms, "
                            "ctrl-drag pans)")
            for target in (plot, *plot.findChildren(QWidget)):
                target.installEventFilter(self.places.drop_target)  # file drops reach the window, as on the canvas
            if plot.message_label is not None:  # no OpenGL: say so plainly, in the middle of the window
                plot.message_label.setStyleSheet("color: #8a1c1c; font-size: 15px;")
            self.stack.addWidget(plot)
            self._plot3d = plot
            plot.set_layers(**self._layers())
            plot.set_legend_names(*self._legend_names)
            plot.set_source_points(*self._source)
            plot.set_normalized_arrows(self.session.view.normalized_arrows)
            plot.set_camera(*self._camera)
            spawn = self.ctx.actions.get("tool_spawn")
            plot.set_spawn_tool(spawn is not None and spawn.isChecked())
            plot.spawn_requested.connect(lambda x, y, z: self.places.spawn((x, y, z)))
        return self._plot3d

    def set_tool(self, tool: str) -> None:
        """The window's tool changed: the 3D view listens for spawn clicks with the spawn tool."""
        if self._plot3d is not None:
            self._plot3d.set_spawn_tool(tool == "spawn")

    def active_view(self) -> QWidget:
        """The view in the middle now: `Plot3D` for 3D data, else the 2D canvas (`window.plot`)."""
        return self.plot3d if self._is_3d else self.plot2d

    def gl_available(self) -> bool:
        return self._plot3d is not None and self._plot3d.gl_available

    def slice_axis(self) -> int | None:
        return self._axis

    def slice_value(self) -> float:
        """The slice plane's coordinate: as set (clamped to the data), or the data's middle."""
        if self._axis is None:
            return 0.0 if self._value is None else self._value
        lo, hi = data_extent(self.session.points, self._axis)
        return (lo + hi) / 2 if self._value is None else min(max(self._value, lo), hi)

    def camera_angles(self) -> tuple[float, float]:
        if self.gl_available():
            cam = self.plot3d.camera()
            return float(cam["azimuth"]), float(cam["elevation"])
        return self._camera

    # ------------------------------------------------------------------ window hooks
    def field_view(self, resolution: int) -> FieldView:
        """The 3D FieldView: the 3D view's field box, the slice, the session's σ. No reference
        field (3D draws none) and no heatmaps (the worker computes those for 2D only)."""
        bounds = tuple((float(lo), float(hi)) for lo, hi in self.plot3d.field_bounds())
        return FieldView(bounds=bounds, resolution=resolution, sigma=self.session.field_sigma(), truth=False,
                         slice_axis=self._axis, slice_value=self.slice_value() if self._axis is not None else 0.0)

    def show_frame(self, frame: Any) -> bool:
        """Draw a frame in 3D; False when the 2D canvas should draw it. A frame of the other
        dimension (from the engine before a rebuild) is dropped."""
        dim = int(getattr(frame, "dim", 2))
        if not self._is_3d:
            return dim != 2
        if dim == 3:
            if frame.field is not None and not field_matches(frame.field, self._axis, self.slice_value()):
                frame = replace(frame, field=None)  # asked for before the slice moved: keep the plane put
            self.plot3d.show_frame(frame)
            self.controls.slice_view.show_frame(frame)
        return True

    def set_source_points(self, points: np.ndarray | None, faint: bool = False) -> None:
        """A flow's source distribution, for the 3D view too (kept until the view is built)."""
        self._source = (None if points is None else np.asarray(points, np.float32), bool(faint))
        if self._plot3d is not None:
            self._plot3d.set_source_points(*self._source)

    def set_legend_names(self, shows: str, particles: str) -> None:
        """What the 3D legend calls the arrows and the particles (as `Plot2D.set_legend_names`)."""
        self._legend_names = (shows, particles)
        if self._plot3d is not None:
            self._plot3d.set_legend_names(shows, particles)

    def set_layers(self, layers: dict[str, Any]) -> None:
        if self._plot3d is not None:
            self._plot3d.set_layers(**{k: bool(v) for k, v in layers.items() if k in _LAYER_KEYS})
        self.controls.slice_view.set_layers(**{k: bool(v) for k, v in layers.items() if k in _LAYER_KEYS})

    def clear_field(self) -> None:
        if self._plot3d is not None:
            self._plot3d.clear_field()
        self.controls.slice_view.clear_field()

    # ------------------------------------------------------------------ slice
    def set_slice(self, axis: int | None, value: float | None = None) -> None:
        """Slice along `axis` (None: the coarse full 3D grid) at `value` (None: keep the current
        position on the same axis, the data's middle on a new one); the field follows."""
        if axis is not None and axis not in (0, 1, 2):
            raise ConfigError(f"slice axis must be 0, 1, 2 or None, got {axis!r}")
        if axis != self._axis and value is None:
            self._value = None
        if value is not None:
            self._value = float(value)
        self._axis = axis
        self._sync_slice()
        self._request_field()
        self.slice_changed.emit()

    def _on_slider(self, position: int) -> None:
        if self._axis is None:
            return
        lo, hi = data_extent(self.session.points, self._axis)
        self.set_slice(self._axis, slider_to_value(position, lo, hi))

    def _sync_slice(self) -> None:
        c = self.controls
        blockers = [QSignalBlocker(w) for w in (c.axis_combo, c.position_slider)]
        c.axis_combo.setCurrentIndex(c.axis_combo.findData(axis_name(self._axis)))
        on = self._axis is not None
        c.position_slider.setEnabled(on)
        c.slice_view.setVisible(on)
        if on:
            lo, hi = data_extent(self.session.points, self._axis)
            value = self.slice_value()
            c.position_slider.setValue(value_to_slider(value, lo, hi))
            c.value_label.setText(f"{value:.3g}")
        else:
            c.value_label.setText("–")
        del blockers
        if self._is_3d:
            value = self.slice_value()
            self.plot3d.set_slice(self._axis, value)
            c.slice_view.set_slice(self._axis, value, self.plot3d.field_bounds())

    def _request_field(self) -> None:
        """Ask for a field on the new slice once the slider settles (the window's view debounce)."""
        if self._is_3d:
            self.places.request_view()

    # ------------------------------------------------------------------ mode switching
    def _on_data_changed(self) -> None:
        state = self.session.data
        is_3d = state.dim == 3
        if is_3d:
            plot = self.plot3d
            plot.set_points(state.points, state.labels)
            self.controls.slice_view.set_points(state.points, state.labels)
        if is_3d != self._is_3d:
            self._switch(is_3d)
        if is_3d:
            if state.points is not self._fitted:  # new 3D data (not a redraw): frame it
                self._fitted = state.points
                self.plot3d.fit_to(state.points)
            self._sync_slice()
        self.make_3d_action.setEnabled(not is_3d)
        self.make_3d_action.setToolTip(MAKE_3D_TIP_IN_3D if is_3d else MAKE_3D_TIP)

    def _switch(self, is_3d: bool) -> None:
        self._is_3d = is_3d
        self.stack.setCurrentWidget(self.plot3d if is_3d else self.plot2d)
        self.controls.setVisible(is_3d)
        if is_3d:
            self.places.set_tool("pan")
        for tool in DRAW_TOOLS:
            act = self.ctx.actions.get(f"tool_{tool}")
            if act is None:
                continue
            if is_3d:
                self._tool_tips.setdefault(tool, act.toolTip())
                act.setToolTip(TOOL_TIP_3D)
            elif tool in self._tool_tips:
                act.setToolTip(self._tool_tips.pop(tool))
            act.setEnabled(not is_3d)
        panel = self.places.view_panel
        for widget, tip in ((getattr(panel, "heatmap_combo", None), HEATMAP_TIP_3D),
                            (getattr(panel, "layer_checks", {}).get("true_field"), TRUE_FIELD_TIP_3D),
                            (getattr(panel, "noisy_check", None), NOISY_TIP_3D)):
            if widget is None:
                continue
            if is_3d:
                widget.setProperty("tip2d", widget.toolTip())
                widget.setToolTip(tip)
            elif widget.property("tip2d"):
                widget.setToolTip(widget.property("tip2d"))
            widget.setEnabled(not is_3d)
        no_gl = is_3d and not self.gl_available()
        self.gl_status.setVisible(no_gl)
        if no_gl:  # after the load's own "Loaded …" message, which follows this switch
            QTimer.singleShot(0, self, lambda: self.ctx.notifier.status(NO_GL_DETAIL, 10000))
        self.mode_changed.emit(is_3d)

    def _on_view_changed(self) -> None:
        on = self.session.view.normalized_arrows
        if self._plot3d is not None:
            self._plot3d.set_normalized_arrows(on)
        self.controls.slice_view.set_normalized_arrows(on)

    def _layers(self) -> dict[str, bool]:
        return {k: bool(v) for k, v in self.session.view.layers().items() if k in _LAYER_KEYS}

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        """The 3D view settings, JSON-ready: slice axis ("off"/"x"/"y"/"z") and position, and the
        camera's azimuth / elevation in degrees (`sgm_core.render.Camera`'s convention)."""
        azimuth, elevation = self.camera_angles()
        value = self.slice_value() if self._axis is not None and self._is_3d else self._value
        return {"slice_axis": axis_name(self._axis), "slice_value": value, "azimuth": azimuth, "elevation": elevation}

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """Install what `settings()` gave (any subset; other keys are ignored). ConfigError,
        before anything changes, when a value is unusable."""
        axis = axis_index(str(settings["slice_axis"])) if "slice_axis" in settings else self._axis
        value = settings.get("slice_value", self._value)
        value = None if value is None else _finite("slice_value", value)
        azimuth = _finite("azimuth", settings.get("azimuth", self.camera_angles()[0]))
        elevation = _finite("elevation", settings.get("elevation", self.camera_angles()[1]))
        if not -90.0 <= elevation <= 90.0:
            raise ConfigError(f"elevation must be within -90..90 degrees, got {elevation!r}")
        self._camera = (azimuth, elevation)
        if self._plot3d is not None:
            self._plot3d.set_camera(azimuth, elevation)
        self._axis, self._value = axis, value
        self._sync_slice()
        self._request_field()

    # ------------------------------------------------------------------ Make 3D
    def open_lift_dialog(self) -> LiftDialog | None:
        """Tools ▸ Make 3D from drawing…: a window-modal dialog (opened, never exec'd); OK
        replaces the data with the lifted points as one undoable step."""
        state = self.session.data
        if state.dim != 2:
            self.ctx.notifier.error("the data is already 3D: undo or load 2D data to lift a drawing")
            return None
        if len(state.points) == 0:
            self.ctx.notifier.error("the drawing is empty: draw some points in 2D first, then Make 3D")
            return None
        if self._dialog is not None:
            self._dialog.deleteLater()
        dialog = LiftDialog(state.points, seed=self.session.run_config.train.seed, parent=self.ctx.parent)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.accepted.connect(lambda: self.apply_lift(dialog))
        self._dialog = dialog
        dialog.open()
        return dialog

    def apply_lift(self, dialog: LiftDialog) -> bool:
        """Replace the 2D drawing with the dialog's 3D points (undo restores the drawing)."""
        before = self.session.data
        try:
            points, sources = dialog.lifted()
        except DataError as exc:
            self.ctx.notifier.error(str(exc))
            return False
        # each lifted point keeps the class of the drawn point it came from (extrude and revolve copy it)
        kept = before.labels is not None and len(before.labels) == len(before.points)
        state = DataState(points, dialog.description(), "drawn", None, before.jitter, "",
                          np.asarray(before.labels)[sources] if kept else None, before.classes if kept else ())
        self.session.undo_stack.push(ReplaceData(self.session, state))
        self.ctx.notifier.status(f"Made {len(points):,} 3D points ({dialog.description()}); "
                                 "Undo brings the drawing back", 6000)
        return True


__all__ = ["AXIS_CHOICES", "Mode3D", "Places3D", "SliceControls", "axis_index", "axis_name", "data_extent"]

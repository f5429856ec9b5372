"""The Condition tool (issue 16, inpainting): drag a line on the canvas, x = x0 (drag) or y = y0
(Shift+drag), and the particles sample p(. | line) live (sgm_core.conditioning, in the engine's
chain); a "Conditional" dock plots the truth's p(y | x0) along the line against the particles'
histogram, with both sets of mode weights. In 3D the tool holds the slice plane: the particles
sample the plane's conditional and follow its slider. Another tool: the joint again.

It gets the window's canvas, engine commands, session and actions, nothing else (STYLE 16).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget

from sgm_core.conditioning import AXES, is_exact

from .views import colors
from .views.plot2d import style_plot

HIST_BINS = 60
SIGNIFICANT_WEIGHT = 0.01  # modes of the conditional listed in the caption (lighter ones are noise)


class ConditionPlot(QWidget):
    """p(y | x0): the truth as a curve, the particles' free coordinate as a density histogram."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.caption = QLabel("Condition tool: drag a line on the canvas (Shift: horizontal)")
        self.caption.setWordWrap(True)
        self.plot = pg.PlotWidget(background=colors.BACKGROUND)
        style_plot(self.plot.getPlotItem())
        self.plot.setMinimumHeight(120)
        self.hist = pg.PlotCurveItem(np.array([0.0, 1.0]), np.zeros(1), stepMode="center", fillLevel=0,
                                     pen=pg.mkPen(colors.PARTICLE[:3], width=1), brush=pg.mkBrush(*colors.PARTICLE[:3], 90))
        self.truth = pg.PlotCurveItem(pen=pg.mkPen(colors.CONDITION_TRUTH, width=2))
        self.plot.addItem(self.hist)
        self.plot.addItem(self.truth)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot)
        self.last_weights: tuple[np.ndarray, np.ndarray] | None = None  # (truth, particles) of the caption

    def show_frame(self, frame) -> None:  # noqa: ANN001 - sgm_core.live.Frame
        curve = getattr(frame, "conditional", None)
        if curve is None:
            return
        y = np.asarray(frame.particles, np.float64)[:, curve.axis]
        y = y[np.isfinite(y)]
        edges = np.linspace(curve.grid[0], curve.grid[-1], HIST_BINS + 1)
        counts, _ = np.histogram(y, bins=edges)
        width = edges[1] - edges[0]
        self.hist.setData(edges, counts / max(len(y), 1) / width)
        self.truth.setData(curve.grid, curve.density)
        free = AXES[curve.axis]
        fixed = ", ".join(f"{AXES[i]} = {v:.3g}" for i, v in self.given) if self.given else ""
        text = f"p({free} | {fixed}) — {curve.kind} truth (line) vs particles (bars)"
        if len(curve.weights):
            keep = curve.weights > SIGNIFICANT_WEIGHT
            means, want = curve.means[keep], curve.weights[keep] / curve.weights[keep].sum()
            nearest = np.abs(y[:, None] - means[None]).argmin(1) if len(y) else np.zeros(0, int)
            got = np.bincount(nearest, minlength=len(means)) / max(len(y), 1)
            order = np.argsort(means)
            self.last_weights = (want[order], got[order])
            text += ("<br>mode weights (low to high " + free + "): truth " + " / ".join(f"{w:.2f}" for w in want[order])
                     + ", particles " + " / ".join(f"{w:.2f}" for w in got[order]))
        self.caption.setText(text)

    given: tuple[tuple[int, float], ...] = ()


class ConditionTool:
    """Wires the canvas's condition line to the engine and the Conditional dock."""

    def __init__(self, window) -> None:  # noqa: ANN001 - MainWindow
        self.window = window
        self.view = ConditionPlot()
        dock = QDockWidget("Conditional", window)
        dock.setObjectName("dock_conditional")
        dock.setWidget(self.view)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        dock.hide()
        self.dock = dock
        window.plot.condition_moved.connect(self._on_moved)
        window.actions_["tool_condition"].toggled.connect(self._on_toggled)
        window.session.frame_arrived.connect(self._on_frame)
        window.mode3d.slice_changed.connect(self._hold_slice)
        window.mode3d.mode_changed.connect(self._on_mode_changed)
        self.given: dict[int, float] | None = None

    @property
    def active(self) -> bool:
        return self.window.actions_["tool_condition"].isChecked()

    def _on_toggled(self, on: bool) -> None:
        if on:
            self.dock.show()
            self.dock.raise_()
            self._hold_slice()
        else:
            self._release()
            self.dock.hide()

    def _release(self) -> None:
        if self.given is not None:  # the joint again
            self.given = None
            self.view.given = ()
            self.window.worker.set_condition(None)

    def _on_mode_changed(self, is_3d: bool) -> None:
        self._release()
        self.window.plot.set_condition(None)
        if self.active:
            self._hold_slice()

    def _hold_slice(self) -> None:
        """3D: hold the slice plane's coordinate at its position (no slice: say how to get one)."""
        mode3d = self.window.mode3d
        if not (self.active and mode3d.is_3d):
            return
        axis = mode3d.slice_axis()
        if axis is None:
            self._release()
            self.view.caption.setText("3D: choose a slice axis (x, y or z) and the particles sample its plane's "
                                      "conditional; move the slider to move the plane")
            return
        self._set({axis: float(mode3d.slice_value())})
        self.view.caption.setText(f"particles sample p(· | {AXES[axis]} = {mode3d.slice_value():.3g}) on the slice "
                                  "plane (the 1D truth is drawn for a line, not a plane)")

    def _on_moved(self, axis: int, value: float) -> None:
        self._set({axis: value})

    def _set(self, given: dict[int, float]) -> None:
        self.given = given
        self.view.given = tuple(given.items())
        self.window.worker.set_condition(given)

    def _on_frame(self, frame) -> None:  # noqa: ANN001
        if self.given is not None and self.dock.isVisible():
            self.view.show_frame(frame)
            name = self.window.session.sampler_config.name
            if getattr(frame, "conditional", None) is not None and not is_exact(name):
                self.view.caption.setText(self.view.caption.text() + f"<br>{name} with a joint score is not exact "
                                          "for a conditional (its weights are biased; docs/conditioning.md)")


def install_condition_tool(window) -> ConditionTool:  # noqa: ANN001
    return ConditionTool(window)

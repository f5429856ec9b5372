"""Tools ▸ Steps vs quality: the trained model's samplers at 1, 2, 4, … network evaluations.

The measurement is `sgm_core.steps.steps_vs_quality` (the same rows `sgm steps` writes), run as one
task in the engine's host on the engine's EMA net, process and data, so the window never runs a
sampler itself. Three plots against the counted NFE per particle (log axis): SW ratio, MMD² and the
largest mode-weight error (mixtures only). Samplers the run cannot use (an SDE sampler on a one-σ
net, mala on a score net) are left out and named.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sgm_core.errors import ConfigError
from sgm_core.samplers import SAMPLER_SPECS

from .compare_window import EscapeCloses
from .engine_tasks import EngineTasks
from .layout_check import fit_to_screen
from .views import colors
from .views.axes import thin_axes

if TYPE_CHECKING:
    from .main_window import MainWindow

DEFAULT_CHECKED = ("euler", "heun", "dpm-solver", "ddim")  # the few-step solvers; others can be ticked
DEFAULT_STEPS = "1,2,4,8,16,32"
N_SAMPLES = 1000  # per cell: SW ratio's noise (~0.1) is far below the 1-step vs 32-step gap
PANELS = (("sw_ratio", "SW ratio (1 = a second data draw)"), ("mmd", "MMD² (unbiased)"),
          ("mode_weight_error", "largest mode-weight error"))
CURVE_COLORS = ((31, 119, 180), (44, 160, 44), (148, 103, 189), (214, 39, 40), (23, 190, 207),
                (140, 86, 75), (227, 119, 194), (127, 127, 127))


def parse_steps(text: str) -> tuple[int, ...]:
    """"1,2,4" -> (1, 2, 4); ConfigError (one sentence) unless every entry is a whole number 1..4096."""
    try:
        steps = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ConfigError(f"steps must be whole numbers separated by commas, not {text!r}") from None
    if not steps or not all(1 <= k <= 4096 for k in steps):
        raise ConfigError("give step counts from 1 to 4096, e.g. 1,2,4,8,16")
    return steps


def measure(samplers: Sequence[str], steps: Sequence[int], seed: int, engine: Any) -> tuple[list, list[str], str]:
    """In the engine's host: the rows of the samplers this run can use, the names left out, and
    what they were scored against. The samplers sample what the particles do: with the Condition
    tool on, the conditional on its line; with a class asked for, that class under its guidance w;
    and are scored against the same target as the Metrics dock (`LiveEngine.metric_target`)."""
    from sgm_core.config import SamplerConfig
    from sgm_core.samplers import log_density_of, make_sampler
    from sgm_core.steps import steps_vs_quality

    if engine is None:
        raise ConfigError("there is no trained model yet: load data and press Train")
    if engine.trainer.step == 0:  # a random net's samples say nothing of the samplers
        raise ConfigError("the model has not trained yet (step 0): press Train, then Run")
    usable, left_out = [], []
    for name in samplers:
        try:
            make_sampler(SamplerConfig(name=name, steps=1), engine.config.noise, engine.process)
            if SAMPLER_SPECS[name].needs_density:
                log_density_of(engine.trainer.ema_model)  # mala: an energy net's, or none
            usable.append(name)
        except ConfigError:
            left_out.append(name)
    rows = steps_vs_quality(engine.trainer.ema_model, engine.process, engine.config.noise, engine.dataset, engine.standardizer,
                            usable, steps, n=N_SAMPLES, seed=seed, device=engine.device, condition=engine.condition,
                            guide=engine.guide) if usable else []
    target = engine.metric_target().name
    if engine.guide is not None:
        target += f" (sampled with guidance w = {engine.guide[1]:g})"
    return rows, left_out, target


class StepsWindow(EscapeCloses, QWidget):
    """A top-level window over the main window's engine; Run measures, Esc closes."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.setWindowTitle("Steps vs quality")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.main = window
        self.tasks = EngineTasks(window.worker, self)
        self.rows: list = []
        self.sampler_list = QListWidget()
        for name in SAMPLER_SPECS:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in DEFAULT_CHECKED else Qt.CheckState.Unchecked)
            item.setToolTip(SAMPLER_SPECS[name].description)
            self.sampler_list.addItem(item)
        self.steps_edit = QLineEdit(DEFAULT_STEPS)
        self.steps_edit.setToolTip("Step counts to try (comma-separated); NFE is counted, so Heun shows 2 per step")
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Sample the trained model (EMA weights) with each sampler at each step count")
        self.run_button.clicked.connect(self.run)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        self.status = QLabel("Tick samplers and press Run: each runs on the trained model, "
                             f"{N_SAMPLES:,} samples per point, sampling what the particles sample (the "
                             "Condition tool's line, the class asked for) and scored as the Metrics dock scores them.")
        self.status.setWordWrap(True)
        side = QVBoxLayout()
        side.addWidget(QLabel("Samplers"))
        side.addWidget(self.sampler_list)
        side.addWidget(QLabel("Steps"))
        side.addWidget(self.steps_edit)
        side.addWidget(self.run_button)
        side.addWidget(close)
        side.addWidget(self.status)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setFixedWidth(220)
        plots = QVBoxLayout()
        self.plots: dict[str, pg.PlotWidget] = {}
        for key, title in PANELS:
            plot = pg.PlotWidget(background=colors.BACKGROUND, axisItems=thin_axes())  # no overlapping ticks
            plot.setTitle(title)
            plot.setLogMode(x=True, y=key != "mode_weight_error")
            plot.setLabel("bottom", "network evaluations per particle")
            plot.addLegend(offset=(-10, 10))
            plots.addWidget(plot)
            self.plots[key] = plot
        layout = QHBoxLayout(self)
        layout.addWidget(side_w)
        layout.addLayout(plots, 1)
        fit_to_screen(self, 900, 760)

    def checked(self) -> list[str]:
        return [self.sampler_list.item(i).text() for i in range(self.sampler_list.count())
                if self.sampler_list.item(i).checkState() == Qt.CheckState.Checked]

    def run(self) -> None:
        try:
            steps = parse_steps(self.steps_edit.text())
        except ConfigError as exc:
            self.status.setText(str(exc))
            return
        samplers = self.checked()
        if not samplers:
            self.status.setText("Tick at least one sampler.")
            return
        self.run_button.setEnabled(False)
        self.status.setText("Sampling…")
        seed = self.main.session.run_config.train.seed
        self.tasks.submit(partial(measure, tuple(samplers), steps, seed), self._on_rows, self._on_failed)

    def _on_failed(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.status.setText(message)

    def _on_rows(self, result: tuple[list, list[str], str]) -> None:
        self.run_button.setEnabled(True)
        self.rows, left_out, target = result
        for key, plot in self.plots.items():
            plot.clear()
            plot.addLegend(offset=(-10, 10))
            for i, name in enumerate(dict.fromkeys(r.sampler for r in self.rows)):
                mine = [r for r in self.rows if r.sampler == name and math.isfinite(getattr(r, key))]
                values = [max(getattr(r, key), 1e-6) if key != "mode_weight_error" else getattr(r, key) for r in mine]
                plot.plot([r.nfe for r in mine], values, pen=pg.mkPen(CURVE_COLORS[i % len(CURVE_COLORS)], width=2),
                          symbol="o", symbolSize=6, symbolBrush=CURVE_COLORS[i % len(CURVE_COLORS)], name=name)
        note = f" Left out (this run cannot use them): {', '.join(left_out)}." if left_out else ""
        self.status.setText(f"{len(self.rows)} points measured, scored against {target}.{note}")


def install_steps_menu(window: MainWindow) -> None:
    """Tools ▸ Steps vs quality…"""
    from PySide6.QtGui import QAction

    from .compare_window import find_menu

    menu = find_menu(window.menuBar(), "T&ools") or window.menuBar().addMenu("T&ools")
    action = QAction("Steps vs quality…", window)
    tip = "Sample the trained model with few-step samplers at 1, 2, 4, … evaluations and plot quality against cost"
    action.setToolTip(tip)
    action.setStatusTip(tip)

    def open_window() -> None:
        if getattr(window, "steps_window", None) is None:
            window.steps_window = StepsWindow(window)
        window.steps_window.show()
        window.steps_window.raise_()

    action.triggered.connect(open_window)
    menu.addAction(action)
    window.actions_["steps_vs_quality"] = action

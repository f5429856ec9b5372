"""Compare mode: several losses (or samplers) side by side, in linked views, trained and run alike.

Tools ▸ Compare losses… trains 2–4 losses on the same data, seed and network, each in its own
plot, with one shared loss plot; Compare noise levels… does the same for 2–4 values of the loss's
noise setting (σ for one-σ DSM, σ max for ladders and the VE SDE, β max for VP); Compare samplers…
trains one model and runs K samplers from one shared starting draw. 3D data is compared in 2D plots that look along one axis: the
particles projected, the field on the plane through the middle (the metrics stay 3D). All torch
work happens in the window's own compare process (`app.compare_worker.CompareLink`; a thread with
SGM_ENGINE=thread); this window draws the frame lists it receives and ends that host when it closes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMenuBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sgm_core.config import RunConfig, SamplerConfig
from sgm_core.datasets import Dataset
from sgm_core.errors import DataError
from sgm_core.live import default_bounds
from sgm_core.losses import LOSSES, field_shows
from sgm_core.progress import RunClock
from sgm_core.samplers import SAMPLERS

from .compare_worker import CompareEntry, CompareFrame, CompareSpec, make_compare_worker
from .layout_check import fit_to_screen
from .panels import int_box
from .progress import fmt_seconds
from .source_layer import flows_from_source
from .views import colors
from .views.geometry import in_plane_axes
from .views.loss_view import ema
from .views.plot2d import Plot2D, cache_axes, style_plot

DEFAULT_LOSSES = ("sm", "ssm", "dsm", "ncsn")
DEFAULT_SAMPLERS = ("langevin", "annealed", "sde", "ode", "heun")  # one of each family; at most 5 fit the grid
SAMPLER_MODEL_LOSSES = ("ncsn", "ve-sde")  # models every sampler can use (a VP net never saw σ > 1)
LIMITS = {"losses": (2, 4), "noise": (2, 4), "samplers": (2, 5)}  # how many entries may be compared at once
# Compare noise levels: the setting each noise kind varies, its label, and the values offered
NOISE_PARAMS = {"single": ("sigma", "σ", (0.05, 0.1, 0.3, 1.0)),
                "ladder": ("sigma_max", "σ max", (0.3, 1.0, 3.0, 10.0)),
                "ve": ("sigma_max", "σ max", (0.3, 1.0, 3.0, 10.0)),
                "vp": ("beta_max", "β max", (5.0, 10.0, 20.0, 40.0)),
                "ddpm": ("timesteps", "T", (50, 100, 300, 1000))}
# sm/ssm (and fm, ot-fm, edm, whose paths have no setting) have no noise setting: their noise
# comparison is one-σ DSM's
NOISELESS_STAND_IN = "dsm"
DEFAULT_STEPS = 2000  # per loss: ~20–60 s for four losses on one core with the default network
DEFAULT_PARTICLES = 1000
BOUNDS_DELAY_MS = 120  # coalesce pan/zoom into one field request
# one colour per plot (titles and curves); none is the particles' orange
ENTRY_COLORS = ((31, 119, 180), (44, 160, 44), (148, 103, 189), (214, 39, 40), (23, 190, 207),
                (140, 86, 75), (227, 119, 194), (127, 127, 127))
GRID_SHAPES = {1: (1, 1), 2: (1, 2), 3: (1, 3), 4: (2, 2), 5: (2, 3)}
VIEW_AXES = (("z (x–y plane)", 2), ("y (x–z plane)", 1), ("x (y–z plane)", 0))  # 3D: what the plots look along
AXIS_NAMES = "xyz"
SAMPLING_UNITS = 1000  # the sampling phase's progress, in these units, for its ETA (RunClock counts steps)


def _positive(text: str) -> float | None:
    """A typed noise value: a finite number > 0, else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class MainModel:
    """The main window's trained model, as a comparison may ask for it: how many steps it trained,
    and `fetch(on_done, on_fail)`, which snapshots its EMA weights in the engine (a ModelSnapshot,
    or None when there is no model) and calls back in the GUI thread."""

    steps: int
    fetch: Callable[[Callable[[object], None], Callable[[str], None]], None]


class EscapeCloses:
    """Mixed into a top-level QWidget: Esc closes it (and so stops its run), as a dialog's would."""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(event)


class CompareWindow(EscapeCloses, QWidget):
    """Side-by-side training ("losses") or sampling ("samplers"); owns its CompareWorker."""

    closed = Signal()

    def __init__(self, mode: str, dataset: Dataset, points: np.ndarray, config: RunConfig, data_name: str = "data",
                 checked: tuple[str, ...] | None = None, n_particles: int = DEFAULT_PARTICLES,
                 train_steps: int = DEFAULT_STEPS, main_model: MainModel | None = None,
                 parent: QWidget | None = None, source: Dataset | None = None) -> None:
        super().__init__(parent)
        if mode not in LIMITS:
            raise ValueError(f"mode must be 'losses', 'noise' or 'samplers', not {mode!r}")
        if mode == "noise" and LOSSES[config.loss.name].noise not in NOISE_PARAMS:
            config = replace(config, loss=replace(config.loss, name=NOISELESS_STAND_IN))
        self.mode = mode
        self.dataset = dataset
        self.source = source  # the main window's Source layer: fm / ot-fm runs flow from it too
        self.points = np.asarray(points, np.float32)
        self.config = config
        self.frames_received = 0
        self.last_frames: list[CompareFrame] = []
        self.phase = "idle"
        self.plots: list[Plot2D] = []
        self._flows: list[bool] = []  # per plot: its run starts from the source
        self._labels: list[str] = []
        self._built: tuple | None = None
        self._problem = ""  # why Start cannot go (the selection), shown in the hint
        self._running = False  # Start pressed and neither Stop nor the end since
        self._clock = RunClock()  # wall clock of the phase under way, for its ETA
        self._clock_phase = ""
        self.main_model = main_model if mode == "samplers" else None
        self._main_snapshot = None  # the main window's model, once fetched for a run
        self._fetching = False
        self.setWindowTitle(f"Compare {mode} — {data_name} — Score Field Playground")

        # -- header --
        title = QLabel({"losses": "Compare losses", "noise": "Compare noise levels",
                        "samplers": "Compare samplers"}[mode])
        title.setStyleSheet("font-size: 15px; font-weight: 600; color: #1f3a5f;")
        m = config.model
        if mode == "losses":
            sub = (f"{data_name} · {m.kind} net {m.depth}×{m.width} · batch {config.train.batch} · seed "
                   f"{config.train.seed} — the same data, seed and network for every loss, compared after equal steps")
        elif mode == "noise":
            sub = (f"{data_name} · {config.loss.name} · {m.kind} net {m.depth}×{m.width} · seed {config.train.seed} — "
                   f"only {self.noise_label()} differs (standardised units); each samples with {config.loss.name}'s own "
                   "sampler at its own noise settings")
        else:
            sub = (f"{data_name} · one {self._model_loss()} model ({m.kind} net {m.depth}×{m.width}) trained first, then "
                   "every sampler starts from the same draw of the prior")
        self._own_subtitle = sub
        self._main_subtitle = (f"{data_name} · the main window's {config.loss.name} model "
                               f"({m.kind} net {m.depth}×{m.width}), as trained there; every sampler starts from the "
                               "same draw of the prior")
        self.subtitle = QLabel(sub)
        self.subtitle.setStyleSheet("color: #555;")
        self.subtitle.setWordWrap(True)
        self.status_label = QLabel("Press Start")
        self.status_label.setStyleSheet("color: #1f3a5f; font-weight: 600;")
        self.status_label.setToolTip("What the comparison is doing now")
        header = QVBoxLayout()
        header.setSpacing(2)
        row = QHBoxLayout()
        row.addWidget(title)
        row.addStretch(1)
        row.addWidget(self.status_label)
        header.addLayout(row)
        header.addWidget(self.subtitle)

        # -- sidebar --
        self.entry_list = QListWidget()
        self.entry_list.setToolTip("Tick what to compare" + {"losses": " (2–4 losses)", "samplers": " (2–5 samplers)",
                                                             "noise": " (2–4 values; double-click to edit one)"}[mode])
        if mode == "noise":
            names = [f"{v:g}" for v in self._noise_values()]
            default = tuple(checked) if checked is not None else tuple(names)
        else:
            names = list(LOSSES) if mode == "losses" else list(SAMPLERS)
            default = checked if checked is not None else (DEFAULT_LOSSES if mode == "losses" else DEFAULT_SAMPLERS)
        for name in names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in default else Qt.CheckState.Unchecked)
            if mode == "noise":
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                item.setToolTip(f"{self.noise_label()} = {name} (standardised units); double-click to change it")
            else:
                item.setToolTip(f"{LOSSES[name].title}: {LOSSES[name].description}" if mode == "losses"
                                else SAMPLERS[name])
            self.entry_list.addItem(item)
        self.entry_list.setFixedHeight(self.entry_list.sizeHintForRow(0) * len(names) + 8)
        self.entry_list.itemChanged.connect(self._on_selection_changed)
        self.steps_box = int_box(1, 1_000_000, train_steps,
                                 {"losses": "Training steps per loss (all losses train the same number)",
                                  "noise": "Training steps per noise level (all train the same number)",
                                  "samplers": "Training steps of the shared model before the samplers start"}[mode])
        self.particles_box = int_box(10, 20_000, n_particles, "Particles per plot (the same starting draw for all)")
        form = QFormLayout()
        form.addRow("Train steps", self.steps_box)
        form.addRow("Particles", self.particles_box)
        self.axis_combo = QComboBox()
        for text, axis in VIEW_AXES:
            self.axis_combo.addItem(text, axis)
        self.axis_combo.setToolTip("3D data: the plots look along this axis — particles projected onto the plane, "
                                   "the field on the plane through the middle of the data")
        self.axis_combo.currentIndexChanged.connect(self._on_axis_changed)
        if self.points.shape[1] == 3:
            form.addRow("Look along", self.axis_combo)
        self.main_check = QCheckBox("Use the main window's model")
        self.main_check.setToolTip("Sample with the model trained in the main window (no training here); its "
                                   "loss sets the noise schedule every sampler follows")
        if self.main_model is not None:
            steps = self.main_model.steps
            self.main_check.setEnabled(steps > 0)
            self.main_check.setText(f"Use the main window's model ({steps:,} steps)" if steps
                                    else "Use the main window's model (none trained yet)")
            self.main_check.toggled.connect(self._on_main_toggled)
            form.addRow(self.main_check)
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Build the engines and run (or resume after Stop)")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Pause the comparison; Start resumes it")
        self.stop_button.clicked.connect(self.stop)
        self.again_button = QPushButton("Sample again")
        self.again_button.setToolTip("Run every sampler again from the same starting particles")
        self.again_button.clicked.connect(self.sample_again)
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Stop the comparison and close this window (Esc)")
        self.close_button.clicked.connect(self.close)
        self.hint_label = QLabel()
        self.hint_label.setWordWrap(True)
        self.hint_label.setStyleSheet("color: #8a1c1c;")
        side = QVBoxLayout()
        side.addWidget(QLabel(f"{self.noise_label()} values" if mode == "noise"
                              else "Losses" if mode == "losses" else "Samplers"))
        side.addWidget(self.entry_list)
        side.addLayout(form)
        buttons = QGridLayout()
        buttons.addWidget(self.start_button, 0, 0)
        buttons.addWidget(self.stop_button, 0, 1)
        buttons.addWidget(self.again_button, 1, 0, 1, 2)
        buttons.addWidget(self.close_button, 2, 0, 1, 2)
        side.addLayout(buttons)
        side.addWidget(self.hint_label)
        side.addStretch(1)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setFixedWidth(190)

        # -- plots --
        self.grid_widget = QWidget()
        self.grid = QGridLayout(self.grid_widget)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(4)
        # Compare losses: one small plot per loss, each on its own labelled y axis (the objectives
        # have unrelated scales and signs: sm/ssm go negative, so no common normalisation is honest)
        self.loss_row = QWidget()
        self.loss_row_layout = QHBoxLayout(self.loss_row)
        self.loss_row_layout.setContentsMargins(0, 0, 0, 0)
        self.loss_row_layout.setSpacing(4)
        self.loss_row.hide()
        self.loss_plots: dict[str, pg.PlotWidget] = {}
        self.curve_plot = pg.PlotWidget(background=colors.BACKGROUND)
        self.curve_plot.setToolTip("Training loss per loss (smoothed), or SW ratio along each sampler's schedule")
        cpi = style_plot(self.curve_plot.getPlotItem())
        cpi.getAxis("bottom").enableAutoSIPrefix(False)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._curve_kind = ""
        self._log_curves = False
        right = QVBoxLayout()
        right.addWidget(self.grid_widget, 4)
        right.addWidget(self.curve_plot, 1)
        right.addWidget(self.loss_row, 1)
        body = QHBoxLayout()
        body.addWidget(side_w)
        body.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(header)
        layout.addLayout(body, 1)

        self._bounds_timer = QTimer(self, singleShot=True, interval=BOUNDS_DELAY_MS)
        self._bounds_timer.timeout.connect(self._send_bounds)
        self.worker = make_compare_worker()
        self.worker.progressed.connect(self._on_progressed)
        self.worker.failed.connect(self._on_failed)
        self.worker.phase_changed.connect(self._on_phase_changed)
        if hasattr(self.worker, "died"):  # the process host: its child can be killed (the OOM killer, a user)
            self.worker.died.connect(self._on_host_died)
        self.worker.start()
        self._on_selection_changed()
        self._sync_buttons()
        fit_to_screen(self, 1240, 900)

    # -- 3D: which plane the plots show -------------------------------------------------------
    @property
    def view_axis(self) -> int:
        return int(self.axis_combo.currentData())

    def shown_points(self, points: np.ndarray | None = None) -> np.ndarray:
        """The data (or other points of its dimension) as the plots draw them: 2D as they are, 3D
        projected along the view axis."""
        points = self.points if points is None else points
        if points.shape[1] != 3:
            return points
        return np.ascontiguousarray(points[:, list(in_plane_axes(self.view_axis))])

    def _show_source(self, plot: Plot2D, flows: bool) -> None:
        """A flow's source on the plot of each run that starts from it (fm, ot-fm), in the main
        window's colour; the other runs start from N(0, I) and draw none (drawn faint, a dense
        source still read as opaque)."""
        shown = self.source is not None and flows
        plot.set_source_points(self.shown_points(np.asarray(self.source.points, np.float32)) if shown else None)

    def _on_axis_changed(self) -> None:
        self.worker.set_view_axis(self.view_axis)
        shown = self.shown_points()
        u, v = (AXIS_NAMES[a] for a in in_plane_axes(self.view_axis))
        for plot, flows in zip(self.plots, self._flows, strict=True):
            plot.set_points(shown)
            self._show_source(plot, flows)
            plot.getPlotItem().setLabel("bottom", u)
            plot.getPlotItem().setLabel("left", v)
        self._fit(shown)

    # -- selection --------------------------------------------------------------------------
    def checked(self) -> list[str]:
        return [self.entry_list.item(i).text() for i in range(self.entry_list.count())
                if self.entry_list.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, names: tuple[str, ...] | list[str]) -> None:
        for i in range(self.entry_list.count()):
            item = self.entry_list.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def _on_selection_changed(self, *_args: object) -> None:
        lo, hi = LIMITS[self.mode]
        n = len(self.checked())
        what = {"losses": "losses", "noise": "values", "samplers": "samplers"}[self.mode]
        problem = "" if lo <= n <= hi else f"Tick {lo} to {hi} {what} (now {n})"
        if not problem and self.mode == "noise":
            bad = [text for text in self.checked() if _positive(text) is None]
            if bad:
                problem = f"{self.noise_label()} must be a positive number, not {bad[0]!r}"
            elif len({_positive(text) for text in self.checked()}) < n:
                problem = "the values must differ"
        self._problem = problem
        self.hint_label.setText(problem)
        self._sync_buttons()

    # -- noise levels ------------------------------------------------------------------------
    def _noise_param(self) -> tuple[str, str, tuple[float, ...]]:
        return NOISE_PARAMS[LOSSES[self.config.loss.name].noise]

    def noise_label(self) -> str:
        """The noise setting a noise comparison varies, as the plots name it (σ, σ max, β max)."""
        return self._noise_param()[1]

    def _noise_values(self) -> tuple[float, ...]:
        """The values offered: the defaults, with the current setting in place of the default
        nearest to it (on a log scale) when it is not among them, so four remain."""
        field, _, defaults = self._noise_param()
        current = type(defaults[0])(getattr(self.config.noise, field))  # T stays a whole number
        if current in defaults or current <= 0:
            return defaults
        nearest = min(defaults, key=lambda v: abs(math.log(v / current)))
        return tuple(sorted(current if v == nearest else v for v in defaults))

    def _model_loss(self) -> str:
        name = self.config.loss.name
        return name if name in SAMPLER_MODEL_LOSSES else "ncsn"

    def spec(self) -> CompareSpec:
        """The experiment the widgets describe: same data, seed and network; one loss/sampler each."""
        steps = int(self.steps_box.value())
        base = replace(self.config, train=replace(self.config.train, steps=steps))
        if self.mode == "losses":
            entries = tuple(CompareEntry(name, replace(base, loss=replace(base.loss, name=name)),
                                         SamplerConfig(name=LOSSES[name].default_sampler)) for name in self.checked())
        elif self.mode == "noise":
            field, label, defaults = self._noise_param()
            whole = isinstance(defaults[0], int)  # T: a whole number of steps
            sampler = SamplerConfig(name=LOSSES[base.loss.name].default_sampler)
            entries = tuple(CompareEntry(f"{label} = {text}",
                                         replace(base, noise=replace(base.noise, **{field: int(value) if whole else value})),
                                         sampler)
                            for text in self.checked()
                            if (value := _positive(text)) is not None and (not whole or value.is_integer()))
        else:
            snap = self._main_snapshot if self.uses_main_model else None
            model = snap.config if snap is not None else replace(base, loss=replace(base.loss, name=self._model_loss()))
            entries = tuple(CompareEntry(name, model, SamplerConfig(name=name)) for name in self.checked())
            if snap is not None:
                steps = 0  # the model comes trained: straight to sampling
        worker_mode = "samplers" if self.mode == "samplers" else "losses"  # noise levels train like losses do
        return CompareSpec(self.dataset, worker_mode, entries, int(self.particles_box.value()), steps,
                           default_bounds(self.points), seed=self.config.train.seed, view_axis=self.view_axis,
                           model=self._main_snapshot if self.mode == "samplers" and self.uses_main_model else None,
                           source=self.source)

    # -- run control ------------------------------------------------------------------------
    def _on_main_toggled(self, on: bool) -> None:
        self.steps_box.setEnabled(not on)  # nothing is trained here
        self._main_snapshot = None
        self.subtitle.setText(self._main_subtitle if on else self._own_subtitle)

    @property
    def uses_main_model(self) -> bool:
        return self.main_model is not None and self.main_check.isChecked() and self.main_check.isEnabled()

    def start(self) -> None:
        self._on_selection_changed()
        if self._problem or self._fetching:  # too few or too many ticked, or a value that is not a number
            return
        labels = self.checked()
        key = (tuple(labels), self.steps_box.value(), self.particles_box.value(), self.uses_main_model)
        if key != self._built or self.phase == "done":
            if self.uses_main_model and self._main_snapshot is None:
                self._fetching = True
                self.status_label.setText("Fetching the main window's model…")
                self._sync_buttons(running=True)
                self.main_model.fetch(self._on_main_model, self._on_main_model_failed)
                return
            spec = self.spec()
            self._build_plots(spec.entries)
            self.worker.setup(spec)
            self._built = key
        self.worker.run()
        self.phase = self.phase if self.phase not in ("idle", "done") else "training"
        self._running = True
        self._sync_buttons(running=True)

    def _on_main_model(self, snapshot) -> None:  # noqa: ANN001 - sgm_core.render.PackedModel or None
        self._fetching = False
        if snapshot is None:
            self._on_main_model_failed("the main window has no trained model")
            return
        if snapshot.dim != self.points.shape[1] or len(snapshot.data) != len(self.points) or not np.allclose(
                snapshot.data, self.points):
            self._on_main_model_failed("the main window's model was trained on other data than this comparison's")
            return
        self._main_snapshot = snapshot
        self.start()

    def _on_main_model_failed(self, message: str) -> None:
        self._fetching = False
        self._sync_buttons(running=False)
        self._on_failed(message)
        self.status_label.setText("Press Start")

    def stop(self) -> None:
        self.worker.pause()
        self._running = False
        self._clock.stop(time.perf_counter(), finished=False)
        self._sync_buttons(running=False)
        if self.last_frames:
            self._show_status(self.last_frames)  # the header says it is stopped, at once

    def sample_again(self) -> None:
        self.worker.sample_again()
        self._running = True
        self._clock.stop(time.perf_counter(), finished=True)  # a new schedule: a new ETA
        self._clock_phase = ""
        self.status_label.setText("Sampling again from the same starting particles…")
        self._sync_buttons(running=True)

    def _sync_buttons(self, running: bool | None = None) -> None:
        ok = not self._problem
        if running is None:
            running = self.phase in ("training", "sampling") and self._built is not None and self._running
        self.start_button.setEnabled(ok and not running)
        self.stop_button.setEnabled(running)
        self.again_button.setEnabled(self.phase in ("sampling", "done") and not running)

    def _build_plots(self, entries: tuple[CompareEntry, ...]) -> None:
        """One plot per entry, its legend naming what that run's arrows and particles are."""
        for plot in self.plots:
            self.grid.removeWidget(plot)
            plot.deleteLater()
        labels = [entry.label for entry in entries]
        self.plots, self._labels = [], labels
        self._flows = [flows_from_source(entry.config) for entry in entries]
        rows, cols = GRID_SHAPES.get(len(labels), (2, (len(labels) + 1) // 2))
        kinds: set[tuple[str, bool]] = set()
        for i, (label, entry) in enumerate(zip(labels, entries, strict=True)):
            plot = Plot2D()
            shows = field_shows(entry.config)
            plot.set_legend_names(shows, "Particles")  # the title names the run and its sampler
            plot.setToolTip(f"{label}: particles (orange) and the learned {shows}; the views pan and zoom together")
            plot.set_points(self.shown_points())
            self._show_source(plot, self._flows[i])
            plot.set_layers(data=True, field=True, true_field=False, particles=True, trails=False, heatmap="off")
            # a legend on the first plot of each kind (what the arrows are, whether the source is drawn):
            # the plots after it draw alike
            kind = (shows, self.source is not None and self._flows[i])
            plot.set_legend_visible(kind not in kinds)
            kinds.add(kind)
            plot.getPlotItem().setTitle(self._title_html(i, label, ""), size="9pt")
            # data units on every plot (the same axes on each, so the aspect-locked views that follow
            # each other keep one size and one scale), cached as pixmaps (cache_axes): repainting tick text every
            # frame was ~60% of the paint, measured offscreen
            pi = plot.getPlotItem()
            u, v = (AXIS_NAMES[a] for a in (in_plane_axes(self.view_axis) if self.points.shape[1] == 3 else (0, 1)))
            pi.setLabel("left", v)
            pi.setLabel("bottom", u)
            cache_axes(pi)
            plot.getViewBox().sigRangeChangedManually.connect(lambda *_, leader=plot: self._follow(leader))
            self.plots.append(plot)
            self.grid.addWidget(plot, i // cols, i % cols)
        if self.plots:
            self._fit(self.shown_points())
            self.plots[0].sigRangeChanged.connect(lambda *_: self._bounds_timer.start())
        self._reset_curves("")

    def _fit(self, points: np.ndarray) -> None:
        for plot in self.plots:
            plot.fit_to(points)

    def _follow(self, leader: Plot2D) -> None:
        """The user panned or zoomed one plot: the others show the same rectangle. Not pyqtgraph's
        X + Y links: between aspect-locked views whose heights differ by a pixel (the loss plots
        appearing below them), each link's aspect fix widened the other view, and the plots
        zoomed out to ~3x the data within a second of the first frame."""
        rect = leader.getViewBox().viewRect()
        for plot in self.plots:
            if plot is not leader:
                plot.getViewBox().setRange(rect, padding=0)

    # -- drawing ----------------------------------------------------------------------------
    def _color(self, i: int) -> tuple[int, int, int]:
        return ENTRY_COLORS[i % len(ENTRY_COLORS)]

    def _title_html(self, i: int, label: str, detail: str) -> str:
        name = f"<span style='color:{_hex(self._color(i))}; font-weight:600'>{label}</span>"
        return f"{name}&nbsp;&nbsp;<span style='color:#444'>{detail}</span>" if detail else name

    @staticmethod
    def _detail(cf: CompareFrame, mode: str) -> str:
        sw = "–" if cf.sw_ratio is None else f"{cf.sw_ratio:.2f}×"
        if mode in ("losses", "noise"):
            rate = f"{cf.steps_per_second:,.0f} steps/s" if cf.steps_per_second else "– steps/s"
            err = "–" if cf.score_error is None else f"{cf.score_error:.3g}"
            name, level = ("vel. err", "t") if cf.error_measure == "velocity" else ("score err", "σ")
            return f"{rate} · {name} {err} ({level} {cf.eval_sigma:.2g}) · SW {sw}"
        done = " ✓" if cf.frame.sampler_done else ""
        return (f"step {min(cf.frame.sampler_step, cf.sampler_steps):,}/{cf.sampler_steps:,} · "
                f"σ {cf.frame.sampler_sigma:.2g} · SW {sw}{done}")

    def _on_progressed(self, frames: list[CompareFrame]) -> None:
        try:
            if [cf.label for cf in frames] != self._labels:
                return  # a list from before the last Start
            for i, (plot, cf) in enumerate(zip(self.plots, frames, strict=True)):
                plot.show_frame(cf.frame)
                title = self._title_html(i, cf.label, self._detail(cf, self.mode))
                if title != plot.getPlotItem().titleLabel.text:  # setting HTML costs ~0.5 ms
                    plot.getPlotItem().setTitle(title, size="9pt")
            self._draw_curves(frames)
            self._show_status(frames)
            self.last_frames = frames
            self.frames_received += 1
        finally:
            # acknowledged from the event loop, once the updates posted above are painted
            QTimer.singleShot(0, lambda: self.worker.frame_consumed())  # a lambda: runs in this thread

    def _reset_curves(self, kind: str) -> None:
        pi = self.curve_plot.getPlotItem()
        for item in self._curves.values():
            if item.getViewBox() is pi.getViewBox():
                pi.removeItem(item)
        self._curves.clear()
        self._curve_kind = kind
        self._build_loss_row(kind == "loss" and self.mode == "losses")
        # SW ratios span decades; so do DSM losses across noise levels (they scale like 1/σ²)
        log = kind == "sw" or (kind == "loss" and self.mode == "noise")
        self._log_curves = log
        pi.setLogMode(x=False, y=log)
        left = pi.getAxis("left")
        if log:  # decades and their 2× / 5×, not pyqtgraph's crowded minor labels
            major = [(float(k), f"{10.0 ** k:g}") for k in range(-2, 5)]
            minor = [(k + np.log10(m), f"{m * 10.0 ** k:g}") for k in range(-2, 5) for m in (2, 5)]
            left.setTicks([major, minor])
        else:
            left.setTicks(None)
        keys = "&nbsp; ".join(f"<span style='color:{_hex(self._color(i))}'><b>{label}</b></span>"
                              for i, label in enumerate(self._labels))
        titles = {
            "loss": "Training loss, smoothed (log scale: the same objective, its scale grows like 1/σ²)",
            "sw": "SW ratio along each schedule (1 = as close to the data as a second draw of it)",
            "model": "Training loss of the shared model (the samplers start once it is trained)",
        }
        pi.setTitle(f"{titles[kind]}&nbsp;&nbsp;{keys if kind != 'model' else ''}" if kind else "",
                    color=colors.FOREGROUND[:3], size="9pt")
        pi.setLabel("bottom", "schedule progress" if kind == "sw" else "step")

    def _build_loss_row(self, on: bool) -> None:
        """Compare losses: one small loss plot per loss, x linked, each with its own y axis."""
        for plot in self.loss_plots.values():
            self.loss_row_layout.removeWidget(plot)
            plot.deleteLater()
        self.loss_plots = {}
        self.loss_row.setVisible(on)
        self.curve_plot.setVisible(not on)
        if not on:
            return
        first = None
        for i, label in enumerate(self._labels):
            plot = pg.PlotWidget(background=colors.BACKGROUND)
            pi = style_plot(plot.getPlotItem())
            pi.setTitle(f"<span style='color:{_hex(self._color(i))}; font-weight:600'>{label}</span> "
                        f"<span style='color:#444'>loss (its own units)</span>", size="9pt")
            pi.getAxis("bottom").enableAutoSIPrefix(False)
            pi.setLabel("bottom", "step")
            plot.setToolTip(f"{label}: its training loss, smoothed, on its own axis — objectives differ in scale "
                            "and sign, so compare how each falls, not their values")
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            self.loss_plots[label] = plot
            self.loss_row_layout.addWidget(plot, 1)

    def _curve(self, key: str, color: tuple[int, int, int]) -> pg.PlotDataItem:
        item = self._curves.get(key)
        if item is None:
            owner = self.loss_plots.get(key) if self._curve_kind == "loss" and self.loss_plots else self.curve_plot
            item = owner.getPlotItem().plot(pen=pg.mkPen(color, width=2), name=key, skipFiniteCheck=True)
            self._curves[key] = item
        return item

    def _draw_curves(self, frames: list[CompareFrame]) -> None:
        if self.mode in ("losses", "noise"):
            kind = "loss"
        else:
            kind = "model" if frames[0].phase == "training" else "sw"
        if kind != self._curve_kind:
            self._reset_curves(kind)
        if kind == "sw":
            for i, cf in enumerate(frames):
                if cf.sw_history:
                    h = np.asarray(cf.sw_history, float)
                    self._curve(cf.label, self._color(i)).setData(x=h[:, 0], y=np.clip(h[:, 1], 1e-6, None))
            return
        shown = frames if kind == "loss" else frames[:1]
        for i, cf in enumerate(shown):
            losses = np.asarray(cf.frame.losses, float)
            keep = np.isfinite(losses)
            if not keep.any():
                continue
            y = ema(losses[keep], max(10.0, keep.sum() / 15))
            key = cf.label if kind == "loss" else f"{self._model_loss()} model"
            color = self._color(i) if kind == "loss" else colors.LOSS_EMA[:3]
            if self._log_curves:
                y = np.clip(y, 1e-6, None)
            self._curve(key, color).setData(x=np.asarray(cf.frame.loss_steps, float)[keep], y=y)

    def _eta_text(self, phase: str, done: int, target: int) -> str:
        """` · ETA m:ss` of the phase under way (sgm_core.progress.RunClock: wall clock, never rising)."""
        now = time.perf_counter()
        if phase != self._clock_phase:
            self._clock.stop(now, finished=True)
            self._clock_phase = phase
        if not self._running:
            self._clock.stop(now, finished=False)
            return ""
        self._clock.start(now, done)
        return f" · ETA {fmt_seconds(self._clock.eta(now, done, target))}"

    def _show_status(self, frames: list[CompareFrame]) -> None:
        cf = frames[0]
        stopped = "" if self._running else " — stopped (Start resumes)"
        if cf.phase == "training":
            target = int(self.steps_box.value())
            step = min(f.frame.step for f in frames)
            text = f"Training {step:,} / {target:,} steps{self._eta_text('training', step, target)}{stopped}"
        elif cf.phase == "sampling":
            done = sum(f.frame.sampler_done for f in frames)
            progress = np.mean([min(1.0, f.frame.sampler_step / max(f.sampler_steps, 1)) for f in frames])
            eta = self._eta_text("sampling", int(progress * SAMPLING_UNITS), SAMPLING_UNITS)
            again = " — stopped (Start resumes, Sample again restarts)" if not self._running else ""
            text = f"Sampling from identical starts: {100 * progress:.0f}% ({done}/{len(frames)} done){eta}{again}"
        elif cf.phase == "done":
            best = min(frames, key=lambda f: f.sw_ratio if f.sw_ratio is not None else np.inf)
            text = f"Done — closest to the data: {best.label} (SW {best.sw_ratio:.2f}×)"
        else:
            text = "Ready"
        self.status_label.setText(text)

    def _on_phase_changed(self, phase: str) -> None:
        self.phase = phase
        if phase == "done":
            self._running = False
            self._clock.stop(time.perf_counter(), finished=True)
        self._sync_buttons(running=phase in ("training", "sampling") and self._running)

    def _on_failed(self, message: str) -> None:
        self.hint_label.setText(message[:1].upper() + message[1:])
        self._running = False
        self._clock.stop(time.perf_counter(), finished=False)
        self.status_label.setText("Stopped — see the note on the left")  # not a stale "Training … ETA"
        self._sync_buttons(running=False)

    def _on_host_died(self, _code: int) -> None:
        """The compare process died (its `failed` message is shown): what it built died with it, so
        Start builds the comparison again in a fresh process, and Sample again, which would ask the
        dead one, is off."""
        self._built, self.phase = None, "idle"
        self._sync_buttons(running=False)

    def _send_bounds(self) -> None:
        if self.plots:
            self.worker.set_bounds(self.plots[0].field_bounds())

    # -- closing ----------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self._bounds_timer.stop()
        self.worker.shutdown(timeout=1.0)
        self.closed.emit()
        super().closeEvent(event)


# -------------------------------------------------------------------------- main-window glue
def find_menu(bar: QMenuBar, title: str) -> QMenu | None:
    """The menu bar's menu titled `title` (ampersands ignored), or None."""
    plain = title.replace("&", "")
    for action in bar.actions():
        if action.menu() is not None and action.text().replace("&", "") == plain:
            return action.menu()
    return None


def open_compare(window, mode: str, checked: tuple[str, ...] | None = None) -> CompareWindow | None:  # noqa: ANN001
    """Open a comparison on the main window's data and network settings; None (and a message) when
    there is nothing to train on."""
    session = window.session
    try:
        dataset = session.dataset()
    except DataError as exc:
        window.show_error(str(exc))
        return None
    config = session.run_config
    steps = min(config.train.steps, DEFAULT_STEPS)
    main_model = None
    if mode == "samplers":
        from sgm_core.render import packed_model

        from .engine_tasks import EngineTasks

        tasks = EngineTasks(window.worker)

        def fetch(on_done: Callable[[object], None], on_fail: Callable[[str], None]) -> None:
            tasks.submit(packed_model, on_done, on_fail)

        main_model = MainModel(window.engine_sync.trained_steps(), fetch)
    sources = getattr(window, "sources", None)  # the Source layer: compared flows start where the window's do
    source = sources.dataset_for(dataset.dim) if sources is not None else None
    compare = CompareWindow(mode, dataset, session.points, config, session.data.name, checked,
                            n_particles=min(session.particles.n_particles, DEFAULT_PARTICLES), train_steps=steps,
                            main_model=main_model, source=source)
    if main_model is not None:
        tasks.setParent(compare)  # its callbacks live as long as the window
    windows = getattr(window, "compare_windows", None)
    if windows is None:
        windows = window.compare_windows = []
    windows.append(compare)
    compare.closed.connect(lambda: windows.remove(compare) if compare in windows else None)
    compare.show()
    compare.raise_()
    return compare


def install_compare_menu(window) -> dict[str, QAction]:  # noqa: ANN001 - MainWindow
    """Add Tools ▸ Compare losses… / Compare noise levels… / Compare samplers… to the main window."""
    menu = find_menu(window.menuBar(), "T&ools") or window.menuBar().addMenu("T&ools")
    menu.addSeparator()
    actions = {}
    for key, text, tip, mode in (
            ("compare_losses", "Compare losses…", "Train 2–4 losses side by side on this data, seed and network",
             "losses"),
            ("compare_noise", "Compare noise levels…", "Train the current loss at 2–4 noise levels (σ, σ max or "
             "β max) side by side on this data, seed and network", "noise"),
            ("compare_samplers", "Compare samplers…", "Train one model, then run several samplers from identical "
             "starting particles", "samplers")):
        action = QAction(text, window)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _=False, m=mode: open_compare(window, m))
        menu.addAction(action)
        window.actions_[key] = action
        actions[key] = action
    if getattr(window, "compare_windows", None) is None:
        window.compare_windows = []
    return actions


def close_compare_windows(window) -> None:  # noqa: ANN001 - MainWindow
    """Close (and so stop the threads of) every comparison the main window opened."""
    for compare in list(getattr(window, "compare_windows", None) or []):
        compare.close()

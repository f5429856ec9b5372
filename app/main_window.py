"""The playground's main window: canvas in the middle, panels in docks, the engine in a worker.

The GUI thread only draws: panels write to the Session, the window forwards session changes to
the EngineWorker as commands, and every frame the worker emits is drawn once and acknowledged
(`frame_consumed`), so the worker never builds a backlog.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sgm_core.config import RunConfig, sampler_config_from_json
from sgm_core.datasets import Standardizer
from sgm_core.errors import ConfigError, DataError, SGMError
from sgm_core.frames import particle_status
from sgm_core.io import LOAD_SUFFIXES
from sgm_core.live import FieldView
from sgm_core.losses import field_shows, loss_spec
from sgm_core.noise import default_sigma_max, sigma_max_from_data

from .compare_window import close_compare_windows, find_menu, install_compare_menu
from .condition_tool import install_condition_tool
from .context import ActionRegistry, window_context
from .engine_link import make_engine
from .engine_sync import EngineSync
from .export import Exporter
from .figure_export import install_figure_export
from .help import HelpMenu
from .layout_check import fit_to_screen, layout_problems
from .lessons_ui import install_lessons
from .mode3d import NO_GL_DETAIL, Mode3D, Places3D
from .panels import SpaceNotTyped
from .panels.data_panel import TOOLS, DataPanel
from .panels.explain_panel import ExplainPanel
from .panels.metrics_panel import MetricsPanel
from .panels.sampler_panel import SamplerPanel
from .panels.train_panel import TrainPanel
from .panels.view_panel import ViewPanel
from .progress import MessageRoom, ProgressStatus, sampler_step_text
from .recovery import Recovery, RecoveryBar
from .session import DataState, ParticleOptions, Session, ViewOptions
from .session_io import SESSION_SUFFIX, GuiSettings, SessionFiles, WindowView
from .source_layer import SourceController
from .steps_window import install_steps_menu
from .views.loss_view import LossView
from .views.plot2d import Plot2D
from .workers import EngineWorker, LoadedData, WorkerState

ORGANIZATION, APPLICATION = "ScoreFieldPlayground", "Playground"
OPEN_SUFFIXES = LOAD_SUFFIXES  # what the core loads (.npz points + labels too): the window opens the same files
MAX_RECENT = 8
SIGNAL_SAVE_S = 5.0  # ended by a signal: the longest wait for unsaved work to be written aside
DEFAULT_SIZE = (1440, 900)  # the first launch's window, cut to a smaller screen (fit_to_screen)
RESET_REASON = "Reset was pressed"  # ask_discard_model's reason for Reset (its own wording in the question)
LAYOUT_VERSION = 3  # of the saved dock layout: 3 adds the Explain dock (2: the lesson bar wraps)
FIELD_RESOLUTION = 32  # arrows per axis: one PlotCurveItem of 1024 arrows draws in < 1 ms
VIEW_DELAY_MS = 60  # coalesce pan/zoom into one field request
LOSS_REDRAW_S = 0.2  # the loss curve redraws at 5 Hz while training (each repaint ~3-10 ms of GIL)
TOOL_KEYS = {"pan": "Esc", "brush": "B", "point": "P", "eraser": "E", "spawn": "S", "condition": "C"}
TOOL_TIPS = {
    "pan": "Pan and zoom the canvas (no drawing)",
    "brush": "Spray points where you drag",
    "point": "Add one point per click",
    "eraser": "Remove points under the drag",
    "spawn": "Click to restart the particles in a blob there (3D: on the slice plane, else at the depth of the view centre)",
    "condition": "Drag a line x = x₀ (Shift: y = y₀): the particles sample the conditional p(· | line); "
                 "another tool samples the joint again",
}
PLOT_TOOL = {"pan": "none", "brush": "brush", "point": "point", "eraser": "eraser", "spawn": "spawn",
             "condition": "condition"}


def settings() -> QSettings:
    return QSettings(ORGANIZATION, APPLICATION)


class ErrorBanner(QFrame):
    """A non-modal red message strip at the top of the window with a close button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet(
            "#errorBanner { background: #fdecea; border: 1px solid #e0a0a0; border-radius: 4px; }"
            "#errorBanner QLabel { color: #8a1c1c; }")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss this message")
        self.close_button.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        self.setToolTip("The last problem; your data and model were kept")
        self.about_data = False
        self.hide()

    def show_message(self, text: str, about_data: bool = False) -> None:
        """about_data: the data cannot be trained on yet; the message goes once it can."""
        self.label.setText(text)
        self.about_data = about_data
        self.show()

    def text(self) -> str:
        return self.label.text()


class PanelScroll(QScrollArea):
    """A dock's scrolling panel that is never narrower than the panel's widest row: the dock is
    held at that width instead of cutting controls off (it scrolls only down)."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().minimumSizeHint()
        inner = self.widget()
        if inner is None:
            return hint
        width = inner.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(max(hint.width(), width), hint.height())


class MainWindow(QMainWindow):
    """Score Field Playground's window; `data` is a preset name or file path to open with."""

    def __init__(self, data: str | None = "8gaussians", device: str | None = None,
                 worker: EngineWorker | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Score Field Playground")
        self.setAcceptDrops(True)
        self.session = Session(self)
        self.worker = worker or make_engine()  # the engine process (app/engine_link.py)
        self.worker_state = WorkerState()
        self.close_seconds: float | None = None
        self._load_token = 0
        # σ max follows the data (sgm_core.noise.default_sigma_max, as api.run_config and `sgm train`
        # choose it) until the user sets one: a value typed, "From data", an opened session or a
        # launch's saved value that was the user's. Then loading other data keeps it (and says so).
        self._sigma_max_auto = True
        self._sigma_max_choosing = False  # the window itself is setting σ max: not the user's
        self.sigma_max_pending = False  # a data-chosen σ max is being computed (tests wait for it)
        self._frame_times: deque[float] = deque(maxlen=30)
        self._loss_drawn_at = 0.0
        self.fps = 0.0
        self._restore_session_settings()
        self._sigma_max_seen = self.session.run_config.noise.sigma_max

        # -- central: banner over the canvas --
        self.plot = Plot2D()
        self.plot.setToolTip("The canvas: data, learned score field and particles (wheel zooms, drag pans)")
        self.banner = ErrorBanner()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(4, 4, 4, 0)
        column.setSpacing(4)
        column.addWidget(self.banner)
        self.recovery_bar = RecoveryBar()  # a lost session's offer (app/recovery.py)
        column.addWidget(self.recovery_bar)
        column.addWidget(self.plot, 1)
        self.setCentralWidget(central)
        for target in (self.plot, getattr(self.plot, "viewport", lambda: None)()):
            if target is not None:
                target.installEventFilter(self)

        self.action_registry = ActionRegistry(self)  # every named action (app/context.py)
        self.actions_: dict[str, QAction] = self.action_registry.actions
        self._make_actions()
        self.loss_view = LossView()
        self.loss_view.setToolTip("Training loss per step")
        self.data_panel = DataPanel(self.session, self.actions_)
        self.train_panel = TrainPanel(self.session, self.actions_)
        self.train_panel.sigma_max_from_data_requested.connect(self.sigma_max_from_data)
        self.sampler_panel = SamplerPanel(self.session, self.actions_)
        self.view_panel = ViewPanel(self.session)
        self.docks: dict[str, QDockWidget] = {}
        self._dock("Data", self.data_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("View", self.view_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Train", self.train_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("Sampler", self.sampler_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("Explain", ExplainPanel(self.session), Qt.DockWidgetArea.RightDockWidgetArea, scroll=False)
        self.tabifyDockWidget(self.docks["Sampler"], self.docks["Explain"])  # a tab beside Sampler: no room taken
        self.docks["Sampler"].raise_()
        self._dock("Loss", self.loss_view, Qt.DockWidgetArea.BottomDockWidgetArea, scroll=False)
        self.metrics_panel = MetricsPanel()  # live ground truth, beside the loss (app/panels/metrics_panel.py)
        self._dock("Metrics", self.metrics_panel, Qt.DockWidgetArea.BottomDockWidgetArea, scroll=False)
        self.splitDockWidget(self.docks["Loss"], self.docks["Metrics"], Qt.Orientation.Horizontal)
        # The plots take the whole bottom: beside the side panels they made the window need
        # 290 + 555 + 417 px (over 1,024) and squeezed the canvas to 76 px at 1280 (measured).
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._size_docks()
        self._docks_sized = False  # sized again once shown: before that the layout has no real size
        self.context = window_context(self, self.action_registry)  # what features may use (app/context.py)
        self.files = SessionFiles(self.context, _SessionHost(self))  # File ▸ New / Open / Save session (app/session_io.py)
        self.exporter = Exporter(self.context)  # File ▸ Export (app/export.py)
        self.recovery = Recovery(self.context, self.files, self.recovery_bar)  # unsaved work kept aside (app/recovery.py)
        self.ended_by_signal = False  # SIGINT / SIGTERM / SIGHUP: work written aside, closed without asking
        self._make_toolbar()
        self._make_menus()
        self._make_status_bar(device)
        # the engine's model and what was sent to it; the debounced rebuild (app/engine_sync.py)
        self.engine_sync = EngineSync(self.session, self.worker, self.files.tasks, None,
                                      self.context.notifier, _SyncHost(self), self)
        self._view_timer = QTimer(self, singleShot=True, interval=VIEW_DELAY_MS)
        self._view_timer.timeout.connect(self._send_view)
        # 3D data: Plot3D in a stack with the canvas, slice controls, Make 3D (app/mode3d.py)
        self.mode3d = Mode3D(self.context, Places3D(
            status_bar=self.statusBar(), tools_menu=find_menu(self.menuBar(), "T&ools"),
            data_layout=self.data_panel.layout(), view_panel=self.view_panel, drop_target=self,
            set_tool=self.set_tool, spawn=self.spawn_particles, request_view=self._view_timer.start))
        self.sources = SourceController(self)  # the Source layer: where fm / ot-fm flows start (app/source_layer.py)
        self.engine_sync.sources = self.sources  # built after the sync: it asks for a rebuild as it starts

        s = self.session
        s.data_changed.connect(self._on_data_changed)
        s.config_changed.connect(self._on_config_changed)
        s.config_changed.connect(self._update_legend_names)
        s.view_changed.connect(self._on_view_changed)
        s.frame_arrived.connect(self._draw_frame)
        s.error_reported.connect(self.show_error)
        s.guidance_changed.connect(self.engine_sync.on_guidance_changed)
        s.undo_stack.cleanChanged.connect(self._update_title)
        self.data_panel.preset_chosen.connect(self.load_data)
        self.plot.stroke_finished.connect(self._on_stroke)
        self.plot.erase_finished.connect(self._on_erase)
        self.plot.spawn_requested.connect(self._on_spawn)
        range_changed = getattr(self.plot, "sigRangeChanged", None)
        if range_changed is not None:
            range_changed.connect(self._on_range_changed)

        w = self.worker
        w.progressed.connect(self._on_progressed)
        w.failed.connect(self._on_failed)
        w.finished_training.connect(self._on_finished_training)
        w.stopped.connect(self._on_stopped)
        w.loaded.connect(self._on_loaded)
        w.load_failed.connect(self._on_load_failed)
        w.state_changed.connect(self._on_state_changed)
        w.ready.connect(self._on_engine_ready)
        w.died.connect(self.engine_sync.on_engine_died)
        w.metrics_updated.connect(self.metrics_panel.show_metrics)
        # computed only while shown; a lambda: a slot of the worker object would be queued to its thread
        self.docks["Metrics"].visibilityChanged.connect(lambda shown: self.worker.set_metrics(shown))
        self._noise_draw: np.ndarray | None = None  # q_σ: one fixed N(0, I) draw per data size
        for changed in (s.data_changed, s.config_changed, s.view_changed):
            changed.connect(self._update_noisy_data)

        fit_to_screen(self, *DEFAULT_SIZE)
        self._restore_window_settings()
        self._on_view_changed()
        self._update_legend_names()
        self._on_state_changed(self.worker_state)
        self._update_title()
        self.actions_["tool_pan"].setChecked(True)
        if not self.worker.is_running():
            self._set_device("engine starting…")  # the window is up while the engine process warms up
            self.worker.start()
        self.engine_sync.send_particle_options()
        self.lessons = install_lessons(self)  # Lessons menu + lesson bar (app/lessons_ui.py)
        install_compare_menu(self)  # Tools ▸ Compare losses / samplers (app/compare_window.py)
        install_steps_menu(self)  # Tools ▸ Steps vs quality (app/steps_window.py)
        self.figures = install_figure_export(self.context, find_menu(self.menuBar(), "&File"),
                                             self.export_menu.menuAction())  # File ▸ Export figure…
        self.condition_tool = install_condition_tool(self)  # the Condition tool's engine link and dock
        self.help = HelpMenu(self, lambda: self.status_labels["device"].text(), self.open_file,
                             find_menu(self.menuBar(), "&File"))  # Help menu, File ▸ Examples (app/help.py)
        self._space_not_typed = SpaceNotTyped(self)
        self._space_not_typed.install(self)  # every dock's number boxes: Space is Pause
        if data:
            self.load_data(data)
        self.recovery.offer()  # a session that a window which died had not saved

    # ------------------------------------------------------------------ construction
    def _action(self, key: str, text: str, tip: str, shortcut: str | QKeySequence | None = None,
                slot=None, checkable: bool = False) -> QAction:  # noqa: ANN001
        return self.action_registry.add(key, text, tip, shortcut, slot, checkable)

    def _make_actions(self) -> None:
        a = self._action
        a("train", "Train", "Start training (or train another round)", "Ctrl+T", self.train)
        a("pause", "Pause", "Pause or resume training", "Space", self.toggle_pause)
        a("stop", "Stop", "Stop training; Train starts another round from here", "Ctrl+.", self.stop)
        a("reset", "Reset", "Re-initialise the network (asks first when it holds training)", "Ctrl+R",
          self.reset_asking)
        a("play", "▶ Particles", "Play or pause the particles", "Ctrl+P", self.toggle_play)
        a("step", "Step", "Advance the particles by one frame's worth of sampler steps", "Ctrl+Shift+P",
          self.step_particles)
        a("reset_particles", "Restart", "Restart the particles from the sampler's prior", "Ctrl+Shift+R",
          self.reset_particles)
        a("open", "Open data…", "Open a data file: .npy .csv .png .jpg .jpeg .ply .xyz", "Ctrl+Shift+O",
          self.open_file_dialog)
        a("clear", "Clear", "Remove all points (undoable)", None, self.session.clear_points)
        a("quit", "Quit", "Close the playground", QKeySequence.StandardKey.Quit, self.close)
        a("reset_layout", "Reset layout", "Put every panel back where it starts, at its default size", None,
          lambda: self.reset_layout())
        a("restore_defaults", "Restore defaults", "Every training, sampler, particle and view setting back to its "
          "default (a trained model that cannot follow is asked about first)", None, lambda: self.restore_defaults())
        group = QActionGroup(self)
        group.setExclusive(True)
        for tool in TOOLS:
            act = a(f"tool_{tool}", tool.capitalize(), TOOL_TIPS[tool], TOOL_KEYS[tool],
                    lambda _=False, t=tool: self.set_tool(t), checkable=True)
            group.addAction(act)
        undo = self.session.undo_stack.createUndoAction(self, "Undo")
        undo.setShortcut(QKeySequence("Ctrl+Z"))
        undo.setToolTip("Undo the last data edit (Ctrl+Z)")
        redo = self.session.undo_stack.createRedoAction(self, "Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        redo.setToolTip("Redo (Ctrl+Shift+Z)")
        for key, act in (("undo", undo), ("redo", redo)):
            self.addAction(act)
            self.actions_[key] = act

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea, scroll: bool = True) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        if scroll:
            area_widget = PanelScroll()
            area_widget.setWidgetResizable(True)
            area_widget.setFrameShape(QFrame.Shape.NoFrame)
            area_widget.setWidget(widget)
            area_widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            widget.setMinimumWidth(250)
            dock.setWidget(area_widget)
        else:
            dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock

    def _make_menus(self) -> None:
        bar = self.menuBar()
        acts = self.actions_
        file_menu = bar.addMenu("&File")
        for key in ("new_session", "open_session", "open"):
            file_menu.addAction(acts[key])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.setToolTipsVisible(True)
        file_menu.addSeparator()
        file_menu.addAction(acts["save_session"])
        file_menu.addAction(acts["save_session_as"])
        self.export_menu = file_menu.addMenu("&Export")
        self.export_menu.setToolTipsVisible(True)
        for key in ("export_animation", "export_png", "export_samples", "export_model"):
            self.export_menu.addAction(acts[key])
        file_menu.addSeparator()
        file_menu.addAction(acts["quit"])
        edit = bar.addMenu("&Edit")
        edit.addAction(acts["undo"])
        edit.addAction(acts["redo"])
        edit.addSeparator()
        edit.addAction(acts["clear"])
        tools = bar.addMenu("T&ools")
        for tool in TOOLS:
            tools.addAction(acts[f"tool_{tool}"])
        run = bar.addMenu("&Run")
        for key in ("train", "pause", "stop", "reset"):
            run.addAction(acts[key])
        run.addSeparator()
        for key in ("play", "step", "reset_particles"):
            run.addAction(acts[key])
        view = bar.addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        view.addAction(acts["reset_layout"])
        settings_menu = bar.addMenu("&Settings")
        settings_menu.addAction(acts["restore_defaults"])
        for menu in (file_menu, edit, tools, run, view, settings_menu):
            menu.setToolTipsVisible(True)
        self._rebuild_recent_menu()

    def _make_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("toolbar_main")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for key in ("train", "pause", "stop", "reset"):
            bar.addAction(self.actions_[key])
        bar.addSeparator()
        for key in ("play", "step", "reset_particles"):
            bar.addAction(self.actions_[key])
        bar.addSeparator()
        for tool in TOOLS:
            bar.addAction(self.actions_[f"tool_{tool}"])
        bar.addSeparator()
        bar.addAction(self.actions_["undo"])
        bar.addAction(self.actions_["redo"])
        self.toolbar = bar

    def _make_status_bar(self, device: str | None) -> None:
        bar = self.statusBar()
        self.status_labels: dict[str, QLabel] = {}
        tips = {
            "step": "Training steps done",
            "rate": "Training throughput",
            "elapsed": "Training time so far",
            "eta": "Time left in this training round",
            "sampler": "Particle sampler: step of its schedule and the σ it is at",
            "particles": "Particles, and how often they move (many move a slice per update, round-robin)",
            "fps": "Frames drawn per second",
            "device": "Where the network trains",
        }
        for key, tip in tips.items():
            label = QLabel("–")
            label.setToolTip(tip)
            label.setMinimumWidth(70)
            bar.addPermanentWidget(label)
            self.status_labels[key] = label
        labels = self.status_labels
        self.progress = ProgressStatus(bar, labels["step"], labels["elapsed"], labels["eta"])  # app/progress.py
        # a passing message pushes the least needed labels aside instead of being cut by them
        self.message_room = MessageRoom(bar, [*labels.values(), self.progress.bar],
                                        [labels[k] for k in ("fps", "particles", "rate", "device", "sampler")])
        self._set_device(device or "…")

    # ------------------------------------------------------------------ settings
    def _restore_session_settings(self) -> None:
        st = settings()
        s = self.session
        try:
            if st.contains("run_config"):
                s.run_config = RunConfig.from_json(json.loads(str(st.value("run_config"))))
            if st.contains("sampler_config"):
                s.sampler_config = sampler_config_from_json(json.loads(str(st.value("sampler_config"))))
            if st.contains("particles"):
                s.particles = ParticleOptions(**json.loads(str(st.value("particles"))))
            if st.contains("view"):
                v = json.loads(str(st.value("view")))
                s.view = ViewOptions(**{k: v[k] for k in v if k in ViewOptions.__dataclass_fields__ and k != "bounds"})
            s.brush_radius = float(st.value("brush_radius", s.brush_radius))
            s.brush_density = int(st.value("brush_density", s.brush_density))
            self._sigma_max_auto = str(st.value("sigma_max_auto", "true")).lower() == "true"
        except (SGMError, ValueError, TypeError) as exc:  # a foreign or older settings file: defaults
            self._settings_problem = str(exc)

    def _size_docks(self) -> None:
        """The default layout: side panels wide enough for their labels, plots along the bottom."""
        self.resizeDocks([self.docks["Loss"]], [210], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["Data"], self.docks["Train"]], [290, 320], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Data"], self.docks["View"], self.docks["Train"], self.docks["Sampler"]],
                         [250, 600, 430, 420], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["Loss"], self.docks["Metrics"]], [380, 900], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Metrics"]], [240], Qt.Orientation.Vertical)

    def showEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        super().showEvent(event)
        if not self._docks_sized:
            self._docks_sized = True
            QTimer.singleShot(0, self._size_docks if not self._layout_restored else self._check_restored_layout)

    def _restore_window_settings(self) -> None:
        """The saved geometry and dock layout, unless they are of another layout version or do not
        fit this screen (then the default layout stays; see `_check_restored_layout`)."""
        st = settings()
        self._default_layout = self.saveState(LAYOUT_VERSION)
        self._layout_restored = False
        if st.value("layout_version") != str(LAYOUT_VERSION) and st.value("layout_version") != LAYOUT_VERSION:
            return  # a layout of an older window (it may hold the too-wide lesson bar's squeeze)
        geometry, state = st.value("geometry"), st.value("window_state")
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if geometry is not None and self.restoreGeometry(geometry) and screen is not None \
                and not screen.contains(self.frameGeometry().adjusted(8, 8, -8, -8)):
            fit_to_screen(self, *DEFAULT_SIZE)  # saved on a larger screen
            self.move(screen.topLeft())
        if state is not None:
            self._layout_restored = self.restoreState(state, LAYOUT_VERSION)

    def _check_restored_layout(self) -> None:
        problems = layout_problems(self)
        if problems:
            self.reset_layout()
            self.statusBar().showMessage(f"The saved layout did not fit ({problems[0]}); the default layout is back",
                                         8000)

    def restore_defaults(self) -> None:
        """Settings ▸ Restore defaults: out of a lesson, then every setting as a new session has it."""
        self.lessons.leave()
        self.session.restore(**Session.default_settings())
        self._sigma_max_auto = True  # the default σ max is the data's
        self.statusBar().showMessage("Settings restored to their defaults", 4000)
        self._choose_sigma_max()

    def reset_layout(self) -> None:
        """View ▸ Reset layout: every dock back where it starts, shown, at its default size."""
        self.restoreState(self._default_layout, LAYOUT_VERSION)
        for dock in self.docks.values():
            dock.setFloating(False)
            dock.show()
        self._size_docks()

    def save_settings(self) -> None:
        """The user's own settings for the next launch (a lesson's are the lesson's: not kept)."""
        st = settings()
        own = self.lessons.user_settings() or self.session.settings()
        st.setValue("geometry", self.saveGeometry())
        st.setValue("window_state", self.saveState(LAYOUT_VERSION))
        st.setValue("layout_version", LAYOUT_VERSION)
        st.setValue("run_config", json.dumps(own["run_config"].to_json()))
        st.setValue("sampler_config", json.dumps(asdict(own["sampler_config"])))
        st.setValue("particles", json.dumps(asdict(own["particles"])))
        view = {k: v for k, v in asdict(own["view"]).items() if k != "bounds"}
        st.setValue("view", json.dumps(view))
        st.setValue("brush_radius", own["brush_radius"])
        st.setValue("brush_density", own["brush_density"])
        st.setValue("sigma_max_auto", "true" if self._sigma_max_auto else "false")
        st.sync()

    def recent_files(self) -> list[str]:
        value = settings().value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str) -> None:
        files = [path] + [p for p in self.recent_files() if p != path]
        settings().setValue("recent_files", files[:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            act = self.recent_menu.addAction(Path(path).name)
            act.setToolTip(path)
            act.triggered.connect(lambda _=False, p=path: self.open_file(p))
        self.recent_menu.setEnabled(bool(files))

    # ------------------------------------------------------------------ messages
    def show_error(self, message: str, about_data: bool = False) -> None:
        """Non-blocking: a red banner plus a status-bar message; data and model are kept.
        about_data: the data cannot be trained on yet (the banner goes when it can)."""
        text = message[:1].upper() + message[1:] if message else "Something went wrong"
        self.banner.show_message(text, about_data)
        self.statusBar().showMessage(text, 10000)

    def clear_error(self) -> None:
        """A good load or open: an earlier file's problem no longer applies."""
        self.banner.hide()

    # ------------------------------------------------------------------ data
    def load_data(self, source: str) -> None:
        """Open a preset name or data file (loaded in the worker, which owns torch)."""
        self._load_token += 1
        self.statusBar().showMessage(f"Loading {Path(source).name}…", 3000)
        self.worker.load(source, self._load_token)

    def open_file(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix.lower() == SESSION_SUFFIX:
            self.files.open(path)
            return
        if path.suffix.lower() not in OPEN_SUFFIXES:
            self.show_error(f"cannot open {path.name!r}: use one of {' '.join(OPEN_SUFFIXES)}")
            return
        self.load_data(str(path))

    def open_file_dialog(self) -> None:
        start = str(Path(self.recent_files()[0]).parent) if self.recent_files() else ""
        patterns = " ".join(f"*{s}" for s in OPEN_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open data", start, f"Point data ({patterns});;All files (*)")
        if path:
            self.open_file(path)

    def _on_loaded(self, result: LoadedData) -> None:
        if result.token != self._load_token:
            return  # superseded by a newer request
        ds = result.dataset
        name = result.source if result.kind == "preset" else Path(result.source).stem
        self.session.replace_data(DataState(ds.points, name, result.kind, ds, 0.0, result.source))
        self.plot.fit_to(ds.points)
        self.clear_error()
        if result.kind == "file":
            self._add_recent(str(Path(result.source).resolve()))
        self.statusBar().showMessage(f"Loaded {name}: {len(ds.points)} points", 4000)
        self._choose_sigma_max()

    def _on_load_failed(self, token: int, message: str) -> None:
        if token == self._load_token:
            self.show_error(message)

    def _on_stroke(self, points: np.ndarray) -> None:
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        if self.session.source.editing:
            problem = self.session.source.add_points(points)
            if problem:
                self.show_error(problem)
            return
        self.session.add_points(points)

    def _on_erase(self, centres: np.ndarray) -> None:
        centres = np.asarray(centres, dtype=np.float32).reshape(-1, 2)
        radius = float(getattr(self.plot, "brush_radius", self.session.brush_radius))
        if self.session.source.editing:
            self.session.source.erase_points(centres, radius)
            return
        self.session.erase_points(centres, radius)

    def _on_spawn(self, x: float, y: float) -> None:
        self.spawn_particles((x, y))

    def _choose_sigma_max(self) -> None:
        """Loaded data (or Restore defaults): σ max := default_sigma_max of the data, computed in the
        worker, unless the user has set σ max (then it is kept, and the status bar says so) or a
        lesson brings its own."""
        if self.lessons.lesson is not None or len(self.session.points) < 2:
            return
        noise = self.session.run_config.noise
        if not self._sigma_max_auto:
            self.statusBar().showMessage(f"σ max kept at {noise.sigma_max:.3g}, the value you set; \"From data\" "
                                         "fits it to these data", 6000)
            return
        points = self.session.points

        def compute(_engine: object) -> float:
            import torch  # in the engine's host, which owns torch

            return default_sigma_max(torch.as_tensor(Standardizer.fit(points).forward(points)))

        def apply(value: float) -> None:
            self.sigma_max_pending = False
            s = self.session
            if not self._sigma_max_auto or self.lessons.lesson is not None or s.points is not points:
                return  # the user set one meanwhile, a lesson began, or other data came
            self._sigma_max_choosing = True
            try:
                s.set_run_config(s.run_config.with_(noise=replace(s.run_config.noise, sigma_max=float(value))))
            finally:
                self._sigma_max_choosing = False
            if self.statusBar().currentMessage() != NO_GL_DETAIL:  # "3D needs OpenGL" matters more: it stays
                self.statusBar().showMessage(f"Loaded {s.data.name}: σ max {value:.3g}, from the data (their "
                                             "diameter, at least 3)", 6000)

        def failed(message: str) -> None:
            self.sigma_max_pending = False
            self.show_error(message)

        self.sigma_max_pending = True
        self.files.tasks.submit(compute, apply, failed)

    def _note_sigma_max(self) -> None:
        """A σ max the window did not choose itself is the user's (a lesson's is the lesson's)."""
        top = self.session.run_config.noise.sigma_max
        if top != self._sigma_max_seen and not self._sigma_max_choosing and self.lessons.lesson is None:
            self._sigma_max_auto = False
        self._sigma_max_seen = top

    def sigma_max_from_data(self) -> None:
        """σ max := the largest distance between two (standardised) data points, computed in the
        worker (a quadratic pass), then set as if typed."""
        points = self.session.points
        if len(points) < 2:
            self.show_error("σ max from data needs at least 2 data points", about_data=True)
            return

        def compute(_engine: object) -> float:
            return sigma_max_from_data(Standardizer.fit(points).forward(points))

        def apply(value: float) -> None:
            self.train_panel.set_sigma_max(value)
            self.statusBar().showMessage(f"σ max = {value:.3g}: the largest distance between two data points "
                                         "(standardised units)", 6000)

        self.files.tasks.submit(compute, apply, self.show_error)

    def spawn_particles(self, point: tuple[float, ...]) -> None:
        """Restart the particles in a blob (the brush radius) around a clicked point (2D or 3D)."""
        self._flush_rebuild()
        if not self._engine_ok:
            self.show_error("nothing to sample yet: load a preset or draw at least 2 points", about_data=True)
            return
        self.worker.spawn(point, self.session.particles.n_particles, self.session.brush_radius)

    def _on_data_changed(self) -> None:
        self.plot.set_points(self.session.points, self.session.labels())
        self.plot.set_stroke_class(self.session.painted_class())  # labelled data: unpainted strokes are class 0
        self._update_title()
        self.engine_sync.rebuild_later()
        if self.banner.isVisible() and self.banner.about_data and self.session.trainable():
            self.clear_error()  # "draw at least 2 points" no longer holds (a stroke, an Undo)

    def set_tool(self, tool: str) -> None:
        self.actions_[f"tool_{tool}"].setChecked(True)
        self.plot.set_tool(PLOT_TOOL[tool])
        self.mode3d.set_tool(tool)

    # ------------------------------------------------------------------ engine sync
    # The engine's model and what was sent to it live in `self.engine_sync` (app/engine_sync.py);
    # these thin members keep the names tests and features use.
    @property
    def _rebuild_timer(self) -> QTimer:
        return self.engine_sync.rebuild_timer

    @property
    def _engine_ok(self) -> bool:
        return self.engine_sync.engine_ok

    @property
    def _model(self) -> tuple[RunConfig, int] | None:
        return self.engine_sync.model

    def _flush_rebuild(self) -> None:
        """Send a pending (debounced) sync now, so the next command reaches the engine it is for."""
        self.engine_sync.flush_rebuild()

    def _on_config_changed(self) -> None:
        self._note_sigma_max()
        self.engine_sync.on_config_changed()  # a rebuild, or the sampler and particles live
        self._send_trails()
        self._view_timer.start()  # the field σ depends on the loss's noise settings

    def ask_discard_model(self, steps: int, reason: str, answer: Callable[[bool], None]) -> None:
        """Discard / Cancel, window-modal and opened with open(): answer(True) discards (tests replace this)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Discard the trained model?",
                          f"Discard the trained model ({steps:,} steps)?",
                          QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText("Reset starts a freshly initialised network; its training cannot be undone. "
                               "Cancel keeps the model." if reason == RESET_REASON else
                               f"{reason[:1].upper()}{reason[1:]}, so the network must start afresh. "
                               "Cancel keeps the model and puts the old setting back.")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _r: answer(box.clickedButton() is box.button(QMessageBox.StandardButton.Discard)))
        box.open()

    def ask_pausing(self, steps: int, reason: str, answer: Callable[[bool], None]) -> None:
        """`ask_discard_model` with training paused while the question is open, so the model it
        counts is the one Cancel keeps; Cancel lets the paused round go on."""
        if self.worker_state.training:
            self.worker.pause_training()

            def answered(discard: bool) -> None:
                answer(discard)
                if not discard:
                    self.worker.resume_training()  # after what answer() sent: the engine it is for

            self.ask_discard_model(steps, reason, answered)
            return
        self.ask_discard_model(steps, reason, answer)

    def field_view(self) -> FieldView:
        if self.mode3d.is_3d:  # the 3D view's box, the slice; no heatmaps or reference field
            return self.mode3d.field_view(FIELD_RESOLUTION)
        bounds = tuple(tuple(float(v) for v in axis) for axis in self.plot.field_bounds())
        s = self.session
        return FieldView(bounds=bounds, resolution=FIELD_RESOLUTION, sigma=s.field_sigma(), truth=s.view.true_field)

    def _send_view(self) -> None:
        self._view_timer.stop()
        self.worker.set_view(self.field_view(), self.session.view.heatmap)

    def _send_trails(self) -> None:
        s = self.session
        self.worker.set_trails(s.particles.trail_length if s.view.trails else 0)

    def _on_view_changed(self) -> None:
        s = self.session
        self.plot.set_brush(s.brush_radius, s.brush_density)
        self.plot.set_stroke_class(s.painted_class())
        self.plot.set_normalized_arrows(s.view.normalized_arrows)
        self.loss_view.set_log(s.view.log_loss)
        self._apply_layers()
        self._send_trails()
        self._view_timer.start()

    def _apply_layers(self) -> None:
        layers = self.session.view.layers()
        if not self._engine_ok:  # no engine: hide what the previous one drew
            layers.update(field=False, true_field=False, particles=False, trails=False, heatmap="off")
        self.plot.set_layers(**layers)
        self.mode3d.set_layers(layers)

    def _update_legend_names(self) -> None:
        """The legend names what is drawn: the net's output as the View panel does, and the sampler."""
        s = self.session
        follows = "the true score" if s.particles.reference_score else s.sampler_config.name
        names = (field_shows(s.run_config), f"Particles ({follows})")
        self.plot.set_legend_names(*names)
        self.mode3d.set_legend_names(*names)

    def _update_noisy_data(self) -> None:
        """q_σ on the canvas: the data plus σ·noise at the field's σ, in data units (σ times the
        standardiser's scale); one fixed noise draw, so scrubbing σ moves the same points."""
        s = self.session
        points = s.points
        if not s.view.noisy_data or len(points) < 2 or s.data.dim != 2:
            self.plot.set_noisy_points(None)
            return
        if self._noise_draw is None or self._noise_draw.shape != points.shape:
            self._noise_draw = np.random.default_rng(0).standard_normal(points.shape).astype(np.float32)
        try:
            std = Standardizer.fit(points)
        except DataError:  # all points coincide: no σ in data units
            self.plot.set_noisy_points(None)
            return
        sigma = s.field_sigma()
        # Processes with a mean coefficient shrink the data as they add noise: α x + σ z (VP, DDPM:
        # α = sqrt(1 - σ²); the linear path of fm: α = 1 - σ); VE-type ones keep α = 1
        alpha = float(loss_spec(s.run_config.loss.name).process(s.run_config.noise).coef_of_std(sigma))
        shift = np.asarray(std.shift, np.float32)
        self.plot.set_noisy_points(shift + alpha * (points - shift) + sigma * std.scale * self._noise_draw)

    def view_settings(self) -> dict:
        """View settings beyond the session's ViewOptions, JSON-ready (for sessions and export):
        the 3D slice axis ("off"/"x"/"y"/"z") and position, camera azimuth/elevation (degrees)."""
        return self.mode3d.settings()

    def apply_view_settings(self, settings: dict) -> None:
        """Install what `view_settings()` gave (any subset); ConfigError when a value is unusable."""
        self.mode3d.apply_settings(settings)

    # ------------------------------------------------------------------ run control
    def train(self) -> None:
        if self.worker_state.paused:
            self.worker.train()
            return
        try:
            self.session.dataset()
        except DataError as exc:
            self.show_error(str(exc), about_data=True)
            return
        self._flush_rebuild()
        self.clear_error()  # an earlier problem (a divergence, a file) is behind: a new round starts
        self.worker.train()
        self.statusBar().showMessage("Training…", 2000)

    def toggle_pause(self) -> None:
        if self.worker_state.training:
            self.worker.pause_training()
        elif self.worker_state.paused:
            self.worker.train()

    def stop(self) -> None:
        self.worker.stop_training()

    def reset_training(self) -> None:
        """A fresh network from the session's settings now (the lessons' rebuild; Reset asks first)."""
        self.engine_sync.send_engine()

    def reset_asking(self) -> None:
        """Reset (Ctrl+R, one key from Ctrl+Shift+R): a model that holds training is discarded only
        after "Discard the trained model?", as a loss change or Make 3D asks; nothing undoes it."""
        steps = self.engine_sync.trained_steps()
        if not steps:
            self.reset_training()
            return
        self.ask_pausing(steps, RESET_REASON, lambda discard: self.reset_training() if discard else None)

    def toggle_play(self) -> None:
        self._flush_rebuild()
        if self.worker_state.playing:
            self.worker.pause_particles()
        elif self._engine_ok:
            self.worker.play()
        else:
            self.show_error("nothing to sample yet: load a preset or draw at least 2 points", about_data=True)
        self._sync_play_action()

    def step_particles(self) -> None:
        self._flush_rebuild()
        if self._engine_ok:
            self.worker.step_particles()

    def reset_particles(self) -> None:
        self._flush_rebuild()
        self.worker.reset_particles(self.session.particles.n_particles)

    def _on_state_changed(self, state: WorkerState) -> None:
        self.worker_state = state
        acts = self.actions_
        acts["train"].setEnabled(not state.training)
        acts["pause"].setEnabled(state.training or state.paused)
        acts["pause"].setText("Resume" if state.paused else "Pause")
        acts["stop"].setEnabled(state.training or state.paused)
        self._sync_play_action()

    def _sync_play_action(self) -> None:
        act = self.actions_["play"]
        playing = self.worker_state.playing
        act.setText("❚❚ Particles" if playing else "▶ Particles")

    def _on_engine_ready(self, device: str) -> None:
        self._set_device(device)

    def _on_failed(self, message: str) -> None:
        self.show_error(message)

    def _on_stopped(self) -> None:
        self.statusBar().showMessage("Training stopped", 4000)

    def _on_finished_training(self, step: int) -> None:
        self.statusBar().showMessage(f"Training finished at step {step:,} — Train continues for another round", 6000)

    # ------------------------------------------------------------------ frames
    def _on_progressed(self, frame) -> None:  # noqa: ANN001 - sgm_core.live.Frame
        try:
            self.session.publish_frame(frame)
        finally:
            self.worker.frame_consumed()

    def _draw_frame(self, frame) -> None:  # noqa: ANN001
        now = time.perf_counter()
        self._frame_times.append(now)
        if len(self._frame_times) > 1 and now - self._frame_times[0] > 0:
            self.fps = (len(self._frame_times) - 1) / (now - self._frame_times[0])
        if self._engine_ok and not self.mode3d.show_frame(frame):  # 3D frames go to the 3D view
            self.plot.show_frame(frame)
        if now - self._loss_drawn_at >= LOSS_REDRAW_S or not self.worker_state.training:
            self.loss_view.show_frame(frame)  # the curve needs no 30 Hz: its repaint costs the worker GIL time
            self._loss_drawn_at = now
        labels = self.status_labels
        training = self.worker_state.training
        if self._model is not None:  # after New a frame still on its way is of the discarded model
            self.progress.show(frame, training)
        labels["rate"].setText(f"{frame.steps_per_second:,.0f} steps/s" if training and frame.steps_per_second
                               else "paused" if self.worker_state.paused else "idle" if not training else "…")
        labels["sampler"].setText(f"{sampler_step_text(frame.sampler_step, frame.sampler_steps)} "
                                  f"· σ {frame.sampler_sigma:.3g}")
        labels["particles"].setText(particle_status(frame, self.worker_state.playing))
        labels["fps"].setText(f"{self.fps:.0f} fps")
        self._set_device(frame.device)

    def _set_device(self, label: str) -> None:
        self.status_labels["device"].setText(label)
        self.train_panel.set_device(label)

    def _on_range_changed(self, *_args: object) -> None:
        self._view_timer.start()  # the field follows pan/zoom, once the gesture settles

    def _update_title(self, *_args: object) -> None:
        """The session file's name (or the data's), and `*` while there is unsaved work."""
        self.setWindowTitle(f"{self.files.title_name()}[*] — Score Field Playground")
        self.setWindowModified(self.files.is_dirty())

    # ------------------------------------------------------------------ sessions and export
    def confirm_discard(self, then: Callable[[], None] | None = None) -> bool:
        """True when nothing unsaved would be lost; else asks Save / Discard / Cancel and returns
        False, running `then` once the answer allows (see SessionFiles.confirm_discard)."""
        return self.files.confirm_discard(then)

    def ask_unsaved_changes(self, answer: Callable[[str], None]) -> None:
        """Save / Discard / Cancel, as a window-modal box opened with open(), never exec(): nothing
        blocks, and answer("save" | "discard" | "cancel") comes when a button is pressed."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes",
                          f"Save the changes to {self.files.title_name()}?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText("Unsaved edits and training are lost otherwise.")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        choices = {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}
        def on_finished(_result: int) -> None:
            clicked = box.clickedButton()  # None when the box was closed some other way: Cancel
            answer(choices.get(box.standardButton(clicked), "cancel") if clicked is not None else "cancel")

        box.finished.connect(on_finished)
        box.open()

    def ask_save_path(self, title: str, file_filter: str, default: str = "") -> str | None:
        """Every save/export file question goes through here (tests replace it)."""
        path, _ = QFileDialog.getSaveFileName(self, title, default, file_filter)
        return path or None

    def ask_open_path(self, title: str, file_filter: str, default: str = "") -> str | None:
        """Every open-session file question goes through here (tests replace it)."""
        path, _ = QFileDialog.getOpenFileName(self, title, default, file_filter)
        return path or None

    # ------------------------------------------------------------------ drag and drop
    @staticmethod
    def _dropped_path(mime) -> str | None:  # noqa: ANN001 - QMimeData
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            url = QUrl(url)
            if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in (*OPEN_SUFFIXES, SESSION_SUFFIX):
                return url.toLocalFile()
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if self._dropped_path(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        if self._dropped_path(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        path = self._dropped_path(event.mimeData())
        if path:
            event.acceptProposedAction()
            self.open_file(path)
        else:
            event.ignore()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """The canvas would swallow file drags: route them to the window."""
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            mime = event.mimeData()
            if self._dropped_path(mime):
                if kind == QEvent.Type.Drop:
                    self.dropEvent(event)
                else:
                    event.acceptProposedAction()
                return True
        return super().eventFilter(obj, event)

    # ------------------------------------------------------------------ closing
    def end_by_signal(self) -> None:
        """SIGINT (Ctrl+C in the terminal), SIGTERM or SIGHUP arrived: write unsaved work aside,
        then close without asking; the next window offers it back (app/recovery.py). A stuck
        engine does not hold the end up past SIGNAL_SAVE_S."""
        if self.ended_by_signal:
            return
        self.ended_by_signal = True
        self.recovery.autosave(then=self._close_if_open)
        QTimer.singleShot(int(SIGNAL_SAVE_S * 1000), self._close_if_open)

    def _close_if_open(self) -> None:
        if self.close_seconds is None:  # set once a close went through
            self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self.ended_by_signal and not self.confirm_discard(self.close):  # Cancel keeps the window
            event.ignore()
            return
        self.recovery.release(keep=self.ended_by_signal)  # answered Save or Discard: nothing to recover
        self.exporter.shutdown()  # a running export is cancelled: no partial file
        close_compare_windows(self)  # each stops its own thread
        if getattr(self, "steps_window", None) is not None:
            self.steps_window.close()
        self.engine_sync.rebuild_timer.stop()
        self._view_timer.stop()
        self.save_settings()
        self.close_seconds = self.worker.shutdown(timeout=1.0)
        super().closeEvent(event)


class _SessionHost:
    """The window's side of `session_io.SessionHost`: what a session document asks of it. Looks
    the window's methods up when called (tests replace `confirm_discard` and `ask_unsaved_changes`)."""

    def __init__(self, window: MainWindow) -> None:
        self._w = window

    def engine_ok(self) -> bool:
        return self._w.engine_sync.engine_ok

    def flush_rebuild(self) -> None:
        self._w.engine_sync.flush_rebuild()

    def reset_engine(self) -> None:
        self._w.engine_sync.send_engine(keep=False)

    def adopt_engine(self, run: RunConfig, sampler, n_particles: int, has_engine: bool) -> None:  # noqa: ANN001
        self._w.engine_sync.adopt_engine(run, sampler, n_particles, has_engine)

    def confirm_discard(self, then: Callable[[], None] | None = None) -> bool:
        return self._w.confirm_discard(then)

    def ask_unsaved_changes(self, answer: Callable[[str], None]) -> None:
        self._w.ask_unsaved_changes(answer)

    def set_modified(self, dirty: bool) -> None:
        if dirty != self._w.isWindowModified():
            self._w.setWindowModified(dirty)

    def document_changed(self, path: str | None) -> None:
        if path is not None:
            self._w._add_recent(path)
        self._w._update_title()

    def window_view(self) -> WindowView:
        w = self._w
        tool = next((t for t in TOOLS if w.actions_[f"tool_{t}"].isChecked()), "pan")
        return WindowView(tool, w.plot.field_bounds(), w.view_settings(), w.metrics_panel.saved_state(),
                          bool(w.worker_state.playing))

    def restore_view(self, gui: GuiSettings, points: np.ndarray, has_engine: bool) -> None:
        """An opened session's tool, view range (2D) or slice and camera (3D), metrics curves and
        play state; the banner of an earlier problem goes."""
        w = self._w
        if points.shape[1] == 2:
            w.set_tool(gui.tool)
            if gui.view_range is not None:
                (x0, x1), (y0, y1) = gui.view_range
                w.plot.getPlotItem().getViewBox().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
            else:
                w.plot.fit_to(points)
        if gui.view3d:
            try:
                w.apply_view_settings(gui.view3d)
            except (ConfigError, TypeError, ValueError):
                pass  # a hand-edited slice or camera: keep the current one
        w.metrics_panel.restore(gui.metrics)  # the engine's next metrics add to these curves
        if gui.playing and has_engine:
            w.toggle_play()
        w.clear_error()


class _SyncHost:
    """The window's side of `engine_sync.SyncHost`: the effects of engine sync on the window.
    Looks the window's members up when called (tests replace `ask_discard_model`)."""

    def __init__(self, window: MainWindow) -> None:
        self._w = window

    def clear_field(self) -> None:
        self._w.plot.clear_field()
        self._w.mode3d.clear_field()

    def apply_layers(self) -> None:
        self._w._apply_layers()

    def send_view(self) -> None:
        self._w._send_view()

    def send_trails(self) -> None:
        self._w._send_trails()

    def clear_metrics(self) -> None:
        self._w.metrics_panel.clear_stale()

    def clear_progress(self) -> None:
        self._w.progress.clear()
        self._w.loss_view.reset()  # the loss curve was the discarded model's too

    def training(self) -> bool:
        return self._w.worker_state.training

    def in_lesson(self) -> bool:
        lessons = getattr(self._w, "lessons", None)  # installed after the engine sync
        return lessons is not None and lessons.lesson is not None

    def metrics_shown(self) -> bool:
        return self._w.docks["Metrics"].isVisible()

    def ask_discard_model(self, steps: int, reason: str, answer: Callable[[bool], None]) -> None:
        self._w.ask_pausing(steps, reason, answer)

    def engine_restarting(self) -> None:
        self._w._on_state_changed(WorkerState())
        self._w._set_device("engine starting…")

    def engine_restarted(self) -> None:
        self._w.lessons.engine_restarted()

"""File ▸ Export: an animation (GIF/MP4) rendered off the GUI thread, a PNG of the canvas, the
live particles (.npy/.csv), and the trained model as a run directory for `sgm sample` / `sgm render`.

The animation blocks neither the GUI nor training: the engine's host copies its EMA network (a
frozen snapshot nobody else holds, packed as bytes the GUI never unpickles: no torch here), and an
`ExportJob` (a process of its own; a thread with SGM_ENGINE=thread) samples with that copy on one torch
thread, draws frames with `sgm_core.render` and writes them with `sgm_core.video`, whose writers
verify each file before an atomic rename: a cancelled or failed export (a full disk included)
leaves no file behind and an existing one intact, and its one-line reason goes to the banner.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
)

from sgm_core.checkpoint import save_run
from sgm_core.config import SamplerConfig
from sgm_core.errors import DataError, SGMError
from sgm_core.io import save_points
from sgm_core.limits import MAX_FRAMES
from sgm_core.live import LiveEngine
from sgm_core.render import (
    CancelExport,
    ExportCancelled,
    ExportFailed,
    ExportFinished,
    ExportProgress,
    ExportRequest,
    RenderCancelled,
    StartExport,
    packed_snapshot,
    run_export,
)
from sgm_core.samplers import SAMPLERS
from sgm_core.video import MAX_SIDE, check_video_request, save_png

from .engine_link import ProcessHost, uses_processes
from .engine_tasks import EngineTasks
from .panels import int_box
from .queued_worker import track_thread
from .session import MAX_PARTICLES
from .session_io import with_suffix

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from .context import FeatureContext, FileQuestions

FORMATS = {".gif": "GIF (Pillow, loops)", ".mp4": "MP4 (H.264, small, plays everywhere)"}
NOTHING_TO_EXPORT = "nothing to export yet: load a preset or draw at least 2 points"
PROGRESS_AFTER_MS = 400  # short exports finish without a progress window (showing one costs ~0.1 s)
EXPORT_END_S = 10.0  # an export process ends this long after it was asked to (the current frame first)


@dataclass(frozen=True)
class ExportOptions:
    """What the Export ▸ Animation dialog asks for."""

    path: Path  # .gif or .mp4
    frames: int = 60
    fps: int = 20
    size: tuple[int, int] = (512, 512)  # (width, height) pixels
    sampler: str = "annealed"
    n_particles: int = 2000
    field: bool = True  # 2D: the score field at the sampler's current σ
    trails: bool = True
    data: bool = True
    axes: bool = True  # 2D: ticks in data units beside the plot
    legend: bool = True  # a legend below the plot: the field, the particles, the data
    seed: int = 0  # seeds the particles' prior draw and the sampler noise


# --------------------------------------------------------------------------- the job thread


class _JobThread(QThread):
    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__()
        self._work = work

    def run(self) -> None:
        self._work()


class _ExportLink(ProcessHost):
    """An export's own child process (sgm_core.render.ExportTask): torch stays out of the GUI."""

    task = "export"
    answered = Signal(object)  # ExportProgress | ExportFinished | ExportFailed | ExportCancelled

    def _deliver(self, event: object) -> None:
        self.answered.emit(event)


class ExportJob(QObject):
    """Renders one animation off the GUI thread: in a process of its own, or (SGM_ENGINE=thread) in
    a thread. The job object stays in the GUI thread, so its signals reach GUI slots queued;
    `cancel()` may be called from any thread."""

    progressed = Signal(int, int)  # frames written, frames in all
    finished = Signal(str)  # the written file
    failed = Signal(str)  # one sentence; no file was written
    cancelled = Signal()  # no file was written; an existing one is untouched
    ended = Signal()  # after one of the three answers: the job's thread or process is gone

    def __init__(self, request: ExportRequest, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self._cancel = threading.Event()
        self.thread: _JobThread | None = None
        self.link: _ExportLink | None = None
        if uses_processes():
            self.link = _ExportLink()
            self.link.answered.connect(self._on_answer)
            self.link.died.connect(self._on_died)
        else:
            self.thread = _JobThread(self._run)
            self.thread.setObjectName("ExportJob")
            self.thread.finished.connect(self.ended.emit)
            track_thread(self.thread)  # the test fixture fails a test that leaks it

    def start(self) -> None:
        if self.link is not None:
            self.link.start()
            self.link.send(StartExport(self.request))
        else:
            self.thread.start()

    def cancel(self) -> None:
        self._cancel.set()
        if self.link is not None:
            self.link.send(CancelExport())

    def is_running(self) -> bool:
        return self.link.is_running() if self.link is not None else self.thread.isRunning()

    def wait(self) -> None:
        """Block until the job ends (after cancel(): the current frame, at most)."""
        if self.link is not None:
            self.link.shutdown(timeout=EXPORT_END_S)  # the child cancels and removes its temp file first
        else:
            self.thread.wait()

    def _run(self) -> None:
        try:
            path = run_export(self.request, progress=self.progressed.emit, should_cancel=self._cancel.is_set)
        except RenderCancelled:
            self.cancelled.emit()
        except SGMError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - the GUI waits on one of the three answers
            traceback.print_exception(exc)
            self.failed.emit(f"unexpected error while exporting ({type(exc).__name__}: {exc}); no file was written")
        else:
            self.finished.emit(str(path))

    def _on_answer(self, event: object) -> None:
        match event:
            case ExportProgress(done, total):
                self.progressed.emit(done, total)
                return
            case ExportFinished(path):
                self.finished.emit(path)
            case ExportFailed(message):
                self.failed.emit(message)
            case ExportCancelled():
                self.cancelled.emit()
        self.link.shutdown(timeout=EXPORT_END_S)
        self.ended.emit()

    def _on_died(self, code: int) -> None:
        self.failed.emit(f"the export process stopped (exit code {code}); no file was written")
        self.ended.emit()


# --------------------------------------------------------------------------- the dialog


def finish_dialog(dialog: QDialog, form: QFormLayout) -> QLabel:
    """Lay out an export dialog: its form, a hidden one-line error message (returned, shown by the
    dialog when a choice is refused) and Export / Cancel buttons."""
    message = QLabel()
    message.setStyleSheet("color: #8a1c1c;")
    message.setWordWrap(True)
    message.hide()
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addLayout(form)
    layout.addWidget(message)
    layout.addWidget(buttons)
    return message


class ExportDialog(QDialog):
    """Format, frames, fps, size, sampler, particles, layers and the output file of an animation."""

    def __init__(self, parent: QWidget | None, defaults: ExportOptions, dim: int = 2,
                 questions: FileQuestions | None = None) -> None:
        super().__init__(parent)
        self.questions = questions  # Browse… asks here (None: no Browse answers)
        self.setWindowTitle("Export animation")
        form = QFormLayout()
        self.format_combo = QComboBox()
        for suffix, text in FORMATS.items():
            self.format_combo.addItem(suffix[1:].upper(), suffix)
            self.format_combo.setItemData(self.format_combo.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.format_combo.setToolTip("GIF loops in any browser; MP4 is far smaller and faster to write")
        form.addRow("Format", self.format_combo)
        self.frames_box = int_box(1, MAX_FRAMES, defaults.frames, "Frames in the animation: the sampler's whole "
                                  "schedule is spread over them")
        form.addRow("Frames", self.frames_box)
        self.fps_box = int_box(1, 120, defaults.fps, "Frames per second when played")
        form.addRow("FPS", self.fps_box)
        size = QHBoxLayout()
        self.width_box = int_box(16, MAX_SIDE, defaults.size[0], "Width in pixels")
        self.height_box = int_box(16, MAX_SIDE, defaults.size[1], "Height in pixels")
        size.addWidget(self.width_box)
        size.addWidget(QLabel("×"))
        size.addWidget(self.height_box)
        form.addRow("Size", size)
        self.sampler_combo = QComboBox()
        for name, text in SAMPLERS.items():
            self.sampler_combo.addItem(name, name)
            self.sampler_combo.setItemData(self.sampler_combo.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.sampler_combo.setCurrentIndex(max(0, self.sampler_combo.findData(defaults.sampler)))
        self.sampler_combo.setToolTip("The sampler animated (the current one keeps its schedule settings)")
        form.addRow("Sampler", self.sampler_combo)
        self.particles_box = int_box(1, MAX_PARTICLES, defaults.n_particles, "Particles drawn from the prior and "
                                     "moved by the sampler")
        form.addRow("Particles", self.particles_box)
        self.field_check = QCheckBox("Score field")
        self.field_check.setToolTip("Arrows of the learned score at the sampler's current σ (2D)")
        self.field_check.setChecked(defaults.field and dim == 2)
        self.field_check.setEnabled(dim == 2)
        self.trails_check = QCheckBox("Trails")
        self.trails_check.setToolTip("Each particle's recent path")
        self.trails_check.setChecked(defaults.trails)
        self.data_check = QCheckBox("Data")
        self.data_check.setToolTip("The training data, faint, behind the particles")
        self.data_check.setChecked(defaults.data)
        layers = QHBoxLayout()
        for box in (self.field_check, self.trails_check, self.data_check):
            layers.addWidget(box)
        form.addRow("Include", layers)
        self.axes_check = QCheckBox("Axes")
        self.axes_check.setToolTip("Ticks in data units left of and below the plot (2D), outside the field")
        self.axes_check.setChecked(defaults.axes and dim == 2)
        self.axes_check.setEnabled(dim == 2)
        self.legend_check = QCheckBox("Legend")
        self.legend_check.setToolTip("A legend below the plot: the field's colours, the particles, the data")
        self.legend_check.setChecked(defaults.legend)
        figure = QHBoxLayout()
        for box in (self.axes_check, self.legend_check):
            figure.addWidget(box)
        figure.addStretch(1)
        form.addRow("Figure", figure)
        path_row = QHBoxLayout()
        self.path_edit = QLineEdit(str(defaults.path))
        self.path_edit.setToolTip("Output file (.gif or .mp4); written only when the export completes")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("Choose the output file")
        self.browse_button.clicked.connect(self._browse)
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        form.addRow("File", path_row)
        self.message = finish_dialog(self, form)
        suffix = defaults.path.suffix.lower()
        self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(suffix)))
        self.format_combo.currentIndexChanged.connect(self._on_format)

    def _on_format(self) -> None:
        text = self.path_edit.text().strip()
        if text:
            self.path_edit.setText(str(self._with_format(Path(text))))

    def _with_format(self, path: Path) -> Path:
        suffix = self.format_combo.currentData()
        return path.with_suffix(suffix) if path.suffix.lower() in FORMATS else with_suffix(path, suffix)

    def _browse(self) -> None:
        suffix = self.format_combo.currentData()
        args = ("Export animation", f"{suffix[1:].upper()} (*{suffix})", self.path_edit.text())
        chosen = self.questions.ask_save_path(*args) if self.questions else QFileDialog.getSaveFileName(self, *args)[0]
        if chosen:
            self.path_edit.setText(str(self._with_format(Path(chosen))))

    def options(self) -> ExportOptions:
        text = self.path_edit.text().strip()
        return ExportOptions(
            path=self._with_format(Path(text)) if text else Path(), frames=self.frames_box.value(),
            fps=self.fps_box.value(), size=(self.width_box.value(), self.height_box.value()),
            sampler=self.sampler_combo.currentData(), n_particles=self.particles_box.value(),
            field=self.field_check.isChecked() and self.field_check.isEnabled(),
            trails=self.trails_check.isChecked(), data=self.data_check.isChecked(),
            axes=self.axes_check.isChecked() and self.axes_check.isEnabled(), legend=self.legend_check.isChecked())

    def problem(self) -> str | None:
        """Why the settings cannot be exported (shown in the dialog), or None."""
        if not self.path_edit.text().strip():
            return "choose an output file"
        options = self.options()
        if not options.path.parent.is_dir():
            return f"the folder {options.path.parent} does not exist"
        try:
            check_video_request(options.path, options.frames, options.size)  # e.g. a GIF too big for memory
        except SGMError as exc:
            return str(exc)
        return None

    def accept(self) -> None:
        problem = self.problem()
        if problem:
            self.message.setText(problem[:1].upper() + problem[1:])
            self.message.show()
            return
        super().accept()


# --------------------------------------------------------------------------- the controller


def qimage_pixels(image: QImage) -> np.ndarray:
    """An (H, W, 3) uint8 copy of a QImage's RGB pixels (rows padded to 4 bytes in Qt)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    rows = np.frombuffer(rgb.constBits(), np.uint8, count=h * stride).reshape(h, stride)
    return rows[:, : w * 3].reshape(h, w, 3).copy()


class Exporter(QObject):
    """File ▸ Export ▸ Animation / Snapshot PNG / Samples / Trained model."""

    exported = Signal(str)  # a finished export: its path
    export_failed = Signal(str)  # a failed one: the message (also on the banner)
    export_cancelled = Signal()
    job_started = Signal(object)  # ExportJob

    def __init__(self, ctx: FeatureContext) -> None:
        super().__init__(ctx.parent)
        self.ctx = ctx
        self.tasks = EngineTasks(ctx.engine, self)
        self.job: ExportJob | None = None
        self.dialog: ExportDialog | None = None
        self.progress: QProgressDialog | None = None
        self._starting = False  # a snapshot was asked for; the job starts when it arrives
        self._last_dir: Path | None = None
        a = ctx.actions.add
        a("export_animation", "Animation…", "Render the sampler to a GIF or MP4 in the background "
          "(training goes on)", None, self.export_animation)
        a("export_png", "Snapshot PNG…", "Save the canvas as a PNG image", None, self.export_png)
        a("export_samples", "Samples (.npy/.csv)…", "Save the live particles in data coordinates", None,
          self.export_samples)
        a("export_model", "Trained model…", "Save a run directory (config.json, model.safetensors, loss.csv, "
          "data.npy) for `sgm sample` and `sgm render`", None, self.export_model)

    # -- helpers -----------------------------------------------------------------------------
    def _default_path(self, stem: str, suffix: str = "") -> str:
        session_file = self.ctx.session_path()
        folder = self._last_dir or (session_file.parent if session_file is not None else Path.home())
        return str(folder / f"{stem}{suffix}")

    def _ask(self, title: str, file_filter: str, stem: str, suffix: str) -> Path | None:
        chosen = self.ctx.questions.ask_save_path(title, file_filter, self._default_path(stem, suffix))
        if not chosen:
            return None
        path = Path(chosen)
        self._last_dir = path.parent
        return path

    def _done(self, path: str | Path, what: str) -> None:
        self.ctx.notifier.status(f"Exported {what} to {path}", 8000)
        self.exported.emit(str(path))

    def _fail(self, message: str) -> None:
        self.ctx.notifier.error(message)
        self.export_failed.emit(message)

    # -- animation ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.job is not None or self._starting

    def export_animation(self) -> None:
        """Show the dialog (window-modal, non-blocking); Export starts the job."""
        if self.busy:
            self._fail("an animation export is already running")
            return
        s = self.ctx.session
        defaults = ExportOptions(path=Path(self._default_path("animation", ".gif")), sampler=s.sampler_config.name,
                                 n_particles=s.particles.n_particles, field=s.view.field, data=s.view.data,
                                 seed=s.run_config.train.seed)
        dialog = ExportDialog(self.ctx.parent, defaults, s.data.dim, self.ctx.questions)
        dialog.accepted.connect(self._on_dialog_accepted)
        dialog.finished.connect(self._on_dialog_finished)
        self.dialog = dialog
        dialog.open()

    def _on_dialog_accepted(self) -> None:
        if self.dialog is not None:
            self.start_animation(self.dialog.options())

    def _on_dialog_finished(self) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    def start_animation(self, options: ExportOptions) -> None:
        """Snapshot the EMA model in the engine thread, then render in an ExportJob thread."""
        if self.busy:
            self._fail("an animation export is already running")
            return
        s = self.ctx.session
        self._last_dir = options.path.parent
        current = s.sampler_config
        sampler = current if options.sampler == current.name else SamplerConfig(name=options.sampler)
        options = replace(options, seed=s.run_config.train.seed)
        bounds = self.ctx.canvas.plot.field_bounds()
        angles = self.ctx.canvas.camera_angles()
        self._starting = True
        self.ctx.actions["export_animation"].setEnabled(False)
        self.tasks.submit(packed_snapshot, lambda snap: self._start_job(snap, options, sampler, bounds, angles),
                          self._on_snapshot_failed)

    def _on_snapshot_failed(self, message: str) -> None:
        self._starting = False
        self.ctx.actions["export_animation"].setEnabled(True)
        self._fail(message)

    def _start_job(self, snap: bytes | None, options: ExportOptions, sampler: SamplerConfig,
                   bounds: tuple[tuple[float, float], ...], angles: tuple[float, float] | None = None) -> None:
        self._starting = False
        if snap is None:
            self.ctx.actions["export_animation"].setEnabled(True)
            self._fail(NOTHING_TO_EXPORT)
            return
        o = options
        request = ExportRequest(snap, str(o.path), sampler, frames=o.frames, fps=o.fps, size=o.size, n=o.n_particles,
                                seed=o.seed, bounds=bounds, camera_angles=angles, field=o.field, trails=o.trails,
                                data=o.data, axes=o.axes, legend=o.legend)
        job = ExportJob(request)  # no parent: freed once dropped, after its thread
        progress = QProgressDialog(f"Rendering {options.path.name}…", "Cancel", 0, options.frames, self.ctx.parent)
        progress.setWindowTitle("Export animation")
        progress.setWindowModality(Qt.WindowModality.NonModal)  # the window stays usable; training goes on
        progress.setAutoClose(False)
        progress.setAutoReset(False)
        progress.setMinimumDuration(PROGRESS_AFTER_MS)
        progress.setValue(0)
        progress.canceled.connect(self.cancel)
        job.progressed.connect(self._on_progressed)
        job.finished.connect(self._on_job_finished)
        job.failed.connect(self._on_job_failed)
        job.cancelled.connect(self._on_job_cancelled)
        job.ended.connect(self._on_thread_finished)
        self.job, self.progress = job, progress
        self.job_started.emit(job)
        job.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            if self.progress is not None:
                self.progress.setLabelText("Cancelling…")

    def _on_progressed(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.setValue(done)
            if done >= total:
                self.progress.setLabelText("Writing the file…")

    def _on_job_finished(self, path: str) -> None:
        self._done(path, "the animation")

    def _on_job_failed(self, message: str) -> None:
        self._fail(message)

    def _on_job_cancelled(self) -> None:
        self.ctx.notifier.status("Export cancelled; no file was written", 6000)
        self.export_cancelled.emit()

    def _on_thread_finished(self) -> None:
        progress, self.progress = self.progress, None
        if progress is not None:
            progress.canceled.disconnect(self.cancel)
            progress.hide()
            progress.deleteLater()
        self.job = None
        self.ctx.actions["export_animation"].setEnabled(True)

    def shutdown(self) -> None:
        """Cancel a running export and wait for its thread (the window is closing)."""
        job = self.job
        if job is not None:
            job.cancel()
            job.wait()

    # -- one-shot exports --------------------------------------------------------------------
    def export_png(self) -> None:
        path = self._ask("Save snapshot", "PNG image (*.png)", "snapshot", ".png")
        if path is not None:
            self.save_png(with_suffix(path, ".png"))

    def canvas_image(self) -> QImage:
        """The view in the middle as drawn: the 2D canvas, or the 3D view's framebuffer."""
        view = self.ctx.canvas.active_view()
        grab_image = getattr(view, "grab_image", None)
        return grab_image() if grab_image is not None else view.grab().toImage()

    def save_png(self, path: str | Path) -> bool:
        """The canvas as drawn, through the core's PNG writer: written to a temp file, read back
        pixel-exact, then renamed over `path`; a full disk or any failure shows one line."""
        path = Path(path)
        image = self.canvas_image()
        try:
            if image.isNull():
                raise DataError(f"cannot write {str(path)!r}: the view has no image to save")
            save_png(path, qimage_pixels(image))
        except SGMError as exc:
            self._fail(str(exc))
            return False
        self._done(path, "a snapshot")
        return True

    def export_samples(self) -> None:
        path = self._ask("Export samples", "NumPy array (*.npy);;CSV table (*.csv)", "samples", ".npy")
        if path is not None:
            self.save_samples(path if path.suffix.lower() in (".npy", ".csv") else with_suffix(path, ".npy"))

    def save_samples(self, path: str | Path) -> None:
        """The live particles (data coordinates), written by the worker with `save_points`."""
        def write(engine: LiveEngine | None) -> tuple[Path, tuple[int, ...]]:
            if engine is None:
                raise DataError(NOTHING_TO_EXPORT)
            particles = engine.particles_data()
            return save_points(path, particles), particles.shape

        self.tasks.submit(write, lambda done: self._done(done[0], f"{done[1][0]:,} samples"), self._fail)

    def export_model(self) -> None:
        path = self._ask("Export trained model (a folder)", "Run folder (*)", "run", "")
        if path is not None:
            self.save_model(path)

    def save_model(self, path: str | Path) -> None:
        """A run directory (config.json + model.safetensors + loss.csv + data.npy), written by the worker."""
        def write(engine: LiveEngine | None) -> Path:
            if engine is None:
                raise DataError(NOTHING_TO_EXPORT)
            t = engine.trainer  # save_run reports a failed write as one SessionError sentence
            return save_run(path, engine.config, t.model, t.ema_model, engine.standardizer, t.step,
                            t.loss_history(), engine.dataset.points)

        self.tasks.submit(write, lambda run: self._done(run, "the trained model"), self._fail)

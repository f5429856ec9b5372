"""File ▸ Export figure…: the 2D canvas as a PNG or SVG at a chosen size, for slides and papers;
the 3D view as a PNG at a chosen size (`Plot3D.figure_image`: the GL scene rendered off-screen at
that size, the legend painted over it; GL draws pixels, so there is no SVG of it).

The figure is a fresh, unshown copy of the canvas at the asked size (`Plot2D.figure_copy`): the
same layers over the same region, with its axes and legend, so the window itself never moves.
PNG is the copy's pixels; SVG is the copy painted into Qt's QSvgGenerator (vector arrows, axes,
legend text; heatmaps embedded as images). pyqtgraph's own SVGExporter fails on Qt 6.11's path
data (ValueError in its coordinate rewriting), so it is not used. Both are written by the core's writers
(`sgm_core.video.save_png` / `save_svg`): to a temp file, read back and checked, then renamed, so
a full disk or a bad folder shows one line on the banner and leaves nothing behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QRect, QSize, Signal
from PySide6.QtGui import QAction, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from sgm_core.errors import ConfigError, SGMError
from sgm_core.video import save_png, save_svg

from .export import finish_dialog
from .panels import int_box

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMenu

    from .context import FeatureContext, FileQuestions

FIGURE_FORMATS = {".png": "PNG (pixels)", ".svg": "SVG (vector: arrows, axes, legend)"}
MIN_SIDE, MAX_SIDE = 200, 8000  # px: smaller has no room for the axes; larger is a poster, not a figure
NOT_SVG_3D = "the 3D view is drawn in pixels by OpenGL: export it as a PNG (SVG is for the 2D canvas)"
NO_GL = "the 3D view is not drawn (no OpenGL), so there is no figure of it to export"


@dataclass(frozen=True)
class FigureOptions:
    path: Path  # .png or .svg
    size: tuple[int, int] = (1600, 1200)  # (width, height) pixels (SVG: its user units)


def qimage_rgb(image: QImage) -> object:
    from .export import qimage_pixels  # one converter of QImages to numpy

    return qimage_pixels(image)


def svg_bytes(widget, width: int, height: int) -> bytes:  # noqa: ANN001 - a QWidget
    """The widget painted as an SVG document of width x height user units."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    gen = QSvgGenerator()
    gen.setOutputDevice(buffer)
    gen.setSize(QSize(width, height))
    gen.setViewBox(QRect(0, 0, width, height))
    gen.setResolution(round(widget.logicalDpiX()))  # text in points comes out the size it is on screen
    gen.setTitle("Score Field Playground figure")
    painter = QPainter(gen)
    widget.render(painter)
    painter.end()
    buffer.close()
    svg = bytes(data.data()).decode("utf-8")
    # Qt writes the size in millimetres at its 72 dpi; a figure asked for in pixels says pixels
    head, sep, rest = svg.partition("<svg")
    tag, close, tail = rest.partition(">")
    tag = re.sub(r'\bwidth="[^"]*"', f'width="{width}"', tag, count=1)
    tag = re.sub(r'\bheight="[^"]*"', f'height="{height}"', tag, count=1)
    return (head + sep + tag + close + tail).encode("utf-8")


def render_figure(plot, options: FigureOptions) -> Path:  # noqa: ANN001 - app.views.plot2d.Plot2D
    """Write `plot` as a figure of `options.size`; SGMError (one sentence) on any failure."""
    w, h = options.size
    fig = plot.figure_copy(w, h)
    try:
        if options.path.suffix.lower() == ".svg":
            fig.clip_to_view()
            return save_svg(options.path, svg_bytes(fig, w, h), (w, h))
        image = fig.grab().toImage()
        if image.size() != QSize(w, h):  # a high-DPI screen grabs at its device pixel ratio
            image = image.scaled(w, h)
        return save_png(options.path, qimage_rgb(image))
    finally:
        fig.hide()
        fig.deleteLater()


class FigureDialog(QDialog):
    """Format, size and file of a figure; says what is wrong in the dialog, which then stays open."""

    def __init__(self, parent: QWidget | None, defaults: FigureOptions, is_3d: bool = False,
                 questions: FileQuestions | None = None) -> None:
        super().__init__(parent)
        self.questions = questions  # Browse… asks here
        self.setWindowTitle("Export figure (3D view)" if is_3d else "Export figure")
        form = QFormLayout()
        self.format_combo = QComboBox()
        for suffix, text in FIGURE_FORMATS.items():
            if not (is_3d and suffix == ".svg"):
                self.format_combo.addItem(text, suffix)
        self.format_combo.setToolTip("PNG of the 3D view as shown (OpenGL draws pixels)" if is_3d else
                                     "PNG for slides; SVG for papers (scales without blur)")
        form.addRow("Format", self.format_combo)
        size = QHBoxLayout()
        self.width_box = int_box(MIN_SIDE, MAX_SIDE, defaults.size[0], "Width in pixels")
        self.height_box = int_box(MIN_SIDE, MAX_SIDE, defaults.size[1], "Height in pixels; the view keeps equal "
                                  "units on both axes, so the canvas's region is widened to this shape")
        size.addWidget(self.width_box)
        size.addWidget(QLabel("×"))
        size.addWidget(self.height_box)
        size.addStretch(1)
        form.addRow("Size", size)
        path_row = QHBoxLayout()
        self.path_edit = QLineEdit(str(defaults.path))
        self.path_edit.setMinimumWidth(360)  # the whole path shows
        self.path_edit.setToolTip("Output file; written only when complete and read back")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        form.addRow("File", path_row)
        self.message = finish_dialog(self, form)
        self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(defaults.path.suffix.lower())))
        self.format_combo.currentIndexChanged.connect(self._on_format)

    def _with_format(self, path: Path) -> Path:
        suffix = self.format_combo.currentData()
        if path.suffix.lower() in FIGURE_FORMATS:
            return path.with_suffix(suffix)
        return path.with_name(path.name + suffix)

    def _on_format(self) -> None:
        text = self.path_edit.text().strip()
        if text:
            self.path_edit.setText(str(self._with_format(Path(text))))

    def _browse(self) -> None:
        suffix = self.format_combo.currentData()
        args = ("Export figure", f"{suffix[1:].upper()} (*{suffix})", self.path_edit.text())
        chosen = self.questions.ask_save_path(*args) if self.questions else QFileDialog.getSaveFileName(self, *args)[0]
        if chosen:
            self.path_edit.setText(str(self._with_format(Path(chosen))))

    def options(self) -> FigureOptions:
        text = self.path_edit.text().strip()
        return FigureOptions(self._with_format(Path(text)) if text else Path(),
                             (self.width_box.value(), self.height_box.value()))

    def accept(self) -> None:
        text = self.path_edit.text().strip()
        problem = None if text else "Choose an output file"
        if problem is None and not self.options().path.parent.is_dir():
            problem = f"The folder {self.options().path.parent} does not exist"
        if problem:
            self.message.setText(problem)
            self.message.show()
            return
        super().accept()


class FigureExporter(QObject):
    """File ▸ Export figure…; `exported(path)` / `export_failed(message)` after each try."""

    exported = Signal(str)
    export_failed = Signal(str)

    def __init__(self, ctx: FeatureContext) -> None:
        super().__init__(ctx.parent)
        self.ctx = ctx
        self.dialog: FigureDialog | None = None
        self._last: FigureOptions | None = None

    def export_figure(self) -> None:
        """Show the dialog (window-modal, non-blocking); Export writes the file."""
        if self.dialog is not None:
            return
        session_file = self.ctx.session_path()
        folder = session_file.parent if session_file is not None else Path.home()
        defaults = self._last or FigureOptions(folder / "figure.png")
        dialog = FigureDialog(self.ctx.parent, defaults, self.ctx.canvas.is_3d, self.ctx.questions)
        dialog.accepted.connect(lambda: self.save(dialog.options()))
        dialog.finished.connect(self._on_dialog_finished)
        self.dialog = dialog
        dialog.open()

    def _on_dialog_finished(self) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    def save(self, options: FigureOptions) -> bool:
        """Write the figure of the view shown (2D: PNG or SVG; 3D: PNG); the banner gets the
        one-line reason when it cannot be."""
        self._last = options
        try:
            if self.ctx.canvas.is_3d:
                path = render_figure_3d(self.ctx.canvas.active_view(), options)
            else:
                path = render_figure(self.ctx.canvas.plot, options)
        except SGMError as exc:
            self._fail(str(exc))
            return False
        w, h = options.size
        self.ctx.notifier.status(f"Exported the figure ({w}×{h}) to {path}", 8000)
        self.exported.emit(str(path))
        return True

    def _fail(self, message: str) -> None:
        self.ctx.notifier.error(message)
        self.export_failed.emit(message)


def render_figure_3d(view, options: FigureOptions) -> Path:  # noqa: ANN001 - app.views.plot3d.Plot3D
    """Write the 3D view as a PNG of `options.size`; SGMError (one sentence) when it cannot be."""
    if options.path.suffix.lower() == ".svg":
        raise ConfigError(NOT_SVG_3D)
    w, h = options.size
    image = view.figure_image(w, h)
    if image is None or image.isNull():
        raise ConfigError(NO_GL)
    return save_png(options.path, qimage_rgb(image))


def install_figure_export(ctx: FeatureContext, file_menu: QMenu | None, after: QAction | None) -> FigureExporter:
    """File ▸ Export figure… (Ctrl+Shift+E), in `file_menu` after `after` (the Export submenu)."""
    exporter = FigureExporter(ctx)
    ctx.actions.add("export_figure", "Export &figure…", "Save the canvas with its axes and legend at a chosen "
                    "size: the 2D canvas as PNG or SVG, the 3D view as PNG", "Ctrl+Shift+E", exporter.export_figure)
    action = ctx.actions["export_figure"]
    if file_menu is not None:
        actions = file_menu.actions()
        index = actions.index(after) if after in actions else len(actions) - 1
        before = actions[index + 1] if index + 1 < len(actions) else None
        file_menu.insertAction(before, action)
    return exporter

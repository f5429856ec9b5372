"""File ▸ Export figure…: the 2D canvas as a PNG or SVG at a chosen size, for slides and papers.

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
from PySide6.QtGui import QAction, QImage, QKeySequence, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
)

from sgm_core.errors import SGMError
from sgm_core.video import save_png, save_svg

from .export import finish_dialog
from .panels import int_box

if TYPE_CHECKING:
    from .main_window import MainWindow

FIGURE_FORMATS = {".png": "PNG (pixels)", ".svg": "SVG (vector: arrows, axes, legend)"}
MIN_SIDE, MAX_SIDE = 200, 8000  # px: smaller has no room for the axes; larger is a poster, not a figure
NOT_2D = "figure export draws the 2D canvas; for the 3D view use File ▸ Export ▸ Snapshot PNG"


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

    def __init__(self, window: MainWindow, defaults: FigureOptions) -> None:
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Export figure")
        form = QFormLayout()
        self.format_combo = QComboBox()
        for suffix, text in FIGURE_FORMATS.items():
            self.format_combo.addItem(text, suffix)
        self.format_combo.setToolTip("PNG for slides; SVG for papers (scales without blur)")
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
        chosen = self.window_.ask_save_path("Export figure", f"{suffix[1:].upper()} (*{suffix})", self.path_edit.text())
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

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: FigureDialog | None = None
        self._last: FigureOptions | None = None

    def export_figure(self) -> None:
        """Show the dialog (window-modal, non-blocking); Export writes the file."""
        if self.window.mode3d.is_3d:
            self._fail(NOT_2D)
            return
        if self.dialog is not None:
            return
        files = getattr(self.window, "files", None)
        folder = files.path.parent if files is not None and files.path else Path.home()
        defaults = self._last or FigureOptions(folder / "figure.png")
        dialog = FigureDialog(self.window, defaults)
        dialog.accepted.connect(lambda: self.save(dialog.options()))
        dialog.finished.connect(self._on_dialog_finished)
        self.dialog = dialog
        dialog.open()

    def _on_dialog_finished(self) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    def save(self, options: FigureOptions) -> bool:
        """Write the figure; the banner gets the one-line reason when it cannot be."""
        self._last = options
        if self.window.mode3d.is_3d:
            self._fail(NOT_2D)
            return False
        try:
            path = render_figure(self.window.plot, options)
        except SGMError as exc:
            self._fail(str(exc))
            return False
        w, h = options.size
        self.window.statusBar().showMessage(f"Exported the figure ({w}×{h}) to {path}", 8000)
        self.exported.emit(str(path))
        return True

    def _fail(self, message: str) -> None:
        self.window.show_error(message)
        self.export_failed.emit(message)


def install_figure_export(window: MainWindow) -> FigureExporter:
    """File ▸ Export figure… (Ctrl+Shift+E), after the Export submenu."""
    from .compare_window import find_menu

    exporter = FigureExporter(window)
    action = QAction("Export &figure…", window)
    action.setShortcut(QKeySequence("Ctrl+Shift+E"))
    tip = "Save the 2D canvas with its axes and legend as a PNG or SVG at a chosen size (Ctrl+Shift+E)"
    action.setToolTip(tip)
    action.setStatusTip(tip)
    action.triggered.connect(exporter.export_figure)
    window.addAction(action)  # the shortcut works wherever the focus is
    window.actions_["export_figure"] = action  # the window's action registry (shortcut list, tests)
    file_menu = find_menu(window.menuBar(), "&File")
    if file_menu is not None:
        after = window.export_menu.menuAction()
        actions = file_menu.actions()
        index = actions.index(after) if after in actions else len(actions) - 1
        before = actions[index + 1] if index + 1 < len(actions) else None
        file_menu.insertAction(before, action)
    return exporter

"""File ▸ Export figure… in 3D: the GL view rendered off-screen as a PNG at the chosen size, with
its legend; SVG is refused in one sentence (GL draws pixels). And the figure exporter and the 3D
mode are features on a narrow context (app/context.py): they work against a bare canvas, a plain
Session and a recording notifier, no window."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QWidget
from test_plot3d import _frame, _orange, _particles

from app.context import ActionRegistry, FeatureContext
from app.figure_export import NO_GL, NOT_SVG_3D, FigureExporter, FigureOptions
from app.views.plot2d import Plot2D
from app.views.plot3d import Plot3D, opengl_available

FIG = (720, 400)  # a figure's (width, height): not the widget's 480 x 360


@dataclass
class Recorder:
    """A notifier and file questions that keep what they were told."""

    errors: list[str] = field(default_factory=list)
    news: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors.append(message)

    def status(self, text: str, ms: int = 4000) -> None:
        self.news.append(text)

    def ask_save_path(self, *_args: object) -> str | None:
        return None

    def ask_open_path(self, *_args: object) -> str | None:
        return None


@dataclass
class BareCanvas:
    plot: Plot2D
    view: QWidget | None = None

    @property
    def is_3d(self) -> bool:
        return self.view is not None

    def active_view(self) -> QWidget:
        return self.view if self.view is not None else self.plot

    def camera_angles(self) -> tuple[float, float] | None:
        return None


def context(qtbot, canvas: BareCanvas, recorder: Recorder) -> FeatureContext:
    parent = QWidget()
    qtbot.addWidget(parent)
    return FeatureContext(session=None, engine=None, actions=ActionRegistry(parent), notifier=recorder,
                          questions=recorder, canvas=canvas, parent=parent, session_path=lambda: None)


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(np.int32)


@pytest.fixture
def plot2d(qtbot) -> Plot2D:
    w = Plot2D(seed=0)
    qtbot.addWidget(w)
    w.resize(400, 300)
    w.show()
    w.set_points(np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32))
    w.fit_to(np.array([[-3.0, -3.0], [3.0, 3.0]]))
    QApplication.processEvents()
    return w


def test_the_figure_exporter_needs_only_its_context(qtbot, plot2d, tmp_path):
    recorder = Recorder()
    figures = FigureExporter(context(qtbot, BareCanvas(plot2d), recorder))
    assert figures.save(FigureOptions(tmp_path / "f.png", (500, 400)))
    assert read_rgb(tmp_path / "f.png").shape == (400, 500, 3)
    assert recorder.news == [f"Exported the figure (500×400) to {tmp_path / 'f.png'}"] and recorder.errors == []
    assert not figures.save(FigureOptions(tmp_path / "no such folder" / "f.png", (500, 400)))
    assert len(recorder.errors) == 1 and "\n" not in recorder.errors[0]  # one sentence on the banner
    for module in ("export.py", "figure_export.py", "mode3d.py", "session_io.py"):  # no window in these features
        text = (Path(__file__).parents[1] / "app" / module).read_text()
        assert "MainWindow" not in text and "main_window" not in text and "self.window" not in text


@pytest.fixture
def plot3d(qtbot) -> Plot3D:
    if QGuiApplication.platformName() != "xcb" or not opengl_available():
        pytest.skip(f"needs OpenGL under Xvfb/xcb, platform is {QGuiApplication.platformName()!r}")
    widget = Plot3D()
    qtbot.addWidget(widget)
    widget.resize(480, 360)
    widget.show()
    qtbot.waitExposed(widget)
    data = np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32)
    widget.set_points(data)
    widget.fit_to(data)
    return widget


@pytest.mark.gl
def test_a_3d_figure_is_the_gl_view_at_the_chosen_size_with_its_legend(qtbot, plot2d, plot3d, tmp_path):
    plot3d.show_frame(_frame(_particles()))
    QApplication.processEvents()
    assert [r.label for r in plot3d.legend.entries] == ["Particles", "Data"]
    recorder = Recorder()
    figures = FigureExporter(context(qtbot, BareCanvas(plot2d, plot3d), recorder))
    out = tmp_path / "view.png"
    assert figures.save(FigureOptions(out, FIG)), recorder.errors
    rgb = read_rgb(out)
    assert rgb.shape == (FIG[1], FIG[0], 3)  # the asked size, not the widget's
    legend = rgb[:60, :200]  # the legend box, top-left
    assert _orange(legend) >= 10  # its particle swatch
    body = rgb.copy()
    body[:60, :200] = 255
    assert _orange(body) > 1000  # 500 particles of 5 px discs, rendered at the figure's size
    assert plot3d.size().width() == 480  # the window's view did not move, and still draws
    after = plot3d.grab_image().convertToFormat(QImage.Format.Format_RGB888)
    assert not after.isNull() and after.width() == plot3d._view.width() * after.devicePixelRatio()
    assert not figures.save(FigureOptions(tmp_path / "view.svg", FIG))
    assert recorder.errors == [NOT_SVG_3D] and not (tmp_path / "view.svg").exists()


def test_a_3d_view_without_gl_says_so(qtbot, plot2d, tmp_path):
    class NoGL(QWidget):
        def figure_image(self, _w: int, _h: int) -> None:
            return None

    view = NoGL()
    qtbot.addWidget(view)
    recorder = Recorder()
    figures = FigureExporter(context(qtbot, BareCanvas(plot2d, view), recorder))
    assert not figures.save(FigureOptions(tmp_path / "v.png", FIG))
    assert recorder.errors == [NO_GL] and list(tmp_path.iterdir()) == []


@pytest.mark.gl
@pytest.mark.usefixtures("warm_torch")
def test_the_window_exports_its_3d_view_from_the_menu(qtbot, tmp_path):
    from gui_helpers import open_window, wait
    from PySide6.QtWidgets import QDialogButtonBox

    if QGuiApplication.platformName() != "xcb" or not opengl_available():
        pytest.skip(f"needs OpenGL under Xvfb/xcb, platform is {QGuiApplication.platformName()!r}")
    w = open_window(qtbot, data="helix", size=(1200, 800))
    wait(qtbot, lambda: w.mode3d.is_3d and w.mode3d.plot3d.gl_available)
    qtbot.waitExposed(w.mode3d.plot3d)
    w.actions_["export_figure"].trigger()
    dialog = w.figures.dialog
    combo = dialog.format_combo
    assert [combo.itemData(i) for i in range(combo.count())] == [".png"]  # GL draws pixels: no SVG
    dialog.width_box.setValue(FIG[0])
    dialog.height_box.setValue(FIG[1])
    dialog.path_edit.setText(str(tmp_path / "helix"))
    with qtbot.waitSignal(w.figures.exported, timeout=30_000):
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()
    rgb = read_rgb(tmp_path / "helix.png")
    assert rgb.shape == (FIG[1], FIG[0], 3)
    assert (np.abs(rgb - np.array([82, 105, 140])).max(axis=-1) < 60).sum() > 200  # the helix's data points
    assert f"({FIG[0]}×{FIG[1]})" in w.statusBar().currentMessage()
    w.close()


def test_the_3d_mode_runs_on_its_context_and_places_without_a_window(qtbot, plot2d):
    """Mode3D gets the session, the canvas and the action registry, and its places and hooks: 3D
    data switches the stack to the 3D view, asks for the pan tool, disables the drawing tools
    and the View panel's 2D-only controls; 2D data undoes it."""
    from PySide6.QtWidgets import QStatusBar, QVBoxLayout

    from app.mode3d import Mode3D, Places3D
    from app.panels.view_panel import ViewPanel
    from app.session import DataState, Session

    holder = QWidget()
    qtbot.addWidget(holder)
    QVBoxLayout(holder).addWidget(plot2d)
    session = Session()
    recorder = Recorder()
    ctx = context(qtbot, BareCanvas(plot2d), recorder)
    ctx = FeatureContext(session=session, engine=None, actions=ctx.actions, notifier=recorder, questions=recorder,
                         canvas=ctx.canvas, parent=ctx.parent, session_path=ctx.session_path)
    brush = ctx.actions.add("tool_brush", "Brush", "Draw points", checkable=True)
    tools, views = [], []
    view_panel = ViewPanel(session)
    qtbot.addWidget(view_panel)
    mode = Mode3D(ctx, Places3D(status_bar=QStatusBar(), tools_menu=None, data_layout=None, view_panel=view_panel,
                                drop_target=holder, set_tool=tools.append, spawn=lambda _p: None,
                                request_view=lambda: views.append(1)))
    assert "make_3d" in ctx.actions and not mode.is_3d and mode.stack.currentWidget() is plot2d
    helix = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    session.apply_data(DataState(helix, "cloud", "drawn"))
    assert mode.is_3d and mode.stack.currentWidget() is mode.plot3d and ctx.canvas.plot is plot2d
    assert tools == ["pan"] and not brush.isEnabled() and not view_panel.heatmap_combo.isEnabled()
    assert not ctx.actions["make_3d"].isEnabled()
    mode.set_slice(2, 0.0)
    assert views  # a new slice asks the engine for its field, through the hook
    session.apply_data(DataState(helix[:, :2].copy(), "flat", "drawn"))
    assert not mode.is_3d and brush.isEnabled() and view_panel.heatmap_combo.isEnabled()

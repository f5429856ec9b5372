"""File ▸ Export figure…: the 2D canvas as PNG or SVG at a chosen size, with its axes and legend,
written atomically and read back; a full disk or a bad folder leaves a banner and no file."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial

import gui_helpers
import numpy as np
import pytest
from full_disk import fill, temp_files
from gui_helpers import frame, open_window, small_config
from PIL import Image
from PySide6.QtCore import QByteArray
from PySide6.QtGui import QImage, QPainter
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QDialogButtonBox

from app.export import qimage_pixels
from app.figure_export import FigureOptions
from app.views import colors

TIMEOUT_MS = 60_000
ENOSPC = os.strerror(28)
wait = partial(gui_helpers.wait, timeout=TIMEOUT_MS)
pytestmark = pytest.mark.usefixtures("warm_torch")


@pytest.fixture
def window(qtbot):
    """8 Gaussians, a tiny net trained 100 steps, particles and the learned field on the canvas."""
    w = open_window(qtbot, timeout=TIMEOUT_MS)
    w.session.set_run_config(small_config(steps=100))
    w.session.set_particles(n_particles=300, follow_training=False)
    w.session.set_sampler_config(replace(w.session.sampler_config, steps=3))
    w.actions_["train"].trigger()
    wait(qtbot, lambda: frame(w) is not None and frame(w).step >= 100 and not w.worker_state.training)
    wait(qtbot, lambda: [r.label for r in w.plot.legend.entries][:1] == ["Learned score s_θ(x, σ)"])
    yield w
    w.close()


def orange(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return (r > 190) & (g > 50) & (g < 170) & (b < 120) & (r - b > 110)  # the particle colour only


def test_png_figure_at_the_chosen_size_from_the_dialog(qtbot, window, tmp_path):
    w = window
    canvas = w.plot.size()
    w.actions_["export_figure"].trigger()
    dialog = w.figures.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.width_box.setValue(900)
    dialog.height_box.setValue(500)
    dialog.path_edit.setText(str(tmp_path / "fig"))  # the format's suffix is added
    with qtbot.waitSignal(w.figures.exported, timeout=TIMEOUT_MS) as blocker:
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()
    out = tmp_path / "fig.png"
    assert blocker.args[0] == str(out) and sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
    with Image.open(out) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape == (500, 900, 3)
    assert orange(rgb).sum() > 200  # the particles (and the legend's swatch)
    dark = colors.bin_colors(8)[0][:3]
    assert (np.abs(rgb.astype(int) - dark).max(axis=-1) < 30).sum() > 20  # the learned field's arrows
    # the legend is in the figure, top-left of the plot: its box has the swatches' orange
    top_left = rgb[:140, :450]
    assert orange(top_left).sum() >= 10
    # the same region as the canvas, widened to 9:5 about its centre
    assert w.plot.size() == canvas  # the window did not move
    assert "900×500" in w.statusBar().currentMessage() and str(out) in w.statusBar().currentMessage()


def test_svg_figure_is_vector_and_renders_back(qtbot, window, tmp_path):
    out = tmp_path / "fig.svg"
    assert window.figures.save(FigureOptions(out, (800, 600)))
    data = out.read_bytes()
    renderer = QSvgRenderer(QByteArray(data))
    assert renderer.isValid() and renderer.defaultSize().toTuple() == (800, 600)
    image = QImage(800, 600, QImage.Format.Format_RGB888)
    image.fill(0xFFFFFF)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    rgb = qimage_pixels(image)
    assert orange(rgb).sum() > 100  # the particles, drawn from the SVG's own shapes
    text = data.decode("utf-8")
    assert "Particles" in text and "Data" in text  # the legend's labels are text, not pixels
    assert "<path" in text or "<polyline" in text  # arrows as vectors


def test_a_full_disk_or_a_bad_folder_shows_a_banner_and_leaves_nothing(qtbot, window, tmp_path, tiny_disk):
    ex = window.figures
    with qtbot.waitSignal(ex.export_failed, timeout=TIMEOUT_MS) as blocker:
        assert not ex.save(FigureOptions(tmp_path / "missing" / "f.png", (400, 300)))
    assert "f.png" in blocker.args[0] and window.banner.isVisible()
    assert ex.save(FigureOptions(tiny_disk / "old.png", (300, 200)))  # a good file while there is room
    old = (tiny_disk / "old.png").read_bytes()
    fill(tiny_disk, leave=0)
    # (an SVG of the 5,000 data points is ~2 MB: more than this 1.5 MB disk even empty)
    for name in ("old.png", "new.svg"):
        window.banner.hide()
        with qtbot.waitSignal(ex.export_failed, timeout=TIMEOUT_MS) as blocker:
            assert not ex.save(FigureOptions(tiny_disk / name, (1200, 900)))
        assert ENOSPC in blocker.args[0] and "\n" not in blocker.args[0] and window.banner.isVisible()
        assert name in blocker.args[0]
    assert (tiny_disk / "old.png").read_bytes() == old  # the old figure, byte for byte
    assert not (tiny_disk / "new.svg").exists() and temp_files(tiny_disk) == []


def test_the_dialog_keeps_a_missing_folder_open_with_a_message(qtbot, window, tmp_path):
    window.actions_["export_figure"].trigger()
    dialog = window.figures.dialog
    dialog.path_edit.setText(str(tmp_path / "nope" / "f.png"))
    dialog.accept()
    assert dialog.isVisible() and "does not exist" in dialog.message.text()
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData(".svg"))
    assert dialog.path_edit.text().endswith("f.svg")
    dialog.reject()


def test_the_animation_dialog_asks_for_axes_and_legend(qtbot, tmp_path):
    """Exported animations are figures too (sgm_core.render.Decor); axes only where there are data
    units on screen (2D)."""
    from PySide6.QtWidgets import QWidget

    from app.export import ExportDialog, ExportOptions

    parent = QWidget()
    qtbot.addWidget(parent)
    dialog = ExportDialog(parent, ExportOptions(path=tmp_path / "a.gif"))
    assert (dialog.options().axes, dialog.options().legend) == (True, True)
    dialog.legend_check.setChecked(False)
    assert not dialog.options().legend
    dialog3 = ExportDialog(parent, ExportOptions(path=tmp_path / "a.gif"), dim=3)
    assert not dialog3.axes_check.isEnabled() and not dialog3.options().axes and dialog3.options().legend

"""File ▸ Export from the window: animations (GIF/MP4) in a thread of their own while the GUI
stays responsive, cancel without a trace, PNG snapshots, samples, and a trained-model run directory
that the CLI can sample."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import gui_helpers
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from full_disk import fill, temp_files
from gui_helpers import frame, open_window, small_config
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialogButtonBox, QPushButton

from app.export import ExportOptions
from sgm_core import cli
from sgm_core.checkpoint import load_run
from sgm_core.config import RunConfig, SamplerConfig
from sgm_core.datasets import make_preset
from sgm_core.live import LiveEngine
from sgm_core.render import frame_view, render_model, snapshot_engine

TIMEOUT_MS = 60_000  # generous for a loaded 2-core machine; the exports here take ~1 s
TICK_MS = 10  # the GUI-thread timer that proves the event loop keeps running during an export
MAX_TICK_GAP_S = 0.4  # the longest the GUI may stall during an export (measured 0.03-0.15 s on a loaded machine)
ENOSPC = os.strerror(28)  # "No space left on device"
NOT_BLANK_COLOURS = 16  # a drawn canvas has axes, grid, data, arrows, particles: many colours


wait = partial(gui_helpers.wait, timeout=TIMEOUT_MS)
pytestmark = pytest.mark.usefixtures("warm_torch")


@pytest.fixture
def window(qtbot):
    """8gaussians, a tiny net trained 200 steps, 300 particles, a short sampler schedule; the
    particles stay still after training (not "Sample while training"), so an export sees them
    where the last frame showed them."""
    w = open_window(qtbot, timeout=TIMEOUT_MS)
    w.session.set_run_config(small_config(steps=200))
    w.session.set_particles(n_particles=300, follow_training=False)
    w.session.set_sampler_config(replace(w.session.sampler_config, steps=3))  # annealed: 3 steps x 16 levels
    w.actions_["train"].trigger()
    wait(qtbot, lambda: frame(w) is not None and frame(w).step >= 200 and not w.worker_state.training)
    yield w
    w.close()


def read_frames(path: Path) -> np.ndarray:
    if path.suffix == ".gif":
        return np.stack([np.asarray(f)[..., :3] for f in imageio.mimread(path)])
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return np.stack([np.asarray(f)[..., :3] for f in reader])


class TickCounter:
    """A QTimer in the GUI thread: its tick times show whether the event loop kept running."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.timer = QTimer(interval=TICK_MS)
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))
        self.start = time.perf_counter()
        self.timer.start()

    def stop(self) -> tuple[int, float, float]:
        """(ticks, seconds, longest gap in seconds)."""
        self.timer.stop()
        end = time.perf_counter()
        marks = [self.start, *self.times, end]
        return len(self.times), end - self.start, max(b - a for a, b in zip(marks, marks[1:], strict=False))


# --------------------------------------------------------------------------- animations


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_export_an_animation_from_the_dialog(qtbot, window, tmp_path, suffix, capsys):
    w = window
    out = tmp_path / f"anim{suffix}"
    w.actions_["export_animation"].trigger()
    dialog = w.exporter.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.sampler_combo.currentData() == w.session.sampler_config.name
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData(suffix))
    dialog.frames_box.setValue(24)
    dialog.fps_box.setValue(10)
    dialog.width_box.setValue(160)
    dialog.height_box.setValue(120)
    dialog.particles_box.setValue(400)
    dialog.path_edit.setText(str(tmp_path / "anim"))  # the format's suffix is added
    ticks = TickCounter()
    with qtbot.waitSignal(w.exporter.exported, timeout=TIMEOUT_MS) as blocker:
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()  # "Export"
    n_ticks, seconds, gap = ticks.stop()
    assert blocker.args[0] == str(out)
    frames = read_frames(out)
    assert frames.shape == (24, 120, 160, 3)
    assert all((a != b).any() for a, b in zip(frames, frames[1:], strict=False))  # the particles move
    assert gap < MAX_TICK_GAP_S  # rendering in the GUI thread would freeze it for the whole export
    wait(qtbot, lambda: w.exporter.job is None and w.actions_["export_animation"].isEnabled())
    assert w.statusBar().currentMessage() == f"Exported the animation to {out}"
    with capsys.disabled():
        print(f"\n[{suffix}, 24 frames 160x120, 400 particles: {seconds * 1000:.0f} ms; GUI timer ({TICK_MS} ms) "
              f"ticked {n_ticks} times, longest gap {gap * 1000:.0f} ms]")


def test_training_goes_on_during_an_export(qtbot, window, tmp_path, capsys):
    w = window
    w.session.set_run_config(replace(w.session.run_config, train=replace(w.session.run_config.train, steps=100_000)))
    w.actions_["train"].trigger()  # a new step count only affects the next steps: training goes on
    wait(qtbot, lambda: w.worker_state.training and frame(w).step >= 20)
    ticks, step = TickCounter(), frame(w).step
    with qtbot.waitSignal(w.exporter.exported, timeout=TIMEOUT_MS):
        w.exporter.start_animation(ExportOptions(path=tmp_path / "t.mp4", frames=24, size=(160, 120), n_particles=400))
    n_ticks, seconds, gap = ticks.stop()
    assert w.worker_state.training and frame(w).step > step
    assert n_ticks > 0 and read_frames(tmp_path / "t.mp4").shape == (24, 120, 160, 3)
    w.actions_["stop"].trigger()
    with capsys.disabled():
        print(f"\n[export while training: {seconds * 1000:.0f} ms, {frame(w).step - step} training steps meanwhile; "
              f"GUI timer ticked {n_ticks} times, longest gap {gap * 1000:.0f} ms]")


@pytest.mark.parametrize("existing", [False, True])
def test_cancel_mid_export_leaves_no_file_and_an_existing_one_intact(qtbot, window, tmp_path, existing):
    w = window
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "long.gif"
    if existing:
        out.write_bytes(b"an older animation")
    options = ExportOptions(path=out, frames=400, size=(256, 256), sampler="langevin", n_particles=300)
    with qtbot.waitSignal(w.exporter.job_started, timeout=TIMEOUT_MS):
        w.exporter.start_animation(options)
    wait(qtbot, lambda: w.exporter.progress is not None and w.exporter.progress.isVisible())  # after 0.4 s
    assert w.exporter.progress.value() >= 1
    with qtbot.waitSignal(w.exporter.export_cancelled, timeout=TIMEOUT_MS):
        w.exporter.progress.findChild(QPushButton).click()  # the progress dialog's Cancel
    wait(qtbot, lambda: w.exporter.job is None)
    assert [p.name for p in folder.iterdir()] == (["long.gif"] if existing else [])  # no temp file either
    if existing:
        assert out.read_bytes() == b"an older animation"
    assert "cancelled" in w.statusBar().currentMessage()


def test_closing_during_an_export_cancels_it(qtbot, window, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "closing.mp4"
    with qtbot.waitSignal(window.exporter.job_started, timeout=TIMEOUT_MS) as blocker:
        window.exporter.start_animation(ExportOptions(path=out, frames=400, size=(128, 128), n_particles=300))
    job = blocker.args[0]
    wait(qtbot, lambda: window.exporter.progress is not None and window.exporter.progress.value() >= 1)
    assert window.close()  # trained but the conftest answers Discard
    assert not job.is_running() and list(folder.iterdir()) == []


def test_export_without_a_model_says_so(qtbot, window, tmp_path, monkeypatch):
    window.actions_["clear"].trigger()  # Clear keeps the trained model: it still renders
    window._flush_rebuild()
    with qtbot.waitSignal(window.exporter.exported, timeout=TIMEOUT_MS):
        window.exporter.start_animation(ExportOptions(path=tmp_path / "kept.gif", frames=4, size=(64, 48)))
    assert read_frames(tmp_path / "kept.gif").shape[0] == 4
    wait(qtbot, lambda: not window.exporter.busy)
    monkeypatch.setattr(window, "confirm_discard", lambda *_: True)
    window.files.new()  # File > New starts without a model
    with qtbot.waitSignal(window.exporter.export_failed, timeout=TIMEOUT_MS) as blocker:
        window.exporter.start_animation(ExportOptions(path=tmp_path / "x.gif"))
    assert "nothing to export" in blocker.args[0] and window.banner.isVisible()
    assert window.actions_["export_animation"].isEnabled() and not (tmp_path / "x.gif").exists()


def test_3d_animation_orbits_the_camera(tmp_path):
    """Without a window: a 3D engine's snapshot rendered with the camera turning once."""
    cfg = RunConfig()
    cfg = replace(cfg, model=replace(cfg.model, width=16, depth=1), train=replace(cfg.train, steps=5, batch=64))
    engine = LiveEngine(make_preset("helix", n_points=500), cfg, n_particles=50)
    engine.train(5)
    snap = snapshot_engine(engine)
    out = render_model(snap, tmp_path / "h.gif", SamplerConfig(name="annealed", steps=1), frames=4, size=(64, 48),
                       n=50, bounds=((0, 1), (0, 1)), camera_angles=(30.0, 20.0))
    frames = read_frames(out)
    assert frames.shape == (4, 48, 64, 3) and all((a != b).any() for a, b in zip(frames, frames[1:], strict=False))


def test_frame_view_keeps_the_centre_and_widens_to_the_aspect():
    view = frame_view(((-1.0, 1.0), (0.0, 1.0)), aspect=1.0)
    assert view.xlim == (-1.0, 1.0) and view.ylim == (-0.5, 1.5)
    view = frame_view(((-1.0, 1.0), (-1.0, 1.0)), aspect=2.0)
    assert view.xlim == (-2.0, 2.0) and view.ylim == (-1.0, 1.0)


# --------------------------------------------------------------------------- one-shot exports


def test_snapshot_png_is_the_canvas(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setattr(window, "ask_save_path", lambda *_: str(tmp_path / "snap"))
    with qtbot.waitSignal(window.exporter.exported, timeout=TIMEOUT_MS) as blocker:
        window.actions_["export_png"].trigger()
    path = Path(blocker.args[0])
    assert path == tmp_path / "snap.png" and sorted(p.name for p in tmp_path.glob("snap*")) == ["snap.png"]
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    grab = window.plot.grab()
    assert pixels.shape[:2] == (grab.height(), grab.width())
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > NOT_BLANK_COLOURS


def test_snapshot_into_a_missing_folder_fails_with_a_message(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.exporter.export_failed, timeout=TIMEOUT_MS):
        assert not window.exporter.save_png(tmp_path / "missing" / "snap.png")
    assert window.banner.isVisible() and "snap.png" in window.banner.text()


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_samples_are_the_particles_in_data_coordinates(qtbot, window, tmp_path, monkeypatch, suffix):
    window.actions_["step"].trigger()
    wait(qtbot, lambda: frame(window).sampler_step >= 1)
    particles = frame(window).particles
    monkeypatch.setattr(window, "ask_save_path", lambda *_: str(tmp_path / f"samples{suffix}"))
    with qtbot.waitSignal(window.exporter.exported, timeout=TIMEOUT_MS) as blocker:
        window.actions_["export_samples"].trigger()
    path = Path(blocker.args[0])
    x = np.load(path) if suffix == ".npy" else np.loadtxt(path, delimiter=",", skiprows=1)
    assert x.shape == (300, 2)
    np.testing.assert_allclose(x, particles, atol=1e-6)  # CSV keeps 9 significant digits


def test_trained_model_exports_a_run_the_cli_samples_and_renders(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setattr(window, "ask_save_path", lambda *_: str(tmp_path / "run"))
    with qtbot.waitSignal(window.exporter.exported, timeout=TIMEOUT_MS) as blocker:
        window.actions_["export_model"].trigger()
    run_dir = Path(blocker.args[0])
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "data.npy", "loss.csv", "model.safetensors"]
    run = load_run(run_dir)
    assert run.step == 200 and run.dim == 2 and run.config == window.session.run_config

    got: list[np.ndarray] = []
    x, sigma = torch.randn(32, 2, generator=torch.Generator().manual_seed(1)), torch.full((32,), 0.2)

    def probe(engine) -> None:  # noqa: ANN001 - worker thread
        with torch.no_grad():
            got.append(engine.trainer.score_fn()(x, sigma).numpy().copy())

    window.worker.call(probe)
    wait(qtbot, lambda: got)
    with torch.no_grad():
        np.testing.assert_array_equal(run.model(x, sigma).numpy(), got[0])  # the EMA weights, exactly

    samples = tmp_path / "s.npy"
    assert cli.main(["sample", str(run_dir), "--out", str(samples), "--n", "50"]) == 0
    assert np.load(samples).shape == (50, 2)
    gif = tmp_path / "r.gif"
    assert cli.main(["render", str(run_dir), "--out", str(gif), "--frames", "3", "--size", "64x64",
                     "--n", "50", "--steps", "2"]) == 0
    assert read_frames(gif).shape == (3, 64, 64, 3)


def test_exports_on_a_full_disk_show_one_line_and_keep_the_old_files(qtbot, window, tiny_disk):  # noqa: F811
    """PNG, samples and an animation over good files on a full tmpfs: each fails with the disk's
    reason on the banner (never 'Exported'), and the old files survive byte for byte."""
    w, ex = window, window.exporter
    paths = {"png": tiny_disk / "snap.png", "samples": tiny_disk / "samples.npy", "gif": tiny_disk / "anim.gif"}
    exports = {
        "png": lambda: ex.save_png(paths["png"]),
        "samples": lambda: ex.save_samples(paths["samples"]),
        "gif": lambda: ex.start_animation(ExportOptions(path=paths["gif"], frames=6, size=(96, 96), n_particles=100)),
    }
    for export in exports.values():  # the good files, while there is room
        with qtbot.waitSignal(ex.exported, timeout=TIMEOUT_MS):
            export()
        wait(qtbot, lambda: not ex.busy)
    old = {kind: path.read_bytes() for kind, path in paths.items()}
    fill(tiny_disk, leave=0)
    for kind, export in exports.items():
        w.banner.hide()
        with qtbot.waitSignal(ex.export_failed, timeout=TIMEOUT_MS) as blocker:
            export()
        wait(qtbot, lambda: not ex.busy)
        message = blocker.args[0]
        assert "\n" not in message and str(paths[kind]) in message and ENOSPC in message, (kind, message)
        assert w.banner.isVisible() and ENOSPC in w.banner.text()
        assert not w.statusBar().currentMessage().startswith("Exported")
        assert paths[kind].read_bytes() == old[kind], kind
    assert temp_files(tiny_disk) == []


def test_the_dialog_refuses_a_gif_too_big_for_memory(qtbot, tmp_path):
    """5000 frames of 1024x1024 is 5 GiB of GIF frames held until close: said in the dialog, which
    stays open; the same request as an MP4 (streamed) is fine."""
    from PySide6.QtWidgets import QWidget

    from app.export import ExportDialog

    parent = QWidget()
    qtbot.addWidget(parent)
    dialog = ExportDialog(parent, ExportOptions(path=tmp_path / "big.gif", frames=5000, size=(1024, 1024)))
    assert dialog.frames_box.value() == 5000 and dialog.width_box.value() == 1024
    dialog.accept()
    assert not dialog.message.isHidden() and "GiB" in dialog.message.text() and "\n" not in dialog.message.text()
    assert dialog.result() != ExportDialog.DialogCode.Accepted
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData(".mp4"))
    assert dialog.problem() is None

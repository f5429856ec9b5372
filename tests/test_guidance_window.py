"""Classifier-free guidance in the window (issue 16): labelled data trains a class-conditional net
(the Train panel says so), the Sampler dock asks for a class and moves the guidance slider, and
the particles resample under the guided score: they stay on the class's modes, their spread
around them shrinks as the exact truth predicts (tests/test_live_guidance.py measures the truth:
0.71 of the plain spread at w = 4), and they are drawn in the class's colour."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from gui_helpers import frame, open_window, small_config, wait

from sgm_core.datasets import make_preset
from sgm_core.metrics import class_mode_stats
from sgm_core.palette import class_color
from sgm_core.sessions import load_session

pytestmark = pytest.mark.usefixtures("warm_torch")
PRESET = "8gaussians-labelled"
N = 1000
STEPS = 1500  # a 64x2 flow net: 98% of class-0 samples on its modes at w = 0 (600 steps: 50%, a blur)
W = 4.0  # the exact guided score shrinks the spread to 0.71 of the plain one here


def _settled(w, guide_class, guidance):  # noqa: ANN001, ANN202
    def done() -> bool:
        f = frame(w)
        return (f is not None and f.guide_class == guide_class and f.guidance == guidance
                and f.sampler_step >= f.sampler_steps and not w.worker_state.training)
    return done


def _class_share(x, gmm, c: int) -> float:  # noqa: ANN001
    """The fraction of samples whose most responsible mixture component belongs to class c."""
    idx = gmm.responsibilities(torch.as_tensor(np.asarray(x), dtype=torch.float64)).argmax(1)
    return float((gmm.labels[idx] == c).double().mean())


def _colour_pixels(image, rgb: tuple[int, int, int], tol: int = 40) -> int:
    """How many pixels of a QImage lie within `tol` of `rgb` in every channel."""
    img = image.convertToFormat(image.Format.Format_RGB32)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[..., 2::-1]
    return int((np.abs(arr.astype(int) - np.array(rgb)) <= tol).all(-1).sum())


def test_guidance_slider_moves_the_particles_onto_the_class(qtbot, tmp_path):
    w = open_window(qtbot, data=PRESET)
    try:
        s = w.session
        assert s.classes() == make_preset(PRESET).classes and len(s.classes()) == 2
        assert "conditional on 2" in w.train_panel.classes_label.text()
        panel = w.sampler_panel
        assert not panel.guidance_slider.isEnabled()  # no class asked for yet: w means nothing
        cfg = small_config(steps=STEPS, loss="fm", lr=3e-3)
        s.set_run_config(replace(cfg, model=replace(cfg.model, width=64), train=replace(cfg.train, batch=512)))
        s.set_sampler_config(replace(s.sampler_config, name="heun", steps=32))
        s.set_particles(n_particles=N, steps_per_frame=8, follow_training=False)
        w._flush_rebuild()
        w.actions_["train"].trigger()
        wait(qtbot, lambda: frame(w) is not None and frame(w).step >= STEPS and not w.worker_state.training,
             timeout=240_000)
        assert w._model[0].model.classes == s.classes()  # the engine trained the class-conditional net

        panel.class_combo.setCurrentIndex(1)  # class 0 (index 0 is "None (unconditional)")
        assert s.guide() == (0, 0.0) and panel.guidance_slider.isEnabled()
        wait(qtbot, _settled(w, 0, 0.0), timeout=120_000)
        gmm = s.dataset().gmm
        plain_xy = np.array(frame(w).particles)
        plain = class_mode_stats(plain_xy, gmm, 0)
        assert plain["on_class"] > 0.7, plain  # measured 0.78: the plain conditional of a small net, blurred

        panel.guidance_slider.setValue(round(panel.guidance_slider.maximum() * W / 10))
        assert s.guidance == pytest.approx(W) and f"{W:.1f}" in panel.guidance_label.text()
        wait(qtbot, _settled(w, 0, W), timeout=120_000)
        f = frame(w)
        guided = class_mode_stats(f.particles, gmm, 0)
        assert np.abs(np.array(f.particles) - plain_xy).max() > 0.1  # the slider moved the particles
        assert _class_share(f.particles, gmm, 0) > 0.95, guided  # every particle nearest a class-0 mode
        assert guided["offset"] > plain["offset"], (plain, guided)  # pushed past the modes (measured 0.05 -> 0.34)
        assert guided["spread"] < 0.85 * plain["spread"], (plain, guided)  # the truth: 0.71 at w = 4

        w.plot.set_layers(data=False, field=False)  # the particles alone, in class 0's colour
        qtbot.wait(200)
        image = w.plot.grab().toImage()
        w.grab().save(str(tmp_path / "guidance.png"))
        assert w.plot.particle_color()[:3] == class_color(0)
        assert _colour_pixels(image, class_color(0)) > 200
        assert _colour_pixels(image, class_color(1)) < 20
        print(tmp_path / "guidance.png", plain, guided)

        # Tools ▸ Steps vs quality samples what the particles sample: class 0 under w = 4, scored
        # against class 0 as the Metrics dock scores them (not against the whole data).
        w.actions_["steps_vs_quality"].trigger()
        sw = w.steps_window
        qtbot.addWidget(sw)
        for i in range(sw.sampler_list.count()):
            item = sw.sampler_list.item(i)
            item.setCheckState(item.checkState().Checked if item.text() == "heun" else item.checkState().Unchecked)
        sw.steps_edit.setText("4,16")
        sw.run_button.click()
        wait(qtbot, lambda: sw.run_button.isEnabled() and sw.rows, 120_000)
        assert "scored against class 0 (sampled with guidance w = 4)" in sw.status.text(), sw.status.text()
        assert all(np.isfinite(r.sw_ratio) and np.isfinite(r.mode_weight_error) for r in sw.rows)
        sw.close()
    finally:
        w.close()


def test_painted_classes_keep_their_labels_through_undo_erase_and_a_session(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, data=None)
    try:
        s = w.session
        assert not w.train_panel.classes_label.isVisibleTo(w.train_panel)
        w.data_panel.class_combo.setCurrentIndex(1)  # palette class 0 (index 0: unlabelled)
        w.data_panel.class_combo.activated.emit(1)
        rng = np.random.default_rng(0)
        s.add_points((rng.normal(size=(60, 2)) * 0.2 + (-2, 0)).astype(np.float32))
        w.data_panel.class_combo.setCurrentIndex(2)
        w.data_panel.class_combo.activated.emit(2)
        s.add_points((rng.normal(size=(40, 2)) * 0.2 + (2, 0)).astype(np.float32))
        assert np.array_equal(s.labels(), np.r_[np.zeros(60), np.ones(40)])
        assert s.classes() == ("0", "1") and "conditional on 2" in w.train_panel.classes_label.text()
        assert tuple(s.dataset().classes) == ("0", "1") and s.model_config().model.classes == ("0", "1")

        s.undo_stack.undo()  # class 1's stroke goes: one class left, an unconditional drawing
        assert s.labels().tolist() == [0] * 60 and s.classes() == ()
        s.undo_stack.redo()
        assert s.erase_points(np.array([[-2.0, 0.0]], np.float32), radius=0.3) > 0
        left = s.labels()
        assert len(left) == len(s.points) and (left == 1).sum() == 40 and 0 < (left == 0).sum() < 60

        w.plot.fit_to(s.points)
        qtbot.wait(100)
        image = w.plot.grab().toImage()
        w.grab().save(str(tmp_path / "painted.png"))
        from app.views.plot2d import DATA_CLASS_ALPHA
        pale = [tuple(round(255 + (c - 255) * DATA_CLASS_ALPHA / 255) for c in class_color(k)) for k in (0, 1)]
        assert _colour_pixels(image, pale[0], 15) > 20 and _colour_pixels(image, pale[1], 15) > 20

        path = tmp_path / "painted.sgm"
        monkeypatch.setattr(w, "ask_save_path", lambda *_: str(path))
        with qtbot.waitSignal(w.files.saved, timeout=30_000):
            w.actions_["save_session_as"].trigger()
        saved = s.labels().copy()
        s.clear_points()
        with qtbot.waitSignal(w.files.opened, timeout=30_000):
            w.files.open(path)
        assert np.array_equal(s.labels(), saved) and s.classes() == ("0", "1")
    finally:
        w.close()


def test_a_session_keeps_the_guided_class_and_w(qtbot, tmp_path, monkeypatch):
    """Class 1 at w = 3 is saved; after the window moves on (unconditional, w = 0), opening the file
    shows class 1 and w = 3 in the Sampler dock, the engine's frames are guided so, and the saved
    (guided) particles come back as they were, not resampled."""
    w = open_window(qtbot, data=PRESET)
    try:
        s, panel = w.session, w.sampler_panel
        s.set_run_config(small_config(steps=30))
        # 10 steps a level, not 100: the chain ends (three times here) in ~1 s, and what is checked is
        # what the session keeps, not the samples' quality
        s.set_sampler_config(replace(s.sampler_config, steps=10))
        s.set_particles(n_particles=200, follow_training=False)
        w._flush_rebuild()
        w.actions_["train"].trigger()
        wait(qtbot, lambda: frame(w) is not None and frame(w).step >= 30 and not w.worker_state.training)
        panel.class_combo.setCurrentIndex(2)  # class 1 (index 0 is "None (unconditional)")
        panel.guidance_slider.setValue(round(panel.guidance_slider.maximum() * 3.0 / 10))
        assert s.guide() == (1, 3.0)
        wait(qtbot, _settled(w, 1, 3.0), timeout=60_000)
        if w.worker_state.playing:  # a finished Langevin chain goes on at its last σ: hold it still
            w.actions_["play"].trigger()
            wait(qtbot, lambda: not w.worker_state.playing)
        path = tmp_path / "guided.sgm"
        monkeypatch.setattr(w, "ask_save_path", lambda *_: str(path))
        with qtbot.waitSignal(w.files.saved, timeout=30_000):
            w.actions_["save_session_as"].trigger()
        assert not w.isWindowModified()
        saved = load_session(path)
        assert saved.guide == (1, 3.0)

        panel.class_combo.setCurrentIndex(0)  # the window moves on: unconditional, w = 0
        panel.guidance_slider.setValue(0)
        assert s.guide() is None and w.files.is_dirty()  # the guidance is part of what a session saves
        wait(qtbot, _settled(w, None, 0.0), timeout=60_000)

        with qtbot.waitSignal(w.files.opened, timeout=30_000):
            w.files.open(path)
        assert s.guide() == (1, 3.0)
        assert panel.class_combo.currentIndex() == 2 and panel.class_combo.currentText() == s.classes()[1]
        assert panel.guidance_slider.value() == 30 and panel.guidance_label.text() == "w = 3.0"
        assert panel.guidance_slider.isEnabled() and not w.files.is_dirty()
        wait(qtbot, lambda: frame(w) is not None and frame(w).guide_class == 1 and frame(w).guidance == 3.0)
        np.testing.assert_allclose(frame(w).particles, saved.particles, atol=1e-5)  # not resampled on open
        assert w.plot.particle_color()[:3] == class_color(1)
    finally:
        w.close()


def _stroke_preview_pixels(qtbot, w, rgb_of: tuple[int, int, int]) -> tuple[int, int]:
    """Press and drag the brush (no release) across the canvas; pixels of the preview's colour
    (`rgb_of` at the preview's alpha over white) and of the plain preview colour, then release."""
    from PySide6.QtCore import QPoint, Qt

    from sgm_core.palette import STROKE_PREVIEW, over_background

    vp = w.plot.viewport()
    path = [QPoint(vp.width() // 4 + 12 * i, vp.height() // 2) for i in range(25)]
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=path[0])
    for p in path[1:]:
        qtbot.mouseMove(vp, p)
    qtbot.wait(50)
    image = w.plot.grab().toImage()
    tinted = _colour_pixels(image, over_background((*rgb_of, STROKE_PREVIEW[3])), 25)
    plain = _colour_pixels(image, over_background(STROKE_PREVIEW), 25)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=path[-1])
    return tinted, plain


def test_the_brush_stroke_preview_takes_the_painted_class_colour(qtbot, tmp_path):
    w = open_window(qtbot, data=None)
    try:
        s, panel = w.session, w.data_panel
        w.set_tool("brush")
        s.set_brush(0.4, 40)
        panel.class_combo.setCurrentIndex(2)  # palette class 1 (index 0: unlabelled)
        panel.class_combo.activated.emit(2)
        assert s.painted_class() == 1 and w.plot.stroke_preview_color()[:3] == class_color(1)
        tinted, plain = _stroke_preview_pixels(qtbot, w, class_color(1))
        assert tinted > 300 and plain < 10, (tinted, plain)  # 25 dabs x 40 points of 4 px, sky blue
        assert len(s.points) > 0 and set(s.labels().tolist()) == {1}
        panel.class_combo.setCurrentIndex(0)  # "unlabelled" into labelled data paints class 0: its colour shows
        panel.class_combo.activated.emit(0)
        assert s.painted_class() == 0
        tinted, plain = _stroke_preview_pixels(qtbot, w, class_color(0))
        assert tinted > 300 and plain < 10, (tinted, plain)
        assert set(s.labels().tolist()) == {0, 1}
        w.grab().save(str(tmp_path / "preview.png"))
        s.clear_points()  # unlabelled again: the plain preview colour
        assert s.painted_class() is None
        tinted, plain = _stroke_preview_pixels(qtbot, w, class_color(0))
        assert plain > 300 and tinted < 10, (tinted, plain)
    finally:
        w.close()


def test_labelled_csv_and_npz_files_open_through_the_window_as_conditional_data(qtbot, tmp_path):
    """File ▸ Open on a CSV with a `label` column of names and on .npz files of points + labels
    (ints in 2D, names in 3D): the Sampler dock's class combo lists the file's class names, the
    Train panel says conditional on N classes, the canvas colours the points by class, and the
    trained net guides towards a named class."""
    rng = np.random.default_rng(0)
    centres = {"cat": (-2.0, 0.0), "dog": (2.0, 0.0), "eel": (0.0, 2.0)}
    rows = [(x, y, name) for name, (cx, cy) in centres.items()
            for x, y in rng.normal(size=(100, 2)) * 0.2 + (cx, cy)]
    csv = tmp_path / "animals.csv"
    csv.write_text("x,y,label\n" + "".join(f"{x:.5f},{y:.5f},{name}\n" for x, y, name in rows))
    flat = tmp_path / "pairs.npz"
    np.savez(flat, points=rng.normal(size=(200, 2)) + np.repeat([[-1.5, 0.0], [1.5, 0.0]], 100, 0),
             labels=np.repeat([5, 2], 100))
    solid = tmp_path / "solid.npz"
    np.savez(solid, points=rng.normal(size=(120, 3)), labels=np.array(["in", "out"] * 60))

    w = open_window(qtbot, data=None)
    try:
        s, panel = w.session, w.sampler_panel

        def opened(path, n) -> None:  # noqa: ANN001
            w.open_file(path)
            wait(qtbot, lambda: (s.data.name == path.stem and len(s.points) == n) or w.banner.isVisible())
            assert not w.banner.isVisible(), w.banner.text()

        def combo_names() -> list[str]:
            return [panel.class_combo.itemText(i) for i in range(1, panel.class_combo.count())]

        opened(csv, 300)
        assert s.data.kind == "file" and s.classes() == ("cat", "dog", "eel")
        assert combo_names() == ["cat", "dog", "eel"] and panel.class_combo.isEnabled()
        assert w.train_panel.classes_label.text() == "conditional on 3 classes"
        assert w.train_panel.classes_label.isVisibleTo(w.train_panel)
        assert s.labels().tolist() == [0] * 100 + [1] * 100 + [2] * 100
        w.plot.fit_to(s.points)
        qtbot.wait(100)
        from app.views.plot2d import DATA_CLASS_ALPHA
        image = w.plot.grab().toImage()
        for k in range(3):  # each class in its own pale colour
            pale = tuple(round(255 + (c - 255) * DATA_CLASS_ALPHA / 255) for c in class_color(k))
            assert _colour_pixels(image, pale, 15) > 20, k
        w.grab().save(str(tmp_path / "animals.png"))

        s.set_run_config(small_config(steps=20))
        s.set_particles(n_particles=200, follow_training=False)
        w._flush_rebuild()
        w.actions_["train"].trigger()
        wait(qtbot, lambda: frame(w) is not None and frame(w).step >= 20 and not w.worker_state.training)
        assert w._model[0].model.classes == ("cat", "dog", "eel")
        panel.class_combo.setCurrentIndex(3)  # "eel"
        assert s.guide() == (2, 0.0)
        wait(qtbot, lambda: frame(w).guide_class == 2)

        opened(flat, 200)  # int labels: named as in the file, in sorted order
        assert s.classes() == ("2", "5") and combo_names() == ["2", "5"]
        assert w.train_panel.classes_label.text() == "conditional on 2 classes"
        assert s.labels().tolist() == [1] * 100 + [0] * 100
        assert s.guide() is None  # the previous file's class 2 ("eel") is not one of these two

        opened(solid, 120)  # 3D
        assert s.data.dim == 3 and s.classes() == ("in", "out") and combo_names() == ["in", "out"]
        assert w.train_panel.classes_label.text() == "conditional on 2 classes"
    finally:
        w.close()

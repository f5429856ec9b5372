"""The layout holds (issue 13): after every lesson, at 1280×800 and 1024×700, no control of a dock
is cut off or squeezed below its minimum size hint (Qt's own geometry), the lesson bar wraps
instead of widening the window, saved layouts are versioned and refused when they do not fit,
View ▸ Reset layout; leaving a lesson brings the user's own settings back, Settings ▸ Restore
defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gui_helpers import TIMEOUT_MS, open_window, small_config, wait
from PySide6.QtCore import QSettings

from app.layout_check import TITLE_BAR, layout_problems
from app.lessons_ui import CANVAS_MIN_PX, CHECK_COLORS
from app.main_window import LAYOUT_VERSION
from app.session import Session
from sgm_core.datasets import Standardizer
from sgm_core.lessons import Claim, load_lessons
from sgm_core.noise import default_sigma_max

LESSONS = load_lessons()
pytestmark = pytest.mark.usefixtures("warm_torch")


REPO = Path(__file__).resolve().parents[1]
SMALL_SCREEN_PROBE = """
import json, sys
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv)
from app.main_window import MainWindow
w = MainWindow(data=None, device="CPU")
free = w.screen().availableGeometry()
print(json.dumps({"free": [free.width(), free.height()], "window": [w.width(), w.height()]}))
w.close()
"""


def test_the_first_launch_fits_a_small_screen(tmp_path):
    """The first launch opened 1440×900 on a 1280×800 laptop: the right docks and the status bar
    lay off the screen. The offscreen platform's screen is 800×800: the window must fit it."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path), "SGM_ENGINE": "thread",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("DISPLAY", None)
    done = subprocess.run([sys.executable, "-c", SMALL_SCREEN_PROBE], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    (free_w, free_h), (width, height) = got["free"], got["window"]
    assert free_w < 1440 and free_h < 900, "the probe needs a screen smaller than the default window"
    assert width <= free_w and height <= free_h - TITLE_BAR


def test_the_first_launch_keeps_its_size_on_a_large_screen(qtbot):
    w = open_window(qtbot, data=None)
    try:
        free = w.screen().availableGeometry()
        if free.width() < 1440 or free.height() < 900 + TITLE_BAR:
            pytest.skip(f"a {free.width()}x{free.height()} screen: the window is cut to it")
        assert (w.width(), w.height()) == (1440, 900)
    finally:
        w.close()


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)], ids=["1280x800", "1024x700"])
def test_every_lesson_keeps_every_control_whole(qtbot, size):
    w = open_window(qtbot, size=size)
    folded: list[bool] = []
    try:
        wait(qtbot, lambda: w._docks_sized)
        qtbot.wait(50)
        assert layout_problems(w) == []
        for i in range(len(LESSONS)):
            with qtbot.waitSignal(w.lessons.started, timeout=TIMEOUT_MS):
                w.lessons.menu.actions()[i].trigger()
            qtbot.wait(30)  # one layout pass
            assert (w.width(), w.height()) == size, LESSONS[i].id
            assert layout_problems(w) == [], LESSONS[i].id
            combo = w.train_panel.loss_combo
            text = combo.fontMetrics().horizontalAdvance(combo.currentText())
            assert combo.width() > text, "the loss combo shows its whole name"
            bar = w.lessons.bar
            assert bar.width() <= w.centralWidget().width()
            wait(qtbot, lambda: w.mode3d.stack.height() >= CANVAS_MIN_PX)  # the bar folds to leave the canvas room
            folded.append(bar.folded)
        print(size, "folded:", folded)
        # at 1280x800 most lessons have room to stay open; at 1024x700 the open bar never leaves 220 px
        assert sum(folded) <= len(LESSONS) // 2 if size == (1280, 800) else all(folded)
        w.lessons.bar.close_button.click()
        qtbot.wait(30)  # one layout pass: leaving a flow lesson (fm shows no σ fields) shows the user's fields again
        assert (w.width(), w.height()) == size and layout_problems(w) == []
    finally:
        w.close()


def test_a_saved_layout_of_another_version_is_refused_and_reset_layout_restores_docks(qtbot):
    w = open_window(qtbot, data=None, size=(1280, 800))
    w.docks["Train"].hide()
    w.docks["Data"].setFloating(True)
    w.actions_["reset_layout"].trigger()
    assert all(d.isVisible() and not d.isFloating() for d in w.docks.values())
    w.docks["Train"].hide()
    w.close()
    st = QSettings("ScoreFieldPlayground", "Playground")
    assert st.value("layout_version") in (LAYOUT_VERSION, str(LAYOUT_VERSION))
    again = open_window(qtbot, data=None)
    assert not again.docks["Train"].isVisible()  # a saved layout of this version comes back
    again.close()
    st.setValue("layout_version", LAYOUT_VERSION - 1)
    st.sync()
    old = open_window(qtbot, data=None)
    assert old.docks["Train"].isVisible()  # the older version's layout was refused
    old.close()


def test_leaving_a_lesson_brings_back_the_users_settings_and_restore_defaults(qtbot):
    w = open_window(qtbot)
    try:
        s = w.session
        s.set_run_config(replace(s.run_config, noise=replace(s.run_config.noise, sigma_max=2.5, n_levels=7)))
        s.set_view(sigma=0.7)
        mine = s.settings()
        lesson = LESSONS[-1]
        with qtbot.waitSignal(w.lessons.started, timeout=TIMEOUT_MS):
            w.lessons.load(len(LESSONS) - 1)
        assert s.settings() != mine
        assert w.lessons.user_settings() == mine
        w.save_settings()  # a launch now gets the user's settings, not the lesson's
        assert '"sigma_max": 2.5' in str(QSettings("ScoreFieldPlayground", "Playground").value("run_config"))
        w.lessons.bar.close_button.click()
        assert s.settings() == mine and w.lessons.lesson is None, lesson.id
        w.actions_["restore_defaults"].trigger()
        assert s.settings() == Session.default_settings()
        assert "Restore defaults" in [a.text() for m in w.menuBar().actions() if m.menu() for a in m.menu().actions()]
    finally:
        w.close()


def test_leaving_a_lesson_brings_back_the_users_own_drawing(qtbot):
    """The status said "your own settings are back" and the user's drawing was gone: only Undo,
    which a newcomer does not know, brought it back; and the lesson's load marked the session
    saved, so closing would not have asked about the drawing."""
    w = open_window(qtbot, data=None)
    try:
        s = w.session
        drawn = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
        s.add_points(drawn)
        assert w.files.is_dirty()
        with qtbot.waitSignal(w.lessons.started, timeout=TIMEOUT_MS):
            w.lessons.load(0)
        assert s.data.source == LESSONS[0].data
        assert w.files.is_dirty(), "the unsaved drawing is one Undo away: closing must still ask"
        w.lessons.bar.close_button.click()
        assert w.lessons.lesson is None
        np.testing.assert_array_equal(s.points, drawn)
        assert "your own data and settings are back" in w.statusBar().currentMessage()
        assert w.files.is_dirty()
        w.actions_["undo"].trigger()  # the lesson's data again
        assert s.data.source == LESSONS[0].data
    finally:
        w.close()


def test_opening_other_data_in_a_lesson_leaves_it(qtbot):
    w = open_window(qtbot)
    try:
        mine = w.session.settings()
        with qtbot.waitSignal(w.lessons.started, timeout=TIMEOUT_MS):
            w.lessons.load(len(LESSONS) - 1)
        other = next(name for name in ("moons", "swissroll", "circles") if name != LESSONS[-1].data)
        w.load_data(other)
        # the σ max for the new data is chosen in the engine: wait for it (asserting before it came
        # back passed, after it failed: a flake seen once in a full run)
        wait(qtbot, lambda: w.session.data.source == other and not w.sigma_max_pending)
        assert w.lessons.lesson is None and not w.lessons.bar.isVisible()
        # the user's own settings are back, and their σ max, left to the data, follows the new data
        now, points = w.session.settings(), w.session.points
        top = now["run_config"].noise.sigma_max
        assert top == pytest.approx(default_sigma_max(torch.as_tensor(Standardizer.fit(points).forward(points))))
        theirs = mine["run_config"]
        assert now == {**mine, "run_config": theirs.with_(noise=replace(theirs.noise, sigma_max=top))}
    finally:
        w.close()


def test_a_lesson_asks_before_a_trained_model_goes(qtbot):
    w = open_window(qtbot)
    try:
        asked = []
        w.ask_discard_model = lambda steps, reason, answer: (asked.append((steps, reason)), answer(False))
        w.session.set_run_config(small_config(steps=30))
        w.actions_["train"].trigger()
        wait(qtbot, lambda: w.session.last_frame is not None and w.session.last_frame.step >= 30
             and not w.worker_state.training)
        w.lessons.load(0)
        assert asked == [(30, "the lesson sets up its own data and network")]
        assert w.lessons.lesson is None and not w.lessons.bar.isVisible()
    finally:
        w.close()


def test_a_bar_opened_by_hand_where_there_is_no_room_still_leaves_the_canvas_its_minimum(qtbot):
    w = open_window(qtbot, size=(1024, 700))
    try:
        with qtbot.waitSignal(w.lessons.started, timeout=TIMEOUT_MS):
            w.lessons.menu.actions()[1].trigger()
        bar = w.lessons.bar
        wait(qtbot, lambda: bar.folded)  # at 1024x700 the open bar left the canvas ~68 px: it folds
        assert not bar.caption_label.isVisible() and bar.folded_title.isVisible()
        assert bar.folded_title.full_text() == LESSONS[1].title and bar.height() < 45  # one row
        folded_height = bar.height()
        bar.fold_button.click()  # the user opens it anyway: their choice stands
        wait(qtbot, lambda: bar.height() > folded_height)
        qtbot.wait(30)
        assert not bar.folded and bar.checks_label.isVisible()
        assert w.mode3d.stack.height() >= CANVAS_MIN_PX  # the caption's tail is cut, not the canvas
        assert bar.toolTip() == LESSONS[1].caption  # the whole caption is still there
        bar.fold_button.click()
        wait(qtbot, lambda: bar.height() == folded_height)
        assert layout_problems(w) == []
    finally:
        w.close()


def test_a_folded_bar_still_says_whether_its_checks_hold(qtbot):
    """Folded (as at 1280x800 for half the lessons), the bar hid its checks: the verdict now stays
    in its one row after the title, coloured as the checks are, and goes when the bar opens on them."""
    w = open_window(qtbot, size=(1024, 700))
    try:
        with qtbot.waitSignal(w.lessons.started, timeout=TIMEOUT_MS):
            w.lessons.menu.actions()[1].trigger()
        bar = w.lessons.bar
        wait(qtbot, lambda: bar.folded)
        assert bar.summary_label.isVisible() and bar.summary_label.text() == "measuring…"
        w.worker.lesson_checked.disconnect(w.lessons._on_lesson_checked)  # the claims below, not the engine's
        assert not bar.checks_label.isVisible()

        def claim(holds: bool) -> Claim:
            return Claim("c", 1.0, 2.0, holds, "s", "line " + ("✓" if holds else "✗"))

        bar.show_checks((claim(True), claim(False), claim(True)))
        assert bar.summary_label.text() == "✗ 2/3 checks"
        assert CHECK_COLORS[False] in bar.summary_label.styleSheet()
        bar.show_checks((claim(True), claim(True)))
        assert bar.summary_label.text() == "✓ 2/2 checks"
        assert CHECK_COLORS[True] in bar.summary_label.styleSheet()
        qtbot.wait(30)
        assert layout_problems(w) == []  # the verdict fits beside the title at 1024 px
        assert bar.folded_title.isVisible() and not bar.title_label.isVisible()
        assert bar.folded_title.text().endswith("…") and bar.folded_title.toolTip() == LESSONS[1].title
        bar.fold_button.click()
        wait(qtbot, lambda: not bar.folded)
        assert not bar.summary_label.isVisible() and bar.checks_label.isVisible()
        assert bar.title_label.isVisible() and bar.title_label.text() == LESSONS[1].title  # whole, wrapped
        assert "line ✓" in bar.checks_label.text()
    finally:
        w.close()


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)], ids=["1280x800", "1024x700"])
def test_a_status_message_is_never_cut_by_the_permanent_labels(qtbot, size):
    w = open_window(qtbot, size=size)
    try:
        bar = w.statusBar()
        labels = list(w.status_labels.values())
        text = "Training finished at step 1,600 — Train continues for another round"
        bar.showMessage(text, 60_000)

        def first_label_x() -> int:
            shown = [lab for lab in labels if lab.isVisible()]
            return min(lab.mapTo(bar, lab.rect().topLeft()).x() for lab in [*shown, w.progress.bar])

        need = bar.fontMetrics().horizontalAdvance(text) + 6
        wait(qtbot, lambda: need <= first_label_x())  # the message ends before the labels begin (once laid out)
        assert bar.currentMessage() == text
        assert w.status_labels["step"].isVisible()  # the step count never yields
        bar.clearMessage()
        qtbot.wait(30)
        assert all(lab.isVisible() for lab in labels)  # all back once the message goes
    finally:
        w.close()


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)], ids=["1280x800", "1024x700"])
def test_the_recovery_offer_beside_a_lesson_and_the_banner_leaves_the_canvas_room(qtbot, size):
    """The lesson bar folds for every strip above the canvas (the offer, the banner), not only the banner;
    the offer puts its buttons under its text in a narrow column."""
    w = open_window(qtbot, size=size)
    try:
        wait(qtbot, lambda: w._docks_sized)
        w.recovery_bar.offer("Not saved when the playground last ended: “swissroll”, 5,000 points, trained 2,000 steps "
                             "(Thu 03 Dec, 11:56).")
        with qtbot.waitSignal(w.lessons.started, timeout=TIMEOUT_MS):
            w.lessons.menu.actions()[2].trigger()
        if size == (1280, 800):  # and a problem's banner on top, where there is the height for all three
            w.show_error("something went wrong with a file that has a long name and a reason that wraps")
        qtbot.wait(30)
        assert (w.width(), w.height()) == size
        assert layout_problems(w) == []
        assert w.recovery_bar.restore_button.isVisible() and w.recovery_bar.discard_button.isVisible()
        wait(qtbot, lambda: w.mode3d.stack.height() >= CANVAS_MIN_PX)  # the lesson bar folds to leave the canvas room
    finally:
        w.close()

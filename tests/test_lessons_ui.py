"""Lessons ▸ 1, 2, …: each loads its data, settings and caption and starts; the bar's controls work.

The lessons' measured effects are tested headless in tests/test_lessons.py; here nothing runs to
convergence: a lesson is checked once its engine has been asked to train or play.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from gui_helpers import TIMEOUT_MS, ask_engine, open_window, wait

from app.lessons_ui import lesson_run_config, lesson_view, watch_text
from app.main_window import MainWindow
from app.session import field_sigma_for, sigma_range
from sgm_core.lessons import load_lessons

LESSONS = load_lessons()


pytestmark = pytest.mark.usefixtures("warm_torch")


@pytest.fixture
def window(qtbot):
    w = open_window(qtbot)
    yield w
    w.close()


def choose(qtbot, window: MainWindow, index: int) -> None:
    """Pick Lessons ▸ <index + 1> from the menu and wait until the lesson has started."""
    with qtbot.waitSignal(window.lessons.started, timeout=TIMEOUT_MS):
        window.lessons.menu.actions()[index].trigger()


def test_the_menu_lists_every_lesson_in_order(window):
    from sgm_core.lessons import LESSON_DIR

    titles = [a.text() for a in window.lessons.menu.actions()]
    assert titles == [lesson.title for lesson in LESSONS] and len(titles) == len(list(LESSON_DIR.glob("*.json")))
    assert all(a.toolTip() for a in window.lessons.menu.actions())
    assert not window.lessons.bar.isVisible()


@pytest.mark.parametrize("index", range(len(LESSONS)), ids=[lesson.id for lesson in LESSONS])
def test_every_lesson_loads_its_settings_and_caption_and_starts(qtbot, window, index):
    lesson = LESSONS[index]
    choose(qtbot, window, index)
    s, bar = window.session, window.lessons.bar
    variant = lesson.variants[0]
    assert s.data.source == lesson.data and s.data.kind == "preset"
    assert s.run_config == lesson_run_config(lesson, variant)
    assert s.sampler_config == variant.sampler
    assert s.particles.n_particles == lesson.particles
    assert s.particles.reference_score == (lesson.score == "truth")
    expected_view = lesson_view(lesson)
    assert {k: getattr(s.view, k) for k in expected_view if k != "sigma"} == \
        {k: v for k, v in expected_view.items() if k != "sigma"}
    if "sigma" in lesson.view:  # single-σ variants still draw at their one σ
        assert s.view.sigma == pytest.approx(lesson.view["sigma"])
        assert s.field_sigma() == pytest.approx(field_sigma_for(s.run_config, lesson.view["sigma"]))
    # the panels show the settings (they listen to the session)
    assert window.train_panel.loss_combo.currentData() == s.run_config.loss.name
    assert window.sampler_panel.sampler_combo.currentData() == variant.sampler.name
    assert window.sampler_panel.score_combo.currentData() == (lesson.score == "truth")
    # the bar: title, caption and what to watch, variants when there are several
    assert bar.isVisible() and bar.title_label.text() == lesson.title
    assert bar.caption_label.text() == lesson.caption
    assert watch_text(lesson) in bar.watch_label.text() and "What to watch" in bar.watch_label.text()
    assert bar.variant_combo.isVisible() == (len(lesson.variants) > 1)
    assert [bar.variant_combo.itemText(i) for i in range(bar.variant_combo.count())] == [v.label for v in lesson.variants]
    assert bar.compare_button.isVisible() == ("compare" in lesson.view)
    # it runs: learned lessons train, lessons that play move particles with the right score
    if lesson.score == "learned":
        wait(qtbot, lambda: window.worker_state.training)
        assert s.run_config.train.steps == lesson.train_steps
    if lesson.view.get("play"):
        wait(qtbot, lambda: window.worker_state.playing and s.last_frame is not None and s.last_frame.sampler_step > 0)
    else:
        wait(qtbot, lambda: not window.worker_state.playing)  # the previous lesson's playback stops as the engine answers
    window.stop()


def test_a_truth_lesson_lets_the_slider_scrub_sigma(qtbot, window):
    choose(qtbot, window, 0)  # the score field of a mixture: "slide σ up"
    s = window.session
    lo, hi = sigma_range(s.run_config)
    assert lo == pytest.approx(0.05) and hi > 1.0 and window.view_panel.sigma_slider.isEnabled()
    assert s.view.true_field and not s.view.field  # nothing is trained: the field shown is the truth
    window.view_panel.sigma_slider.setValue(window.view_panel.sigma_slider.maximum())
    wait(qtbot, lambda: s.last_frame is not None and s.last_frame.field_sigma == pytest.approx(hi)
         and s.last_frame.true_field is not None)


def test_switching_variant_rebuilds_with_its_settings(qtbot, window):
    index = next(i for i, lesson in enumerate(LESSONS) if lesson.id == "annealing-fix")
    choose(qtbot, window, index)
    s, bar = window.session, window.lessons.bar
    assert s.run_config.loss.name == "dsm" and s.sampler_config.name == "langevin"
    with qtbot.waitSignal(window.lessons.started, timeout=TIMEOUT_MS):
        bar.variant_combo.setCurrentIndex(1)
        bar.variant_combo.activated.emit(1)
    assert s.run_config.loss.name == "ncsn" and s.sampler_config.name == "annealed"
    wait(qtbot, lambda: window.worker_state.training and s.last_frame is not None and s.last_frame.step > 0)
    window.stop()


def test_compare_button_opens_the_lessons_losses_and_the_bar_closes(qtbot, window):
    index = next(i for i, lesson in enumerate(LESSONS) if "compare" in lesson.view)
    choose(qtbot, window, index)
    window.stop()
    window.session.set_run_config(replace(window.session.run_config, train=replace(window.session.run_config.train,
                                                                                      steps=10)))
    window.lessons.bar.compare_button.click()
    compare = window.compare_windows[-1]
    assert compare.checked() == list(LESSONS[index].view["compare"])
    compare.close()
    assert not compare.worker.is_running()
    window.lessons.bar.close_button.click()
    assert not window.lessons.bar.isVisible() and window.lessons.lesson is None


def test_a_guided_variant_shows_its_class_and_w_and_leaving_gives_the_users_back(qtbot, window):
    """Lesson 12's checks measure class 1 under w: the canvas's particles must be those, not the
    unconditional sampler (they were: the Sampler dock stayed at "None", w = 0)."""
    from sgm_core.datasets import class_index

    s = window.session
    s.set_guidance(None, 2.5)  # the user's own w, to come back after the lesson
    index = next(i for i, lesson in enumerate(LESSONS) if lesson.id == "guidance")
    lesson = LESSONS[index]
    choose(qtbot, window, index)
    label, w = lesson.variants[0].guide
    assert s.guide() == (class_index(s.classes(), label), w)
    with qtbot.waitSignal(window.lessons.started, timeout=TIMEOUT_MS):
        window.lessons.bar.variant_combo.setCurrentIndex(1)
        window.lessons.bar.variant_combo.activated.emit(1)
    label, w = lesson.variants[1].guide
    c = class_index(s.classes(), label)
    assert s.guide() == (c, w) and w > 0
    assert ask_engine(qtbot, window, lambda eng: eng.guide) == (c, w)
    window.lessons.leave()
    assert s.guide_class is None and s.guidance == 2.5


def test_particle_checks_say_they_measure_after_the_samplers_last_denoise(qtbot, window):
    """Lesson 5's check said 1.9% off the data, measured after annealed Langevin's last Tweedie
    denoise; the particles as drawn, before it, are 3.0% off. The checks' tooltip says which."""
    from app.lessons_ui import FINAL_DENOISE_NOTE
    from sgm_core.lessons import needs_particles

    particles = next(i for i, lesson in enumerate(LESSONS) if needs_particles(lesson))
    training_only = next(i for i, lesson in enumerate(LESSONS) if not needs_particles(lesson))
    choose(qtbot, window, particles)
    assert FINAL_DENOISE_NOTE in window.lessons.bar.checks_label.toolTip()
    choose(qtbot, window, training_only)
    assert FINAL_DENOISE_NOTE not in window.lessons.bar.checks_label.toolTip()

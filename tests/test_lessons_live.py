"""The lesson bar shows each claim as a live check, measured in the engine from the window's own
particles and net: grey "measuring…" first, then one green line per claim (the same claims as
`sgm lesson ID`, tests/test_lessons.py), each with its numbers and threshold."""

from __future__ import annotations

import pytest
from gui_helpers import open_window, wait

from app.lessons_ui import CHECK_COLORS, checks_html
from sgm_core.lessons import Claim, lesson_by_id

pytestmark = pytest.mark.usefixtures("warm_torch")
LIVE_MS = 120_000  # a lesson's own settings: 500 training steps or a 500-step sampler pass, on a loaded 2-core machine


STEPS_PER_FRAME = 50  # the sampler pass in few frames (the window's default, 5, held a 1000-step pass to 200 frames)
PLAY_BUDGET_S = 0.25  # ... and room in a frame for them: see below


@pytest.fixture
def window(qtbot, monkeypatch):
    """The window, its sampler passes taken in whole frames of STEPS_PER_FRAME steps: the claims
    are measured on the finished pass, whose steps do not depend on how they split into frames;
    what the frame clock paces (at most 30 frames a second) is tested in tests/test_engine.py."""
    from sgm_core import engine

    monkeypatch.setattr(engine, "PLAY_BUDGET", PLAY_BUDGET_S)
    w = open_window(qtbot)
    w.session.set_particles(steps_per_frame=STEPS_PER_FRAME)
    yield w
    w.close()


@pytest.mark.parametrize("lesson_id", ["score-field", "tiny-sigma", "mixture-weights", "manifold", "langevin-bias",
                                       "why-diffusion", "straight-paths"])
def test_the_live_checks_turn_green_in_the_window(qtbot, window, lesson_id):
    """Truth lessons (their sampler pass with the true score; one a ratio of two variants, the
    other run headless in the engine) and learned ones at their own settings (the net trained in
    the window: 500 steps; 800 steps then a Langevin pass, compared with the exact score from the
    window's own starts; a flow trained 1000 steps, judged by its 32-step Heun samples): every
    claim measured live holds and is drawn green."""
    lesson = lesson_by_id(lesson_id)
    bar = window.lessons.bar
    with qtbot.waitSignal(window.lessons.started, timeout=LIVE_MS):
        window.lessons.load(lesson_id)
    assert "measuring…" in bar.checks_label.text() and CHECK_COLORS[None] in bar.checks_label.text()
    wait(qtbot, lambda: bar.claims is not None, LIVE_MS)
    claims = bar.claims
    trained = len(lesson.variants) if lesson.score == "learned" else 0
    assert len(claims) == len(lesson.expect) + trained, [c.line for c in claims]
    assert all(c.holds for c in claims), [c.line for c in claims]
    text = bar.checks_label.text()
    assert text.count(CHECK_COLORS[True]) == len(claims) and CHECK_COLORS[False] not in text
    assert "measuring" not in text
    for c in claims:
        assert "✓" in c.line and "_" not in c.line  # human names, not metric keys
    if lesson.score == "learned":
        assert any(c.name.startswith("learned[") for c in claims)
    bar.grab().save(f"/tmp/lesson_live_{lesson_id}.png")
    window.stop()


def test_a_failed_check_is_red_with_its_numbers():
    lesson = lesson_by_id("mixture-weights")
    failed = Claim("x", 1.1, 2.0, False, "", "plain Langevin mode-weight error 0.1 — annealed 0.09 — ✗ 1.1×, at least 2×")
    html = checks_html((failed,), lesson)
    assert CHECK_COLORS[False] in html and "0.09" in html and "at least 2×" in html

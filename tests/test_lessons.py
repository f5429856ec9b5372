"""Every lesson shows, measured, the effect its caption claims (the 'expect' list of its file)."""

import json

import pytest

from sgm_core.errors import ConfigError
from sgm_core.lessons import LESSON_DIR, check_lesson, load_lessons, parse_lesson, run_lesson

LESSONS = load_lessons()


def test_all_eight_lessons_ship_as_data_files():
    assert len(LESSONS) == 8
    assert len({lesson.id for lesson in LESSONS}) == 8
    assert all(lesson.caption and lesson.expect for lesson in LESSONS)


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.id for lesson in LESSONS])
def test_lesson_shows_its_effect(lesson):
    results = run_lesson(lesson, n_eval=1000)
    assert check_lesson(lesson, results) == [], results


def test_check_reports_a_claim_that_does_not_hold():
    lesson = next(lesson for lesson in LESSONS if lesson.id == "mixture-weights")
    fake = {"plain Langevin": {"mode_weight_error": 0.01}, "annealed Langevin": {"mode_weight_error": 0.3}}
    failures = check_lesson(lesson, fake)
    assert failures and "mode_weight_error" in failures[0]


def test_malformed_lesson_is_a_config_error():
    raw = json.loads((LESSON_DIR / "01-score-field.json").read_text())
    del raw["variants"]
    with pytest.raises(ConfigError, match="malformed"):
        parse_lesson(raw)

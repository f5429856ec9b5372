"""Wall-clock training time and an ETA that does not climb (sgm_core.progress.RunClock)."""

from __future__ import annotations

import numpy as np
import pytest

from sgm_core.progress import ETA_MIN_SECONDS, RunClock

JITTER = 0.3  # a step rate wobbling by ±30% from frame to frame (GIL, frames, metrics)


def test_elapsed_is_wall_clock_and_a_pause_does_not_count():
    clock = RunClock()
    clock.start(10.0, step=0)
    assert clock.elapsed(12.5) == pytest.approx(2.5)  # every second counts, not only optimiser time
    clock.stop(12.5, finished=False)
    assert clock.elapsed(100.0) == pytest.approx(2.5)  # paused: the clock holds
    clock.start(100.0, step=250)
    assert clock.elapsed(101.0) == pytest.approx(3.5)
    assert RunClock(elapsed=42.0).elapsed(5.0) == 42.0  # a session's saved time goes on


def test_eta_never_climbs_under_a_jittery_rate_and_reaches_zero():
    rng = np.random.default_rng(0)
    clock, step, now, target = RunClock(), 0, 0.0, 5000
    clock.start(now, step)
    shown = []
    while step < target:
        now += 0.1
        step = min(target, step + int(10 * (1 + JITTER * rng.uniform(-1, 1))))  # ~100 steps/s
        eta = clock.eta(now, step, target)
        if eta is not None:
            shown.append(eta)
    assert len(shown) > 400 and np.all(np.diff(shown) <= 1e-9)  # never up, frame after frame
    first_steps = 100 * ETA_MIN_SECONDS  # ~100 steps/s until the first ETA
    assert shown[0] == pytest.approx((target - first_steps) / 100, rel=JITTER)  # the round's true rate
    assert shown[-1] < 1.0


def test_a_new_round_measures_afresh_and_a_real_slow_down_shows():
    clock = RunClock()
    clock.start(0.0, step=0)
    assert clock.eta(1.0, 100, 1000) == pytest.approx(9.0)
    clock.stop(1.0, finished=True)  # Stop: the next Train is a new round
    clock.start(50.0, step=100)
    assert clock.eta(50.2, 110, 1000) is None  # too little behind it to say
    assert clock.eta(51.0, 110, 1000) == pytest.approx(89.0)  # 10 steps/s now, not the old 100


def test_an_optimistic_start_slows_the_countdown_instead_of_reaching_zero_early():
    clock, step, now, target = RunClock(), 0, 0.0, 2000
    clock.start(now, step)
    shown = []
    while step < target - 100:  # 200 steps/s for the first second, then 100 steps/s
        now += 0.05
        step += 10 if now <= 1.0 else 5
        eta = clock.eta(now, step, target)
        if eta is not None:
            shown.append(eta)
    assert np.all(np.diff(shown) <= 1e-9)
    assert shown[-1] > 0.25  # ~1 s truly left (100 steps): the countdown did not run out ahead of it

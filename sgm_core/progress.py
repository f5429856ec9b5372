"""Training progress in wall-clock time: how long a model has trained, and how long its round has left."""

from __future__ import annotations

ETA_MIN_SECONDS = 0.5  # a round's rate needs this much training behind it before an ETA is shown
ETA_REANCHOR = 1.5  # the ETA may rise again only when the rate truly fell: raw > this x the shown ETA...
ETA_REANCHOR_SECONDS = 5.0  # ... plus this many seconds (jitter of a few frames never counts)


class RunClock:
    """Wall-clock training time of one model, and the ETA of the round under way.

    `elapsed` counts every second between Train and the round's end (pauses excluded), not only
    the seconds inside optimiser steps: frames, particles and metrics share the same wall clock,
    so the count runs at real time. The ETA is the round's remaining steps at the round's average
    wall-clock rate, and it never climbs while the rate holds: the shown value only falls (by the
    time passed, slower while the estimate says more is left, or to a lower estimate), and rises
    only when the estimate exceeds it by ETA_REANCHOR (the rate truly fell, e.g. the Metrics dock
    was opened)."""

    def __init__(self, elapsed: float = 0.0) -> None:
        self._before = float(elapsed)  # seconds of earlier stretches
        self._since: float | None = None  # when the running stretch began (None: not running)
        self._round: tuple[float, int] | None = None  # (running seconds, step) when this round began
        self._shown: tuple[float, float] | None = None  # (when, ETA) last given

    @property
    def running(self) -> bool:
        return self._since is not None

    def elapsed(self, now: float) -> float:
        return self._before + (now - self._since if self._since is not None else 0.0)

    def start(self, now: float, step: int) -> None:
        """Training (re)starts at `step`: a Resume goes on with its round, else a new round
        restarts the rate and the ETA."""
        if self._since is None:
            self._since = now
        if self._round is None:
            self._round, self._shown = (self.elapsed(now), step), None

    def stop(self, now: float, finished: bool) -> None:
        """Training rests (the clock holds); `finished`: the round is over (finished or stopped),
        so the next start begins a new one, else (paused) it resumes this one."""
        if self._since is not None:
            self._before += now - self._since
            self._since = None
        self._shown = None  # the pause is not time that passed for the ETA
        if finished:
            self._round = None

    def eta(self, now: float, step: int, target: int) -> float | None:
        """Seconds to `target` at this round's wall-clock rate (None until it can be measured)."""
        if self._since is None or self._round is None or step >= target:
            return None
        seconds, start_step = self.elapsed(now) - self._round[0], self._round[1]
        if seconds < ETA_MIN_SECONDS or step <= start_step:
            return None
        raw = (target - step) * seconds / (step - start_step)
        if self._shown is not None:
            when, shown = self._shown
            # count down at real time while the estimate agrees, slower while it says more is left
            # (an optimistic start): the shown value never rises, and it does not hit 0 early
            held = max(0.0, shown - (now - when) * min(1.0, shown / raw if raw > 0 else 1.0))
            if raw <= held * ETA_REANCHOR + ETA_REANCHOR_SECONDS:
                raw = min(raw, held)
        self._shown = (now, raw)
        return raw

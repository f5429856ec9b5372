"""Frames from engine state, without Qt, threads or processes.

`FrameBuilder` turns a `LiveEngine` plus what the view asks for (`FrameRequest`) into one
immutable `Frame`. The costly parts are cached: the field and the reference field until the model
or the view changes, the heatmaps at most on a throttle sized by their own
cost, so a frame clock at 30 Hz does not recompute a 64x64 error map 30 times a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .live import FieldView, Frame, LiveEngine

SLOW_EVERY = 0.5  # seconds between refreshes of costly frame parts (error map, curl)
SLOW_COST_FACTOR = 8.0  # ... and never more often than this many times their own cost
TRAINING_FIELD_EVERY = 0.1  # seconds between learned-field refreshes while training (the eye sees 10 Hz
# as motion; at 30 Hz the field cost ~5% of the engine's time that training now gets)
HEATMAPS = ("off", "error", "density", "curl")


class Throttle:
    """Due when at least `every` seconds and `factor` x its last cost have passed."""

    def __init__(self, every: float, factor: float = SLOW_COST_FACTOR) -> None:
        self.every, self.factor = every, factor
        self.last, self.cost = -1e9, 0.0

    def due(self, now: float) -> bool:
        return now - self.last >= max(self.every, self.factor * self.cost)

    def record(self, end: float, cost: float) -> None:
        """A computation that ended at `end` after `cost` seconds of its own work."""
        self.last, self.cost = end, cost


@dataclass(frozen=True)
class FrameRequest:
    """What the next frame must show besides particles and the loss curve."""

    view: FieldView | None = None  # the field grid asked for; None: no field
    heatmap: str = "off"  # one of HEATMAPS (2D only)
    training: bool = False  # an ETA is shown while training
    target: int = 0  # the step count the current round trains to
    train_seconds: float = 0.0  # wall-clock seconds this model has trained (RunClock.elapsed)
    particles_moved: int = 0  # particle-steps taken since the last frame
    particle_rate: float = 0.0  # frames per second that showed moved particles
    eta: float | None = None  # RunClock.eta; None: estimated from the engine's step rate


class FrameBuilder:
    """Builds frames for one engine generation at a time; `gen` keys every cache."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._slow = {"error": Throttle(SLOW_EVERY), "density": Throttle(0.2, 4.0),
                      "curl": Throttle(SLOW_EVERY), "field": Throttle(TRAINING_FIELD_EVERY, 1.0)}

    def clear(self) -> None:
        """A new engine: nothing cached belongs to it."""
        self._cache.clear()

    def _cached(self, key: str, ident: Any, compute: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == ident:
            return hit[1]
        value = compute()
        self._cache[key] = (ident, value)
        return value

    def _slow_part(self, key: str, ident: Any, now: float, compute: Callable[[], Any]) -> Any:
        """A costly frame part: recomputed when its inputs change, at most on its throttle."""
        hit = self._cache.get(key)
        # Same engine and view: reuse until the step changes and the throttle allows a refresh.
        if hit is not None and hit[0][:2] == ident[:2] and (hit[0] == ident or not self._slow[key].due(now)):
            return hit[1]
        t0 = time.perf_counter()
        value = compute()
        cost = time.perf_counter() - t0
        self._slow[key].record(now + cost, cost)  # on the frame's clock (`now`), which tests may set
        self._cache[key] = (ident, value)
        return value

    def build(self, eng: LiveEngine, request: FrameRequest, gen: int, now: float | None = None) -> Frame:
        """The newest snapshot of `eng` (engine generation `gen`) for `request`."""
        now = time.perf_counter() if now is None else now
        base = eng.frame(None, training=request.training)
        step = eng.trainer.step
        eta = request.eta if request.training else None
        if eta is None and request.training and base.steps_per_second > 0 and step < request.target:
            eta = (request.target - step) / base.steps_per_second
        changes: dict[str, Any] = {"elapsed": request.train_seconds, "eta": eta, "target": request.target,
                                   "particles_moved": request.particles_moved, "particle_rate": request.particle_rate}
        view = request.view
        if view is not None and len(view.bounds) != eng.dataset.dim:
            view = None  # the view of the data before (2D <-> 3D): its own view follows the new engine
        if view is not None:
            ident = (gen, view, step)
            if request.training:  # the model steps every frame: refresh on a throttle
                changes["field"] = self._slow_part("field", ident, now, lambda: eng.field(view))
            else:  # paused or done: the field of this very step, at once
                changes["field"] = self._cached("field", ident, lambda: eng.field(view))
            changes["field_sigma"] = view.sigma
            if view.truth:
                changes["true_field"] = self._cached("true", (gen, view), lambda: eng.true_field(view))
            if eng.dataset.dim == 2:
                changes["heatmap_bounds"] = tuple(view.bounds[:2])
                if request.heatmap == "error":
                    changes["error_map"] = self._slow_part("error", ident, now, lambda: eng.error_map(view))
                elif request.heatmap == "density":
                    changes["heatmap"] = self._slow_part("density", ident, now, lambda: eng.log_density(view))
                elif request.heatmap == "curl":
                    changes["curl_map"] = self._slow_part("curl", ident, now, lambda: eng.curl_map(view))
        return replace(base, **changes)


def particle_status(frame: Frame, moving: bool = True) -> str:
    """The status bar's word on the particles: how many, MALA's acceptance rate, how often they move, and, when a frame
    moves only a slice of them (round-robin under the frame budget), how many move per update. Particles at rest
    (moving=False: paused, or a finished chain) get no rate: the last one measured no longer holds."""
    n = len(frame.particles)
    text = f"{n:,} particles"
    if frame.acceptance_rate is not None:
        text += f", {frame.acceptance_rate:.0%} accepted"
    if frame.particle_rate <= 0 or not moving:
        return text
    text += f", {frame.particle_rate:.0f} updates/s"
    if 0 < frame.particles_moved < n:
        text += f" ({frame.particles_moved:,} move per update)"
    return text

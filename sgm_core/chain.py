"""One particle chain: a sampler walking a set of particles through its schedule.

The live engine animates one chain and the compare runs animate one per plot; both need the same
bookkeeping (where in the schedule the chain is, its own generator, the last few positions for
trails, and what to do with a particle that blew up), so it lives here once.
"""

from __future__ import annotations

from collections.abc import Callable

from .lazy import lazy_module
from .samplers import Sampler

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

ScoreFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


class ParticleChain:
    """Particles `(n, D)` (standardised units) at step `step` of `sampler`'s schedule.

    A particle that leaves the finite numbers restarts instead of poisoning the view: at its
    `initial` position when the chain keeps one (compare runs restart from their shared start),
    else with a fresh draw from the sampler's initial distribution.

    Too many particles for one step in a frame's budget advance round-robin (`advance_some`): each
    call moves the next slice one step of the schedule, and `step` counts a step once every
    particle has taken it. (The PC corrector's batch-mean norms are then a slice's means.)
    """

    def __init__(self, sampler: Sampler, particles: torch.Tensor, generator: torch.Generator, *,
                 initial: torch.Tensor | None = None, trail_length: int = 0) -> None:
        self.sampler = sampler
        self.particles = particles
        self.start = particles  # where this pass of the schedule began (what a lesson's check compares from)
        self.restarts = 0  # passes begun after the first: tells one pass from the next
        self.generator = generator
        self.initial = initial
        self.step = 0
        self.cursor = 0  # particles [:cursor] already took step `step` + 1 (round-robin, mid-sweep)
        self.trail_length = max(0, int(trail_length))
        self.trail: list[torch.Tensor] = []  # oldest first, at most trail_length

    @classmethod
    def from_prior(cls, sampler: Sampler, n: int, dim: int, generator: torch.Generator,
                   device: torch.device | str = "cpu", trail_length: int = 0) -> ParticleChain:
        """n particles drawn from the sampler's initial distribution with `generator`."""
        return cls(sampler, sampler.init(n, dim, generator).to(device), generator, trail_length=trail_length)

    @property
    def done(self) -> bool:
        """The schedule's end is reached (Langevin-type chains may go on stepping past it)."""
        return self.step >= self.sampler.n_steps

    @property
    def sigma(self) -> float:
        return self.sampler.sigma_at(self.step)

    @property
    def acceptance_rate(self) -> float | None:
        """The sampler's Metropolis acceptance rate so far (MALA), else None."""
        return getattr(self.sampler, "acceptance_rate", None)

    def restart(self, particles: torch.Tensor) -> None:
        """Begin the schedule again from `particles` (trails cleared)."""
        self.particles = self.start = particles
        self.restarts += 1
        self.step = 0
        self.cursor = 0
        self.trail = []

    def set_trails(self, length: int) -> None:
        self.trail_length = max(0, int(length))
        self.trail = self.trail[-self.trail_length:] if self.trail_length else []

    def advance(self, score_fn: ScoreFn, n_steps: int, *, stop_at_end: bool = False) -> int:
        """Up to n sampler steps (fewer when `stop_at_end` and the schedule ends); returns how many."""
        taken = 0
        with torch.no_grad():
            for _ in range(n_steps):
                if stop_at_end and self.done:
                    break
                self.particles = self.sampler.step(score_fn, self.particles, self.step, self.generator)
                self.step += 1
                taken += 1
            self._restart_blown_up()
        if self.trail_length and taken:
            self.trail.append(self.particles.detach().clone())
            del self.trail[:-self.trail_length]
        return taken

    def advance_some(self, score_fn: ScoreFn, count: int) -> int:
        """One schedule step for the next `count` particles, round-robin (wrapping into the next
        sweep), so a frame's budget moves a slice instead of waiting for all; returns how many moved.
        At most all n move per call, so no particle is ever more than one step ahead of another."""
        n = len(self.particles)
        count = max(0, min(int(count), n))
        if self.cursor >= n:  # the particles were replaced by fewer
            self.cursor = 0
        if self.cursor == 0 and count == n:
            self.advance(score_fn, 1)
            return n
        moved = 0
        self.particles = self.particles.clone()  # never write into a tensor someone else holds (`initial`)
        with torch.no_grad():
            while moved < count:
                lo = self.cursor
                hi = min(n, lo + count - moved)
                part = self.sampler.step(score_fn, self.particles[lo:hi], self.step, self.generator)
                self.particles[lo:hi] = part
                self._restart_blown_up(slice(lo, hi))
                moved += hi - lo
                self.cursor = hi
                if hi == n:  # the sweep is complete: the whole set took this step
                    self.cursor = 0
                    self.step += 1
                    if self.trail_length:
                        self.trail.append(self.particles.detach().clone())
                        del self.trail[:-self.trail_length]
        return moved

    def finish(self, score_fn: ScoreFn) -> None:
        """The sampler's last move at the schedule's end (e.g. the Tweedie denoise)."""
        with torch.no_grad():
            self.particles = self.sampler.finish(score_fn, self.particles)

    def _restart_blown_up(self, rows: slice = slice(None)) -> None:
        x = self.particles[rows]  # a view: writing to it writes the particles
        bad = ~torch.isfinite(x).all(dim=1)
        if not bad.any():
            return
        if self.initial is not None:
            x[bad] = self.initial[rows][bad].to(x.device)
        else:
            x[bad] = self.sampler.init(int(bad.sum()), x.shape[1], self.generator).to(x.device)

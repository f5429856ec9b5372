"""One particle chain: a sampler walking a set of particles through its schedule.

The live engine animates one chain and the compare runs animate one per plot; both need the same
bookkeeping (where in the schedule the chain is, its own generator, the last few positions for
trails, and what to do with a particle that blew up), so it lives here once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .samplers import Sampler

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ParticleChain:
    """Particles `(n, D)` (standardised units) at step `step` of `sampler`'s schedule.

    A particle that leaves the finite numbers restarts instead of poisoning the view: at its
    `initial` position when the chain keeps one (compare runs restart from their shared start),
    else with a fresh draw from the sampler's initial distribution.
    """

    def __init__(self, sampler: Sampler, particles: torch.Tensor, generator: torch.Generator, *,
                 initial: torch.Tensor | None = None, trail_length: int = 0) -> None:
        self.sampler = sampler
        self.particles = particles
        self.generator = generator
        self.initial = initial
        self.step = 0
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

    def restart(self, particles: torch.Tensor) -> None:
        """Begin the schedule again from `particles` (trails cleared)."""
        self.particles = particles
        self.step = 0
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

    def finish(self, score_fn: ScoreFn) -> None:
        """The sampler's last move at the schedule's end (e.g. the Tweedie denoise)."""
        with torch.no_grad():
            self.particles = self.sampler.finish(score_fn, self.particles)

    def _restart_blown_up(self) -> None:
        bad = ~torch.isfinite(self.particles).all(dim=1)
        if not bad.any():
            return
        if self.initial is not None:
            self.particles[bad] = self.initial[bad].to(self.particles.device)
        else:
            fresh = self.sampler.init(int(bad.sum()), self.particles.shape[1], self.generator)
            self.particles[bad] = fresh.to(self.particles.device)

"""Samplers that turn a score s(x, sigma) into samples, one step at a time.

Every sampler is a frozen schedule with the same small interface, so the GUI can advance live
particles a few steps per frame while training goes on, and the CLI can run it to the end:
    x = sampler.init(n, dim, generator)
    for i in range(sampler.n_steps): x = sampler.step(score_fn, x, i, generator)
    x = sampler.finish(score_fn, x)
Langevin-type schedules keep stepping at their last level past n_steps (live particles keep
moving); the SDE/ODE integrators stop at t = eps.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

from .config import NoiseConfig, SamplerConfig
from .errors import ConfigError
from .lazy import lazy_module
from .losses import loss_spec
from .noise import Process, SigmaLadder, karras_noise_levels

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

ScoreFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
INIT_BOX = 3.0  # Langevin starts uniform in [-3, 3]^D: the standardised data live well inside


def _noise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)


def _full(x: torch.Tensor, value: float | torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)


def langevin_step(score_fn: ScoreFn, x: torch.Tensor, sigma: float, step_size: float, noise: torch.Tensor,
                  noise_scale: float = 1.0) -> torch.Tensor:
    """x + eps s(x) + sqrt(2 eps) z: one step of unadjusted Langevin dynamics (CS236 form).
    noise_scale = 0 leaves plain gradient ascent on log p, which finds modes, not samples."""
    return x + step_size * score_fn(x, _full(x, sigma)) + noise_scale * math.sqrt(2 * step_size) * noise


def tweedie_denoise(score_fn: ScoreFn, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """E[x_0 | x] = x + sigma^2 s(x, sigma) (Tweedie): removes the last level's noise."""
    return x + sigma**2 * score_fn(x, _full(x, sigma))


@dataclass(frozen=True)
class LangevinSampler:
    """Plain Langevin dynamics at one noise level: fails on manifolds and far-apart modes."""

    sigma: float
    step_size: float
    n_steps: int
    denoise: bool = False
    noise_scale: float = 1.0
    name: str = "langevin"

    def init(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        return (torch.rand(n, dim, generator=generator, device=generator.device) * 2 - 1) * INIT_BOX

    def sigma_at(self, i: int) -> float:
        return self.sigma

    def step(self, score_fn: ScoreFn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        return langevin_step(score_fn, x, self.sigma, self.step_size, _noise(x, generator), self.noise_scale)

    def finish(self, score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
        return tweedie_denoise(score_fn, x, self.sigma) if self.denoise else x


@dataclass(frozen=True)
class AnnealedLangevinSampler:
    """Annealed Langevin (Song & Ermon 2019): steps_per_level steps at each sigma_i, from large
    to small, with eps_i = eps * sigma_i^2 / sigma_L^2 so the signal-to-noise ratio stays fixed."""

    sigmas: tuple[float, ...]
    step_size: float  # eps at the smallest sigma
    steps_per_level: int
    denoise: bool = True
    noise_scale: float = 1.0
    name: str = "annealed"

    @property
    def n_steps(self) -> int:
        return len(self.sigmas) * self.steps_per_level

    def init(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        return (torch.rand(n, dim, generator=generator, device=generator.device) * 2 - 1) * max(INIT_BOX, self.sigmas[0])

    def level(self, i: int) -> int:
        return min(i // self.steps_per_level, len(self.sigmas) - 1)

    def sigma_at(self, i: int) -> float:
        return self.sigmas[self.level(i)]

    def step(self, score_fn: ScoreFn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        sigma = self.sigma_at(i)
        eps = self.step_size * (sigma / self.sigmas[-1]) ** 2
        return langevin_step(score_fn, x, sigma, eps, _noise(x, generator), self.noise_scale)

    def finish(self, score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
        return tweedie_denoise(score_fn, x, self.sigmas[-1]) if self.denoise else x


@dataclass(frozen=True)
class _SDEClock:
    """What the SDE integrators share: start from the SDE's prior and walk n_steps uniform times
    from T down to eps."""

    sde: Process  # a process with a time path (VE, VP, ...)
    n_steps: int

    def init(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        return self.sde.prior_sample(n, dim, generator)

    def time(self, i: int) -> float:
        i = min(i, self.n_steps)
        return self.sde.T - (self.sde.T - self.sde.eps) * i / self.n_steps

    def sigma_at(self, i: int) -> float:
        return float(self.sde.sigma(torch.tensor(self.time(i))))


@dataclass(frozen=True)
class ReverseSDESampler(_SDEClock):
    """Reverse-time SDE dx = [f - g^2 s] dt + g dw_bar, Euler-Maruyama from t=T to eps (Song et al.
    2021); with `snr > 0` each step is followed by a Langevin corrector (predictor-corrector)."""

    snr: float = 0.0  # 0: predictor only ("sde"); > 0: PC sampler
    denoise: bool = True
    name: str = "sde"

    def step(self, score_fn: ScoreFn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        if i >= self.n_steps:
            return x
        t, t_next = self.time(i), self.time(i + 1)
        if self.snr > 0:
            x = self._correct(score_fn, x, t, generator)
        dt = t - t_next
        drift, g = self.sde.reverse_drift(score_fn, x, _full(x, t))
        mean = x - drift * dt
        return mean + g[:, None] * math.sqrt(dt) * _noise(x, generator)

    def _correct(self, score_fn: ScoreFn, x: torch.Tensor, t: float, generator: torch.Generator) -> torch.Tensor:
        """One Langevin corrector step (Song et al. 2021, Alg. 4-5; score_sde_pytorch's LangevinCorrector):
        eps = 2 alpha (snr |z| / |s|)^2, with batch-mean norms, makes the drift |eps s| equal to
        sqrt(alpha) * snr times the noise |sqrt(2 eps) z|: snr is signal over noise."""
        s = score_fn(x, self.sde.sigma(_full(x, t)))
        z = _noise(x, generator)
        ratio = (z.norm(dim=1).mean() / s.norm(dim=1).mean().clamp_min(1e-12)) ** 2
        eps = 2 * self.corrector_alpha(t) * (self.snr**2) * ratio
        return x + eps * s + torch.sqrt(2 * eps) * z

    def corrector_alpha(self, t: float) -> float:
        """The process's corrector alpha for this schedule's discretisation (1 for VE)."""
        return self.sde.corrector_alpha(t, self.n_steps)

    def finish(self, score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
        if not self.denoise:
            return x
        t = _full(x, self.sde.eps)
        coef, std = self.sde.marginal(t)
        return (x + std[:, None] ** 2 * score_fn(x, std)) / coef[:, None]


@dataclass(frozen=True)
class ProbabilityFlowSampler(_SDEClock):
    """Probability-flow ODE dx/dt = f - g^2 s / 2 (deterministic, same marginals), Heun's method."""

    denoise: bool = False
    name: str = "ode"

    def velocity(self, score_fn: ScoreFn, x: torch.Tensor, t: float) -> torch.Tensor:
        return self.sde.pf_drift(score_fn, x, _full(x, t))

    def step(self, score_fn: ScoreFn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        if i >= self.n_steps:
            return x
        t, t_next = self.time(i), self.time(i + 1)
        v = self.velocity(score_fn, x, t)
        x_euler = x + v * (t_next - t)
        v_next = self.velocity(score_fn, x_euler, t_next)
        return x + 0.5 * (v + v_next) * (t_next - t)

    def finish(self, score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass(frozen=True)
class KarrasODESampler:
    """Euler or Heun steps on the probability-flow ODE of any process (Karras et al. 2022, Alg. 1),
    in its VE-equivalent form: x~ = x / coef, noise = std / coef, dx~/dnoise = (x~ - D(x~)) / noise
    with D the Tweedie denoiser. Noise levels follow EDM's eq. 5 with rho = 7; Heun costs two
    evaluations per step. The particles stay in the process's own coordinates x."""

    sde: Process  # a process with a time path
    n_steps: int
    heun: bool = True
    denoise: bool = False  # a last Tweedie step at the smallest noise
    rho: float = 7.0
    name: str = "heun"

    def levels(self) -> tuple[float, ...]:
        lo, hi = self.sde.noise_range()
        return tuple(karras_noise_levels(hi, lo, self.n_steps, self.rho).tolist())

    def init(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        return self.sde.prior_sample(n, dim, generator)

    def _coef_std(self, noise: float) -> tuple[float, float]:
        coef = float(self.sde.coef_of_noise(noise))
        return coef, noise * coef

    def sigma_at(self, i: int) -> float:
        return self._coef_std(self.levels()[min(i, self.n_steps)])[1]

    def _slope(self, score_fn: ScoreFn, x_tilde: torch.Tensor, noise: float) -> torch.Tensor:
        coef, std = self._coef_std(noise)
        x = coef * x_tilde
        denoised = x + std**2 * score_fn(x, _full(x, std))  # coef * D(x~)
        return (x - denoised) / (coef * noise)

    def step(self, score_fn: ScoreFn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        if i >= self.n_steps:
            return x
        levels = self.levels()
        n0, n1 = levels[i], levels[i + 1]
        x_tilde = x / self._coef_std(n0)[0]
        d = self._slope(score_fn, x_tilde, n0)
        x_next = x_tilde + (n1 - n0) * d
        if self.heun:  # trapezoidal correction (EDM Alg. 1, lines 7-8)
            x_next = x_tilde + (n1 - n0) * 0.5 * (d + self._slope(score_fn, x_next, n1))
        return self._coef_std(n1)[0] * x_next

    def finish(self, score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
        if not self.denoise:
            return x
        coef, std = self._coef_std(self.levels()[-1])
        return (x + std**2 * score_fn(x, _full(x, std))) / coef


@dataclass(frozen=True)
class DDIMSampler:
    """DDIM's generalised step (Song, Meng & Ermon 2021, eq. 12) on the process's time grid, written
    for any Gaussian path in its VE-equivalent coordinates x~ = x / coef, s~ = std / coef:
    x~_prev = x0_hat + sqrt(s~_prev^2 - c^2) eps_hat + c z, c = eta s~_prev sqrt(1 - s~_prev^2 / s~_t^2),
    with x0_hat and eps_hat from the score (Tweedie). eta = 0 is deterministic DDIM (an Euler step of
    the PF-ODE in s~); eta = 1 on every step of DDPM's chain is its ancestral sampler with the
    posterior variance beta~ (Ho et al. 2020, eq. 6-7, 11). The last step lands on clean data: x0_hat."""

    sde: Process  # a process with a time path
    times: tuple[float, ...]  # from T down to the smallest; one net evaluation each
    eta: float = 0.0
    name: str = "ddim"

    @property
    def n_steps(self) -> int:
        return len(self.times)

    def init(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        return self.sde.prior_sample(n, dim, generator)

    def _level(self, i: int) -> tuple[float, float]:
        """(coef, std) at step i; past the grid, clean data (1, 0)."""
        if i >= len(self.times):
            return 1.0, 0.0
        coef, std = self.sde.marginal(torch.tensor([self.times[i]], dtype=torch.float64))
        return float(coef), float(std)

    def sigma_at(self, i: int) -> float:
        return self._level(min(i, self.n_steps - 1))[1]

    def step(self, score_fn: ScoreFn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        if i >= self.n_steps:
            return x
        (a_t, s_t), (a_p, s_p) = self._level(i), self._level(i + 1)
        score = score_fn(x, _full(x, s_t))
        x0 = (x + s_t**2 * score) / a_t
        eps = -s_t * score
        n_t, n_p = s_t / a_t, s_p / a_p
        c = self.eta * n_p * math.sqrt(max(0.0, 1 - (n_p / n_t) ** 2))
        x_prev = x0 + math.sqrt(max(0.0, n_p**2 - c**2)) * eps
        if c > 0:
            x_prev = x_prev + c * _noise(x, generator)
        return a_p * x_prev

    def finish(self, score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
        return x


LogDensityFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class WithLogDensity:
    """A score function that also knows its log-density (up to a constant), as MALA needs: the
    analytic truth, e.g. WithLogDensity(gmm.score, lambda x, s: gmm.log_prob(x, float(s[0])))."""

    score: ScoreFn
    log_density: LogDensityFn

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.score(x, sigma)


def log_density_of(score_fn: ScoreFn) -> LogDensityFn:
    """log p(x, sigma) up to a constant where the field has one: its own `log_density`, or an
    energy net's -E(x, sigma). A score-only net has none: one ConfigError sentence."""
    own = getattr(score_fn, "log_density", None)
    if own is not None:
        return own
    energy = getattr(score_fn, "energy", None)
    if energy is not None:
        return lambda x, sigma: -energy(x, sigma)
    raise ConfigError("mala needs a log-density for its accept/reject step: train an energy net (--model energy) "
                      "or use the analytic truth; a score net has none")


class AcceptanceTally:
    """MALA's running count of accepted proposals: the one mutable part of its schedule, so the
    chain, the frames and the CLI can report the acceptance rate."""

    def __init__(self) -> None:
        self.accepted = 0
        self.proposed = 0

    def add(self, accepted: int, proposed: int) -> None:
        self.accepted += int(accepted)
        self.proposed += int(proposed)

    @property
    def rate(self) -> float | None:
        """Accepted over proposed so far (None before the first step)."""
        return self.accepted / self.proposed if self.proposed else None


@dataclass(frozen=True)
class MALASampler(LangevinSampler):
    """Metropolis-adjusted Langevin (Roberts & Tweedie 1996): the Langevin step y = x + eps s(x) +
    sqrt(2 eps) z is a proposal, accepted with probability min(1, p(y) q(x|y) / (p(x) q(y|x))),
    q(b|a) = N(b; a + eps s(a), 2 eps I). The chain then leaves p exactly invariant at any step
    size, where plain Langevin is biased by O(eps). Needs log p: an energy net or the truth."""

    name: str = "mala"
    acceptance: AcceptanceTally = field(default_factory=AcceptanceTally, compare=False, repr=False)

    @property
    def acceptance_rate(self) -> float | None:
        return self.acceptance.rate

    def step(self, score_fn: ScoreFn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        log_p = log_density_of(score_fn)
        sigma, eps = _full(x, self.sigma), self.step_size
        s_x = score_fn(x, sigma)
        y = x + eps * s_x + self.noise_scale * math.sqrt(2 * eps) * _noise(x, generator)
        s_y = score_fn(y, sigma)

        def log_q(b: torch.Tensor, a: torch.Tensor, s_a: torch.Tensor) -> torch.Tensor:
            return -((b - a - eps * s_a) ** 2).sum(1) / (4 * eps)

        log_alpha = log_p(y, sigma) - log_p(x, sigma) + log_q(x, y, s_y) - log_q(y, x, s_x)
        u = torch.rand(len(x), generator=generator, dtype=x.dtype, device=generator.device).to(x.device)
        accept = torch.log(u) < log_alpha  # NaN (a blown-up proposal) is rejected
        self.acceptance.add(int(accept.sum()), len(x))
        return torch.where(accept[:, None], y, x)


LOWER_ORDER_FINAL = 15  # DPM-Solver++: schedules shorter than this end with a first-order step


class _History:
    """The last few steps' data predictions of a multistep solver, each kept with the tensor that
    step returned (a weak reference and its in-place version counter), so the next step knows
    whether it is given exactly those particles. Anything else (a restarted chain, particles
    edited in place, a round-robin slice) falls back to the first-order step."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.entries: list[tuple[int, weakref.ref, int, torch.Tensor]] = []  # (step, returned x, its version, D)

    def find(self, i: int, x: torch.Tensor) -> torch.Tensor | None:
        for step, ref, version, denoised in reversed(self.entries):
            if step == i - 1 and ref() is x and x._version == version:
                return denoised
        return None

    def add(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        self.entries.append((i, weakref.ref(x), x._version, denoised.detach()))
        del self.entries[:-self.size]


@dataclass(frozen=True)
class DPMSolverSampler(KarrasODESampler):
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2): the probability-flow ODE solved
    exactly in its linear part, with the data prediction D = E[x_0 | x_t] (Tweedie, from the score)
    extrapolated linearly in lambda = -log(noise) from this step's and the previous step's D. In the
    VE-equivalent form x~ = x / coef: x~' = (n' / n) x~ + (1 - n' / n) D_hat,
    D_hat = (1 + 1 / 2r) D_i - (1 / 2r) D_{i-1}, r = h_{i-1} / h_i. One evaluation per step; the
    first step (no history) is first order (DDIM). Same rho = 7 levels as euler/heun."""

    name: str = "dpm-solver"
    history: _History = field(default_factory=_History, compare=False, repr=False)

    def _denoise(self, score_fn: ScoreFn, x: torch.Tensor, noise: float) -> torch.Tensor:
        coef, std = self._coef_std(noise)
        return self.sde.x0_from_score(x, score_fn(x, _full(x, std)), _full(x, coef), _full(x, std))

    def step(self, score_fn: ScoreFn, x: torch.Tensor, i: int, generator: torch.Generator) -> torch.Tensor:
        if i >= self.n_steps:
            return x
        levels = self.levels()
        n0, n1 = levels[i], levels[i + 1]
        denoised = self._denoise(score_fn, x, n0)
        # The last step of a short schedule is first order too (diffusers' lower_order_final,
        # below 15 steps): extrapolating D across one large final jump overshoots.
        last_short = i == self.n_steps - 1 and self.n_steps < LOWER_ORDER_FINAL
        previous = self.history.find(i, x) if i > 0 and not last_short else None
        if previous is None:
            d_hat = denoised
        else:
            h = math.log(n0 / n1)
            r = math.log(levels[i - 1] / n0) / h
            d_hat = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
        x_tilde = x / self._coef_std(n0)[0]
        x_next = self._coef_std(n1)[0] * ((n1 / n0) * x_tilde + (1 - n1 / n0) * d_hat)
        self.history.add(i, x_next, denoised)
        return x_next


Sampler = (LangevinSampler | AnnealedLangevinSampler | ReverseSDESampler | ProbabilityFlowSampler | KarrasODESampler
           | DDIMSampler | MALASampler | DPMSolverSampler)

Builder = Callable[[SamplerConfig, NoiseConfig, Process], Sampler]


def _langevin(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
    sigma = process.langevin_sigma
    default_eps = 0.1 * sigma**2 if sigma > 0 else 1e-3  # eps / sigma^2 = 0.1 keeps it stable
    return LangevinSampler(sigma, cfg.step_size or default_eps, cfg.steps or 1000, cfg.denoise and sigma > 0,
                           cfg.noise_scale)


def _mala(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
    """MALA at the Langevin level; the Metropolis step keeps larger steps unbiased, so the default
    eps / sigma^2 is 0.3 rather than plain Langevin's 0.1."""
    sigma = process.langevin_sigma
    default_eps = 0.3 * sigma**2 if sigma > 0 else 3e-3
    return MALASampler(sigma, cfg.step_size or default_eps, cfg.steps or 1000, cfg.denoise and sigma > 0,
                       cfg.noise_scale)


def _dpm_solver(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
    return DPMSolverSampler(process.path, cfg.steps or 16)


def _annealed(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
    sigmas = tuple(float(s) for s in SigmaLadder.from_noise(noise).sigmas())
    return AnnealedLangevinSampler(sigmas, cfg.step_size or 0.1 * noise.sigma_min**2, cfg.steps or 100, cfg.denoise,
                                   cfg.noise_scale)


def _reverse_sde(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
    snr = cfg.snr if cfg.name == "pc" else 0.0
    return ReverseSDESampler(process.path, cfg.steps or 500, snr, cfg.denoise, cfg.name)


def _ode(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
    return ProbabilityFlowSampler(process.path, cfg.steps or 200)


def _karras(heun: bool, default_steps: int) -> Builder:
    def build(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
        return KarrasODESampler(process.path, cfg.steps or default_steps, heun, name=cfg.name)
    return build


def _ddim(eta: float | None, default_steps: int | None) -> Builder:
    """DDIM with the config's eta (eta None), or DDPM's ancestral sampler (eta = 1) over every step
    of a DDPM chain (default_steps None) or `steps` grid times of a continuous path."""
    def build(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
        path = process.path
        steps = cfg.steps or default_steps or getattr(path, "timesteps", 1000)
        times = tuple(path.time_grid(steps).tolist())
        return DDIMSampler(path, times, cfg.eta if eta is None else eta, cfg.name)
    return build


@dataclass(frozen=True)
class SamplerSpec:
    description: str
    build: Builder  # (settings, noise settings, the run's process) -> a schedule
    needs_density: bool = False  # needs log p, not only the score: an energy net or the analytic truth


SAMPLER_SPECS = MappingProxyType({
    "langevin": SamplerSpec("Langevin dynamics at one σ", _langevin),
    "annealed": SamplerSpec("Annealed Langevin over the σ ladder (NCSN)", _annealed),
    "sde": SamplerSpec("Reverse-time SDE, Euler–Maruyama", _reverse_sde),
    "pc": SamplerSpec("Predictor–corrector (reverse SDE + Langevin corrector)", _reverse_sde),
    "ode": SamplerSpec("Probability-flow ODE (deterministic, Heun)", _ode),
    "euler": SamplerSpec("Probability-flow ODE, Euler steps on EDM's ρ=7 noise levels", _karras(False, 64)),
    "heun": SamplerSpec("Probability-flow ODE, Heun steps on EDM's ρ=7 noise levels (Karras Alg. 1)", _karras(True, 16)),
    "ddpm": SamplerSpec("DDPM ancestral sampling, every step of the chain (Ho et al. 2020)", _ddim(1.0, None)),
    "ddim": SamplerSpec("DDIM, η from 0 (deterministic) to 1 (Song, Meng & Ermon 2021)", _ddim(None, 20)),
    "dpm-solver": SamplerSpec("DPM-Solver++(2M): multistep data-prediction ODE solver, one evaluation per step",
                              _dpm_solver),
    "mala": SamplerSpec("Metropolis-adjusted Langevin at one σ (energy nets, analytic truth); reports acceptance",
                        _mala, needs_density=True),
})
SAMPLERS = MappingProxyType({name: spec.description for name, spec in SAMPLER_SPECS.items()})


def langevin_sigma_for(loss: str, noise: NoiseConfig) -> float:
    """The level plain Langevin runs at: the training sigma of single-level DSM, the smallest
    level of multi-noise runs, and 0 (clean data) for sm/ssm, whose nets ignore sigma."""
    return loss_spec(loss).process(noise).langevin_sigma


def make_sampler(cfg: SamplerConfig, noise: NoiseConfig, loss: str | Process = "ncsn") -> Sampler:
    """Turn a SamplerConfig into a schedule for a model trained with `loss` (a loss name, or its
    process) under `noise`. A sampler the process cannot drive is one ConfigError sentence."""
    from .losses import loss_spec

    if cfg.name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {cfg.name!r}; choose one of {', '.join(SAMPLERS)}")
    if cfg.steps < 0 or cfg.step_size < 0:
        raise ConfigError("sampler steps and step size must be non-negative")
    process = loss if isinstance(loss, Process) else loss_spec(loss).process(noise)
    return SAMPLER_SPECS[cfg.name].build(cfg, noise, process)


def run_sampler(
    sampler: Sampler,
    score_fn: ScoreFn,
    x: torch.Tensor,
    generator: torch.Generator,
    n_steps: int | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run `n_steps` (default: the whole schedule) then `finish`; callback(i, x) after each step."""
    with torch.no_grad():
        for i in range(sampler.n_steps if n_steps is None else n_steps):
            x = sampler.step(score_fn, x, i, generator)
            if callback is not None:
                callback(i, x)
        return sampler.finish(score_fn, x)

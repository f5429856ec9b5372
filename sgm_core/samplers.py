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
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import torch

from .config import NoiseConfig, SamplerConfig
from .errors import ConfigError
from .losses import loss_spec
from .noise import Process, SigmaLadder, karras_noise_levels

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


Sampler = (LangevinSampler | AnnealedLangevinSampler | ReverseSDESampler | ProbabilityFlowSampler | KarrasODESampler
           | DDIMSampler)

Builder = Callable[[SamplerConfig, NoiseConfig, Process], Sampler]


def _langevin(cfg: SamplerConfig, noise: NoiseConfig, process: Process) -> Sampler:
    sigma = process.langevin_sigma
    default_eps = 0.1 * sigma**2 if sigma > 0 else 1e-3  # eps / sigma^2 = 0.1 keeps it stable
    return LangevinSampler(sigma, cfg.step_size or default_eps, cfg.steps or 1000, cfg.denoise and sigma > 0,
                           cfg.noise_scale)


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

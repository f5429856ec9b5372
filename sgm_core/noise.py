"""Noising processes: one class per way of turning data into noise, each owning its math.

Every process is a Gaussian path p_t(x_t | x_0) = N(coef(t) x_0, std(t)^2 I) (score_sde_pytorch's
SDE classes are the model): perturb and marginal std, prior sampling and log-density, the training
targets of each parameterisation (score, eps, x_0, velocity), the reverse-SDE and probability-flow
drifts (written once, in `Process`), the σ the window shows and the settings it reads. Networks are
conditioned on the marginal std, so one signature s_theta(x, sigma) serves every process.

`noise` below is the VE-equivalent noise level std / coef (EDM's σ, Karras et al. 2022): x / coef
is data plus `noise` times a standard normal, which is what the ODE samplers integrate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from .config import NoiseConfig
from .errors import ConfigError
from .lazy import lazy_module

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

ScoreFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def geometric_sigmas(sigma_min: float, sigma_max: float, n: int) -> torch.Tensor:
    """sigma_1 > ... > sigma_n, geometrically spaced (NCSN, Song & Ermon 2019)."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64)).float()


def sigma_max_from_data(points: torch.Tensor, max_points: int = 2000, seed: int = 0) -> float:
    """The largest distance between two data points (Song & Ermon 2020, technique 1): a top noise
    level this large lets the noisiest score connect every mode with every other, so annealed
    Langevin can set the modes' weights. Uses a fixed random subsample of `max_points` beyond that
    (the cost is quadratic); give standardised points for a standardised σ."""
    x = torch.as_tensor(points, dtype=torch.float64).reshape(len(points), -1)
    if len(x) > max_points:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_points]]
    return float(torch.cdist(x, x).max()) if len(x) > 1 else 0.0


def default_sigma_max(points: torch.Tensor) -> float:
    """The default σ_max for standardised data: its diameter (`sigma_max_from_data`, NCSNv2's
    technique 1), never below NoiseConfig's fixed 3, which is enough for compact presets
    (mixture-unequal's diameter is 4.96: there 3 biased the mode weights and the VE prior)."""
    return max(NoiseConfig.sigma_max, sigma_max_from_data(points))


def karras_noise_levels(noise_max: float, noise_min: float, n_steps: int, rho: float = 7.0) -> torch.Tensor:
    """n_steps + 1 noise levels from noise_max down to noise_min, spaced as EDM's eq. 5 (ρ = 7):
    (max^(1/ρ) + i/n (min^(1/ρ) - max^(1/ρ)))^ρ, dense where the noise is small."""
    i = torch.arange(n_steps + 1, dtype=torch.float64) / max(n_steps, 1)
    return (noise_max ** (1 / rho) + i * (noise_min ** (1 / rho) - noise_max ** (1 / rho))) ** rho


def _column(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample (N,) value as a column against x (N, D); D is never assumed."""
    return v.to(x).reshape(-1, *([1] * (x.ndim - 1)))


class Process:
    """What every noising process shares. Subclasses give `marginal`, `drift_diffusion` (where a
    time path exists), the prior and the VE-equivalent noise conversions."""

    kind: ClassVar[str]  # the LossSpec.noise name the GUI and the tests read
    settings: ClassVar[tuple[str, ...]]  # the NoiseConfig fields this process reads
    conditional: ClassVar[bool] = True  # does the net see sigma?
    has_path: ClassVar[bool] = True  # is there a continuous time path for the SDE/ODE samplers?
    # May its noise end be another distribution (LossConfig.source) instead of N(0, I)? Only a path
    # that never needs the noise's density: the linear interpolant (rectified flow, Liu et al. 2023).
    transports: ClassVar[bool] = False
    eps: float
    T: float

    # -- the path ---------------------------------------------------------------------------
    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean coefficient, std) of p_t(x_t | x_0) = N(coef * x_0, std^2 I)."""
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """The std the net is conditioned on at time t."""
        return self.marginal(t)[1]

    def perturb(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = coef(t) x + std(t) noise, t per sample."""
        coef, std = self.marginal(t)
        return _column(coef, x) * x + _column(std, x) * noise

    def coef_of_std(self, std: torch.Tensor) -> torch.Tensor:
        """The mean coefficient that goes with a marginal std (1 for VE; what the truth needs)."""
        return torch.ones_like(torch.as_tensor(std, dtype=torch.float64))

    def coef_of_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """The mean coefficient at VE-equivalent noise std / coef = noise."""
        return torch.ones_like(torch.as_tensor(noise, dtype=torch.float64))

    def noise_range(self) -> tuple[float, float]:
        """(smallest, largest) VE-equivalent noise on the path: where the ODE samplers start and end."""
        coef, std = self.marginal(torch.tensor([self.eps, self.T], dtype=torch.float64))
        ratio = std / coef
        return float(ratio[0]), float(ratio[1])

    # -- the prior ----------------------------------------------------------------------------
    @property
    def prior_std(self) -> float:
        return 1.0

    def prior_sample(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, dim, generator=generator, device=generator.device) * self.prior_std

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; 0, prior_std^2 I) per row."""
        std, d = self.prior_std, x.shape[1]
        return -0.5 * (x**2).sum(1) / std**2 - 0.5 * d * math.log(2 * math.pi * std**2)

    # -- training ----------------------------------------------------------------------------
    def sample_t(self, n: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training times, one per sample: t ~ U(eps, T) (Song et al. 2021)."""
        u = torch.rand(n, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)
        return self.eps + (self.T - self.eps) * u

    # -- targets of each parameterisation, from a score at (x_t, t) ------------------------------
    @staticmethod
    def eps_from_score(score: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """E[z | x_t] = -std * score (Ho et al. 2020's epsilon)."""
        return -_column(std, score) * score

    @staticmethod
    def x0_from_score(x: torch.Tensor, score: torch.Tensor, coef: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] = (x_t + std^2 score) / coef (Tweedie): the denoiser D of EDM."""
        return (x + _column(std, x) ** 2 * score) / _column(coef, x)

    def velocity_from_score(self, score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """d x_t / dt along the path, E[coef' x_0 + std' z | x_t]: the probability-flow drift."""
        return self.pf_drift(score_fn, x, t)

    def time_of_std(self, std: torch.Tensor) -> torch.Tensor:
        """The time at which the marginal std is `std` (the nets see std, a velocity needs t)."""
        raise ConfigError(f"a {self.kind} process cannot turn a velocity into a score")

    def score_from_velocity(self, x: torch.Tensor, std: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """The inverse of `velocity_from_score`: v = f - g^2 s / 2, so s = 2 (f - v) / g^2."""
        t = self.time_of_std(std)
        drift, g = self.drift_diffusion(x, t)
        return 2 * (drift - velocity) / _column(g, x) ** 2

    def time_grid(self, n: int) -> torch.Tensor:
        """n sampling times from T down to eps (float64), for the DDPM/DDIM samplers: uniform."""
        return torch.linspace(self.T, self.eps, max(n, 1), dtype=torch.float64)

    # -- drifts (written once) ----------------------------------------------------------------
    def drift_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f(x, t) and g(t) of dx = f dt + g dw."""
        raise NotImplementedError

    def reverse_drift(self, score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f - g^2 s, g) of the reverse-time SDE (Anderson 1982; Song et al. 2021, eq. 6)."""
        drift, g = self.drift_diffusion(x, t)
        return drift - g[:, None] ** 2 * score_fn(x, self.sigma(t)), g

    def pf_drift(self, score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """f - g^2 s / 2: the probability-flow ODE (Song et al. 2021, eq. 13)."""
        drift, g = self.drift_diffusion(x, t)
        return drift - 0.5 * g[:, None] ** 2 * score_fn(x, self.sigma(t))

    def corrector_alpha(self, t: float, n_steps: int) -> float:
        """The Langevin corrector's alpha (score_sde_pytorch): 1 unless the process is discretised VP."""
        return 1.0

    # -- what the window shows ----------------------------------------------------------------
    def display_range(self) -> tuple[float, float]:
        """(lo, hi) of the σ slider and the tracked score-error levels: the net's std over the path."""
        lo, hi = self.sigma(torch.tensor([self.eps, self.T], dtype=torch.float64)).tolist()
        return float(lo), float(hi)

    @property
    def final_sigma(self) -> float:
        """The std where sampling ends, which the samples show (and a trained net is judged at)."""
        return self.display_range()[0]

    @property
    def langevin_sigma(self) -> float:
        """The level plain Langevin runs at."""
        return self.final_sigma

    @property
    def path(self) -> Process:
        """The continuous process the SDE/ODE samplers integrate."""
        return self


@dataclass(frozen=True)
class CleanData(Process):
    """No noise: exact and sliced score matching fit the clean data score; the net ignores σ."""

    sigma_min: float = 0.01  # the nominal σ the losses pass (the net ignores it)
    kind: ClassVar[str] = "none"
    settings: ClassVar[tuple[str, ...]] = ()
    conditional: ClassVar[bool] = False
    has_path: ClassVar[bool] = False
    eps: float = 0.0
    T: float = 0.0

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones_like(t), torch.full_like(t, self.sigma_min)

    def display_range(self) -> tuple[float, float]:
        return self.sigma_min, self.sigma_min

    @property
    def final_sigma(self) -> float:
        return 0.0  # the clean data score

    @property
    def path(self) -> Process:
        raise ConfigError("a score-matching net (sm, ssm) has no noise path for an SDE or ODE sampler; "
                          "use langevin")

    @classmethod
    def from_noise(cls, noise: NoiseConfig) -> CleanData:
        return cls(noise.sigma_min)


@dataclass(frozen=True)
class SingleSigma(Process):
    """One noise level: q_sigma(x~ | x) = N(x, sigma^2 I) (Vincent 2011)."""

    level: float = 0.1
    kind: ClassVar[str] = "single"
    settings: ClassVar[tuple[str, ...]] = ("sigma",)
    has_path: ClassVar[bool] = False
    eps: float = 0.0
    T: float = 0.0

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones_like(t), torch.full_like(t, self.level)

    def sample_t(self, n: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.full((n,), float(self.level), dtype=like.dtype, device=like.device)  # draws nothing

    def display_range(self) -> tuple[float, float]:
        return self.level, self.level

    @property
    def path(self) -> Process:
        raise ConfigError("a one-σ DSM net has no noise path for an SDE or ODE sampler; use langevin")

    @classmethod
    def from_noise(cls, noise: NoiseConfig) -> SingleSigma:
        return cls(noise.sigma)


@dataclass(frozen=True)
class SigmaLadder(Process):
    """NCSN's geometric ladder; t is the level's σ itself. Its path is the VE SDE over the same range."""

    sigma_min: float = 0.01
    sigma_max: float = 3.0
    n_levels: int = 16
    kind: ClassVar[str] = "ladder"
    settings: ClassVar[tuple[str, ...]] = ("sigma_min", "sigma_max", "n_levels")
    eps: float = 0.0
    T: float = 0.0

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones_like(t), t

    def sample_t(self, n: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A level drawn uniformly per sample (Song & Ermon 2019)."""
        idx = torch.randint(self.n_levels, (n,), generator=generator, device=generator.device).to(like.device)
        return self.sigmas().to(like)[idx]

    def sigmas(self) -> torch.Tensor:
        """The ladder, largest first (float32, as the nets see it)."""
        return geometric_sigmas(self.sigma_min, self.sigma_max, self.n_levels)

    def display_range(self) -> tuple[float, float]:
        return self.sigma_min, self.sigma_max

    @property
    def path(self) -> Process:
        return VESDE(self.sigma_min, self.sigma_max)

    @classmethod
    def from_noise(cls, noise: NoiseConfig) -> SigmaLadder:
        return cls(noise.sigma_min, noise.sigma_max, noise.n_levels)


@dataclass(frozen=True)
class VESDE(Process):
    """dx = sqrt(d[sigma^2(t)]/dt) dw with sigma(t) = sigma_min (sigma_max/sigma_min)^t."""

    sigma_min: float = 0.01
    sigma_max: float = 3.0
    eps: float = 1e-5  # smallest time: training and sampling stop here
    T: float = 1.0
    kind: ClassVar[str] = "ve"
    settings: ClassVar[tuple[str, ...]] = ("sigma_min", "sigma_max")

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones_like(t), self.sigma(t)

    def drift_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), g

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def display_range(self) -> tuple[float, float]:
        return self.sigma_min, self.sigma_max

    @classmethod
    def from_noise(cls, noise: NoiseConfig) -> VESDE:
        return cls(noise.sigma_min, noise.sigma_max)


VP_STD_CEILING = 1 - 1e-6


class _VariancePreserving(Process):
    """coef^2 + std^2 = 1 (VP SDE, DDPM): the conversions that follow from it."""

    def coef_of_std(self, std: torch.Tensor) -> torch.Tensor:
        """sqrt(1 - s^2); s stops just short of 1 (pure noise, coef -> 0) so coef stays positive."""
        s = torch.as_tensor(std, dtype=torch.float64).clamp(0.0, VP_STD_CEILING)
        return torch.sqrt(1 - s**2)

    def coef_of_noise(self, noise: torch.Tensor) -> torch.Tensor:
        return 1 / torch.sqrt(1 + torch.as_tensor(noise, dtype=torch.float64) ** 2)


@dataclass(frozen=True)
class VPSDE(_VariancePreserving):
    """dx = -beta(t)/2 x dt + sqrt(beta(t)) dw, beta linear from beta_min to beta_max (DDPM limit)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = 1e-3
    T: float = 1.0
    sigma_min: float = 0.01  # the run's σ_min: where plain Langevin runs and the window's levels start
    kind: ClassVar[str] = "vp"
    settings: ClassVar[tuple[str, ...]] = ("beta_min", "beta_max")

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_coef = -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        return torch.exp(log_coef), torch.sqrt(-torch.expm1(2 * log_coef))

    def drift_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.beta(t)
        return -0.5 * b[:, None] * x, torch.sqrt(b)

    def corrector_alpha(self, t: float, n_steps: int) -> float:
        """The reference's alpha: `sde.alphas[timestep]` = 1 - beta_i / N of the N-step
        discretisation (beta_i from beta_min / N to beta_max / N, timestep = floor(t (N-1) / T)),
        at least 1 - beta_max / N (0.96 at the default 500 steps), so the corrector stays on at every
        time. (ᾱ(t), used here before, is ~5e-5 at t = 1 and switched the corrector off at high noise.)
        The discretisation has at least 2 beta_max steps (40 at beta_max = 20): with N <= beta_max,
        1 - beta_i reaches 0 and below, and the corrector's sqrt(2 eps) was NaN (pc at 2-20 steps
        returned NaN from its first step, a trained net or not). With fewer steps alpha stays >= 1/2."""
        n = max(n_steps, 2, math.ceil(2 * self.beta_max))
        timestep = int(t * (n - 1) / self.T)
        beta_i = (self.beta_min + (self.beta_max - self.beta_min) * timestep / (n - 1)) / n
        return 1.0 - beta_i

    def display_range(self) -> tuple[float, float]:
        """The VP std runs from ~0 to ~1; the slider and the tracked levels stop at 0.9 (beyond it
        the VP reference divides by coef -> 0)."""
        return max(1e-3, self.sigma_min), 0.9

    @property
    def final_sigma(self) -> float:
        return float(self.sigma(torch.tensor(self.eps)))

    @property
    def langevin_sigma(self) -> float:
        return self.sigma_min

    @classmethod
    def from_noise(cls, noise: NoiseConfig) -> VPSDE:
        return cls(noise.beta_min, noise.beta_max, sigma_min=noise.sigma_min)


@dataclass(frozen=True)
class LinearInterpolant(Process):
    """The rectified-flow / flow-matching path x_t = (1 - t) x_0 + t z, t from eps to T (Liu et al.
    2023; Lipman et al. 2023 with sigma_min = 0). Its velocity is z - x_0; as an SDE,
    f = -x / (1 - t) and g^2 = 2 t / (1 - t), so the PF-ODE drift is E[z - x_0 | x_t]."""

    eps: float = 1e-3  # t = 0 is clean data: the net's std never reaches 0
    T: float = 0.99  # t = 1 is pure noise: coef = 1 - t stays positive (the loss weighs |eps error|^2 by 1/coef^2)
    t_sampling: str = "uniform"  # NoiseConfig.t_sampling: how training draws t
    kind: ClassVar[str] = "linear"
    settings: ClassVar[tuple[str, ...]] = ("t_sampling",)
    transports: ClassVar[bool] = True  # x_1 may come from any source distribution (torchcfm's 8gaussians -> moons)
    # A flow between two distributions: the standardised points of LossConfig.source replace N(0, I)
    # at t = 1 (losses.bound_process puts them here). None: the Gaussian prior.
    source: torch.Tensor | None = field(default=None, compare=False, repr=False)

    def prior_sample(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        """N(0, I) draws, or draws (with replacement) from the source's points (Tong et al. 2024)."""
        if self.source is None:
            return super().prior_sample(n, dim, generator)
        rows = torch.randint(len(self.source), (n,), generator=generator, device=generator.device)
        return self.source[rows.to(self.source.device)]

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self.source is not None:
            raise ConfigError("a flow from a data source has no prior density, so its likelihood is not defined")
        return super().prior_log_prob(x)

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 1 - t, t

    def sample_t(self, n: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training times in (eps, T): uniform (Lipman et al. 2023), or logit-normal, t = sigmoid(z)
        with z ~ N(0, 1) rescaled to (eps, T) (Esser et al. 2024, eq. 19), which spends the batch
        on the middle of the path, where x_t is most ambiguous, and few draws near either end."""
        if self.t_sampling == "uniform":
            return super().sample_t(n, like, generator)
        z = torch.randn(n, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)
        return self.eps + (self.T - self.eps) * torch.sigmoid(z)

    def coef_of_std(self, std: torch.Tensor) -> torch.Tensor:
        return 1 - torch.as_tensor(std, dtype=torch.float64).clamp(0.0, self.T)

    def coef_of_noise(self, noise: torch.Tensor) -> torch.Tensor:
        return 1 / (1 + torch.as_tensor(noise, dtype=torch.float64))

    def drift_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return -x / (1 - t)[:, None], torch.sqrt(2 * t / (1 - t))

    def time_of_std(self, std: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(std)

    def score_from_velocity(self, x: torch.Tensor, std: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """v = (E[z | x_t] - x_t) / (1 - t) and E[z | x_t] = -t s, so s = -(x_t + (1 - t) v) / t."""
        t = _column(torch.as_tensor(std), x)
        return -(x + (1 - t) * velocity) / t

    def display_range(self) -> tuple[float, float]:
        """Like VP: beyond std 0.9 the truth divides by coef -> 0."""
        return self.eps, 0.9

    @classmethod
    def from_noise(cls, noise: NoiseConfig) -> LinearInterpolant:
        return cls(t_sampling=noise.t_sampling)


COSINE_OFFSET = 0.008  # s of Nichol & Dhariwal's cosine schedule: beta_1 is not vanishingly small
COSINE_MAX_BETA = 0.999  # their clip: beta_T < 1 keeps alpha_bar_T > 0


@functools.lru_cache(maxsize=8)
def ddpm_log_alpha_bar(timesteps: int, schedule: str) -> torch.Tensor:
    """log alpha_bar_i for i = 0..T (float64, alpha_bar_0 = 1) of DDPM's beta schedule:
    "linear" from 1e-4 to 0.02 at T = 1000 (Ho et al. 2020), both ends scaled by 1000 / T for other
    T (Nichol & Dhariwal 2021); "cosine": alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2),
    betas clipped at 0.999 (Nichol & Dhariwal 2021, eq. 17)."""
    if schedule == "linear":
        scale = 1000 / timesteps
        betas = torch.linspace(scale * 1e-4, min(scale * 0.02, COSINE_MAX_BETA), timesteps, dtype=torch.float64)
    elif schedule == "cosine":
        t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((t + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=COSINE_MAX_BETA)
    else:
        raise ConfigError(f"unknown beta schedule {schedule!r}; choose linear or cosine")
    return torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-betas), 0)])


@dataclass(frozen=True)
class DDPMChain(_VariancePreserving):
    """DDPM's discrete chain x_i = sqrt(alpha_bar_i) x_0 + sqrt(1 - alpha_bar_i) z, i = 1..T (Ho et al.
    2020), at times t = i / T. Between grid times log alpha_bar is linear in t, which makes it a VP
    SDE with beta(t) = -d log alpha_bar / dt piecewise constant: the ODE/SDE samplers integrate that
    path, and at every grid time its marginal is DDPM's own."""

    timesteps: int = 1000
    schedule: str = "linear"
    T: float = 1.0
    kind: ClassVar[str] = "ddpm"
    settings: ClassVar[tuple[str, ...]] = ("timesteps", "schedule")

    @property
    def eps(self) -> float:  # type: ignore[override]
        return 1.0 / self.timesteps

    def _log_coef2(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log alpha_bar(t), its slope in t), interpolated on the grid."""
        table = ddpm_log_alpha_bar(self.timesteps, self.schedule).to(torch.as_tensor(t).device)
        u = torch.as_tensor(t, dtype=torch.float64).clamp(0.0, 1.0) * self.timesteps
        i = torch.ceil(u).long().clamp(1, self.timesteps) - 1  # the interval (i, i + 1] that holds u
        slope = (table[i + 1] - table[i]) * self.timesteps
        return table[i] + (u - i) * slope / self.timesteps, slope

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_a2, _ = self._log_coef2(t)
        dtype = t.dtype if torch.is_tensor(t) and t.is_floating_point() else torch.float64
        return torch.exp(0.5 * log_a2).to(dtype), torch.sqrt(-torch.expm1(log_a2)).to(dtype)

    def drift_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta = (-self._log_coef2(t)[1]).to(x)
        return -0.5 * beta[:, None] * x, torch.sqrt(beta)

    def sample_t(self, n: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """i ~ U{1, ..., T} per sample (Ho et al. 2020, Alg. 1), as t = i / T."""
        i = torch.randint(1, self.timesteps + 1, (n,), generator=generator, device=generator.device)
        return (i.to(like.device, like.dtype)) / self.timesteps

    def time_grid(self, n: int) -> torch.Tensor:
        """n distinct grid times (all T when n >= T) for DDIM's sub-sequence (Song, Meng & Ermon
        2021): from 1 + (n - 1) floor(T / n), the top of their uniform sub-sequence, down to 1,
        spaced quadratically (their App. D.2, tau_i ~ c i^2), so the small noise levels, where an
        8-mode mixture's score changes fastest, get the steps.

        Why not from t = T: the cosine schedule's beta_T is clipped at 0.999, so alpha_bar_T ~ 2e-9,
        and the first step x0 = (x - sigma eps) / sqrt(alpha_bar_T) multiplies the net's error in
        eps by ~2,000 (with the exact eps off by 1%, 20 steps put 4% of the samples on a mode of 8
        Gaussians; from the top of the uniform sub-sequence 97.5%). Why quadratic: with the exact
        eps of 8 Gaussians, linear betas, 10 / 20 steps put 62% / 92% on a mode evenly spaced from
        T, 93% / 97% this way."""
        T = self.timesteps
        if n >= T:
            return torch.arange(T, 0, -1, dtype=torch.float64) / T
        n = max(n, 1)
        top = 1 + (n - 1) * (T // n)  # n = 1: t = 1 / T alone, as DDIM's sub-sequence of one
        u = torch.linspace(math.sqrt(top), 1.0, n, dtype=torch.float64) ** 2
        steps = [1]  # from the clean end up: each time at least one grid step above the next
        for value in u.round().long().flip(0)[1:].tolist():
            steps.append(max(int(value), steps[-1] + 1))
        return torch.tensor(steps[::-1], dtype=torch.float64) / T

    def display_range(self) -> tuple[float, float]:
        """From the std of the first timestep to 0.9, as VP."""
        return float(self.sigma(torch.tensor(self.eps, dtype=torch.float64))), 0.9

    @property
    def final_sigma(self) -> float:
        return self.display_range()[0]

    @classmethod
    def from_noise(cls, noise: NoiseConfig) -> DDPMChain:
        return cls(noise.timesteps, noise.schedule)


@dataclass(frozen=True)
class EDMNoise(Process):
    """EDM's noise (Karras et al. 2022, Table 1): x_sigma = x_0 + sigma z, t = sigma, sigma drawn
    log-normal, ln sigma ~ N(P_mean, P_std^2), for training; sampling runs from sigma_max to sigma_min
    on the rho = 7 levels. sigma_data = 1: the trainer's data are standardised."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_data: float = 1.0
    kind: ClassVar[str] = "edm"
    settings: ClassVar[tuple[str, ...]] = ()

    @property
    def eps(self) -> float:  # type: ignore[override]
        return self.sigma_min

    @property
    def T(self) -> float:  # type: ignore[override]
        return self.sigma_max

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones_like(t), t

    def drift_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sigma(t) = t: dx = sqrt(d sigma^2 / dt) dw = sqrt(2 t) dw."""
        return torch.zeros_like(x), torch.sqrt(2 * t)

    def time_of_std(self, std: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(std)

    def sample_t(self, n: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)
        return torch.exp(self.p_mean + self.p_std * z)

    def time_grid(self, n: int) -> torch.Tensor:
        return karras_noise_levels(self.sigma_max, self.sigma_min, max(n, 1) - 1)

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def display_range(self) -> tuple[float, float]:
        return self.sigma_min, self.sigma_max

    @classmethod
    def from_noise(cls, noise: NoiseConfig) -> EDMNoise:
        return cls()


SDE = VESDE | VPSDE


def make_sde(noise: NoiseConfig, kind: str | Process = "ve") -> Process:
    """The SDE a run samples with: a process's own path, or by the old names VP ("vp") or VE
    over [sigma_min, sigma_max] (anything else)."""
    if isinstance(kind, Process):
        return kind.path
    return VPSDE.from_noise(noise) if kind == "vp" else VESDE.from_noise(noise)

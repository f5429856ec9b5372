"""Noise: the geometric sigma ladder of NCSN and the VE / VP SDEs of Song et al. (2021).

Every SDE here exposes the marginal std sigma(t) of p_t(x_t | x_0); networks are conditioned on it,
so one network signature s_theta(x, sigma) serves ladders and SDEs alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import NoiseConfig


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


@dataclass(frozen=True)
class VESDE:
    """dx = sqrt(d[sigma^2(t)]/dt) dw with sigma(t) = sigma_min (sigma_max/sigma_min)^t."""

    sigma_min: float = 0.01
    sigma_max: float = 3.0
    eps: float = 1e-5  # smallest time: training and sampling stop here
    T: float = 1.0

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean coefficient, std) of p_t(x_t | x_0) = N(coef * x_0, std^2 I)."""
        return torch.ones_like(t), self.sigma(t)

    def drift_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), g

    def prior_sample(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, dim, generator=generator, device=generator.device) * self.sigma_max


@dataclass(frozen=True)
class VPSDE:
    """dx = -beta(t)/2 x dt + sqrt(beta(t)) dw, beta linear from beta_min to beta_max (DDPM limit)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = 1e-3
    T: float = 1.0

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_coef = -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        return torch.exp(log_coef), torch.sqrt(-torch.expm1(2 * log_coef))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.marginal(t)[1]

    def drift_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.beta(t)
        return -0.5 * b[:, None] * x, torch.sqrt(b)

    def prior_sample(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, dim, generator=generator, device=generator.device)


SDE = VESDE | VPSDE


def make_sde(noise: NoiseConfig, kind: str = "ve") -> SDE:
    """The SDE a run samples with: VP for vp-sde runs, VE over [sigma_min, sigma_max] otherwise."""
    if kind == "vp":
        return VPSDE(noise.beta_min, noise.beta_max)
    return VESDE(noise.sigma_min, noise.sigma_max)

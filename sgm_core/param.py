"""Parameterisations: what a network's raw output F means, and how it becomes a score.

Everything outside the net (losses, samplers, the field view, metrics, likelihood, truth) calls a
model as a score function s(x, sigma), sigma the marginal std. A parameterisation turns the raw
MLP into that function, so a net may be trained to predict the noise, a velocity or a
preconditioned denoiser while the rest of the program never knows:

- score: s = F / sigma (NCSNv2, technique 3), today's nets;
- eps: F is the noise, s = -F / sigma (Ho et al. 2020);
- velocity: F is d x_t / dt, s from the process's probability-flow drift (Lipman et al. 2023);
- edm: D = c_skip x + c_out F(c_in x, c_noise), s = (D - x) / sigma^2 (Karras et al. 2022, Table 1),
  in the VE-equivalent coordinates x / coef, sigma / coef of any Gaussian path.

The losses are written against the process's targets of a score (eps, velocity, denoiser), so each
loss works with any parameterisation; a LossSpec names the one its paper trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from .lazy import lazy_module
from .noise import Process, _column

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it


class Parameterisation(Protocol):
    name: ClassVar[str]
    shows: ClassVar[str]  # what the field view draws for this net (its label)
    measures: ClassVar[str]  # what the Metrics dock's error curve compares with the truth ("score", "velocity")

    def net_input(self, x: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(what the MLP sees, the sigma its features are taken of)."""

    def to_score(self, raw: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """The score at (x, std) from the MLP's output."""

    def from_score(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """The MLP output that gives `score`: this parameterisation's training target."""

    def field(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, int]:
        """What the field view draws at (x, std), and how it follows a rescaling of space: the power
        of the data's scale it is multiplied by (-1 for a score, +1 for a velocity or a displacement)."""

    def measured(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """What the error curve compares with the truth's (`measures`): the score, or what the net
        predicts where its score divides by a vanishing std (a flow's velocity: s = -(x + (1 - t) v) / t)."""


@dataclass(frozen=True)
class ScoreOutput:
    """F / sigma: the raw MLP predicts minus the noise at unit scale on every level (NCSNv2)."""

    name: ClassVar[str] = "score"
    shows: ClassVar[str] = "score s_θ(x, σ)"
    measures: ClassVar[str] = "score"

    def measured(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return score

    def field(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, int]:
        return score, -1

    def net_input(self, x: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, std

    def to_score(self, raw: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return raw / _column(std, raw)

    def from_score(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return _column(std, score) * score


@dataclass(frozen=True)
class EpsOutput(ScoreOutput):
    """F = eps_hat, the noise in x_t = coef x_0 + std eps (Ho et al. 2020): s = -eps_hat / std."""

    name: ClassVar[str] = "eps"

    def to_score(self, raw: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return -raw / _column(std, raw)

    def from_score(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return -_column(std, score) * score


@dataclass(frozen=True)
class VelocityOutput(ScoreOutput):
    """F = v_hat(x_t, t), the flow's velocity (Lipman et al. 2023; Liu et al. 2023); the process
    turns it into a score (for the linear path s = -(x + (1 - t) v) / t)."""

    process: Process
    name: ClassVar[str] = "velocity"
    shows: ClassVar[str] = "flow −v_θ(x, t) (toward the data)"
    measures: ClassVar[str] = "velocity"

    def measured(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """The velocity itself: its score's 1/t turns a small velocity error at t = 0.001 into a
        relative score error of 10^2-10^4 (seen on every fm run), though the net predicts v well."""
        return self.from_score(score, x, std)

    def field(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, int]:
        return -self.from_score(score, x, std), 1  # the data lie at t = 0: sampling runs against v

    def to_score(self, raw: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return self.process.score_from_velocity(x, std, raw)

    def from_score(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        drift, g = self.process.drift_diffusion(x, self.process.time_of_std(std))
        return drift - 0.5 * _column(g, x) ** 2 * score  # the PF-ODE drift


@dataclass(frozen=True)
class DenoiserOutput:
    """EDM's preconditioning (Karras et al. 2022, Table 1, "Ours"): with x~ = x / coef and
    sigma = std / coef, D(x~) = c_skip x~ + c_out F(c_in x~, c_noise) where c_skip = sd^2 / (sigma^2 + sd^2),
    c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4
    (the nets' sigma features already start from ln(sigma) / 4). Score: (coef D - x) / std^2."""

    process: Process
    sigma_data: float = 1.0
    name: ClassVar[str] = "edm"
    shows: ClassVar[str] = "denoiser D_θ(x, σ) − x"
    measures: ClassVar[str] = "score"

    def measured(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return score

    def field(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, int]:
        coef = _column(self.process.coef_of_std(std).to(x), x)
        return (x + _column(std.to(x), x) ** 2 * score) / coef - x / coef, 1  # D(x~) - x~

    def _coef_noise(self, std: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coef = self.process.coef_of_std(std).to(like)
        return coef, std.to(like) / coef

    def net_input(self, x: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coef, sigma = self._coef_noise(std, x)
        c_in = 1 / torch.sqrt(sigma**2 + self.sigma_data**2)
        return _column(c_in / coef, x) * x, sigma

    def _skip_out(self, std: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(coef, c_skip, c_out) as columns against x."""
        coef, sigma = self._coef_noise(std, x)
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / torch.sqrt(sigma**2 + sd2)
        return _column(coef, x), _column(c_skip, x), _column(c_out, x)

    def to_score(self, raw: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        coef, c_skip, c_out = self._skip_out(std, x)
        denoised = c_skip * x / coef + c_out * raw  # D(x~)
        return (coef * denoised - x) / _column(std.to(x), x) ** 2

    def from_score(self, score: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        coef, c_skip, c_out = self._skip_out(std, x)
        denoised = (x + _column(std.to(x), x) ** 2 * score) / coef  # Tweedie: E[x_0 | x_t]
        return (denoised - c_skip * x / coef) / c_out


SCORE = ScoreOutput()

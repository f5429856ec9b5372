"""Score and energy networks: noise-conditional MLPs s_theta(x, sigma) and E_theta(x, sigma).

Noise-conditional nets see log(sigma) through fixed sinusoidal features; what their raw MLP
output means (a unit-scale score F / sigma as in NCSNv2, the noise, a velocity, EDM's
preconditioned denoiser) is their `output` parameterisation (`sgm_core.param`), and forward()
always returns the score. Unconditional nets (exact and sliced score matching fit the clean data
score) ignore sigma entirely. The parameterisation holds no weights: state dicts are the MLP's.

A class-conditional net s_theta(x, sigma, c) (ModelConfig.classes) also sees a learned embedding
of the class c, with one extra row for the null class: trained with labels dropped to null, one
net gives both the conditional and the unconditional score (classifier-free guidance, Ho &
Salimans 2022; `sgm_core.guidance`). Called without c it is the unconditional score.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ACTIVATION_NAMES, CLASS_FEATURES, ModelConfig
from .param import SCORE, Parameterisation

_MODULES = {"silu": nn.SiLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "elu": nn.ELU, "relu": nn.ReLU}
ACTIVATIONS = {name: _MODULES[name] for name in ACTIVATION_NAMES}  # config checks the names without torch


def append_dims(v: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-sample value (N,) or a scalar against `like` of shape (N, D...)."""
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if v.ndim == 0:
        return v.expand(like.shape[0]).reshape(-1, *([1] * (like.ndim - 1)))
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def sigma_features(sigma: torch.Tensor, n_frequencies: int) -> torch.Tensor:
    """Deterministic sinusoidal features of log(sigma): (N,) -> (N, 2 * n_frequencies + 1)."""
    c = torch.log(sigma)[:, None] / 4.0  # log sigma in [-5, 2] maps to about [-1.2, 0.5]
    freqs = 2.0 ** torch.arange(n_frequencies, dtype=sigma.dtype, device=sigma.device) * math.pi / 2
    return torch.cat([c, torch.sin(c * freqs), torch.cos(c * freqs)], dim=1)


def _mlp(n_in: int, n_out: int, cfg: ModelConfig) -> nn.Sequential:
    act = ACTIVATIONS[cfg.activation]  # ModelConfig checked the name
    layers: list[nn.Module] = []
    width_in = n_in
    for _ in range(cfg.depth):
        layers += [nn.Linear(width_in, cfg.width), act()]
        width_in = cfg.width
    layers.append(nn.Linear(width_in, n_out))
    return nn.Sequential(*layers)


class ScoreNet(nn.Module):
    """s_theta(x, sigma) = output.to_score(MLP([x_in, features(sigma_in)])) (conditional), or MLP(x)."""

    def __init__(self, dim: int, cfg: ModelConfig, conditional: bool, output: Parameterisation = SCORE) -> None:
        super().__init__()
        self.dim, self.cfg, self.conditional, self.output = dim, cfg, conditional, output
        self.n_classes = cfg.n_classes
        n_feat = 2 * cfg.n_frequencies + 1 if conditional else 0
        if self.n_classes:
            self.class_embed = nn.Embedding(self.n_classes + 1, CLASS_FEATURES)  # row n_classes: the null class
            n_feat += CLASS_FEATURES
        self.net = _mlp(dim + n_feat, self._n_out(), cfg)

    @property
    def null_class(self) -> int:
        """The index of the learned null class (the unconditional score); -1 on an unconditional net."""
        return self.n_classes if self.n_classes else -1

    def _n_out(self) -> int:
        return self.dim

    def _raw(self, x: torch.Tensor, sigma: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x]
        if self.conditional:
            parts.append(sigma_features(sigma, self.cfg.n_frequencies))
        if self.n_classes:
            if c is None:
                c = torch.full((x.shape[0],), self.n_classes, dtype=torch.int64, device=x.device)
            else:
                c = torch.as_tensor(c, dtype=torch.int64, device=x.device).reshape(-1).expand(x.shape[0])
            parts.append(self.class_embed(c))
        return self.net(torch.cat(parts, dim=1) if len(parts) > 1 else x)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, c: torch.Tensor | int | None = None) -> torch.Tensor:
        """The score at (x, sigma) given class indices c ((N,) or one int; None or the null index:
        unconditional). An unconditional net ignores c."""
        sigma = append_dims(sigma, x)[:, 0]
        if not self.conditional:
            return self._raw(x, sigma, c)
        x_in, sigma_in = self.output.net_input(x, sigma)
        return self.output.to_score(self._raw(x_in, sigma_in, c), x, sigma)


class EnergyNet(ScoreNet):
    """E_theta(x, sigma) = MLP(...) / sigma; its score is -grad_x E (a conservative field), whatever
    the loss's parameterisation (an energy's output is an energy).

    Energies make a density heatmap possible: log p_theta(x) = -E_theta(x) - log Z.
    """

    def _n_out(self) -> int:
        return 1

    def energy(self, x: torch.Tensor, sigma: torch.Tensor | float, c: torch.Tensor | int | None = None) -> torch.Tensor:
        sigma = append_dims(sigma, x)[:, 0]
        e = self._raw(x, sigma, c)[:, 0]
        return e / sigma if self.conditional else e

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, c: torch.Tensor | int | None = None) -> torch.Tensor:
        # The score needs grad_x even when the caller sampled under no_grad; keep the graph
        # only when the caller is itself differentiating (training losses).
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if x.requires_grad else x.detach().requires_grad_(True)
            e = self.energy(x_in, sigma, c)
            (grad,) = torch.autograd.grad(e.sum(), x_in, create_graph=keep_graph)
        return -grad if keep_graph else -grad.detach()


def make_model(dim: int, cfg: ModelConfig, conditional: bool = True, output: Parameterisation = SCORE) -> ScoreNet:
    """Build the network named by `cfg.kind` (score or energy) for D-dimensional data, its raw
    output read as `output` (energy nets always give -grad E)."""
    if cfg.kind == "energy":  # ModelConfig checked kind, activation and size
        return EnergyNet(dim, cfg, conditional)
    return ScoreNet(dim, cfg, conditional, output)

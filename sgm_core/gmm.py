"""Gaussian mixtures with exact ground truth: log-density, score, and the score of q_sigma.

Perturbing a mixture with N(0, sigma^2 I) noise gives another mixture whose covariances are
Sigma_k + sigma^2 I, so every noise level has a closed-form score. Tests, metrics and the
"truth vs learned" views all compare against this. A labelled mixture (each component one class)
also has the exact class-conditional scores p_sigma(x | c), and so the exact guided score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sgm_core.errors import ConfigError
from sgm_core.lazy import lazy_module, loaded

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it


@dataclass(frozen=True)
class GaussianMixture:
    """p(x) = sum_k w_k N(x; mu_k, Sigma_k). Tensors live on the CPU in float64."""

    weights: torch.Tensor  # (K,) non-negative, sums to 1
    means: torch.Tensor  # (K, D)
    covs: torch.Tensor  # (K, D, D) symmetric positive definite
    labels: torch.Tensor | None = None  # (K,) int64 class of each component, or None (unlabelled)

    @staticmethod
    def isotropic(weights, means, std, labels=None) -> GaussianMixture:
        """Mixture of N(mu_k, std_k^2 I); `std` is a scalar or one value per component; `labels`
        the class index of each component (None: unlabelled)."""
        means = torch.as_tensor(means, dtype=torch.float64)
        k, d = means.shape
        w = torch.as_tensor(weights, dtype=torch.float64)
        std = torch.as_tensor(std, dtype=torch.float64).expand(k)
        covs = std[:, None, None] ** 2 * torch.eye(d, dtype=torch.float64)
        lab = None if labels is None else torch.as_tensor(labels, dtype=torch.int64).reshape(k)
        return GaussianMixture(w / w.sum(), means, covs, lab)

    @property
    def n_classes(self) -> int:
        """Classes of a labelled mixture (0 when unlabelled)."""
        return 0 if self.labels is None else int(self.labels.max()) + 1

    def class_weights(self) -> torch.Tensor:
        """p(c): the total weight of each class's components, (C,)."""
        if self.labels is None:
            raise ValueError("this mixture has no class labels")
        return torch.zeros(self.n_classes, dtype=torch.float64).index_add_(0, self.labels, self.weights)

    def given_class(self, c: int) -> GaussianMixture:
        """p(x | c): class c's components, their weights renormalised. Noising commutes with
        conditioning on the class, so its `score(x, sigma)` is the exact p_sigma(x | c) score."""
        if self.labels is None:
            raise ValueError("this mixture has no class labels")
        keep = self.labels == int(c)
        if not bool(keep.any()):
            raise ValueError(f"class {c} has no component in this mixture")
        w = self.weights[keep]
        return GaussianMixture(w / w.sum(), self.means[keep], self.covs[keep], self.labels[keep])

    def guided_score(self, x: torch.Tensor, sigma: float | torch.Tensor, c: int, guidance: float) -> torch.Tensor:
        """The exact classifier-free-guided score (Ho & Salimans 2022, eq. 6, with w = `guidance`):
        s(x, sigma) + (1 + w)(s(x, sigma | c) - s(x, sigma)); w = 0 is the class-conditional score."""
        uncond = self.score(x, sigma)
        return uncond + (1.0 + float(guidance)) * (self.given_class(c).score(x, sigma) - uncond)

    def guided_log_prob(self, x: torch.Tensor, sigma: float, c: int, guidance: float) -> torch.Tensor:
        """(1 + w) log q_sigma(x | c) - w log q_sigma(x): the unnormalised log-density whose
        gradient is `guided_score` (MALA's accept step needs it)."""
        w = float(guidance)
        return (1.0 + w) * self.given_class(c).log_prob(x, sigma) - w * self.log_prob(x, sigma)

    def __reduce__(self) -> tuple:
        """Pickled as numpy arrays: a dataset that crosses to the GUI process (sgm_core.engine.Loaded)
        must not import torch there (see `_unpickled_mixture`). The labels travel too."""
        labels = None if self.labels is None else np.asarray(self.labels)
        return _unpickled_mixture, (*(np.asarray(t) for t in (self.weights, self.means, self.covs)), labels)

    def on_torch(self) -> GaussianMixture:
        """This mixture with float64 CPU tensors: itself when it has them, else a copy of the numpy
        arrays it was unpickled with in a process that had not loaded torch yet (the GUI's)."""
        if isinstance(self.means, torch.Tensor):
            return self
        return _unpickled_mixture(self.weights, self.means, self.covs, self.labels)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def perturbed(self, sigma: float) -> GaussianMixture:
        """The density q_sigma = p * N(0, sigma^2 I): same means, covariances + sigma^2 I."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(self.weights, self.means, self.covs + float(sigma) ** 2 * eye, self.labels)

    def transformed(self, shift: torch.Tensor, scale: float) -> GaussianMixture:
        """The mixture of (x - shift) / scale, so truth follows the data's standardisation."""
        shift = torch.as_tensor(shift, dtype=torch.float64)
        return GaussianMixture(self.weights, (self.means - shift) / scale, self.covs / scale**2, self.labels)

    @cached_property
    def _precisions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sigma_k^{-1} (K, D, D) and log det Sigma_k (K,), computed once per mixture."""
        chol = torch.linalg.cholesky(self.covs)
        eye = torch.eye(self.dim, dtype=self.covs.dtype).expand_as(self.covs)
        prec = torch.cholesky_solve(eye, chol)
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return prec, log_det

    def _component_log_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log(w_k N(x; mu_k, Sigma_k)) of shape (N, K), and Sigma_k^{-1}(x - mu_k) of shape (N, K, D)."""
        prec, log_det = self._precisions
        diff = x[:, None, :] - self.means[None]  # (N, K, D)
        prec_diff = torch.einsum("kij,nkj->nki", prec, diff)
        maha = (diff * prec_diff).sum(-1)
        log_norm = -0.5 * (self.dim * math.log(2 * math.pi) + log_det)
        comp = torch.log(self.weights)[None] + log_norm[None] - 0.5 * maha
        return comp, prec_diff

    def log_prob(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """log q_sigma(x) for x of shape (N, D); returned in x's dtype and device."""
        mix = self.perturbed(sigma) if sigma > 0 else self
        comp, _ = mix._component_log_probs(x.to("cpu", torch.float64))  # differentiable
        return torch.logsumexp(comp, dim=1).to(x)

    def score(self, x: torch.Tensor, sigma: float | torch.Tensor = 0.0) -> torch.Tensor:
        """grad_x log q_sigma(x) = -sum_k r_k(x) Sigma_k^{-1}(x - mu_k), with responsibilities r_k.

        `sigma` may be a float or a per-sample tensor of shape (N,) (or (N, 1)).
        """
        x64 = x.detach().to("cpu", torch.float64)
        if torch.is_tensor(sigma) and sigma.numel() > 1:
            sig = sigma.detach().to("cpu", torch.float64).reshape(-1)
            out = torch.empty_like(x64)
            for value in torch.unique(sig):  # few distinct levels in practice (a ladder)
                rows = sig == value
                out[rows] = self._score64(x64[rows], float(value))
            return out.to(x)
        return self._score64(x64, float(sigma)).to(x)

    def _score64(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        mix = self.perturbed(sigma) if sigma > 0 else self
        comp, prec_diff = mix._component_log_probs(x)
        resp = torch.softmax(comp, dim=1)  # (N, K)
        return -(resp[..., None] * prec_diff).sum(1)

    def denoised(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """E[x_0 | x_0 + sigma z = x], the exact denoiser (EDM's D), from the components' posteriors:
        sum_k r_k (mu_k + Sigma_k (Sigma_k + sigma^2 I)^{-1} (x - mu_k)), r_k under q_sigma. Equals
        Tweedie's x + sigma^2 score(x, sigma), by a different route (a test checks both)."""
        x64 = x.detach().to("cpu", torch.float64)
        comp, prec_diff = self.perturbed(sigma)._component_log_probs(x64)
        resp = torch.softmax(comp, dim=1)
        post = self.means[None] + torch.einsum("kij,nkj->nki", self.covs, prec_diff)  # (N, K, D)
        return (resp[..., None] * post).sum(1).to(x)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws of shape (n, D) in float32, reproducible from `generator` (a CPU generator)."""
        return self.sample_components(n, generator)[0]

    def sample_components(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`sample`'s draws and the component each came from, (n,) int64 (the same random stream)."""
        idx = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[idx] + (chol[idx] @ z[..., None])[..., 0]
        return x.float(), idx

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`sample`'s draws and their class labels (n,) int64; the same random stream as `sample`."""
        if self.labels is None:
            raise ValueError("this mixture has no class labels")
        x, idx = self.sample_components(n, generator)
        return x, self.labels[idx]

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities (N, K): which mode each point belongs to."""
        comp, _ = self._component_log_probs(x.detach().to("cpu", torch.float64))
        return torch.softmax(comp, dim=1)

    def conditional(self, fixed: Sequence[int], values: Sequence[float] | torch.Tensor) -> GaussianMixture:
        """p(x_u | x_f = values) over the free coordinates u (the rest, in order): again a mixture.

        Bayes on each component (Bishop 2006, eqs. 2.81-2.82): w_k' ∝ w_k N(values; mu_kf, S_kff),
        mu_k' = mu_ku + S_kuf S_kff^-1 (values - mu_kf), S_k' = S_kuu - S_kuf S_kff^-1 S_kfu.
        The conditional of the noisy density q_sigma is `perturbed(sigma).conditional(...)`.
        The weights are normalised in log space (logsumexp), so values far out in the tails still
        get them; values where every component's log-likelihood is -inf or NaN are a ConfigError."""
        fixed_idx = torch.as_tensor(list(fixed), dtype=torch.long)
        free_idx = torch.as_tensor([i for i in range(self.dim) if i not in set(fixed_idx.tolist())], dtype=torch.long)
        if not len(fixed_idx) or not len(free_idx):
            raise ValueError("a conditional fixes at least one coordinate and leaves at least one free")
        v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        marginal = self.marginal(fixed_idx.tolist())  # p(x_f)
        s_ff = marginal.covs
        s_uf = self.covs[:, free_idx][:, :, fixed_idx]
        s_uu = self.covs[:, free_idx][:, :, free_idx]
        comp, prec_diff = marginal._component_log_probs(v[None])  # (1, K), S_ff^-1 (v - mu_f): (1, K, F)
        evidence = torch.logsumexp(comp[0], dim=0)  # log p(x_f = v)
        if not torch.isfinite(evidence):
            raise ConfigError("the fixed values lie where the data has no density: their likelihood underflows "
                              "to zero under every component")
        weights = (comp[0] - evidence).exp()
        means = self.means[:, free_idx] + torch.einsum("kuf,kf->ku", s_uf, prec_diff[0])
        gain = torch.linalg.solve(s_ff, s_uf.transpose(1, 2))  # S_ff^-1 S_fu: (K, F, U)
        covs = s_uu - s_uf @ gain
        return GaussianMixture(weights, means, 0.5 * (covs + covs.transpose(1, 2)))

    def marginal(self, coords: Sequence[int]) -> GaussianMixture:
        """The mixture of the coordinates `coords` alone (the others integrated out): same weights,
        the means' and covariances' sub-blocks. Bayes' denominator p(x_f) of `conditional`."""
        idx = torch.as_tensor(list(coords), dtype=torch.long)
        return GaussianMixture(self.weights, self.means[:, idx], self.covs[:, idx][:, :, idx])

def _unpickled_mixture(
    weights: np.ndarray, means: np.ndarray, covs: np.ndarray, labels: np.ndarray | None = None
) -> GaussianMixture:
    """A pickled mixture: tensors where torch is loaded (the engine's host imports it first), else
    its numpy arrays, so the GUI process holds the dataset, and sends it back, without torch (it
    never evaluates a mixture; shape queries such as `dim` work on either; `Dataset.gmm` turns it
    into tensors once torch is there)."""
    if not loaded("torch"):
        return GaussianMixture(weights, means, covs, labels)
    lab = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    return GaussianMixture(*(torch.as_tensor(a, dtype=torch.float64) for a in (weights, means, covs)), lab)


def linear_flow_velocity(data: GaussianMixture, source: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    """E[z - x_0 | x_t = x] on the linear path x_t = (1 - t) x_0 + t z with x_0 ~ `data` and z ~
    `source` drawn independently (flow matching's marginal velocity, Lipman et al. 2023 eq. 8;
    Tong et al. 2024 for a non-Gaussian source). Given the component pair (i, j), (x_0, z, x_t) is
    jointly Gaussian: x_t ~ N((1-t) mu_i + t nu_j, (1-t)^2 Sigma_i + t^2 S_j), and
    E[z - x_0 | x_t, i, j] = (nu_j - mu_i) + (t S_j - (1-t) Sigma_i) C_ij^{-1} (x_t - m_ij); the answer
    averages these over the pairs' posteriors, a mixture of K x J components."""
    d = data.dim
    mu, nu = data.means[:, None], source.means[None]  # (K, 1, D), (1, J, D)
    cov_x, cov_z = data.covs[:, None], source.covs[None]
    pairs = GaussianMixture((data.weights[:, None] * source.weights[None]).reshape(-1),
                            ((1 - t) * mu + t * nu).reshape(-1, d),
                            ((1 - t) ** 2 * cov_x + t**2 * cov_z).reshape(-1, d, d))
    cross = (t * cov_z - (1 - t) * cov_x).reshape(-1, d, d)  # Cov(z - x_0, x_t | i, j)
    offset = (nu - mu).reshape(-1, d)
    x64 = x.detach().to("cpu", torch.float64)
    comp, prec_diff = pairs._component_log_probs(x64)
    resp = torch.softmax(comp, dim=1)  # (N, K J)
    conditional = offset[None] + torch.einsum("kij,nkj->nki", cross, prec_diff)
    return (resp[..., None] * conditional).sum(1).to(x)

"""Differential geometry of a score field: its Jacobian, divergence and (planar) curl.

A true score s = ∇ₓ log p is a gradient, so its Jacobian is symmetric and its curl vanishes.
An energy net (s = −∇ₓE_θ) is conservative by construction; a plain score net is not, and the
curl ∂s_y/∂x − ∂s_x/∂y shows where it learned a rotation no density can have. In 2D/3D the
Jacobian is exact with D backprops (no Hutchinson estimator), as in `likelihood.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from sgm_core.lazy import lazy_module

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

ScoreFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def _sigma_like(x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    return sig.expand(x.shape[0]) if sig.numel() == 1 else sig


def jacobian(score_fn: ScoreFn, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """J[n, i, j] = ∂s_i/∂x_j at each point (N, D, D), by one backprop per output dimension.

    Exact because each output row depends only on its own input row (per-sample networks and
    analytic scores), so the gradient of Σ_n s_i(x_n) holds every ∂s_i(x_n)/∂x_n at once.
    Works under an outer `torch.no_grad()` and for energy nets (their score is itself a gradient).
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        s = score_fn(xg, _sigma_like(xg, sigma))
        rows = []
        for i in range(s.shape[1]):
            (grad_i,) = torch.autograd.grad(s[:, i].sum(), xg, retain_graph=i < s.shape[1] - 1)
            rows.append(grad_i)
    return torch.stack(rows, dim=1).detach()


def curl_2d(score_fn: ScoreFn, points_std: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """∂s_y/∂x − ∂s_x/∂y per point (N,): twice the local rotation rate of the field in the plane of
    the first two axes (the z-component of the curl in 3D). Zero for any gradient field."""
    j = jacobian(score_fn, points_std, sigma)
    return j[:, 1, 0] - j[:, 0, 1]


def divergence(score_fn: ScoreFn, points_std: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """tr ∂s/∂x per point (N,): the Laplacian of log p for a true score (negative at modes)."""
    return torch.diagonal(jacobian(score_fn, points_std, sigma), dim1=1, dim2=2).sum(-1)


def relative_curl(score_fn: ScoreFn, points_std: torch.Tensor, sigma: float | torch.Tensor,
                  percentile: float = 95.0) -> torch.Tensor:
    """The curl over a typical Jacobian size on the same points (the `percentile` of ‖J‖_F): a
    dimensionless map, comparable across σ and data scales, in which a conservative field reads 0
    and a pure rotation of the typical strength reads √2. Round-off of an energy net stays ~1e-6."""
    j = jacobian(score_fn, points_std, sigma)
    curl = j[:, 1, 0] - j[:, 0, 1]
    norms = j.flatten(1).norm(dim=1)
    typical = torch.quantile(norms.double(), percentile / 100.0).to(norms) if len(norms) else norms.new_tensor(1.0)
    return curl / typical.clamp_min(torch.finfo(norms.dtype).tiny)

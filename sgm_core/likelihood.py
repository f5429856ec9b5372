"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, Sec. 4.3).

Along dx/dt = v(x, t) = f(x, t) - g(t)^2 s(x, sigma(t)) / 2 the log-density obeys
d log p_t(x_t)/dt = -div v, so log p_0(x) = log p_T(x_T) + int_0^T div v dt. In 2D/3D the
divergence is exact (D backprops), no Hutchinson estimator needed.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from .lazy import lazy_module
from .noise import Process
from .stepwise import run_to_end

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

ScoreFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def _velocity_and_divergence(score_fn: ScoreFn, sde: Process, x: torch.Tensor, t: float):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = sde.pf_drift(score_fn, x, torch.full((x.shape[0],), t, dtype=x.dtype))
        div = torch.zeros(x.shape[0], dtype=x.dtype)
        for d in range(x.shape[1]):
            (grad_d,) = torch.autograd.grad(v[:, d].sum(), x, retain_graph=d < x.shape[1] - 1)
            div = div + grad_d[:, d]
    return v.detach(), div.detach()


def prior_log_prob(sde: Process, x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, s^2 I) with s the prior std (sigma_max for VE, 1 for VP): the process's own."""
    return sde.prior_log_prob(x)


def ode_log_likelihood(score_fn: ScoreFn, sde: Process, x: torch.Tensor, n_steps: int = 100) -> torch.Tensor:
    """log p_0(x) per point (N,), in the coordinates the score lives in, by Heun steps from eps to T."""
    return run_to_end(ode_log_likelihood_steps(score_fn, sde, x, n_steps))


def ode_log_likelihood_steps(score_fn: ScoreFn, sde: Process, x: torch.Tensor,
                             n_steps: int = 100) -> Generator[None, None, torch.Tensor]:
    """`ode_log_likelihood` one Heun step per `next()`: the GUI worker interleaves it with frames."""
    ts = torch.linspace(sde.eps, sde.T, n_steps + 1, dtype=torch.float64).tolist()
    x = x.detach().double()
    integral = torch.zeros(x.shape[0], dtype=torch.float64)

    def fn(xx, t):
        v, div = _velocity_and_divergence(lambda a, s: score_fn(a.float(), s.float()).double(), sde, xx, t)
        return v, div

    for t0, t1 in zip(ts[:-1], ts[1:], strict=True):
        h = t1 - t0
        v0, d0 = fn(x, t0)
        x1 = x + h * v0
        v1, d1 = fn(x1, t1)
        x = x + 0.5 * h * (v0 + v1)
        integral = integral + 0.5 * h * (d0 + d1)
        yield
    return prior_log_prob(sde, x) + integral

"""Reference scores for any dataset: the analytic mixture score when the data is a Gaussian
mixture, else the exact score of the sigma-smoothed empirical distribution.

For data points d_1..d_M, q_sigma(x) = 1/M sum_j N(x; d_j, sigma^2 I), whose score is
sum_j softmax_j(-|x - d_j|^2 / 2 sigma^2) (d_j - x) / sigma^2: a log-sum-exp over the data, so
every drawn or loaded dataset gets a reference field (it converges to the true q_sigma score as
M grows).

Processes with a mean coefficient (VP, DDPM, the flow-matching interpolant) condition on the marginal
std s of x_t = alpha x_0 + s z, alpha = `process.coef_of_std(s)` (sqrt(1 - s^2) for VP): that
density is the data scaled by alpha and smoothed by s, whose score follows from the VE one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .datasets import Dataset, Standardizer
from .gmm import GaussianMixture, linear_flow_velocity
from .lazy import lazy_module
from .noise import VESDE, VPSDE, Process, _column
from .param import Parameterisation
from .samplers import WithLogDensity

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

ScoreFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
EMPIRICAL_SIGMA_FLOOR = 1e-3  # the empirical score at sigma -> 0 is a sum of deltas: floor it


def empirical_score(x: torch.Tensor, data: torch.Tensor, sigma: torch.Tensor | float, chunk: int = 4096) -> torch.Tensor:
    """Exact score of (1/M) sum_j N(x; d_j, sigma^2 I) at x (N, D); sigma scalar or per-sample (N,)."""
    sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if sig.numel() == 1:
        sig = sig.expand(x.shape[0])
    sig = sig.clamp_min(EMPIRICAL_SIGMA_FLOOR)
    x64, d64 = x.detach().to("cpu", torch.float64), data.detach().to("cpu", torch.float64)
    out = torch.empty_like(x64)
    for start in range(0, len(x64), chunk):
        xs, ss = x64[start:start + chunk], sig[start:start + chunk, None]
        logits = -torch.cdist(xs, d64) ** 2 / (2 * ss**2)  # (n, M)
        w = torch.softmax(logits, dim=1)
        out[start:start + chunk] = (w @ d64 - xs) / ss**2
    return out.to(x)


def vp_alpha(sigma: torch.Tensor | float) -> torch.Tensor:
    """The VP mean coefficient alpha = sqrt(1 - s^2) of a marginal std s."""
    return _NAMED["vp"].coef_of_std(sigma)


def vp_score(base: ScoreFn) -> ScoreFn:
    """The VP marginal's score from the VE reference `base` (see `scaled_score`)."""
    return scaled_score(base, vp_alpha)


def scaled_score(base: ScoreFn, coef_of_std: Callable[[torch.Tensor], torch.Tensor]) -> ScoreFn:
    """The marginal's score from the VE reference `base`: alpha x_0 + s z = alpha (x_0 + (s/alpha) z),
    so its score at x is base(x / alpha, s / alpha) / alpha."""

    def score(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        s = s.expand(x.shape[0]) if s.numel() == 1 else s
        a = coef_of_std(s).to(torch.float64)
        out = base(x.double() / a[:, None], s / a) / a[:, None]
        return out.to(x.dtype)

    return score


Kind = str | Process  # a Process, or "ve" / "vp" (the two perturbations named before processes existed)
_NAMED = {"ve": VESDE(), "vp": VPSDE()}


def _process(kind: Kind) -> Process:
    return _NAMED[kind] if isinstance(kind, str) else kind


def _has_coef(process: Process) -> bool:
    return type(process).coef_of_std is not Process.coef_of_std


def perturb(x: torch.Tensor, sigma: float, kind: Kind, generator: torch.Generator) -> torch.Tensor:
    """Draws of q_sigma given clean x: alpha x + sigma z, alpha = 1 (VE, ladders, single sigma) or
    the process's mean coefficient at std sigma (VP: sqrt(1 - sigma^2)); z ~ N(0, I), or draws of
    a flow's source (x_t = (1 - t) x + t z on the linear path from another distribution)."""
    process = _process(kind)
    if getattr(process, "source", None) is not None:
        z = process.prior_sample(len(x), x.shape[1], generator).to(x)
    else:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    scale = float(_process(kind).coef_of_std(float(sigma)))
    return scale * x + sigma * z


Measured = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]  # (score, x, std) -> field


def relative_score_error(model: ScoreFn, reference: ScoreFn, x: torch.Tensor, sigma: float, kind: Kind = "ve",
                         seed: int = 7, device: torch.device | str = "cpu", measured: Measured | None = None) -> float:
    """Relative Fisher divergence E|s_theta - s|^2 / E|s|^2 of a model against the reference on
    q_sigma draws from the clean points x (a fixed seed: the same noisy points on every call).
    `measured` compares another field made of each score instead (a flow's velocity:
    `Parameterisation.measured`), in float64 at the same points."""
    sigma = max(float(sigma), 1e-3)
    xs = perturb(x, sigma, kind, torch.Generator().manual_seed(seed))
    sig = torch.full((len(xs),), sigma)
    with torch.no_grad():
        learned = model(xs.to(device), sig.to(device)).double().cpu()
    truth = reference(xs, sig).double()
    if measured is not None:
        x64, sig64 = xs.double(), sig.double()
        learned, truth = measured(learned, x64, sig64), measured(truth, x64, sig64)
    return float(((learned - truth) ** 2).sum(1).mean() / (truth**2).sum(1).mean().clamp_min(1e-12))


EMPIRICAL_POINTS = 2000  # data points an empirical reference sums over (its cost is linear in them)


def reference_score_fn(dataset: Dataset, standardizer: Standardizer, max_points: int = EMPIRICAL_POINTS,
                       kind: Kind = "ve") -> tuple[ScoreFn, str]:
    """A score function in standardised coordinates, and its kind: "analytic" or "empirical".
    A process with a mean coefficient (kind "vp", say) gives the score of its marginal at std sigma
    instead of data + sigma z. The analytic score of a VE-type process also carries its log-density
    (`WithLogDensity`), which MALA's accept/reject step needs."""
    process = _process(kind)
    if dataset.gmm is not None:
        gmm = dataset.gmm.transformed(torch.tensor(standardizer.shift), float(standardizer.scale))
        score, label = (lambda x, sigma: gmm.score(x, sigma)), "analytic"
        if not _has_coef(process):  # MALA's accept/reject step needs log q_sigma itself: the analytic truth has it
            return WithLogDensity(score, lambda x, sigma: gmm.log_prob(x, _one_sigma(sigma))), label
    else:
        pts = torch.as_tensor(standardizer.forward(dataset.points[:max_points]), dtype=torch.float64)
        score, label = (lambda x, sigma: empirical_score(x, pts, sigma)), "empirical"
    return (scaled_score(score, process.coef_of_std) if _has_coef(process) else score), label


def empirical_spacing(dataset: Dataset, standardizer: Standardizer, max_points: int = EMPIRICAL_POINTS) -> float:
    """Median distance from each of the points an empirical reference sums over to its nearest
    other one (standardised). Below this σ that reference is spiky, every point its own peak: a
    smooth net does not follow it there (3D helix, σ = 0.01 against a spacing of 0.033: a score
    error of 1.0 after 9,000 steps, where the larger levels fell to 0.03 and below)."""
    pts = torch.as_tensor(standardizer.forward(dataset.points[:max_points]), dtype=torch.float64)
    if len(pts) < 2:
        return 0.0
    d = torch.cdist(pts, pts)
    d.fill_diagonal_(math.inf)
    return float(d.min(dim=1).values.median())


def flow_reference_fn(data: GaussianMixture, source: GaussianMixture, process: Process) -> ScoreFn:
    """The exact field of a flow between two mixtures (standardised coordinates), as a score in the
    net's own convention: the velocity `gmm.linear_flow_velocity` at t = sigma, turned into
    s = -(x + (1 - t) v) / t (`LinearInterpolant.score_from_velocity`), so the field view, the error
    map, the score error and the samplers read it exactly as they read a velocity net."""

    def score(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        sig = sig.expand(x.shape[0]) if sig.numel() == 1 else sig
        velocity = torch.empty(x.shape, dtype=torch.float64)
        x64 = x.detach().to("cpu", torch.float64)
        for value in torch.unique(sig):  # one t per sampler step or field view: few distinct values
            rows = sig == value
            velocity[rows] = linear_flow_velocity(data, source, x64[rows], float(value))
        return process.score_from_velocity(x64, sig, velocity).to(x)

    return score


@dataclass(frozen=True)
class Reference:
    """What a run is checked against: `score` (None where no truth is exact), its kind
    ("analytic", "empirical" or "none") and, when there is none, the one line that says why."""

    score: ScoreFn | None
    kind: str
    note: str = ""


def run_reference(dataset: Dataset, standardizer: Standardizer, process: Process, source: Dataset | None = None,
                  coupling: str = "independent") -> Reference:
    """The reference of a run: none, with why, for a minibatch-OT coupling (ot-fm, from a source or
    from N(0, I)): its flow has no closed form, and the independent pairs' flow is not it (an ot-fm
    net trained to its loss's floor reads a relative velocity error of 0.4-1.2 against that one);
    for a flow from a source distribution the exact field when both ends are Gaussian mixtures
    (`flow_reference_fn`), else none (nor has a flow between point clouds); for every other run
    `reference_score_fn`."""
    if coupling != "independent":
        return Reference(None, "none", "ot-fm pairs each batch by optimal transport, whose flow has no closed form")
    if source is None:
        score, kind = reference_score_fn(dataset, standardizer, kind=process)
        return Reference(score, kind)
    if dataset.gmm is None or source.gmm is None:
        which = ("neither end is" if dataset.gmm is None and source.gmm is None
                 else "the data is not" if dataset.gmm is None else "the source is not")
        return Reference(None, "none", f"a flow between two sets has an exact field only between Gaussian mixtures, "
                                       f"and {which} one")
    shift, scale = torch.tensor(standardizer.shift), float(standardizer.scale)
    return Reference(flow_reference_fn(dataset.gmm.transformed(shift, scale), source.gmm.transformed(shift, scale),
                                       process), "analytic")


def guided_reference_fn(dataset: Dataset, standardizer: Standardizer, c: int, guidance: float,
                        kind: Kind = "ve") -> ScoreFn:
    """The exact classifier-free-guided score of a labelled mixture's class c at scale `guidance`, in
    standardised coordinates, for the marginal of `kind` (see `reference_score_fn`). The guided
    score is linear in the two exact scores, so a mean coefficient rescales it as it does each.
    ValueError when the data is not a labelled mixture."""
    from .guidance import ExactGuided

    gmm = dataset.gmm
    if gmm is None or gmm.labels is None:
        raise ValueError("exact guided scores need a labelled Gaussian mixture")
    exact = ExactGuided(gmm.transformed(torch.tensor(standardizer.shift), float(standardizer.scale)), int(c),
                        float(guidance))
    process = _process(kind)
    return scaled_score(exact, process.coef_of_std) if _has_coef(process) else exact


def _one_sigma(sigma: torch.Tensor | float) -> float:
    """The one σ of a batch (MALA evaluates log q at a single level): a float."""
    values = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if values.numel() > 1 and not bool((values == values[0]).all()):
        raise ValueError("the analytic log-density is evaluated at one σ per call")
    return float(values[0])


def denoiser_fn(score: ScoreFn, process: Process) -> ScoreFn:
    """The exact denoiser E[x_0 | x_t] at marginal std sigma from an exact score (Tweedie; EDM's D)."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        std = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1).expand(x.shape[0])
        return process.x0_from_score(x, score(x, std), process.coef_of_std(std), std)

    return denoise


def velocity_fn(score: ScoreFn, process: Process) -> ScoreFn:
    """The exact velocity E[d x_t / dt | x_t] at marginal std sigma (flow matching's target for the
    linear path: E[z - x_0 | x_t]), from an exact score through the probability-flow drift."""

    def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        std = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1).expand(x.shape[0])
        drift, g = process.drift_diffusion(x, process.time_of_std(std))
        return drift - 0.5 * _column(g, x) ** 2 * score(x, std)

    return velocity


def target_fn(score: ScoreFn, output: Parameterisation) -> ScoreFn:
    """What a net of this parameterisation outputs at the truth (the noise, a velocity, EDM's F)."""
    return lambda x, sigma: output.from_score(score(x, sigma), x, torch.as_tensor(sigma, dtype=x.dtype).reshape(-1)
                                              .expand(x.shape[0]))

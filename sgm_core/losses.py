"""Training objectives. Each takes a score function s(x, sigma), a batch x of shape (N, D)
and a torch.Generator, and returns one loss value per sample (N,); the trainer averages.
Losses of other targets (velocity, noise, denoiser) ask the process for that target of the score;
the net's parameterisation (`sgm_core.param`, named by the LossSpec) makes that target its raw output.

The names users see (CLI, GUI, registry keys): sm, ssm, ssm-vr, dsm, dsm-eps, ncsn, ve-sde, vp-sde,
fm, ot-fm, ddpm, edm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .config import LossConfig, ModelConfig, NoiseConfig, RunConfig
from .errors import ConfigError, DataError
from .lazy import lazy_module
from .noise import VESDE, VPSDE, CleanData, DDPMChain, EDMNoise, LinearInterpolant, Process, SigmaLadder, SingleSigma
from .param import SCORE, DenoiserOutput, EpsOutput, Parameterisation, VelocityOutput

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

if TYPE_CHECKING:
    from .datasets import Dataset, Standardizer
    from .nets import ScoreNet

ScoreFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
LossFn = Callable[[ScoreFn, "torch.Tensor", "torch.Generator"], "torch.Tensor"]


def _full(x: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)


def _randn(shape, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise drawn on the generator's device, then moved to x's device (CPU generator, GPU data)."""
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)


def _rand(n: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)


def sm_loss(score_fn: ScoreFn, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Hyvarinen (2005) score matching: 1/2 |s(x)|^2 + tr(d s / d x), the trace exact by D backprops.

    Equals the Fisher divergence to the data up to a constant; exact and cheap for D <= 3.
    """
    x = x.detach().requires_grad_(True)
    s = score_fn(x, _full(x, sigma))
    trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for d in range(x.shape[1]):
        (grad_d,) = torch.autograd.grad(s[:, d].sum(), x, create_graph=True)
        trace = trace + grad_d[:, d]
    return 0.5 * (s**2).sum(1) + trace


def projections(n: int, shape: tuple[int, int], kind: str, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """n random directions per sample, (n, N, D), with E[v v^T] = I (Gaussian or Rademacher)."""
    v = _randn((n, *shape), like, generator)
    if kind == "rademacher":
        return torch.sign(v) + (v == 0)  # sign of a Gaussian is Rademacher; 0 has probability 0
    if kind == "gaussian":
        return v
    raise ConfigError(f"projection must be 'gaussian' or 'rademacher', not {kind!r}")


def ssm_loss(
    score_fn: ScoreFn,
    x: torch.Tensor,
    sigma: float,
    generator: torch.Generator,
    n_projections: int = 1,
    projection: str = "rademacher",
    variance_reduced: bool = False,
) -> torch.Tensor:
    """Sliced score matching (Song et al. 2019): v^T (ds/dx) v + 1/2 (v^T s)^2, averaged over v.

    v^T J v comes from one vector-Jacobian product per projection. The variance-reduced form
    (SSM-VR) replaces 1/2 (v^T s)^2 by its expectation 1/2 |s|^2.
    """
    x = x.detach().requires_grad_(True)
    s = score_fn(x, _full(x, sigma))
    vs = projections(n_projections, tuple(x.shape), projection, x, generator)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for v in vs:
        (vjp,) = torch.autograd.grad((s * v).sum(), x, create_graph=True)  # v^T J per sample
        total = total + (vjp * v).sum(1)
        if not variance_reduced:
            total = total + 0.5 * ((s * v).sum(1)) ** 2
    total = total / n_projections
    return total + 0.5 * (s**2).sum(1) if variance_reduced else total


def dsm_loss(score_fn: ScoreFn, x: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator,
             weight_power: float = 0.0) -> torch.Tensor:
    """Denoising score matching (Vincent 2011): 1/2 sigma^p |s(x~, sigma) - grad log q(x~|x)|^2.

    x~ = x + sigma z, so grad log q(x~|x) = -z / sigma. p = 0 is the lecture's score form;
    p = 2 is lambda(sigma) = sigma^2 (NCSN), the same as predicting the noise:
    |sigma s + z|^2 = |eps_hat - z|^2 with eps_hat = -sigma s.
    """
    sig = sigma if torch.is_tensor(sigma) else _full(x, sigma)
    z = _randn(x.shape, x, generator)
    x_noisy = x + sig[:, None] * z
    s = score_fn(x_noisy, sig)
    return 0.5 * sig ** weight_power * ((s + z / sig[:, None]) ** 2).sum(1)


def dsm_eps_loss(score_fn: ScoreFn, x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Noise prediction (Ho et al. 2020): 1/2 |eps_hat(x~) - z|^2 with eps_hat = -sigma s(x~, sigma)."""
    return dsm_loss(score_fn, x, sigma, generator, weight_power=2.0)


def ncsn_loss(score_fn: ScoreFn, x: torch.Tensor, ladder: SigmaLadder, generator: torch.Generator) -> torch.Tensor:
    """Multi-noise DSM (NCSN): a ladder level drawn uniformly per sample, lambda(sigma) = sigma^2."""
    return dsm_loss(score_fn, x, ladder.sample_t(x.shape[0], x, generator), generator, weight_power=2.0)


def sde_loss(score_fn: ScoreFn, x: torch.Tensor, sde: Process, generator: torch.Generator) -> torch.Tensor:
    """Continuous-time DSM (Song et al. 2021): t ~ U(eps, 1), x_t = a(t) x + s(t) z,
    loss 1/2 |s(t) s_theta(x_t, s(t)) + z|^2 (lambda = s(t)^2)."""
    t = sde.sample_t(x.shape[0], x, generator)
    coef, std = sde.marginal(t)
    z = _randn(x.shape, x, generator)
    s = score_fn(coef[:, None] * x + std[:, None] * z, std)
    return 0.5 * ((std[:, None] * s + z) ** 2).sum(1)


def fm_loss(score_fn: ScoreFn, x: torch.Tensor, path: Process, generator: torch.Generator,
            noise: torch.Tensor | None = None) -> torch.Tensor:
    """Conditional flow matching (Lipman et al. 2023, sigma_min = 0; Liu et al. 2023's rectified
    flow): x_t = (1 - t) x_0 + t z, t ~ U(eps, T), loss |v_hat(x_t, t) - (z - x_0)|^2. Data sit at
    t = 0 and noise at t = 1 here, so the paper's x_1 - x_0 (noise to data) is z - x_0 read backwards.
    `noise` pairs each row with given z (the OT coupling) instead of fresh draws."""
    t = path.sample_t(x.shape[0], x, generator)
    z = path.prior_sample(x.shape[0], x.shape[1], generator).to(x) if noise is None else noise
    x_t = path.perturb(x, t, z)
    return ((path.velocity_from_score(score_fn, x_t, t) - (z - x)) ** 2).sum(1)


OT_MAX_ITER = 10_000_000  # network-simplex pivots; POT's 100,000 stops short of optimal at batch 128 in 3D (seen)


def ot_pairing(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """z reordered by the exact optimal-transport plan between the two uniform point sets under
    squared Euclidean cost (POT's network-simplex EMD): for equal sizes the plan is a permutation
    (Tong et al. 2024, minibatch OT)."""
    import ot

    cost = torch.cdist(x.detach().double(), z.detach().double()).pow(2).cpu().numpy()
    n = len(x)
    plan = ot.emd(ot.unif(n), ot.unif(n), cost, numItermax=OT_MAX_ITER)
    return z[torch.as_tensor(plan.argmax(1), device=z.device)]


def ot_fm_loss(score_fn: ScoreFn, x: torch.Tensor, path: Process, generator: torch.Generator) -> torch.Tensor:
    """OT-CFM (Tong et al. 2024, sigma = 0): flow matching with each data point paired with the noise
    draw the minibatch's exact OT plan gives it, so the paths cross less and are straighter."""
    z = path.prior_sample(x.shape[0], x.shape[1], generator).to(x)
    return fm_loss(score_fn, x, path, generator, noise=ot_pairing(x, z))


def ddpm_loss(score_fn: ScoreFn, x: torch.Tensor, chain: DDPMChain, generator: torch.Generator) -> torch.Tensor:
    """DDPM's L_simple (Ho et al. 2020, eq. 14): i ~ U{1..T}, x_i = sqrt(a_i) x_0 + sqrt(1 - a_i) eps,
    loss |eps_hat(x_i, i) - eps|^2 with eps_hat = -std s (the net sees the std of step i)."""
    t = chain.sample_t(x.shape[0], x, generator)
    eps = _randn(x.shape, x, generator)
    _, std = chain.marginal(t)
    x_t = chain.perturb(x, t, eps)
    return ((chain.eps_from_score(score_fn(x_t, std), std) - eps) ** 2).sum(1)


def edm_loss(score_fn: ScoreFn, x: torch.Tensor, edm: EDMNoise, generator: torch.Generator) -> torch.Tensor:
    """EDM's loss (Karras et al. 2022, eq. 8 and Table 1): ln sigma ~ N(P_mean, P_std^2),
    lambda(sigma) |D(x + sigma n, sigma) - x|^2 with lambda = (sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2,
    so the preconditioned net's own target has unit weight at every sigma."""
    sigma = edm.sample_t(x.shape[0], x, generator)
    x_noisy = edm.perturb(x, sigma, _randn(x.shape, x, generator))
    ones = torch.ones_like(sigma)
    denoised = edm.x0_from_score(x_noisy, score_fn(x_noisy, sigma), ones, sigma)
    weight = (sigma**2 + edm.sigma_data**2) / (sigma * edm.sigma_data) ** 2
    return weight * ((denoised - x) ** 2).sum(1)


Binder = Callable[[LossConfig, "Process"], LossFn]


@dataclass(frozen=True)
class LossSpec:
    """What the GUI and CLI need to know about a loss: its noising process and how to bind it."""

    name: str
    title: str
    description: str
    process_type: type[Process]  # the noising process; built from a NoiseConfig by its from_noise
    bind: Binder  # (loss settings, process) -> fn(score_fn, x, generator) -> (N,) losses
    default_sampler: str
    output: Callable[[Process], Parameterisation] = lambda process: SCORE  # what the net's raw output means
    # How x_0 and the noise end are paired: "independent" draws, or "ot" (minibatch optimal transport,
    # Tong et al. 2024), whose learned field has no closed form (the window's truth says so).
    coupling: str = "independent"

    @property
    def noise(self) -> str:
        """Which noise settings apply: the process's kind ("none" | "single" | "ladder" | "ve" | "vp" ...)."""
        return self.process_type.kind

    @property
    def conditional(self) -> bool:
        """Does the net see sigma? (sm/ssm fit the clean data score: no)"""
        return self.process_type.conditional

    def process(self, noise: NoiseConfig) -> Process:
        return self.process_type.from_noise(noise)

    def parameterisation(self, noise: NoiseConfig) -> Parameterisation:
        return self.output(self.process(noise))

    def make_model(self, dim: int, model: ModelConfig, noise: NoiseConfig) -> ScoreNet:
        """The net this loss trains: sigma-conditional or not, its raw output in the loss's own
        parameterisation; called as a score function like every other."""
        from .nets import make_model  # torch.nn at import: only where a net is built

        return make_model(dim, model, self.conditional, self.parameterisation(noise))


def _sm(loss: LossConfig, p: Process) -> LossFn:
    return lambda f, x, g: sm_loss(f, x, p.sigma_min)


def _ssm(variance_reduced: bool) -> Binder:
    def bind(loss: LossConfig, p: Process) -> LossFn:
        return lambda f, x, g: ssm_loss(f, x, p.sigma_min, g, loss.n_projections, loss.projection, variance_reduced)
    return bind


def _dsm(weight_power: float) -> Binder:
    return lambda loss, p: (lambda f, x, g: dsm_loss(f, x, p.level, g, weight_power))


LOSSES = MappingProxyType({
    "sm": LossSpec("sm", "Score matching (exact)", "Hyvärinen: ½|s|² + tr ∇s, trace by D backprops", CleanData, _sm,
                   "langevin"),
    "ssm": LossSpec("ssm", "Sliced score matching", "random projections vᵀ∇s v + ½(vᵀs)²", CleanData, _ssm(False),
                    "langevin"),
    "ssm-vr": LossSpec("ssm-vr", "Sliced SM, variance-reduced", "vᵀ∇s v + ½|s|²", CleanData, _ssm(True), "langevin"),
    "dsm": LossSpec("dsm", "Denoising SM (score form)", "½|s(x+σz) + z/σ|² at one σ", SingleSigma, _dsm(0.0),
                    "langevin"),
    "dsm-eps": LossSpec("dsm-eps", "Denoising SM (noise prediction)", "½|ε̂(x+σz) − z|² at one σ", SingleSigma,
                        _dsm(2.0), "langevin"),
    "ncsn": LossSpec("ncsn", "NCSN: multi-noise DSM", "geometric σ ladder, λ(σ)=σ²", SigmaLadder,
                     lambda loss, p: (lambda f, x, g: ncsn_loss(f, x, p, g)), "annealed"),
    "ve-sde": LossSpec("ve-sde", "VE SDE (continuous DSM)", "σ(t)=σmin(σmax/σmin)^t, t~U(0,1)", VESDE,
                       lambda loss, p: (lambda f, x, g: sde_loss(f, x, p, g)), "sde"),
    "vp-sde": LossSpec("vp-sde", "VP SDE (continuous DSM)", "β(t) linear, x_t = α(t)x + s(t)z", VPSDE,
                       lambda loss, p: (lambda f, x, g: sde_loss(f, x, p, g)), "sde"),
    "fm": LossSpec("fm", "Flow matching", "x_t=(1−t)x+tz, net predicts v, target z−x", LinearInterpolant,
                   lambda loss, p: (lambda f, x, g: fm_loss(f, x, p, g)), "heun", VelocityOutput),
    "ot-fm": LossSpec("ot-fm", "OT flow matching", "flow matching, minibatch OT pairs (exact EMD)", LinearInterpolant,
                      lambda loss, p: (lambda f, x, g: ot_fm_loss(f, x, p, g)), "heun", VelocityOutput, "ot"),
    "ddpm": LossSpec("ddpm", "DDPM (noise prediction)", "T steps, net predicts ε, |ε̂ − ε|²", DDPMChain,
                     lambda loss, p: (lambda f, x, g: ddpm_loss(f, x, p, g)), "ddpm", lambda p: EpsOutput()),
    "edm": LossSpec("edm", "EDM (preconditioned denoiser)", "log-normal σ, D = c_skip x + c_out F, λ = 1/c_out²",
                    EDMNoise, lambda loss, p: (lambda f, x, g: edm_loss(f, x, p, g)), "heun",
                    lambda p: DenoiserOutput(p, p.sigma_data)),
})


def loss_spec(name: str) -> LossSpec:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def field_output(config: RunConfig, process: Process | None = None) -> Parameterisation:
    """What a run's field view draws, for the window and for exported animations alike: the net's
    own output (a flow −v, EDM's denoiser displacement: `param.field`) for a σ-conditional score net,
    else the score (energy nets, sm / ssm). Its `.shows` names it. `process` is the run's bound one
    (a flow from a source: `bound_process`); by default the one its noise settings describe."""
    spec = loss_spec(config.loss.name)
    if config.model.kind == "energy" or not spec.conditional:
        return SCORE
    return spec.output(process if process is not None else spec.process(config.noise))


def field_shows(config: RunConfig) -> str:
    """The field's name for legends and labels, e.g. "flow −v_θ(x, t) (toward the data)"."""
    return field_output(config).shows


def make_loss(loss: LossConfig, noise: NoiseConfig, process: Process | None = None) -> LossFn:
    """Bind a loss's hyperparameters and its process (by default the one `noise` describes; a run's
    `bound_process` for a flow from a source): returns fn(score_fn, x, generator) -> (N,) losses."""
    spec = loss_spec(loss.name)
    if loss.n_projections < 1:
        raise ConfigError("n_projections must be at least 1")
    return spec.bind(loss, process if process is not None else spec.process(noise))


DRAWN_SOURCE = "drawn"  # LossConfig.source of a flow whose source was drawn in the window (its points go with its session)


def run_source(config: RunConfig, dim: int, source: Dataset | None = None) -> Dataset | None:
    """A run's source distribution: `source` when given (the window's preset, file or drawing),
    else LossConfig.source loaded (`datasets.source_dataset`), else None (the Gaussian prior);
    checked against the data's dimension and the loss (only a transporting path takes one)."""
    if source is None and not config.loss.source:
        return None
    if not loss_spec(config.loss.name).process_type.transports:
        raise ConfigError(f"a source distribution needs --loss fm or ot-fm; {config.loss.name} starts from Gaussian noise")
    if source is None:
        if config.loss.source == DRAWN_SOURCE:
            raise ConfigError("this run's source was drawn in the window and is kept only in its session (.sgm)")
        from .datasets import source_dataset

        return source_dataset(config.loss.source, dim, seed=config.train.seed)
    if source.dim != dim:
        raise DataError(f"the source is {source.dim}D but the data is {dim}D; a flow needs both alike")
    return source


def bound_process(config: RunConfig, standardizer: Standardizer, dim: int, source: Dataset | None = None) -> Process:
    """A run's noising process, with a flow's source distribution (`run_source`) put in the data's
    standardised coordinates, where the net lives. The one place training and every sampler of
    the run get it from, so both see the same source."""
    process = loss_spec(config.loss.name).process(config.noise)
    source = run_source(config, dim, source)
    if source is None:
        return process
    from dataclasses import replace

    return replace(process, source=torch.as_tensor(standardizer.forward(source.points), dtype=torch.float32))

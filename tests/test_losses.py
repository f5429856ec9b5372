"""Every registered loss is minimised by the true score of its own noise model.

The model is s_theta(x, sigma) = s_true(x, sigma) + a x + b with theta = (a, b) at 0 (for a net
that outputs a velocity, the noise or a denoiser: that output of the truth + a x + b), so the
gradient of the expected loss in theta must vanish there (first-order optimality), and must not
vanish at a perturbed theta. Per-sample gradients (one copy of theta per row, all equal) give the
Monte-Carlo standard error that sets the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch

from sgm_core.config import LossConfig, NoiseConfig
from sgm_core.errors import ConfigError
from sgm_core.gmm import GaussianMixture
from sgm_core.losses import LOSSES, loss_spec, make_loss, ot_pairing, sm_loss
from sgm_core.noise import LinearInterpolant
from sgm_core.param import SCORE, VelocityOutput
from sgm_core.truth import scaled_score, velocity_fn

DIMS = (2, 3)
N_GRAD = 20_000  # samples per gradient estimate: standard errors ~1% of a unit-size effect
N_SE_ZERO = 4.5  # |grad| at the truth stays within 4.5 standard errors (false alarm ~1e-5 per entry)
N_SE_SIGNAL = 20.0  # at the perturbed theta the largest entry must stand > 20 standard errors out
PERTURBATION = 1.0  # theta = (a, b) = (1, 1...): a clearly wrong score (the truth is theta = 0)
FLOAT64_TOL = 1e-9  # two float64 routes to one closed form differ by round-off only

TrueScore = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors: thread hand-offs cost more than they save (several times slower on a busy
    2-core machine), so this module runs single-threaded and restores the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_mixture(dim: int) -> GaussianMixture:
    """Three anisotropic components in standardised units (what the trainer feeds the losses)."""
    g = torch.Generator().manual_seed(100 + dim)
    means = 1.2 * torch.randn(3, dim, generator=g, dtype=torch.float64)
    a = 0.3 * torch.randn(3, dim, dim, generator=g, dtype=torch.float64)
    covs = a @ a.transpose(1, 2) + 0.04 * torch.eye(dim, dtype=torch.float64)
    return GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), means, covs)


test_mixture.__test__ = False  # a helper, not a test


def marginal_score(gmm: GaussianMixture, x: torch.Tensor, coef: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Score of the law of coef * x0 + std * z, x0 ~ gmm, per sample: the mixture of
    N(coef mu_k, coef^2 Sigma_k + std^2 I). Vectorised over rows (each row its own coef, std)."""
    eye = torch.eye(gmm.dim, dtype=torch.float64)
    coef, std = coef.double().reshape(-1, 1, 1, 1), std.double().reshape(-1, 1, 1, 1)
    cov = coef**2 * gmm.covs[None] + std**2 * eye  # (N, K, D, D)
    diff = x.double()[:, None, :] - coef[..., 0] * gmm.means[None]  # (N, K, D)
    prec_diff = torch.linalg.solve(cov, diff[..., None])[..., 0]
    log_comp = gmm.weights.log() - 0.5 * torch.linalg.slogdet(cov)[1] - 0.5 * (diff * prec_diff).sum(-1)
    resp = torch.softmax(log_comp, dim=1)
    return -(resp[..., None] * prec_diff).sum(1).to(x)


def true_score_for(name: str, gmm: GaussianMixture) -> TrueScore:
    """The score each loss is consistent with, as a function of (x, the sigma the loss passes)."""
    noise = loss_spec(name).noise
    if noise == "none":  # sm / ssm / ssm-vr: the clean data score; the nominal sigma is ignored
        return lambda x, sigma: gmm.score(x, 0.0)
    if noise in ("single", "ladder"):  # q_sigma at each sample's own sigma
        return lambda x, sigma: gmm.score(x, sigma)
    # a Gaussian path x_t = coef x0 + std z: VE and EDM (coef 1), VP and DDPM (coef^2 + std^2 = 1), linear (1 - std)
    process = loss_spec(name).process(NoiseConfig())
    return lambda x, sigma: marginal_score(gmm, x, process.coef_of_std(sigma).to(x), sigma)


@pytest.mark.parametrize("dim", DIMS)
def test_marginal_score_helper_matches_gmm(dim: int) -> None:
    """The helper's two special cases: VE is gmm.perturbed, VP at one time is a rescaled mixture."""
    gmm = test_mixture(dim)
    x = torch.randn(50, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    std = torch.full((50,), 0.4, dtype=torch.float64)
    got = marginal_score(gmm, x, torch.ones(50, dtype=torch.float64), std)
    torch.testing.assert_close(got, gmm.score(x, 0.4), rtol=FLOAT64_TOL, atol=FLOAT64_TOL)
    coef = 0.6
    scaled = gmm.transformed(torch.zeros(dim), 1 / coef)  # means * coef, covs * coef^2
    got = marginal_score(gmm, x, torch.full((50,), coef, dtype=torch.float64), std)
    torch.testing.assert_close(got, scaled.score(x, 0.4), rtol=FLOAT64_TOL, atol=FLOAT64_TOL)


def per_sample_theta_grads(name: str, dim: int, theta: float, seed: int,
                           noise: NoiseConfig | None = None) -> torch.Tensor:
    """Per-sample d loss_i / d(a, b) at a = theta, b = theta * 1: rows (N, 1 + D).

    Each row owns a copy of (a, b); since loss_i only sees row i, the gradient of the summed loss
    in the copies is the per-sample gradient, and its mean is the gradient of the mean loss.
    """
    gmm = test_mixture(dim)
    x = gmm.sample(N_GRAD, torch.Generator().manual_seed(seed)).double()
    a = torch.full((N_GRAD, 1), theta, dtype=torch.float64, requires_grad=True)
    b = torch.full((N_GRAD, dim), theta, dtype=torch.float64, requires_grad=True)
    truth = true_score_for(name, gmm)
    spec = loss_spec(name)
    noise = noise or NoiseConfig()
    output = spec.parameterisation(noise)

    def score_fn(xx: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if output is SCORE or not spec.conditional:
            return truth(xx, sigma) + a * xx + b
        # the net's own output (velocity, noise, preconditioned denoiser) is what is perturbed
        return output.to_score(output.from_score(truth(xx, sigma), xx, sigma) + a * xx + b, xx, sigma)

    loss_fn = make_loss(LossConfig(name=name), noise)
    losses = loss_fn(score_fn, x, torch.Generator().manual_seed(seed + 1))
    assert losses.shape == (N_GRAD,)
    grad_a, grad_b = torch.autograd.grad(losses.sum(), (a, b))
    return torch.cat([grad_a, grad_b], dim=1)


def z_scores(rows: torch.Tensor) -> torch.Tensor:
    """Mean gradient in units of its standard error, per entry of theta."""
    return rows.mean(0) / (rows.std(0) / math.sqrt(len(rows)))


# ot-fm's pairs are coupled by OT, so its minimiser is not the mixture path's field (tested below)
PATH_LOSSES = [name for name in LOSSES if name != "ot-fm"]


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name", PATH_LOSSES)
def test_true_score_is_a_stationary_point_of_the_loss(name: str, dim: int) -> None:
    at_truth = z_scores(per_sample_theta_grads(name, dim, 0.0, seed=7 * dim))
    perturbed = z_scores(per_sample_theta_grads(name, dim, PERTURBATION, seed=7 * dim))
    assert at_truth.abs().max() < N_SE_ZERO, f"gradient at the true score is {at_truth.tolist()} standard errors"
    assert perturbed.abs().max() > N_SE_SIGNAL, f"perturbed gradient only {perturbed.tolist()} standard errors"


@pytest.mark.parametrize("dim", DIMS)
def test_flow_matching_with_logit_normal_times_still_has_the_true_velocity_at_its_minimum(dim: int) -> None:
    """Reweighting t (Esser et al. 2024) changes how much each time counts, not which field is
    best at each t: the mixture path's exact velocity is still where the gradient vanishes."""
    noise = NoiseConfig(t_sampling="logit-normal")
    at_truth = z_scores(per_sample_theta_grads("fm", dim, 0.0, seed=11 * dim, noise=noise))
    perturbed = z_scores(per_sample_theta_grads("fm", dim, PERTURBATION, seed=11 * dim, noise=noise))
    assert at_truth.abs().max() < N_SE_ZERO, f"gradient at the true velocity is {at_truth.tolist()} standard errors"
    assert perturbed.abs().max() > N_SE_SIGNAL, f"perturbed gradient only {perturbed.tolist()} standard errors"


def test_logit_normal_times_are_a_standard_normal_through_the_logit() -> None:
    """t = eps + (T - eps) sigmoid(z), z ~ N(0, 1): logit of the rescaled t has mean 0 and std 1,
    half of the draws fall in the middle (sigmoid(+-0.674)), against 27 % for uniform t."""
    like, n = torch.zeros(1, dtype=torch.float64), 200_000
    ln = LinearInterpolant(t_sampling="logit-normal")
    t = ln.sample_t(n, like, torch.Generator().manual_seed(0))
    assert ((t > ln.eps) & (t < ln.T)).all()
    z = torch.logit((t - ln.eps) / (ln.T - ln.eps))
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    lo, hi = ln.eps + (ln.T - ln.eps) * torch.sigmoid(torch.tensor([-0.6745, 0.6745], dtype=torch.float64))
    uniform = LinearInterpolant().sample_t(n, like, torch.Generator().manual_seed(0))
    middle = [float(((s > lo) & (s < hi)).double().mean()) for s in (t, uniform)]
    assert middle[0] == pytest.approx(0.5, abs=0.01) and middle[1] == pytest.approx(float(hi - lo) / (ln.T - ln.eps), abs=0.01)
    assert LinearInterpolant.from_noise(NoiseConfig(t_sampling="logit-normal")).t_sampling == "logit-normal"


class RandomField(torch.nn.Module):
    """A smooth, non-conservative field with nothing to do with the data (a random tanh MLP)."""

    def __init__(self, dim: int, seed: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = 0.8 * torch.randn(dim, 32, generator=g, dtype=dtype)
        self.w2 = 0.5 * torch.randn(32, dim, generator=g, dtype=dtype)
        self.c = torch.randn(32, generator=g, dtype=dtype)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w1 + self.c) @ self.w2 - 0.3 * x


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("variant", ["ssm-gaussian", "ssm-rademacher", "ssm-vr-gaussian", "ssm-vr-rademacher"])
def test_sliced_score_matching_is_exact_score_matching_in_expectation(variant: str, dim: int) -> None:
    """E_v[v^T J v + (v^T s)^2 / 2] = tr J + |s|^2 / 2 when E[v v^T] = I (Song et al. 2019, Eq. 7),
    so per point the sliced loss is an unbiased estimate of the exact one."""
    name, projection = variant.rsplit("-", 1)
    field = RandomField(dim, seed=dim)
    n = 20_000
    x = test_mixture(dim).sample(n, torch.Generator().manual_seed(1)).double()
    exact = sm_loss(field, x, 0.01).detach()
    exact_via_registry = make_loss(LossConfig("sm"), NoiseConfig())(field, x, torch.Generator()).detach()
    torch.testing.assert_close(exact_via_registry, exact, rtol=0, atol=0)
    sliced_fn = make_loss(LossConfig(name, n_projections=2, projection=projection), NoiseConfig())
    sliced = sliced_fn(field, x, torch.Generator().manual_seed(2)).detach()
    diff = sliced - exact  # paired: only the projection noise remains
    z = diff.mean() / (diff.std() / math.sqrt(n))
    assert abs(float(z)) < N_SE_ZERO, f"sliced - exact = {float(diff.mean()):.4g} ({float(z):.2f} standard errors)"
    assert float(exact.std()) > 0.1  # the field is far from constant: the comparison has content


def test_exact_score_matching_trace_against_finite_differences() -> None:
    """sm_loss = |s|^2 / 2 + tr(ds/dx): the trace checked by central differences on the random field."""
    field = RandomField(3, seed=5)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    h = 1e-5
    trace = torch.zeros(40, dtype=torch.float64)
    for d in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[d] = h
        trace += (field(x + e, None)[:, d] - field(x - e, None)[:, d]) / (2 * h)
    expected = 0.5 * (field(x, None) ** 2).sum(1) + trace
    torch.testing.assert_close(sm_loss(field, x, 0.01).detach(), expected, rtol=1e-7, atol=1e-7)  # O(h^2) error


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_is_per_sample_reproducible_and_follows_dtype(name: str, dtype: torch.dtype) -> None:
    gmm = test_mixture(2)
    x = gmm.sample(64, torch.Generator().manual_seed(0)).to(dtype)
    field = RandomField(2, seed=0, dtype=dtype)
    fn = make_loss(LossConfig(name), NoiseConfig())
    first = fn(field, x, torch.Generator().manual_seed(3))
    again = fn(field, x, torch.Generator().manual_seed(3))
    other = fn(field, x, torch.Generator().manual_seed(4))
    assert first.shape == (64,) and first.dtype == dtype and torch.isfinite(first).all()
    assert torch.equal(first, again)
    if name != "sm":  # exact score matching alone draws no noise
        assert not torch.equal(first, other)


def test_unknown_names_and_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown loss"):
        make_loss(LossConfig("nope"), NoiseConfig())
    with pytest.raises(ConfigError, match="n_projections"):
        make_loss(LossConfig("ssm", n_projections=0), NoiseConfig())
    with pytest.raises(ConfigError, match="projection"):  # refused when the config is made, before any training
        LossConfig("ssm", projection="uniform")


def test_registry_specs_are_consistent() -> None:
    for name, spec in LOSSES.items():
        assert spec.name == name
        assert spec.conditional == (spec.noise != "none")
        assert spec.noise in ("none", "single", "ladder", "ve", "vp", "linear", "ddpm", "edm")


def test_ot_pairing_is_the_exact_optimal_permutation() -> None:
    """Uniform point sets of equal size: the EMD plan is a permutation whose cost is POT's optimum
    and no larger than the identity's or a random one's."""
    import ot

    g = torch.Generator().manual_seed(40)
    x, z = torch.randn(200, 2, generator=g, dtype=torch.float64), torch.randn(200, 2, generator=g, dtype=torch.float64)
    paired = ot_pairing(x, z)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, z.tolist()))  # a permutation of z
    cost = float(((x - paired) ** 2).sum(1).mean())
    optimum = float(ot.emd2(ot.unif(200), ot.unif(200), torch.cdist(x, z).pow(2).numpy()))
    assert cost == pytest.approx(optimum, rel=1e-9)
    assert cost < float(((x - z) ** 2).sum(1).mean())
    assert cost < float(((x - z[torch.randperm(200, generator=g)]) ** 2).sum(1).mean())


def test_ot_fm_targets_the_ot_maps_velocity_and_fm_the_mixture_paths() -> None:
    """Data N(m, s^2 I) to noise N(0, I): the OT map is z = (x0 - m) / s, so along
    x_t = (1 - t) x0 + t z the OT velocity is affine in x_t. ot-fm's loss is lower at that field than
    at the independent-coupling field (fm's truth), and fm's loss the other way round."""
    m, s = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5
    gmm = GaussianMixture.isotropic([1.0], m[None], s)
    path = LinearInterpolant()
    out = VelocityOutput(path)

    def ot_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t[:, None]
        x0 = (x + t * m / s) / ((1 - t) + t / s)
        return (x0 - m) / s - x0

    independent = velocity_fn(scaled_score(gmm.score, path.coef_of_std), path)
    fields = {"ot": ot_velocity, "independent": independent}
    x = gmm.sample(1000, torch.Generator().manual_seed(41)).double()
    losses = {}
    for loss in ("fm", "ot-fm"):
        fn = make_loss(LossConfig(loss), NoiseConfig())
        for label, v in fields.items():
            score_fn = lambda xx, std, v=v: out.to_score(v(xx, std), xx, std)  # noqa: E731
            losses[loss, label] = float(fn(score_fn, x, torch.Generator().manual_seed(42)).mean())
    assert losses["ot-fm", "ot"] < 0.5 * losses["ot-fm", "independent"], losses
    assert losses["fm", "independent"] < losses["fm", "ot"], losses

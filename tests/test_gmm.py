"""GaussianMixture against independent truth: torch.distributions densities, autograd scores,
closed-form moments, and the change-of-variables rules behind `perturbed` and `transformed`."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from sgm_core.datasets import Standardizer
from sgm_core.gmm import GaussianMixture

DIMS = (2, 3)
SIGMAS = (0.0, 0.3)

FLOAT64_TOL = 1e-9  # two float64 evaluations of the same closed form: only round-off differs
FLOAT32_TOL = 1e-5  # float32 in/out: relative round-off of a cast from float64
N_SE = 4.5  # Monte-Carlo checks fail beyond 4.5 standard errors (false alarm ~1e-5 per check)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors: thread hand-offs cost more than they save (several times slower on a busy
    2-core machine), so this module runs single-threaded and restores the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_mixture(dim: int, seed: int, k: int = 3) -> GaussianMixture:
    """K components with full, anisotropic covariances A A^T + 0.05 I (not just sigma^2 I)."""
    g = torch.Generator().manual_seed(seed)
    means = 1.5 * torch.randn(k, dim, generator=g, dtype=torch.float64)
    a = 0.4 * torch.randn(k, dim, dim, generator=g, dtype=torch.float64)
    covs = a @ a.transpose(1, 2) + 0.05 * torch.eye(dim, dtype=torch.float64)
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    return GaussianMixture(weights / weights.sum(), means, covs)


def reference(gmm: GaussianMixture, sigma: float = 0.0) -> MixtureSameFamily:
    """The same density built from torch.distributions: independent of gmm.py's Cholesky code."""
    covs = gmm.covs + sigma**2 * torch.eye(gmm.dim, dtype=torch.float64)
    return MixtureSameFamily(Categorical(probs=gmm.weights), MultivariateNormal(gmm.means, covs))


def points(dim: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n, dim, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_log_prob_matches_torch_distributions(dim: int, sigma: float) -> None:
    gmm = random_mixture(dim, seed=dim)
    x = points(dim, 200, seed=1)
    expected = reference(gmm, sigma).log_prob(x)
    torch.testing.assert_close(gmm.log_prob(x, sigma), expected, rtol=FLOAT64_TOL, atol=FLOAT64_TOL)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_score_is_autograd_gradient_of_log_prob(dim: int, sigma: float) -> None:
    gmm = random_mixture(dim, seed=10 + dim)
    x = points(dim, 300, seed=2).requires_grad_(True)
    (grad,) = torch.autograd.grad(gmm.log_prob(x, sigma).sum(), x)
    torch.testing.assert_close(gmm.score(x.detach(), sigma), grad, rtol=FLOAT64_TOL, atol=FLOAT64_TOL)


def test_log_prob_integrates_to_one() -> None:
    """A 2D grid sum of exp(log q_sigma): the density is normalised at every noise level."""
    gmm = random_mixture(2, seed=3)
    ticks = torch.linspace(-12, 12, 601, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    cell = (ticks[1] - ticks[0]) ** 2
    for sigma in SIGMAS:
        mass = float(gmm.log_prob(grid, sigma).exp().sum() * cell)
        assert mass == pytest.approx(1.0, abs=1e-4)  # midpoint rule on a 0.04 grid of a smooth density


@pytest.mark.parametrize("dim", DIMS)
def test_perturbed_adds_sigma_squared_to_every_covariance(dim: int) -> None:
    gmm = random_mixture(dim, seed=4)
    q = gmm.perturbed(0.7)
    eye = torch.eye(dim, dtype=torch.float64)
    torch.testing.assert_close(q.covs, gmm.covs + 0.49 * eye, rtol=0, atol=FLOAT64_TOL)
    assert torch.equal(q.means, gmm.means) and torch.equal(q.weights, gmm.weights)
    x = points(dim, 50, seed=5)
    torch.testing.assert_close(gmm.log_prob(x, 0.7), q.log_prob(x), rtol=FLOAT64_TOL, atol=FLOAT64_TOL)
    torch.testing.assert_close(gmm.score(x, 0.7), q.score(x), rtol=FLOAT64_TOL, atol=FLOAT64_TOL)


@pytest.mark.parametrize("dim", DIMS)
def test_perturbed_is_the_law_of_noisy_samples(dim: int) -> None:
    """x0 + sigma z with x0 ~ p has the moments of q_sigma = perturbed(sigma)."""
    gmm = random_mixture(dim, seed=6)
    g = torch.Generator().manual_seed(7)
    n, sigma = 100_000, 0.8
    x0 = gmm.sample(n, g).double()
    noisy = x0 + sigma * torch.randn(n, dim, generator=g, dtype=torch.float64)
    _assert_moments(noisy, gmm.perturbed(sigma))


def mixture_moments(gmm: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    """E[x] = sum w mu, Cov[x] = sum w (Sigma + mu mu^T) - E[x] E[x]^T (law of total variance)."""
    w = gmm.weights
    mean = (w[:, None] * gmm.means).sum(0)
    second = (w[:, None, None] * (gmm.covs + gmm.means[:, :, None] * gmm.means[:, None, :])).sum(0)
    return mean, second - torch.outer(mean, mean)


def _assert_moments(x: torch.Tensor, gmm: GaussianMixture) -> None:
    """Sample mean and covariance agree with the closed form within N_SE empirical standard errors."""
    mean, cov = mixture_moments(gmm)
    n = len(x)
    centred = x - mean
    se_mean = centred.std(0) / math.sqrt(n)
    assert ((x.mean(0) - mean).abs() <= N_SE * se_mean).all()
    products = centred[:, :, None] * centred[:, None, :]  # unbiased per-sample estimates of cov
    se_cov = products.std(0) / math.sqrt(n)
    assert ((products.mean(0) - cov).abs() <= N_SE * se_cov).all()


@pytest.mark.parametrize("dim", DIMS)
def test_sample_mean_and_covariance_match(dim: int) -> None:
    gmm = random_mixture(dim, seed=8)
    x = gmm.sample(100_000, torch.Generator().manual_seed(9))
    assert x.shape == (100_000, dim) and x.dtype == torch.float32
    _assert_moments(x.double(), gmm)


def test_sample_is_reproducible_from_the_generator() -> None:
    gmm = random_mixture(2, seed=1)
    a = gmm.sample(500, torch.Generator().manual_seed(3))
    b = gmm.sample(500, torch.Generator().manual_seed(3))
    c = gmm.sample(500, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_hits_components_in_proportion_to_weights() -> None:
    """Far-apart components: the nearest-mean label is the drawn component."""
    means = torch.tensor([[-10.0, 0.0], [0.0, 10.0], [10.0, 0.0]])
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    gmm = GaussianMixture.isotropic(weights, means, 0.5)
    n = 50_000
    labels = gmm.responsibilities(gmm.sample(n, torch.Generator().manual_seed(0))).argmax(1)
    freq = torch.bincount(labels, minlength=3).double() / n
    se = torch.sqrt(weights * (1 - weights) / n)  # binomial standard error
    assert ((freq - weights).abs() <= N_SE * se).all()


@pytest.mark.parametrize("dim", DIMS)
def test_per_sample_sigma_equals_scalar_path(dim: int) -> None:
    gmm = random_mixture(dim, seed=11)
    n = 240
    x = points(dim, n, seed=12)
    levels = torch.tensor([0.0, 0.3, 1.7], dtype=torch.float64)
    which = torch.randint(3, (n,), generator=torch.Generator().manual_seed(13))
    sigma = levels[which]
    per_sample = gmm.score(x, sigma)
    for i, level in enumerate(levels.tolist()):
        rows = which == i
        torch.testing.assert_close(per_sample[rows], gmm.score(x[rows], level), rtol=0, atol=FLOAT64_TOL)
    # a column of sigmas (N, 1) and a one-element tensor take the same paths
    torch.testing.assert_close(gmm.score(x, sigma[:, None]), per_sample, rtol=0, atol=FLOAT64_TOL)
    torch.testing.assert_close(gmm.score(x, torch.tensor(0.3, dtype=torch.float64)), gmm.score(x, 0.3), rtol=0, atol=FLOAT64_TOL)


def test_score_follows_input_dtype() -> None:
    gmm = random_mixture(2, seed=14)
    x = points(2, 64, seed=15)
    s32 = gmm.score(x.float(), 0.3)
    assert s32.dtype == torch.float32
    torch.testing.assert_close(s32.double(), gmm.score(x, 0.3), rtol=FLOAT32_TOL, atol=FLOAT32_TOL)
    assert gmm.log_prob(x.float()).dtype == torch.float32


@pytest.mark.parametrize("dim", DIMS)
def test_transformed_is_the_law_of_standardised_points(dim: int) -> None:
    """y = (x - shift) / scale: log p_Y(y) = log p_X(x) + D log(scale), s_Y(y) = scale * s_X(x)."""
    gmm = random_mixture(dim, seed=16)
    g = torch.Generator().manual_seed(17)
    shift = torch.randn(dim, generator=g, dtype=torch.float64)
    scale = 2.5
    t = gmm.transformed(shift, scale)
    x = points(dim, 100, seed=18)
    y = (x - shift) / scale
    torch.testing.assert_close(t.log_prob(y), gmm.log_prob(x) + dim * math.log(scale), rtol=FLOAT64_TOL, atol=1e-8)
    torch.testing.assert_close(t.score(y), scale * gmm.score(x), rtol=FLOAT64_TOL, atol=1e-8)
    # noise added after standardising is sigma * scale in data units
    torch.testing.assert_close(t.score(y, 0.3), scale * gmm.score(x, 0.3 * scale), rtol=FLOAT64_TOL, atol=1e-8)
    torch.testing.assert_close(t.responsibilities(y), gmm.responsibilities(x), rtol=0, atol=FLOAT64_TOL)
    samples = gmm.sample(100_000, torch.Generator().manual_seed(19)).double()
    _assert_moments((samples - shift) / scale, t)


def test_transformed_agrees_with_the_standardizer() -> None:
    """Truth in training coordinates: the score mapped back by Standardizer.score_to_data is the data score."""
    gmm = random_mixture(2, seed=20)
    data = gmm.sample(5000, torch.Generator().manual_seed(21)).numpy()
    st = Standardizer.fit(data)
    t = gmm.transformed(torch.as_tensor(st.shift), st.scale)
    x = points(2, 100, seed=22)
    torch.testing.assert_close(st.score_to_data(t.score(st.forward(x))), gmm.score(x), rtol=1e-8, atol=1e-8)


def test_isotropic_normalises_weights_and_builds_spherical_covariances() -> None:
    gmm = GaussianMixture.isotropic([1.0, 3.0], [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], [0.5, 2.0])
    torch.testing.assert_close(gmm.weights, torch.tensor([0.25, 0.75], dtype=torch.float64))
    torch.testing.assert_close(gmm.covs[1], 4.0 * torch.eye(3, dtype=torch.float64))
    assert gmm.dim == 3 and gmm.n_components == 2


def test_responsibilities_are_a_posterior() -> None:
    gmm = random_mixture(3, seed=23)
    x = points(3, 100, seed=24)
    r = gmm.responsibilities(x)
    torch.testing.assert_close(r.sum(1), torch.ones(100, dtype=torch.float64), rtol=0, atol=FLOAT64_TOL)
    # Bayes' rule against the reference components
    comp = MultivariateNormal(gmm.means, gmm.covs).log_prob(x[:, None, :]) + gmm.weights.log()
    torch.testing.assert_close(r, torch.softmax(comp, 1), rtol=FLOAT64_TOL, atol=FLOAT64_TOL)


def test_a_pickled_mixture_keeps_its_labels_and_a_torch_free_copy_evaluates_once_torch_is_there():
    """A dataset crosses to the torch-free GUI process and back as numpy (GaussianMixture.__reduce__).
    The labels must travel with it (the exact guided truth needs them), and a mixture unpickled
    before torch was loaded (the GUI's copy, handed to an engine in the same process, as
    benchmarks/gui_fps.py does) must evaluate once torch is."""
    import pickle
    import subprocess
    import sys

    import cloudpickle  # as the engine process sends a dataset: its sampler is a closure

    from sgm_core.datasets import make_preset

    ds = make_preset("8gaussians-labelled", n_points=200)
    back = pickle.loads(pickle.dumps(ds.gmm))
    assert back.labels is not None and torch.equal(back.labels, ds.gmm.labels)
    script = (
        "import pickle, sys\n"
        "from sgm_core.datasets import make_preset\n"
        "ds = pickle.loads(sys.stdin.buffer.read())\n"
        "assert 'torch' not in sys.modules and ds.gmm.labels is not None\n"
        "import torch\n"
        "x = torch.zeros(3, 2, dtype=torch.float64)\n"
        "print(float(ds.gmm.transformed(torch.zeros(2), 2.0).score(x, 0.1).abs().sum()), list(ds.gmm.labels.tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], input=cloudpickle.dumps(ds), capture_output=True, check=True)
    total, labels = out.stdout.decode().split(" ", 1)
    want = ds.gmm.transformed(torch.zeros(2), 2.0).score(torch.zeros(3, 2, dtype=torch.float64), 0.1).abs().sum()
    assert abs(float(total) - float(want)) < 1e-9
    assert labels.strip() == str(ds.gmm.labels.tolist())

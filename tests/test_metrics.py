"""Sample metrics against closed forms: shifts of one set, the true score, exact mixture draws."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from sgm_core.gmm import GaussianMixture
from sgm_core.metrics import (
    ENERGY_MAX_POINTS,
    SW_PROJECTION_SEED,
    SWBaseline,
    energy_distance,
    median_bandwidth,
    mmd_rbf,
    mode_weight_error,
    mode_weights,
    relative_fisher_divergence,
    sliced_wasserstein,
)

DIMS = (2, 3)
N = 1000
MMD_NULL_TOL = 3e-3  # unbiased MMD^2 of two same-law draws at N=1000: |value| < 1e-3 over 20 seeds (measured)
MMD_SHIFT_MIN = 2e-2  # a unit shift gives MMD^2 ~ 0.08 (3D) to 0.13 (2D): far above the null
N_SE = 4.5  # Monte-Carlo checks fail beyond 4.5 standard errors
FLOAT64_TOL = 1e-9  # closed forms evaluated in float64


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors: thread hand-offs cost more than they save (several times slower on a busy
    2-core machine), so this module runs single-threaded and restores the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def draws(dim: int, seed: int, n: int = N) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def unit(dim: int) -> torch.Tensor:
    e = torch.arange(1, dim + 1, dtype=torch.float64)
    return e / e.norm()


@pytest.mark.parametrize("dim", DIMS)
def test_mmd_is_near_zero_for_one_law_and_clearly_positive_for_a_shift(dim: int) -> None:
    x, y = draws(dim, 0), draws(dim, 1)
    assert abs(mmd_rbf(x, y)) < MMD_NULL_TOL
    assert mmd_rbf(x, y + 1.0 * unit(dim)) > MMD_SHIFT_MIN
    assert mmd_rbf(x, y + 2.0 * unit(dim)) > mmd_rbf(x, y + 1.0 * unit(dim))  # grows with the shift


def test_mmd_matches_the_kernel_formula_on_a_tiny_set() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    h = 1.0

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))

    expected = k(x[0], x[1]) + k(y[0], y[1]) - 2 * sum(k(a, b) for a in x for b in y) / 4
    assert mmd_rbf(x, y, bandwidth=h) == pytest.approx(expected, abs=FLOAT64_TOL)
    assert median_bandwidth(x, y) > 0


@pytest.mark.parametrize("dim", DIMS)
def test_sliced_wasserstein_of_a_shift_is_its_projected_length(dim: int) -> None:
    """Shifting a set by m shifts every 1D projection by u.m, so SW2^2 = E_u[(u.m)^2] = |m|^2 / D
    for u uniform on the sphere."""
    x = draws(dim, 2, n=500)
    m = 1.7 * unit(dim)
    n_proj = 4096
    sw = sliced_wasserstein(x, x + m, torch.Generator().manual_seed(3), n_projections=n_proj)
    expected = float(m.norm()) / math.sqrt(dim)
    # s.e. of the mean of (u.e)^2 over n_proj directions: Var[(u.e)^2] = 2(D-1) / (D^2 (D+2));
    # SW is its square root, so the relative s.e. halves.
    rel_se = 0.5 * math.sqrt(2 * (dim - 1) / (dim**2 * (dim + 2)) / n_proj) * dim
    assert sw == pytest.approx(expected, rel=N_SE * rel_se)
    assert sliced_wasserstein(x, x, torch.Generator().manual_seed(3)) == pytest.approx(0.0, abs=FLOAT64_TOL)


def test_sliced_wasserstein_handles_unequal_sizes() -> None:
    x = draws(2, 4, n=3000)
    y = draws(2, 5, n=1000)
    same = sliced_wasserstein(x, y, torch.Generator().manual_seed(6))
    shifted = sliced_wasserstein(x, y + 1.0, torch.Generator().manual_seed(6))
    assert same < 0.1  # two draws of N(0, I): only sampling noise (~1/sqrt(1000))
    assert shifted == pytest.approx(math.sqrt(2) / math.sqrt(2), rel=0.15)  # |m| / sqrt(D), noisy sets


@pytest.mark.parametrize("dim", DIMS)
def test_energy_distance_is_nonnegative_and_zero_only_for_equal_sets(dim: int) -> None:
    x, y = draws(dim, 7, n=800), draws(dim, 8, n=600)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=FLOAT64_TOL)
    same_law = energy_distance(x, y)
    assert 0.0 <= same_law < 0.05  # a finite-sample distance of two draws of one law: O(1/N)
    shifted = energy_distance(x, y + unit(dim))
    assert shifted > 10 * same_law
    # Gaussian shift of small size delta: ED ~ 2 E|Z + delta| - 2 E|Z| grows like delta^2
    assert energy_distance(x, y + 2 * unit(dim)) > shifted


def test_energy_distance_subsamples_at_random_not_the_first_rows() -> None:
    """A set ordered by mode (all of A, then all of B) against a shuffled copy of itself: the same law,
    so a random subset scores ~0; the first max_points rows (all A) would score like a unit shift."""
    a, b = draws(2, 30, n=300), draws(2, 31, n=300) + 3 * unit(2)
    ordered = torch.cat([a, b])
    shuffled = ordered[torch.randperm(600, generator=torch.Generator().manual_seed(32))]
    full = energy_distance(ordered, shuffled)  # no subsampling: identical sets
    assert full == pytest.approx(0.0, abs=FLOAT64_TOL)
    sub = energy_distance(ordered, shuffled, torch.Generator().manual_seed(33), max_points=200)
    first_rows = energy_distance(ordered[:200], shuffled[:200])
    assert sub < 0.1 < first_rows  # only-A vs the mixture: ED ~ 1.5 here
    again = energy_distance(ordered, shuffled, torch.Generator().manual_seed(33), max_points=200)
    assert again == sub  # the generator decides the subset
    assert energy_distance(ordered, shuffled, max_points=200) == energy_distance(ordered, shuffled, max_points=200)


def test_energy_distance_keeps_every_point_up_to_its_limit() -> None:
    x, y = draws(2, 34, n=50), draws(2, 35, n=40)
    expected = 2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()
    assert energy_distance(x, y, torch.Generator().manual_seed(0)) == pytest.approx(float(expected), abs=FLOAT64_TOL)
    assert ENERGY_MAX_POINTS == 4000


@pytest.mark.parametrize("dim", DIMS)
def test_relative_fisher_divergence_is_zero_for_truth_and_one_for_zero(dim: int) -> None:
    gmm = GaussianMixture.isotropic([0.3, 0.7], torch.stack([-torch.ones(dim), torch.ones(dim)]), 0.4)
    x = gmm.sample(500, torch.Generator().manual_seed(9))
    for sigma in (0.0, 0.5):
        assert relative_fisher_divergence(gmm.score, gmm.score, x, sigma) == pytest.approx(0.0, abs=FLOAT64_TOL)
        zero = relative_fisher_divergence(lambda xx, s: torch.zeros_like(xx), gmm.score, x, sigma)
        assert zero == pytest.approx(1.0, abs=FLOAT64_TOL)
        half = relative_fisher_divergence(lambda xx, s: 0.5 * gmm.score(xx, s), gmm.score, x, sigma)
        assert half == pytest.approx(0.25, abs=1e-6)  # |s/2 - s|^2 / |s|^2; float32 points


@pytest.mark.parametrize("dim", DIMS)
def test_mode_weights_of_exact_draws(dim: int) -> None:
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    means = 4.0 * torch.eye(3, dim, dtype=torch.float64)
    gmm = GaussianMixture.isotropic(weights, means, 0.5)
    n = 20_000
    got, on_mode = mode_weights(gmm.sample(n, torch.Generator().manual_seed(10)), gmm)
    se = torch.sqrt(weights * (1 - weights) / n)  # binomial standard error
    assert ((got - weights).abs() <= N_SE * se).all()
    assert float(got.sum()) == pytest.approx(1.0)
    # |x - mu| / std is chi-distributed with D degrees of freedom: P(chi_D <= 3)
    p_in = 1 - math.exp(-4.5) if dim == 2 else math.erf(3 / math.sqrt(2)) - math.sqrt(2 / math.pi) * 3 * math.exp(-4.5)
    assert on_mode == pytest.approx(p_in, abs=N_SE * math.sqrt(p_in * (1 - p_in) / n))
    assert mode_weight_error(gmm.sample(n, torch.Generator().manual_seed(11)), gmm) < N_SE * float(se.max())


def test_mode_weights_of_collapsed_and_off_mode_samples() -> None:
    gmm = GaussianMixture.isotropic([0.5, 0.5], [[-3.0, 0.0], [3.0, 0.0]], 0.3)
    collapsed = torch.tensor([[3.0, 0.0]]).repeat(100, 1)
    weights, on_mode = mode_weights(collapsed, gmm)
    assert weights.tolist() == [0.0, 1.0] and on_mode == 1.0
    assert mode_weight_error(collapsed, gmm) == pytest.approx(0.5)
    far = torch.tensor([[0.0, 5.0]]).repeat(10, 1)  # between the modes, 5 std from both
    assert mode_weights(far, gmm)[1] == 0.0


def test_the_sw_ratio_of_the_same_particles_barely_moves_with_the_data_draws_behind_it():
    """One data-vs-data draw as the base let the same collapsed particles read 7.8x to 13.5x
    (8 Gaussians, 1,000 points); the mean of SW_BASE_DRAWS draws holds them within 1.5x of each
    other over ten seeds, and data drawn afresh reads ~1."""
    from sgm_core.datasets import _gmm_8gaussians

    gmm = _gmm_8gaussians()
    collapsed = 0.05 * torch.randn(N, 2, generator=torch.Generator().manual_seed(0))

    def ratios(draws: int) -> list[float]:
        return [SWBaseline(gmm.sample, N, seed=s, draws=draws).distance(collapsed)[1] for s in range(10)]

    one, mean = ratios(1), ratios(8)
    assert max(one) / min(one) > 1.5  # what a single draw did
    assert max(mean) / min(mean) < 1.5
    fresh = [SWBaseline(gmm.sample, N, seed=s).distance(gmm.sample(N, torch.Generator().manual_seed(99 + s)))[1]
             for s in range(10)]
    assert 0.8 < sum(fresh) / len(fresh) < 1.25


def test_sw_baseline_distance_is_the_sliced_wasserstein_to_its_reference():
    from sgm_core.datasets import _gmm_8gaussians

    gmm = _gmm_8gaussians()
    baseline = SWBaseline(gmm.sample, 500, seed=3)
    for n in (500, 300):  # equal sizes, and a smaller set on the common quantile grid
        x = torch.randn(n, 2, generator=torch.Generator().manual_seed(n))
        expected = sliced_wasserstein(x, baseline.reference, torch.Generator().manual_seed(SW_PROJECTION_SEED))
        sw, ratio = baseline.distance(x)
        assert sw == pytest.approx(expected, rel=FLOAT64_TOL) and ratio == pytest.approx(sw / baseline.base)

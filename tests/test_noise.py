"""Noise settings from the data: σ max as the largest distance between two data points."""

import numpy as np
import pytest
import torch

from sgm_core.datasets import make_preset
from sgm_core.noise import sigma_max_from_data


def test_sigma_max_is_the_largest_pairwise_distance():
    pts = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    assert sigma_max_from_data(pts) == pytest.approx(5.0)
    assert sigma_max_from_data(pts[:1]) == 0.0  # one point: no distance


def test_sigma_max_on_a_subsample_is_close_to_the_full_answer_and_reproducible():
    data = make_preset("mixture-unequal", n_points=6000)
    x = torch.as_tensor(data.standardizer().forward(data.points), dtype=torch.float64)
    full = float(torch.cdist(x, x).max())
    sub = sigma_max_from_data(x, max_points=2000)
    assert sub == sigma_max_from_data(x, max_points=2000)  # a fixed subsample
    assert 0.9 * full <= sub <= full  # the extremes of a 2000-point sample of two blobs
    assert sub > 3.0  # wider than the default σ max of 3: why the button exists

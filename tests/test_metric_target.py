"""The sample metrics compare the particles with what they are asked to sample: the data, a class's
data (guidance), or the truth's conditional p(y | x = v) (the Condition tool), never the joint data
while something else was asked for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgm_core.config import RunConfig
from sgm_core.datasets import make_preset
from sgm_core.live import LiveEngine


def _as_particles(eng: LiveEngine, x: torch.Tensor) -> None:
    eng.particles = torch.as_tensor(eng.standardizer.forward(x.numpy()), dtype=torch.float32)


def test_under_a_condition_exact_conditional_draws_score_as_data_and_joint_draws_do_not():
    data = make_preset("6gaussians-unequal", 2000)
    eng = LiveEngine(data, RunConfig(), n_particles=400)
    eng.set_condition({0: 1.25})
    target = eng.metric_target()
    assert target.name == "p(y | x = 1.25)"
    exact = target.sample(400, torch.Generator().manual_seed(3))
    assert torch.allclose(exact[:, 0], torch.full((400,), 1.25), atol=1e-5)
    # the analytic conditional of the mixture at x = 1.25: two modes weighted 1/4 and 3/4
    np.testing.assert_allclose(sorted(target.modes.weights.tolist())[-2:], [0.25, 0.75], atol=1e-6)
    _as_particles(eng, exact)
    good = eng.sample_metrics(400)
    assert good["target"] == "p(y | x = 1.25)" and good["sw_ratio"] < 2.5
    weights = sorted(good["mode_weights"])[-2:]
    assert abs(weights[0] - 0.25) < 0.06 and abs(weights[1] - 0.75) < 0.06 and good["on_mode"] > 0.95
    _as_particles(eng, data.sample(400, torch.Generator().manual_seed(4)))  # the joint: not what was asked
    assert eng.sample_metrics(400)["sw_ratio"] > 3 * good["sw_ratio"]
    eng.set_condition(None)  # the chain restarts from the prior: the joint draws go back in
    assert eng.metric_target().name == "the data"
    _as_particles(eng, data.sample(400, torch.Generator().manual_seed(4)))
    assert eng.sample_metrics(400)["sw_ratio"] < 2.5  # joint draws are the data again


@pytest.mark.parametrize("preset", ["8gaussians-labelled", "moons-labelled"])
def test_with_a_class_asked_for_the_metrics_compare_with_that_class(preset):
    from sgm_core.config import ModelConfig

    data = make_preset(preset, 2000)
    cfg = RunConfig(model=ModelConfig(width=16, depth=1, classes=data.classes))
    eng = LiveEngine(data, cfg, n_particles=400)
    eng.set_guidance(1, 2.0)
    target = eng.metric_target()
    assert target.name == f"class {data.classes[1]}"
    x, lab = data.sample_labelled(800, torch.Generator().manual_seed(5))
    _as_particles(eng, x[lab == 1][:300])
    own = eng.sample_metrics(300)
    _as_particles(eng, x[lab == 0][:300])
    other = eng.sample_metrics(300)
    assert own["target"] == target.name and own["sw_ratio"] < 2.5 and other["sw_ratio"] > 1.5 * own["sw_ratio"]
    if data.gmm is not None:  # the class's own modes and weights: the other class's points are on none
        assert len(own["true_weights"]) == int((data.gmm.labels == 1).sum())
        assert own["on_mode"] > 0.95 and other["on_mode"] < 0.05


def test_the_metrics_dock_says_what_the_particles_are_compared_with(qtbot):
    from app.panels.metrics_panel import MetricsPanel

    panel = MetricsPanel()
    qtbot.addWidget(panel)
    base = {"gen": 1, "reference_kind": "analytic", "sigmas": [0.1], "train_step": 10, "sampler_step": 5,
            "sampler_steps": 10, "sw_ratio": 1.2, "mmd": 0.0, "energy": 0.01, "updated": ("samples",)}
    panel.show_metrics({**base, "target": "the data"})
    assert "vs" not in panel.status_label.text()
    panel.show_metrics({**base, "target": "p(y | x = 1.25)"})
    assert panel.status_label.text().endswith("vs p(y | x = 1.25)")


def test_the_data_docks_class_combo_shows_the_class_a_stroke_paints(qtbot):
    """On labelled data a brush set to 'none' paints class 0 (every point has a class): the combo
    shows class 0, not 'none (unlabelled)'; on unlabelled data it shows 'none'."""
    from gui_helpers import open_window

    w = open_window(qtbot, data="8gaussians-labelled")
    try:
        combo, s = w.data_panel.class_combo, w.session
        assert s.brush_class is None and s.painted_class() == 0
        assert combo.currentData() == 0 and combo.currentText() == s.palette_classes()[0]
        s.set_brush_class(1)
        assert combo.currentData() == 1
        s.set_brush_class(None)
        assert combo.currentData() == 0
    finally:
        w.close()
    w = open_window(qtbot, data=None)  # nothing labelled: 'none' paints unlabelled points
    try:
        assert w.session.painted_class() is None and w.data_panel.class_combo.currentIndex() == 0
    finally:
        w.close()


def test_with_a_class_asked_for_the_score_error_is_the_guided_nets_against_the_exact_guided_score():
    """The issue's 'score error for each class': on a labelled mixture the curve compares the guided
    net with the exact guided score (Ho & Salimans 2022, eq. 6, from the class-conditional mixture
    scores) on that class's own points; with no class, the net with the truth on all the data."""
    from sgm_core.config import ModelConfig
    from sgm_core.datasets import Standardizer

    data = make_preset("8gaussians-labelled", 1000)
    eng = LiveEngine(data, RunConfig(model=ModelConfig(width=16, depth=1, classes=data.classes)), n_particles=10)
    eng.train(3)
    assert eng.error_target == ""
    plain = eng.score_error(0.2)
    eng.set_guidance(1, 2.0)
    assert eng.error_target == "class 1, w = 2"
    model, reference, points = eng._error_inputs()
    std: Standardizer = eng.standardizer
    own = data.points[data.labels == 1]
    np.testing.assert_allclose(points.numpy(), std.forward(own[:1000]), atol=1e-6)  # class 1's points only
    x = points[:50].double()
    gmm = data.gmm.transformed(torch.as_tensor(std.shift, dtype=torch.float64), float(std.scale))
    exact = gmm.guided_score(x, 0.2, 1, 2.0)  # the exact guided score in the net's coordinates
    np.testing.assert_allclose(reference(x.float(), torch.full((50,), 0.2)).double().numpy(), exact.numpy(),
                               rtol=1e-4, atol=1e-4)
    guided = eng.score_error(0.2)
    assert np.isfinite(guided) and guided != plain
    eng.set_guidance(None)
    assert eng.error_target == "" and eng.score_error(0.2) == pytest.approx(plain)


def test_the_error_curves_start_afresh_when_what_they_compare_changes(qtbot):
    from app.panels.metrics_panel import MetricsPanel

    panel = MetricsPanel()
    qtbot.addWidget(panel)
    base = {"gen": 1, "reference_kind": "analytic", "sigmas": [0.1, 1.0], "updated": ("curve",)}
    panel.show_metrics({**base, "score_step": 10, "score_errors": [0.5, 0.1], "error_target": ""})
    panel.show_metrics({**base, "score_step": 20, "score_errors": [0.4, 0.1], "error_target": ""})
    assert [len(s) for s, _ in panel.curves.values()] == [2, 2]
    panel.show_metrics({**base, "score_step": 30, "score_errors": [0.9, 0.3], "error_target": "class 1, w = 2"})
    assert [s for s, _ in panel.curves.values()] == [[30], [30]]  # a new quantity: no jump in the old line
    assert "class 1, w = 2" in panel.sigma_legend.text()
    panel.show_metrics({**base, "score_step": 40, "score_errors": [0.4, 0.1], "error_target": ""})
    assert [s for s, _ in panel.curves.values()] == [[40], [40]] and "class" not in panel.sigma_legend.text()

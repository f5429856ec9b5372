"""The Metrics dock: live score error per σ and sample metrics from the worker; q_σ on the canvas."""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import frame, open_window, small_config, wait
from PySide6.QtCore import Qt

from app.panels.metrics_panel import MetricsPanel
from sgm_core import engine as engine_module
from sgm_core.config import SamplerConfig
from sgm_core.datasets import Standardizer

SAMPLES_EVERY = 0.3  # the test's sample-metric throttle (the app's 2.5 s would make it slow)
CONVERGED = 0.5  # particles on the data must end with at most half the SW ratio they started with
NOISE_STD_TOL = 0.05  # 5000 draws: the sample std of N(0, 1) is within ±0.05 with overwhelming odds


pytestmark = pytest.mark.usefixtures("warm_torch")


@pytest.fixture
def window(qtbot, monkeypatch):
    monkeypatch.setattr(engine_module, "METRICS_SAMPLES_EVERY", SAMPLES_EVERY)
    w = open_window(qtbot)
    w.session.set_run_config(small_config(steps=400))
    w.session.set_particles(n_particles=400)
    wait(qtbot, lambda: frame(w) is not None)  # the tests' predicates read the newest frame
    yield w
    w.close()


def test_panel_draws_curves_per_sigma_and_bars_and_resets_on_a_new_engine(qtbot):
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    base = {"gen": 1, "reference_kind": "empirical", "reference_points": 812, "sigmas": [0.01, 0.1, 1.0],
            "conditional": True}
    panel.show_metrics({**base, "updated": ("curve",), "score_step": 10, "score_errors": [0.9, 0.5, 0.2]})
    panel.show_metrics({**base, "updated": ("curve",), "score_step": 20, "score_errors": [0.8, 0.4, 0.0]})
    assert sorted(panel.curves) == [0.01, 0.1, 1.0]
    assert panel.curves[0.1] == ([10, 20], [0.5, 0.4])
    assert panel.curves[1.0][1][-1] > 0  # an exact 0 is clamped for the log axis
    assert "empirical" in panel.reference_label.text() and "812" in panel.reference_label.text()
    samples = {**base, "updated": ("samples",), "sw_ratio": 1.5, "mmd": 2e-3, "energy": 0.05, "on_mode": 0.93,
               "mode_weights": [0.3, 0.7], "true_weights": [0.2, 0.8], "log_likelihood": -2.5, "sampler_step": 40}
    panel.show_metrics(samples)
    assert panel.value_labels["sw_ratio"].text() == "1.50×"
    assert panel.value_labels["on_mode"].text() == "93%"
    assert panel.value_labels["log_likelihood"].text() == "-2.50 nats/pt"
    assert panel.tabs.isTabVisible(2)  # the Mode weights tab, for a mixture
    panel.show_metrics({**samples, "gen": 2, "reference_kind": "analytic", "mode_weights": None})
    assert panel.curves == {} and panel.sw_ratios() == [1.5]  # a new engine starts afresh
    assert not panel.tabs.isTabVisible(2) and "analytic" in panel.reference_label.text()


def test_with_the_true_score_the_legend_says_whose_the_curve_is(qtbot):
    """A lesson's particles on the exact score: the score-error curve is the net's, untrained at step 0
    (its error near 1 is not the particles'), and once trained still not what the particles use."""
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    base = {"gen": 1, "reference_kind": "analytic", "sigmas": [0.05, 1.0], "conditional": True}
    samples = {**base, "updated": ("samples",), "sw_ratio": 1.2, "mmd": 1e-3, "energy": 0.01, "reference_score": True}
    panel.show_metrics({**base, "updated": ("curve",), "score_step": 0, "score_errors": [1.0, 0.9]})
    panel.show_metrics(samples)
    assert "particles: true score (the curve: the net, untrained)" in panel.sigma_legend.text()
    panel.show_metrics({**base, "updated": ("curve",), "score_step": 100, "score_errors": [0.5, 0.1]})
    assert "particles: true score (the curve: the net, not used by them)" in panel.sigma_legend.text()
    panel.show_metrics({**samples, "reference_score": False})
    assert "true score" not in panel.sigma_legend.text()


def test_training_draws_a_score_error_curve_per_sigma(qtbot, window):
    got: list[dict] = []
    window.worker.metrics_updated.connect(got.append)
    window.actions_["train"].trigger()
    wait(qtbot, lambda: frame(window) is not None and frame(window).step >= 400 and not window.worker_state.training)
    panel = window.metrics_panel
    wait(qtbot, lambda: panel.curves and min(len(s) for s, _ in panel.curves.values()) >= 3
         and max(s[-1] for s, _ in panel.curves.values()) >= 400)
    sigmas = got[-1]["sigmas"]
    assert len(sigmas) == 4 and sorted(panel.curves) == sorted(sigmas)  # 4 levels across the ncsn ladder
    assert got[-1]["reference_kind"] == "analytic" and "analytic" in panel.reference_label.text()
    errors = {s: np.array(v) for s, (_, v) in panel.curves.items()}
    assert all(np.isfinite(e).all() for e in errors.values())
    assert errors[max(sigmas)][-1] < errors[max(sigmas)][0]  # the large-σ level is learned first
    assert got[-1]["log_likelihood"] is not None and np.isfinite(got[-1]["log_likelihood"])
    assert panel.value_labels["log_likelihood"].text().endswith("nats/pt")


def test_sw_ratio_falls_as_particles_converge(qtbot, window):
    """The true score drives annealed Langevin (Score: true), so no training is needed."""
    panel = window.metrics_panel
    window.session.set_sampler_config(SamplerConfig(name="annealed", steps=10))  # 16 levels x 10 steps
    window.session.set_particles(steps_per_frame=4)
    window.sampler_panel.score_combo.setCurrentIndex(window.sampler_panel.score_combo.findData(True))
    assert window.session.particles.reference_score
    window.actions_["reset_particles"].trigger()
    wait(qtbot, lambda: len(panel.sw_ratios()) >= 1)
    start = panel.sw_ratios()[-1]
    window.actions_["play"].trigger()
    wait(qtbot, lambda: frame(window).sampler_step >= 160)
    n = len(panel.sw_ratios())
    wait(qtbot, lambda: len(panel.sw_ratios()) > n)  # one more measurement at the end of the schedule
    ratios = panel.sw_ratios()
    assert ratios[-1] < CONVERGED * start, ratios
    assert panel.last["reference_score"] and panel.value_labels["log_likelihood"].text() == "– (true score)"
    assert not panel.bar_plot.isHidden() and panel.last["on_mode"] > 0.9  # 8 modes: bars vs true weights


def test_metrics_pause_while_the_dock_is_hidden(qtbot, window):
    got: list[dict] = []
    window.worker.metrics_updated.connect(got.append)
    wait(qtbot, lambda: window.worker.core.state.metrics_on)
    window.docks["Metrics"].hide()
    wait(qtbot, lambda: not window.worker.core.state.metrics_on)
    qtbot.wait(50)  # an update already queued before the hide may still arrive
    before = len(got)
    window.actions_["train"].trigger()
    wait(qtbot, lambda: frame(window).step >= 400 and not window.worker_state.training)
    assert len(got) == before
    window.docks["Metrics"].show()
    wait(qtbot, lambda: len(got) > before)


def test_show_q_sigma_draws_the_perturbed_data(qtbot, window):
    view = window.view_panel
    window.session.set_view(sigma=0.5)
    assert not window.plot._noisy_item.isVisible()
    view.noisy_check.setChecked(True)
    assert window.session.view.noisy_data and window.plot._noisy_item.isVisible()
    data = window.session.points
    scale = Standardizer.fit(data).scale
    for sigma in (0.5, 2.0):  # the slider scrubs q_σ with the field
        window.session.set_view(sigma=sigma)
        d = window.plot._noisy_item.data
        noisy = np.stack([d["x"], d["y"]], axis=1)
        noise = (noisy - data) / (sigma * scale)  # data units: σ times the standardiser's scale
        assert abs(noise.std() - 1.0) < NOISE_STD_TOL
    view.noisy_check.setChecked(False)
    assert not window.plot._noisy_item.isVisible()


def test_curl_heatmap_mode_reaches_the_canvas(qtbot, window):
    combo = window.view_panel.heatmap_combo
    combo.setCurrentIndex(combo.findData("curl"))
    assert window.session.view.heatmap == "curl" and "curl" in combo.itemData(combo.currentIndex(), Qt.ItemDataRole.ToolTipRole)
    window.actions_["train"].trigger()
    wait(qtbot, lambda: frame(window) is not None and frame(window).curl_map is not None and frame(window).step > 0)
    curl = frame(window).curl_map
    assert curl.shape == (64, 64) and np.isfinite(curl).all()
    wait(qtbot, lambda: window.plot._heat_item.isVisible())


def test_a_flow_run_labels_its_curve_as_velocity_error_and_one_without_truth_reads_a_dash(qtbot):
    """fm's curve is the velocity error at flow times t (the engine's `measure`); a run with no exact
    velocity (ot-fm) shows "—" and says why in the tooltip; a session keeps the label."""
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    base = {"gen": 1, "reference_kind": "analytic", "sigmas": [0.001, 0.1], "measure": "velocity", "conditional": True}
    panel.show_metrics({**base, "updated": ("curve",), "score_step": 10, "score_errors": [0.8, 0.5]})
    assert panel.tabs.tabText(0) == "Velocity error vs truth"
    assert "v<sub>θ</sub>" in panel.score_plot.getPlotItem().getAxis("left").labelText
    assert "t=0.001" in panel.sigma_legend.text() and "velocity" in panel.reference_label.text()
    restored = MetricsPanel()
    qtbot.addWidget(restored)
    restored.restore(panel.saved_state())
    assert restored.tabs.tabText(0) == "Velocity error vs truth" and restored.curves == panel.curves
    note = "ot-fm pairs each batch by optimal transport, whose flow has no closed form"
    panel.show_metrics({**base, "gen": 2, "reference_kind": "none", "reference_note": note, "updated": ("samples",),
                        "sw_ratio": 2.0})
    assert panel.curves == {} and panel.sigma_legend.text().startswith("Velocity error: —")
    assert "optimal transport" in panel.sigma_legend.toolTip()
    panel.show_metrics({"gen": 3, "reference_kind": "analytic", "sigmas": [0.1], "updated": ("curve",),
                        "score_step": 5, "score_errors": [0.3]})  # a score net again
    assert panel.tabs.tabText(0) == "Score error vs truth" and "σ=0.1" in panel.sigma_legend.text()


def test_levels_below_an_empirical_truths_point_spacing_are_said_to_be_spiky(qtbot):
    """3D helix: σ = 0.01 read an error of 1.0 after 9,000 steps, below the 2,000 reference points'
    spacing (0.033), where the empirical truth is a spike per point. The legend says so there, and
    only there: not for an analytic truth, nor when every level is above the spacing."""
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    base = {"gen": 1, "reference_kind": "empirical", "reference_points": 2000, "reference_spacing": 0.033,
            "sigmas": [0.01, 0.076, 0.58], "conditional": True}
    panel.show_metrics({**base, "updated": ("curve",), "score_step": 10, "score_errors": [1.0, 0.3, 0.02]})
    assert "σ=0.01: noise under the points' spacing (0.033), where the empirical truth is spiky" \
        in panel.sigma_legend.text()
    assert "σ=0.076:" not in panel.sigma_legend.text()
    panel.show_metrics({**base, "gen": 2, "reference_kind": "analytic", "updated": ("curve",), "score_step": 10,
                        "score_errors": [1.0, 0.3, 0.02]})
    assert "spiky" not in panel.sigma_legend.text()
    panel.show_metrics({**base, "gen": 3, "sigmas": [0.05, 0.5], "updated": ("curve",), "score_step": 10,
                        "score_errors": [0.2, 0.02]})
    assert "spiky" not in panel.sigma_legend.text()
    # a flow's levels are t: compared as the noise they put on the data, t / (1 - t)
    panel.show_metrics({**base, "gen": 4, "measure": "velocity", "sigmas": [0.001, 0.03, 0.9],
                        "level_noise": [0.001, 0.0309, 9.0], "updated": ("curve",), "score_step": 10,
                        "score_errors": [0.5, 0.4, 0.01]})
    assert "t=0.001, t=0.03: noise under the points' spacing (0.033)" in panel.sigma_legend.text()

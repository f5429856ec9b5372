"""Tools ▸ Steps vs quality in the window: the trained model's few-step samplers plotted against
their counted network evaluations, and samplers the run cannot use left out by name."""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import frame, open_window, small_config, wait

from app.steps_window import N_SAMPLES, parse_steps
from sgm_core.errors import ConfigError


def test_steps_are_parsed_or_refused_in_one_sentence():
    assert parse_steps("1, 2,4") == (1, 2, 4)
    for bad in ("", "a,2", "0,1", "5000"):
        with pytest.raises(ConfigError):
            parse_steps(bad)


def test_the_trained_models_samplers_are_plotted_against_their_nfe(qtbot):
    w = open_window(qtbot)
    w.session.set_run_config(small_config(steps=300, loss="ve-sde"))
    w.actions_["train"].trigger()
    wait(qtbot, lambda: frame(w) is not None and frame(w).step >= 300 and not w.worker_state.training, 60_000)
    w.actions_["steps_vs_quality"].trigger()
    sw = w.steps_window
    qtbot.addWidget(sw)
    for i in range(sw.sampler_list.count()):  # euler and heun, and mala, which a score net cannot run
        item = sw.sampler_list.item(i)
        item.setCheckState(item.checkState().Checked if item.text() in ("euler", "heun", "mala")
                           else item.checkState().Unchecked)
    sw.steps_edit.setText("1,4,16")
    sw.run_button.click()
    wait(qtbot, lambda: sw.run_button.isEnabled(), 120_000)
    assert sw.rows, sw.status.text()
    assert "mala" in sw.status.text() and "Left out" in sw.status.text()
    nfe = {(r.sampler, r.steps): r.nfe for r in sw.rows}
    assert nfe[("euler", 4)] == 4 and nfe[("heun", 4)] > 4  # counted: Heun evaluates twice per step
    euler = {r.steps: r.sw_ratio for r in sw.rows if r.sampler == "euler"}
    assert euler[16] < euler[1]  # more steps, closer to the data
    curves = sw.plots["sw_ratio"].getPlotItem().listDataItems()
    assert len(curves) == 2 and all(np.isfinite(c.getData()[1]).all() for c in curves)
    assert "scored against the data" in sw.status.text()
    joint = list(sw.rows)

    # The Condition tool on the line x = 1.25: the samplers sample that conditional and are scored
    # against its truth, exactly as sgm_core.steps does it given the same condition.
    w.actions_["tool_condition"].trigger()
    w.plot.condition_moved.emit(0, 1.25)
    sw.run_button.click()
    wait(qtbot, lambda: sw.run_button.isEnabled() and sw.rows != joint, 120_000)
    assert "p(y | x = 1.25)" in sw.status.text(), sw.status.text()
    expected = []

    def core_rows(engine) -> None:  # noqa: ANN001 - LiveEngine, the engine's thread
        from sgm_core.conditioning import Condition
        from sgm_core.steps import steps_vs_quality

        cond = Condition.from_data({0: 1.25}, engine.standardizer, 2)
        expected.append(steps_vs_quality(engine.trainer.ema_model, engine.process, engine.config.noise, engine.dataset,
                                         engine.standardizer, ["euler", "heun"], (1, 4, 16), n=N_SAMPLES,
                                         seed=w.session.run_config.train.seed, condition=cond))

    w.worker.call(core_rows)
    wait(qtbot, lambda: expected)
    assert sw.rows == expected[0]
    assert [r.sw_ratio for r in sw.rows] != [r.sw_ratio for r in joint if r.sampler != "mala"]
    sw.close()
    w.close()


def test_esc_closes_the_steps_window(qtbot):
    w = open_window(qtbot)
    w.actions_["steps_vs_quality"].trigger()
    sw = w.steps_window
    qtbot.addWidget(sw)
    assert sw.isVisible()
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    sw.activateWindow()  # as a window manager does on show: else the main window's Esc (the pan tool) takes it
    wait(qtbot, lambda: QApplication.activeWindow() is sw)
    qtbot.keyClick(sw.steps_edit, Qt.Key.Key_Escape)  # from a child, as a user's key press arrives
    assert not sw.isVisible()
    w.close()


def test_an_untrained_model_is_refused_with_a_reason(qtbot):
    """Run on a step-0 model plotted a random net's samples, as if they measured the samplers."""
    w = open_window(qtbot)
    w.actions_["steps_vs_quality"].trigger()
    sw = w.steps_window
    qtbot.addWidget(sw)
    wait(qtbot, lambda: frame(w) is not None)
    sw.run_button.click()
    wait(qtbot, lambda: sw.run_button.isEnabled() and "step 0" in sw.status.text())
    assert "press Train" in sw.status.text() and sw.rows == []
    sw.close()
    w.close()

"""Every registered loss and sampler is explained (formula, paragraph, paper), and the Explain
dock follows the loss and sampler combos."""

from __future__ import annotations

import pytest
from gui_helpers import open_window, wait

from sgm_core.explain import LOSS_EXPLANATIONS, SAMPLER_EXPLANATIONS, explanation_html
from sgm_core.losses import LOSSES
from sgm_core.samplers import SAMPLER_SPECS


@pytest.mark.parametrize(("name", "table"), [(n, LOSS_EXPLANATIONS) for n in LOSSES]
                         + [(n, SAMPLER_EXPLANATIONS) for n in SAMPLER_SPECS])
def test_every_registered_loss_and_sampler_has_an_explanation(name, table):
    e = table[name]  # a new method without one fails here
    assert e.title and e.formula and len(e.text) > 60 and e.paper
    assert any(ch.isdigit() for ch in e.paper), "the paper names its year"


def test_the_explain_dock_follows_the_loss_and_sampler_combos(qtbot):
    w = open_window(qtbot)
    try:
        dock = w.docks["Explain"]
        assert dock.widget() is not None and w.tabifiedDockWidgets(dock) == [w.docks["Sampler"]]
        browser = dock.widget().browser
        s = w.session
        assert LOSS_EXPLANATIONS[s.run_config.loss.name].paper in browser.toPlainText()
        combo = w.train_panel.loss_combo
        combo.setCurrentIndex(combo.findData("dsm"))
        wait(qtbot, lambda: s.run_config.loss.name == "dsm")
        text = browser.toPlainText()
        assert "Vincent" in text and "(x̃ − x)/σ²" in text
        sampler = w.sampler_panel.sampler_combo
        sampler.setCurrentIndex(sampler.findData("annealed"))
        wait(qtbot, lambda: s.sampler_config.name == "annealed")
        text = browser.toPlainText()
        assert "Annealed Langevin" in text and "ε σi²/σL²" in text and "Vincent" in text
        assert text.index("Loss:") < text.index("Sampler:")
        dock.raise_()
        qtbot.wait(30)
        dock.grab().save("/tmp/explain_dock.png")
    finally:
        w.close()


def test_a_name_without_an_explanation_says_so():
    assert "No explanation written yet" in explanation_html("no-such-loss", "langevin")


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)], ids=["1280x800", "1024x700"])
def test_the_explain_tab_shown_keeps_the_layout_whole(qtbot, size):
    from app.layout_check import layout_problems

    w = open_window(qtbot, size=size)
    try:
        wait(qtbot, lambda: w._docks_sized)
        w.docks["Explain"].raise_()
        qtbot.wait(50)
        assert not w.docks["Explain"].visibleRegion().isEmpty()
        assert layout_problems(w) == [] and (w.width(), w.height()) == size
        assert w.docks["Explain"].widget().browser.width() > 200  # room for a formula line
    finally:
        w.close()

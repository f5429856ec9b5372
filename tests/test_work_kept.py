"""Work is never lost silently (issue 13): data edits, undo/redo and optimiser settings keep the
trained model; a change that needs a new model asks first; a diverging run brings back the last
good model with a banner that says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gui_helpers import ask_engine, frame, open_window, small_config, wait

pytestmark = pytest.mark.usefixtures("warm_torch")


@pytest.fixture
def window(qtbot):
    w = open_window(qtbot)
    w.session.set_run_config(small_config(steps=60))
    w.session.set_particles(n_particles=200)
    yield w
    w.close()


def weights(qtbot, window) -> dict[str, torch.Tensor]:
    """A copy of the engine's model weights, taken in the engine after every command sent before."""
    return ask_engine(qtbot, window, lambda eng: {k: v.detach().clone() for k, v in eng.trainer.model.state_dict().items()})


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def train_to(qtbot, window, steps: int) -> None:
    window.actions_["train"].trigger()
    wait(qtbot, lambda: frame(window) is not None and frame(window).step >= steps and not window.worker_state.training)


def settle(qtbot, window, step: int) -> None:
    """The pending sync sent, and a frame of the engine after it (at `step`) drawn."""
    window._flush_rebuild()
    count = window.worker.frames_emitted
    wait(qtbot, lambda: window.worker.frames_emitted > count and frame(window).step == step)


def test_undo_redo_and_edits_keep_the_model_and_training_goes_on(qtbot, window):
    train_to(qtbot, window, 60)
    trained = weights(qtbot, window)
    window.session.add_points(np.array([[0.5, 0.5], [0.6, 0.4]], np.float32))  # a stroke: same D
    settle(qtbot, window, 60)
    assert same(weights(qtbot, window), trained)
    window.actions_["undo"].trigger()  # the stroke
    window.actions_["undo"].trigger()  # the load itself: nothing to train on, the model waits
    assert len(window.session.points) == 0
    window._flush_rebuild()
    assert same(weights(qtbot, window), trained)
    window.actions_["redo"].trigger()
    settle(qtbot, window, 60)
    assert same(weights(qtbot, window), trained)
    assert len(frame(window).losses) == 60  # the loss curve came back with the model
    window.session.clear_points()
    window.session.add_points(np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32))
    settle(qtbot, window, 60)
    assert same(weights(qtbot, window), trained)
    train_to(qtbot, window, 120)  # Train goes on from step 60 on the new drawing: fine-tuning
    assert not same(weights(qtbot, window), trained)


def test_optimiser_settings_change_nothing_while_training(qtbot, window):
    window.session.set_run_config(small_config(steps=1_000_000))
    window.actions_["train"].trigger()
    wait(qtbot, lambda: window.worker_state.training and frame(window) is not None and frame(window).step > 20)
    panel = window.train_panel
    for box, value in ((panel.lr_box, 3e-4), (panel.batch_box, 64), (panel.steps_box, 2_000_000)):
        before = frame(window).step
        box.setValue(value)
        window._flush_rebuild()
        wait(qtbot, lambda b=before: frame(window).step > b + 5)
        assert window.worker_state.training
    assert window.session.run_config.train.lr == pytest.approx(3e-4)
    window.actions_["stop"].trigger()


@pytest.mark.parametrize("discard", [False, True])
def test_a_new_loss_asks_before_the_model_goes(qtbot, window, discard):
    train_to(qtbot, window, 60)
    trained = weights(qtbot, window)
    asked: list[tuple[int, str]] = []

    def ask(steps, reason, answer):  # noqa: ANN001
        asked.append((steps, reason))
        answer(discard)

    window.ask_discard_model = ask
    combo = window.train_panel.loss_combo
    combo.setCurrentIndex(combo.findData("dsm"))
    window._flush_rebuild()
    assert asked == [(60, "the loss changed from ncsn to dsm")]
    if discard:
        wait(qtbot, lambda: frame(window).step == 0)
        assert window.session.run_config.loss.name == "dsm"
    else:
        assert window.session.run_config.loss.name == "ncsn"
        assert combo.currentData() == "ncsn"  # the panel shows the setting put back
        settle(qtbot, window, 60)
        assert same(weights(qtbot, window), trained)


def test_an_untrained_model_is_replaced_without_a_question(qtbot, window):
    window.ask_discard_model = lambda *a: pytest.fail("nothing trained: nothing to ask")
    combo = window.train_panel.loss_combo
    combo.setCurrentIndex(combo.findData("dsm"))
    window._flush_rebuild()
    assert window.session.run_config.loss.name == "dsm"


@pytest.mark.parametrize("lr", [10.0, 1e30])
def test_a_diverging_run_brings_back_the_last_good_model(qtbot, window, lr):
    train_to(qtbot, window, 60)  # a good model at rest: what a divergence returns to
    good = weights(qtbot, window)
    window.train_panel.steps_box.setValue(100_000)  # the cosine decay barely starts: lr is lr
    window.train_panel.lr_box.setValue(lr)
    window._flush_rebuild()
    window.actions_["train"].trigger()
    wait(qtbot, lambda: window.banner.isVisible() and "diverged" in window.banner.text())
    text = window.banner.text()
    assert text.startswith("Training diverged at step ") and "the last good model (step 60) is back" in text
    wait(qtbot, lambda: not window.worker_state.training and frame(window).step == 60)
    back = weights(qtbot, window)
    assert all(torch.isfinite(v).all() for v in back.values())
    assert same(back, good)
    assert np.isfinite(frame(window).losses).all() and len(frame(window).losses) == 60


@pytest.mark.parametrize("discard", [False, True])
def test_reset_asks_before_a_trained_model_goes(qtbot, window, discard):
    """Ctrl+R (one key from Ctrl+Shift+R) threw 4,000 steps away with no question and no undo."""
    train_to(qtbot, window, 60)
    trained = weights(qtbot, window)
    asked: list[int] = []

    def ask(steps, reason, answer):  # noqa: ANN001
        asked.append(steps)
        answer(discard)

    window.ask_discard_model = ask
    window.actions_["reset"].trigger()
    assert asked == [60]
    if discard:
        wait(qtbot, lambda: frame(window).step == 0)
        assert not same(weights(qtbot, window), trained)
    else:
        settle(qtbot, window, 60)
        assert same(weights(qtbot, window), trained)


def test_reset_of_an_untrained_model_asks_nothing(qtbot, window):
    window.ask_discard_model = lambda *a: pytest.fail("nothing trained: nothing to ask")
    window.actions_["reset"].trigger()
    wait(qtbot, lambda: frame(window) is not None and frame(window).step == 0)


def test_cancel_keeps_the_score_error_curves(qtbot, window):
    """Cancel put every setting back, yet the engine was rebuilt (a new generation): the Metrics
    dock's score-error curves of the kept model were wiped."""
    window.docks["Metrics"].show()
    train_to(qtbot, window, 60)
    panel = window.metrics_panel
    wait(qtbot, lambda: any(60 in steps for steps, _ in panel.curves.values()))
    before, gen = {s: (list(st), list(v)) for s, (st, v) in panel.curves.items()}, panel._gen
    window.ask_discard_model = lambda steps, reason, answer: answer(False)
    combo = window.train_panel.loss_combo
    combo.setCurrentIndex(combo.findData("dsm"))
    window._flush_rebuild()
    assert window.session.run_config.loss.name == "ncsn"
    ask_engine(qtbot, window, lambda eng: None)
    qtbot.wait(1500)  # time for the metrics of a rebuilt engine (a new generation) to arrive
    assert panel._gen == gen
    assert {s: (list(st), list(v)) for s, (st, v) in panel.curves.items()} == before


def test_training_waits_while_the_question_is_open(qtbot, window):
    """The question counted the steps of a model that went on training behind it."""
    window.session.set_run_config(small_config(steps=1_000_000))
    window._flush_rebuild()
    window.actions_["train"].trigger()
    wait(qtbot, lambda: window.worker_state.training and frame(window) is not None and frame(window).step > 20)
    answers: list = []
    window.ask_discard_model = lambda steps, reason, answer: answers.append((steps, answer))
    window.actions_["reset"].trigger()
    wait(qtbot, lambda: window.worker_state.paused)
    asked, answer = answers[0]
    count = window.worker.frames_emitted  # the window may still hold a frame from before the pause: the
    wait(qtbot, lambda: window.worker.frames_emitted > count + 1)  # next shows where training stopped (21, then 25)
    held = frame(window).step
    count = window.worker.frames_emitted
    wait(qtbot, lambda: window.worker.frames_emitted > count + 3)
    assert frame(window).step == held and asked <= held
    assert window.status_labels["rate"].text() == "paused"  # not "idle": Cancel resumes it
    answer(False)  # Cancel: the paused round goes on
    wait(qtbot, lambda: window.worker_state.training and frame(window).step > held + 10)
    window.actions_["stop"].trigger()

"""A seeded run of random user actions on the whole window: presets (2D and 3D), losses, models,
samplers, training controls, drawing, undo, view toggles, odd settings (a huge learning rate,
tiny noise ladders), sessions saved and reopened, exports, comparisons and lessons, with the
event loop running between them for random stretches.

It asserts what a user must never see: an exception escaping a slot (pytest-qt fails the test),
an "unexpected error" banner from the engine, or a session the app wrote and cannot open. The
expected messages (e.g. "draw at least 2 points" after Clear) are allowed. Runs of this kind
found four bugs (2D/3D view mix-up, an energy net's session refused on open, Save during Open,
a comparison opened with sm/ssm).
"""

from __future__ import annotations

import random
import time
from dataclasses import replace

import numpy as np
import pytest
from gui_helpers import open_window, small_config, wait

from app.main_window import MainWindow
from sgm_core.sessions import load_session

pytestmark = pytest.mark.usefixtures("warm_torch")

ACTIONS_PER_RUN = 70
PAUSES_S = (0.0, 0.02, 0.1, 0.4)  # event-loop time between actions: races need the short ones
UNEXPECTED = "unexpected error"  # the engine's banner for anything it did not foresee


def pump(qtbot, seconds: float) -> None:
    if seconds <= 0:
        qtbot.wait(1)
        return
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qtbot.wait(10)


def user_actions(w: MainWindow, rng: random.Random, folder) -> dict:  # noqa: ANN001
    s = w.session
    session_file = folder / "monkey.sgm"

    def pick(combo) -> None:  # noqa: ANN001
        combo.setCurrentIndex(rng.randrange(combo.count()))

    def preset() -> None:
        combo = w.data_panel.preset_combo
        pick(combo)
        combo.activated.emit(combo.currentIndex())

    def save() -> None:
        w.ask_save_path = lambda *_: str(session_file)
        w.actions_["save_session_as"].trigger()

    def compare() -> None:
        w.actions_[rng.choice(["compare_losses", "compare_noise", "compare_samplers"])].trigger()
        if w.compare_windows:
            w.compare_windows[-1].start()

    def odd_settings() -> None:
        cfg = s.run_config
        s.set_run_config(replace(
            cfg, train=replace(cfg.train, lr=rng.choice([1e-4, 5e-3, 50.0])),
            noise=replace(cfg.noise, sigma_min=rng.choice([1e-3, 0.01, 0.5]), sigma_max=rng.choice([0.6, 3.0, 50.0]),
                          sigma=rng.choice([0.01, 0.1, 2.0]), n_levels=rng.choice([2, 16]))))

    return {
        "preset": preset,
        "loss": lambda: pick(w.train_panel.loss_combo),
        "model": lambda: pick(w.train_panel.model_combo),
        "sampler": lambda: pick(w.sampler_panel.sampler_combo),
        "score": lambda: pick(w.sampler_panel.score_combo),
        "heatmap": lambda: pick(w.view_panel.heatmap_combo),
        "particles": lambda: s.set_particles(n_particles=rng.choice([1, 50, 800])),
        "small": lambda: s.set_run_config(small_config(steps=rng.choice([30, 300]), loss=s.run_config.loss.name)),
        "odd": odd_settings,
        "schedule": lambda: s.set_sampler_config(replace(s.sampler_config, steps=rng.choice([0, 1, 20]))),
        "train": lambda: w.actions_["train"].trigger(),
        "pause": lambda: w.actions_["pause"].trigger(),
        "stop": lambda: w.actions_["stop"].trigger(),
        "reset": lambda: w.actions_["reset"].trigger(),
        "play": lambda: w.actions_["play"].trigger(),
        "step": lambda: w.actions_["step"].trigger(),
        "restart": lambda: w.actions_["reset_particles"].trigger(),
        "view": lambda: s.set_view(true_field=rng.random() < 0.5, noisy_data=rng.random() < 0.5,
                                   trails=rng.random() < 0.5, normalized_arrows=rng.random() < 0.5),
        "sigma": lambda: w.view_panel.sigma_slider.setValue(rng.randrange(w.view_panel.sigma_slider.maximum() + 1)),
        "draw": lambda: s.add_points(np.random.default_rng(rng.randrange(99)).normal(
            size=(rng.choice([1, 30]), s.data.dim)).astype(np.float32)),
        "undo": lambda: s.undo_stack.undo(),
        "redo": lambda: s.undo_stack.redo(),
        "spawn": lambda: w.spawn_particles(tuple(rng.uniform(-2, 2) for _ in range(s.data.dim))),
        "sigma_max": lambda: w.sigma_max_from_data(),
        "follow": lambda: w.sampler_panel.follow_check.click(),
        "save": save,
        "open": lambda: w.files.open(session_file) if session_file.exists() else None,
        "compare": compare,
        "close_compare": lambda: [c.close() for c in list(w.compare_windows)],
        "lesson": lambda: w.lessons.menu.actions()[rng.randrange(len(w.lessons.menu.actions()))].trigger(),
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_random_user_actions_never_reach_an_unexpected_error(qtbot, tmp_path, seed):
    w = open_window(qtbot)
    messages: list[str] = []
    show_error = w.show_error
    w.show_error = lambda message, **kw: (messages.append(message), show_error(message, **kw))
    w.ask_unsaved_changes = lambda answer: answer("discard")
    w.session.set_run_config(small_config(steps=300))
    w.session.set_particles(n_particles=300)
    rng = random.Random(seed)
    actions = user_actions(w, rng, tmp_path)
    done = []
    for _ in range(ACTIONS_PER_RUN):
        name = rng.choice(list(actions))
        done.append(name)
        actions[name]()
        pump(qtbot, rng.choice(PAUSES_S))
    pump(qtbot, 1.0)
    for compare in list(w.compare_windows):
        compare.close()
    unexpected = [m for m in messages if UNEXPECTED in m]
    assert not unexpected, (unexpected, done)
    saved = tmp_path / "monkey.sgm"
    if saved.exists():
        state = load_session(saved)  # whatever the app wrote, it can read back
        if state.particles is not None:
            assert state.particles.shape[1] == state.points.shape[1]
    w.close()
    wait(qtbot, lambda: not w.worker.is_running())

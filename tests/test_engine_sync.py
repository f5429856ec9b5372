"""EngineSync without a window (app/engine_sync.py): a Session, a recording fake engine and a
recording host. A data edit that keeps the dimension keeps the model (UpdateEngine); a new loss
family with trained steps asks first, and Cancel puts the settings back (issue 13)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from app.engine_sync import EngineSync
from app.session import Session


class RecordingEngine:
    """The engine link: every command is recorded as (name, args)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):  # noqa: ANN204
        if name.startswith("_") or name == "checkpoint":
            raise AttributeError(name)
        return lambda *args: self.sent.append((name, args))

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]

    def specs(self, command: str) -> list:
        return [args[0] for name, args in self.sent if name == command]


class RecordingHost:
    """The window's side: records the effects; answers the discard question with `discard`."""

    def __init__(self, discard: bool) -> None:
        self.discard = discard
        self.questions: list[tuple[int, str]] = []
        self.effects: list[str] = []

    def ask_discard_model(self, steps, reason, answer) -> None:  # noqa: ANN001
        self.questions.append((steps, reason))
        answer(self.discard)

    def training(self) -> bool:
        return False

    def in_lesson(self) -> bool:
        return False

    def metrics_shown(self) -> bool:
        return False

    def __getattr__(self, name: str):  # noqa: ANN204 - clear_field, apply_layers, send_view, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda: self.effects.append(name)


class RecordingNotifier:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.statuses: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def status(self, text: str, ms: int = 4000) -> None:
        self.statuses.append(text)


class NoSource:
    def engine_source(self, config, dim):  # noqa: ANN001, ANN201
        return config, None  # flows start from N(0, I)


def trained_sync(qapp, discard: bool = False):  # noqa: ANN001, ANN201
    """A sync wired as the window wires it, whose engine holds a model trained 500 steps on 30 points."""
    session = Session()
    engine, host, notes = RecordingEngine(), RecordingHost(discard), RecordingNotifier()
    sync = EngineSync(session, engine, None, NoSource(), notes, host)
    session.data_changed.connect(sync.rebuild_later)
    session.config_changed.connect(sync.on_config_changed)
    session.add_points(np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32))
    assert sync.rebuild_timer.isActive()  # debounced: nothing sent yet
    sync.flush_rebuild()
    assert sync.engine_ok and sync.model == (session.model_config(), 2)
    session.publish_frame(SimpleNamespace(step=500))  # the engine's last frame: 500 steps trained
    assert sync.trained_steps() == 500
    engine.sent.clear()
    host.effects.clear()
    return session, engine, host, notes, sync


def test_a_data_edit_of_the_same_dimension_keeps_the_model(qapp):
    session, engine, host, notes, sync = trained_sync(qapp)
    session.add_points(np.array([[0.5, 0.5], [0.6, 0.4], [0.7, 0.3]], np.float32))
    sync.flush_rebuild()
    assert host.questions == []
    assert "set_engine" not in engine.names()
    (spec,) = engine.specs("update_engine")  # UpdateEngine: training goes on from the same model
    assert len(spec.dataset.points) == 33 and spec.config == session.model_config()
    assert "clear_field" not in host.effects  # the trained model's arrows stay
    assert sync.trained_steps() == 500 and sync.model_index == session.undo_stack.index()


@pytest.mark.parametrize("discard", [False, True])
def test_a_new_loss_family_asks_and_cancel_puts_the_settings_back(qapp, discard):
    session, engine, host, notes, sync = trained_sync(qapp, discard)
    before = session.run_config
    sampler = session.sampler_config
    session.set_run_config(before.with_(loss=replace(before.loss, name="dsm")))
    assert session.sampler_config.name != sampler.name  # the new loss brought its own sampler
    sync.flush_rebuild()
    assert host.questions == [(500, "the loss changed from ncsn to dsm")]
    if discard:
        (spec,) = engine.specs("set_engine")  # a fresh model
        assert spec.config.loss.name == "dsm" and "update_engine" not in engine.names()
        assert "clear_field" in host.effects and sync.model[0].loss.name == "dsm"
    else:
        assert session.run_config == before and session.sampler_config == sampler  # put back
        assert notes.statuses == ["Kept the trained model and its settings"]
        # all put back: nothing to send, so the engine (and its metric curves) go on as they were
        assert "set_engine" not in engine.names() and "update_engine" not in engine.names()
        assert sync.model == (before, 2) and sync.trained_steps() == 500
    assert not sync.asking and not sync.rebuild_timer.isActive()

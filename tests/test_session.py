"""Session and undo commands without a window or a worker: data edits, undo/redo, configs."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QObject

from app.commands import points_near
from app.session import DataState, Session, empty_state, field_sigma_for, sigma_range
from sgm_core.config import RunConfig
from sgm_core.datasets import EmpiricalDataset, make_preset
from sgm_core.errors import DataError
from sgm_core.losses import LOSSES


@pytest.fixture
def session(qapp) -> Session:
    return Session()


def preset_state(name: str = "8gaussians", n: int = 200) -> DataState:
    ds = make_preset(name, n_points=n)
    return DataState(ds.points, name, "preset", ds, 0.0, name)


class Counter(QObject):
    def __init__(self, signal) -> None:  # noqa: ANN001
        super().__init__()
        self.n = 0
        signal.connect(self._hit)

    def _hit(self, *_args) -> None:  # noqa: ANN002
        self.n += 1


# --------------------------------------------------------------------------- geometry


def test_points_near_matches_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(5000, 2)).astype(np.float32)
    centres = rng.normal(size=(7, 2))
    radius = 0.4
    brute = np.zeros(len(pts), bool)
    for c in centres:
        brute |= np.hypot(*(pts - c).T) <= radius
    np.testing.assert_array_equal(points_near(pts, centres, radius), brute)
    assert not points_near(pts, np.zeros((0, 2)), radius).any()
    assert not points_near(pts, centres, 0.0).any()


# --------------------------------------------------------------------------- data edits


def test_starts_empty_and_cannot_train(session):
    assert session.points.shape == (0, 2)
    with pytest.raises(DataError, match="at least 2"):
        session.dataset()


def test_add_points_undo_redo(session):
    changed = Counter(session.data_changed)
    stroke = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]], np.float32)
    assert session.add_points(stroke)
    np.testing.assert_array_equal(session.points, stroke)
    assert session.dirty
    session.add_points(stroke + 5)
    assert len(session.points) == 6
    session.undo_stack.undo()
    np.testing.assert_array_equal(session.points, stroke)
    session.undo_stack.undo()
    assert len(session.points) == 0
    session.undo_stack.redo()
    session.undo_stack.redo()
    assert len(session.points) == 6
    assert changed.n == 6
    assert session.undo_stack.undoText() == "Add 3 points"


def test_drawn_points_become_a_brush_dataset(session):
    session.brush_radius = 0.4
    session.add_points(np.random.default_rng(1).normal(size=(50, 2)))
    ds = session.dataset()
    assert isinstance(ds, EmpiricalDataset)
    assert ds.jitter == pytest.approx(0.2)  # from_brush: jitter = radius / 2


def test_points_are_read_only_snapshots(session):
    session.add_points(np.zeros((3, 2)))
    with pytest.raises(ValueError):
        session.points[0, 0] = 1.0  # undo commands share states: they must never change


def test_bad_points_are_refused_with_a_message(session):
    messages = []
    session.error_reported.connect(messages.append)
    assert not session.add_points(np.array([[0.0, np.nan]]))
    assert not session.add_points(np.zeros((2, 3)))
    assert len(session.points) == 0
    assert session.undo_stack.count() == 0
    assert len(messages) == 2 and "NaN" in messages[0]


def test_preset_keeps_its_sampler_until_edited(session):
    state = preset_state()
    session.replace_data(state)
    assert session.dataset() is state.dataset  # generative: fresh draws from the preset's process
    assert not session.dirty
    session.add_points(np.array([[0.0, 0.0]]))
    assert session.data.kind == "drawn"
    assert session.data.name == "8gaussians (edited)"
    edited = session.dataset()
    assert isinstance(edited, EmpiricalDataset) and len(edited.points) == 201
    assert session.dirty
    session.undo_stack.undo()
    assert session.dataset() is state.dataset  # undo restores the generative preset
    assert not session.dirty


def test_erase_removes_points_within_radius(session):
    pts = np.array([[0, 0], [0.1, 0], [1, 1], [3, 3]], np.float32)
    session.add_points(pts)
    removed = session.erase_points(np.array([[0.0, 0.0]]), radius=0.5)
    assert removed == 2
    np.testing.assert_array_equal(session.points, pts[2:])
    assert session.erase_points(np.array([[10.0, 10.0]]), radius=0.5) == 0
    assert session.undo_stack.count() == 2  # a no-op erase pushes nothing
    session.undo_stack.undo()
    np.testing.assert_array_equal(session.points, pts)


def test_clear_and_replace_are_undoable(session):
    session.replace_data(preset_state(n=100))
    session.clear_points()
    assert len(session.points) == 0
    session.undo_stack.undo()
    assert len(session.points) == 100
    session.replace_data(preset_state("moons", n=50))
    assert session.data.name == "moons"
    session.undo_stack.undo()
    assert session.data.name == "8gaussians"


def test_empty_state_is_2d():
    assert empty_state().points.shape == (0, 2)


# --------------------------------------------------------------------------- configs and views


def test_new_loss_brings_its_default_sampler(session):
    changed = Counter(session.config_changed)
    for name, spec in LOSSES.items():
        session.set_run_config(session.run_config.with_(loss=session.run_config.loss.__class__(name=name)))
        assert session.sampler_config.name == spec.default_sampler
    assert changed.n == len(LOSSES)  # every loss differs from the one before it (the default is ncsn)
    session.set_run_config(session.run_config)
    assert changed.n == len(LOSSES)  # an unchanged config emits nothing


@pytest.mark.parametrize("loss", list(LOSSES))
def test_field_sigma_stays_in_the_loss_range(loss):
    cfg = RunConfig().with_(loss=RunConfig().loss.__class__(name=loss))
    lo, hi = sigma_range(cfg)
    assert 0 < lo < hi
    for requested in (1e-6, 0.1, 1e6):
        sigma = field_sigma_for(cfg, requested)
        kind = LOSSES[loss].noise
        if kind == "single":
            assert sigma == cfg.noise.sigma
        elif kind == "none":
            assert sigma == cfg.noise.sigma_min
        else:
            assert lo <= sigma <= hi


def test_view_and_particle_options_validate(session):
    changed = Counter(session.view_changed)
    session.set_view(heatmap="error")
    assert session.view.heatmap == "error" and changed.n == 1
    with pytest.raises(ValueError):
        session.set_view(heatmap="rainbow")
    with pytest.raises(DataError):
        session.set_particles(n_particles=0)
    session.set_particles(n_particles=100_000)
    assert session.particles.n_particles == 100_000

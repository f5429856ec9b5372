"""The Source layer in the window (app/source_layer.py): fm flows from a chosen source, whose points
the particles start on; a drawn source is undoable and erasable; sessions keep it; a source of another
dimension is refused with one banner; the truth is shown only where it is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gui_helpers import TIMEOUT_MS, frame, open_window, small_config, wait

from app.main_window import MainWindow
from sgm_core.datasets import make_preset

pytestmark = pytest.mark.usefixtures("warm_torch")
MODE_RADIUS = 0.6  # data units: 8gaussians' modes have std 0.15 and sit ~1.9 apart, so 4 std is "on a mode"
EIGHT = make_preset("8gaussians").gmm.means.numpy()


def on_eight_modes(points: np.ndarray) -> np.ndarray:
    """Per point: is it within MODE_RADIUS of one of 8gaussians' modes (the source's support)?"""
    return np.linalg.norm(points[:, None, :2] - EIGHT[None], axis=-1).min(1) < MODE_RADIUS


@pytest.fixture
def window(qtbot):
    w = open_window(qtbot, "moons")
    w.session.set_run_config(small_config(steps=40, loss="fm"))
    w.session.set_particles(n_particles=400)
    yield w
    w.close()


def choose_source(qtbot, w: MainWindow, name: str) -> None:
    combo = w.sources.panel.combo
    combo.activated.emit(combo.findData(name))  # as a click on the Source combo does
    wait(qtbot, lambda: w.session.source.state.origin == name)


def restarted_particles(qtbot, w: MainWindow, trained: int) -> np.ndarray:
    """The particles of a chain restarted after `trained` steps, read in the engine right after the
    restart (commands run in order; a frame on its way could still show the chain before)."""
    if w.worker_state.playing:
        w.toggle_play()
    wait(qtbot, lambda: not w.worker_state.playing)
    w.reset_particles()
    out: list[tuple[int, np.ndarray]] = []
    w.worker.call(lambda eng: out.append((eng.trainer.step, eng.particles_data().copy())))
    wait(qtbot, lambda: out)
    assert out[0][0] >= trained
    return out[0][1]


def test_fm_flows_from_a_chosen_source_and_its_particles_start_there(qtbot, window):
    w = window
    start = restarted_particles(qtbot, w, 0)
    assert on_eight_modes(start).mean() < 0.4  # N(0, I) before: most draws are off the ring (measured 0.17)
    choose_source(qtbot, w, "8gaussians")
    assert len(w.plot._source_item.data) == 5000  # the view shows the source beside the data
    w.actions_["train"].trigger()
    wait(qtbot, lambda: frame(w) is not None and frame(w).step >= 40 and not w.worker_state.training)
    start = restarted_particles(qtbot, w, 40)
    assert on_eight_modes(start).all()  # every particle starts on the source's support
    assert on_eight_modes(w.session.points).mean() < 0.4  # ... which is not the data's (moons: 0.27 of it)
    # moons is no Gaussian mixture: no truth for this flow, and the frame says why
    assert frame(w).reference_kind == "none" and "the data is not" in frame(w).reference_note
    w.sources.panel.combo.activated.emit(0)  # back to N(0, I)
    wait(qtbot, lambda: w.session.source.state.kind == "gaussian")
    assert on_eight_modes(restarted_particles(qtbot, w, 40)).mean() < 0.4


def test_a_drawn_source_is_undoable_and_erasable_and_leaves_the_data_alone(qtbot, window):
    w, layer = window, window.session.source
    data = w.session.points.copy()
    w.sources.start_drawing()
    assert layer.editing and w.plot.edit_layer == "source"
    stroke = np.array([[4.0, 4.0], [4.1, 4.0], [4.0, 4.1], [-4.0, -4.0]], np.float32)
    w.plot.stroke_finished.emit(stroke)
    assert layer.state.kind == "drawn" and np.array_equal(layer.state.points, stroke)
    w.plot.erase_finished.emit(np.array([[-4.0, -4.0]], np.float32))
    assert len(layer.state.points) == 3
    assert np.array_equal(w.session.points, data)  # the data took none of it
    w.session.undo_stack.undo()
    assert len(layer.state.points) == 4
    w.session.undo_stack.undo()
    assert len(layer.state.points) == 0
    w.session.undo_stack.redo()
    w.session.undo_stack.redo()
    assert len(layer.state.points) == 3
    w.actions_["train"].trigger()
    wait(qtbot, lambda: frame(w) is not None and frame(w).step >= 40 and not w.worker_state.training)
    start = restarted_particles(qtbot, w, 40)
    near = np.linalg.norm(start[:, None] - layer.state.points[None], axis=-1).min(1)
    assert near.max() < 1e-4  # a drawn source is its points: every particle starts on one


def test_a_session_keeps_the_source(qtbot, window, tmp_path, monkeypatch):
    w = window
    choose_source(qtbot, w, "8gaussians")
    w.actions_["train"].trigger()
    wait(qtbot, lambda: frame(w) is not None and frame(w).step >= 40 and not w.worker_state.training)
    path = tmp_path / "flow.sgm"
    monkeypatch.setattr(w, "ask_save_path", lambda *_: str(path))
    with qtbot.waitSignal(w.files.saved, timeout=TIMEOUT_MS):
        w.actions_["save_session_as"].trigger()
    saved = w.session.source.state.points.copy()
    w.files.new()
    assert w.session.source.state.kind == "gaussian"
    with qtbot.waitSignal(w.files.opened, timeout=TIMEOUT_MS):
        w.files.open(Path(path))
    state = w.session.source.state
    assert (state.kind, state.origin) == ("preset", "8gaussians") and np.array_equal(state.points, saved)
    assert state.dataset is not None and state.dataset.gmm is not None  # the preset's mixture comes back too
    assert w.session.run_config.loss.source == ""  # the layer holds the source, not the session's settings
    assert frame(w).step >= 40
    start = restarted_particles(qtbot, w, 40)
    assert on_eight_modes(start).all()  # the reopened engine flows from the saved source


def test_a_source_of_another_dimension_gets_one_banner(qtbot, window):
    w = window
    choose_source(qtbot, w, "torus")
    wait(qtbot, lambda: w.banner.isVisible())
    assert "3D but the data is 2D" in w.banner.text()
    start = restarted_particles(qtbot, w, 0)
    assert np.asarray(start).shape[1] == 2  # the engine goes on from N(0, I) on the 2D data


def test_the_exact_flow_between_two_mixtures_is_drawn(qtbot):
    """25gaussians from 8gaussians: both mixtures, independent pairs: the true field is the exact flow."""
    w = open_window(qtbot, "25gaussians")
    try:
        w.session.set_run_config(small_config(steps=20, loss="fm"))
        choose_source(qtbot, w, "8gaussians")
        w.session.set_view(true_field=True)
        wait(qtbot, lambda: frame(w) is not None and frame(w).true_field is not None
             and frame(w).reference_kind == "analytic")
        w.session.set_run_config(small_config(steps=20, loss="ot-fm"))
        wait(qtbot, lambda: frame(w) is not None and frame(w).reference_kind == "none")
        assert "optimal transport" in frame(w).reference_note
    finally:
        w.close()


def test_the_3d_view_draws_the_source_too(qtbot):
    """3D data flowing from a 3D preset: the 3D view holds the source's points (drawn in green under GL:
    tests/test_plot3d.py), faint while the loss does not flow from it, and none for N(0, I)."""
    w = open_window(qtbot, "gmm3d")
    try:
        w.session.set_run_config(small_config(steps=20, loss="fm"))
        choose_source(qtbot, w, "sphere")
        wait(qtbot, lambda: w.mode3d.is_3d and len(w.mode3d.plot3d.source_points()) > 0)
        shown = w.mode3d.plot3d.source_points()
        assert np.allclose(shown, w.session.source.state.points) and not w.mode3d.plot3d.source_faint
        w.session.set_run_config(small_config(steps=20, loss="dsm"))  # a loss from N(0, I): the source greys out
        wait(qtbot, lambda: w.mode3d.plot3d.source_faint)
        choose_source(qtbot, w, "")  # N(0, I): nothing to draw
        wait(qtbot, lambda: len(w.mode3d.plot3d.source_points()) == 0)
    finally:
        w.close()


def test_tools_compare_flows_from_the_windows_source(qtbot, window):
    """Tools ▸ Compare losses on fm from 8gaussians: the comparison's spec carries the window's source
    (its fm run then starts on it: tests/test_compare_task.py); a Gaussian source sends none."""
    from app.compare_window import open_compare

    choose_source(qtbot, window, "8gaussians")
    compare = open_compare(window, "losses", checked=("fm", "dsm"))
    qtbot.addWidget(compare)
    try:
        spec = compare.spec()
        assert spec.source is not None and np.array_equal(spec.source.points, window.session.source.state.points)
    finally:
        compare.close()
    choose_source(qtbot, window, "")
    compare = open_compare(window, "losses", checked=("fm",))
    qtbot.addWidget(compare)
    try:
        assert compare.spec().source is None
    finally:
        compare.close()

"""The Condition tool in the window (issue 16): drag the line x = x0 on the canvas, the particles
collapse onto it and sample p(y | x0) with the analytic conditional's mode weights; another tool
samples the joint again. Particles follow the exact mixture score (no training needed)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from gui_helpers import frame, open_window, wait
from PySide6.QtCore import QPoint, QPointF, Qt

pytestmark = pytest.mark.usefixtures("warm_torch")
PLAY_BUDGET_S = 0.25  # particle steps per frame: these tests check where the chain ends, not the frame clock
PRESET = "6gaussians-unequal"  # the line x ~ 1.25 crosses the modes of weight 2 and 6: 0.25 / 0.75
WEIGHT_TOL = 0.06  # 2000 particles (SE ~0.01) + annealed Langevin's measured bias with the exact score (~0.03)


@pytest.fixture(autouse=True)
def whole_steps_per_frame(monkeypatch):
    """The engine's play budget (22 ms of particle steps a frame) held a frame to one or two of the
    steps-per-frame asked for on a loaded machine: 1,600 annealed steps took hundreds of frames. The
    chain, and so what is asserted, does not depend on how its steps are split into frames."""
    from sgm_core import engine

    monkeypatch.setattr(engine, "PLAY_BUDGET", PLAY_BUDGET_S)


def _viewport_pos(plot, x: float, y: float) -> QPoint:
    scene = plot.getPlotItem().getViewBox().mapViewToScene(QPointF(x, y))
    return plot.mapFromScene(scene)


def test_dragging_the_condition_line_samples_the_analytic_conditional(qtbot, tmp_path):
    w = open_window(qtbot, data=PRESET)
    try:
        w.session.set_particles(n_particles=2000, steps_per_frame=80, reference_score=True)
        w.actions_["tool_condition"].trigger()
        assert w.plot.tool == "condition" and w.condition_tool.dock.isVisible()
        vp = w.plot.viewport()
        qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=_viewport_pos(w.plot, 0.3, 0.0))
        qtbot.mouseMove(vp, _viewport_pos(w.plot, 0.8, 0.5))
        end = _viewport_pos(w.plot, 1.25, 0.5)
        qtbot.mouseMove(vp, end)
        qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=end)
        axis, x0 = w.plot.condition
        assert axis == 0 and abs(x0 - 1.25) < 0.05
        w.actions_["play"].trigger()

        def settled() -> bool:
            f = frame(w)
            return (f is not None and f.conditional is not None and f.sampler_step >= f.sampler_steps
                    and np.allclose(f.particles[:, 0], x0, atol=1e-4))
        wait(qtbot, settled, timeout=120_000)
        f = frame(w)
        w.condition_tool.view.show_frame(f)
        truth, got = w.condition_tool.view.last_weights
        assert len(truth) == 2 and abs(truth[0] - 0.75) < 0.03  # low to high y: the mode at y ~ -2.17 weighs 6 of 8
        assert np.abs(truth - got).max() < WEIGHT_TOL, (truth, got)
        assert "particles" in w.condition_tool.view.caption.text()
        assert "not exact" not in w.condition_tool.view.caption.text()
        w.grab().save(str(tmp_path / "condition.png"))
        w.session.set_sampler_config(replace(w.session.sampler_config, name="sde"))  # measured biased: said so
        wait(qtbot, lambda: "sde with a joint score is not exact" in w.condition_tool.view.caption.text())

        w.actions_["tool_pan"].trigger()  # the tool off: the joint again, off the line
        assert w.plot.condition is None and not w.condition_tool.dock.isVisible()
        wait(qtbot, lambda: frame(w).conditional is None and frame(w).particles[:, 0].std() > 0.5, timeout=60_000)
    finally:
        w.close()


def test_in_3d_the_tool_holds_the_slice_plane(qtbot):
    """3D: with a slice on z the tool holds z at the plane and the particles sample the plane's
    conditional p(x, y | z = z0): its two modes (0.8 / 0.2), not the joint's four; moving the slice
    moves the condition. (The weights' precision is checked in 2D above and in test_conditioning;
    annealed Langevin's measured bias on this plane is 0.04-0.06, toward equal weights.)"""
    import torch

    from sgm_core.datasets import make_preset

    w = open_window(qtbot, data="gmm3d")
    try:
        wait(qtbot, lambda: w.mode3d.is_3d)
        w.session.set_particles(n_particles=1000, steps_per_frame=200, reference_score=True)
        w.mode3d.set_slice(2, 0.8)
        w.actions_["tool_condition"].trigger()
        assert w.condition_tool.given == {2: 0.8}
        w.mode3d.set_slice(2, 0.5)  # the plane moved: the condition follows
        assert w.condition_tool.given == {2: 0.5}
        w.actions_["play"].trigger()

        def settled() -> bool:
            f = frame(w)
            return (f is not None and f.dim == 3 and f.sampler_step >= f.sampler_steps
                    and np.allclose(f.particles[:, 2], 0.5, atol=1e-4))
        wait(qtbot, settled, timeout=240_000)  # llvmpipe draws the 3D view on the same two cores
        cond = make_preset("gmm3d").gmm.conditional([2], [0.5])
        xy = torch.as_tensor(frame(w).particles[:, :2], dtype=torch.float64)
        got = torch.bincount(cond.responsibilities(xy).argmax(1), minlength=cond.n_components).double() / len(xy)
        on_plane = cond.weights > 0.1  # components 0 and 3 (z-mean 1): 0.8 / 0.2
        assert float(got[~on_plane].sum()) < 0.05, got  # the joint would put 0.5 on the other two
        assert float(got[on_plane].max()) > 0.65 and got[0] > got[3], got
        w.actions_["tool_pan"].trigger()
        assert w.condition_tool.given is None
    finally:
        w.close()

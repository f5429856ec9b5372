"""LossView: the raw loss and its EMA are drawn, updates are cheap, log-y falls back when it must."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtGui import QImage

from app.views import colors
from app.views.loss_view import LossView, ema
from sgm_core.live import Frame


def make_frame(losses: np.ndarray, step: int | None = None) -> Frame:
    losses = np.asarray(losses, dtype=np.float64)
    return Frame(
        step=len(losses) if step is None else step, losses=losses, loss_steps=np.arange(1, len(losses) + 1),
        particles=np.zeros((0, 2), np.float32), trails=None, sampler_step=0, sampler_sigma=1.0, sampler_done=False,
        field=None, true_field=None, field_sigma=0.0, heatmap=None, error_map=None, heatmap_bounds=None,
        score_error=None, reference_kind="analytic", steps_per_second=0.0, elapsed=0.0, eta=None, device="cpu", dim=2,
    )


def noisy_decay(n: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 2.0 * np.exp(-np.arange(n) / 150) + 0.1 + 0.05 * rng.random(n)


@pytest.fixture
def view(qtbot) -> LossView:
    v = LossView()
    qtbot.addWidget(v)
    v.resize(500, 300)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_ema_is_bias_corrected_and_smooths():
    np.testing.assert_allclose(ema(np.full(20, 3.0), span=10), 3.0)  # a constant stays constant from the start
    y = noisy_decay()
    s = ema(y, span=20)
    assert s.shape == y.shape
    assert np.std(np.diff(s)) < 0.2 * np.std(np.diff(y))
    assert s[0] == y[0]


def test_show_frame_sets_both_curves(view):
    y = noisy_decay()
    view.show_frame(make_frame(y))
    x_raw, y_raw = view._raw.getData()
    x_ema, y_ema = view._smooth.getData()
    np.testing.assert_array_equal(y_raw, y)
    np.testing.assert_array_equal(x_raw, np.arange(1, len(y) + 1))
    assert len(y_ema) == len(y) and np.std(np.diff(y_ema)) < np.std(np.diff(y))


def test_non_finite_losses_are_skipped_and_empty_is_fine(view):
    y = noisy_decay(50)
    y[10] = np.nan
    view.show_frame(make_frame(y))
    assert len(view._raw.getData()[1]) == 49
    view.show_frame(make_frame(np.zeros(0)))
    assert view._raw.getData()[1] is None or len(view._raw.getData()[1]) == 0


def test_repeated_frames_skip_the_update(view):
    f = make_frame(noisy_decay(100))
    view.show_frame(f)
    view._raw.setData(x=np.zeros(1), y=np.zeros(1))  # would be overwritten by a real update
    view.show_frame(dataclasses.replace(f, particles=np.ones((3, 2), np.float32)))
    assert len(view._raw.getData()[1]) == 1


def test_log_mode_and_fallback_for_non_positive_losses(view):
    view.show_frame(make_frame(noisy_decay()))
    view.set_log(True)
    assert view.log_active
    assert view.getPlotItem().getAxis("left").logMode
    view.show_frame(make_frame(noisy_decay() - 1.0, step=501))  # sliced score matching losses go negative
    assert not view.log_active
    assert "linear" in view.getPlotItem().titleLabel.text
    view.set_log(False)
    assert not view.log_active and "linear" not in view.getPlotItem().titleLabel.text


def test_the_smoothed_line_is_drawn(view):
    view.show_frame(make_frame(noisy_decay()))
    img = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    rgb = np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)[:, : w * 3].reshape(h, w, 3)
    target = np.array(colors.LOSS_EMA[:3])
    close = np.abs(rgb.astype(int) - target).max(axis=2) < 40
    assert close.sum() > 200  # a 2 px line across most of the width
    raw = np.abs(rgb.astype(int) - np.array(colors.LOSS[:3])).max(axis=2) < 25
    assert raw.sum() > 100


def test_an_emptied_plot_forgets_the_last_runs_range_and_the_next_run_sets_its_own(view, qtbot):
    """Reset after a log-y run: the axes showed steps 0-800 and the old log10 range (2.2-2.6) read as
    linear losses; an empty run's axes are 0-1, and the next run's points set the range again.
    (The view fits its range when it next paints: each range is waited for.)"""
    def y_range() -> tuple[float, float]:
        return tuple(view.getPlotItem().viewRange()[1])

    view.set_log(True)
    view.show_frame(make_frame(200.0 + 200.0 * np.exp(-np.arange(800) / 200)))
    qtbot.waitUntil(lambda: 2.2 < y_range()[1] < 2.7, timeout=5000)  # log10 of ~400
    assert view.log_active
    view.reset()
    qtbot.waitUntil(lambda: view.getPlotItem().viewRange() == [[0.0, 1.0], [0.0, 1.0]], timeout=5000)
    view.set_log(False)
    losses = noisy_decay(300)
    view.show_frame(make_frame(losses))

    def fitted() -> bool:
        (x0, x1), (y0, y1) = view.getPlotItem().viewRange()
        return x0 <= 1 and x1 >= 300 and y0 <= losses.min() and losses.max() <= y1 < 2 * losses.max()

    qtbot.waitUntil(fitted, timeout=5000)  # all of the new curve

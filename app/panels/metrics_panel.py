"""Metrics panel: live ground truth while training and sampling.

Left, the score error of the learned score against the reference (relative Fisher divergence) at a
few σ across the ladder, as curves over training steps; right, how the particles compare with the
data (sliced-Wasserstein ratio, MMD, energy distance, PF-ODE log-likelihood) and, for mixtures,
their mode weights against the true ones. Everything is computed in the engine worker
(`EngineWorker.metrics_updated`); this widget only draws the dicts it receives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..views import colors
from ..views.plot2d import cache_axes, style_plot

SW_HISTORY = 200  # sample-metric updates kept for the SW-ratio sparkline (~8 min at one per 2.5 s)
LOG_FLOOR = 1e-6  # score errors are plotted on a log axis: clamp an exact 0 to this
SIGMA_COLORS = (0.0, 0.3, 0.55, 0.8)  # positions on viridis for the σ curves, small σ dark
BAR_SAMPLE: colors.RGBA = colors.PARTICLE  # particles' mode weights: the particles' colour
BAR_TRUE: colors.RGBA = (150, 150, 150, 255)  # the mixture's weights: grey, like the true field
SCORE_TITLE = "Score error vs truth"

TIPS = {
    "sw_ratio": "Sliced-Wasserstein distance particles ↔ data over data ↔ data (two draws of the data): "
                "1 means the particles are as close to the data as a second sample would be",
    "mmd": "Squared maximum mean discrepancy, RBF kernel with the median bandwidth: 0 for the same distribution",
    "energy": "Energy distance 2E|X−Y| − E|X−X′| − E|Y−Y′| (Székely & Rizzo), data units: 0 for the same distribution",
    "on_mode": "Share of particles within 3 standard deviations of the mixture component they belong to",
    "log_likelihood": "Mean log-likelihood of 100 data points under the model's probability-flow ODE (Song et al. 2021, "
                      "exact divergence, 30 Heun steps), nats per point in data units: higher is better",
}


def _style(plot: pg.PlotWidget, title: str, left: str = "", bottom: str = "") -> pg.PlotItem:
    """The light look of the other views: dark axes, faint grid, no autoscale button."""
    pi = plot.getPlotItem()
    pi.setTitle(title, color=colors.FOREGROUND[:3], size="9pt")
    style_plot(pi)
    pi.setMenuEnabled(False)
    for name, text in (("left", left), ("bottom", bottom)):
        if text:
            pi.setLabel(name, text)
    cache_axes(pi)
    return pi


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


class MetricsPanel(QWidget):
    """Draws `EngineWorker.metrics_updated` dicts; a new engine generation (`gen`) starts afresh."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._gen: int | None = None
        self.curves: dict[float, tuple[list[int], list[float]]] = {}  # σ -> (steps, relative Fisher divergence)
        self.history: list[dict[str, Any]] = []  # one entry per sample-metrics update
        self.last: dict[str, Any] = {}
        self._note = ""  # appended to the score plot's title (e.g. "particles use the true score")

        self.reference_label = QLabel()
        self.reference_label.setTextFormat(Qt.TextFormat.RichText)
        self.reference_label.setToolTip("What the learned score is compared with")
        self.status_label = QLabel()
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.status_label.setStyleSheet("color: #777;")
        self.status_label.setToolTip("Metrics refresh about every 2.5 s, and only while this dock is open")
        top = QHBoxLayout()
        top.addWidget(self.reference_label, 1)
        top.addWidget(self.status_label)

        self.score_plot = pg.PlotWidget(background=colors.BACKGROUND)
        self.score_plot.setToolTip("E|s_θ − s_ref|² / E|s_ref|² on noisy data at each σ: 0 is perfect, 1 is "
                                   "'predicts zero'. Lower curves: the net has learned that noise level")
        spi = _style(self.score_plot, SCORE_TITLE, left="E|s<sub>θ</sub> − s|² / E|s|²", bottom="step")
        spi.setLogMode(x=False, y=True)
        spi.getAxis("bottom").enableAutoSIPrefix(False)
        spi.getAxis("left").setStyle(maxTextLevel=1, textFillLimits=[(0, 0.8), (2, 0.6), (4, 0.4)])
        self._score_items: dict[float, pg.PlotDataItem] = {}

        self.score_plot.setMinimumWidth(240)
        self.bar_plot = pg.PlotWidget(background=colors.BACKGROUND)
        self.bar_plot.setMinimumWidth(150)
        self.bar_plot.setToolTip("Share of particles per mixture component (orange) next to the true weights (grey)")
        bpi = _style(self.bar_plot, "Mode weights: particles vs true", bottom="component")
        bpi.setMouseEnabled(x=False, y=False)
        self._bars_sample = pg.BarGraphItem(x=[], height=[], width=0.38, brush=pg.mkBrush(BAR_SAMPLE), pen=None)
        self._bars_true = pg.BarGraphItem(x=[], height=[], width=0.38, brush=pg.mkBrush(BAR_TRUE), pen=None)
        bpi.addItem(self._bars_true)
        bpi.addItem(self._bars_sample)

        self.sw_plot = pg.PlotWidget(background=colors.BACKGROUND)
        self.sw_plot.setToolTip(TIPS["sw_ratio"])
        wpi = _style(self.sw_plot, "SW ratio (1 = like the data)")
        wpi.setLogMode(x=False, y=True)
        wpi.getAxis("bottom").setStyle(showValues=False)
        wpi.getAxis("left").setTicks([[(float(k), f"{10.0 ** k:g}") for k in range(-1, 4)], []])  # decades only
        wpi.getAxis("left").setWidth(30)
        wpi.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(BAR_TRUE, style=Qt.PenStyle.DashLine)))  # log10(1)
        self._sw_item = wpi.plot(pen=pg.mkPen(colors.PARTICLE, width=2), symbol="o", symbolSize=4,
                                 symbolBrush=pg.mkBrush(colors.PARTICLE), symbolPen=None)

        self.value_labels: dict[str, QLabel] = {}
        numbers = QFormLayout()
        numbers.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        numbers.setVerticalSpacing(2)
        for key, text in (("sw_ratio", "SW ratio"), ("mmd", "MMD²"), ("energy", "Energy dist."),
                          ("on_mode", "On a mode"), ("log_likelihood", "Log-lik.")):
            label = QLabel("–")
            label.setToolTip(TIPS[key])
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            name = QLabel(text)
            name.setToolTip(TIPS[key])
            numbers.addRow(name, label)
            self.value_labels[key] = label
        side = QVBoxLayout()
        side.addLayout(numbers)
        side.addWidget(self.sw_plot, 1)
        side_w = QWidget()
        side_w.setLayout(side)
        side.setContentsMargins(0, 0, 0, 0)
        side_w.setMinimumWidth(190)
        side_w.setMaximumWidth(260)

        row = QHBoxLayout()  # a hidden bar chart (no mixture) leaves its room to the score plot
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(self.score_plot, 5)
        row.addWidget(self.bar_plot, 3)
        row.addWidget(side_w, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addLayout(row, 1)
        self.setMinimumHeight(180)
        self.reset()

    # -- drawing ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every curve and number (a new engine: new data, loss or network)."""
        self.curves.clear()
        self.history.clear()
        self.last = {}
        for item in self._score_items.values():
            self.score_plot.getPlotItem().removeItem(item)
        self._score_items.clear()
        self._note = ""
        self._set_score_title()
        self._sw_item.setData(x=np.zeros(0), y=np.zeros(0))
        self._bars_sample.setOpts(x=[], height=[])
        self._bars_true.setOpts(x=[], height=[])
        self.bar_plot.setVisible(False)
        for label in self.value_labels.values():
            label.setText("–")
        self.reference_label.setText("<b>Ground truth</b> — metrics appear once the model trains or particles move")
        self.status_label.setText("")

    def show_metrics(self, metrics: dict[str, Any]) -> None:
        """Draw one update from the worker; `updated` says which parts are new ("curve", "samples")."""
        if metrics.get("gen") != self._gen:
            self.reset()
            self._gen = metrics.get("gen")
            self._set_reference(metrics)
        self.last = dict(metrics)
        updated = metrics.get("updated", ("curve", "samples"))
        if "curve" in updated and "score_errors" in metrics:
            self._add_curve_points(metrics["score_step"], metrics["sigmas"], metrics["score_errors"])
        if "samples" in updated and "sw_ratio" in metrics:
            self._show_samples(metrics)
        parts = []
        if "score_step" in metrics:
            parts.append(f"score at step {metrics['score_step']:,}")
        if "sampler_step" in metrics:
            parts.append(f"particles at sampler step {metrics['sampler_step']:,}")
        self.status_label.setText(" · ".join(parts))

    def _set_reference(self, m: dict[str, Any]) -> None:
        if m.get("reference_kind") == "analytic":
            text = "<b>Ground truth:</b> analytic mixture score"
            tip = "The data is a Gaussian mixture: its perturbed density q_σ is a mixture too, with an exact score"
        else:
            n = m.get("reference_points", 0)
            text = f"<b>Ground truth:</b> empirical (log-sum-exp over {n:,} points)"
            tip = ("No closed form for this data: the reference is the exact score of the data points smoothed "
                   "by N(0, σ²I), a log-sum-exp over the points (it approaches the true q_σ score as N grows)")
        self.reference_label.setText(text)
        self.reference_label.setToolTip(tip)

    @staticmethod
    def _sigma_rgb(i: int) -> tuple[int, int, int]:
        rgb = colors.sample(colors.VIRIDIS, SIGMA_COLORS[min(i, len(SIGMA_COLORS) - 1)])
        return tuple(int(round(c)) for c in rgb)

    def _set_score_title(self) -> None:
        """The σ legend lives in the title, coloured like the curves: no box over the curves."""
        keys = "&nbsp; ".join(f"<span style='color:#{r:02x}{g:02x}{b:02x}'><b>σ={sigma:.2g}</b></span>"
                              for sigma, (r, g, b) in ((s, self._sigma_rgb(i)) for i, s in enumerate(self.curves)))
        title = SCORE_TITLE + (f"&nbsp;&nbsp;{keys}" if keys else "") + self._note
        self.score_plot.getPlotItem().setTitle(title, color=colors.FOREGROUND[:3], size="9pt")

    def _add_curve_points(self, step: int, sigmas: list[float], errors: list[float]) -> None:
        pi = self.score_plot.getPlotItem()
        new = not self.curves
        for i, (sigma, err) in enumerate(zip(sigmas, errors, strict=True)):
            steps, values = self.curves.setdefault(float(sigma), ([], []))
            if steps and step <= steps[-1]:
                continue  # the same model again (e.g. the dock was reopened)
            steps.append(int(step))
            values.append(max(float(err), LOG_FLOOR) if math.isfinite(err) else np.nan)
            item = self._score_items.get(float(sigma))
            if item is None:
                rgb = self._sigma_rgb(i)
                item = pi.plot(pen=pg.mkPen(rgb, width=2), symbol="o", symbolSize=4, symbolPen=None,
                               symbolBrush=pg.mkBrush(rgb), name=f"σ = {sigma:.3g}")
                self._score_items[float(sigma)] = item
            item.setData(x=np.asarray(steps, float), y=np.asarray(values, float))
        last = max((s[-1] for s, _ in self.curves.values() if s), default=0)
        pi.setXRange(0, max(last, 10), padding=0.02)  # from step 0, even before training
        if new:
            self._set_score_title()

    def _show_samples(self, m: dict[str, Any]) -> None:
        self.history.append({k: m.get(k) for k in ("train_step", "sampler_step", "sw_ratio", "mmd", "energy",
                                                    "on_mode", "log_likelihood")})
        del self.history[:-SW_HISTORY]
        labels = self.value_labels
        sw = m.get("sw_ratio")
        labels["sw_ratio"].setText("–" if sw is None else _fmt(sw, ".2f") + "×")
        labels["mmd"].setText(_fmt(m.get("mmd"), ".2e"))
        labels["energy"].setText(_fmt(m.get("energy"), ".3g"))
        on_mode = m.get("on_mode")
        labels["on_mode"].setText("– (not a mixture)" if on_mode is None else f"{100 * on_mode:.0f}%")
        ll = m.get("log_likelihood")
        if ll is not None:
            labels["log_likelihood"].setText(f"{ll:.2f} nats/pt")
        elif m.get("reference_score"):
            labels["log_likelihood"].setText("– (true score)")
        else:
            labels["log_likelihood"].setText("– (no σ ladder)" if not m.get("conditional", True) else "–")
        ratios = np.array([h["sw_ratio"] for h in self.history], float)
        self._sw_item.setData(x=np.arange(len(ratios), dtype=float), y=np.clip(ratios, LOG_FLOOR, None))
        weights, true = m.get("mode_weights"), m.get("true_weights")
        self.bar_plot.setVisible(weights is not None)
        if weights is not None and true is not None:
            k = np.arange(1, len(weights) + 1, dtype=float)
            self._bars_sample.setOpts(x=k - 0.2, height=np.asarray(weights, float))
            self._bars_true.setOpts(x=k + 0.2, height=np.asarray(true, float))
            top = max(max(weights), max(true), 1e-3)
            pi = self.bar_plot.getPlotItem()
            pi.setRange(xRange=(0.4, len(k) + 0.6), yRange=(0, 1.1 * top), padding=0)
            every = max(1, len(k) // 12)  # at most ~12 labels: 25-mode mixtures stay readable
            pi.getAxis("bottom").setTicks([[(float(i), str(i)) for i in range(1, len(k) + 1, every)], []])
        note = "&nbsp;· particles: true score" if m.get("reference_score") else ""
        if note != self._note:
            self._note = note
            self._set_score_title()

    def sw_ratios(self) -> list[float]:
        """The SW ratios received so far, oldest first (tests and the status line read them)."""
        return [float(h["sw_ratio"]) for h in self.history if h.get("sw_ratio") is not None]

"""Metrics panel: live ground truth while training and sampling.

Left, the numbers: how the particles compare with the data (sliced-Wasserstein ratio, MMD, energy
distance, share on a mode) and the PF-ODE log-likelihood. Right, one tab per plot, so each has the
dock's whole width: the score error of the learned score against the reference (relative Fisher
divergence) at a few σ over the whole run, the SW ratio over time and, for mixtures, the mode
weights against the true ones. Everything is computed in the engine worker
(`EngineWorker.metrics_updated`); this widget only draws the dicts it receives. A number that is
not meaningful (a blown-up likelihood) reads "—" and its tooltip says why.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QSizePolicy, QTabWidget, QVBoxLayout, QWidget

from ..progress import sampler_step_text
from ..views import colors
from ..views.axes import thin_axes
from ..views.plot2d import cache_axes, style_plot

SW_HISTORY = 200  # sample-metric updates kept for the SW-ratio sparkline (~8 min at one per 2.5 s)
SAVED_CURVE_POINTS = 2000  # score-error points per σ a session keeps (decimated beyond)
LOG_FLOOR = 1e-6  # score errors are plotted on a log axis: clamp an exact 0 to this
LL_PLAUSIBLE = 1e3  # nats/pt: a PF-ODE log-likelihood beyond ±this (2D/3D data) is a blow-up, not an estimate
NUMBERS_WIDTH = 200  # px of the numbers column: fixed, so the dock never changes width with the text
SIGMA_COLORS = (0.0, 0.3, 0.55, 0.8)  # positions on viridis for the σ curves, small σ dark
BAR_SAMPLE: colors.RGBA = colors.PARTICLE  # particles' mode weights: the particles' colour
BAR_TRUE: colors.RGBA = (150, 150, 150, 255)  # the mixture's weights: grey, like the true field
NOT_MEANINGFUL = "—"
TABS = ("Score error vs truth", "SW ratio", "Mode weights")
# What the error curve measures (the engine's `measure`, `Parameterisation.measures`): a flow net
# is judged by its velocity, whose score form divides by t and reads 10²-10⁴ at t = 0.001.
MEASURES = {
    "score": {"tab": TABS[0], "axis": "E|s<sub>θ</sub> − s|² / E|s|²", "level": "σ", "name": "score error",
              "tip": "E|s_θ − s_ref|² / E|s_ref|² on noisy data at each σ, over the whole run: 0 is perfect, 1 is "
                     "'predicts zero'. Lower curves: the net has learned that noise level",
              "levels": "Noise levels σ of the curves (standardised units), coloured like them"},
    "velocity": {"tab": "Velocity error vs truth", "axis": "E|v<sub>θ</sub> − v|² / E|v|²", "level": "t",
                 "name": "velocity error",
                 "tip": "E|v_θ − v|² / E|v|² of the flow net's velocity against the exact one on x_t drawn at each "
                        "time t, over the whole run: 0 is perfect, 1 is 'predicts zero'. (A flow's score is "
                        "−(x + (1 − t) v) / t: its error divides by t, so the velocity the net predicts is compared)",
                 "levels": "Flow times t of the curves (0 is the data), coloured like them"},
}

TIPS = {
    "sw_ratio": "Sliced-Wasserstein distance particles ↔ data over data ↔ data (the mean over 8 other draws of "
                "the data): 1 means the particles are as close to the data as a second sample would be. Up to "
                "1,000 particles, against the same data draws as a lesson's checks; it grows with the count "
                "where the particles are off",
    "mmd": "Squared maximum mean discrepancy, RBF kernel with the median bandwidth: 0 for the same distribution. "
           "Shown as max(0, ·): the estimate is the unbiased one, which dips slightly below 0 when the particles "
           "match the data (the raw value is in this tooltip)",
    "energy": "Energy distance 2E|X−Y| − E|X−X′| − E|Y−Y′| (Székely & Rizzo), data units: 0 for the same distribution",
    "on_mode": "Share of particles within 3 standard deviations of the mixture component they belong to",
    "log_likelihood": "Mean log-likelihood of 100 data points under the model's probability-flow ODE (Song et al. 2021, "
                      "exact divergence, 30 Heun steps), nats per point in data units: higher is better. "
                      f"'{NOT_MEANINGFUL}' when the estimate is not meaningful (not finite, or beyond ±{LL_PLAUSIBLE:g})",
    "score": MEASURES["score"]["tip"],
    "sw_plot": "The SW ratio at each metrics update, oldest left (log scale; the dashed line is 1×)",
    "bars": "Share of particles per mixture component (orange) next to the true weights (grey)",
}


def _style(plot: pg.PlotWidget, left: str = "", bottom: str = "") -> pg.PlotItem:
    """The light look of the other views: dark axes, faint grid, no autoscale button; the tab names the plot."""
    pi = plot.getPlotItem()
    style_plot(pi)
    pi.setMenuEnabled(False)
    for name, text in (("left", left), ("bottom", bottom)):
        if text:
            pi.setLabel(name, text)
    cache_axes(pi)
    return pi


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


def _number(value: object) -> float | int | None:
    """A saved number as it was written, or None (a hand-edited or foreign entry)."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def likelihood_text(ll: float | None) -> tuple[str, str]:
    """(label, tooltip) for a PF-ODE log-likelihood: "—" with the reason when it is not meaningful."""
    if ll is None:
        return "–", TIPS["log_likelihood"]
    if not math.isfinite(ll) or abs(ll) > LL_PLAUSIBLE:
        return NOT_MEANINGFUL, (f"Not meaningful: the estimate came out as {ll:.3g} nats/pt, beyond any density "
                                f"of 2D/3D data (±{LL_PLAUSIBLE:g}). The model is probably diverged or far from "
                                "trained; train on or press Reset.")
    return f"{ll:.2f} nats/pt", TIPS["log_likelihood"]


def mmd_text(mmd: float | None) -> tuple[str, str]:
    """(label, tooltip) for the unbiased MMD² estimate, shown as max(0, ·)."""
    if mmd is None or not math.isfinite(mmd):
        return "–", TIPS["mmd"]
    return format(max(0.0, mmd), ".2e"), f"{TIPS['mmd']}\nUnbiased estimate now: {mmd:.3e}"


def _plot_tab(plot: pg.PlotWidget, legend: QLabel | None = None) -> QWidget:
    page = QWidget()
    column = QVBoxLayout(page)
    column.setContentsMargins(0, 2, 0, 0)
    column.setSpacing(0)
    if legend is not None:
        column.addWidget(legend)
    column.addWidget(plot, 1)
    return page


class MetricsPanel(QWidget):
    """Draws `EngineWorker.metrics_updated` dicts; a new engine generation (`gen`) starts afresh."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._gen: int | None = None
        self._stale_upto: int | None = None  # metrics of generations up to this one are of data no longer shown
        self._adopt_next = False  # restored curves belong to the next generation (an opened session)
        self._target = 0  # the step count the run trains to: the score-error x axis reaches it
        self.curves: dict[float, tuple[list[int], list[float]]] = {}  # σ -> (steps, relative Fisher divergence)
        self.history: list[dict[str, Any]] = []  # one entry per sample-metrics update
        self.last: dict[str, Any] = {}
        self._note = ""  # appended to the σ legend (e.g. "particles use the true score")
        self._spacing: float | None = None  # an empirical truth's point spacing: below it, it is spiky
        self._level_noise: dict[float, float] = {}  # each curve's level as the noise it puts on the data
        self._error_target = ""  # what the error curve compares: "" (the data) or "class c, w = …"
        self.measure = "score"  # what the error curve measures: a key of MEASURES

        self.reference_label = QLabel()
        self.reference_label.setTextFormat(Qt.TextFormat.RichText)
        self.reference_label.setWordWrap(True)
        self.reference_label.setToolTip("What the learned score is compared with")
        self.status_label = QLabel()
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.status_label.setStyleSheet("color: #777;")
        self.status_label.setToolTip("The training step of the score error and the sampler step of the particle "
                                     "metrics; they refresh about every 2.5 s, and only while this dock is open")
        top = QHBoxLayout()
        top.addWidget(self.reference_label, 1)
        top.addWidget(self.status_label)

        self.score_plot = pg.PlotWidget(background=colors.BACKGROUND, axisItems=thin_axes())
        self.score_plot.setToolTip(TIPS["score"])
        spi = _style(self.score_plot, left="E|s<sub>θ</sub> − s|² / E|s|²", bottom="step")
        spi.setLogMode(x=False, y=True)
        spi.vb.disableAutoRange(pg.ViewBox.XAxis)  # the x range is the whole run, set below
        self._score_items: dict[float, pg.PlotDataItem] = {}
        self.sigma_legend = QLabel()  # the σ keys, coloured like the curves: no box over the curves
        self.sigma_legend.setTextFormat(Qt.TextFormat.RichText)
        self.sigma_legend.setWordWrap(True)
        self.sigma_legend.setToolTip("Noise levels σ of the curves (standardised units), coloured like them")

        self.bar_plot = pg.PlotWidget(background=colors.BACKGROUND, axisItems=thin_axes())
        self.bar_plot.setToolTip(TIPS["bars"])
        bpi = _style(self.bar_plot, bottom="component")
        bpi.setMouseEnabled(x=False, y=False)
        bpi.vb.disableAutoRange()
        self._bars_sample = pg.BarGraphItem(x=[], height=[], width=0.38, brush=pg.mkBrush(BAR_SAMPLE), pen=None)
        self._bars_true = pg.BarGraphItem(x=[], height=[], width=0.38, brush=pg.mkBrush(BAR_TRUE), pen=None)
        bpi.addItem(self._bars_true)
        bpi.addItem(self._bars_sample)
        bar_legend = QLabel(f"<span style='color:#{BAR_SAMPLE[0]:02x}{BAR_SAMPLE[1]:02x}{BAR_SAMPLE[2]:02x}'>"
                            "<b>■ particles</b></span>&nbsp;&nbsp;<span style='color:#969696'><b>■ true</b></span>")
        bar_legend.setToolTip(TIPS["bars"])

        self.sw_plot = pg.PlotWidget(background=colors.BACKGROUND, axisItems=thin_axes())
        self.sw_plot.setToolTip(TIPS["sw_plot"])
        wpi = _style(self.sw_plot, bottom="metrics update")
        wpi.setLogMode(x=False, y=True)
        wpi.getAxis("bottom").setStyle(showValues=False)
        wpi.getAxis("left").setTicks([[(float(k), f"{10.0 ** k:g}") for k in range(-1, 4)], []])  # decades only
        wpi.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(BAR_TRUE, style=Qt.PenStyle.DashLine)))  # log10(1)
        self._sw_item = wpi.plot(pen=pg.mkPen(colors.PARTICLE, width=2), symbol="o", symbolSize=4,
                                 symbolBrush=pg.mkBrush(colors.PARTICLE), symbolPen=None)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setElideMode(Qt.TextElideMode.ElideNone)
        self.tabs.setUsesScrollButtons(True)
        for page, title in ((_plot_tab(self.score_plot, self.sigma_legend), TABS[0]), (_plot_tab(self.sw_plot), TABS[1]),
                            (_plot_tab(self.bar_plot, bar_legend), TABS[2])):
            self.tabs.addTab(page, title)
        for i, key in enumerate(("score", "sw_plot", "bars")):
            self.tabs.setTabToolTip(i, TIPS[key])

        self.value_labels: dict[str, QLabel] = {}
        self.name_labels: dict[str, QLabel] = {}
        numbers = QFormLayout()
        numbers.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        numbers.setVerticalSpacing(3)
        for key, text in (("sw_ratio", "SW ratio"), ("mmd", "MMD²"), ("energy", "Energy dist."),
                          ("on_mode", "On a mode"), ("log_likelihood", "Log-lik.")):
            label = QLabel("–")
            label.setToolTip(TIPS[key])
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the column
            name = QLabel(text)
            name.setToolTip(TIPS[key])
            numbers.addRow(name, label)
            self.value_labels[key] = label
            self.name_labels[key] = name
        side = QWidget()
        side.setLayout(numbers)
        numbers.setContentsMargins(0, 4, 6, 0)
        side.setFixedWidth(NUMBERS_WIDTH)

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(side, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.tabs, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addLayout(row, 1)
        self.setMinimumHeight(180)
        self.reset()

    def _set_measure(self, measure: object) -> None:
        """Label the error curve for what it measures: the score, or a flow net's velocity."""
        self.measure = measure if measure in MEASURES else "score"
        words = MEASURES[self.measure]
        self.tabs.setTabText(0, words["tab"])
        self.tabs.setTabToolTip(0, words["tip"])
        self.score_plot.setToolTip(words["tip"])
        self.score_plot.getPlotItem().setLabel("left", words["axis"])
        self.sigma_legend.setToolTip(words["levels"])

    # -- drawing ----------------------------------------------------------------------------
    def reset(self, text: str = "<b>Ground truth</b> — metrics appear once the model trains or particles move") -> None:
        """Forget every curve and number (a new engine: new data, loss or network)."""
        self.history.clear()
        self.last = {}
        self._clear_curves()
        self._note = ""
        self._spacing, self._level_noise = None, {}
        self._set_measure("score")
        self._set_legend()
        self._set_x_range()
        self._sw_item.setData(x=np.zeros(0), y=np.zeros(0))
        self._bars_sample.setOpts(x=[], height=[])
        self._bars_true.setOpts(x=[], height=[])
        self.tabs.setTabVisible(2, False)
        for key, label in self.value_labels.items():
            label.setText("–")
            label.setToolTip(TIPS[key])
        self.reference_label.setText(text)
        self.status_label.setText("")

    def _clear_curves(self) -> None:
        self.curves.clear()
        for item in self._score_items.values():
            self.score_plot.getPlotItem().removeItem(item)
        self._score_items.clear()
        self._error_target = ""

    def clear_stale(self) -> None:
        """No data on the canvas (Clear, New): forget the old data's metrics, and ignore those of
        its engine generation still on their way (the kept model waits for new data)."""
        self._stale_upto, self._adopt_next = self._gen, False
        self.reset("<b>Ground truth</b> — no data: draw at least 2 points or load a preset")

    def show_metrics(self, metrics: dict[str, Any]) -> None:
        """Draw one update from the worker; `updated` says which parts are new ("curve", "samples")."""
        gen = metrics.get("gen")
        if gen is not None and self._stale_upto is not None and gen <= self._stale_upto:
            return  # of data no longer on the canvas
        if gen != self._gen:
            if not self._adopt_next:
                self.reset()
            self._adopt_next = False
            self._gen = gen
            self._set_measure(metrics.get("measure"))
            self._set_reference(metrics)
        self.last = dict(metrics)
        self._target = int(metrics.get("train_target", self._target) or 0)
        updated = metrics.get("updated", ("curve", "samples"))
        if "curve" in updated and "score_errors" in metrics:
            what = metrics.get("error_target") or ""
            if what != self._error_target:  # another quantity (a class asked for, or none): new curves
                self._clear_curves()
                self._error_target = what
            self._add_curve_points(metrics["score_step"], metrics["sigmas"], metrics["score_errors"])
            self._set_legend()
        if "samples" in updated and "sw_ratio" in metrics:
            self._show_samples(metrics)
        self._set_x_range()
        parts = []
        if "score_step" in metrics:
            parts.append(f"score at step {metrics['score_step']:,}")
        if "sampler_step" in metrics:
            parts.append(f"particles at {sampler_step_text(metrics['sampler_step'], metrics.get('sampler_steps', 0))}")
        target = metrics.get("target")
        if target and target != "the data":  # a class or a condition asked for: the metrics compare with it
            parts.append(f"vs {target}")
        self.status_label.setText(" · ".join(parts))

    def _set_reference(self, m: dict[str, Any]) -> None:
        self._spacing = m.get("reference_spacing") if m.get("reference_kind") == "empirical" else None
        self._level_noise = dict(zip(m.get("sigmas", ()), m.get("level_noise", m.get("sigmas", ())), strict=False))
        if m.get("reference_kind") == "none":  # a flow with no exact field (sgm_core.truth.run_reference)
            note = m.get("reference_note") or "no exact truth for this run"
            self.reference_label.setText(f"<b>Ground truth:</b> none — {note}")
            name = MEASURES[self.measure]["name"]
            self.reference_label.setToolTip(f"The {name} and the true field need an exact reference; this run has "
                                            "none, so they are not shown (the sample metrics compare with the data)")
            self.sigma_legend.setText(f"{name.capitalize()}: {NOT_MEANINGFUL} ({note})")
            self.sigma_legend.setToolTip(f"No {name} is shown: {note}. The SW ratio, MMD and mode weights compare "
                                         "the particles with the data instead")
            return
        if m.get("reference_kind") == "analytic" and self.measure == "velocity":
            text = "<b>Ground truth:</b> exact velocity of the mixture's flow"
            tip = ("The data (and the source, if any) is a Gaussian mixture: every x_t on the straight path is a "
                   "mixture too, with an exact velocity E[x₁ − x₀ | x_t]")
        elif m.get("reference_kind") == "analytic":
            text = "<b>Ground truth:</b> analytic mixture score"
            tip = "The data is a Gaussian mixture: its perturbed density q_σ is a mixture too, with an exact score"
        else:
            n = m.get("reference_points", 0)
            text = f"<b>Ground truth:</b> empirical (log-sum-exp over {n:,} points)"
            tip = ("No closed form for this data: the reference is the exact score of the data points smoothed "
                   "by N(0, σ²I), a log-sum-exp over the points (it approaches the true q_σ score as N grows). "
                   "At a σ below the points' spacing it is spiky, every point its own peak, and a smooth net does "
                   "not follow it: the error stays near 1 there (helix at σ = 0.01: 1.0 after 9,000 steps, the points' "
                   "median spacing 0.033), which says the net did not memorise the points, not that it failed")
        self.reference_label.setText(text)
        self.reference_label.setToolTip(tip)

    @staticmethod
    def _sigma_rgb(i: int) -> tuple[int, int, int]:
        rgb = colors.sample(colors.VIRIDIS, SIGMA_COLORS[min(i, len(SIGMA_COLORS) - 1)])
        return tuple(int(round(c)) for c in rgb)

    def _set_legend(self) -> None:
        words = MEASURES[self.measure]
        keys = "&nbsp; ".join(f"<span style='color:#{r:02x}{g:02x}{b:02x}'><b>{words['level']}={sigma:.2g}</b></span>"
                              for sigma, (r, g, b) in ((s, self._sigma_rgb(i)) for i, s in enumerate(self.curves)))
        what = (f"&nbsp;· {self._error_target}: guided net vs the exact guided truth" if self._error_target else "")
        note = ""
        if self._note:  # the particles run on the exact score: the curve is the net's, which they do not use
            trained = any(steps and steps[-1] > 0 for steps, _ in self.curves.values())
            note = self._note + (" (the curve: the net, not used by them)" if trained
                                 else " (the curve: the net, untrained)")
        spiky = [level for level in self.curves
                 if self._spacing and self._level_noise.get(level, level) < self._spacing]
        if spiky:  # no smooth net follows the truth there (helix: 1.0 at σ = 0.01; fm: 0.4-0.5 at t <= 0.01)
            levels = ", ".join(f"{words['level']}={level:.2g}" for level in spiky)
            note += (f"&nbsp;· {levels}: noise under the points' spacing ({self._spacing:.2g}), where the empirical "
                     "truth is spiky and no smooth net follows it")
        self.sigma_legend.setText((keys or f"No {words['name']} points yet") + what + note)

    def _set_x_range(self) -> None:
        """From step 0 to the end of the run (or the last point, when training went past it)."""
        last = max((s[-1] for s, _ in self.curves.values() if s), default=0)
        self.score_plot.getPlotItem().setXRange(0, max(last, self._target, 10), padding=0.02)

    def _add_curve_points(self, step: int, sigmas: list[float], errors: list[float]) -> None:
        new = not self.curves
        for sigma, err in zip(sigmas, errors, strict=True):
            steps, values = self.curves.setdefault(float(sigma), ([], []))
            if steps and step <= steps[-1]:
                continue  # the same model again (e.g. the dock was reopened)
            steps.append(int(step))
            values.append(max(float(err), LOG_FLOOR) if math.isfinite(err) else np.nan)
        self._draw_curves()
        if new:
            self._set_legend()

    def _draw_curves(self) -> None:
        pi = self.score_plot.getPlotItem()
        for i, (sigma, (steps, values)) in enumerate(self.curves.items()):
            item = self._score_items.get(sigma)
            if item is None:
                rgb = self._sigma_rgb(i)
                item = pi.plot(pen=pg.mkPen(rgb, width=2), symbol="o", symbolSize=4, symbolPen=None,
                               symbolBrush=pg.mkBrush(rgb), name=f"σ = {sigma:.3g}")
                self._score_items[sigma] = item
            item.setData(x=np.asarray(steps, float), y=np.asarray(values, float))

    def _show_samples(self, m: dict[str, Any]) -> None:
        self.history.append({k: m.get(k) for k in ("train_step", "sampler_step", "sw_ratio", "mmd", "energy",
                                                    "on_mode", "log_likelihood")})
        del self.history[:-SW_HISTORY]
        labels = self.value_labels
        sw = m.get("sw_ratio")
        labels["sw_ratio"].setText("–" if sw is None else _fmt(sw, ".2f") + "×")
        text, tip = mmd_text(m.get("mmd"))
        labels["mmd"].setText(text)
        labels["mmd"].setToolTip(tip)
        labels["energy"].setText(_fmt(m.get("energy"), ".3g"))
        on_mode = m.get("on_mode")
        labels["on_mode"].setText("– (not a mixture)" if on_mode is None else f"{100 * on_mode:.0f}%")
        ll = m.get("log_likelihood")
        text, tip = likelihood_text(ll)
        if ll is None and m.get("reference_score"):
            text = "– (true score)"
        elif ll is None and not m.get("conditional", True):
            text = "– (no σ ladder)"
        labels["log_likelihood"].setText(text)
        labels["log_likelihood"].setToolTip(tip)
        self._draw_sw()
        self._show_bars(m.get("mode_weights"), m.get("true_weights"))
        note = "&nbsp;· particles: true score" if m.get("reference_score") else ""
        if note != self._note:
            self._note = note
            self._set_legend()

    def _draw_sw(self) -> None:
        ratios = np.array([h["sw_ratio"] if h.get("sw_ratio") is not None else np.nan for h in self.history], float)
        self._sw_item.setData(x=np.arange(len(ratios), dtype=float), y=np.clip(ratios, LOG_FLOOR, None))

    def _show_bars(self, weights: list[float] | None, true: list[float] | None) -> None:
        self.tabs.setTabVisible(2, weights is not None)
        if weights is None or true is None:
            return
        k = np.arange(1, len(weights) + 1, dtype=float)
        self._bars_sample.setOpts(x=k - 0.2, height=np.asarray(weights, float))
        self._bars_true.setOpts(x=k + 0.2, height=np.asarray(true, float))
        top = max(max(weights), max(true), 1e-3)
        pi = self.bar_plot.getPlotItem()
        pi.setRange(xRange=(0.4, len(k) + 0.6), yRange=(0, 1.1 * top), padding=0)
        every = max(1, math.ceil(len(k) / 12))  # at most ~12 labels: 25-mode mixtures stay readable
        pi.getAxis("bottom").setTicks([[(float(i), str(i)) for i in range(1, len(k) + 1, every)], []])

    def sw_ratios(self) -> list[float]:
        """The SW ratios received so far, oldest first (tests and the status line read them)."""
        return [float(h["sw_ratio"]) for h in self.history if h.get("sw_ratio") is not None]

    # -- sessions ---------------------------------------------------------------------------
    def saved_state(self) -> dict[str, Any]:
        """The curves and history, JSON-ready, for a session file (each curve decimated to
        SAVED_CURVE_POINTS)."""
        curves = []
        for sigma, (steps, values) in self.curves.items():
            stride = max(1, math.ceil(len(steps) / SAVED_CURVE_POINTS))
            curves.append({"sigma": sigma, "steps": steps[::stride],
                           "errors": [v if math.isfinite(v) else None for v in values[::stride]]})
        history = [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in h.items()}
                   for h in self.history]
        return {"curves": curves, "history": history, "target": self._target, "measure": self.measure}

    def restore(self, saved: object) -> None:
        """Show what `saved_state` gave (an opened session); entries that do not parse are skipped.
        The engine that follows (a new generation) adds to them instead of starting afresh."""
        self.reset()
        self._stale_upto = None
        if not isinstance(saved, dict):
            return
        for curve in saved.get("curves") or []:
            try:
                sigma = float(curve["sigma"])
                steps = [int(s) for s in curve["steps"]]
                errors = [np.nan if e is None else max(float(e), LOG_FLOOR) for e in curve["errors"]]
            except (KeyError, TypeError, ValueError):
                continue
            if len(steps) == len(errors) and math.isfinite(sigma):
                self.curves[sigma] = (steps, errors)
        history = [h for h in saved.get("history") or [] if isinstance(h, dict)][-SW_HISTORY:]
        self.history = [{k: _number(h.get(k)) for k in ("train_step", "sampler_step", "sw_ratio", "mmd", "energy",
                                                        "on_mode", "log_likelihood")} for h in history]
        self._set_measure(saved.get("measure"))
        target = saved.get("target")
        self._target = target if isinstance(target, int) and target >= 0 else 0
        self._draw_curves()
        self._draw_sw()
        self._set_legend()
        self._set_x_range()
        self._adopt_next = bool(self.curves or self.history)

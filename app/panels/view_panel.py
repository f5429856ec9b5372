"""View panel: the field's σ (log slider), layer toggles, heatmap, arrow normalisation."""

from __future__ import annotations

import math

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from sgm_core.losses import LOSSES, field_shows

from ..session import Session, sigma_range
from . import tipped_combo

SLIDER_TICKS = 1000  # slider resolution over the log σ range
LAYERS = (
    ("data", "Data", "Show the data points"),
    ("field", "Learned field", "Arrows of the learned score s_θ(x, σ)"),
    ("true_field", "True field", "Arrows of the reference score (exact mixture or smoothed data)"),
    ("particles", "Particles", "Show the live sampler particles"),
    ("trails", "Trails", "Show each particle's recent path"),
)
HEATMAP_TIPS = {
    "off": "No heatmap",
    "density": "Learned log-density −E_θ(x, σ) (energy models only)",
    "error": "Relative error |s_θ − s_ref| / (|s_ref| + 1) of the learned score",
    "curl": "Curl ∂s_y/∂x − ∂s_x/∂y of the learned score over its typical |∂s/∂x|: red turns anticlockwise, "
            "blue clockwise, white is curl-free — an energy net is white by construction, a true score has none",
}


def slider_to_sigma(position: int, lo: float, hi: float) -> float:
    """Slider ticks 0..SLIDER_TICKS map geometrically onto [lo, hi]."""
    frac = min(max(position / SLIDER_TICKS, 0.0), 1.0)
    return float(math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo))))


def sigma_to_slider(sigma: float, lo: float, hi: float) -> int:
    sigma = min(max(sigma, lo), hi)
    return round(SLIDER_TICKS * (math.log(sigma) - math.log(lo)) / (math.log(hi) - math.log(lo)))


class ViewPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        row = QHBoxLayout()
        self.sigma_slider = QSlider(Qt.Orientation.Horizontal)
        self.sigma_slider.setRange(0, SLIDER_TICKS)
        self.sigma_slider.setToolTip("Noise level σ at which the field is drawn (log scale, σmin…σmax)")
        self.sigma_label = QLabel()
        self.sigma_label.setMinimumWidth(56)
        self.sigma_label.setToolTip("The field's σ in standardised units")
        row.addWidget(self.sigma_slider, 1)
        row.addWidget(self.sigma_label)
        form.addRow("Field σ", row)

        self.layer_checks: dict[str, QCheckBox] = {}
        for key, text, tooltip in LAYERS:
            box = QCheckBox(text)
            box.setToolTip(tooltip)
            self.layer_checks[key] = box
            box.toggled.connect(lambda on, k=key: self.session.set_view(**{k: bool(on)}))
            form.addRow("" if key != "data" else "Layers", box)
        self.heatmap_combo = tipped_combo((mode, mode, tooltip) for mode, tooltip in HEATMAP_TIPS.items())
        self.heatmap_combo.setToolTip("Background image: learned log-density (energy models), score error or curl")
        form.addRow("Heatmap", self.heatmap_combo)
        self.noisy_check = QCheckBox("Show q_σ (data + σ·noise)")
        self.noisy_check.setToolTip("Draw the data perturbed with Gaussian noise at the field's σ: the smoothed "
                                    "density whose score the arrows show")
        form.addRow("", self.noisy_check)
        self.normalize_check = QCheckBox("Normalised arrows")
        self.normalize_check.setToolTip("Draw every arrow the same length (direction only); colour keeps magnitude")
        form.addRow("", self.normalize_check)
        self.log_check = QCheckBox("Log-scale loss")
        self.log_check.setToolTip("Plot the loss curve on a logarithmic axis")
        form.addRow("", self.log_check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)

        self._sync()
        session.view_changed.connect(self._sync)
        session.config_changed.connect(self._sync)
        self.sigma_slider.valueChanged.connect(self._on_slider)
        self.heatmap_combo.currentIndexChanged.connect(
            lambda _: self.session.set_view(heatmap=self.heatmap_combo.currentData()))
        self.normalize_check.toggled.connect(lambda on: self.session.set_view(normalized_arrows=bool(on)))
        self.noisy_check.toggled.connect(lambda on: self.session.set_view(noisy_data=bool(on)))
        self.log_check.toggled.connect(lambda on: self.session.set_view(log_loss=bool(on)))

    def _on_slider(self, position: int) -> None:
        lo, hi = sigma_range(self.session.run_config)
        self.session.set_view(sigma=slider_to_sigma(position, lo, hi))

    def _sync(self) -> None:
        s = self.session
        view = s.view
        widgets = [self.sigma_slider, self.heatmap_combo, self.normalize_check, self.log_check, self.noisy_check,
                   *self.layer_checks.values()]
        blockers = [QSignalBlocker(w) for w in widgets]
        lo, hi = sigma_range(s.run_config)
        noise_kind = LOSSES[s.run_config.loss.name].noise
        self.sigma_slider.setEnabled(noise_kind not in ("none", "single"))
        self.sigma_slider.setValue(sigma_to_slider(s.field_sigma(), lo, hi))
        self.sigma_label.setText(f"{s.field_sigma():.3g}")
        if noise_kind == "single":
            self.sigma_slider.setToolTip("This loss trains at one σ; the field is drawn there")
        elif noise_kind == "none":
            self.sigma_slider.setToolTip("This loss fits the clean data score (no σ input)")
        else:
            self.sigma_slider.setToolTip("Noise level σ at which the field is drawn (log scale, σmin…σmax)")
        for key, box in self.layer_checks.items():
            box.setChecked(bool(getattr(view, key)))
        shows = field_shows(s.run_config)
        self.layer_checks["field"].setText(f"Learned {shows.split(' ', 1)[0]}")
        self.layer_checks["field"].setToolTip(f"Arrows of the learned {shows}")
        self.layer_checks["true_field"].setText(f"True {shows.split(' ', 1)[0]}")
        self.layer_checks["true_field"].setToolTip(f"Arrows of the reference {shows} (exact mixture or smoothed data)")
        self.heatmap_combo.setCurrentIndex(self.heatmap_combo.findData(view.heatmap))
        self.normalize_check.setChecked(view.normalized_arrows)
        self.log_check.setChecked(view.log_loss)
        self.noisy_check.setChecked(view.noisy_data)
        del blockers

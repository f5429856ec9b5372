"""Train panel: loss, model, the noise settings the loss uses, optimiser settings, run buttons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sgm_core.config import RunConfig
from sgm_core.errors import ConfigError
from sgm_core.losses import LOSSES

from ..session import Session
from . import SciSpinBox, action_button, int_box, tipped_combo

SCHEDULES = {"linear": "β from 1e-4 to 0.02 at T = 1000 (Ho et al. 2020)",
             "cosine": "ᾱ(t) = cos² schedule (Nichol & Dhariwal 2021): less noise wasted at the end"}
TIME_SAMPLINGS = {"uniform": "t ~ U(0, 1), as flow matching was introduced (Lipman et al. 2023)",
                  "logit-normal": "t = sigmoid(z), z ~ N(0, 1): more training on the middle of the path "
                                  "(Esser et al. 2024); on the 2D presets fewer steps to quality, measured"}
MODEL_KINDS = {
    "score": "s_θ(x, σ) is the network output directly",
    "energy": "s_θ = −∇ₓE_θ(x, σ): a conservative field with a density you can plot",
}


class TrainPanel(QWidget):
    """Writes RunConfig changes to the session; Train/Pause/Stop/Reset mirror the window's actions."""

    sigma_max_from_data_requested = Signal()  # "From data" beside σ max: the window computes it in the worker

    def __init__(self, session: Session, actions: Mapping[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        self.loss_combo = tipped_combo((f"{key} — {spec.title}", key, f"{spec.title}: {spec.description}")
                                       for key, spec in LOSSES.items())
        self.loss_combo.setToolTip("The score-matching objective the network is trained with")
        form.addRow("Loss", self.loss_combo)

        self.model_combo = tipped_combo((kind, kind, text) for kind, text in MODEL_KINDS.items())
        self.model_combo.setToolTip("Score network (direct output) or energy network (score = −gradient)")

        self.noise_boxes: dict[str, QWidget] = {
            "sigma": SciSpinBox(1e-4, 100.0),
            "sigma_min": SciSpinBox(1e-4, 100.0),
            "sigma_max": SciSpinBox(1e-3, 1000.0),
            "n_levels": int_box(2, 1000, 16, "Number of σ levels in the geometric ladder"),
            "beta_min": SciSpinBox(1e-4, 100.0),
            "beta_max": SciSpinBox(1e-3, 1000.0),
            "timesteps": int_box(1, 100_000, 1000, "DDPM's T: steps of the discrete chain (Ho et al. 2020)"),
        }
        labels = {"sigma": "σ", "sigma_min": "σ min", "sigma_max": "σ max", "n_levels": "levels",
                  "beta_min": "β min", "beta_max": "β max", "timesteps": "T steps"}
        tips = {
            "sigma": "The single noise level of denoising score matching (standardised units)",
            "sigma_min": "Smallest noise level (standardised units): the ladder bottom / σ(0)",
            "sigma_max": "Largest noise level: should reach across the data (Song & Ermon 2020)",
            "beta_min": "VP-SDE β(0)",
            "beta_max": "VP-SDE β(1)",
        }
        self.sigma_max_button = QToolButton()
        self.sigma_max_button.setText("From data")
        self.sigma_max_button.setToolTip("Set σ max to the largest distance between two data points "
                                         "(Song & Ermon 2020, technique 1): the top level then spans every mode")
        self.sigma_max_button.clicked.connect(self.sigma_max_from_data_requested)
        self._rows: dict[str, QWidget] = {}  # the form row each noise setting sits in
        for key, box in self.noise_boxes.items():
            if key in tips:
                box.setToolTip(tips[key])
            row: QWidget = box
            if key == "sigma_max":
                row = QWidget()
                line = QHBoxLayout(row)
                line.setContentsMargins(0, 0, 0, 0)
                line.addWidget(box, 1)
                line.addWidget(self.sigma_max_button)
            self._rows[key] = row
            form.addRow(labels[key], row)
        self.schedule_combo = tipped_combo((name, name, text) for name, text in SCHEDULES.items())
        self.schedule_combo.setToolTip("DDPM's β schedule")
        self._rows["schedule"] = self.schedule_combo
        form.addRow("β schedule", self.schedule_combo)
        self.t_sampling_combo = tipped_combo((name, name, text) for name, text in TIME_SAMPLINGS.items())
        self.t_sampling_combo.setToolTip("How flow matching draws its training times t")
        self._rows["t_sampling"] = self.t_sampling_combo
        form.addRow("Training t", self.t_sampling_combo)
        self._form = form

        self.lr_box = SciSpinBox(1e-7, 1e7)
        self.lr_box.setToolTip("Adam learning rate (cosine-decayed to a tenth over the steps)")
        form.addRow("Learning rate", self.lr_box)
        self.batch_box = int_box(1, 65536, 512, "Points per training step, drawn fresh from the data")
        form.addRow("Batch", self.batch_box)
        self.steps_box = int_box(1, 10_000_000, 5000, "Adam steps per training round (Train again for another)")
        form.addRow("Steps", self.steps_box)
        size = QGridLayout()
        self.width_box = int_box(1, 2048, 128, "Hidden units per layer")
        self.depth_box = int_box(1, 32, 3, "Hidden layers")
        size.addWidget(self.width_box, 0, 0)
        size.addWidget(QLabel("×"), 0, 1)
        size.addWidget(self.depth_box, 0, 2)
        size.setContentsMargins(0, 0, 0, 0)
        size_w = QWidget()
        size_w.setLayout(size)
        size_w.setToolTip("Network width × depth")
        form.addRow("Width × depth", size_w)
        self.seed_box = int_box(0, 2**31 - 1, 0, "Seeds the network's initial weights, the data draws and the noise")
        form.addRow("Seed", self.seed_box)
        self.classes_label = QLabel()
        self.classes_label.setToolTip("Labelled data trains a class-conditional net s_θ(x, σ, c) with a learned null "
                                      f"class; the label is dropped with probability {session.run_config.train.cfg_dropout:g}"
                                      " so one net gives both scores (classifier-free guidance, Ho & Salimans 2022)")
        model_row = QWidget()  # the class note sits beside the model kind: no row of its own (the dock fits 1280x800)
        line = QHBoxLayout(model_row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.model_combo, 1)
        line.addWidget(self.classes_label)
        form.insertRow(1, "Model", model_row)
        self.device_label = QLabel("…")
        self.device_label.setToolTip("Where the network trains (a GPU when torch sees one, else the CPU)")
        form.addRow("Device", self.device_label)

        buttons = QGridLayout()
        for i, key in enumerate(("train", "pause", "stop", "reset")):
            buttons.addWidget(action_button(actions[key], self), i // 2, i % 2)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self._sync()
        self._sync_classes()
        session.config_changed.connect(self._sync)
        session.data_changed.connect(self._sync_classes)
        self.loss_combo.currentIndexChanged.connect(self._commit)
        self.model_combo.currentIndexChanged.connect(self._commit)
        self.schedule_combo.currentIndexChanged.connect(self._commit)
        self.t_sampling_combo.currentIndexChanged.connect(self._commit)
        for box in (*self.noise_boxes.values(), self.lr_box, self.batch_box, self.steps_box, self.width_box,
                    self.depth_box, self.seed_box):
            box.valueChanged.connect(self._commit)

    # -- session -> widgets -----------------------------------------------------------------
    def _sync(self) -> None:
        cfg = self.session.run_config
        widgets = [self.loss_combo, self.model_combo, self.schedule_combo, self.t_sampling_combo,
                   *self.noise_boxes.values(), self.lr_box, self.batch_box, self.steps_box, self.width_box,
                   self.depth_box, self.seed_box]
        blockers = [QSignalBlocker(w) for w in widgets]
        self.loss_combo.setCurrentIndex(self.loss_combo.findData(cfg.loss.name))
        self.model_combo.setCurrentIndex(self.model_combo.findData(cfg.model.kind))
        for key, box in self.noise_boxes.items():
            box.setValue(getattr(cfg.noise, key))
        self.schedule_combo.setCurrentIndex(self.schedule_combo.findData(cfg.noise.schedule))
        self.t_sampling_combo.setCurrentIndex(self.t_sampling_combo.findData(cfg.noise.t_sampling))
        self.lr_box.setValue(cfg.train.lr)
        self.batch_box.setValue(cfg.train.batch)
        self.steps_box.setValue(cfg.train.steps)
        self.width_box.setValue(cfg.model.width)
        self.depth_box.setValue(cfg.model.depth)
        self.seed_box.setValue(cfg.train.seed)
        del blockers
        shown = LOSSES[cfg.loss.name].process_type.settings  # the NoiseConfig fields the loss's process reads
        for key, row in self._rows.items():
            self._form.setRowVisible(row, key in shown)

    def _sync_classes(self) -> None:
        """Say whether the next model is class-conditional: it is exactly when the data is labelled."""
        classes = self.session.classes()
        self.classes_label.setText(f"conditional on {len(classes)} classes" if classes else "")
        self.classes_label.setVisible(bool(classes))  # unlabelled data: an unconditional net, as always

    # -- widgets -> session -----------------------------------------------------------------
    def config_from_widgets(self) -> RunConfig:
        """The RunConfig the widgets show (ConfigError when a combination is invalid)."""
        cfg = self.session.run_config
        noise = replace(cfg.noise, **{k: b.value() for k, b in self.noise_boxes.items()},
                        schedule=self.schedule_combo.currentData(), t_sampling=self.t_sampling_combo.currentData())
        return replace(
            cfg,
            loss=replace(cfg.loss, name=self.loss_combo.currentData()),
            model=replace(cfg.model, kind=self.model_combo.currentData(), width=self.width_box.value(),
                          depth=self.depth_box.value()),
            noise=noise,
            train=replace(cfg.train, lr=self.lr_box.value(), batch=self.batch_box.value(),
                          steps=self.steps_box.value(), seed=self.seed_box.value()),
        )

    def _commit(self) -> None:
        try:
            cfg = self.config_from_widgets()
        except ConfigError as exc:
            self.session.error_reported.emit(str(exc))
            self._sync()  # back to the last valid settings
            return
        self.session.set_run_config(cfg)

    def set_sigma_max(self, value: float) -> None:
        """Put a σ max into the settings (as if typed), e.g. the one `From data` computed."""
        self.noise_boxes["sigma_max"].setValue(float(value))

    def set_device(self, label: str) -> None:
        self.device_label.setText(label)

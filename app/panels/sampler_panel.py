"""Sampler panel: which sampler drives the live particles, how many, how fast, and trails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QAction, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from sgm_core.palette import class_color
from sgm_core.samplers import SAMPLERS

from ..session import MAX_PARTICLES, Session
from . import SciSpinBox, action_button, int_box, tipped_combo

GUIDANCE_MAX = 10.0  # the slider's top w
GUIDANCE_TICKS = 100  # slider positions over [0, GUIDANCE_MAX]: w in steps of 0.1
UNCONDITIONAL_TIP = "This model is unconditional: load or draw labelled data (e.g. 8gaussians-labelled) to train a " \
                    "class-conditional one and steer it with guidance"


def swatch(rgb: tuple[int, int, int], size: int = 12) -> QIcon:
    """A small filled square of a class colour, for combo items and palette buttons."""
    pix = QPixmap(size, size)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


class SamplerPanel(QWidget):
    def __init__(self, session: Session, actions: Mapping[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.sampler_combo = tipped_combo((name, name, text) for name, text in SAMPLERS.items())
        self.sampler_combo.setToolTip("How particles follow the learned score (a new loss picks its natural one)")
        form.addRow("Sampler", self.sampler_combo)
        self.score_combo = QComboBox()
        self.score_combo.addItem("learned", False)
        self.score_combo.addItem("true", True)
        self.score_combo.setItemData(0, "Particles follow the network's score s_θ", Qt.ItemDataRole.ToolTipRole)
        self.score_combo.setItemData(1, "Particles follow the reference score (exact for mixtures, smoothed data "
                                        "otherwise): the sampler on its own, with no training error", Qt.ItemDataRole.ToolTipRole)
        self.score_combo.setToolTip("Which score drives the particles: the learned one or the true (reference) one")
        form.addRow("Score", self.score_combo)
        self.class_combo = QComboBox()
        form.addRow("Class", self.class_combo)
        self.guidance_slider = QSlider(Qt.Orientation.Horizontal)
        self.guidance_slider.setRange(0, GUIDANCE_TICKS)
        self.guidance_label = QLabel("w = 0")
        self.guidance_label.setMinimumWidth(self.guidance_label.fontMetrics().horizontalAdvance("w = 10.0"))
        guide_row = QWidget()
        line = QHBoxLayout(guide_row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.guidance_slider, 1)
        line.addWidget(self.guidance_label)
        self._guide_row = guide_row
        form.addRow("Guidance", guide_row)
        self.particles_box = int_box(1, MAX_PARTICLES, 2000, "Number of live particles (100k needs a GPU to animate)")
        form.addRow("Particles", self.particles_box)
        self.step_size_box = SciSpinBox(0.0, 10.0)
        self.step_size_box.setSpecialValueText("auto")
        self.step_size_box.setToolTip("Langevin step size ε (0 = auto: 0.1·σ² at the smallest level)")
        form.addRow("Step size", self.step_size_box)
        self.steps_box = int_box(0, 1_000_000, 0, "Sampler schedule length: Langevin steps, steps per σ level "
                                 "(annealed) or time steps (SDE/ODE); 0 = the sampler's default", special="default")
        form.addRow("Schedule", self.steps_box)
        self.spf_box = int_box(1, 1000, 5, "Sampler steps per drawn frame while playing (animation speed)")
        form.addRow("Steps / frame", self.spf_box)
        self.trails_check = QCheckBox("Trails")
        self.trails_check.setToolTip("Keep and draw each particle's recent path")
        form.addRow("", self.trails_check)
        self.follow_check = QCheckBox("Sample while training")
        self.follow_check.setToolTip("Train also plays the particles, and each finished sampler run starts again "
                                     "from noise with the newer model, so they show what the model samples now")
        form.addRow("", self.follow_check)

        buttons = QGridLayout()
        for i, key in enumerate(("play", "step", "reset_particles")):
            buttons.addWidget(action_button(actions[key], self), 0, i)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self._sync()
        self._sync_guidance()
        session.config_changed.connect(self._sync)
        session.view_changed.connect(self._sync)
        session.data_changed.connect(self._sync_guidance)
        session.guidance_changed.connect(self._sync_guidance)
        self.class_combo.currentIndexChanged.connect(lambda _: session.set_guidance(self.class_combo.currentData()))
        self.guidance_slider.valueChanged.connect(
            lambda v: session.set_guidance(session.guide_class, GUIDANCE_MAX * v / GUIDANCE_TICKS))
        self.sampler_combo.currentIndexChanged.connect(self._commit_sampler)
        self.step_size_box.valueChanged.connect(self._commit_sampler)
        self.steps_box.valueChanged.connect(self._commit_sampler)
        self.particles_box.valueChanged.connect(lambda n: session.set_particles(n_particles=int(n)))
        self.spf_box.valueChanged.connect(lambda n: session.set_particles(steps_per_frame=int(n)))
        self.trails_check.toggled.connect(lambda on: session.set_view(trails=bool(on)))
        self.follow_check.toggled.connect(lambda on: session.set_particles(follow_training=bool(on)))
        self.score_combo.currentIndexChanged.connect(
            lambda _: session.set_particles(reference_score=bool(self.score_combo.currentData())))

    def _sync(self) -> None:
        cfg, opts = self.session.sampler_config, self.session.particles
        widgets = (self.sampler_combo, self.step_size_box, self.steps_box, self.particles_box, self.spf_box,
                   self.trails_check, self.score_combo, self.follow_check)
        blockers = [QSignalBlocker(w) for w in widgets]
        self.sampler_combo.setCurrentIndex(self.sampler_combo.findData(cfg.name))
        self.step_size_box.setValue(cfg.step_size)
        self.steps_box.setValue(cfg.steps)
        self.particles_box.setValue(opts.n_particles)
        self.spf_box.setValue(opts.steps_per_frame)
        self.trails_check.setChecked(self.session.view.trails)
        self.score_combo.setCurrentIndex(1 if opts.reference_score else 0)
        self.follow_check.setChecked(opts.follow_training)
        del blockers

    def _sync_guidance(self) -> None:
        """The class list follows the data's labels; class and w are off for an unconditional model."""
        s = self.session
        classes = s.classes()
        with QSignalBlocker(self.class_combo), QSignalBlocker(self.guidance_slider):
            self.class_combo.clear()
            self.class_combo.addItem("None (unconditional)", None)
            for i, name in enumerate(classes):
                self.class_combo.addItem(swatch(class_color(i)), name, i)
            guide = s.guide()
            self.class_combo.setCurrentIndex(0 if guide is None else guide[0] + 1)
            self.guidance_slider.setValue(round(s.guidance / GUIDANCE_MAX * GUIDANCE_TICKS))
        self.guidance_label.setText(f"w = {s.guidance:.1f}")
        self.class_combo.setEnabled(bool(classes))
        self.guidance_slider.setEnabled(guide is not None)
        self.class_combo.setToolTip("The class the particles are asked for, s(x, σ, c); they take its colour"
                                    if classes else UNCONDITIONAL_TIP)
        self.guidance_slider.setToolTip(
            UNCONDITIONAL_TIP if not classes else
            "Classifier-free guidance scale w (Ho & Salimans 2022): s̃ = s(x, σ, ∅) + (1 + w)(s(x, σ, c) − s(x, σ, ∅)); "
            "w = 0 is the plain conditional, large w concentrates the samples past the class's own modes"
            if guide is not None else "Pick a class to guide towards")

    def _commit_sampler(self) -> None:
        cfg = replace(self.session.sampler_config, name=self.sampler_combo.currentData(),
                      step_size=float(self.step_size_box.value()), steps=int(self.steps_box.value()))
        self.session.set_sampler_config(cfg)

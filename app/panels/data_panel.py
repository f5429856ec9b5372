"""Data panel: canvas tools (pan/brush/point/eraser/spawn), brush settings, presets, open, clear."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from sgm_core.datasets import PRESETS
from sgm_core.palette import class_color

from ..session import Session
from . import action_button, int_box
from .sampler_panel import swatch

TOOLS = ("pan", "brush", "point", "eraser", "spawn", "condition")  # action keys "tool_<name>" in the window
THREE_D_TIP = "3D: shown in the orbitable 3D view (drag to turn it)"


class DataPanel(QWidget):
    """Emits `preset_chosen(name)`; the window loads it (in the worker) and pushes ReplaceData."""

    preset_chosen = Signal(str)

    def __init__(self, session: Session, actions: Mapping[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        tools = QGridLayout()
        for i, name in enumerate(TOOLS):
            button = action_button(actions[f"tool_{name}"], self)
            tools.addWidget(button, i // 3, i % 3)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.radius_box = QDoubleSpinBox()
        self.radius_box.setRange(0.01, 50.0)
        self.radius_box.setSingleStep(0.05)
        self.radius_box.setDecimals(2)
        self.radius_box.setKeyboardTracking(False)
        self.radius_box.setToolTip("Brush / eraser / spawn radius in data units")
        form.addRow("Radius", self.radius_box)
        self.density_box = int_box(1, 1000, 20, "Points sprayed per brush dab")
        form.addRow("Density", self.density_box)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("The class the brush and point tools paint (a labelled drawing trains a "
                                    "class-conditional net; guide it from the Sampler dock)")
        self.palette_box = int_box(2, 8, 2, "Classes in the palette (2-8)")
        palette = QWidget()
        line = QHBoxLayout(palette)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.class_combo, 1)
        line.addWidget(self.palette_box)
        form.addRow("Class", palette)

        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("Load a preset distribution (replaces the data; undo brings it back)")
        self.preset_combo.addItem("Choose a preset…", "")
        for name, spec in PRESETS.items():
            label = name if spec.dim == 2 else f"{name} (3D)"
            self.preset_combo.addItem(label, name)
            row = self.preset_combo.count() - 1
            tooltip = spec.description if spec.dim == 2 else f"{spec.description} — {THREE_D_TIP}"
            self.preset_combo.setItemData(row, tooltip, Qt.ItemDataRole.ToolTipRole)
        form.addRow("Preset", self.preset_combo)
        self.info_label = QLabel()
        self.info_label.setToolTip("The data the network trains on")
        self.info_label.setWordWrap(True)
        form.addRow("Data", self.info_label)

        buttons = QGridLayout()
        buttons.addWidget(action_button(actions["open"], self), 0, 0)
        buttons.addWidget(action_button(actions["clear"], self), 0, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(tools)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self._sync()
        session.data_changed.connect(self._sync)
        session.view_changed.connect(self._sync)
        self.radius_box.valueChanged.connect(self._commit_brush)
        self.density_box.valueChanged.connect(self._commit_brush)
        self.class_combo.activated.connect(self._commit_class)
        self.palette_box.valueChanged.connect(self._commit_class)
        self.preset_combo.activated.connect(self._on_preset_activated)

    def preset_enabled(self, name: str) -> bool:
        row = self.preset_combo.findData(name)
        model = self.preset_combo.model()
        return bool(model.item(row).isEnabled()) if isinstance(model, QStandardItemModel) else True

    def _on_preset_activated(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name:
            self.preset_chosen.emit(name)

    def _commit_class(self, *_args: object) -> None:
        self.session.set_brush_class(self.class_combo.currentData(), int(self.palette_box.value()))

    def _commit_brush(self) -> None:
        self.session.set_brush(self.radius_box.value(), self.density_box.value())

    def _sync(self) -> None:
        s = self.session
        blockers = [QSignalBlocker(w) for w in (self.radius_box, self.density_box, self.preset_combo,
                                                self.class_combo, self.palette_box)]
        self.palette_box.setValue(s.palette_size)
        self.class_combo.clear()
        painted = s.painted_class()  # on labelled data "none" paints class 0: the combo shows what is painted
        self.class_combo.addItem("none (unlabelled)", None)
        for i, name in enumerate(s.palette_classes()):
            self.class_combo.addItem(swatch(class_color(i)), name, i)
        self.class_combo.setCurrentIndex(0 if painted is None else min(painted + 1, self.class_combo.count() - 1))
        self.radius_box.setValue(s.brush_radius)
        self.density_box.setValue(s.brush_density)
        state = s.data
        row = self.preset_combo.findData(state.source) if state.kind == "preset" else 0
        self.preset_combo.setCurrentIndex(max(row, 0))
        del blockers
        kind = {"preset": "preset", "file": "file", "drawn": "drawn / edited"}[state.kind]
        dims = ", 3D" if state.dim == 3 else ""
        self.info_label.setText(f"{state.name} — {len(state.points)} points ({kind}{dims})")

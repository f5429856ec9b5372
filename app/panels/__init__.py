"""Side panels: thin controls that write to the Session and listen back.

Shared widgets live here: `SciSpinBox` (log-stepping, scientific notation), a few builders
that make sure every control gets a tooltip, and `SpaceNotTyped`, which keeps Space out of number
boxes.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QDoubleSpinBox, QSizePolicy, QSpinBox, QToolButton, QWidget

__all__ = ["SciSpinBox", "SpaceNotTyped", "action_button", "int_box", "tip", "tipped_combo"]


class SpaceNotTyped(QObject):
    """Installed on a window's number boxes: Space is the window's (Pause), never typed. A spin box
    that had focus (a disabled combo hands focus on) took Space and showed an empty field."""

    def install(self, root: QWidget) -> None:
        for box in root.findChildren(QAbstractSpinBox):
            box.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress, QEvent.Type.KeyRelease) \
                and event.key() == Qt.Key.Key_Space and not event.modifiers():
            event.ignore()  # not overridden: the shortcut map gives Space to the window's action
            return True
        return False


def tipped_combo(items) -> QComboBox:  # noqa: ANN001 - iterable of (label, data, tooltip)
    """A combo box whose every item carries its own tooltip: items are (label, data, tooltip)."""
    combo = QComboBox()
    for i, (label, data, tooltip) in enumerate(items):
        combo.addItem(label, data)
        combo.setItemData(i, tooltip, Qt.ItemDataRole.ToolTipRole)
    return combo


def tip(widget: QWidget, text: str) -> QWidget:
    widget.setToolTip(text)
    return widget


class SciSpinBox(QDoubleSpinBox):
    """A positive float shown as `2e-03`-style text; the arrows multiply/divide by `factor`.

    Learning rates and noise levels span decades, which a linear spin box cannot step through.
    A minimum of 0 with `specialValueText` gives an "auto" value below the smallest positive one.
    """

    def __init__(self, minimum: float, maximum: float, factor: float = 2.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._factor = factor
        self._smallest = max(minimum, 1e-12)
        self.setDecimals(12)
        self.setRange(minimum, maximum)
        self.setKeyboardTracking(False)
        self.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt override
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: ANN201 - Qt override
        from PySide6.QtGui import QValidator

        stripped = text.strip()
        if stripped == self.specialValueText() and stripped:
            return QValidator.State.Acceptable, text, pos
        try:
            value = float(stripped)
        except ValueError:
            partial = stripped == "" or stripped[-1] in "eE.-+" or stripped in ("-", ".")
            return (QValidator.State.Intermediate if partial else QValidator.State.Invalid), text, pos
        if self.minimum() <= value <= self.maximum() and math.isfinite(value):
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt override
        value = self.value()
        if value <= 0:
            value = self._smallest if steps > 0 else 0.0
            steps -= 1 if steps > 0 else 0
        new = value * self._factor**steps if value > 0 else 0.0
        if 0 < new < self._smallest:
            new = self.minimum()
        self.setValue(min(max(new, self.minimum()), self.maximum()))


def int_box(lo: int, hi: int, value: int, tooltip: str, special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    box.setKeyboardTracking(False)
    box.setToolTip(tooltip)
    box.setAccelerated(True)
    if special:
        box.setSpecialValueText(special)
    return box


def action_button(action, parent: QWidget | None = None) -> QToolButton:  # noqa: ANN001 - QAction
    """A button that mirrors a QAction (text, tooltip, enabled, checked, shortcut)."""
    button = QToolButton(parent)
    button.setDefaultAction(action)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    button.setMinimumWidth(56)
    return button

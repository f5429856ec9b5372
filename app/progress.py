"""Training progress in the status bar: `step k / N`, a progress bar, wall-clock elapsed time, ETA.

One wording for step counts (`step_text`, `sampler_step_text`) so the status bar and the Metrics
header always say the same thing about the same step.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

BAR_RESOLUTION = 1000  # progress-bar units per round: smooth at any step count
BAR_WIDTH = 110  # px: a status-bar bar, not a page-wide one

TIPS = {
    "step": "Training steps done / the step count this round trains to",
    "progress": "How far training is towards the end of this round",
    "elapsed": "Wall-clock time this model has trained (pauses not counted; kept in saved sessions)",
    "eta": "Time left in this round at its average speed so far",
}


def fmt_seconds(seconds: float | None) -> str:
    """m:ss, or h:mm:ss from an hour; "–" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    minutes, sec = divmod(seconds, 60)
    return f"{minutes}:{sec:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{sec:02d}"


def step_text(step: int, target: int) -> str:
    """`step 1,200 / 5,000` (just `step 1,200` when the round's end is not known)."""
    return f"step {step:,} / {target:,}" if target > 0 else f"step {step:,}"


def sampler_step_text(step: int, steps: int) -> str:
    """A sampler's step of its schedule, capped at the schedule's length (Langevin-type chains
    go on past it): `sampler step 160/160`."""
    shown = min(step, steps) if steps else step
    return f"sampler step {shown:,}" + (f"/{steps:,}" if steps else "")


class ProgressStatus:
    """The status bar's step, bar, elapsed and ETA; `show(frame, training)` updates them."""

    def __init__(self, bar: QStatusBar, step: QLabel, elapsed: QLabel, eta: QLabel) -> None:
        self.step, self.elapsed, self.eta = step, elapsed, eta
        self.bar = QProgressBar()
        self.bar.setRange(0, BAR_RESOLUTION)
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(BAR_WIDTH)
        self.bar.setMaximumHeight(14)
        bar.insertPermanentWidget(1, self.bar)  # right after the step count (the first permanent widget)
        for key, widget in (("step", step), ("progress", self.bar), ("elapsed", elapsed), ("eta", eta)):
            widget.setToolTip(TIPS[key])

    def clear(self) -> None:
        """No model (File ▸ New): nothing trained, nothing to count down."""
        self.step.setText(step_text(0, 0))
        self.bar.setValue(0)
        self.elapsed.setText(f"elapsed {fmt_seconds(None)}")
        self.eta.setText(f"ETA {fmt_seconds(None)}")

    def show(self, frame, training: bool) -> None:  # noqa: ANN001 - sgm_core.live.Frame
        target = int(getattr(frame, "target", 0))
        self.step.setText(step_text(frame.step, target))
        self.bar.setValue(round(BAR_RESOLUTION * min(1.0, frame.step / target)) if target > 0 else 0)
        self.elapsed.setText(f"elapsed {fmt_seconds(frame.elapsed)}")
        self.eta.setText(f"ETA {fmt_seconds(frame.eta)}" if training else "ETA –")


class MessageRoom(QObject):
    """Room for the status bar's passing messages ("Training finished at step 1,600 — Train
    continues for another round"): the permanent labels sit to their right and used to cut them.
    While a message shows, the labels of `yielding` (least needed first) hide one by one until it
    fits; they come back when it clears. The message itself is never cut while labels can yield."""

    PAD_PX = 32  # the message's margins and the gap before the first label
    SLACK_PX = 60  # room kept for the labels left to grow (the sampler's "σ 3" becomes "σ 0.681")

    SPACING_PX = 8  # between two permanent widgets (QStatusBar's own layout, plus their margins)

    def __init__(self, bar: QStatusBar, permanent: list[QWidget], yielding: list[QWidget]) -> None:
        super().__init__(bar)
        self.bar, self.permanent, self.yielding = bar, list(permanent), list(yielding)
        self.hidden: list[QWidget] = []
        self.text = ""
        # the labels' texts change with every frame (a longer step count, a new rate): while a
        # message shows, a label that grows makes room again before the next paint
        for widget in self.permanent:
            widget.installEventFilter(self)
        bar.messageChanged.connect(self._on_message)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if self.text and event.type() == QEvent.Type.Resize:
            self._make_room()
        return False

    def _permanent_width(self) -> int:
        shown = [w for w in self.permanent if w not in self.hidden and not w.isHidden()]
        return sum(max(w.width(), w.sizeHint().width()) + self.SPACING_PX for w in shown)

    def available(self) -> int:
        """Pixels left of the permanent labels for a message."""
        return self.bar.width() - self._permanent_width() - self.PAD_PX

    def _on_message(self, text: str) -> None:
        # The labels come back with no message set: each show() resizes the bar's widgets, and with
        # the old text still set the resize made room again, hid a label into the very list being
        # walked, and the next show() resized again, for ever (a frozen window, seen when "Training
        # finished" replaced a message that had pushed labels aside).
        hidden, self.hidden, self.text = self.hidden, [], ""
        for widget in hidden:
            widget.show()
        self.text = text
        if not text:
            self.bar.setToolTip("")
            return
        self._make_room()

    def _relayout(self) -> None:
        layout = self.bar.layout()
        if layout is not None:
            layout.invalidate()
            layout.activate()

    def _make_room(self) -> None:
        text = self.text
        if not text:
            return
        need = self.bar.fontMetrics().horizontalAdvance(text) + self.SLACK_PX
        for widget in self.yielding:
            if need <= self.available():
                break
            if widget.isVisible():
                widget.hide()
                self.hidden.append(widget)
                QTimer.singleShot(0, self._relayout)  # a hide inside a layout pass is not laid out by itself
        self.bar.setToolTip(text if need > self.available() else "")

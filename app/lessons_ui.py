"""Lessons in the window: the Lessons menu, the lesson bar, and the controller that sets one up.

A lesson (`sgm_core.lessons`, one JSON file each) names its data, run settings, sampler variants
and view. Choosing one loads its data, installs its settings in the Session (so the panels show
them and File ▸ Save keeps them), shows its caption in a bar over the canvas, and starts it:
"learned" lessons train, "truth" lessons play particles driven by the reference score. The
engine measures the lesson's claims live (`CheckLesson`) and the bar shows each as a green or red
line, grey "measuring…" until there is something to measure.
"""

from __future__ import annotations

from dataclasses import replace
from html import escape
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sgm_core.config import RunConfig
from sgm_core.datasets import class_index
from sgm_core.errors import DataError
from sgm_core.lessons import METRIC_NAMES, Claim, Lesson, Variant, learned_measure, load_lessons, needs_particles
from sgm_core.losses import LOSSES

if TYPE_CHECKING:
    from .session import DataState

# How the lesson files' measured quantities read in the GUI (and where to see them).
METRIC_WORDS = {
    "on_mode": "share of particles on a mode (Metrics: On a mode)",
    "mode_spread": "spread of particles around their mode (1 = like the data)",
    "mode_weight_error": "mode-weight error (Metrics ▸ Mode weights: orange vs grey bars)",
    "sw_ratio": "SW ratio to the data (Metrics ▸ SW ratio)",
    "score_error_drop": "drop of the score error (Metrics ▸ Score error vs truth)",
    "loss_drop": "drop of the loss (Loss plot)",
    "seconds_per_step": "seconds per training step",
}
PARTICLE_METRICS = ("on_mode", "mode_spread", "mode_weight_error", "sw_ratio")  # measured on the particles


def lesson_run_config(lesson: Lesson, variant: Variant) -> RunConfig:
    """The run settings the window uses for a lesson variant.

    Learned lessons train `train_steps`. A truth lesson trains nothing, so a single-σ loss there
    only names the level its Langevin runs at; it is shown as a σ ladder starting at that level
    (Langevin runs at σmin, the same level), so the σ slider can scrub the true field upwards."""
    run = variant.run
    if lesson.score == "learned" and lesson.train_steps:
        run = replace(run, train=replace(run.train, steps=lesson.train_steps))
    if lesson.score == "truth" and LOSSES[run.loss.name].noise == "single":
        sigma = run.noise.sigma
        noise = replace(run.noise, sigma_min=sigma, sigma_max=max(run.noise.sigma_max, 10 * sigma))
        run = replace(run, loss=replace(run.loss, name="ncsn"), noise=noise)
    return run


def lesson_view(lesson: Lesson) -> dict[str, Any]:
    """`Session.set_view` changes for a lesson: its layers over plain defaults, and its σ.
    Truth lessons train no network, so the score field they show is the true one."""
    layers = dict(lesson.view.get("layers", {}))
    view: dict[str, Any] = {"data": True, "field": True, "true_field": False, "particles": True, "trails": False,
                            "heatmap": "off", "noisy_data": False}
    view.update({k: v for k, v in layers.items() if k in view})
    if "sigma" in lesson.view:
        view["sigma"] = float(lesson.view["sigma"])
    if lesson.score == "truth":
        view["true_field"] = bool(view["true_field"] or view["field"])
        view["field"] = False
        if view["heatmap"] != "off":
            view["heatmap"] = "off"  # error / density / curl describe a trained net
    return view


def watch_text(lesson: Lesson) -> str:
    """One line from the lesson's measured claims ("expect"), in the words of the GUI, grouped by
    what to look at; a bound every variant shares is said once."""
    bounds: dict[tuple[str, str, float], list[str]] = {}
    clauses: dict[str, list[str | tuple[str, float]]] = {}
    for e in lesson.expect:
        words = METRIC_WORDS.get(e["metric"]) or METRIC_NAMES[e["metric"]]
        said = clauses.setdefault(words, [])
        if "ratio_at_least" in e:
            said.append(f"“{e['worse']}” at least {e['ratio_at_least']:g}× “{e['better']}”")
        for key in ("above", "below"):
            if key in e:
                claim = (words, key, float(e[key]))
                if claim not in bounds:
                    said.append(claim[1:])
                bounds.setdefault(claim, []).append(e["variant"])
    n_variants = len(lesson.variants)
    parts = []
    for words, said in clauses.items():
        texts = []
        for clause in said:
            if isinstance(clause, str):
                texts.append(clause)
                continue
            key, value = clause
            who = bounds[(words, key, value)]
            if n_variants == 1:
                scope = ""
            elif len(set(who)) == n_variants:
                scope = "every variant "
            else:
                scope = " ".join(f"“{v}”" for v in who) + " "
            texts.append(f"{scope}{key} {value:g}")
        parts.append(f"{words}: {', '.join(texts)}")
    text = " · ".join(parts)
    if not lesson.view.get("play") and any(e["metric"] in PARTICLE_METRICS for e in lesson.expect):
        shown = lesson.view.get("layers", {}).get("particles", True)
        text += " — press ▶ Particles to run the sampler" if shown else " — tick Particles and press ▶ Particles"
    return text


CHECK_COLORS = {True: "#1a7f37", False: "#cf222e", None: "#6e7781"}  # holds, fails, not measured yet


def measuring_text(lesson: Lesson) -> str:
    """What the live checks wait for, said before there is anything to measure."""
    wait = []
    if lesson.score == "learned":
        wait.append(f"training reaches {lesson.train_steps:,} steps")
    if needs_particles(lesson):
        wait.append("the sampler finishes a pass" + (" with the trained net" if lesson.score == "learned" else ""))
    return f"measuring… the checks appear once {' and '.join(wait)}"


def checks_html(claims: tuple[Claim, ...] | None, lesson: Lesson) -> str:
    """The live checks, one line each, green when the claim holds and red when not; grey
    "measuring…" before they are measured (None)."""
    if claims is None:
        return f"<span style='color:{CHECK_COLORS[None]}'>{escape(measuring_text(lesson))}</span>"
    return "<br>".join(f"<span style='color:{CHECK_COLORS[c.holds]}'>{escape(c.line)}</span>" for c in claims)


def checks_summary(claims: tuple[Claim, ...] | None) -> tuple[str, bool | None]:
    """The checks in a few words, and whether all hold (None before they are measured): what a
    folded bar shows beside its title, where the checks themselves are hidden."""
    if claims is None:
        return "measuring…", None
    held = sum(c.holds for c in claims)
    return f"{'✓' if held == len(claims) else '✗'} {held}/{len(claims)} checks", held == len(claims)


# What the particle checks measure, said where they are read: a sampler's last Tweedie denoise moves
# its particles after the canvas has drawn them (lesson 5: 3.0% off the data as drawn, 1.9% after it)
FINAL_DENOISE_NOTE = ("The particle checks measure what the sampler returns, as <code>sgm lesson</code> does: "
                      "after its last Tweedie denoise where it makes one (annealed Langevin, the reverse SDE and PC "
                      "samplers, Langevin at a σ > 0). The canvas and Metrics show the particles before that move, and "
                      "their numbers can differ (lesson 5: 3.0% off the data as drawn, 1.9% after the denoise).")


CANVAS_MIN_PX = 220  # the canvas under the lesson bar keeps at least this height: the bar folds first
UNFOLD_SLACK_PX = 40  # a folded bar opens again by itself only with this much room to spare


TITLE_STYLE = "font-size: 14px; font-weight: 600; color: #1f3a5f;"


class ElidedLabel(QLabel):
    """One line of text that ends in "…" where it does not fit, in whatever width the layout gives
    it (it asks for none); the whole text is its tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(self.width(), 1)))


class LessonBar(QFrame):
    """A banner over the canvas: the lesson's title, caption and what to watch, with its variants.

    It folds to its title row (the ▾ button, or by itself when the canvas under it would fall
    below CANVAS_MIN_PX, as at 1024x700, where the open bar left the canvas ~68 px)."""

    variant_chosen = Signal(int)
    restart_requested = Signal()
    compare_requested = Signal(object)  # tuple of loss names
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lessonBar")
        self.setStyleSheet(
            "#lessonBar { background: #eef4fb; border: 1px solid #b9cde4; border-radius: 6px; }"
            "#lessonBar QLabel { background: transparent; }")
        self.title_label = QLabel()
        self.title_label.setStyleSheet(TITLE_STYLE)
        # folded, the bar is one row: the title on one line, cut with "…" (wrapped, lesson 10's
        # took four lines at 1024x700 and left the canvas 164 px), and the checks' verdict after it
        self.folded_title = ElidedLabel()
        self.folded_title.setStyleSheet(TITLE_STYLE)
        self.summary_label = QLabel()
        self.summary_label.setToolTip("How many of the lesson's live checks hold: unfold (▸) to read them")
        self.mode_label = QLabel()
        self.mode_label.setStyleSheet("color: #1f3a5f; background: #d8e6f5; border-radius: 8px; padding: 1px 8px;")
        self.mode_label.setToolTip("What drives the particles in this lesson")
        self.caption_label = QLabel()
        self.caption_label.setWordWrap(True)
        self.caption_label.setStyleSheet("color: #23272e;")
        self.caption_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.watch_label = QLabel()
        self.watch_label.setWordWrap(True)
        self.watch_label.setStyleSheet("color: #3d5670;")
        self.watch_label.setToolTip("The effect this lesson measures (tests/test_lessons.py checks each claim)")
        self.checks_label = QLabel()  # the claims, measured live in the engine (LessonController)
        self.checks_label.setWordWrap(True)
        self.checks_label.setTextFormat(Qt.TextFormat.RichText)
        self.checks_label.setToolTip("Each claim of the caption, measured in the engine from the particles and net "
                                     "shown (the same measurement as `sgm lesson ID`)")
        self.claims: tuple[Claim, ...] | None = None  # the newest measurement, None before one
        self._lesson: Lesson | None = None
        self.variant_combo = QComboBox()
        self.variant_combo.setToolTip("Switch between the lesson's variants (same data and starting particles)")
        self.variant_combo.activated.connect(self.variant_chosen.emit)
        self.variant_label = QLabel("Variant")
        self.compare_button = QPushButton("Compare…")
        self.compare_button.setToolTip("Compare side by side: Compare losses with this lesson's losses ticked")
        self.compare_button.clicked.connect(lambda: self.compare_requested.emit(self._compare))
        self.restart_button = QPushButton("Restart")
        self.restart_button.setToolTip("Set the lesson up again from the start")
        self.restart_button.clicked.connect(self.restart_requested.emit)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Leave the lesson: your own settings come back")
        self.close_button.clicked.connect(self._dismiss)
        self.fold_button = QToolButton()
        self.fold_button.setAutoRaise(True)
        self.fold_button.clicked.connect(lambda: self.set_folded(not self.folded, by_user=True))
        self.folded = False
        self._open = (1, 0)  # (width, height) of the bar when last measured open
        self._user_fold: bool | None = None  # the user's own choice this lesson (None: fold to fit)
        self._compare: tuple[str, ...] = ()

        # Every label wraps and the bar ignores its width hint: it takes the canvas's width and
        # grows in height, never wider (a one-line head pushed the docks off a 1280 px screen).
        self.title_label.setWordWrap(True)
        self.variant_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.variant_combo.setMinimumContentsLength(8)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # height: _fit_height
        head = QHBoxLayout()
        head.setSpacing(8)
        head.addWidget(self.title_label, 1)
        head.addWidget(self.folded_title, 1)
        head.addWidget(self.summary_label, 0)
        head.addWidget(self.fold_button, 0, Qt.AlignmentFlag.AlignTop)
        head.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        mode = QHBoxLayout()  # short rows: each fits a canvas of ~350 px (1024 px window)
        mode.addWidget(self.mode_label)
        mode.addStretch(1)
        mode.addWidget(self.restart_button)
        controls = QHBoxLayout()
        controls.setSpacing(8)
        controls.addWidget(self.variant_label)
        controls.addWidget(self.variant_combo, 1)
        controls.addWidget(self.compare_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(12, 6, 6, 8)
        column.setSpacing(3)
        column.addLayout(head)
        column.addLayout(mode)
        column.addLayout(controls)
        column.addWidget(self.checks_label)  # the proof first: where room runs out, the caption's tail is cut
        column.addWidget(self.caption_label)
        column.addWidget(self.watch_label)
        self._rows = (mode, controls)
        self._set_fold_button()
        self.hide()

    # -- folding ----------------------------------------------------------------------------
    def _set_fold_button(self) -> None:
        self.fold_button.setText("▸" if self.folded else "▾")
        self.fold_button.setToolTip("Show the lesson's caption, checks and controls" if self.folded
                                    else "Fold the lesson to its title: more room for the canvas")

    def set_folded(self, folded: bool, by_user: bool = False) -> None:
        """Show only the title row (folded) or everything; `by_user` keeps that choice this lesson."""
        if by_user:
            self._user_fold = bool(folded)
        self.folded = bool(folded)
        for row in self._rows:
            for i in range(row.count()):
                widget = row.itemAt(i).widget()
                if widget is not None:
                    widget.setVisible(not folded and self._shown_in_row(widget))
        self.checks_label.setVisible(not folded)
        self.title_label.setVisible(not folded)
        self.folded_title.setVisible(folded)
        self.summary_label.setVisible(folded)
        self.caption_label.setVisible(not folded)
        self.watch_label.setVisible(not folded and self.claims is None)
        self._set_fold_button()
        self._fit_height()

    def _fit_height(self) -> None:
        """Hold the bar at the height its rows need at its width. Left to the box layout, a bar of
        wrapping labels was given the height they need at their narrowest (300+ px at 1024x700),
        and the canvas only what was left (68 px)."""
        layout = self.layout()
        width = max(self.width(), 1)
        height = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
        if not self.folded:
            self._open = (width, height)
            room = self._room()
            if room is not None and self.isVisible() and room - height < CANVAS_MIN_PX:
                # opened by hand where there is no room: the canvas keeps its minimum, the
                # caption's tail is cut (the checks come first; the whole caption is the tooltip)
                height = max(room - CANVAS_MIN_PX, 0)
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(height)

    def _shown_in_row(self, widget: QWidget) -> bool:
        multi = self._lesson is not None and len(self._lesson.variants) > 1
        if widget in (self.variant_combo, self.variant_label):
            return multi
        if widget is self.compare_button:
            return bool(self._compare)
        return True

    def open_height(self) -> int:
        """The bar's height unfolded (as last measured open; at this width when open now)."""
        if not self.folded:
            layout = self.layout()
            width = max(self.width(), 1)
            return layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
        return self._open[1]

    def fit(self) -> None:
        """Fold when the open bar would leave the canvas under CANVAS_MIN_PX, unfold when it fits
        again with room to spare; the user's own choice stands until the next lesson."""
        if not self.isVisible() or self._user_fold is not None:
            return
        room = self._room()
        if room is None:
            return
        room -= self.open_height()
        if not self.folded and room < CANVAS_MIN_PX:
            self.set_folded(True)
        elif self.folded and room >= CANVAS_MIN_PX + UNFOLD_SLACK_PX:
            self.set_folded(False)

    def _room(self) -> int | None:
        """The height the bar and the canvas share: the column less its margins and every other
        strip shown in it (the error banner, the recovery offer), with the spacing between them."""
        holder = self.parentWidget()
        column = holder.layout() if holder is not None else None
        if column is None:
            return None
        taken, shown = 0, 0
        for i in range(column.count()):
            widget = column.itemAt(i).widget()
            if widget is None or not widget.isVisibleTo(holder):
                continue
            shown += 1
            if widget is not self and column.stretch(i) == 0:  # the canvas is the stretching item
                taken += widget.height()
        margins = column.contentsMargins()
        spacing = max(shown - 1, 0) * max(column.spacing(), 0)
        return holder.height() - taken - spacing - margins.top() - margins.bottom()

    def showEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        super().showEvent(event)
        holder = self.parentWidget()
        if holder is not None and not getattr(self, "_watching", False):
            holder.installEventFilter(self)  # the window's height and the other strips change the room
            self._watching = True

    def eventFilter(self, watched, event) -> bool:  # noqa: N802, ANN001 - Qt override
        if event.type() in (QEvent.Type.Resize, QEvent.Type.LayoutRequest) and watched is self.parentWidget():
            QTimer.singleShot(0, self.fit)  # the window's height, or a strip above the canvas shown or hidden
        return False

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            QTimer.singleShot(0, self._fit_height)  # wrapped rows: a new width, a new height
        QTimer.singleShot(0, self.fit)  # after the layout pass that gave this width

    def show_lesson(self, lesson: Lesson, variant: int) -> None:
        self._lesson = lesson
        self.title_label.setText(lesson.title)
        self.folded_title.set_full_text(lesson.title)
        if lesson.score == "truth":
            self.mode_label.setText("true score — nothing to train")
        else:
            flows = all(learned_measure(v.run) == "sw_ratio" for v in lesson.variants)  # fm, ot-fm learn a velocity
            self.mode_label.setText(f"learned {'velocity' if flows else 'score'} — trains {lesson.train_steps:,} steps")
        self.caption_label.setText(lesson.caption)
        self.setToolTip(lesson.caption)
        self.watch_label.setText(f"<b>What to watch:</b> {watch_text(lesson)}")
        self.show_checks(None)
        self.variant_combo.blockSignals(True)
        self.variant_combo.clear()
        for v in lesson.variants:
            self.variant_combo.addItem(v.label)
        self.variant_combo.setCurrentIndex(variant)
        self.variant_combo.blockSignals(False)
        multi = len(lesson.variants) > 1
        self.variant_combo.setVisible(multi)
        self.variant_label.setVisible(multi)
        self._compare = tuple(lesson.view.get("compare", ()))
        self.compare_button.setVisible(bool(self._compare))
        self._user_fold = None  # a new lesson folds to fit again
        self.set_folded(False)
        self.show()
        QTimer.singleShot(0, self.fit)

    def show_checks(self, claims: tuple[Claim, ...] | None) -> None:
        self.claims = claims
        self.checks_label.setText(checks_html(claims, self._lesson))
        text, holds = checks_summary(claims)
        self.summary_label.setText(text)
        self.summary_label.setStyleSheet(f"color: {CHECK_COLORS[holds]}; font-weight: 600;")
        # measured, the checks say what to watch, with the numbers: the static list steps aside
        self.watch_label.setVisible(claims is None and not self.folded)
        tip = self.watch_label.text()
        if self._lesson is not None and needs_particles(self._lesson):
            tip += f"<br><br>{FINAL_DENOISE_NOTE}"
        self.checks_label.setToolTip(tip)
        QTimer.singleShot(0, self._fit_height)

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()


class LessonController(QObject):
    """Sets a lesson up in a MainWindow: data, settings, view, then training or playing."""

    started = Signal(object)  # the Lesson, once its engine has been asked to run

    def __init__(self, window, lessons: list[Lesson] | None = None) -> None:  # noqa: ANN001 - MainWindow
        super().__init__(window)
        self.window = window
        self.lessons = lessons if lessons is not None else load_lessons()
        self.lesson: Lesson | None = None
        self.variant = 0
        self._user: dict[str, Any] | None = None  # the user's own settings while a lesson has its own
        self._user_guide: tuple[int | None, float] = (None, 0.0)  # ... and the Sampler dock's class and w
        self._pending = False  # waiting for the lesson's data to arrive from the worker
        self._user_data: DataState | None = None  # the data the user had when the lesson began
        self._leaving = False  # leave() is bringing the user's data back: not the user opening data
        self.menu = None  # the Lessons menu, once installed
        self.actions: list[QAction] = []  # one per lesson, in menu order
        self.bar = LessonBar()
        self.bar.variant_chosen.connect(self.set_variant)
        self.bar.restart_requested.connect(lambda: self.load(self.lesson, self.variant) if self.lesson else None)
        self.bar.compare_requested.connect(self._open_compare)
        self.bar.dismissed.connect(self._on_dismissed)
        window.session.data_changed.connect(self._on_data_changed)
        window.worker.finished_training.connect(self._on_finished_training)
        window.worker.lesson_checked.connect(self._on_lesson_checked)

    # -- choosing ---------------------------------------------------------------------------
    def load(self, which: Lesson | int | str, variant: int = 0) -> Lesson:
        """Set up a lesson by object, index (0-based) or id, with one of its variants. Out of a
        lesson, a model with training is asked about first (a lesson brings its own model); the
        user's settings are kept aside until the lesson is left."""
        lesson = self._find(which)
        w = self.window
        steps = w.engine_sync.trained_steps()
        if self.lesson is None and steps:
            w.ask_pausing(steps, "the lesson sets up its own data and network",
                                lambda discard: self._enter(lesson, variant) if discard else None)
        else:
            self._enter(lesson, variant)
        return lesson

    def _enter(self, lesson: Lesson, variant: int) -> None:
        w = self.window
        if self.lesson is None:
            self._user = w.session.settings()
            self._user_guide = (w.session.guide_class, w.session.guidance)
            self._user_data = w.session.data
        self.lesson, self.variant = lesson, max(0, min(variant, len(lesson.variants) - 1))
        w.worker.pause_particles()
        self._apply_settings()
        s = w.session
        self.bar.show_lesson(lesson, self.variant)
        w.statusBar().showMessage(f"Lesson: {lesson.title}", 4000)
        if s.data.source == lesson.data and s.data.kind in ("preset", "file"):
            self._pending = False
            self._start()
        else:
            self._pending = True
            w.load_data(lesson.data)

    def leave(self, restore_data: bool = True) -> None:
        """Out of the lesson: the bar goes and the user's own settings come back, and their own
        data (one undoable step: Undo shows the lesson's again) unless they opened other data
        (restore_data=False). The lesson's model goes on where it fits: it was the lesson's."""
        if self.lesson is None:
            return
        self.bar.hide()
        self.window.worker.check_lesson(None)
        s = self.window.session
        if self._user is not None:
            s.restore(**self._user)
            s.set_guidance(*self._user_guide)
        data_back = restore_data and self._user_data is not None and s.data is not self._user_data
        if data_back:
            self._leaving = True
            try:
                s.replace_data(self._user_data)
            finally:
                self._leaving = False
        self.window.engine_sync.flush_rebuild()  # while the lesson is still on: no question about its model
        self.lesson, self._pending, self._user, self._user_data = None, False, None, None
        self.window.statusBar().showMessage("Left the lesson: your own data and settings are back (Undo: the "
                                            "lesson's data)" if data_back else
                                            "Left the lesson: your own settings are back", 6000)

    def user_settings(self) -> dict[str, Any] | None:
        """The user's own settings while a lesson shows its own (None: no lesson)."""
        return self._user if self.lesson is not None else None

    def set_variant(self, index: int) -> None:
        if self.lesson is None or index == self.variant and not self._pending:
            return
        self.load(self.lesson, index)

    def _find(self, which: Lesson | int | str) -> Lesson:
        if isinstance(which, Lesson):
            return which
        if isinstance(which, int):
            return self.lessons[which]
        return next(lesson for lesson in self.lessons if lesson.id == which)

    # -- setting up -------------------------------------------------------------------------
    def _apply_settings(self) -> None:
        lesson = self.lesson
        assert lesson is not None
        s = self.window.session
        variant = lesson.variants[self.variant]
        s.set_run_config(lesson_run_config(lesson, variant))  # a new loss picks its sampler: set ours after
        s.set_sampler_config(variant.sampler)
        s.set_particles(n_particles=lesson.particles, reference_score=lesson.score == "truth")
        s.set_view(**lesson_view(lesson))

    def _apply_guidance(self) -> None:
        """The variant's class and w in the Sampler dock (unguided where it names none), so the canvas
        shows what its checks measure; set once the lesson's data, and so its classes, are in."""
        lesson = self.lesson
        assert lesson is not None
        s, guide = self.window.session, lesson.variants[self.variant].guide
        if guide is None:
            s.set_guidance(None)
            return
        try:
            s.set_guidance(class_index(s.classes(), guide[0]), guide[1])
        except DataError as exc:  # the lesson file names a class its data lacks (sgm_core.lessons checks its own)
            self.window.show_error(f"The lesson's guidance cannot be shown: {exc}")

    def _on_data_changed(self) -> None:
        lesson, data = self.lesson, self.window.session.data
        if lesson is None or self._leaving:
            return
        if self._pending and data.source == lesson.data:
            self._pending = False
            self._start()
        elif not self._pending and data.kind in ("preset", "file") and data.source != lesson.data:
            self.leave(restore_data=False)  # the user opened other data: the lesson is over

    def _start(self) -> None:
        """Build the lesson's engine now, then train (learned) and play (when the lesson says so)."""
        lesson = self.lesson
        assert lesson is not None
        w = self.window
        self._apply_guidance()
        w.reset_training()  # rebuild from the session now: the lesson's data and settings
        self.bar.show_checks(None)
        w.worker.check_lesson(lesson, lesson.variants[self.variant].label)
        if lesson.score == "learned":
            w.train()
        if lesson.view.get("play", False):
            w.worker.play()
        else:
            w.worker.pause_particles()
        self.started.emit(lesson)

    def engine_restarted(self) -> None:
        """The engine process was started again after a crash (EngineSync.on_engine_died): the new
        one knows no lesson, so its checks are asked for again, and a playing lesson plays again;
        the bar says "measuring…" until the new engine has measured them."""
        lesson = self.lesson
        if lesson is None or self._pending:
            return
        self.bar.show_checks(None)
        self.window.worker.check_lesson(lesson, lesson.variants[self.variant].label)
        if lesson.view.get("play", False):
            self.window.worker.play()

    def _on_finished_training(self, _step: int) -> None:
        """A playing lesson samples once more with the trained model, from fresh particles."""
        lesson = self.lesson
        if lesson is not None and self.bar.isVisible() and lesson.score == "learned" and lesson.view.get("play"):
            self.window.reset_particles()
            self.window.worker.play()

    def _on_lesson_checked(self, label: str, claims: tuple[Claim, ...]) -> None:
        lesson = self.lesson
        if lesson is not None and not self._pending and label == lesson.variants[self.variant].label:
            self.bar.show_checks(tuple(claims))

    def _on_dismissed(self) -> None:
        self.leave()

    def _open_compare(self, losses: tuple[str, ...]) -> None:
        from .compare_window import open_compare

        compare = open_compare(self.window, "losses", tuple(losses))
        if compare is not None and self.lesson is not None and self.lesson.train_steps:
            compare.steps_box.setValue(self.lesson.train_steps)


def install_lessons(window) -> LessonController:  # noqa: ANN001 - MainWindow
    """Add the Lessons menu (Lessons ▸ 1..8) and the lesson bar over the canvas."""
    controller = LessonController(window)
    column = window.centralWidget().layout()
    column.insertWidget(0, controller.bar)
    menu = window.menuBar().addMenu("&Lessons")
    menu.setToolTipsVisible(True)
    controller.menu = menu
    for i, lesson in enumerate(controller.lessons):
        action = QAction(lesson.title, window)
        action.setToolTip(lesson.caption)
        action.setStatusTip(lesson.caption)
        action.triggered.connect(lambda _=False, k=i: controller.load(k))
        menu.addAction(action)
        window.actions_[f"lesson_{lesson.id}"] = action
        controller.actions.append(action)
    return controller

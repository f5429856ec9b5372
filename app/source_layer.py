"""The Source layer: where a flow starts (fm / ot-fm transport one distribution into the data).

The source is the Gaussian N(0, I) (the default), a preset, a data file, or a second drawing painted
on the canvas in its own colour (Tong et al. 2024; torchcfm's 8gaussians -> moons). Its edits are
undoable on the session's undo stack, like the data's; sessions save and restore it. Everything
the window needs of it lives here: the immutable `SourceState`, its undo commands, the `SourceLayer`
model, the `SourcePanel` controls in the Data dock, and `SourceController`, which loads presets and
files in the engine worker and tells the window what to send (`engine_source`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import QButtonGroup, QComboBox, QFormLayout, QHBoxLayout, QLabel, QRadioButton, QWidget

from sgm_core.config import RunConfig
from sgm_core.datasets import PRESETS, Dataset, EmpiricalDataset, load_dataset
from sgm_core.losses import DRAWN_SOURCE, loss_spec

from .commands import points_near

if TYPE_CHECKING:
    from .main_window import MainWindow

KINDS = ("gaussian", "preset", "file", "drawn")
OPEN_ITEM, DRAW_ITEM = "<open>", "<drawn>"  # the combo's two action entries
SOURCE_POINTS = 5000  # a preset source's draw (`sgm train --source` takes the same 5,000)


def _frozen(points: np.ndarray) -> np.ndarray:
    out = np.array(points, dtype=np.float32, copy=True).reshape(len(points), -1) if len(points) else \
        np.zeros((0, 2), np.float32)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class SourceState:
    """The source as the user set it: N(0, I), a preset or file (its dataset kept: a preset's exact
    mixture is the truth's other end), or drawn points (an empirical cloud)."""

    kind: str = "gaussian"  # one of KINDS
    name: str = "Gaussian N(0, I)"  # shown to the user
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # (M, D), data coordinates
    dataset: Dataset | None = None  # the preset's or file's, while unedited
    origin: str = ""  # preset name or file path

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"source kind must be one of {KINDS}, not {self.kind!r}")
        object.__setattr__(self, "points", _frozen(np.asarray(self.points, np.float32)))

    @property
    def dim(self) -> int | None:
        return None if self.kind == "gaussian" else int(self.points.shape[1])

    def config_source(self) -> str:
        """What `LossConfig.source` records: the preset name or file path, DRAWN_SOURCE for a drawing."""
        return {"gaussian": "", "drawn": DRAWN_SOURCE}.get(self.kind, self.origin)

    def as_dataset(self) -> Dataset | None:
        """The distribution the engine flows from; None for N(0, I) or a drawing of under 2 points."""
        if self.kind == "gaussian" or len(self.points) < 2:
            return None
        return self.dataset if self.dataset is not None else EmpiricalDataset(self.points, name=self.name)

    def edited(self, points: np.ndarray) -> SourceState:
        """The source after a brush edit: a drawing from here on (a preset loses its mixture)."""
        name = self.name if self.kind == "drawn" or self.name.endswith("(edited)") else (
            "drawing" if self.kind == "gaussian" else f"{self.name} (edited)")
        return SourceState("drawn", name if len(points) else "drawing", points)

    def settings(self) -> dict[str, str]:
        """JSON for a session's GUI settings (the points go to its source.npy)."""
        return {"kind": self.kind, "name": self.name, "origin": self.origin}


def restored_source(raw: object, points: np.ndarray | None, run: RunConfig) -> SourceState:
    """The Source layer of an opened session: its settings and points, or what its run names
    (a session from `sgm train --source` holds the points and names the preset or file)."""
    raw = raw if isinstance(raw, dict) else {}
    kind = raw.get("kind") if raw.get("kind") in KINDS else None
    if points is None or len(points) == 0 or raw.get("kind") == "gaussian":
        return SourceState()
    origin = raw.get("origin") if isinstance(raw.get("origin"), str) else run.loss.source
    if kind is None:
        kind = "preset" if origin in PRESETS else "drawn" if origin in ("", DRAWN_SOURCE) else "file"
    name = raw.get("name") if isinstance(raw.get("name"), str) else (Path(origin).stem if kind == "file" else origin)
    dataset = None
    spec = PRESETS.get(origin)
    if kind == "preset" and spec is not None and spec.dim == points.shape[1]:
        dataset = Dataset(origin, points, spec.sampler, spec.gmm() if spec.gmm is not None else None)
    elif kind == "file":
        dataset = EmpiricalDataset(points, name=name or "source")
    elif kind != "drawn":
        kind = "drawn"
    return SourceState(kind, name or "drawing", points, dataset, origin if kind in ("preset", "file") else "")


class SourceCommand(QUndoCommand):
    """Swap the layer between two source states (the states are immutable)."""

    def __init__(self, layer: SourceLayer, after: SourceState, text: str) -> None:
        super().__init__(text)
        self._layer, self.before, self.after = layer, layer.state, after

    def redo(self) -> None:
        self._layer.apply(self.after)

    def undo(self) -> None:
        self._layer.apply(self.before)


class SourceLayer(QObject):
    """The session's source distribution and whether the brush paints it (`editing`)."""

    changed = Signal()  # the source state
    editing_changed = Signal(bool)

    def __init__(self, undo_stack: QUndoStack, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = undo_stack
        self.state = SourceState()
        self.editing = False

    def apply(self, state: SourceState) -> None:
        """Install a state (undo commands and `reset` call this; edits go through the push methods)."""
        self.state = state
        self.changed.emit()

    def reset(self, state: SourceState | None = None) -> None:
        """Install without an undo step (an opened session, New)."""
        self.apply(state or SourceState())

    def set_editing(self, on: bool) -> None:
        if bool(on) != self.editing:
            self.editing = bool(on)
            self.editing_changed.emit(self.editing)

    def choose(self, state: SourceState) -> None:
        self.undo_stack.push(SourceCommand(self, state, f"Source: {state.name}"))

    def add_points(self, points: np.ndarray) -> str | None:
        """Push an undoable edit; returns why not (wrong D, NaN) or None."""
        pts = np.asarray(points, np.float32)
        if pts.ndim != 2 or len(pts) == 0:
            return None
        old = self.state
        if old.dim is not None and len(old.points) and pts.shape[1] != old.dim:
            return f"cannot draw {pts.shape[1]}D points into the {old.dim}D source"
        if not np.isfinite(pts).all():
            return "the drawn points contain NaN or Inf; they were not added"
        merged = np.concatenate([old.points, pts]) if len(old.points) else pts
        n = len(pts)
        self.undo_stack.push(SourceCommand(self, old.edited(merged), f"Add {n} source point{'s' * (n != 1)}"))
        return None

    def erase_points(self, centres: np.ndarray, radius: float) -> int:
        old = self.state
        mask = points_near(old.points, np.asarray(centres, np.float32).reshape(-1, 2), radius)
        n = int(mask.sum())
        if n:
            self.undo_stack.push(SourceCommand(self, old.edited(old.points[~mask]),
                                               f"Erase {n} source point{'s' * (n != 1)}"))
        return n


def flows_from_source(config: RunConfig) -> bool:
    """Does this loss take a source distribution (its path transports one set into another)?"""
    return loss_spec(config.loss.name).process_type.transports


class SourcePanel(QWidget):
    """The Data dock's Source rows: what the flow starts from, and whether the brush paints the
    data or the source. Emits what the user asked for; `SourceController` does it."""

    preset_chosen = Signal(str)
    file_requested = Signal()
    drawing_requested = Signal()
    gaussian_requested = Signal()

    def __init__(self, layer: SourceLayer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer = layer
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.combo = QComboBox()
        self.combo.setToolTip("Where fm / ot-fm flows start: Gaussian noise, a preset, a file, or a second drawing")
        self.combo.addItem("Gaussian N(0, I)", "")
        for name, spec in PRESETS.items():
            self.combo.addItem(name if spec.dim == 2 else f"{name} (3D)", name)
        self.combo.addItem("Drawing (paint it)", DRAW_ITEM)
        self.combo.addItem("Open file…", OPEN_ITEM)
        self.combo.setItemData(self.combo.count() - 2, "Paint the source with the brush, in its own colour",
                               Qt.ItemDataRole.ToolTipRole)
        form.addRow("Source", self.combo)
        self.data_button, self.source_button = QRadioButton("Data"), QRadioButton("Source")
        self.data_button.setToolTip("Brush, point and eraser edit the data")
        self.source_button.setToolTip("Brush, point and eraser edit the source (drawn in green)")
        self.group = QButtonGroup(self)
        row = QHBoxLayout()
        for button in (self.data_button, self.source_button):
            self.group.addButton(button)
            row.addWidget(button)
        row.addStretch(1)
        form.addRow("Brush into", row)
        self.info_label = QLabel()
        self.info_label.setWordWrap(True)
        self.info_label.setToolTip("The distribution fm and ot-fm carry into the data")
        form.addRow("", self.info_label)
        self.uses_source = True
        self.sync()
        layer.changed.connect(self.sync)
        layer.editing_changed.connect(self.sync)
        self.combo.activated.connect(self._on_activated)
        self.source_button.toggled.connect(lambda on: layer.set_editing(on))

    def set_uses_source(self, uses: bool) -> None:
        """The loss takes a source (fm, ot-fm) or not: the note says which."""
        if uses != self.uses_source:
            self.uses_source = uses
            self.sync()

    def sync(self) -> None:
        state = self.layer.state
        blockers = [QSignalBlocker(w) for w in (self.combo, self.data_button, self.source_button)]
        data = {"gaussian": "", "drawn": DRAW_ITEM}.get(state.kind, state.origin if state.kind == "preset" else "")
        row = self.combo.findData(data) if state.kind != "file" else -1
        if state.kind == "file":
            row = self.combo.findData(OPEN_ITEM)
        self.combo.setCurrentIndex(max(row, 0))
        self.source_button.setChecked(self.layer.editing)
        self.data_button.setChecked(not self.layer.editing)
        del blockers
        what = "N(0, I)" if state.kind == "gaussian" else f"{state.name} — {len(state.points)} points ({state.kind})"
        note = "" if self.uses_source else " · used only by fm and ot-fm"
        self.info_label.setText(f"Flows start from {what}{note}")

    def _on_activated(self, index: int) -> None:
        value = self.combo.itemData(index)
        if value == OPEN_ITEM:
            self.file_requested.emit()
        elif value == DRAW_ITEM:
            self.drawing_requested.emit()
        elif value:
            self.preset_chosen.emit(value)
        else:
            self.gaussian_requested.emit()
        self.sync()  # until a load answers, the combo shows the source in use


def _load_source(source: str, _engine: Any) -> Dataset:
    """Runs in the engine worker (torch draws the presets)."""
    return load_dataset(source, n_points=SOURCE_POINTS, seed=0)


class SourceController(QObject):
    """Wires the Source layer into the window: the panel in the Data dock, loads in the worker,
    the canvas layer, and the source the engine is sent (`engine_source`)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.layer: SourceLayer = window.session.source
        self.panel = SourcePanel(self.layer)
        self._problem: str | None = None  # the last mismatch shown on the banner
        layout = window.data_panel.layout()
        layout.insertWidget(max(layout.count() - 2, 0), self.panel)  # above the Open / Clear buttons
        self.panel.preset_chosen.connect(self.load)
        self.panel.file_requested.connect(self.open_dialog)
        self.panel.drawing_requested.connect(self.start_drawing)
        self.panel.gaussian_requested.connect(lambda: self.layer.choose(SourceState()))
        self.layer.changed.connect(self._on_changed)
        self.layer.editing_changed.connect(self._on_editing)
        window.session.config_changed.connect(self._on_config)
        self._on_config()
        self._on_changed()

    # -- choosing ----------------------------------------------------------------------------
    def load(self, source: str) -> None:
        """A preset name or file path, loaded in the engine worker; becomes the source when it arrives."""
        w = self.window
        kind = "preset" if source in PRESETS else "file"
        name = source if kind == "preset" else Path(source).stem

        def done(dataset: Dataset) -> None:
            self.layer.choose(SourceState(kind, name, dataset.points, dataset, source))
            w.statusBar().showMessage(f"Source: {name}, {len(dataset.points)} points", 4000)

        w.files.tasks.submit(lambda engine: _load_source(source, engine), done,
                             lambda message: w.show_error(f"source not loaded: {message}"))

    def open_dialog(self) -> None:
        from .main_window import OPEN_SUFFIXES

        patterns = " ".join(f"*{s}" for s in OPEN_SUFFIXES)
        path = self.window.ask_open_path("Open source data", f"Point data ({patterns});;All files (*)")
        if path:
            self.load(path)

    def start_drawing(self) -> None:
        """Paint the source: the current source becomes an editable drawing, the brush paints it."""
        state = self.layer.state
        if state.kind != "drawn":
            self.layer.choose(state.edited(state.points) if state.kind != "gaussian" else SourceState("drawn", "drawing"))
        self.layer.set_editing(True)
        self.window.set_tool("brush")

    # -- what the engine gets ----------------------------------------------------------------
    def dataset_for(self, dim: int) -> Dataset | None:
        """The source as a dataset for data of `dim` (Tools ▸ Compare's flows start from it), or None
        for N(0, I) or a source of another dimension."""
        dataset = self.layer.state.as_dataset()
        return dataset if dataset is not None and dataset.dim == dim else None

    def engine_source(self, config: RunConfig, dim: int | None) -> tuple[RunConfig, Dataset | None]:
        """The run config (LossConfig.source set) and source dataset to send for data of `dim`;
        (config, None) for N(0, I), a loss without a source, or a source the data cannot use: a
        source of another dimension is refused with one banner (until the next change)."""
        state = self.layer.state
        dataset = state.as_dataset()
        if dataset is None or not flows_from_source(config) or dim is None:
            return config, None
        if dataset.dim != dim:
            problem = (f"the source ({state.name}) is {dataset.dim}D but the data is {dim}D; a flow needs both alike, "
                       "so fm starts from N(0, I) until they match")
            if problem != self._problem:
                self._problem = problem
                self.window.show_error(problem)
            return config, None
        self._problem = None
        return config.with_(loss=replace(config.loss, source=state.config_source())), dataset

    # -- listening ---------------------------------------------------------------------------
    def _on_config(self) -> None:
        self.panel.set_uses_source(flows_from_source(self.window.session.run_config))
        self._show()

    def _on_changed(self) -> None:
        self._problem = None
        self._show()
        self.window.engine_sync.rebuild_later()  # the engine flows from the new source (same model)

    def _on_editing(self, on: bool) -> None:
        self.window.plot.set_edit_layer("source" if on else "data")

    def _show(self) -> None:
        state = self.layer.state
        shown = state.kind != "gaussian" and state.points.shape[1] >= 2
        points = state.points if shown else None
        self.window.plot.set_source_points(points, faint=not self.panel.uses_source)
        mode3d = getattr(self.window, "mode3d", None)  # the 3D view draws the source too
        if mode3d is not None:
            mode3d.set_source_points(points, faint=not self.panel.uses_source)


__all__ = ["SourceController", "SourceLayer", "SourcePanel", "SourceState", "restored_source"]

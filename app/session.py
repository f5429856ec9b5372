"""The one Session of the playground: data, configs, view options, the undo stack, the newest frame.

Panels write to it, views listen to it, and the main window forwards its changes to the engine
worker. It holds no torch state: presets and files are loaded by the worker (it owns torch) and
arrive here as `DataState`s; drawn data becomes a `sgm_core` dataset with numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from sgm_core.config import RunConfig, SamplerConfig
from sgm_core.datasets import Dataset, EmpiricalDataset, validate_points
from sgm_core.errors import DataError
from sgm_core.losses import loss_spec

from .commands import AddPoints, ClearPoints, ErasePoints, ReplaceData
from .source_layer import SourceLayer

HEATMAPS = ("off", "density", "error", "curl")
MAX_PARTICLES = 100_000
BRUSH_DEFAULTS = (0.3, 20)  # brush radius (data units), points per dab


def _frozen(points: np.ndarray) -> np.ndarray:
    out = np.array(points, dtype=np.float32, copy=True)
    if out.ndim != 2:
        raise DataError(f"expected an (N, D) array of points, got shape {out.shape}")
    out.setflags(write=False)  # states are shared by undo commands: never edit one in place
    return out


@dataclass(frozen=True, eq=False)
class DataState:
    """The points on the canvas and where they came from.

    `dataset` is the generative (preset) or loaded (file) dataset while the points are unedited;
    once edited it is None and the points train as an empirical cloud with Gaussian `jitter`
    (`sgm_core.datasets.from_brush`: jitter = brush radius / 2).
    """

    points: np.ndarray  # (N, D) float32, read-only
    name: str  # shown to the user: preset name, file stem, "drawing"
    kind: str  # "preset" | "file" | "drawn"
    dataset: Dataset | None = None
    jitter: float = 0.0
    source: str = ""  # preset name or file path that produced it (empty for drawings)
    labels: np.ndarray | None = None  # (N,) class index per point of edited labelled data (else the dataset's)
    classes: tuple[str, ...] = ()  # the names of those classes (the palette's, or the labelled data's)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _frozen(np.asarray(self.points, dtype=np.float32)))
        if self.labels is None and self.dataset is not None and self.dataset.labelled \
                and len(self.dataset.labels) == len(self.points):
            object.__setattr__(self, "labels", self.dataset.labels)  # a labelled preset or file: its labels
            object.__setattr__(self, "classes", tuple(self.dataset.classes))
        if self.labels is not None:
            lab = np.array(self.labels, dtype=np.int64).reshape(-1)
            if len(lab) != len(self.points):
                raise DataError(f"{len(lab)} labels for {len(self.points)} points")
            lab.setflags(write=False)
            object.__setattr__(self, "labels", lab)

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    def edited(self, points: np.ndarray, jitter: float, labels: np.ndarray | None = None,
               classes: tuple[str, ...] | None = None) -> DataState:
        """The same data after a brush edit: empirical from here on (a preset loses its sampler);
        `labels` (one class per point) keep the classes, named `classes` (None: this data's)."""
        name = self.name if self.kind == "drawn" or self.name.endswith("(edited)") else f"{self.name} (edited)"
        if len(points) == 0:
            name = "drawing"
        names = self.classes if classes is None else classes
        return DataState(points, name, "drawn", None, jitter, "", labels if names else None, names if labels is not None else ())


def empty_state() -> DataState:
    return DataState(np.zeros((0, 2), np.float32), "drawing", "drawn")


@dataclass(frozen=True)
class ViewOptions:
    """What the canvas shows; `sigma` is the field's noise level in standardised units."""

    sigma: float = 0.1
    data: bool = True
    field: bool = True
    true_field: bool = False
    particles: bool = True
    trails: bool = False
    heatmap: str = "off"  # off | density | error | curl
    normalized_arrows: bool = False
    log_loss: bool = True
    noisy_data: bool = False  # also draw q_σ: the data perturbed with N(0, σ²) at the field σ
    bounds: tuple[tuple[float, float], ...] | None = None  # the field box (data coordinates)

    def layers(self) -> dict[str, Any]:
        return {"data": self.data, "field": self.field, "true_field": self.true_field,
                "particles": self.particles, "trails": self.trails, "heatmap": self.heatmap}


@dataclass(frozen=True)
class ParticleOptions:
    n_particles: int = 2000  # live particles (1..100000)
    steps_per_frame: int = 5  # sampler steps per drawn frame while playing
    trail_length: int = 12  # frames of history kept when trails are on
    reference_score: bool = False  # particles follow the reference (true) score instead of the model
    follow_training: bool = True  # Train plays the particles; their chain restarts as the model learns


def sigma_range(config: RunConfig) -> tuple[float, float]:
    """The σ interval a field slider spans for this loss (standardised units)."""
    lo, hi = loss_spec(config.loss.name).process(config.noise).display_range()  # the process says (VP: to 0.9)
    return (lo, hi) if lo < hi else (config.noise.sigma_min, config.noise.sigma_max)  # one σ: the slider is off


def field_sigma_for(config: RunConfig, requested: float) -> float:
    """The σ the field is evaluated at: single-σ losses use their σ, unconditional ones σmin."""
    kind = loss_spec(config.loss.name).noise
    if kind == "single":
        return config.noise.sigma
    if kind == "none":
        return config.noise.sigma_min
    lo, hi = sigma_range(config)
    return float(min(max(requested, lo), hi))


class Session(QObject):
    """Everything the user has set up; past-tense signals tell listeners what changed."""

    data_changed = Signal()
    config_changed = Signal()  # run config, sampler config or particle options
    view_changed = Signal()
    frame_arrived = Signal(object)  # sgm_core.live.Frame
    guidance_changed = Signal()  # the class the particles are asked for, or its guidance scale w
    error_reported = Signal(str)  # one sentence for the banner

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self._data = empty_state()
        self.run_config = RunConfig()
        self.sampler_config = SamplerConfig(name=loss_spec(self.run_config.loss.name).default_sampler)
        self.particles = ParticleOptions()
        self.view = ViewOptions()
        self.brush_radius, self.brush_density = BRUSH_DEFAULTS  # data units, points per brush dab
        self.source = SourceLayer(self.undo_stack, self)  # a flow's source distribution (app/source_layer.py)
        self.dirty = False  # edited since the last load
        self.last_frame = None
        self.brush_class: int | None = None  # the class the brush paints (None: unlabelled points)
        self.palette_size = 2  # classes in the Data dock's palette (2-8)
        self.guide_class: int | None = None  # the class the particles are asked for (None: unconditional)
        self.guidance = 0.0  # classifier-free guidance scale w (Ho & Salimans 2022; 0: the plain conditional)

    # -- data -------------------------------------------------------------------------------
    @property
    def data(self) -> DataState:
        return self._data

    @property
    def points(self) -> np.ndarray:
        return self._data.points

    def apply_data(self, state: DataState) -> None:
        """Install a data state (called by the undo commands; use the push_* methods instead)."""
        self._data = state
        self.data_changed.emit()

    def _on_clean_changed(self, clean: bool) -> None:
        self.dirty = not clean

    def add_points(self, points: np.ndarray) -> bool:
        """Push an undoable AddPoints; points of the wrong dimension or non-finite are refused."""
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim != 2 or len(pts) == 0:
            return False
        if pts.shape[1] != self._data.dim:
            self.error_reported.emit(f"cannot draw {pts.shape[1]}D points into {self._data.dim}D data")
            return False
        if not np.isfinite(pts).all():
            self.error_reported.emit("the drawn points contain NaN or Inf; they were not added")
            return False
        self.undo_stack.push(AddPoints(self, pts, self.brush_radius / 2))
        return True

    def erase_points(self, centres: np.ndarray, radius: float | None = None) -> int:
        """Push an undoable ErasePoints; returns how many points it removed (0: nothing pushed)."""
        cmd = ErasePoints(self, np.asarray(centres, dtype=np.float32).reshape(-1, 2),
                          self.brush_radius if radius is None else radius, self.brush_radius / 2)
        if cmd.n_removed:
            self.undo_stack.push(cmd)
        return cmd.n_removed

    def clear_points(self) -> None:
        if len(self.points):
            self.undo_stack.push(ClearPoints(self))

    def replace_data(self, state: DataState) -> None:
        """Load new data (preset or file) as one undoable step. The stack becomes clean unless it
        held unsaved edits: those are one Undo away, and closing must still ask about them."""
        was_clean = self.undo_stack.isClean()
        self.undo_stack.push(ReplaceData(self, state))
        if was_clean:
            self.undo_stack.setClean()

    def dataset(self) -> Dataset:
        """The dataset to train on; DataError (one sentence) when the points cannot be trained on."""
        state = self._data
        if state.dataset is not None:
            return state.dataset
        if len(state.points) < 2:
            raise DataError("the drawing is empty; draw at least 2 points to train" if not len(state.points) else
                            "the drawing has 1 point; draw at least 2 to train")
        points = validate_points(np.array(state.points), dims=None)
        if state.labels is not None and len(np.unique(state.labels)) >= 2:  # one painted class: unconditional
            return EmpiricalDataset(points, name=state.name, jitter=state.jitter, labels=np.array(state.labels),
                                    classes=state.classes)
        return EmpiricalDataset(points, name=state.name, jitter=state.jitter)

    def trainable(self) -> bool:
        """The points can be trained on (`dataset` gives a dataset, not a DataError)."""
        try:
            self.dataset()
        except DataError:
            return False
        return True

    def classes(self) -> tuple[str, ...]:
        """The class names of the data (its labels' order), () when it is unlabelled or untrainable."""
        try:
            dataset = self.dataset()
        except DataError:
            return ()
        return tuple(dataset.classes) if dataset.labelled else ()

    def labels(self) -> np.ndarray | None:
        """The canvas points' class indices (None: unlabelled), in the order of `points`."""
        return self._data.labels

    def palette_classes(self) -> tuple[str, ...]:
        """The class names the brush paints with: the data's when labelled, else "0".."k-1"."""
        own = self._data.classes
        extra = tuple(str(i) for i in range(len(own), max(self.palette_size, len(own))) if str(i) not in own)
        return own + extra

    def painted_class(self) -> int | None:
        """The class the brush's next points take: its own, class 0 when it paints none into
        labelled data (every point of labelled data has a class), None for unlabelled data."""
        if self.brush_class is not None:
            return self.brush_class
        return 0 if self._data.labels is not None else None

    def set_brush_class(self, c: int | None, palette_size: int | None = None) -> None:
        """Paint class c (None: unlabelled points) from a palette of `palette_size` classes (2-8)."""
        self.palette_size = int(min(8, max(2, palette_size or self.palette_size)))
        self.brush_class = None if c is None else int(c)
        self.view_changed.emit()

    def model_config(self) -> RunConfig:
        """The run config the engine trains: the user's, class-conditional exactly when the data is
        labelled (ModelConfig.classes follows the data; the Train panel says so)."""
        classes = self.classes()
        if classes == self.run_config.model.classes:
            return self.run_config
        return replace(self.run_config, model=replace(self.run_config.model, classes=classes))

    def guide(self) -> tuple[int, float] | None:
        """(class index, w) for the engine, or None: unconditional (or the data has no such class)."""
        c = self.guide_class
        return None if c is None or c >= len(self.classes()) else (int(c), float(self.guidance))

    def set_guidance(self, c: int | None, w: float | None = None) -> None:
        """Ask the particles for class c (None: unconditional) with guidance scale w (None keeps it)."""
        w = self.guidance if w is None else float(w)
        if (c, w) != (self.guide_class, self.guidance):
            self.guide_class, self.guidance = c, w
            self.guidance_changed.emit()

    def adopt_guidance(self, guide: tuple[int, float] | None) -> None:
        """An opened session's class and w, set without `guidance_changed`: its engine guides
        already, and that signal would resample the saved particles (the Sampler dock reads them
        on the `data_changed` that follows)."""
        self.guide_class, self.guidance = (None, 0.0) if guide is None else (int(guide[0]), float(guide[1]))

    # -- configuration ----------------------------------------------------------------------
    def set_run_config(self, config: RunConfig) -> None:
        if config == self.run_config:
            return
        old_loss = self.run_config.loss.name
        self.run_config = config
        if config.loss.name != old_loss:  # a new loss brings its matching sampler
            self.sampler_config = replace(self.sampler_config, name=loss_spec(config.loss.name).default_sampler)
        self.config_changed.emit()

    def set_sampler_config(self, config: SamplerConfig) -> None:
        if config != self.sampler_config:
            self.sampler_config = config
            self.config_changed.emit()

    def set_particles(self, **changes: Any) -> None:
        new = replace(self.particles, **changes)
        if new.n_particles < 1 or new.n_particles > MAX_PARTICLES:
            raise DataError(f"particles must be between 1 and {MAX_PARTICLES}")
        if new != self.particles:
            self.particles = new
            self.config_changed.emit()

    def set_view(self, **changes: Any) -> None:
        new = replace(self.view, **changes)
        if new.heatmap not in HEATMAPS:
            raise ValueError(f"heatmap must be one of {HEATMAPS}")
        if new != self.view:
            self.view = new
            self.view_changed.emit()

    def set_brush(self, radius: float, density: int) -> None:
        """Brush, eraser and spawn radius (data units) and points per dab; the canvas listens."""
        if (radius, density) != (self.brush_radius, self.brush_density):
            self.brush_radius, self.brush_density = float(radius), int(density)
            self.view_changed.emit()

    def field_sigma(self) -> float:
        return field_sigma_for(self.run_config, self.view.sigma)

    def restore(self, *, run_config: RunConfig, sampler_config: SamplerConfig, particles: ParticleOptions,
                view: ViewOptions, brush_radius: float, brush_density: int) -> None:
        """Install an opened session's settings together, then tell listeners once: set one by
        one, a loss change would pick its default sampler before the saved one arrives."""
        self.run_config, self.sampler_config = run_config, sampler_config
        self.particles, self.view = particles, view
        self.brush_radius, self.brush_density = float(brush_radius), int(brush_density)
        self.config_changed.emit()
        self.view_changed.emit()

    def settings(self) -> dict[str, Any]:
        """Every user setting, as `restore` takes them (all immutable: a snapshot, not a view)."""
        return {"run_config": self.run_config, "sampler_config": self.sampler_config, "particles": self.particles,
                "view": self.view, "brush_radius": self.brush_radius, "brush_density": self.brush_density}

    @staticmethod
    def default_settings() -> dict[str, Any]:
        """What a new Session starts with (Settings ▸ Restore defaults)."""
        run = RunConfig()
        return {"run_config": run, "sampler_config": SamplerConfig(name=loss_spec(run.loss.name).default_sampler),
                "particles": ParticleOptions(), "view": ViewOptions(), "brush_radius": BRUSH_DEFAULTS[0],
                "brush_density": BRUSH_DEFAULTS[1]}

    # -- frames -----------------------------------------------------------------------------
    def publish_frame(self, frame: object) -> None:
        self.last_frame = frame
        self.frame_arrived.emit(frame)


__all__ = ["DataState", "ParticleOptions", "Session", "ViewOptions", "empty_state", "field_sigma_for", "sigma_range"]

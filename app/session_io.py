"""Session files (.sgm) in the window: New, Open, Save, Save as, the unsaved-changes question and
the title's `*`.

The file format is `sgm_core.sessions` (an atomic zip, validated before anything is returned).
The engine worker builds and writes the file, so the GUI thread never touches torch nor waits on
the disk; opening loads, validates and rebuilds the engine in one worker command and swaps it in
only when everything succeeded, so a corrupt or foreign file changes nothing. Each worker answer
reaches the GUI-thread callback that asked for it through `app.engine_tasks.EngineTasks`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from sgm_core.config import RunConfig, SamplerConfig
from sgm_core.datasets import PRESETS, Dataset, from_brush, make_preset
from sgm_core.live import LiveEngine
from sgm_core.sessions import SessionState, load_session, save_session

from .engine_tasks import EngineTasks
from .panels.data_panel import TOOLS
from .session import HEATMAPS, MAX_PARTICLES, DataState, ParticleOptions, ViewOptions, empty_state
from .source_layer import restored_source
from .workers import EngineSpec

if TYPE_CHECKING:
    from .context import FeatureContext
    from .session import Session

SESSION_SUFFIX = ".sgm"
SESSION_FILTER = "Playground sessions (*.sgm);;All files (*)"
GUI_SETTINGS_VERSION = 1
UNSAVED_CHOICES = ("save", "discard", "cancel")

# --------------------------------------------------------------------------- worker thread (no Qt)


@dataclass(frozen=True)
class SaveRequest:
    """What the GUI knows of a session; the worker adds the engine's weights, particles, history."""

    path: Path
    points: np.ndarray  # (N, D) the data as shown (read-only)
    source: str  # preset name, file path, or "drawn"
    brush_radius: float  # spray radius of drawn data: 2 x its jitter (0 for file data)
    settings: dict[str, Any]  # gui_settings()
    run: RunConfig  # used when there is no engine yet
    sampler: SamplerConfig
    source_points: np.ndarray | None = None  # the Source layer's points (kept even when the loss does not flow)
    labels: np.ndarray | None = None  # the points' class indices (labelled data), with their names in `classes`
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SavedSession:
    path: Path
    step: int  # the training step the file holds
    has_model: bool


def write_session(request: SaveRequest, engine: LiveEngine | None) -> SavedSession:
    """Build the SessionState (with the engine's weights when there is one) and write it atomically."""
    if engine is not None:
        state = engine.export_state(request.points, request.source, request.brush_radius, request.settings)
    else:  # nothing trainable yet (an empty or one-point drawing): data and settings only
        state = SessionState(points=np.asarray(request.points, np.float32), source=request.source, run=request.run,
                             sampler=request.sampler, brush_radius=request.brush_radius, settings=request.settings)
    if request.source_points is not None:
        state = replace(state, source_points=np.asarray(request.source_points, np.float32))
    if request.labels is not None:
        state = replace(state, labels=np.asarray(request.labels, np.int64), classes=tuple(request.classes))
    save_session(request.path, state)
    return SavedSession(request.path, state.step, state.model is not None)


@dataclass(frozen=True)
class OpenedSession:
    path: Path
    state: SessionState  # without weights or resume state: those live on in the worker's engine
    dataset: Dataset | None  # None when the session holds fewer than 2 points
    note: str = ""  # what was changed for this machine (a device it lacks), as a sentence


def session_dataset(state: SessionState) -> Dataset | None:
    """The dataset a session trains on: its preset (generator and exact mixture kept) when the
    points are that preset's display draw, else the points as a brush cloud."""
    points = state.points
    if len(points) < 2:
        return None
    spec = PRESETS.get(state.source)
    if spec is not None and spec.dim == points.shape[1]:
        preset = make_preset(state.source, n_points=len(points))
        if np.array_equal(preset.points, points):
            return preset
    if state.labels is not None and len(np.unique(state.labels)) >= 2:
        return from_brush(points, state.brush_radius, np.asarray(state.labels, np.int64), tuple(state.classes))
    return from_brush(points, state.brush_radius)


def build_engine(path: Path) -> tuple[LiveEngine | None, EngineSpec, OpenedSession]:
    """Load and validate a session file, then rebuild its engine (worker thread; SessionError).
    A device this machine lacks becomes 'auto' (`training.runs_here`), so a session trained on a
    GPU opens on a laptop."""
    from sgm_core.training import runs_here

    state = load_session(path)
    run, note = runs_here(state.run)
    state = replace(state, run=run)
    dataset = session_dataset(state)
    engine = LiveEngine.from_state(dataset, state) if dataset is not None else None
    n = len(state.particles) if state.particles is not None else ParticleOptions().n_particles
    spec = EngineSpec(dataset, state.run, state.sampler, n, guide=state.guide)  # Reset keeps the guidance
    # the GUI's copy carries no tensors (weights and resume state live on in the engine): no torch there
    return engine, spec, OpenedSession(path, replace(state, model=None, ema=None, resume=None), dataset, note)


# --------------------------------------------------------------------------- GUI settings


@dataclass(frozen=True)
class GuiSettings:
    """The window settings a session file restores (validated; bad entries fall back)."""

    view: ViewOptions
    particles: ParticleOptions
    brush_radius: float
    brush_density: int
    tool: str
    view_range: tuple[tuple[float, float], tuple[float, float]] | None  # the 2D canvas
    data_name: str | None
    data_kind: str | None
    view3d: dict[str, Any]  # the 3D view's slice and camera (Mode3D.settings), checked on apply
    metrics: dict[str, Any]  # the Metrics dock's curves (MetricsPanel.saved_state), checked on restore
    playing: bool  # the particles were playing


@dataclass(frozen=True)
class WindowView:
    """What a session file keeps of the window beyond the session (`SessionHost.window_view`)."""

    tool: str  # one of TOOLS, or "pan"
    view_range: tuple[tuple[float, float], tuple[float, float]]  # the 2D canvas's visible rectangle
    view3d: dict[str, Any]  # the 3D view's slice and camera (Mode3D.settings)
    metrics: dict[str, Any]  # the Metrics dock's curves (MetricsPanel.saved_state)
    playing: bool  # the particles are playing


class SessionHost(Protocol):
    """What a session document needs of the window, and nothing more: the engine's model (is
    there one, wait for a pending rebuild, drop it, adopt an opened one), the unsaved-changes
    question, the title and recent files, and the view state a file saves and restores."""

    def engine_ok(self) -> bool: ...  # the engine holds a model of the data on screen

    def flush_rebuild(self) -> None: ...  # send a pending rebuild now

    def reset_engine(self) -> None: ...  # a fresh engine without a model (New)

    def adopt_engine(self, run: RunConfig, sampler: SamplerConfig, n_particles: int, has_engine: bool) -> None: ...

    def confirm_discard(self, then: Callable[[], None] | None = None) -> bool: ...

    def ask_unsaved_changes(self, answer: Callable[[str], None]) -> None: ...

    def set_modified(self, dirty: bool) -> None: ...  # the title's unsaved-changes mark

    def document_changed(self, path: str | None) -> None: ...  # the title; a saved/opened file joins the recent ones

    def window_view(self) -> WindowView: ...

    def restore_view(self, gui: GuiSettings, points: np.ndarray, has_engine: bool) -> None: ...


def gui_settings(session: Session, view: WindowView) -> dict[str, Any]:
    """JSON-able view settings of the window: field σ, layers, heatmap, arrows, tool, steps per
    frame, trails, view range (2D) or slice and camera (3D), brush, and the data's display name."""
    s = session
    return {
        "version": GUI_SETTINGS_VERSION,
        "data": {"name": s.data.name, "kind": s.data.kind},
        "view": {k: v for k, v in asdict(s.view).items() if k != "bounds"},
        "particles": asdict(s.particles),
        "brush": {"radius": float(s.brush_radius), "density": int(s.brush_density)},
        "tool": view.tool,
        "view_range": [[float(lo), float(hi)] for lo, hi in view.view_range],
        "view3d": dict(view.view3d),
        "metrics": view.metrics,
        "source": s.source.state.settings(),  # its points: the session's source.npy
        "playing": bool(view.playing),
    }


def _same_kind(old: object, new: object) -> bool:
    if isinstance(old, bool):
        return isinstance(new, bool)
    if isinstance(old, int):
        return isinstance(new, int) and not isinstance(new, bool)
    if isinstance(old, float):
        return isinstance(new, int | float) and not isinstance(new, bool) and math.isfinite(new)
    return isinstance(new, type(old))


def _merged(base: Any, raw: object) -> Any:
    """`base` (a settings dataclass) with the entries of `raw` whose type matches the field's:
    a hand-edited or newer file falls back to defaults instead of breaking the window."""
    if not isinstance(raw, dict):
        return base
    changes = {f.name: raw[f.name] for f in fields(base)
               if f.name in raw and f.name != "bounds" and _same_kind(getattr(base, f.name), raw[f.name])}
    changes = {k: float(v) if isinstance(getattr(base, k), float) else v for k, v in changes.items()}
    return replace(base, **changes)


def _view_range(raw: object) -> tuple[tuple[float, float], tuple[float, float]] | None:
    try:
        (x0, x1), (y0, y1) = ((float(lo), float(hi)) for lo, hi in raw)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or not (x0 < x1 and y0 < y1):
        return None
    return (x0, x1), (y0, y1)


def parse_gui_settings(raw: dict[str, Any], brush_radius: float, brush_density: int) -> GuiSettings:
    """Read `gui_settings()` back; the brush falls back to the current one, the rest to defaults."""
    view = _merged(ViewOptions(), raw.get("view"))
    if view.heatmap not in HEATMAPS:
        view = replace(view, heatmap="off")
    if not view.sigma > 0:
        view = replace(view, sigma=ViewOptions().sigma)
    particles = _merged(ParticleOptions(), raw.get("particles"))
    if not (1 <= particles.n_particles <= MAX_PARTICLES and particles.steps_per_frame >= 1
            and particles.trail_length >= 0):
        particles = ParticleOptions()
    brush = raw.get("brush") if isinstance(raw.get("brush"), dict) else {}
    radius = brush.get("radius")
    density = brush.get("density")
    radius = float(radius) if _same_kind(1.0, radius) and radius > 0 else brush_radius
    density = density if _same_kind(1, density) and density >= 1 else brush_density
    tool = raw.get("tool") if raw.get("tool") in TOOLS else "pan"
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    name = data.get("name") if isinstance(data.get("name"), str) else None
    kind = data.get("kind") if data.get("kind") in ("preset", "file", "drawn") else None
    view3d = raw.get("view3d") if isinstance(raw.get("view3d"), dict) else {}
    metrics = raw.get("metrics") if isinstance(raw.get("metrics"), dict) else {}  # absent in older sessions
    playing = raw.get("playing") is True
    return GuiSettings(view, particles, radius, density, tool, _view_range(raw.get("view_range")), name, kind, view3d,
                       metrics, playing)


def restored_data(opened: OpenedSession, name: str | None, kind: str | None) -> DataState:
    """The canvas data of an opened session, with its display name and kind when they still fit."""
    state, dataset = opened.state, opened.dataset
    source = state.source
    if dataset is not None and source in PRESETS and dataset.name == source:
        return DataState(state.points, name or source, "preset", dataset, 0.0, source)
    jitter = state.brush_radius / 2
    if kind == "file" and jitter == 0:
        return DataState(state.points, name or Path(source).stem, "file", dataset, 0.0, source)
    labels = state.labels if state.labels is not None and len(state.labels) == len(state.points) else None
    return DataState(state.points, name or "drawing", "drawn", dataset, jitter, "", labels,
                     tuple(state.classes) if labels is not None else ())


# --------------------------------------------------------------------------- the controller


class SessionFiles(QObject):
    """File ▸ New / Open session / Save session / Save session as, and whether work is unsaved.

    The session is dirty when the undo stack is not clean or training advanced since the last
    save (or open), or, once it has a file, when a setting that shapes results (run, sampler,
    particle settings, the guided class and w) differs from the file's; view toggles alone do not
    count. Questions go through the window (`ask_save_path`, `ask_open_path`,
    `ask_unsaved_changes`), so tests answer them without a dialog.
    """

    saved = Signal(str)  # path
    save_failed = Signal(str)  # message (also on the banner)
    opened = Signal(str)  # path
    open_failed = Signal(str)  # message (also on the banner)

    def __init__(self, ctx: FeatureContext, host: SessionHost) -> None:
        super().__init__(ctx.parent)
        self.ctx, self.host, self.session = ctx, host, ctx.session
        self.tasks = EngineTasks(ctx.engine, self)
        self.path: Path | None = None  # the session file, once saved or opened
        self.saved_step = 0  # training step of the last save/open (0: nothing trained)
        self.saved_settings: str | None = None  # settings_signature() of the file (None: no file)
        self._save_settings: str | None = None  # ... of the save in flight
        self._discard_approved = False  # the user answered Discard/Save: go ahead once
        self._asking = False
        self._open_token = 0
        self._opening = False  # an Open is in flight: its engine replaces the worker's before a save would run
        self._save_index: int | None = None  # undo index when the pending save was taken
        self.recovered = False  # the session on screen came back from a crash's recovery file: unsaved
        self._recovering: tuple[Path, Path | None] | None = None  # (recovery file, the document it stands for)
        a = ctx.actions.add
        a("new_session", "New", "Start an empty drawing (asks to save unsaved work)", "Ctrl+N", self.new)
        a("open_session", "Open session…", "Open a saved session (.sgm): data, settings, model, particles",
          "Ctrl+O", self.open_dialog)
        a("save_session", "Save session", "Save the session: data, settings, trained model, particles", "Ctrl+S",
          lambda: self.save())
        a("save_session_as", "Save session as…", "Save the session under a new name", "Ctrl+Shift+S",
          lambda: self.save_as())
        self.session.frame_arrived.connect(self._refresh_modified)
        self.session.config_changed.connect(self._refresh_modified)
        self.session.guidance_changed.connect(self._refresh_modified)
        ctx.engine.state_changed.connect(self._refresh_modified)

    # -- state -------------------------------------------------------------------------------
    def current_step(self) -> int:
        frame = self.session.last_frame
        return int(frame.step) if frame is not None and self.host.engine_ok() else 0

    def settings_signature(self) -> str:
        """The settings that shape results, as one comparable string."""
        s = self.session
        return json.dumps([s.run_config.to_json(), asdict(s.sampler_config), asdict(s.particles), s.guide()],
                          sort_keys=True)

    def is_dirty(self) -> bool:
        """Unsaved work: data edits or training since the last save/open, or changed settings
        when there is a file they would differ from."""
        if self.recovered or not self.session.undo_stack.isClean() or self.current_step() != self.saved_step:
            return True
        return self.saved_settings is not None and self.settings_signature() != self.saved_settings

    def title_name(self) -> str:
        return self.path.name if self.path is not None else self.session.data.name

    def _refresh_modified(self, *_args: object) -> None:
        dirty = self.is_dirty()
        self.host.set_modified(dirty)

    def _default_path(self, suffix: str, stem: str | None = None) -> str:
        folder = self.path.parent if self.path is not None else Path.home()
        stem = stem or (self.path.stem if self.path is not None else _slug(self.session.data.name))
        return str(folder / f"{stem}{suffix}")

    # -- unsaved changes ---------------------------------------------------------------------
    def confirm_discard(self, then: Callable[[], None] | None = None) -> bool:
        """True when going ahead loses nothing (or the user already agreed). Otherwise ask Save /
        Discard / Cancel: an answer given at once (a test) is acted on at once; an answer from the
        non-blocking box later runs `then` (after a successful save, or at once on Discard)."""
        if self._discard_approved or not self.is_dirty():
            return True
        if self._asking:
            return False  # the question is already on screen
        answered: list[str] = []
        waiting = [False]  # True once ask_unsaved_changes returned without an answer (a box is open)

        def answer(choice: str) -> None:
            if waiting[0]:
                self._on_unsaved_answer(choice, then)
            else:
                answered.append(choice)

        self._asking = True
        try:
            self.host.ask_unsaved_changes(answer)
        except BaseException:
            self._asking = False
            raise
        if not answered:
            waiting[0] = True
            return False
        self._asking = False
        if answered[0] == "save":
            self.save(then=then)
        return answered[0] == "discard"

    def _on_unsaved_answer(self, choice: str, then: Callable[[], None] | None) -> None:
        self._asking = False
        if choice == "discard":
            QTimer.singleShot(0, lambda: self._go_ahead(then))
        elif choice == "save":
            self.save(then=then)

    def _go_ahead(self, then: Callable[[], None] | None) -> None:
        """Run the action the question held up, without asking again."""
        if then is None:
            return
        self._discard_approved = True
        try:
            then()
        finally:
            self._discard_approved = False

    # -- commands ----------------------------------------------------------------------------
    def new(self) -> None:
        """An empty drawing with the current settings, not yet saved anywhere."""
        if not self.host.confirm_discard(self.new):
            return
        s = self.session
        s.replace_data(empty_state())
        s.source.reset()
        s.undo_stack.clear()
        self.host.reset_engine()  # a new session starts without a model (Clear keeps it; New does not)
        self.path, self.saved_step, self.saved_settings, self.recovered = None, 0, None, False
        self.host.document_changed(None)

    def open_recovered(self, path: Path, document: Path | None) -> None:
        """Open a recovery file (app/recovery.py) as the session it saved: it stands for `document`
        (the file the lost session had, or None: untitled), is unsaved until saved, and the
        recovery file itself never becomes the document nor a recent file."""
        if not self.host.confirm_discard(lambda: self.open_recovered(path, document)):
            return
        self.open(path)
        if self._opening:
            self._recovering = (Path(path), document)

    def save(self, then: Callable[[], None] | None = None) -> None:
        if self.path is None:
            self.save_as(then)
        else:
            self.save_to(self.path, then)

    def save_as(self, then: Callable[[], None] | None = None) -> None:
        chosen = self.ctx.questions.ask_save_path("Save session", SESSION_FILTER, self._default_path(SESSION_SUFFIX))
        if chosen:
            self.save_to(with_suffix(chosen, SESSION_SUFFIX), then)

    @property
    def opening(self) -> bool:
        """An Open is in flight: its engine replaces the worker's before a save would run."""
        return self._opening

    def save_request(self, path: str | Path) -> SaveRequest:
        """What a save of the session on screen to `path` sends the engine (which adds its weights)."""
        s = self.session
        self.host.flush_rebuild()  # the engine must hold the data on screen, not the data before a pending edit
        data = s.data
        radius = 2.0 * data.jitter if data.kind == "drawn" else 0.0
        layer = s.source.state
        return SaveRequest(Path(path), data.points, data.source or "drawn", radius, gui_settings(s, self.host.window_view()),
                           s.run_config, s.sampler_config,
                           layer.points if layer.kind != "gaussian" and len(layer.points) else None,
                           data.labels, data.classes)

    def work_signature(self) -> tuple[object, ...]:
        """Changes whenever the work on screen does: an edit, undo or redo, a training step, a setting."""
        stack = self.session.undo_stack
        return stack.index(), stack.count(), self.current_step(), self.settings_signature(), self.path

    def save_to(self, path: str | Path, then: Callable[[], None] | None = None) -> None:
        """Write the session to `path` in the worker; `saved` or `save_failed` answers."""
        s = self.session
        if self._opening:  # the worker would save the opening session's engine with the data on screen now
            self._on_save_failed("a session is still opening; save once it is open")
            return
        request = self.save_request(path)
        self._save_index = s.undo_stack.index()
        self._save_settings = self.settings_signature()  # settings changed while it writes stay unsaved
        self.ctx.notifier.status(f"Saving {Path(path).name}…", 3000)
        self.tasks.submit(partial(write_session, request), lambda done: self._on_saved(done, then),
                          self._on_save_failed)

    def _on_saved(self, done: SavedSession, then: Callable[[], None] | None) -> None:
        stack = self.session.undo_stack
        if stack.index() == self._save_index:
            stack.setClean()  # edits made while the worker wrote stay unsaved
        self.path, self.saved_step, self.saved_settings = done.path, done.step, self._save_settings
        self.recovered = False
        self.ctx.notifier.status(f"Saved {done.path}", 6000)
        self.host.document_changed(str(done.path.resolve()))
        self.saved.emit(str(done.path))
        if then is not None:
            QTimer.singleShot(0, lambda: self._go_ahead(then))

    def _on_save_failed(self, message: str) -> None:
        self.ctx.notifier.error(message)
        self.save_failed.emit(message)

    def open_dialog(self) -> None:
        chosen = self.ctx.questions.ask_open_path("Open session", SESSION_FILTER, self._default_path(SESSION_SUFFIX))
        if chosen:
            self.open(chosen)

    def open(self, path: str | Path) -> None:
        """Open a session file (after the unsaved-changes question); `opened` or `open_failed`."""
        path = Path(path)
        if not self.host.confirm_discard(lambda: self.open(path)):
            return
        self.host.flush_rebuild()  # a pending rebuild must not land after (and over) the opened engine
        self.ctx.notifier.status(f"Opening {path.name}…", 3000)
        token = self.tasks.replace_engine(partial(build_engine, path), lambda o: self._on_opened(o, token),
                                          lambda m: self._on_open_failed(m, token))
        self._open_token, self._opening = token, True

    def _on_open_failed(self, message: str, token: int) -> None:
        if token == self._open_token:
            self._opening, self._recovering = False, None
            self.ctx.notifier.error(f"session not opened: {message}")  # the sentence often starts with the file name
            self.open_failed.emit(message)

    def _on_opened(self, opened: OpenedSession, token: int) -> None:
        """The worker holds the session's engine now: show its data and settings without a rebuild."""
        if token == self._open_token:
            self._opening = False
        s = self.session
        state = opened.state
        source = restored_source(state.settings.get("source"), state.source_points, state.run)
        state = replace(state, run=state.run.with_(loss=replace(state.run.loss, source="")))  # the layer holds it
        gui = parse_gui_settings(state.settings, s.brush_radius, s.brush_density)
        particles = gui.particles
        if state.particles is not None:
            particles = replace(particles, n_particles=len(state.particles))
        has_engine = opened.dataset is not None
        self.host.adopt_engine(state.run, state.sampler, particles.n_particles, has_engine)
        s.restore(run_config=state.run, sampler_config=state.sampler, particles=particles, view=gui.view,
                  brush_radius=gui.brush_radius, brush_density=gui.brush_density)
        s.adopt_guidance(state.guide)
        s.replace_data(restored_data(opened, gui.data_name, gui.data_kind))
        s.source.reset(source)
        s.source.set_editing(False)
        s.undo_stack.clear()  # a new document: undo does not reach into the previous one
        self.host.adopt_engine(state.run, state.sampler, particles.n_particles, has_engine)  # cancel the data's rebuild
        self.host.restore_view(gui, state.points, has_engine)
        recovering, self._recovering = self._recovering, None
        if recovering is not None and recovering[0] == opened.path:  # the lost session, unsaved, under its name
            document = recovering[1]
            self.path, self.saved_step, self.saved_settings, self.recovered = document, 0, None, True
            self.host.document_changed(str(document.resolve()) if document is not None else None)
        else:
            self.path, self.saved_step = opened.path, state.step if has_engine else 0
            self.saved_settings, self.recovered = self.settings_signature(), False
            note = f"; {opened.note}" if opened.note else ""
            self.ctx.notifier.status(f"Opened {opened.path.name}: {len(state.points)} points, step {state.step:,}{note}",
                                     10000 if note else 6000)
            self.host.document_changed(str(opened.path.resolve()))
        self.opened.emit(str(opened.path))


def with_suffix(path: str | Path, suffix: str) -> Path:
    """`path`, with `suffix` appended unless it already ends so (case-insensitively)."""
    path = Path(path)
    return path if path.suffix.lower() == suffix else path.with_name(path.name + suffix)


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip())
    return "-".join(part for part in keep.split("-") if part) or "session"


__all__ = ["EngineTasks", "SESSION_SUFFIX", "SessionFiles", "build_engine", "gui_settings",
           "parse_gui_settings", "session_dataset", "with_suffix", "write_session"]

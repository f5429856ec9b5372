"""Session files (.sgm): the whole playground state in one file that runs no code when opened.

A session is a zip archive holding `session.json` (format, version, configs, GUI settings),
`data.npy`, `labels.npy` (labelled data: a class index per point; the names in session.json),
`particles.npy` (the class they are asked for and its guidance scale w: session.json's guide),
`losses.npy`, `source.npy` (a flow's source points; NPY without pickles),
`model.safetensors` (weights of the raw and EMA networks) and `resume.safetensors` (optimiser
moments, generator states and the data pool, so training continues as if never interrupted; older
sessions lack it and resume approximately). Saves are atomic (written aside, then renamed), and opening
validates everything before anything is returned, so a corrupt or foreign file changes nothing.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig, SamplerConfig, check_format, finite_number, parse_json, sampler_config_from_json, whole_number
from .datasets import PRESETS, Dataset, EmpiricalDataset, Standardizer
from .errors import ConfigError, DataError, SessionError, SGMError
from .io import atomic_write, load_npy
from .lazy import lazy_module
from .limits import MAX_GUIDANCE, MAX_JSON_BYTES, MAX_LOSS_HISTORY, MAX_SESSION_BYTES, MAX_STEPS
from .losses import loss_spec
from .stored import fit_state, one_line, read_labels, read_points, read_tensors, require_finite, standardizer_for

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it
safetensors_torch = lazy_module("safetensors.torch")  # imports torch

SESSION_FORMAT = "score-field-playground-session"
SESSION_VERSION = 1
MAX_MEMBERS = 16  # a session has six members; more is not ours (and each costs directory memory)
MAX_BRUSH_RADIUS = 1e6  # data units
MAX_ELAPSED = 1e9  # seconds of training a session may say it holds (~32 years)
READ_CHUNK = 2**20  # bytes inflated at a time


@dataclass(frozen=True)
class SessionState:
    """Everything needed to restore a playground exactly (data coordinates throughout)."""

    points: np.ndarray  # (N, D) the dataset's display points
    source: str  # preset name, file path, or "drawn"
    run: RunConfig
    sampler: SamplerConfig
    brush_radius: float = 0.2  # spray radius of drawn data (its fresh-draw jitter)
    settings: dict[str, Any] = field(default_factory=dict)  # GUI/view settings (JSON-able)
    model: dict[str, torch.Tensor] | None = None  # raw network state_dict
    ema: dict[str, torch.Tensor] | None = None  # EMA network state_dict
    standardizer: Standardizer | None = None
    step: int = 0
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    particles: np.ndarray | None = None  # (n, D) data coordinates
    sampler_step: int = 0
    resume: dict[str, torch.Tensor] | None = None  # Trainer.resume_state() + "rng.particles"
    elapsed: float = 0.0  # wall-clock seconds the model trained (sgm_core.progress.RunClock); 0 in older files
    source_points: np.ndarray | None = None  # (M, D) a flow's source distribution (run.loss.source names it)
    labels: np.ndarray | None = None  # (N,) class index of each point (labelled data), else None
    classes: tuple[str, ...] = ()  # the class names of `labels` (as in the data file, or the palette's)
    guide: tuple[int, float] | None = None  # (class index, w): the particles' classifier-free guidance, else None


def session_source(state: SessionState) -> Dataset | None:
    """The flow source a session holds: its points, with the preset's exact mixture and fresh
    draws when `run.loss.source` names a preset (the truth needs the mixture); None when the
    session has none (then `run.loss.source`, a preset or file, is loaded as `sgm train` does)."""
    points = state.source_points
    if points is None or not state.run.loss.source:
        return None  # none, or kept for the window's Source layer while the run's loss does not flow
    spec = PRESETS.get(state.run.loss.source)
    if spec is not None and spec.dim == points.shape[1]:
        return Dataset(state.run.loss.source, points, spec.sampler, spec.gmm() if spec.gmm is not None else None)
    return EmpiricalDataset(points, name="source")


def save_safetensors(tensors: dict[str, torch.Tensor]) -> bytes:
    """safetensors' bytes of `tensors` (its torch module is imported here, not with this module)."""
    return safetensors_torch.save(tensors)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _cpu_tensors(tensors: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Private CPU copies: safetensors refuses tensors that share memory (the raw net saved as its
    own EMA when there is no EMA), and nothing the caller keeps may alias what is written."""
    return {f"{prefix}{k}": v.detach().cpu().clone().contiguous() for k, v in tensors.items()}


def save_session(path: str | os.PathLike, state: SessionState) -> Path:
    """Write `state` to `path` atomically: the file is reopened and fully validated before it
    replaces the previous one, which survives any failure (a full disk included)."""
    meta = {
        "format": SESSION_FORMAT, "version": SESSION_VERSION, "source": state.source,
        "run": state.run.to_json(), "sampler": state.sampler.__dict__ | {}, "brush_radius": float(state.brush_radius),
        "settings": state.settings, "step": int(state.step), "sampler_step": int(state.sampler_step),
        "elapsed": float(state.elapsed),
        "standardizer": state.standardizer.to_json() if state.standardizer else None,
        "has_model": state.model is not None,
    }
    if state.labels is not None:
        meta["classes"] = list(state.classes)
    if state.guide is not None:
        meta["guide"] = {"class": int(state.guide[0]), "w": float(state.guide[1])}
    members = {"session.json": json.dumps(meta, indent=2).encode(), "data.npy": _npy_bytes(state.points),
               "losses.npy": _npy_bytes(np.asarray(state.losses, np.float64))}
    if state.labels is not None:
        members["labels.npy"] = _npy_bytes(np.asarray(state.labels, np.int64))
    if state.particles is not None:
        members["particles.npy"] = _npy_bytes(np.asarray(state.particles, np.float32))
    if state.source_points is not None:
        members["source.npy"] = _npy_bytes(np.asarray(state.source_points, np.float32))
    if state.model is not None:
        tensors = _cpu_tensors(state.model, "model.") | _cpu_tensors(state.ema or state.model, "ema.")
        members["model.safetensors"] = save_safetensors(tensors)
    if state.resume:
        members["resume.safetensors"] = save_safetensors(_cpu_tensors(state.resume))

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, blob in members.items():
                z.writestr(name, blob)

    try:
        return atomic_write(path, write, verify=load_session)
    except OSError as exc:
        raise SessionError(f"cannot save the session to {path}: {exc.strerror or exc}") from exc
    except SessionError as exc:
        raise SessionError(f"cannot save the session to {path}: the written file does not read back ({exc})") from exc


def _read_member(z: zipfile.ZipFile, name: str, limit: int = MAX_SESSION_BYTES) -> bytes:
    """A member's bytes; its size in the zip directory is checked first, and the data is inflated
    a chunk at a time: a directory that understates a zip bomb's size ends in a CRC error after one
    chunk, never in gigabytes (a plain `z.read` inflates the whole member at once)."""
    size = z.getinfo(name).file_size
    if size > limit:
        raise SessionError(f"session member {name} is {size:,} bytes unpacked; the most this program reads is {limit:,}")
    parts, got = [], 0
    with z.open(name) as f:
        while chunk := f.read(READ_CHUNK):
            got += len(chunk)
            if got > size:  # zipfile stops at the directory's size; this only guards that promise
                raise SessionError(f"session member {name} is larger than its zip directory says")
            parts.append(chunk)
    return b"".join(parts)


def load_session(path: str | os.PathLike) -> SessionState:
    """Read and validate a session; any problem is one SessionError sentence.

    Sizes are checked from the zip directory before anything is inflated, every JSON field
    against its schema and bounds, and the weights against the model the settings build."""
    path = Path(path)
    if not path.is_file():
        raise SessionError(f"no session file at {path}")
    try:
        if path.stat().st_size > MAX_SESSION_BYTES:
            raise SessionError(f"{path.name} is larger than {MAX_SESSION_BYTES:,} bytes, more than any session holds")
        with zipfile.ZipFile(path) as z:
            return _read_session(z, path.name)
    except SessionError:
        raise
    except SGMError as exc:
        raise SessionError(f"{path.name} is not a valid session: {exc}") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, KeyError, ValueError, TypeError,
            OSError, EOFError, RuntimeError, OverflowError, MemoryError, RecursionError, NotImplementedError) as exc:
        raise SessionError(f"{path.name} is not a valid session file ({type(exc).__name__}: {one_line(exc)})") from exc


def _read_session(z: zipfile.ZipFile, name: str) -> SessionState:
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise SessionError(f"{name} has {len(infos):,} members; a session has at most {MAX_MEMBERS}")
    total = sum(info.file_size for info in infos)
    if total > MAX_SESSION_BYTES:
        raise SessionError(f"{name} would unpack to {total:,} bytes; the most this program reads is {MAX_SESSION_BYTES:,}")
    names = {info.filename for info in infos}
    if "session.json" not in names:
        raise SessionError(f"{name} is not a Score Field Playground session")
    try:
        meta = check_format(parse_json(_read_member(z, "session.json", MAX_JSON_BYTES), f"{name}'s session.json"),
                            SESSION_FORMAT, SESSION_VERSION, name)
    except ConfigError as exc:  # the sentence names the file already
        raise SessionError(str(exc)) from exc
    run = RunConfig.from_json(meta.get("run"))
    sampler = sampler_config_from_json(meta.get("sampler"))
    has_model = meta.get("has_model", False)
    if not isinstance(has_model, bool):
        raise ConfigError(f"has_model must be true or false, not {has_model!r:.40}")
    source, settings = meta.get("source", ""), meta.get("settings") or {}
    if not isinstance(source, str) or not isinstance(settings, dict):
        raise ConfigError("the data source must be a string and the settings an object")
    step = whole_number(meta.get("step", 0), "step", 0, MAX_STEPS)
    sampler_step = whole_number(meta.get("sampler_step", 0), "sampler_step", 0, MAX_STEPS)
    brush_radius = finite_number(meta.get("brush_radius", 0.2), "brush_radius", 0.0, MAX_BRUSH_RADIUS)
    elapsed = finite_number(meta.get("elapsed", 0.0), "elapsed", 0.0, MAX_ELAPSED)  # absent before it was saved

    # A drawing with < 2 points is a real state: before anything was trainable, or after Clear, which
    # keeps the trained model (it waits for data), so such a session may hold a model too.
    points = read_points(_read_member(z, "data.npy"), "session member data.npy", min_points=0)
    dim = points.shape[1]
    labels, classes = None, ()
    if "labels.npy" in names:
        labels, classes = read_labels(_read_member(z, "labels.npy"), "session member labels.npy", len(points),
                                      meta.get("classes"))
    losses = _read_losses(z) if "losses.npy" in names else np.zeros(0)
    particles = None
    if "particles.npy" in names:
        particles = read_points(_read_member(z, "particles.npy"), "session member particles.npy", dim=dim)
    source_points = None
    if "source.npy" in names:  # a flow's source lives in the data's coordinates: the same D
        source_points = read_points(_read_member(z, "source.npy"), "session member source.npy", dim=dim)
    guide = _read_guide(meta.get("guide"), run)  # absent before sessions kept it: unconditional particles
    std = meta.get("standardizer")
    standardizer = standardizer_for(std, dim, "session.json") if std is not None else None
    model = ema = resume = None
    if has_model:
        if "model.safetensors" not in names:
            raise SessionError(f"{name} says it holds a trained model but has no model.safetensors")
        tensors = read_tensors(_read_member(z, "model.safetensors"), "session member model.safetensors")
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        ema = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")} or None
        net = loss_spec(run.loss.name).make_model(dim, run.model, run.noise)
        fit_state(net, model, "the session's model.safetensors")
        if ema is not None:
            fit_state(net, ema, "the session's model.safetensors (EMA)")
        require_finite(tensors, "the session's weights")
        if "resume.safetensors" in names:
            resume = read_tensors(_read_member(z, "resume.safetensors"), "session member resume.safetensors")
            require_finite(resume, "the session's training state (optimiser moments, data pool)")
    return SessionState(points=points, source=source, run=run, sampler=sampler, brush_radius=brush_radius,
                        settings=dict(settings), model=model, ema=ema, standardizer=standardizer, step=step,
                        losses=losses, particles=particles, sampler_step=sampler_step, resume=resume,
                        elapsed=elapsed, source_points=source_points, labels=labels, classes=classes,
                        guide=guide)


def _read_guide(raw: object, run: RunConfig) -> tuple[int, float] | None:
    """The saved guidance: a class index of the run's class-conditional model and a scale w."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"guide must be an object with a class and w, not {raw!r:.40}")
    n = len(run.model.classes)
    if n == 0:
        raise ConfigError("the session guides its particles towards a class, but its model is not class-conditional")
    return (whole_number(raw.get("class"), "guide class", 0, n - 1),
            finite_number(raw.get("w"), "guidance scale w", 0.0, MAX_GUIDANCE))


def _read_losses(z: zipfile.ZipFile) -> np.ndarray:
    try:
        losses = load_npy(_read_member(z, "losses.npy"), max_elements=MAX_LOSS_HISTORY)
    except DataError as exc:
        raise SessionError(f"session member losses.npy cannot be used: {exc}") from exc
    if not (np.issubdtype(losses.dtype, np.floating) or np.issubdtype(losses.dtype, np.integer)):
        raise SessionError(f"session member losses.npy holds {losses.dtype} values, not numbers")
    return losses.astype(np.float64).reshape(-1)

"""Session files (.sgm): the whole playground state in one file that runs no code when opened.

A session is a zip archive holding `session.json` (format, version, configs, GUI settings),
`data.npy`, `particles.npy`, `losses.npy` (NPY without pickles), `model.safetensors` (weights
of the raw and EMA networks) and `resume.safetensors` (optimiser moments, generator states and the
data pool, so training continues as if never interrupted; older sessions lack it and resume
approximately). Saves are atomic (written aside, then renamed), and opening
validates everything before anything is returned, so a corrupt or foreign file changes nothing.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .config import RunConfig, SamplerConfig, sampler_config_from_json
from .datasets import Standardizer, validate_points
from .errors import SessionError, SGMError
from .io import atomic_write

SESSION_FORMAT = "score-field-playground-session"
SESSION_VERSION = 1
MAX_MEMBER_BYTES = 512 * 2**20  # refuse zip bombs: no member may inflate beyond this


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


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def save_session(path: str | os.PathLike, state: SessionState) -> Path:
    """Write `state` to `path` atomically: the previous file survives any failure."""
    meta = {
        "format": SESSION_FORMAT, "version": SESSION_VERSION, "source": state.source,
        "run": state.run.to_json(), "sampler": state.sampler.__dict__ | {}, "brush_radius": float(state.brush_radius),
        "settings": state.settings, "step": int(state.step), "sampler_step": int(state.sampler_step),
        "standardizer": state.standardizer.to_json() if state.standardizer else None,
        "has_model": state.model is not None,
    }
    members = {"session.json": json.dumps(meta, indent=2).encode(), "data.npy": _npy_bytes(state.points),
               "losses.npy": _npy_bytes(np.asarray(state.losses, np.float64))}
    if state.particles is not None:
        members["particles.npy"] = _npy_bytes(np.asarray(state.particles, np.float32))
    if state.model is not None:
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in state.model.items()}
        tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in (state.ema or state.model).items()}
        members["model.safetensors"] = save_safetensors(tensors)
    if state.resume:
        members["resume.safetensors"] = save_safetensors(
            {k: v.detach().cpu().contiguous() for k, v in state.resume.items()})

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, blob in members.items():
                z.writestr(name, blob)

    try:
        return atomic_write(path, write)
    except OSError as exc:
        raise SessionError(f"cannot save the session to {path}: {exc.strerror or exc}") from exc


def _read_member(z: zipfile.ZipFile, name: str) -> bytes:
    info = z.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise SessionError(f"session member {name} is too large")
    return z.read(name)


def _read_npy(z: zipfile.ZipFile, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(_read_member(z, name)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SessionError(f"session member {name} is not a valid array: {exc}") from exc


def load_session(path: str | os.PathLike) -> SessionState:
    """Read and validate a session; any problem is one SessionError sentence."""
    path = Path(path)
    if not path.is_file():
        raise SessionError(f"no session file at {path}")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "session.json" not in names:
                raise SessionError(f"{path.name} is not a Score Field Playground session")
            meta = json.loads(_read_member(z, "session.json"))
            if not isinstance(meta, dict) or meta.get("format") != SESSION_FORMAT:
                raise SessionError(f"{path.name} is not a Score Field Playground session")
            if meta.get("version") != SESSION_VERSION:
                raise SessionError(f"{path.name} has session version {meta.get('version')}; "
                                   f"this program reads version {SESSION_VERSION}")
            # A session saved before anything was trainable (an empty drawing) holds < 2 points.
            points = validate_points(_read_npy(z, "data.npy"), min_points=2 if meta.get("has_model") else 0)
            losses = _read_npy(z, "losses.npy").astype(np.float64).reshape(-1) if "losses.npy" in names else np.zeros(0)
            particles = None
            if "particles.npy" in names:
                particles = validate_points(_read_npy(z, "particles.npy"), min_points=1)
                if particles.shape[1] != points.shape[1]:
                    raise SessionError("session particles and data have different dimensions")
            model = ema = resume = None
            if meta.get("has_model"):
                tensors = load_safetensors(_read_member(z, "model.safetensors"))
                model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
                ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
                if "resume.safetensors" in names:
                    resume = load_safetensors(_read_member(z, "resume.safetensors"))
            std = meta.get("standardizer")
            return SessionState(
                points=points, source=str(meta.get("source", "")), run=RunConfig.from_json(meta["run"]),
                sampler=sampler_config_from_json(meta["sampler"]), brush_radius=float(meta.get("brush_radius", 0.2)),
                settings=dict(meta.get("settings") or {}), model=model, ema=ema,
                standardizer=Standardizer.from_json(std) if std else None, step=int(meta.get("step", 0)),
                losses=losses, particles=particles, sampler_step=int(meta.get("sampler_step", 0)), resume=resume)
    except SessionError:
        raise
    except SGMError as exc:
        raise SessionError(f"{path.name} is not a valid session: {exc}") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, TypeError, OSError, EOFError,
            RuntimeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SessionError(f"{path.name} is not a valid session file ({type(exc).__name__}: {exc})") from exc

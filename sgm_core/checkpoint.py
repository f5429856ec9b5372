"""Run directories: config.json + model.safetensors + loss.csv + data.npy.

Weights are safetensors and everything else JSON/NPY without pickles, so loading a run never
executes code. Files are written aside and renamed, so an interrupted save leaves the old run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from .config import RunConfig
from .datasets import Standardizer
from .errors import ConfigError, SessionError
from .io import atomic_write
from .losses import loss_spec
from .nets import ScoreNet, make_model

RUN_FORMAT = "sgm-run"
RUN_VERSION = 1


@dataclass
class LoadedRun:
    """A trained run ready to sample: EMA model on the CPU, its config and data transform."""

    config: RunConfig
    model: ScoreNet
    standardizer: Standardizer
    dim: int
    step: int
    data: np.ndarray | None  # the reference points (data coordinates), if saved


def model_tensors(model: ScoreNet, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_run(run_dir: str | os.PathLike, config: RunConfig, model: ScoreNet, ema_model: ScoreNet,
             standardizer: Standardizer, step: int, losses: np.ndarray, data: np.ndarray | None) -> Path:
    """Write a complete run directory; each file lands atomically."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": RUN_FORMAT, "version": RUN_VERSION, "dim": model.dim, "step": int(step),
        "standardizer": standardizer.to_json(), "config": config.to_json(),
    }
    tensors = {**model_tensors(ema_model, "ema"), **model_tensors(model, "model")}
    atomic_write(run / "model.safetensors", lambda f: f.write(save(tensors)))
    atomic_write(run / "loss.csv", lambda f: f.write(_loss_csv(losses).encode()))
    if data is not None:
        atomic_write(run / "data.npy", lambda f: np.save(f, np.asarray(data, np.float32), allow_pickle=False))
    atomic_write(run / "config.json", lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return run


def _loss_csv(losses: np.ndarray) -> str:
    lines = ["step,loss"] + [f"{i + 1},{v:.6g}" for i, v in enumerate(np.asarray(losses).tolist())]
    return "\n".join(lines) + "\n"


def read_run_meta(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise SessionError(f"{run_dir} is not a run directory (no config.json)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise SessionError(f"{path} is not a Score Field Playground run")
    if meta.get("version") != RUN_VERSION:
        raise SessionError(f"{path} has run format version {meta.get('version')}; this program reads {RUN_VERSION}")
    return meta


def load_run(run_dir: str | os.PathLike) -> LoadedRun:
    """Load a run directory (raises SessionError with one sentence when anything is off)."""
    run = Path(run_dir)
    meta = read_run_meta(run)
    try:
        config = RunConfig.from_json(meta["config"])
        standardizer = Standardizer.from_json(meta["standardizer"])
        dim = int(meta["dim"])
        model = make_model(dim, config.model, loss_spec(config.loss.name).conditional)
        tensors = load_file(str(run / "model.safetensors"))
        state = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        model.load_state_dict(state)
    except SessionError:
        raise
    except (ConfigError, KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        raise SessionError(f"cannot load the run in {run}: {exc}") from exc
    model.requires_grad_(False).eval()
    data = None
    if (run / "data.npy").is_file():
        try:
            data = np.load(run / "data.npy", allow_pickle=False)
        except (OSError, ValueError):
            data = None
    return LoadedRun(config, model, standardizer, dim, int(meta.get("step", 0)), data)


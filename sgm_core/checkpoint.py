"""Run directories: config.json + model.safetensors + loss.csv + data.npy (+ labels.npy for labelled data).

Weights are safetensors and everything else JSON/NPY without pickles, so loading a run never
executes code. A run is written into a hidden sibling directory and swapped in whole, so an
interrupted or failed save leaves the old run complete. `load_run` also reads a session file
(.sgm) that holds a trained model, so every command that samples a run samples a session too.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import MAX_DATA_DIM, RunConfig, check_format, parse_json, whole_number
from .datasets import Dataset, Standardizer
from .errors import ConfigError, SessionError
from .lazy import lazy_module
from .limits import MAX_JSON_BYTES, MAX_NET_PARAMS, MAX_STEPS
from .losses import loss_spec
from .sessions import load_session, session_source
from .stored import fit_state, read_labels, read_points, read_tensors, require_finite, standardizer_for

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it
safetensors_torch = lazy_module("safetensors.torch")  # imports torch

if TYPE_CHECKING:
    from .nets import ScoreNet

RUN_FORMAT = "sgm-run"
RUN_VERSION = 1
RUN_FILES = ("config.json", "model.safetensors", "loss.csv", "data.npy", "labels.npy")
MAX_WEIGHTS_BYTES = 2 * 4 * MAX_NET_PARAMS + MAX_JSON_BYTES  # raw + EMA float32 nets and a header


@dataclass
class LoadedRun:
    """A trained run ready to sample: EMA model on the CPU, its config and data transform."""

    config: RunConfig
    model: ScoreNet
    standardizer: Standardizer
    dim: int
    step: int
    data_source: Path | np.ndarray | None = None  # data.npy (read on first use of `data`), or the points
    labels_source: Path | np.ndarray | None = None  # labels.npy (read with `labels`), or the labels
    data_classes: tuple[str, ...] = ()  # the class names of the saved labels
    source: Dataset | None = None  # a session's flow source (`sessions.session_source`); run dirs name theirs in config

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names a class-conditional model was trained on (() when unconditional)."""
        return self.config.model.classes

    @cached_property
    def labels(self) -> np.ndarray | None:
        """The saved data's class labels (N,), if the data was labelled (read on first use)."""
        if isinstance(self.labels_source, Path):
            data = self.data
            return read_labels(self.labels_source, f"the run's {self.labels_source.name}",
                               0 if data is None else len(data), list(self.data_classes))[0]
        return self.labels_source

    @cached_property
    def data(self) -> np.ndarray | None:
        """The reference points (data coordinates), if saved. Read on first use: sampling never
        needs them, so a damaged data.npy cannot stop `sgm sample` (SessionError here)."""
        if isinstance(self.data_source, Path):
            return read_points(self.data_source, f"the run's {self.data_source.name}", dim=self.dim)
        return self.data_source


def model_tensors(model: ScoreNet, prefix: str) -> dict[str, torch.Tensor]:
    """Private CPU copies (safetensors refuses tensors that share memory, e.g. an EMA that is the net)."""
    return {f"{prefix}.{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def save_run(run_dir: str | os.PathLike, config: RunConfig, model: ScoreNet, ema_model: ScoreNet,
             standardizer: Standardizer, step: int, losses: np.ndarray, data: np.ndarray | None,
             labels: np.ndarray | None = None, classes: tuple[str, ...] = ()) -> Path:
    """Write a complete run directory, atomic as a whole: the files go to a hidden sibling, are
    fsynced and loaded back, and only then does the directory replace the old run. On any failure
    (a full disk, say) the old run stays complete and nothing is left behind; SessionError."""
    meta = {
        "format": RUN_FORMAT, "version": RUN_VERSION, "dim": model.dim, "step": int(step),
        "standardizer": standardizer.to_json(), "config": config.to_json(),
    }
    files = {"model.safetensors": safetensors_torch.save({**model_tensors(ema_model, "ema"), **model_tensors(model, "model")}),
             "loss.csv": _loss_csv(losses).encode()}
    if data is not None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(data, np.float32), allow_pickle=False)
        files["data.npy"] = buf.getvalue()
        if labels is not None:
            buf = io.BytesIO()
            np.save(buf, np.asarray(labels, np.int64), allow_pickle=False)
            files["labels.npy"] = buf.getvalue()
            meta["classes"] = list(classes)
    files["config.json"] = json.dumps(meta, indent=2).encode()
    run = Path(run_dir)
    run = run.resolve() if run.is_symlink() else run
    try:
        _replace_dir(run, files)
    except OSError as exc:
        raise SessionError(f"cannot save the run to {run}: {exc.strerror or exc}") from exc
    return run


def check_run_target(run: Path) -> None:
    """A run may replace nothing, an empty folder or an earlier run, never a file or a folder of
    the user's other files; `sgm train` asks before training, `save_run` again before writing."""
    if run.exists() and not run.is_dir():
        raise SessionError(f"cannot save the run to {run}: it exists and is not a directory")
    if run.is_dir() and not (run / "config.json").is_file() and any(run.iterdir()):
        raise SessionError(f"cannot save the run to {run}: it is a folder with other files, not a run directory")


def _replace_dir(run: Path, files: dict[str, bytes]) -> None:
    """Write `files` into a new directory beside `run`, check it loads, then swap it in whole.

    Files of the old directory that are no part of a run (samples the user saved there) move
    into the new one; the old run files go."""
    check_run_target(run)
    run.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_sibling(run, "tmp")
    try:
        for name, blob in files.items():
            _write_synced(tmp / name, blob)
        _fsync_dir(tmp)
        try:
            loaded = load_run(tmp)
            if "data.npy" in files:
                _ = loaded.data  # the data file reads back too
        except SessionError as exc:
            raise SessionError(f"cannot save the run to {run}: the written files do not read back ({exc})") from exc
        old = None
        if run.exists():
            old = _new_sibling(run, "old")
            old.rmdir()
            os.rename(run, old)
        try:
            os.rename(tmp, run)
        except BaseException:
            if old is not None:
                os.rename(old, run)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(run.parent)
    if old is not None:
        moved = True
        for entry in old.iterdir():
            if entry.name not in RUN_FILES:
                try:
                    os.rename(entry, run / entry.name)
                except OSError:
                    moved = False  # the run is saved; a user file that would not move stays in `old`
        if moved:
            shutil.rmtree(old, ignore_errors=True)


def _new_sibling(run: Path, kind: str) -> Path:
    """A new hidden directory `.<name>.<kind>-XXXXXXXX` beside `run` (mode from the umask, as mkdir)."""
    for _ in range(100):
        path = run.with_name(f".{run.name}.{kind}-{secrets.token_hex(4)}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary directory beside {run}")


def _write_synced(path: Path, blob: bytes) -> None:
    with open(path, "xb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Make the directory's entries durable (POSIX; Windows cannot open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _loss_csv(losses: np.ndarray) -> str:
    lines = ["step,loss"] + [f"{i + 1},{v:.6g}" for i, v in enumerate(np.asarray(losses).tolist())]
    return "\n".join(lines) + "\n"


def _read_file(path: Path, limit: int) -> bytes:
    """The bytes of a run file of at most `limit` bytes (checked before reading)."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise SessionError(f"{path} is {size:,} bytes; the most this program reads is {limit:,}")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SessionError(f"{path.parent} is not a complete run: it has no {path.name}") from exc
    except OSError as exc:
        raise SessionError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_run_meta(run_dir: str | os.PathLike) -> dict:
    """The parsed config.json of a run directory: size-checked before parsing, format and version checked."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise SessionError(f"{run_dir} is not a run directory (no config.json)")
    try:
        return check_format(parse_json(_read_file(path, MAX_JSON_BYTES), str(path)), RUN_FORMAT, RUN_VERSION,
                            str(path))
    except ConfigError as exc:
        raise SessionError(str(exc)) from exc


def load_run(run_dir: str | os.PathLike) -> LoadedRun:
    """Load a run directory (raises SessionError with one sentence when anything is off).

    `run_dir` may also be a session file (.sgm) with a trained model: its EMA weights, settings,
    standardiser, step and data. Every field is checked before the model is built, and the
    weights against the model's own shapes before they are loaded."""
    run = Path(run_dir)
    if run.is_file():
        return _run_from_session(run)
    meta = read_run_meta(run)
    where = run / "config.json"
    try:
        config = RunConfig.from_json(meta.get("config"))
        dim = whole_number(meta.get("dim"), "dim", 2, MAX_DATA_DIM)
        step = whole_number(meta.get("step", 0), "step", 0, MAX_STEPS)
    except ConfigError as exc:
        raise SessionError(f"{where} is not a valid run config: {exc}") from exc
    standardizer = standardizer_for(meta.get("standardizer"), dim, str(where))
    model = loss_spec(config.loss.name).make_model(dim, config.model, config.noise)
    tensors = read_tensors(_read_file(run / "model.safetensors", MAX_WEIGHTS_BYTES), f"{run / 'model.safetensors'}")
    state = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
    fit_state(model, state, "model.safetensors")
    require_finite(state, "the run's weights")
    model.load_state_dict(state)
    model.requires_grad_(False).eval()
    data, labels = run / "data.npy", run / "labels.npy"
    has_labels = data.is_file() and labels.is_file()
    classes = meta.get("classes")
    classes = tuple(classes) if has_labels and isinstance(classes, list) else ()
    return LoadedRun(config, model, standardizer, dim, step, data if data.is_file() else None,
                     labels if has_labels else None, classes)


def _run_from_session(path: Path) -> LoadedRun:
    """The trained model of a session file, as a run (load_session has checked every part)."""
    state = load_session(path)
    if state.model is None or state.standardizer is None:
        raise SessionError(f"{path.name} holds no trained model; train it first, then save the session")
    dim = state.points.shape[1]
    model = loss_spec(state.run.loss.name).make_model(dim, state.run.model, state.run.noise)
    model.load_state_dict(state.ema or state.model)
    model.requires_grad_(False).eval()
    return LoadedRun(state.run, model, state.standardizer, dim, state.step, state.points, state.labels, state.classes,
                     source=session_source(state))

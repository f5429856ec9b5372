"""What run directories (`checkpoint`) and session files (`sessions`) share: reading their
weights, data transform and point arrays, bounded and checked.

Whatever a file says, reading it here is bounded (a header cannot claim more than the bytes
present, an array no more than MAX_POINTS), typed (every library error becomes one SessionError
sentence) and checked against the model the config builds, so `load_state_dict` never sees a
mismatch and no NaN/Inf weight is ever loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import SafetensorError

from .config import MAX_DATA_DIM
from .datasets import Standardizer, validate_points
from .errors import DataError, SessionError, SGMError
from .io import load_npy
from .lazy import lazy_module
from .limits import MAX_JSON_BYTES, MAX_POINTS

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it
safetensors_torch = lazy_module("safetensors.torch")  # imports torch


def one_line(exc: BaseException) -> str:
    """A library's message on one line (safetensors and torch spread theirs over several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def read_tensors(blob: bytes, what: str) -> dict[str, torch.Tensor]:
    """Tensors from safetensors bytes; an empty, truncated, garbage or huge-header blob is one sentence.

    The format is an 8-byte little-endian header length, a JSON header, then the raw data; the
    header is checked against the bytes present before the library reads anything."""
    if len(blob) < 8:
        raise SessionError(f"{what} is empty or truncated")
    n_header = int.from_bytes(blob[:8], "little")
    if n_header > MAX_JSON_BYTES or 8 + n_header > len(blob):
        raise SessionError(f"{what} is truncated or not a safetensors file (its header claims {n_header:,} bytes "
                           f"of {len(blob):,})")
    try:
        return safetensors_torch.load(blob)
    except (SafetensorError, ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as exc:
        raise SessionError(f"{what} is damaged or not a safetensors file ({one_line(exc)})") from exc


def require_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse NaN/Inf in any floating tensor (`what` is plural: "the run's weights"): such weights
    would only ever sample NaNs, and "restore the last good weights" must never restore them."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise SessionError(f"{what} contain NaN/Inf (in {name}); they cannot be used to sample or to train on")


def fit_state(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Check that `state` has exactly the model's layers, shapes and float values, so loading it
    cannot fail; the first difference is named in one sentence."""
    expected = model.state_dict()
    missing, extra = [k for k in expected if k not in state], [k for k in state if k not in expected]
    if missing:
        raise SessionError(f"{what} does not fit the config: it has no layer {missing[0]}")
    if extra:
        raise SessionError(f"{what} does not fit the config: it has a layer {extra[0]} the model has not")
    for name, want in expected.items():
        got = state[name]
        if tuple(got.shape) != tuple(want.shape):
            raise SessionError(f"{what} does not fit the config: layer {name} has shape {tuple(got.shape)}, "
                               f"expected {tuple(want.shape)}")
        if not got.is_floating_point():
            raise SessionError(f"{what} does not fit the config: layer {name} holds {got.dtype} values, not floats")


def standardizer_for(raw: object, dim: int, what: str) -> Standardizer:
    """The saved data transform, which must be finite and of the data's dimension."""
    if not isinstance(raw, dict):
        raise SessionError(f"{what} has no standardizer record")
    try:
        standardizer = Standardizer.from_json(raw)
    except (SGMError, OverflowError, ValueError, TypeError) as exc:
        raise SessionError(f"{what} has an invalid standardizer ({one_line(exc)})") from exc
    if standardizer.dim != dim:
        raise SessionError(f"{what} has a standardizer for {standardizer.dim}D data, but the data is {dim}D")
    return standardizer


def read_points(source: Path | bytes, what: str, *, min_points: int = 1, dim: int | None = None) -> np.ndarray:
    """An (N, 2|3) float32 array of at most MAX_POINTS points, read without pickles; the size is
    checked from the NPY header before anything is allocated."""
    try:
        x = validate_points(load_npy(source, max_elements=MAX_POINTS * MAX_DATA_DIM), min_points=min_points)
    except DataError as exc:
        raise SessionError(f"{what} cannot be used: {exc}") from exc
    if len(x) > MAX_POINTS:
        raise SessionError(f"{what} holds {len(x):,} points; the most this program reads is {MAX_POINTS:,}")
    if dim is not None and x.shape[1] != dim:
        raise SessionError(f"{what} holds {x.shape[1]}D points, but the model is {dim}D")
    return x


def read_labels(source: Path | bytes, what: str, n_points: int, classes: object) -> tuple[np.ndarray, tuple[str, ...]]:
    """Stored class labels: (N,) whole numbers in [0, len(classes)), one per stored point, and the
    class names (checked as `datasets.check_classes` does); SessionError with one sentence."""
    from .datasets import check_classes

    try:
        names = check_classes(classes)
        labels = load_npy(source, max_elements=MAX_POINTS)
    except DataError as exc:
        raise SessionError(f"{what} cannot be used: {exc}") from exc
    if labels.ndim != 1 or len(labels) != n_points or labels.dtype.kind not in "iu":
        raise SessionError(f"{what} must hold one whole-number label per point ({n_points:,}), "
                           f"not {labels.dtype} of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise SessionError(f"{what} holds a label outside its {len(names)} classes")
    return labels.astype(np.int64), names

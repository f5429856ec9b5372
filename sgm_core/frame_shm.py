"""Frames across a process boundary: big arrays through shared memory, a small pickled header.

The engine process writes every array of a `Frame` (particles, trails, field grids, heatmaps, the
loss curve) into one of a small ring of `multiprocessing.shared_memory` segments and sends a
header: the same Frame with each array replaced by an `ArrayRef` (segment, offset, shape, dtype).
The GUI process copies the arrays out on receipt, so it may keep a frame as long as it likes while
the engine reuses the segment. Only one frame is in flight at a time (the GUI acknowledges each
one it drew before the next is built), so the ring never overwrites a frame not yet read.

The engine reuses a cached part (the field until the model steps, a throttled heatmap) as the
very same object, and the views skip redrawing what `is` what they drew last. So a part that is
the same object as in the previous frame crosses as `UNCHANGED`, and the reader hands back its own
previous object: identity means the same across the process boundary as within one process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from .live import FieldGrid, Frame

RING = 2  # segments the writer alternates between
CACHED_PARTS = ("field", "true_field", "heatmap", "error_map", "curl_map")  # the engine reuses these objects
ALIGN = 64  # every array starts on a cache line
MIN_SEGMENT = 1 << 20  # bytes; a segment grows (to twice what it needs) when a frame outgrows it


class _Unchanged:
    """The same object as in the previous frame."""

    def __reduce__(self) -> str:
        return "UNCHANGED"  # one instance in every process


UNCHANGED = _Unchanged()


@dataclass(frozen=True)
class ArrayRef:
    """Where one array of a frame lies: `segment` (a shared memory name), byte offset, shape, dtype."""

    segment: str
    offset: int
    shape: tuple[int, ...]
    dtype: str


def _arrays(frame: Frame) -> list[tuple[str, str | None, np.ndarray]]:
    """(field, FieldGrid attribute or None, array) for every array in the frame."""
    out = []
    for f in dataclasses.fields(frame):
        value = getattr(frame, f.name)
        if isinstance(value, np.ndarray):
            out.append((f.name, None, value))
        elif isinstance(value, FieldGrid):
            out += [(f.name, "positions", value.positions), (f.name, "vectors", value.vectors)]
    return out


def _swap(frame: Frame, values: dict[tuple[str, str | None], object]) -> Frame:
    grids: dict[str, dict[str, object]] = {}
    plain: dict[str, object] = {}
    for (name, attr), value in values.items():
        if attr is None:
            plain[name] = value
        else:
            grids.setdefault(name, {})[attr] = value
    for name, parts in grids.items():
        plain[name] = dataclasses.replace(getattr(frame, name), **parts)
    return dataclasses.replace(frame, **plain)


class FrameWriter:
    """The engine process's side: packs frames into the ring and owns (unlinks) its segments."""

    def __init__(self) -> None:
        self._ring: list[shared_memory.SharedMemory | None] = [None] * RING
        self._next = 0
        self._last: dict[str, object] = {}  # the previous frame's cached parts (held: their ids stay unique)

    def pack(self, frame: Frame) -> Frame:
        same = {name: UNCHANGED for name in CACHED_PARTS
                if getattr(frame, name) is not None and getattr(frame, name) is self._last.get(name)}
        self._last = {name: getattr(frame, name) for name in CACHED_PARTS}
        frame = dataclasses.replace(frame, **same)
        arrays = _arrays(frame)
        layout, need = [], 0
        for name, attr, a in arrays:
            a = np.ascontiguousarray(a)
            layout.append((name, attr, a, need))
            need += -(-a.nbytes // ALIGN) * ALIGN
        slot = self._next
        self._next = (slot + 1) % RING
        seg = self._ring[slot]
        if seg is None or seg.size < need:
            if seg is not None:  # the reader copied everything out of it already: safe to replace
                seg.close()
                seg.unlink()
            seg = self._ring[slot] = shared_memory.SharedMemory(create=True, size=max(MIN_SEGMENT, 2 * need))
        refs: dict[tuple[str, str | None], object] = {}
        for name, attr, a, offset in layout:
            np.ndarray(a.shape, a.dtype, seg.buf, offset)[...] = a
            refs[(name, attr)] = ArrayRef(seg.name, offset, tuple(a.shape), a.dtype.str)
        return _swap(frame, refs)

    def segment_names(self) -> list[str]:
        return [s.name for s in self._ring if s is not None]

    def close(self) -> None:
        for i, seg in enumerate(self._ring):
            if seg is not None:
                seg.close()
                try:
                    seg.unlink()
                except FileNotFoundError:
                    pass
                self._ring[i] = None


class FrameReader:
    """The GUI process's side: turns headers back into frames of its own (copied) arrays."""

    def __init__(self) -> None:
        self._open: dict[str, shared_memory.SharedMemory] = {}
        self._last: dict[str, object] = {}

    def unpack(self, header: Frame) -> Frame:
        values: dict[tuple[str, str | None], object] = {}
        used = set()
        for name, attr, ref in _refs(header):
            seg = self._open.get(ref.segment)
            if seg is None:
                seg = self._open[ref.segment] = shared_memory.SharedMemory(name=ref.segment)
            used.add(ref.segment)
            values[(name, attr)] = np.ndarray(ref.shape, np.dtype(ref.dtype), seg.buf, ref.offset).copy()
        for name in [n for n in self._open if n not in used and len(self._open) > RING]:
            self._open.pop(name).close()  # a segment the writer replaced
        frame = _swap(header, values)
        same = {name: self._last.get(name) for name in CACHED_PARTS if getattr(frame, name) is UNCHANGED}
        frame = dataclasses.replace(frame, **same)
        self._last = {name: getattr(frame, name) for name in CACHED_PARTS}
        return frame

    def close(self, unlink: bool = False) -> None:
        """Detach; `unlink` also removes the segments (their writer died and cannot)."""
        for seg in self._open.values():
            seg.close()
            if unlink:
                try:
                    seg.unlink()
                except FileNotFoundError:
                    pass
        self._open.clear()


def _refs(header: Frame) -> list[tuple[str, str | None, ArrayRef]]:
    out = []
    for f in dataclasses.fields(header):
        value = getattr(header, f.name)
        if isinstance(value, ArrayRef):
            out.append((f.name, None, value))
        elif isinstance(value, FieldGrid):
            out += [(f.name, a, getattr(value, a)) for a in ("positions", "vectors")
                    if isinstance(getattr(value, a), ArrayRef)]
    return out

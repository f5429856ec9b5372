"""Undoable edits of the session's data (QUndoCommand): add, erase, clear, replace.

Each command keeps the data state before and after it (states are immutable, so undo and redo
just swap which one the session holds). The geometry (`points_near`) is a pure function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtGui import QUndoCommand

if TYPE_CHECKING:
    from .session import DataState, Session

_CHUNK = 4096  # rows per distance block: bounds memory to CHUNK x n_centres floats


def points_near(points: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of the points within `radius` of any centre (the first two axes, as drawn)."""
    mask = np.zeros(len(points), dtype=bool)
    if len(points) == 0 or len(centres) == 0 or radius <= 0:
        return mask
    c = np.asarray(centres, dtype=np.float64)[:, :2]
    r2 = float(radius) ** 2
    for start in range(0, len(points), _CHUNK):
        p = np.asarray(points[start:start + _CHUNK, :2], dtype=np.float64)
        d2 = ((p[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        mask[start:start + _CHUNK] = (d2 <= r2).any(axis=1)
    return mask


class DataCommand(QUndoCommand):
    """Swap the session between two data states."""

    def __init__(self, session: Session, after: DataState, text: str) -> None:
        super().__init__(text)
        self._session = session
        self.before = session.data
        self.after = after

    def redo(self) -> None:
        self._session.apply_data(self.after)

    def undo(self) -> None:
        self._session.apply_data(self.before)


class AddPoints(DataCommand):
    """Brush strokes and point clicks: append points; a preset or file becomes an edited cloud."""

    def __init__(self, session: Session, points: np.ndarray, jitter: float) -> None:
        before = session.data
        merged = np.concatenate([before.points, np.asarray(points, np.float32)], axis=0)
        n = len(points)
        c = session.painted_class()
        if c is None:
            after = before.edited(merged, jitter)
        else:  # labelled: the new points take the brush's class (class 0 when it paints none, or for old unlabelled points)
            old = before.labels if before.labels is not None else np.zeros(len(before.points), np.int64)
            labels = np.concatenate([old, np.full(n, c, np.int64)])
            after = before.edited(merged, jitter, labels, session.palette_classes())
        super().__init__(session, after, f"Add {n} point{'s' * (n != 1)}")


class ErasePoints(DataCommand):
    """Remove every point within `radius` of any of the eraser's centres."""

    def __init__(self, session: Session, centres: np.ndarray, radius: float, jitter: float) -> None:
        before = session.data
        mask = points_near(before.points, centres, radius)
        self.n_removed = int(mask.sum())
        labels = None if before.labels is None else before.labels[~mask]
        after = before.edited(before.points[~mask], jitter, labels) if self.n_removed else before
        super().__init__(session, after, f"Erase {self.n_removed} point{'s' * (self.n_removed != 1)}")


class ClearPoints(DataCommand):
    """Remove all points: an empty drawing to paint on."""

    def __init__(self, session: Session) -> None:
        from .session import empty_state

        super().__init__(session, empty_state(), "Clear points")


class ReplaceData(DataCommand):
    """A preset or file replaces the data (undo brings the previous data back)."""

    def __init__(self, session: Session, state: DataState) -> None:
        super().__init__(session, state, f"Load {state.name}")

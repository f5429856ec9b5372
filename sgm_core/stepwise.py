"""Step-wise computations: generators that do one piece of work per `next()` and return their
result at the end. The GUI worker runs such pieces between frames, so a 50 ms metric does not
hold the particles still for 50 ms; everyone else runs them to the end with `run_to_end`."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")
Steps = Generator[None, None, T]


def run_to_end(steps: Steps[T]) -> T:
    """Do every piece of `steps` and return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value

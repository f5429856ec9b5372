"""Score Field Playground's core: score models, samplers and metrics in torch and numpy, no Qt.

The public Python API (what the project promises; everything else may change):

    import sgm_core as sgm
    run = sgm.train("moons", loss="ncsn", steps=3000, seed=0)   # a preset, a file path, or an (N, D) array
    x = run.sample(2000, sampler="annealed", seed=0)              # numpy, data coordinates
    run.metrics(x)                                                # {"sw_ratio": ..., "mmd": ..., ...}
    run.save("runs/moons")  ;  run = sgm.load("runs/moons")       # a run directory or a .sgm session
    sgm.sweep("spec.toml", "sweeps/a")                            # a table of runs (see `sgm sweep`)

`import sgm_core` stays cheap: torch loads on the first use of one of these names (PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError, SessionError, SGMError, TrainingDiverged

if TYPE_CHECKING:
    from .api import Run, load, train
    from .sweeps import sweep

__all__ = ["train", "load", "Run", "sweep", "SGMError", "DataError", "ConfigError", "SessionError", "TrainingDiverged"]

_LAZY = {"train": "api", "load": "api", "Run": "api", "sweep": "sweeps"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

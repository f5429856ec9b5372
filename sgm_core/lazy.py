"""A module imported on first use: how the GUI process imports the core without torch.

The window runs the engine in a child process (sgm_core.engine_process), and torch costs the GUI
~1.5 s of start-up and ~300 MB it never uses. Modules whose torch use is all inside functions say
`torch = lazy_module("torch")`: with `from __future__ import annotations` their annotations are
strings, so importing them (for registries, configs, dataclasses) touches nothing; the first real
`torch.<name>` imports it, in whichever process calls.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


class LazyModule:
    """Stands in for a module until an attribute is read; then it is that module's attribute.

    It never puts itself in `sys.modules`, so `"torch" in sys.modules` still says whether torch
    was really imported (tests/test_gui_torch_free.py relies on that)."""

    __slots__ = ("_lazy_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_lazy_name", name)

    def _load(self) -> types.ModuleType:
        name = object.__getattribute__(self, "_lazy_name")
        return sys.modules.get(name) or importlib.import_module(name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:  # monkeypatching reaches the real module
        setattr(self._load(), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def __repr__(self) -> str:
        name = object.__getattribute__(self, "_lazy_name")
        return f"<lazy module {name!r}{' (loaded)' if name in sys.modules else ''}>"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """A pickled closure that names it (cloudpickle, to the engine process) gets a proxy there too."""
        return lazy_module, (object.__getattribute__(self, "_lazy_name"),)


def lazy_module(name: str) -> Any:
    """`name` imported on first attribute access (typed Any: it reads as the module itself)."""
    return LazyModule(name)


def no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`@torch.no_grad()` that imports torch when `fn` is called, not when it is defined."""

    @functools.wraps(fn)
    def without_grad(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return without_grad


def loaded(name: str) -> bool:
    """Whether `name` was really imported (e.g. no tensor can exist before torch is)."""
    return name in sys.modules

"""Imports deferred to first use: how commands that need no tensors start without PyTorch.

Importing PyTorch takes more than a second, and ``bench --help``, ``bench ls``, ``bench
table``, ``bench show`` and ``bench rm`` never compute with a tensor. So the modules they
import name PyTorch through a :class:`LazyModule` (``from bench.core.lazy import F,
torch``): declaring a defense or an attack class, a preset or a data set costs nothing, and
the first attribute looked up on ``torch`` (inside a function, when something is
computed) imports it. ``Tensor`` and ``nn`` in annotations come from an
``if TYPE_CHECKING:`` import (annotations are never evaluated at run time).

The same proxy lets the command line reach the job layers only when a command runs
(``bench/cli/deferred.py``), and :func:`load` resolves a registry's ``"module:attr"``
entries (``bench.core.registry.Registry.add_lazy``). ``tests/test_startup.py`` runs the
commands in fresh processes and fails if PyTorch is imported.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

R = TypeVar("R")


class LazyModule:
    """A stand-in for the module ``name``, imported by the first attribute looked up on it."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r}, {state}>"


def load(ref: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names, importing its module."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"expected 'module:attribute', got {ref!r}")
    return getattr(importlib.import_module(module), attr)


def no_grad(fn: Callable[..., R]) -> Callable[..., R]:
    """``@torch.no_grad()`` for a module that loads without PyTorch: entered at each call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


# PyTorch for the modules that must load without it (attacks, defenses, data, specs).
torch: Any = LazyModule("torch")
F: Any = LazyModule("torch.nn.functional")

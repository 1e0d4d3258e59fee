"""A small generic registry: ``@REG.register("name")`` then ``REG.get("name")``.

Unknown names fail with the list of valid choices and a "did you mean" hint, so a
typo on the command line never silently picks something else. An entry may also be
registered by reference (``REG.add_lazy("name", "package.module:attr")``): its name is
listed at once, and its module (which may import PyTorch) is imported by the first ``get``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from bench.core.lazy import load

T = TypeVar("T")


@dataclass(frozen=True)
class _Ref:
    """A registered ``"module:attr"`` reference, resolved by the first ``get``."""

    ref: str


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def add_lazy(self, name: str, ref: str) -> None:
        """Register ``name`` as ``"package.module:attr"``, imported by the first ``get``."""
        self.register(name)(_Ref(ref))  # type: ignore[arg-type]

    def get(self, name: str) -> T:
        try:
            obj = self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None
        if isinstance(obj, _Ref):
            obj = self._items[name] = load(obj.ref)
        return obj

    def check(self, name: str) -> None:
        """An unknown name is an error listing the valid ones; a lazily registered entry is
        not imported (checking a spec's model name needs no PyTorch)."""
        if name not in self._items:
            raise UnknownNameError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._items, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Valid choices: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self.get(n)) for n in self.names()]

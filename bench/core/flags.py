"""Options declared once, as dataclass fields: the field is the setting, its ``Flag`` says
how the command line spells it.

A dataclass whose fields are made with ``option(...)`` is an option group: the command
line takes each field as a flag (``bench/cli/groups.py`` adds them to a command) and
hands the command the dataclass built from them, so a setting that several commands take
is declared in one place. Nothing here imports the command-line library: the dataclasses
live in the layers that own the settings (e.g. ``bench/spec/placement/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Flag:
    """How an option is spelled: ``name`` (``--x`` or ``--x/--no-x``), its help line, its
    environment variable (``BENCH_`` + ``env``; empty: none) and, for a number, its least
    value."""

    name: str
    help: str
    env: str = ""
    low: float | None = None

    @property
    def primary(self) -> str:
        return self.name.split("/")[0]


def option(default: Any, name: str, help: str, env: str = "", low: float | None = None) -> Any:
    """A dataclass field that is also a command-line option."""
    return field(default=default, metadata={"flag": Flag(name, help, env and "BENCH_" + env, low)})


def flagged(cls: type) -> list[Any]:
    """The fields of ``cls`` that are command-line options, in declaration order."""
    return [f for f in fields(cls) if "flag" in f.metadata]


def check_lows(obj: Any) -> None:
    """A one-line error for an option below its least value (also when the dataclass is
    built from Python rather than the command line)."""
    for f in flagged(type(obj)):
        flag, value = f.metadata["flag"], getattr(obj, f.name)
        if flag.low is not None and value is not None and value < flag.low:
            raise ValueError(f"{flag.primary} must be >= {flag.low:g}, got {value}")


def changed(obj: Any) -> list[str]:
    """The flags of ``obj`` set away from their defaults."""
    default = type(obj)()
    return [
        f.metadata["flag"].primary
        for f in flagged(type(obj))
        if getattr(obj, f.name) != getattr(default, f.name)
    ]

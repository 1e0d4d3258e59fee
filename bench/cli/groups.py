"""Option groups: a dataclass of options (``bench/core/flags.py``) added to a command.

``@option_group(Cls, into="name")`` gives the command one flag per field of ``Cls`` (its
help, environment variable and default come from the field) and calls it with
``name=Cls(...)`` built from them. The executor options (``placing``) and the training
overrides (``training``) are declared once this way and taken by every command that
places jobs or trains.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import Field
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from bench.cli.deferred import executors
from bench.core.flags import Flag, flagged
from bench.spec.overrides import TrainOverrides
from bench.spec.placement import Options, Placing

F = TypeVar("F", bound=Callable[..., Any])


def _typer_option(flag: Flag, kind: Any) -> Any:
    extra: dict[str, Any] = {} if flag.low is None else {"min": flag.low}
    if flag.env:
        extra.update(envvar=flag.env, show_envvar=True)
    return Annotated[kind, typer.Option(flag.name, help=flag.help, **extra)]


def add_options(
    fields_: list[Field],
    hints: dict[str, Any],
    build: Callable[[dict], Any],
    into: str,
    after: str | None = None,
) -> Callable[[F], F]:
    """Decorator: the command takes ``fields_`` as flags (listed after its option
    ``after``, else last) and gets ``into=build(values)``."""

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != into]
        extra = [
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=f.default,
                annotation=_typer_option(f.metadata["flag"], hints[f.name]),
            )
            for f in fields_
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in fields_}
            return fn(*args, **kwargs, **{into: build(values)})

        at = [p.name for p in own].index(after) + 1 if after else len(own)
        params = [*own[:at], *extra, *own[at:]]
        params = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if i >= at else p
            for i, p in enumerate(params)
        ]
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper  # type: ignore[return-value]

    return decorate


def option_group(cls: type, into: str, after: str | None = None) -> Callable[[F], F]:
    """Every option of the dataclass ``cls``, handed to the command as ``into=cls(...)``."""
    return add_options(flagged(cls), get_type_hints(cls), lambda v: cls(**v), into, after)


def _placing(values: dict[str, Any]) -> tuple[str, Options] | None:
    """The executor's name and its options (checked), or None: run inline. An executor
    option given without ``--executor`` is an error, not silently ignored."""
    executor = values.pop("executor")
    opts = Options(**values)
    if executor is None:
        if opts.changed():
            raise ValueError(
                f"{', '.join(opts.changed())} place jobs: add --executor local|slurm|ray"
            )
        return None
    executors.check(executor, opts)  # an unknown name or a refused option: one line
    return executor, opts


def placing_options(fn: F) -> F:
    """The executor options (bench/spec/placement/): the command gets ``placing``, the
    executor's name and ``Options``, or None without ``--executor``."""
    fields_ = [*flagged(Placing), *flagged(Options)]
    hints = {**get_type_hints(Placing), **get_type_hints(Options)}
    return add_options(fields_, hints, _placing, "placing")(fn)


def training_options(fn: F) -> F:
    """The training overrides (bench/spec/overrides.py): the command gets
    ``training``."""
    return option_group(TrainOverrides, "training", after="preset")(fn)

"""What every command shares: the Typer app, common options, and the error boundary.

The boundary (``clean_errors``) is where bad input becomes one line on stderr and exit
code 2: registry misses, out-of-range values, unreadable databases or checkpoints,
missing data, unwritable output. An interrupt (Ctrl-C) prints what was kept and how to
resume, and exits with 130.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import typer
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup

import attacks
from bench import data as bdata
from bench.core.constants import ALL_CHECKPOINTS, DEFAULT_ATTACKS
from bench.core.registry import UnknownNameError
from bench.spec.evaluation import parse_attack_params, parse_value
from bench.spec.run import check_seed
from bench.store import claims
from bench.store import db as bdb
from bench.store.checkpoints import CheckpointError

HELP = """Train and evaluate adversarially robust classifiers (MART, ICLR 2020, and baselines).

Results go to one database (--db, env BENCH_DB: a SQLite file, or a PostgreSQL URL shared
by many workers); every number says how it was obtained. Start with `bench demo`, then
`bench table --paper`.
"""

# `bench --help` lists commands in the order a newcomer meets them, not alphabetically.
COMMAND_ORDER = (
    "demo",
    "run",
    "eval",
    "table",
    "show",
    "ls",
    "experiment",
    "plot",
    "report",
    "export",
    "audit",
    "sweep",
    "zoo",
    "rm",
    "regress",
)


class _Ordered(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


app = typer.Typer(
    cls=_Ordered, add_completion=False, no_args_is_help=True, help=HELP, rich_markup_mode=None
)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_ATTACK_LIST = ",".join(DEFAULT_ATTACKS)
EXPECTED = (
    UnknownNameError,
    ValueError,
    LookupError,
    bdata.DataNotFoundError,
    bdb.DatabaseError,
    CheckpointError,
    FloatingPointError,
    claims.Busy,
    claims.LeaseLost,
)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM sends before it kills a job), handled as Ctrl-C is: the run is
    recorded as interrupted and its claim released, so a rerun resumes at once."""


def on_sigterm(_signum: int, _frame: Any) -> None:
    raise Terminated


def fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def clean_errors(fn: F) -> F:
    """Expected errors -> one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EXPECTED as e:
            fail(" ".join(str(e).split()))
        except BrokenPipeError:  # the reader went away (`bench ls | head`): nothing to say
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (Python flushes at exit)
            raise typer.Exit(0) from None
        except SQLAlchemyError as e:
            fail(f"database error: {' '.join(str(getattr(e, 'orig', e)).split())[:200]}")
        except OSError as e:
            fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
        except KeyboardInterrupt as e:
            what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
            typer.echo(
                f"{what}: finished epochs and evaluations are kept in the database; "
                "run the same command again to resume",
                err=True,
            )
            raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None

    return wrapper  # type: ignore[return-value]


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def check_attacks(names: list[str]) -> list[str]:
    if not names:
        raise ValueError("--attacks names no attack")
    for n in names:
        attacks.PRESETS.get(n)
    return names


def parse_attacks(attack_list: str, attack_param: list[str] | None) -> tuple[list[str], dict]:
    """The attack presets to run and their options (``--attacks``, ``--attack-param``)."""
    names = check_attacks(split_list(attack_list))
    return names, parse_attack_params(attack_param or [], names)


def parse_seeds(seeds: str | None, seed: int) -> list[int]:
    """``--seeds 0,1,2`` (each a whole number, no repeats), else ``[--seed]``."""
    if seeds is None:
        return [check_seed(seed)]
    try:
        out = [int(s) for s in split_list(seeds)]
    except ValueError:
        raise ValueError(f"--seeds expects whole numbers like 0,1,2, got {seeds!r}") from None
    if not out or len(set(out)) != len(out):
        raise ValueError(f"--seeds expects distinct seeds, got {seeds!r}")
    return [check_seed(s) for s in out]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_cores(option: str, n: int | None, oversubscribe: bool) -> None:
    """``--threads``/``--nproc`` at most the usable cores, unless ``--oversubscribe``."""
    cores = usable_cores()
    if n is not None and n > cores and not oversubscribe:
        raise ValueError(
            f"{option} {n} is more than the {cores} usable CPU core(s) here; "
            "pass --oversubscribe to run it anyway"
        )


def check_checkpoints(text: str | None) -> list[str] | None:
    """``--checkpoint best,last`` checked; None (not given): every checkpoint a run has."""
    if text is None:
        return None
    tags = split_list(text)
    valid = ", ".join(ALL_CHECKPOINTS)
    if not tags:
        raise ValueError(f"--checkpoint names no checkpoint; valid: {valid}")
    for t in tags:
        if t not in ALL_CHECKPOINTS:
            raise ValueError(f"unknown checkpoint {t!r}; valid: {valid}")
    return tags


def parse_params(items: list[str], flag: str = "--param") -> dict[str, Any]:
    """``["lam=6", "kl=false"]`` -> ``{"lam": 6, "kl": False}`` (values checked by their user)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects key=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def existing_db(db: str | None) -> Any:
    """The engine of a database that must already exist (read-only commands)."""
    if not bdb.db_exists(db):
        where = bdb.describe_db(db)
        raise LookupError(f"no database at {where}: run `bench run` or `bench demo` first")
    return bdb.connect(db, read_only=bdb.read_only_file(db))


def write_output(text: str, output: Path | None) -> None:
    """Print, or write to ``output`` whole (a temporary file renamed, so never half-written)."""
    if output is None:
        typer.echo(text.rstrip("\n"))
        return
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text.rstrip("\n") + "\n")
    tmp.replace(output)
    typer.echo(f"wrote {output}", err=True)


STARTED = bdb.now()  # evaluations older than this command were found, not computed


def print_evals(evs: list[bdb.Evaluation], tags: list[str] | None = None) -> None:
    """One line per evaluation; one found in the database (not computed now) says so.

    With ``tags`` (the checkpoints asked for, in order), a row shared by best and last
    (the same weights) is printed under each tag it answers for.
    """
    names = tags or [e.checkpoint for e in evs]
    for tag, e in zip(_tags(evs, names), evs, strict=True):
        stored = ", stored" if e.created_at is not None and e.created_at < STARTED else ""
        typer.echo(
            f"{tag:>4} (epoch {e.checkpoint_epoch:>3})  {e.attack:<8} "
            f"{100 * e.accuracy:6.2f}%  ({e.correct}/{e.n}, {e.seconds:.1f}s{stored})"
        )


def _tags(evs: list[bdb.Evaluation], tags: list[str]) -> list[str]:
    """The tag each row was asked for: eval_job returns rows tag by tag, attacks in order."""
    per = len(evs) // max(len(tags), 1)
    return [
        tags[i // per] if per and len(evs) == per * len(tags) else e.checkpoint
        for i, e in enumerate(evs)
    ]

"""``bench show RUN`` and ``bench rm RUN``: look at one run, or remove it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from bench.cli.common import app, clean_errors, existing_db
from bench.cli.options import DbOpt
from bench.core.constants import STATE_FILE, is_external
from bench.report.runview import run_view
from bench.store import db as bdb

RunArg = Annotated[str, typer.Argument(help="run name or key (bench ls runs)")]


@app.command()
@clean_errors
def show(run: RunArg, db: DbOpt = None) -> None:
    """Everything about one run: spec, provenance, epochs, checkpoints, evaluations, audit."""
    typer.echo(run_view(existing_db(db), run))


@app.command()
@clean_errors
def rm(
    run: RunArg,
    files: Annotated[bool, typer.Option("--files", help="also delete the run's folder")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    db: DbOpt = None,
) -> None:
    """Remove a run and its epochs, checkpoints, evaluations and audit from the database."""
    engine = existing_db(db)
    with Session(engine) as s:
        row = bdb.find_run(s, run)
        if row is None:
            raise LookupError(f"no run named {run!r} in the database (see `bench ls runs`)")
        folder = Path(row.run_dir)
        ours = not is_external(row.spec) and (
            (folder / STATE_FILE).exists() or any(folder.glob("*.safetensors"))
        )  # a model-zoo entry's folder holds the user's files: never deleted
        what = f"run {row.name} ({len(row.evaluations)} evaluations)"
        if files and ours:
            what += f" and its folder {folder}"
        if not yes and not typer.confirm(f"delete {what}?"):
            raise typer.Exit(1)
        n = bdb.delete_run(s, row)
    if files and ours:
        shutil.rmtree(folder)
    typer.echo(f"deleted {what}: {n} rows" + ("" if not files or ours else "; no folder of ours"))

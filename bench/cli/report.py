"""``bench table``, ``bench report`` and ``bench audit``: results from the database, as
tables, a static site, or checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import app, clean_errors, existing_db, write_output
from bench.cli.deferred import audit, checklist_jobs, provenance
from bench.cli.options import DbOpt, DeviceOpt, ProgressOpt, RootOpt
from bench.core.home import home
from bench.eval.checks import FLAG
from bench.report import bundle
from bench.report.frames import evaluations_frame
from bench.report.masking import masking_frame, render_masking
from bench.report.render import check_format, render_long, render_paper, render_table5
from bench.report.site import build_site
from bench.store import db as bdb


@app.command()
@clean_errors
def table(
    paper: Annotated[bool, typer.Option("--paper", help="the paper's Table 2 layout")] = False,
    number: Annotated[
        int | None,
        typer.Option(
            "--table",
            help="with --paper: 2 (default), 3 (black-box), 4 (WRN best/last), 5 (unlabelled)",
        ),
    ] = None,
    masking: Annotated[
        bool,
        typer.Option(
            "--masking",
            help="the checklist table: PGD-20 beside BPDA/EOT, RayS, PGD-100, the worst "
            "case and the audit's verdict (scripts/masking.sh fills it)",
        ),
    ] = False,
    ci: Annotated[
        bool, typer.Option("--ci", help="95% Wilson intervals (tables 2-4, --masking)")
    ] = False,
    autoattack: Annotated[
        bool, typer.Option("--autoattack", help="add an AutoAttack column (tables 2-4)")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="markdown|csv|json")] = "markdown",
    output: Annotated[Path | None, typer.Option(help="write to a file instead of stdout")] = None,
    db: DbOpt = None,
) -> None:
    """Render results from the database: every evaluation, or a paper table (--paper)."""
    check_format(fmt)
    if number is not None and not paper:
        raise ValueError("--table chooses a paper table: add --paper")
    number = 2 if number is None else number
    if number not in (2, 3, 4, 5):
        raise ValueError(f"unknown paper table {number}; valid: 2, 3, 4, 5")
    if paper and number == 5 and (ci or autoattack):
        raise ValueError("--ci and --autoattack apply to tables 2-4")
    if masking and (paper or autoattack):
        raise ValueError("--masking is a table of its own: without --paper or --autoattack")
    engine = existing_db(db)
    if masking:
        text = render_masking(masking_frame(engine), fmt, ci=ci)
    elif not paper:
        text = render_long(evaluations_frame(engine, all_budgets=True), fmt)
    elif number == 5:
        text = render_table5(engine, fmt=fmt)
    else:
        text = render_paper(engine, number, fmt, ci=ci, autoattack=autoattack)
    empty = "".join(text.split()) == "[]" or (fmt == "csv" and len(text.strip().splitlines()) <= 1)
    if empty:  # an export with no rows still says what would fill it, on stderr
        what = f"Table {number}" if paper else "the checklist table" if masking else "the database"
        fills = "scripts/masking.sh" if masking else f"`bench table --paper --table {number}`"
        typer.echo(
            f"note: no evaluations in {what} yet; see {fills} for the command that fills it",
            err=True,
        )
    write_output(text, output)


@app.command()
@clean_errors
def report(
    out: Annotated[
        Path | None,
        typer.Option(
            help="folder for the site [default $BENCH_HOME/site]; an earlier site there is replaced"
        ),
    ] = None,
    run: Annotated[
        list[str] | None, typer.Option("--run", help="only this run (repeatable) [default: all]")
    ] = None,
    db: DbOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Write a static site (HTML, CSS, PNG; opens from file://): leaderboards, run pages,
    the paper's tables and figures."""
    engine = existing_db(db)
    out = out or home() / "site"
    index = build_site(engine, out, runs=run or None, progress=progress, source=bdb.describe_db(db))
    typer.echo(f"wrote {index} (open it in a browser; no server needed)")


@app.command("audit")
@clean_errors
def audit_cmd(
    runs: Annotated[list[str] | None, typer.Argument(help="run names [default: all]")] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown|json")] = "markdown",
    adaptive: Annotated[
        bool,
        typer.Option(
            "--adaptive",
            help="first probe each named run for randomness and masked gradients and "
            "evaluate the attack it needs (EOT, BPDA, else PGD-20) beside PGD-20",
        ),
    ] = False,
    device: DeviceOpt = None,
    db: DbOpt = None,
    data_root: RootOpt = None,
) -> None:
    """Recompute the gradient-masking audit of evaluated checkpoints (docs/audit.md)."""
    if fmt not in ("markdown", "json"):
        raise ValueError(f"unknown format {fmt!r}; valid: markdown, json")
    engine = existing_db(db)
    device = provenance.check_device(device)
    if adaptive and not runs:
        raise ValueError("--adaptive evaluates: name the runs")
    for name in runs or [] if adaptive else []:
        found, attack = checklist_jobs.adaptive_eval(
            engine, name, data_root=data_root, device=device, progress=False
        )
        typer.echo(f"{name}: {found.summary()}; evaluated {attack}", err=True)
    res = audit.audit_runs(engine, runs or None, data_root=data_root, device=device)
    if fmt == "json":
        typer.echo(audit.summary_json(res))
        return
    if not res:
        typer.echo("nothing to audit: no evaluations of current checkpoints")
    for (run, tag), checks in res.items():
        flagged = [c.check for c in checks if c.status == FLAG]
        typer.echo(f"{run} ({tag}): " + (", ".join(flagged) + " FLAGGED" if flagged else "ok"))
        for c in checks:
            typer.echo(f"  {c.check:<22} {c.status:<13} {c.detail}")


@app.command("export")
@clean_errors
def export_cmd(
    runs: Annotated[list[str] | None, typer.Argument(help="run names [default: all]")] = None,
    out: Annotated[Path, typer.Option(help="the JSON bundle to write")] = Path("results.json"),
    markdown: Annotated[
        Path | None, typer.Option(help="also write the comparison with the paper as Markdown")
    ] = None,
    note: Annotated[str, typer.Option(help="a sentence on how the runs were made")] = "",
    table: Annotated[
        int, typer.Option(help="the paper table: 2 (white-box) or 3 (black-box transfer)")
    ] = 2,
    db: DbOpt = None,
) -> None:
    """Write a results bundle: a paper table's cells with intervals and paper deltas, the
    ranking and the paper's claims judged, and per run its spec, provenance, per-epoch
    curve, checkpoint hashes and per-point masks (for committing reference numbers)."""
    engine = existing_db(db)
    b = bundle.bundle(engine, runs or None, note, table)
    if not b["runs"]:
        raise ValueError("no runs to export (see `bench ls runs`)")
    text = bundle.markdown(b)  # rendered before anything is written
    write_output(json.dumps(b, indent=1, sort_keys=True, default=str) + "\n", out)
    if markdown is not None:
        write_output(text, markdown)
    typer.echo(f"{len(b['runs'])} run(s), {len(b['cells'])} cells -> {out}", err=True)

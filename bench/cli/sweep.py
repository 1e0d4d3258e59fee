"""``bench sweep RUN``: the checklist's eps sweep (bench/jobs/sweep.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from bench.cli.common import app, clean_errors, existing_db
from bench.cli.deferred import provenance, sweep_jobs
from bench.cli.options import DbOpt, DeviceOpt, ProgressOpt, RootOpt


def _values(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ValueError(f"--eps takes comma-separated budgets, got {text!r}") from None
    if not values or values[0] <= 0:
        raise ValueError(f"--eps takes budgets > 0, got {text!r}")
    return values


@app.command()
@clean_errors
def sweep(
    run: Annotated[str, typer.Argument(help="run name (bench ls runs)")],
    attack: Annotated[
        str | None, typer.Option(help="attack preset [default: PGD-20 in the run's norm]")
    ] = None,
    eps: Annotated[
        str | None,
        typer.Option(
            "--eps",
            help="budgets, e.g. 0.1,0.2,0.3,0.5,1 [default: the run's eps x 0.25, 0.5, 1, 2, 4 "
            "and, in L-inf, 1]",
        ),
    ] = None,
    test_subset: Annotated[
        int | None, typer.Option(min=1, help="first N test images [default: the run's]")
    ] = None,
    device: DeviceOpt = None,
    db: DbOpt = None,
    data_root: RootOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Attack a run's best checkpoint at growing eps, up to one where every model must fall
    to about 0%: a curve that stays up is a sign of masked gradients. Each point is an
    evaluation of its own (bench show lists them; the audit keeps to the run's eps)."""
    values = _values(eps)
    device = provenance.check_device(device)
    name, evs = sweep_jobs.eps_sweep(
        existing_db(db),
        run,
        attack=attack,
        eps_values=values,
        test_subset=test_subset,
        device=device,
        data_root=data_root,
        progress=progress,
    )
    typer.echo(f"{run}: {name} on the best checkpoint")
    for e in evs:
        typer.echo(
            f"  eps {e.attack_params['eps']:<8g} {100 * e.accuracy:6.2f}%  ({e.correct}/{e.n})"
        )

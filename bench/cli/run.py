"""``bench run``, ``bench eval`` and ``bench demo``: train, attack, and the quick demo."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import Engine

from bench.cli import parallel
from bench.cli import placing as pl
from bench.cli.common import (
    DEFAULT_ATTACK_LIST,
    app,
    check_checkpoints,
    check_cores,
    check_seed,
    clean_errors,
    existing_db,
    parse_attacks,
    parse_params,
    parse_seeds,
    print_evals,
)
from bench.cli.deferred import jobs, provenance, train_runtime, transformed_jobs
from bench.cli.groups import option_group, placing_options, training_options
from bench.cli.options import (
    AttackParamOpt,
    AttacksOpt,
    BatchOpt,
    ChannelsLastOpt,
    CompileOpt,
    DbOpt,
    DeviceOpt,
    MonitorOpt,
    NprocOpt,
    OversubscribeOpt,
    PrecisionOpt,
    ProgressOpt,
    RootOpt,
    RunsDirOpt,
    SeedsOpt,
    SkipOpt,
    StatusOpt,
    TestSubOpt,
    ThreadsOpt,
    TrainSubOpt,
    UnlabOpt,
    ValOpt,
)
from bench.cli.ownmodel import ModelDefFlags, own_model_run
from bench.core.constants import DEFAULT_L2_ATTACKS, EVAL_BATCH, L2, RunStatus
from bench.spec.auxiliary import attach_unlabelled
from bench.spec.overrides import TrainOverrides
from bench.spec.placement import Options
from bench.spec.run import RunSpec, resolve
from bench.store import db as bdb


def default_dataset(model: str) -> str:
    return "mnist" if model in ("smallcnn", "tiny-cnn") else "cifar10"


@app.command()
@clean_errors
@training_options
@placing_options
def run(
    defense: Annotated[str, typer.Option(help="defense name (bench ls defenses)")],
    model: Annotated[str, typer.Option(help="model name (bench ls models)")],
    dataset: Annotated[
        str | None, typer.Option(help="default: mnist for smallcnn, else cifar10")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="training preset (bench ls presets)")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="defense parameter key=value, e.g. lam=6")
    ] = None,
    seed: int = 0,
    seeds: SeedsOpt = None,
    precision: PrecisionOpt = "fp32",
    channels_last: ChannelsLastOpt = True,
    compile_model: CompileOpt = False,
    threads: ThreadsOpt = None,
    nproc: NprocOpt = None,
    oversubscribe: OversubscribeOpt = False,
    train_subset: TrainSubOpt = None,
    test_subset: TestSubOpt = None,
    monitor_subset: MonitorOpt = None,
    val_subset: ValOpt = None,
    unlabelled: UnlabOpt = None,
    evaluate: Annotated[
        bool, typer.Option("--eval/--no-eval", help="evaluate after training")
    ] = True,
    attack_list: AttacksOpt = DEFAULT_ATTACK_LIST,
    attack_param: AttackParamOpt = None,
    skip_wrong: SkipOpt = True,
    device: DeviceOpt = None,
    db: DbOpt = None,
    runs_dir: RunsDirOpt = None,
    data_root: RootOpt = None,
    progress: ProgressOpt = True,
    status: StatusOpt = False,
    training: TrainOverrides = TrainOverrides(),
    placing: tuple[str, Options] | None = None,
) -> None:
    """Train a defense (resuming an interrupted run), then evaluate it.

    With `--seeds`, one run per seed; `--executor local|slurm|ray` places each seed's
    training and evaluation as a job (as `bench experiment` does), `--status` shows them.
    """
    nproc, device = _check_processes(nproc, threads, oversubscribe, device, placing is not None)
    dataset = dataset or default_dataset(model)
    if training.norm == L2 and attack_list == DEFAULT_ATTACK_LIST:
        attack_list = ",".join(DEFAULT_L2_ATTACKS)  # an L2 run is evaluated in L2
    names, options = parse_attacks(attack_list, attack_param) if evaluate else ([], {})
    specs = [
        resolve(
            defense,
            model,
            dataset,
            preset,
            seed=s,
            train_subset=train_subset,
            test_subset=test_subset,
            overrides=training.as_dict(),
            defense_overrides=parse_params(param or []),
            precision=precision,
            monitor_subset=monitor_subset,
            val_subset=val_subset,
        )
        for s in parse_seeds(seeds, seed)
    ]
    if unlabelled is not None:  # pseudo-labelled by a natural run, trained when missing
        specs = [attach_unlabelled(spec, unlabelled, data_root) for spec in specs]
    runtime = train_runtime.Runtime(
        channels_last=channels_last, compile=compile_model, threads=threads, nproc=nproc
    )
    where = {"runs_dir": runs_dir, "data_root": data_root, "device": device, "progress": progress}
    jobs_ = (specs, (names, options, skip_wrong), runtime)
    _dispatch(jobs_, placing, status, db, nproc, where)


def _dispatch(
    jobs_: tuple[list[RunSpec], tuple[list[str], dict, bool], Any],
    placing: tuple[str, Options] | None,
    status: bool,
    db: str | None,
    nproc: int,
    where: dict[str, Any],
) -> None:
    """The specs' jobs (with their attacks and runtime) on an executor, their status, or
    trained and evaluated here (in a process group with ``nproc`` > 1); ``where``: runs_dir,
    data_root, device, progress."""
    specs, attacks_, runtime = jobs_
    if placing is not None or status:  # the seeds' jobs on an executor, or where they are
        grid = pl.grid_jobs(specs, *attacks_)
        pl.place_or_status(bdb.connect(db), grid, placing, status, runtime=runtime, **where)
        return
    work = partial(_train_and_evaluate, specs=specs, runtime=runtime, attacks_=attacks_, **where)
    parallel.train_in_group(work, db, nproc, where["device"])


def _check_processes(
    nproc: int | None, threads: int | None, oversubscribe: bool, device: str | None, placed: bool
) -> tuple[int, str]:
    """The number of training processes and the device, checked against the executor and
    this machine's usable cores."""
    n = parallel.check_nproc(nproc)
    if placed and n > 1:
        raise ValueError(
            "--nproc with --executor: a placed job trains in one process; use one or the other"
        )
    device = provenance.check_device(device)
    check_cores("--threads", threads, oversubscribe)
    if device == "cpu":
        check_cores("--nproc", n, oversubscribe)
    return n, device


def _train_and_evaluate(
    engine: Any,
    specs: list[RunSpec],
    runtime: train_runtime.Runtime,
    attacks_: tuple[list[str], dict, bool],
    *,
    runs_dir: Path | None,
    device: str,
    data_root: str | None,
    progress: bool,
) -> None:
    """Train each spec (every one already checked), then evaluate it: ``attacks_`` is the
    presets, their options and the skip of points wrong on clean inputs."""
    names, options, skip_wrong = attacks_
    for spec in specs:
        typer.echo(f"run {spec.name} on {device}", err=True)
        run_row, trained = jobs.train_job(
            engine,
            spec,
            runs_dir=runs_dir,
            device=device,
            data_root=data_root,
            progress=progress,
            runtime=runtime,
        )
        if not trained:
            typer.echo(f"already trained: {run_row.name} (in {engine.url.database})", err=True)
        if names:
            evs = jobs.eval_job(
                engine,
                spec.name,
                attack_names=names,
                device=device,
                data_root=data_root,
                progress=progress,
                attack_options=options,
                skip_wrong=skip_wrong,
            )
            typer.echo(spec.name)
            print_evals(evs, jobs.run_checkpoint_tags(engine, spec.name))


def _eval_targets(
    engine: Engine, runs: list[str] | None, all_runs: bool, transform: str | None
) -> list[str]:
    """The runs ``bench eval`` names (or all finished ones), behind ``transform`` if given."""
    targets = list(runs or [])
    if all_runs:
        targets += [r.name for r in bdb.list_runs(engine) if r.status == RunStatus.DONE]
    if not targets:
        raise ValueError("name at least one run, or pass --all")
    if transform is not None:
        targets = [transformed_jobs.transformed_run(engine, t, transform) for t in targets]
    return targets


@app.command("eval")
@clean_errors
@option_group(ModelDefFlags, "own", after="transform")
@placing_options
def eval_cmd(
    runs: Annotated[list[str] | None, typer.Argument(help="run names (bench ls runs)")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="every finished run")] = False,
    transform: Annotated[
        str | None,
        typer.Option(
            help="attack each run behind an input transformation, e.g. bit-depth:bits=1 "
            "(bench ls transforms), evaluated as the run RUN+TRANSFORM"
        ),
    ] = None,
    attack_list: AttacksOpt = DEFAULT_ATTACK_LIST,
    attack_param: AttackParamOpt = None,
    skip_wrong: SkipOpt = True,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="best, last, best-val (comma-separated) [default: every checkpoint the run "
            "has]; with --model-def: the weights file (safetensors or a torch state_dict)"
        ),
    ] = None,
    test_subset: TestSubOpt = None,
    eps: Annotated[float | None, typer.Option(min=0.0, help="default: the run's eps")] = None,
    batch_size: BatchOpt = EVAL_BATCH,
    seed: int = 0,
    device: DeviceOpt = None,
    db: DbOpt = None,
    data_root: RootOpt = None,
    progress: ProgressOpt = True,
    status: StatusOpt = False,
    placing: tuple[str, Options] | None = None,
    own: ModelDefFlags = ModelDefFlags(),
) -> None:
    """Attack stored checkpoints, or your own model (--model-def); evaluations already in
    the database are skipped.

    `--executor local|slurm|ray` places each run's evaluation as a job (the run's own test
    subset and eps, both checkpoints); `--status` shows them.
    """
    names, options = parse_attacks(attack_list, attack_param)
    if own.model_def is None and own.given():
        raise ValueError(f"{own.given()[0]} describes a --model-def model: add --model-def")
    tags = ["best"] if own.model_def else check_checkpoints(checkpoint)
    check_seed(seed)
    device = provenance.check_device(device)
    if own.model_def is not None:
        if runs or all_runs or transform or placing or status:
            raise ValueError(
                "--model-def evaluates its own model, here: no runs, --all, --transform, "
                "--executor or --status"
            )
        engine = bdb.connect(db)  # a first evaluation may create the database
        targets = [
            own_model_run(engine, own, checkpoint, names, data_root=data_root, device=device)
        ]
    else:
        engine = existing_db(db)
        targets = _eval_targets(engine, runs, all_runs, transform)
    if placing is not None or status:
        pl.check_eval_defaults(tags, test_subset, eps, batch_size, seed)
        grid = pl.eval_jobs(engine, targets, names, options, skip_wrong)
        where = {"runs_dir": None, "data_root": data_root, "device": device, "progress": progress}
        pl.place_or_status(engine, grid, placing, status, runtime=None, **where)
        return
    settings = {"checkpoints": tags, "test_subset": test_subset, "eps": eps, "seed": seed}
    for name in targets:
        evs = jobs.eval_job(
            engine,
            name,
            attack_names=names,
            device=device,
            data_root=data_root,
            batch_size=batch_size,
            progress=progress,
            attack_options=options,
            skip_wrong=skip_wrong,
            **settings,
        )
        typer.echo(name)
        print_evals(evs, tags or jobs.run_checkpoint_tags(engine, name))

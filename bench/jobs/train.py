"""Training jobs: a spec becomes a trained run in the database, once.

``train_job`` trains a spec unless the database says it is done, resuming an interrupted
run after its last completed epoch; every epoch is recorded as it finishes. One worker at
a time trains a run: it holds the run's claim (bench/store/claims.py) while it trains, and
its epoch and status writes commit only while the claim is still its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from tqdm import tqdm

from bench import data as bdata
from bench.core import provenance
from bench.core.constants import ALL_CHECKPOINTS, RunStatus
from bench.core.home import default_runs_dir
from bench.eval.health import epoch_note, from_metrics
from bench.jobs import preflight
from bench.jobs.pseudo import prepare_pseudo_labels
from bench.jobs.teacher import prepare_teacher
from bench.spec.run import RunSpec
from bench.store import claims
from bench.store.checkpoints import read_metadata, sha256
from bench.store.claims import Holder, Lease, LeaseLost
from bench.store.db import Checkpoint, EpochMetric, Run, add_once, now
from bench.train.loop import train
from bench.train.record import EpochReport, completed_epochs
from bench.train.runtime import Runtime


def get_or_create_run(
    session: Session, spec: RunSpec, runs_dir: Path, data_root: str | None
) -> Run:
    def find() -> Run | None:
        return session.scalars(select(Run).where(Run.key == spec.key)).first()

    run = find()
    if run is None:  # two workers may create it at once: the second gets the first's row
        new = Run(
            key=spec.key,
            name=spec.name,
            defense=spec.defense,
            model=spec.model,
            dataset=spec.dataset,
            preset=spec.preset,
            spec=spec.to_dict(),
            seed=spec.seed,
            run_dir=str((runs_dir / spec.name).resolve()),
            data_label=bdata.describe(spec.dataset, data_root),
            status=RunStatus.CREATED.value,
        )
        run = add_once(session, new, find)
    return run


def epoch_line(rep: EpochReport, epochs: int, note: str = "") -> str:
    """The line a finished epoch leaves on the terminal (``note``: its training health)."""
    best = " (best so far)" if rep.best_epoch == rep.epoch else f" (best: epoch {rep.best_epoch})"
    return (
        f"epoch {rep.epoch}/{epochs}: loss {rep.train_loss:.4f}, lr {rep.lr:.4g}, "
        f"clean {100 * rep.clean_acc:.2f}%, PGD-20 {100 * rep.robust_acc:.2f}% on "
        f"{rep.n_monitor} test points, {rep.seconds:.1f} s{best}" + (f"; {note}" if note else "")
    )


def _health_note(engine: Engine, run_id: int, dataset: str, epoch: int) -> str:
    with Session(engine) as s:
        rows = s.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id)).all()
        health = from_metrics(rows, dataset)
    return epoch_note(health, epoch) if health is not None else ""


def _record_epoch(
    engine: Engine, lease: Lease, run_id: int, run_dir: Path, rep: EpochReport
) -> None:
    with Session(engine) as s:
        row = s.scalars(
            select(EpochMetric).where(EpochMetric.run_id == run_id, EpochMetric.epoch == rep.epoch)
        ).first() or EpochMetric(run_id=run_id, epoch=rep.epoch)
        row.lr, row.train_loss, row.seconds = rep.lr, rep.train_loss, rep.seconds
        row.clean_acc, row.robust_acc, row.n_monitor = rep.clean_acc, rep.robust_acc, rep.n_monitor
        row.monitor_attack = rep.monitor_attack
        row.val_clean_acc, row.val_robust_acc = rep.val_clean_acc, rep.val_robust_acc
        row.n_val = rep.n_val or None
        s.add(row)
        run = s.get_one(Run, run_id)
        run.epochs_done = max(run.epochs_done, rep.epoch)
        _sync_checkpoints(s, run, run_dir)
        lease.fence(s)
        s.commit()


def _sync_checkpoints(session: Session, run: Run, run_dir: Path) -> None:
    """Checkpoint rows mirror the files (their metadata names epoch and PGD-20 accuracy)."""
    for tag in ALL_CHECKPOINTS:
        path = run_dir / f"{tag}.safetensors"
        if not path.exists():
            continue
        meta = read_metadata(path)
        row = session.scalars(
            select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.tag == tag)
        ).first() or Checkpoint(run_id=run.id, tag=tag)
        row.epoch, row.path, row.sha256 = int(meta["epoch"]), str(path.resolve()), sha256(path)
        row.robust_acc = float(meta["robust_acc"])
        session.add(row)


def _on_epoch(
    engine: Engine,
    lease: Lease,
    run_id: int,
    run_dir: Path,
    rep: EpochReport,
    spec: RunSpec,
    progress: bool,
) -> None:
    _record_epoch(engine, lease, run_id, run_dir, rep)
    if progress:
        note = _health_note(engine, run_id, spec.dataset, rep.epoch)
        tqdm.write(epoch_line(rep, spec.epochs, note), file=sys.stderr)


def _start(run: Run, device: str, runtime: Runtime | None = None) -> None:
    """Mark the run as running; its first provenance stays, a resume's is appended."""
    here = {**provenance.collect(device), "runtime": (runtime or Runtime()).record()}
    if not run.provenance or "git_commit" not in run.provenance:
        run.provenance = {**(run.provenance or {}), **here}
    else:
        resumed = [*run.provenance.get("resumed", []), {**here, "at": now().isoformat()}]
        run.provenance = {**run.provenance, "resumed": resumed}
    run.status = RunStatus.RUNNING.value


def _waiting(name: str) -> Callable[[Holder, float], None]:
    def say(holder: Holder, poll: float) -> None:
        print(
            f"{name} is being trained by {holder.describe()}: waiting for it (looking every "
            f"{poll:.1f} s; if that worker died, its claim expires within "
            f"{claims.lease_seconds():.0f} s and this one resumes the run)",
            file=sys.stderr,
        )

    return say


def train_job(
    engine: Engine,
    spec: RunSpec,
    *,
    runs_dir: Path | None = None,
    device: str = "cpu",
    data_root: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    runtime: Runtime | None = None,
    wait: bool = True,
) -> tuple[Run, bool]:
    """Train ``spec`` unless done; returns the run and whether any training happened here.

    Checkpoints go to ``runs_dir/<run name>`` (default: ``$BENCH_HOME/runs``). While
    another live worker trains the same run, wait for it (``wait``: afterwards the run is
    done, or resumed here if that worker died) or raise ``claims.Busy`` (``LeaseLost``
    if this worker's claim lapsed while it trained).
    """
    runs_dir = default_runs_dir() if runs_dir is None else Path(runs_dir)
    preflight.check_train(spec, runs_dir, device, data_root)  # nothing written before this
    with Session(engine, expire_on_commit=False) as s:
        run = get_or_create_run(s, spec, runs_dir, data_root)
    if run.status == RunStatus.DONE:
        return run, False
    key = claims.run_key(spec.key)
    while True:
        with claims.hold(engine, key, claims.RUN, wait=wait, on_wait=_waiting(run.name)) as lease:
            try:
                return _train_claimed(
                    engine,
                    spec,
                    run.id,
                    lease,
                    runs_dir=runs_dir,
                    device=device,
                    data_root=data_root,
                    progress=progress,
                    stop_after=stop_after,
                    runtime=runtime,
                )
            except LeaseLost:  # not renewed in time (a stalled worker): claim it again
                if not wait:
                    raise
                print(f"{run.name}: lost its claim; claiming it again", file=sys.stderr)


def _train_claimed(
    engine: Engine,
    spec: RunSpec,
    run_id: int,
    lease: Lease,
    *,
    runs_dir: Path,
    device: str,
    data_root: str | None,
    progress: bool,
    stop_after: int | None,
    runtime: Runtime | None,
) -> tuple[Run, bool]:
    """``train_job`` once this worker holds the run's claim."""
    with Session(engine, expire_on_commit=False) as s:
        run = s.get_one(Run, run_id)
        if run.status == RunStatus.DONE:  # the worker we waited for finished it
            return run, False
        done = completed_epochs(Path(run.run_dir))
        if done:
            print(f"resuming {run.name} after epoch {done}/{spec.epochs}", file=sys.stderr)
        _start(run, device, runtime)
        x_tr, _ = bdata.load_split(spec.dataset, True, data_root)
        # images trained on: the subset less the held-out ones (--val-subset)
        run.n_train = len(bdata.subset(x_tr, x_tr, spec.train_subset)[1]) - (spec.val_subset or 0)
        lease.fence(s)
        s.commit()
        run_dir = Path(run.run_dir)
    try:
        # the runs it learns from (pseudo-labeller, teacher): trained here if missing
        aux = partial(train_job, engine, runs_dir=runs_dir, device=device, data_root=data_root)
        if spec.unlabelled is not None:
            prepare_pseudo_labels(
                engine, spec, run_id, train=aux, device=device, data_root=data_root
            )
        prepare_teacher(engine, spec, run_id, train=aux)
        train(
            spec,
            run_dir,
            device=device,
            data_root=data_root,
            on_epoch=lambda rep: _on_epoch(engine, lease, run_id, run_dir, rep, spec, progress),
            progress=progress,
            stop_after=stop_after,
            runtime=runtime,
            check=lease.check,
        )
    except LeaseLost:
        raise  # the run is another worker's now: its status is theirs to write
    except BaseException as e:  # the run resumes from its last epoch when started again
        failed = not isinstance(e, KeyboardInterrupt | SystemExit)
        _set_status(engine, lease, run_id, RunStatus.FAILED if failed else RunStatus.INTERRUPTED)
        raise
    return _finish(engine, lease, run_id), True


def _set_status(engine: Engine, lease: Lease, run_id: int, status: RunStatus) -> None:
    with Session(engine) as s:
        s.get_one(Run, run_id).status = status.value
        try:
            lease.fence(s)
        except LeaseLost:
            return
        s.commit()


def _finish(engine: Engine, lease: Lease, run_id: int) -> Run:
    with Session(engine, expire_on_commit=False) as s:
        run = s.get_one(Run, run_id)
        run.status = RunStatus.DONE.value
        run.finished_at = now()
        run.train_seconds = sum(e.seconds for e in run.epochs)
        lease.fence(s)
        s.commit()
        return run

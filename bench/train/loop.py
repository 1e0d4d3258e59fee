"""The one training loop, shared by every defense.

Per epoch: the defense makes adversarial examples and computes its loss; SGD steps;
then clean and PGD-20 accuracy on the monitor set. The best (by PGD-20) and last
weights are kept. The resume state is written atomically after each epoch, and a run
started again continues after its last completed epoch. Each epoch reseeds from
(seed, epoch), so a resumed run sees the same data order and attack noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

import attacks
import defenses
from bench import data as bdata
from bench.core.constants import EVAL_BATCH, MONITOR_ATTACKS, STATE_FILE, TEACHER_FILE, seed_mix
from bench.data.unlabelled import with_pseudo_labelled
from bench.spec.run import RunSpec, build_for_spec
from bench.store.checkpoints import load_state, load_weights, save_state
from bench.train import distributed, precision
from bench.train.estimate import AFTER_BATCHES, estimate_line
from bench.train.record import EpochReport, Interrupted
from bench.train.runtime import Runtime
from bench.train.selection import (
    Points,
    measure,
    monitor_set,
    split_validation,
    write_checkpoints,
)
from bench.train.state import TrainState
from defenses.base import Defense, StepContext


def _setup(spec: RunSpec, device: str, runtime: Runtime) -> TrainState:
    precision.check(spec.precision, device)
    runtime.apply(device)
    model = distributed.prepare(build_for_spec(spec).to(device))
    defense = defenses.build(spec.defense, **spec.params())
    opt = torch.optim.SGD(
        model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=list(spec.milestones), gamma=spec.lr_gamma
    )
    scaler = precision.scaler(spec.precision, device)
    stepper = precision.step_model(runtime.model(model), spec.precision)
    return TrainState(model, defense, opt, sched, scaler=scaler, step_model=stepper)


def _training_data(
    spec: RunSpec, run_dir: Path, data_root: str | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Training images and labels (less the held-out ones); pseudo-labelled ones (if any)
    after the labelled ones."""
    x_tr, y_tr = bdata.subset(*bdata.load_split(spec.dataset, True, data_root), spec.train_subset)
    (x_tr, y_tr), _ = split_validation(spec, x_tr, y_tr)
    n_labelled = len(y_tr)
    if spec.unlabelled is not None:
        x_tr, y_tr = with_pseudo_labelled(
            spec.unlabelled, spec.n_unlabelled, spec.dataset, run_dir, x_tr, y_tr, data_root
        )
    return x_tr, y_tr, n_labelled


@dataclass(kw_only=True)
class _Job:
    """How one call trains; a follower of a process group has no callbacks and no test set."""

    spec: RunSpec
    run_dir: Path
    device: str
    runtime: Runtime
    data_root: str | None = None
    progress: bool = True
    stop_after: int | None = None
    monitor_batch: int = EVAL_BATCH
    on_epoch: Callable[[EpochReport], None] | None = None
    check: Callable[[], None] | None = None


def train(
    spec: RunSpec,
    run_dir: Path,
    *,
    device: str = "cpu",
    data_root: str | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    monitor_batch: int = EVAL_BATCH,
    runtime: Runtime | None = None,
    check: Callable[[], None] | None = None,
) -> nn.Module:
    """Train ``spec`` in ``run_dir``, resuming if a state file is there. Returns the last model.

    ``check`` is called between batches and before the epoch's files are written; it
    raises to stop (the job layer's: this worker's claim on the run was lost). In a
    process group (bench/train/distributed.py) this is rank 0, and the followers train
    the same run with it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / STATE_FILE
    state = load_state(state_path) if state_path.exists() else {}
    runtime = runtime or Runtime()
    train_set = _training_data(spec, run_dir, data_root)
    stateful = defenses.DEFENSES.get(spec.defense).state_dict is not Defense.state_dict
    distributed.check(len(train_set[1]), spec.batch_size, stateful)
    distributed.announce(
        {
            "spec": spec.to_dict(),
            "run_dir": str(run_dir),
            "data_root": data_root,
            "state": state,
            "stop_after": stop_after,
            "runtime": runtime,
        }
    )
    # Replay what was recorded before the interruption: recording is idempotent.
    for h in state.get("history", []) if on_epoch is not None else []:
        on_epoch(EpochReport(**h))
    job = _Job(
        spec=spec,
        run_dir=run_dir,
        device=distributed.device(device),
        runtime=runtime,
        data_root=data_root,
        progress=progress,
        stop_after=stop_after,
        monitor_batch=monitor_batch,
        on_epoch=on_epoch,
        check=check,
    )
    return _run(job, train_set, state)


def follow() -> None:
    """A follower rank: train each run rank 0 announces, writing nothing, until dismissed."""

    def one(msg: dict) -> None:
        spec = RunSpec.from_dict(msg["spec"])
        run_dir = Path(msg["run_dir"])
        job = _Job(
            spec=spec,
            run_dir=run_dir,
            device=distributed.device("cpu"),
            runtime=msg["runtime"],
            data_root=msg["data_root"],
            progress=False,
            stop_after=msg["stop_after"],
        )
        with contextlib.suppress(Interrupted):
            _run(job, _training_data(spec, run_dir, msg["data_root"]), msg["state"])

    distributed.serve(one)


def _run(job: _Job, train_set: tuple[torch.Tensor, torch.Tensor, int], state: dict) -> nn.Module:
    """The epochs after the resume state's: every rank trains; rank 0 ends each epoch."""
    spec, lead = job.spec, distributed.leads()
    x_tr, y_tr, n_labelled = train_set
    st = _setup(spec, job.device, job.runtime)
    if st.defense.teacher is not None:  # its copy, made by the jobs (bench/jobs/teacher.py)
        path = job.run_dir / TEACHER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no teacher weights (`bench run` trains it first)")
        st.defense.attach_teacher(load_weights(build_for_spec(spec), path).to(job.device).eval())
    if state:
        st.load(state)
    st.loss_model = distributed.wrap(st.step_model or st.model)
    x_tr, y_tr = job.runtime.data(x_tr, y_tr, job.device)
    batches = bdata.Batches(
        x_tr,
        y_tr,
        spec.batch_size,
        shuffle=True,
        seed=spec.seed,
        augment=bdata.DATASETS.get(spec.dataset).augment,
        device=job.device,
        shard=distributed.shard(),
    )
    test = _monitor_points(spec, job.data_root) if lead else None
    for epoch in range(st.done, spec.epochs):
        if job.stop_after is not None and epoch >= job.stop_after:
            distributed.finished()  # every rank stops here
            raise Interrupted(f"stopped after {job.stop_after} epoch(s)")
        t0 = time.perf_counter()
        torch.manual_seed(seed_mix(spec.seed, epoch))
        batches.set_epoch(epoch)
        lr = st.opt.param_groups[0]["lr"]
        loss = _epoch(job, st, batches, epoch, n_labelled)
        timing = (t0, time.perf_counter() - t0)
        distributed.on_lead(partial(_end_epoch, job, st, test, epoch, lr, loss, timing))
        st.done = epoch + 1
    distributed.finished()
    return st.model


def _monitor_points(spec: RunSpec, data_root: str | None) -> tuple[Points, Points | None]:
    """The monitored test points, and the held-out training images (--val-subset; the
    training split is read here only for them)."""
    if not spec.val_subset:
        return monitor_set(spec, data_root), None
    x_tr, y_tr = bdata.subset(*bdata.load_split(spec.dataset, True, data_root), spec.train_subset)
    return monitor_set(spec, data_root), split_validation(spec, x_tr, y_tr)[1]


def _end_epoch(
    job: _Job,
    st: TrainState,
    test: tuple[Points, Points | None] | None,
    epoch: int,
    lr: float,
    loss: float,
    timing: tuple[float, float],
) -> None:
    """Monitor, checkpoints, resume state and ``on_epoch`` (rank 0 alone in a group)."""
    assert test is not None
    t0, train_seconds = timing
    monitor_name = MONITOR_ATTACKS[job.spec.norm]  # PGD-20 in the run's threat model
    monitor = attacks.build(monitor_name, eps=job.spec.eps)
    how = (monitor, job.monitor_batch, job.device, job.spec.seed)
    clean, robust = measure(st.model, test[0], *how, job.progress)
    val = measure(st.model, test[1], *how) if test[1] is not None else None
    if job.check is not None:
        job.check()
    val_acc = val[1].accuracy if val else None
    write_checkpoints(job.spec, st.sel, st.model, job.run_dir, epoch, robust.accuracy, val_acc)
    report = EpochReport(
        epoch=epoch + 1,
        lr=lr,
        train_loss=loss,
        clean_acc=clean.accuracy,
        robust_acc=robust.accuracy,
        n_monitor=robust.n,
        monitor_attack={"preset": monitor_name, **monitor.params()},
        train_seconds=train_seconds,
        seconds=time.perf_counter() - t0,
        best_epoch=st.sel.best_epoch,
        best_robust=st.sel.best_robust,
        val_clean_acc=val[0].accuracy if val else None,
        val_robust_acc=val[1].accuracy if val else None,
        n_val=val[1].n if val else 0,
        best_val_epoch=st.sel.val_epoch,
    )
    st.history.append(dataclasses.asdict(report))
    st.done = epoch + 1
    save_state(st.to_file(), job.run_dir / STATE_FILE)
    if job.on_epoch is not None:
        job.on_epoch(report)


def _epoch(job: _Job, st: TrainState, batches: bdata.Batches, epoch: int, n_labelled: int) -> float:
    """One pass over the training data (this rank's shard); returns the mean training loss."""
    spec = job.spec
    st.model.train()
    total, count = 0.0, 0
    bar = tqdm(
        batches,
        desc=f"{spec.defense} epoch {epoch + 1}/{spec.epochs}",
        unit="batch",
        disable=not job.progress,
        leave=False,
    )
    model = st.step_model if st.step_model is not None else st.model
    t_first = 0.0
    for i, ((x, y, idx), span) in enumerate(zip(bar, batches.spans(), strict=True)):
        if i == 1:
            t_first = time.perf_counter()
        if i == AFTER_BATCHES and job.progress and not st.estimated:
            per_batch = (time.perf_counter() - t_first) / (AFTER_BATCHES - 1)
            left = spec.epochs - epoch
            tqdm.write(estimate_line(spec, left, per_batch, len(bar), job.device))
            st.estimated = True
        x = job.runtime.batch(x)
        unlab = (idx >= n_labelled).to(y.device) if spec.unlabelled is not None else None
        ctx = StepContext(
            epoch=epoch,
            epochs=spec.epochs,
            indices=idx,
            unlabelled=unlab,
            average=distributed.average(span),
        )
        loss = _step(job, st, model, (x, y), ctx, span)
        total += loss * len(y)
        count += len(y)
        bar.set_postfix(loss=f"{total / count:.4f}")
    st.sched.step()
    total, count = distributed.all_sum([total, count])
    return total / max(count, 1)


def _step(
    job: _Job,
    st: TrainState,
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    ctx: StepContext,
    span: distributed.Span,
) -> float:
    """One update on one batch: the defense's examples, its loss (inside whatever its
    ``around_update`` sets up, e.g. AWP's perturbed weights), one optimizer step."""
    (x, y), spec = batch, job.spec
    with precision.autocast(spec.precision, str(x.device)), distributed.draws(span):
        x_adv = st.defense.perturb(model, x, y, ctx)
        model.train()
        update = st.defense.around_update(model, x, y, x_adv, ctx)
    with update:
        with precision.autocast(spec.precision, str(x.device)), distributed.draws(span):
            loss = st.defense.loss(st.loss_model or model, x, y, x_adv, ctx)
        if not distributed.agree(job.check, math.isfinite(loss.item())):
            raise FloatingPointError(
                f"non-finite training loss at epoch {ctx.epoch + 1}: lower the learning rate "
                "or check the defense's parameters"
            )
        st.opt.zero_grad(set_to_none=True)
        assert st.scaler is not None
        st.scaler.scale(distributed.weighted(loss, span)).backward()
        st.scaler.step(st.opt)
        st.scaler.update()
    return loss.item()

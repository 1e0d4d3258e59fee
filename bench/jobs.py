"""Controllers: turn specs into work and work into database rows.

``train_job`` trains a spec unless the database says it is done (resuming an interrupted
run); ``eval_job`` attacks the stored checkpoints, skipping evaluations already stored.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from safetensors import safe_open
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from torch import Tensor, nn

import attacks
from bench import data as bdata
from bench import provenance
from bench.checkpoints import load_weights, sha256
from bench.db import Checkpoint, EpochMetric, Evaluation, Run, make_evaluation, now
from bench.evalctx import EvalContext, custom_evaluator
from bench.evaluate import robust_points
from bench.specs import RunSpec
from bench.train import EpochReport, build_for_spec, completed_epochs, train

DEFAULT_RUNS_DIR = "results/runs"
DEFAULT_ATTACKS = ("clean", "fgsm", "pgd20", "cw20")
CHECKPOINTS = ("best", "last")


def get_or_create_run(
    session: Session, spec: RunSpec, runs_dir: Path, data_root: str | None
) -> Run:
    run = session.scalars(select(Run).where(Run.key == spec.key)).first()
    if run is None:
        run = Run(
            key=spec.key,
            name=spec.name,
            defense=spec.defense,
            model=spec.model,
            dataset=spec.dataset,
            preset=spec.preset,
            spec=spec.to_dict(),
            seed=spec.seed,
            run_dir=str(runs_dir / spec.name),
            data_label=bdata.describe(spec.dataset, data_root),
            status="created",
        )
        session.add(run)
        session.commit()
    return run


def _record_epoch(engine: Engine, run_id: int, run_dir: Path, rep: EpochReport) -> None:
    with Session(engine) as s:
        row = s.scalars(
            select(EpochMetric).where(EpochMetric.run_id == run_id, EpochMetric.epoch == rep.epoch)
        ).first() or EpochMetric(run_id=run_id, epoch=rep.epoch)
        row.lr, row.train_loss, row.seconds = rep.lr, rep.train_loss, rep.seconds
        row.clean_acc, row.robust_acc, row.n_monitor = rep.clean_acc, rep.robust_acc, rep.n_monitor
        row.monitor_attack = rep.monitor_attack
        s.add(row)
        run = s.get_one(Run, run_id)
        run.epochs_done = max(run.epochs_done, rep.epoch)
        _sync_checkpoints(s, run, run_dir)
        s.commit()


def _sync_checkpoints(session: Session, run: Run, run_dir: Path) -> None:
    """Checkpoint rows mirror the files (their metadata names epoch and PGD-20 accuracy)."""
    for tag in ("best", "last"):
        path = run_dir / f"{tag}.safetensors"
        if not path.exists():
            continue
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        row = session.scalars(
            select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.tag == tag)
        ).first() or Checkpoint(run_id=run.id, tag=tag)
        row.epoch, row.path, row.sha256 = int(meta["epoch"]), str(path), sha256(path)
        row.robust_acc = float(meta["robust_acc"])
        session.add(row)


def train_job(
    engine: Engine,
    spec: RunSpec,
    *,
    runs_dir: Path = Path(DEFAULT_RUNS_DIR),
    device: str = "cpu",
    data_root: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[Run, bool]:
    """Train ``spec`` unless done; returns the run and whether any training happened."""
    with Session(engine, expire_on_commit=False) as s:
        run = get_or_create_run(s, spec, runs_dir, data_root)
        if run.status == "done":
            return run, False
        done = completed_epochs(Path(run.run_dir))
        if done:
            print(f"resuming {run.name} after epoch {done}/{spec.epochs}", file=sys.stderr)
        run.status = "running"
        run.provenance = provenance.collect(device)
        x_tr, _ = bdata.load_split(spec.dataset, True, data_root)
        run.n_train = len(bdata.subset(x_tr, x_tr, spec.train_subset)[1])
        s.commit()
        run_id, run_dir = run.id, Path(run.run_dir)
    try:
        if spec.unlabelled is not None:  # train the labeller if missing; write pseudo-labels
            from bench.semi import prepare_pseudo_labels

            prepare_pseudo_labels(
                engine, spec, run_id, runs_dir=runs_dir, device=device, data_root=data_root
            )
        train(
            spec,
            run_dir,
            device=device,
            data_root=data_root,
            on_epoch=lambda rep: _record_epoch(engine, run_id, run_dir, rep),
            progress=progress,
            stop_after=stop_after,
        )
    except BaseException:
        with Session(engine) as s:
            s.get_one(Run, run_id).status = "interrupted"
            s.commit()
        raise
    with Session(engine, expire_on_commit=False) as s:
        run = s.get_one(Run, run_id)
        run.status = "done"
        run.finished_at = now()
        run.train_seconds = sum(e.seconds for e in run.epochs)
        s.commit()
        return run, True


def eval_key(run: Run, ckpt: Checkpoint, attack: str, params: dict, n: int, seed: int) -> str:
    blob = json.dumps(
        [run.key, ckpt.tag, ckpt.sha256, attack, params, n, seed], sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def attack_checkpoint(
    session: Session,
    run: Run,
    ckpt: Checkpoint,
    name: str,
    x: Tensor,
    y: Tensor,
    get_model: Callable[[], nn.Module],
    *,
    eps: float,
    dataset: str,
    data_label: str,
    batch_size: int,
    seed: int,
    device: str,
    progress: bool,
) -> Evaluation:
    """One attack preset (or clean) on one checkpoint: the stored row if these exact settings
    were evaluated before, else a new one. ``get_model`` is only called when work is needed."""
    preset = attacks.PRESETS.get(name)
    atk = None if preset.attack == "none" else attacks.build(name, eps=eps)
    params = {"preset": name, "eps": eps} if atk is None else atk.params()
    params["batch_size"] = batch_size
    key = eval_key(run, ckpt, name, params, len(y), seed)
    done = session.scalars(select(Evaluation).where(Evaluation.key == key)).first()
    if done is not None:
        return done
    res = robust_points(
        get_model(),
        x,
        y,
        atk,
        batch_size=batch_size,
        device=device,
        seed=seed,
        desc=f"{run.name}/{ckpt.tag}/{name}",
        progress=progress,
    )
    ev = make_evaluation(
        key=key,
        checkpoint=ckpt,
        attack=name,
        attack_params=params,
        dataset=dataset,
        data_label=data_label,
        robust=res.robust,
        seconds=res.seconds,
        seed=seed,
        device=provenance.device_name(device),
    )
    session.add(ev)
    session.commit()
    return ev


def eval_job(
    engine: Engine,
    run_name: str,
    *,
    attack_names: Iterable[str] = DEFAULT_ATTACKS,
    checkpoints: Iterable[str] = CHECKPOINTS,
    test_subset: int | None = None,
    eps: float | None = None,
    device: str = "cpu",
    data_root: str | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
    attack_options: dict | None = None,
) -> list[Evaluation]:
    """Evaluate a run's checkpoints; evaluations already in the database are not redone.

    ``attack_options`` go to the protocols that are more than one attack loop (AutoAttack,
    transfer; see bench/evalctx.py), e.g. cheaper AutoAttack settings or the surrogate.
    """
    out: list[Evaluation] = []
    with Session(engine, expire_on_commit=False) as s:
        run = s.scalars(select(Run).where((Run.name == run_name) | (Run.key == run_name))).first()
        if run is None:
            raise LookupError(f"no run named {run_name!r} in the database (see `bench ls runs`)")
        spec = RunSpec.from_dict(run.spec)
        n_req = test_subset if test_subset is not None else spec.test_subset
        x, y = bdata.subset(*bdata.load_split(spec.dataset, False, data_root), n_req)
        eps = spec.eps if eps is None else eps
        label = bdata.describe(spec.dataset, data_root)
        ckpts = {c.tag: c for c in run.checkpoints}
        for tag in checkpoints:
            if tag not in ckpts:
                raise LookupError(f"run {run.name} has no {tag!r} checkpoint (is it trained?)")
            ckpt = ckpts[tag]
            if sha256(Path(ckpt.path)) != ckpt.sha256:
                raise RuntimeError(f"checkpoint {ckpt.path} changed since it was recorded")
            get_model = functools.cache(
                lambda c=ckpt: load_weights(build_for_spec(spec), Path(c.path)).to(device)
            )
            for name in attack_names:
                evaluator = custom_evaluator(name)
                if evaluator is not None:  # AutoAttack chaining, transfer surrogates
                    ctx = EvalContext(
                        s,
                        run,
                        ckpt,
                        spec,
                        x,
                        y,
                        eps,
                        get_model,
                        batch_size,
                        seed,
                        device,
                        data_root,
                        label,
                        progress,
                        dict(attack_options or {}),
                    )
                    out.append(evaluator(ctx, name))
                    continue
                out.append(
                    attack_checkpoint(
                        s,
                        run,
                        ckpt,
                        name,
                        x,
                        y,
                        get_model,
                        eps=eps,
                        dataset=spec.dataset,
                        data_label=label,
                        batch_size=batch_size,
                        seed=seed,
                        device=device,
                        progress=progress,
                    )
                )
        run_name = run.name
    # Refresh the gradient-masking audit from what is now stored (bench/audit.py).
    from bench.audit import audit_runs

    audit_runs(engine, [run_name], data_root=data_root, device=device)
    return out

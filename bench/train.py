"""The one training loop, shared by every defense.

Per epoch: the defense makes adversarial examples and computes its loss; SGD steps;
then clean and PGD-20 accuracy on the monitor set. The best (by PGD-20) and last
weights are kept. The resume state is written atomically after each epoch, and a run
started again continues after its last completed epoch. Each epoch reseeds from
(seed, epoch), so a resumed run sees the same data order and attack noise.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

import attacks
import defenses
from bench import data as bdata
from bench.checkpoints import load_state, save_state, save_weights
from bench.evaluate import robust_points
from bench.models import build_model
from bench.specs import MONITOR_ATTACK, RunSpec
from defenses.base import StepContext

STATE_FILE = "state.pt"


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based count of completed epochs
    lr: float
    train_loss: float
    clean_acc: float
    robust_acc: float
    n_monitor: int
    monitor_attack: dict
    train_seconds: float  # the optimisation loop alone
    seconds: float  # including the monitor evaluation and checkpointing
    best_epoch: int
    best_robust: float


class Interrupted(RuntimeError):
    """Raised by ``stop_after`` in tests to simulate a killed run."""


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def completed_epochs(run_dir: Path) -> int:
    """Epochs a run directory has finished (0 when it has no resume state)."""
    path = run_dir / STATE_FILE
    return int(load_state(path)["epoch"]) if path.exists() else 0


def build_for_spec(spec: RunSpec) -> nn.Module:
    info = bdata.DATASETS.get(spec.dataset)
    torch.manual_seed(spec.seed)
    return build_model(spec.model, num_classes=info.num_classes, in_channels=info.shape[0])


def train(
    spec: RunSpec,
    run_dir: Path,
    *,
    device: str = "cpu",
    data_root: str | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    monitor_batch: int = 256,
) -> nn.Module:
    """Train ``spec`` in ``run_dir``, resuming if a state file is there. Returns the last model."""
    run_dir.mkdir(parents=True, exist_ok=True)
    info = bdata.DATASETS.get(spec.dataset)
    x_tr, y_tr = bdata.subset(*bdata.load_split(spec.dataset, True, data_root), spec.train_subset)
    x_te, y_te = bdata.subset(*bdata.load_split(spec.dataset, False, data_root), spec.test_subset)
    n_labelled = len(y_tr)
    if spec.unlabelled is not None:  # pseudo-labelled images follow the labelled ones
        from bench.semi import with_pseudo_labelled

        x_tr, y_tr = with_pseudo_labelled(spec, run_dir, x_tr, y_tr, data_root)

    model = build_for_spec(spec).to(device)
    defense = defenses.build(spec.defense, **spec.params())
    opt = torch.optim.SGD(
        model.parameters(),
        lr=spec.lr,
        momentum=spec.momentum,
        weight_decay=spec.weight_decay,
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=list(spec.milestones), gamma=spec.lr_gamma
    )
    monitor = attacks.build(MONITOR_ATTACK, eps=spec.eps)
    done, best_robust, best_epoch = 0, -1.0, 0
    history: list[dict] = []
    state_path = run_dir / STATE_FILE
    if state_path.exists():
        state = load_state(state_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        done, best_robust, best_epoch = state["epoch"], state["best_robust"], state["best_epoch"]
        history = state["history"]
        defense.load_state_dict(state.get("defense", {}))
        # Replay what was recorded before the interruption: recording is idempotent.
        for h in history:
            if on_epoch is not None:
                on_epoch(EpochReport(**h))

    batches = bdata.Batches(
        x_tr,
        y_tr,
        batch_size=spec.batch_size,
        shuffle=True,
        seed=spec.seed,
        augment=info.augment,
        device=device,
    )
    for epoch in range(done, spec.epochs):
        if stop_after is not None and epoch >= stop_after:
            raise Interrupted(f"stopped after {stop_after} epoch(s)")
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(spec.seed, epoch))
        batches.set_epoch(epoch)
        lr = opt.param_groups[0]["lr"]
        model.train()
        total, count = 0.0, 0
        bar = tqdm(
            batches,
            desc=f"{spec.defense} epoch {epoch + 1}/{spec.epochs}",
            unit="batch",
            disable=not progress,
            leave=False,
        )
        for x, y, idx in bar:
            unlab = (idx >= n_labelled).to(y.device) if spec.unlabelled is not None else None
            ctx = StepContext(epoch=epoch, epochs=spec.epochs, indices=idx, unlabelled=unlab)
            x_adv = defense.perturb(model, x, y, ctx)
            model.train()
            loss = defense.loss(model, x, y, x_adv, ctx)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            count += len(y)
            bar.set_postfix(loss=f"{total / count:.4f}")
        sched.step()
        train_seconds = time.perf_counter() - t0

        clean = robust_points(model, x_te, y_te, None, batch_size=monitor_batch, device=device)
        robust = robust_points(
            model, x_te, y_te, monitor, batch_size=monitor_batch, device=device, seed=spec.seed
        )
        targets = [run_dir / "last.safetensors"]
        if robust.accuracy > best_robust:
            best_robust, best_epoch = robust.accuracy, epoch + 1
            targets.append(run_dir / "best.safetensors")
        meta = {"run": spec.name, "epoch": str(epoch + 1), "robust_acc": repr(robust.accuracy)}
        for path in targets:
            save_weights(model, path, meta)
        report = EpochReport(
            epoch=epoch + 1,
            lr=lr,
            train_loss=total / max(count, 1),
            clean_acc=clean.accuracy,
            robust_acc=robust.accuracy,
            n_monitor=robust.n,
            monitor_attack={"preset": MONITOR_ATTACK, **monitor.params()},
            train_seconds=train_seconds,
            seconds=time.perf_counter() - t0,
            best_epoch=best_epoch,
            best_robust=best_robust,
        )
        history.append(dataclasses.asdict(report))
        save_state(
            {
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "best_robust": best_robust,
                "best_epoch": best_epoch,
                "history": history,
                "defense": defense.state_dict(),
            },
            state_path,
        )
        if on_epoch is not None:
            on_epoch(report)
    return model

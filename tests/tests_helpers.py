"""Small builders shared by tests (not a package named `tests`: robustbench owns that)."""

from __future__ import annotations

import torch
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from torch import nn

from bench.spec.experiments import Job
from bench.store import db as bdb


def binary_linear(dim: int, seed: int) -> tuple[nn.Module, torch.Tensor]:
    """A 2-class linear model and ``w_1 - w_0``, the direction that flips class 0 to 1."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(dim, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, dim, generator=g))
        model.bias.zero_()
    return model.eval(), (model.weight[1] - model.weight[0]).detach()


def synthetic_curves(engine: Engine, jobs: list[Job]) -> None:
    """Finished runs of ``jobs`` and 3 epochs of metrics each, written straight into the DB
    (no training needed): enough for the figures drawn from the per-epoch monitor."""
    with Session(engine) as s:
        for i, job in enumerate(j for j in jobs if j.role == "run"):
            run = bdb.Run(
                key=job.spec.key,
                name=job.spec.name,
                defense=job.spec.defense,
                model=job.spec.model,
                dataset=job.spec.dataset,
                preset=job.spec.preset,
                spec=job.spec.to_dict(),
                seed=0,
                run_dir="x",
                status="done",
                n_train=128,
                data_label="mnist: 17,000 train / 10,000 test images (partial copy)",
            )
            s.add(run)
            s.flush()
            for e in range(1, 4):
                s.add(
                    bdb.EpochMetric(
                        run_id=run.id,
                        epoch=e,
                        lr=0.1,
                        train_loss=1.0,
                        clean_acc=0.9,
                        robust_acc=0.1 * e + 0.01 * i,
                        n_monitor=32,
                        seconds=1.0,
                        monitor_attack={"preset": "pgd20", "eps": 0.3, "step_size": 0.03},
                    )
                )
        s.commit()

"""A distilled run's teacher: trained first, copied into the student's folder, recorded.

The teacher's spec comes from bench/spec/auxiliary.py (``teacher_spec``); the training
loop reads the copy (``TEACHER_FILE``) and hands it to the defense (defenses/distillation.py).
The copy keeps the student's folder self-contained (a resumed or ``--nproc`` run reads it
there) and its sha256 goes into the student's provenance beside the teacher's run name.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.core.constants import TEACHER_CHECKPOINT, TEACHER_FILE
from bench.spec.auxiliary import teacher_spec
from bench.spec.run import RunSpec
from bench.store.checkpoints import sha256, verified
from bench.store.db import Run

TrainFn = Callable[..., tuple[Run, bool]]  # (spec, progress=...) -> (run, trained)


def prepare_teacher(
    engine: Engine, spec: RunSpec, run_id: int, *, train: TrainFn
) -> dict[str, Any] | None:
    """Train the teacher if missing (``train``: the caller's training job), copy its
    ``last`` weights into the run's folder once, and record them; None without a teacher."""
    teacher = teacher_spec(spec)
    if teacher is None:
        return None
    with Session(engine) as s:
        run_dir = Path(s.get_one(Run, run_id).run_dir)
    t_run, _ = train(teacher, progress=False)
    with Session(engine) as s:
        t = s.get_one(Run, t_run.id)
        ckpt = next(c for c in t.checkpoints if c.tag == TEACHER_CHECKPOINT)
        source = verified(Path(ckpt.path), ckpt.sha256, f"checkpoint of teacher {t.name}")
        record = {"run": t.name, "checkpoint": ckpt.tag, "epoch": ckpt.epoch}
        record["sha256"] = ckpt.sha256
    copy = run_dir / TEACHER_FILE
    if not copy.exists() or sha256(copy) != record["sha256"]:
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy.with_name(copy.name + ".tmp"))
        copy.with_name(copy.name + ".tmp").replace(copy)
    with Session(engine) as s:
        run = s.get_one(Run, run_id)
        run.provenance = {**(run.provenance or {}), "teacher": record}
        s.commit()
    return record

"""The layers a command needs only while it runs, imported when it first uses them.

The command modules declare every command and option at import (so ``bench --help`` and
``bench CMD --help`` are complete) and import directly only what loads without PyTorch:
the registries, specs, database and report layers. What trains, attacks or touches a
device is reached through these names, which import their module on the first attribute
looked up (``bench.core.lazy.LazyModule``): ``bench ls``, ``table``, ``show`` and ``rm``
never do, and start without PyTorch. This is the only place the command line defers an
import; ``tests/test_startup.py`` checks that each name resolves and that the commands
that need no tensors import none of these modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.core.lazy import LazyModule

if TYPE_CHECKING:  # what the names stand for (the layers contract sees these imports)
    from bench import executors, jobs
    from bench.core import provenance
    from bench.eval import audit
    from bench.jobs import checklist as checklist_jobs
    from bench.jobs import experiments as experiment_jobs
    from bench.jobs import external as external_jobs
    from bench.jobs import regress as regress_jobs
    from bench.jobs import regress_train as regress_train_jobs
    from bench.jobs import sweep as sweep_jobs
    from bench.jobs import transformed as transformed_jobs
    from bench.jobs import zoo as zoo_jobs
    from bench.models import external as model_external
    from bench.models import zoo as model_zoo
    from bench.train import loop as train_loop
    from bench.train import precision as train_precision
    from bench.train import processes as train_processes
    from bench.train import runtime as train_runtime
else:
    executors = LazyModule("bench.executors")  # placing jobs on local workers, SLURM, Ray
    jobs = LazyModule("bench.jobs")  # train_job, eval_job
    provenance = LazyModule("bench.core.provenance")  # check_device
    audit = LazyModule("bench.eval.audit")  # recomputing the gradient-masking audit
    experiment_jobs = LazyModule("bench.jobs.experiments")
    regress_jobs = LazyModule("bench.jobs.regress")
    regress_train_jobs = LazyModule("bench.jobs.regress_train")
    zoo_jobs = LazyModule("bench.jobs.zoo")
    external_jobs = LazyModule("bench.jobs.external")  # --model-def: a user's own model
    model_external = LazyModule("bench.models.external")  # ModelDef
    checklist_jobs = LazyModule("bench.jobs.checklist")  # bench audit --adaptive
    sweep_jobs = LazyModule("bench.jobs.sweep")  # bench sweep: the eps sweep
    transformed_jobs = LazyModule("bench.jobs.transformed")  # --transform: the defended run
    model_zoo = LazyModule("bench.models.zoo")  # RobustBench entries and their files
    train_runtime = LazyModule("bench.train.runtime")  # Runtime: memory format, threads
    train_processes = LazyModule("bench.train.processes")  # --nproc: the group's processes
    train_loop = LazyModule("bench.train.loop")  # follow: what ranks 1.. of a group run
    train_precision = LazyModule("bench.train.precision")  # auto: bf16 where it is fast

__all__ = [
    "audit",
    "checklist_jobs",
    "executors",
    "experiment_jobs",
    "external_jobs",
    "jobs",
    "model_external",
    "model_zoo",
    "provenance",
    "regress_jobs",
    "regress_train_jobs",
    "sweep_jobs",
    "train_loop",
    "train_precision",
    "train_processes",
    "train_runtime",
    "transformed_jobs",
    "zoo_jobs",
]

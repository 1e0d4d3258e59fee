"""Fault soak (prints figures; not a test): many `bench experiment` workers on one
database, one killed with SIGKILL every ``--kill-every`` seconds and replaced, then checked
against a sequential run of the same grid (one worker, no kills, SQLite).

The grid is table2-mnist on tiny-cnn: ``--defenses`` x ``--seeds`` jobs, each trained for
``--epochs`` on the first ``--train-subset`` MNIST training images (inner PGD
``--train-steps`` steps) and evaluated with clean, FGSM, PGD-20 and CW-inf on the first
``--test-subset`` test images, best and last checkpoints; every process uses one thread,
so the numbers are deterministic. MNIST comes from BENCH_DATA_ROOT.

Figures: jobs, kills, runs not done, epochs duplicated/missing, evaluations duplicated/
missing, runs whose numbers differ from the sequential run's, "database is locked"
messages, tracebacks, wall time of the soak and of the sequential run, load average.

Usage: python benchmarks/soak.py [--db sqlite|postgres|URL] [--workers 3]
       [--kill-every 20] [--seeds 2] [--epochs 2] [--train-subset 256] [--test-subset 64]
``--db postgres`` starts a throwaway PostgreSQL server (tests/pgserver.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# The soak driver and the throwaway PostgreSQL server are test helpers (tests/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pgserver
import soaklib


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", default="sqlite", help="sqlite, postgres, or a database URL")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--kill-every", type=float, default=20.0, help="mean seconds between kills")
    ap.add_argument("--lease", type=float, default=10.0, help="BENCH_LEASE_SECONDS of workers")
    ap.add_argument("--defenses", default="standard,mma,dynamic,trades,mart")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-subset", type=int, default=256)
    ap.add_argument("--test-subset", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    ap.add_argument("--keep", type=Path, help="keep the databases and logs in this folder")
    return ap.parse_args()


def main() -> None:
    args = _args()
    grid = soaklib.Grid(
        defenses=tuple(args.defenses.split(",")),
        seeds=tuple(range(args.seeds)),
        epochs=args.epochs,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        train_steps=args.train_steps,
    )
    print(f"load average at start: {os.getloadavg()}")
    server = pgserver.Server().start() if args.db == "postgres" else None
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        reference = str(root / "reference.sqlite")
        seq_wall = soaklib.sequential(grid, reference, root / "sequential")
        if server is not None:
            db = server.create_database()
        else:
            db = str(root / "soak.sqlite") if args.db == "sqlite" else args.db
        kill = (0.5 * args.kill_every, 1.5 * args.kill_every)
        try:
            result = soaklib.soak(
                grid,
                db,
                root / "soak",
                workers=args.workers,
                kill_every=kill,
                lease=args.lease,
                seed=args.seed,
            )
            figures = soaklib.verify(db, reference, grid, result.logs)
        finally:
            if server is not None:
                server.stop()
    backend = "PostgreSQL" if args.db == "postgres" or "postgres" in args.db else "SQLite"
    print(f"backend: {backend}; {args.workers} workers; a kill every {kill[0]:.0f}-{kill[1]:.0f} s")
    print(
        f"grid: {grid.jobs} jobs ({args.defenses} x seeds 0..{args.seeds - 1}), tiny-cnn, "
        f"MNIST first {args.train_subset} train / {args.test_subset} test images, "
        f"{args.epochs} epochs, 4 attacks x best/last"
    )
    print(
        f"kills: {result.kills}; workers started: {len(result.logs)}; "
        f"workers failed: {len(result.failures)}"
    )
    print(f"reads by a polling reader: {result.reads}, failed: {len(result.read_errors)}")
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"wall time: soak {result.wall:.1f} s vs sequential (1 worker) {seq_wall:.1f} s")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

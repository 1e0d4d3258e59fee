"""Baseline: the schema of the results database before migrations existed.

A new database gets these tables. A database made by an earlier bench (tables, but no
``alembic_version``) keeps its rows: only missing tables are created and missing nullable
columns added (an older one lacks e.g. ``evaluations.provenance``), then it is stamped.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

META = sa.MetaData()


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True)


def _run_id() -> sa.Column:
    return sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False, index=True)


def _cols(*spec: tuple[str, sa.types.TypeEngine]) -> list[sa.Column]:
    """Non-null columns; a name ending in ``?`` is nullable."""
    return [sa.Column(n.rstrip("?"), t, nullable=n.endswith("?")) for n, t in spec]


S, N, F, J, D = sa.String, sa.Integer(), sa.Float(), sa.JSON(), sa.DateTime()

sa.Table(
    "runs",
    META,
    _id(),
    *_cols(("key", S(64)), ("name", S(200))),
    sa.Column("defense", S(64), nullable=False, index=True),
    sa.Column("model", S(64), nullable=False),
    sa.Column("dataset", S(64), nullable=False, index=True),
    *_cols(
        ("preset", S(64)),
        ("spec", J),
        ("status", S(16)),
        ("seed", N),
        ("epochs_done", N),
        ("run_dir", S(500)),
        ("data_label", S(300)),
        ("n_train?", N),
        ("provenance", J),
        ("created_at", D),
        ("finished_at?", D),
        ("train_seconds", F),
    ),
    sa.UniqueConstraint("key"),
    sa.UniqueConstraint("name"),
)
sa.Table(
    "epoch_metrics",
    META,
    _id(),
    _run_id(),
    *_cols(
        ("epoch", N),
        ("lr", F),
        ("train_loss", F),
        ("clean_acc", F),
        ("robust_acc", F),
        ("n_monitor", N),
        ("monitor_attack", J),
        ("seconds", F),
    ),
    sa.UniqueConstraint("run_id", "epoch"),
)
sa.Table(
    "checkpoints",
    META,
    _id(),
    _run_id(),
    *_cols(("tag", S(16)), ("epoch", N), ("path", S(500)), ("sha256", S(64)), ("robust_acc", F)),
    sa.UniqueConstraint("run_id", "tag"),
)
sa.Table(
    "evaluations",
    META,
    _id(),
    sa.Column("key", S(64), nullable=False),
    _run_id(),
    *_cols(("checkpoint", S(16)), ("checkpoint_epoch", N), ("checkpoint_sha256", S(64))),
    sa.Column("attack", S(64), nullable=False, index=True),
    *_cols(
        ("attack_params", J),
        ("dataset", S(64)),
        ("data_label", S(300)),
        ("n", N),
        ("correct", N),
        ("accuracy", F),
        ("seconds", F),
        ("seed", N),
        ("device", S(64)),
        ("provenance?", J),
        ("robust_mask", sa.LargeBinary()),
        ("created_at", D),
    ),
    sa.UniqueConstraint("key"),
)
sa.Table(
    "audit_flags",
    META,
    _id(),
    _run_id(),
    *_cols(
        ("checkpoint", S(16)),
        ("checkpoint_sha256", S(64)),
        ("check", S(64)),
        ("status", S(16)),
        ("n", N),
        ("value?", F),
        ("detail", S(2000)),
        ("created_at", D),
    ),
    sa.UniqueConstraint("run_id", "checkpoint", "check"),
)


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    have = set(insp.get_table_names())
    for table in META.sorted_tables:
        if table.name not in have:
            table.create(bind)
            continue
        cols = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name not in cols and col.nullable:
                op.add_column(table.name, sa.Column(col.name, col.type, nullable=True))


def downgrade() -> None:
    for table in reversed(META.sorted_tables):
        op.drop_table(table.name)

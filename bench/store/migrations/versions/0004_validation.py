"""Held-out validation (``--val-subset``): per-epoch accuracy on the held-out training images.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (("val_clean_acc", sa.Float()), ("val_robust_acc", sa.Float()), ("n_val", sa.Integer()))


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("epoch_metrics")}
    for name, kind in COLUMNS:
        if name not in have:  # an adopted database may have them already
            op.add_column("epoch_metrics", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("epoch_metrics", name)

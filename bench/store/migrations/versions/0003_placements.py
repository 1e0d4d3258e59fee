"""Placements: where an executor placed a job (bench/executors, bench/store/placements.py).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database whose alembic_version was lost but which has this table already is
    # adopted as it is (the baseline adds what is missing; nothing is created twice).
    if "placements" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "placements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_key", sa.String(64), nullable=False),
        sa.Column("job_name", sa.String(200), nullable=False),
        sa.Column("executor", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("location", sa.String(500), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_placements_job_key", "placements", ["job_key"])


def downgrade() -> None:
    op.drop_index("ix_placements_job_key", table_name="placements")
    op.drop_table("placements")

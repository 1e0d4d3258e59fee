"""Claims: which worker is working on a run or an evaluation (bench/store/claims.py).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database whose alembic_version was lost but which has this table already is
    # adopted as it is (the baseline adds what is missing; nothing is created twice).
    if "claims" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "claims",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("claims")

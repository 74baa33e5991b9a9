"""kb_index_workers: where each service worker's search index stands (knowledge/index_status.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 16:21:32.291947
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_index_workers",
        sa.Column("worker", sa.String(length=120), nullable=False),
        sa.Column("audit_seen", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("oldest_pending_at", sa.Float(), nullable=True),
        sa.Column("heartbeat", sa.Float(), nullable=False),
        sa.Column("started", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("worker"),
    )


def downgrade() -> None:
    op.drop_table("kb_index_workers")

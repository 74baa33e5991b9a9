"""Privacy (issue 15): the citizen's own texts while a chat is live, digests of the identifiers they wrote,
the transcript access log, and the call-back consent's time on each ticket.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_originals",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index("ix_message_originals_conversation", "message_originals", ["conversation_id"])
    op.create_table(
        "personal_references",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_personal_references_digest", "personal_references", ["digest"])
    op.create_index("ix_personal_references_conversation", "personal_references", ["conversation_id"])
    op.create_table(
        "transcript_access",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("municipality", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_transcript_access_conversation", "transcript_access", ["conversation_id", "at"])
    op.create_index("ix_transcript_access_municipality", "transcript_access", ["municipality", "at"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("consent_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("consent_at")
    op.drop_table("transcript_access")
    op.drop_table("personal_references")
    op.drop_table("message_originals")

"""Owners and freshness (issue 19, points 2 and 3): departments, who owns entries and topics, the owners'
work list, the link check's results and the claims that keep periodic jobs to one process
(learning/owners.py, learning/worklist.py, learning/links.py, learning/claims.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "learning_jobs",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "departments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("municipality", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contacts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("municipality", "name", name="uq_departments_name"),
    )
    op.create_table(
        "content_owners",
        sa.Column("municipality", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(length=100), nullable=True),
        sa.Column("set_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"]),
        sa.PrimaryKeyConstraint("municipality", "kind", "key"),
    )
    op.create_index("ix_content_owners_department", "content_owners", ["department_id"])
    op.create_table(
        "work_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("municipality", sa.String(length=64), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("routed_via", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("entry_id", sa.String(length=128), nullable=True),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("municipality", "source_key", name="uq_work_items_source"),
    )
    op.create_index("ix_work_items_list", "work_items", ["municipality", "department_id", "status"])
    op.create_index("ix_work_items_created", "work_items", ["municipality", "created_at"])
    op.create_table(
        "link_checks",
        sa.Column("municipality", sa.String(length=64), nullable=False),
        sa.Column("url_key", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=False),
        sa.Column("ok_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("municipality", "url_key"),
    )


def downgrade() -> None:
    op.drop_table("link_checks")
    op.drop_index("ix_work_items_created", table_name="work_items")
    op.drop_index("ix_work_items_list", table_name="work_items")
    op.drop_table("work_items")
    op.drop_index("ix_content_owners_department", table_name="content_owners")
    op.drop_table("content_owners")
    op.drop_table("departments")
    op.drop_table("learning_jobs")

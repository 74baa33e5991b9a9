"""A work item's history: every change a person made to its status or department, with who and when.

The contact centre reads it to see that something happened to a citizen's feedback, and in what order
(new -> in progress -> done). Rows hold statuses, department ids, a staff member's username and times only:
no citizen text, so there is nothing to mask. A row carries its item's conversation id, so retention and
erasure (kommunchatt/retention.py, every table with a conversation_id) take the history with the item;
deleting an item deletes its history (ON DELETE CASCADE) as well.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Column, Connection, Float, ForeignKey, Index, Integer, String, Table, insert, select

from core.db import metadata
from learning.owners import departments

work_item_history = Table(
    "work_item_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("work_items.id", ondelete="CASCADE"), nullable=False),
    Column("municipality", String(64), nullable=False),
    Column("conversation_id", String(64)),  # the item's: erased with it
    Column("previous_status", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("previous_department_id", Integer),  # set only when the item was handed to another department
    Column("department_id", Integer),
    Column("changed_by", String(100), nullable=False),
    Column("changed_at", Float, nullable=False),
    Index("ix_work_item_history_item", "item_id", "changed_at"),
)


def record(conn: Connection, before, status: str | None, department_id: int | None, actor: str, at: float) -> bool:
    """Keep one change of the item `before` (its row as it was); returns False when nothing changed."""
    new_status = status if status is not None else before.status
    moved = department_id is not None and department_id != before.department_id
    if new_status == before.status and not moved:
        return False
    conn.execute(
        insert(work_item_history).values(
            item_id=before.id,
            municipality=before.municipality,
            conversation_id=before.conversation_id,
            previous_status=before.status,
            status=new_status,
            previous_department_id=before.department_id if moved else None,
            department_id=department_id if moved else None,
            changed_by=actor[:100],
            changed_at=at,
        )
    )
    return True


def of_items(conn: Connection, municipality: str, item_ids: list[int]) -> dict[int, list[dict]]:
    """Each item's changes, oldest first (items without any have an empty list)."""
    out: dict[int, list[dict]] = defaultdict(list)
    h, d = work_item_history, departments
    for start in range(0, len(item_ids), 500):
        rows = conn.execute(
            select(h, d.c.name.label("department"))
            .outerjoin(d, d.c.id == h.c.department_id)
            .where(h.c.municipality == municipality, h.c.item_id.in_(item_ids[start : start + 500]))
            .order_by(h.c.changed_at, h.c.id)
        )
        for row in rows:
            out[row.item_id].append(
                {
                    "previous_status": row.previous_status,
                    "status": row.status,
                    "previous_department_id": row.previous_department_id,
                    "department_id": row.department_id,
                    "department": row.department if row.department_id else None,
                    "changed_by": row.changed_by,
                    "changed_at": row.changed_at,
                }
            )
    return {i: out.get(i, []) for i in item_ids}

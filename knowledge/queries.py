"""Questions other packages ask about the knowledge base inside their own transaction.

Plain functions over the caller's `Connection` (its transaction and snapshot are kept), returning plain
values, so that learning/ (owners: which entries exist, their tags) need not build SQL on
`knowledge.tables`. Whole entries are read through `knowledge.store.KnowledgeStore`.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, select

from knowledge.tables import kb_entries


def entry_exists(conn: Connection, municipality: str, entry_id: str) -> bool:
    query = select(kb_entries.c.id).where(kb_entries.c.municipality == municipality, kb_entries.c.id == entry_id)
    return conn.execute(query).first() is not None


def entry_tags(conn: Connection, municipality: str, entry_ids: Collection[str] | None = None) -> dict[str, list[str]]:
    """{entry id: its tags, in order} of the municipality's entries (of those of `entry_ids` that exist)."""
    query = select(kb_entries.c.id, kb_entries.c.data).where(kb_entries.c.municipality == municipality)
    if entry_ids is not None:
        query = query.where(kb_entries.c.id.in_(entry_ids))
    return {r.id: list((r.data or {}).get("tags") or []) for r in conn.execute(query)}

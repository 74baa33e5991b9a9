"""The knowledge base in the database: entries per municipality, every change audited."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Engine, and_, delete, func, insert, select, update

from knowledge.entries import Entry
from knowledge.kbfile import parse_entry
from kommunchatt.db import kb_audit, kb_entries


def _to_entry(municipality: str, data: dict) -> Entry:
    """Stored rows hold the public file format; reading them back reuses its parser."""
    return parse_entry(data, municipality)


class KnowledgeStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def all(self, municipality: str | None = None) -> list[Entry]:
        query = select(kb_entries.c.municipality, kb_entries.c.data)
        query = query.order_by(kb_entries.c.municipality, kb_entries.c.id)
        if municipality:
            query = query.where(kb_entries.c.municipality == municipality)
        with self.engine.connect() as conn:
            return [_to_entry(m, d) for m, d in conn.execute(query)]

    def get(self, municipality: str, entry_id: str) -> Entry | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(kb_entries.c.data).where(self._key(municipality, entry_id))).first()
        return _to_entry(municipality, row.data) if row else None

    def upsert(self, entry: Entry, actor: str | None = None) -> str:
        """Create or replace one entry; returns 'create' or 'update'."""
        with self.engine.begin() as conn:
            return self._upsert(conn, entry, actor)

    def delete(self, municipality: str, entry_id: str, actor: str | None = None) -> bool:
        with self.engine.begin() as conn:
            row = conn.execute(select(kb_entries.c.data).where(self._key(municipality, entry_id))).first()
            if not row:
                return False
            conn.execute(delete(kb_entries).where(self._key(municipality, entry_id)))
            conn.execute(
                insert(kb_audit).values(
                    municipality=municipality, entry_id=entry_id, action="delete", actor=actor, at=time.time(),
                    before=row.data, after=None,
                )
            )
        return True

    def import_entries(
        self, municipality: str, entries: Iterable[Entry], replace: bool = False, actor: str | None = None
    ) -> dict[str, int]:
        """Atomic import: all entries land in one transaction, or none. `replace` deletes the rest."""
        entries = list(entries)
        counts = {"create": 0, "update": 0, "unchanged": 0, "delete": 0}
        with self.engine.begin() as conn:
            for entry in entries:
                entry.municipality = municipality
                counts[self._upsert(conn, entry, actor)] += 1
            if replace:
                keep = {e.id for e in entries}
                existing = conn.execute(
                    select(kb_entries.c.id, kb_entries.c.data).where(kb_entries.c.municipality == municipality)
                ).all()
                for row in existing:
                    if row.id not in keep:
                        conn.execute(delete(kb_entries).where(self._key(municipality, row.id)))
                        conn.execute(
                            insert(kb_audit).values(
                                municipality=municipality, entry_id=row.id, action="delete", actor=actor,
                                at=time.time(), before=row.data, after=None,
                            )
                        )
                        counts["delete"] += 1
        return counts

    def audit(self, municipality: str, entry_id: str | None = None, limit: int = 100) -> list[dict]:
        query = select(kb_audit).where(kb_audit.c.municipality == municipality)
        if entry_id:
            query = query.where(kb_audit.c.entry_id == entry_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(kb_audit.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def last_audit_id(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(kb_audit.c.id), 0))).scalar()

    def changed_since(self, audit_id: int) -> list[tuple[int, str, str]]:
        """(latest audit id, municipality, entry id) of each entry changed after `audit_id`."""
        query = (
            select(func.max(kb_audit.c.id), kb_audit.c.municipality, kb_audit.c.entry_id)
            .where(kb_audit.c.id > audit_id)
            .group_by(kb_audit.c.municipality, kb_audit.c.entry_id)
        )
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    @staticmethod
    def _key(municipality: str, entry_id: str):
        return and_(kb_entries.c.municipality == municipality, kb_entries.c.id == entry_id)

    def _upsert(self, conn, entry: Entry, actor: str | None) -> str:
        data = entry.to_dict()
        row = conn.execute(select(kb_entries.c.data).where(self._key(entry.municipality, entry.id))).first()
        if row and row.data == data:
            return "unchanged"
        now = time.time()
        if row:
            conn.execute(
                update(kb_entries)
                .where(self._key(entry.municipality, entry.id))
                .values(data=data, updated_at=now, updated_by=actor)
            )
        else:
            conn.execute(
                insert(kb_entries).values(
                    municipality=entry.municipality, id=entry.id, data=data, updated_at=now, updated_by=actor
                )
            )
        action = "update" if row else "create"
        conn.execute(
            insert(kb_audit).values(
                municipality=entry.municipality, entry_id=entry.id, action=action, actor=actor, at=now,
                before=row.data if row else None, after=data,
            )
        )
        return action

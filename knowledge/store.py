"""The knowledge base in the database: entries per municipality, every change audited."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from sqlalchemy import Engine, and_, delete, func, insert, select, update

from core.db import SQLITE_BUSY_S
from core.errors import Invalid
from knowledge.entries import Entry
from knowledge.kbfile import parse_entry

# The tables live in knowledge/tables.py, imported here by name for the store's statements. Other packages
# use KnowledgeStore or knowledge.queries (pyproject.toml's contract forbids them knowledge.tables).
from knowledge.tables import kb_audit, kb_entries

WRITER_WAIT_S = 30.0  # an import waits this long for another one


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
        with self._writing() as conn:
            return self._upsert(conn, entry, actor)

    def delete(self, municipality: str, entry_id: str, actor: str | None = None) -> bool:
        with self._writing() as conn:
            row = conn.execute(select(kb_entries.c.data).where(self._key(municipality, entry_id))).first()
            if not row:
                return False
            conn.execute(delete(kb_entries).where(self._key(municipality, entry_id)))
            conn.execute(
                insert(kb_audit).values(
                    municipality=municipality,
                    entry_id=entry_id,
                    action="delete",
                    actor=actor,
                    at=time.time(),
                    before=row.data,
                    after=None,
                )
            )
        return True

    def import_entries(
        self, municipality: str, entries: Iterable[Entry], replace: bool = False, actor: str | None = None
    ) -> dict[str, int]:
        """Atomic import: all entries land in one transaction, or none. `replace` deletes the rest, and is
        refused for an empty import (that would delete the whole knowledge base by mistake)."""
        entries = list(entries)
        if replace and not entries:
            raise Invalid("a replacing import without entries would delete the whole knowledge base: refused "
                          "(to delete entries, delete them one by one, or import the entries to keep)",
                          [{"field": "file", "message": "no entries"}])
        counts = {"create": 0, "update": 0, "unchanged": 0, "delete": 0}
        with self._writing() as conn:
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
                                municipality=municipality,
                                entry_id=row.id,
                                action="delete",
                                actor=actor,
                                at=time.time(),
                                before=row.data,
                                after=None,
                            )
                        )
                        counts["delete"] += 1
        return counts

    def undo(self, municipality: str, since_id: int, actor: str | None = None) -> dict[str, int]:
        """Undo every change of the municipality's audit from `since_id` on (an import, a deletion), newest
        first, in one transaction: each entry gets its `before` back (or is removed if it was created).
        The undoing is audited too, so it can itself be undone."""
        counts = {"restored": 0, "removed": 0}
        with self._writing() as conn:
            rows = conn.execute(select(kb_audit).where(kb_audit.c.municipality == municipality,
                                                       kb_audit.c.id >= since_id).order_by(kb_audit.c.id.desc())).all()
            if not rows:
                raise Invalid(f"no change from audit id {since_id} on in '{municipality}': nothing to undo",
                              [{"field": "since_id", "message": "no such change"}])
            for row in rows:
                if row.before is None:
                    current = conn.execute(select(kb_entries.c.data).where(self._key(municipality, row.entry_id)))
                    if current.first():
                        conn.execute(delete(kb_entries).where(self._key(municipality, row.entry_id)))
                        conn.execute(insert(kb_audit).values(municipality=municipality, entry_id=row.entry_id,
                                                             action="delete", actor=actor, at=time.time(),
                                                             before=row.after, after=None))
                        counts["removed"] += 1
                elif self._upsert(conn, _to_entry(municipality, row.before), actor) != "unchanged":
                    counts["restored"] += 1
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

    def changed_since(self, audit_id: int) -> list[tuple[int, str, str, float]]:
        """(audit id, municipality, entry id, time) of every change after `audit_id`, oldest first.

        Readers can trust the order: writers hold `_writing`, so ids become visible in
        the order they were given out and nothing commits later below an id already seen.
        """
        query = (
            select(kb_audit.c.id, kb_audit.c.municipality, kb_audit.c.entry_id, kb_audit.c.at)
            .where(kb_audit.c.id > audit_id)
            .order_by(kb_audit.c.id)
        )
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def versions(self) -> dict[tuple[str, str], float]:
        """(municipality, id) -> time of the entry's last change, for every entry (no texts read)."""
        query = select(kb_entries.c.municipality, kb_entries.c.id, kb_entries.c.updated_at)
        with self.engine.connect() as conn:
            return {(m, i): t for m, i, t in conn.execute(query)}

    def all_versioned(self) -> list[tuple[Entry, float]]:
        """Every entry with the time of its last change (what an index build records)."""
        query = select(kb_entries.c.municipality, kb_entries.c.data, kb_entries.c.updated_at)
        query = query.order_by(kb_entries.c.municipality, kb_entries.c.id)
        with self.engine.connect() as conn:
            return [(_to_entry(m, d), t) for m, d, t in conn.execute(query)]

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[Entry, float]]:
        """The stored entries among `keys` (municipality, id), each with the time of its last change."""
        wanted: dict[str, list[str]] = {}
        for municipality, entry_id in keys:
            wanted.setdefault(municipality, []).append(entry_id)
        out: dict[tuple[str, str], Entry] = {}
        with self.engine.connect() as conn:
            for municipality, ids in wanted.items():
                for a in range(0, len(ids), 500):
                    query = select(kb_entries.c.id, kb_entries.c.data, kb_entries.c.updated_at).where(
                        kb_entries.c.municipality == municipality, kb_entries.c.id.in_(ids[a : a + 500])
                    )
                    for row in conn.execute(query):
                        out[(municipality, row.id)] = (_to_entry(municipality, row.data), row.updated_at)
        return out

    def counts(self) -> dict[str, int]:
        """Entries per municipality."""
        query = select(kb_entries.c.municipality, func.count()).group_by(kb_entries.c.municipality)
        with self.engine.connect() as conn:
            return {m: n for m, n in conn.execute(query)}

    @contextlib.contextmanager
    def _writing(self):
        """A write transaction that knowledge writers take one at a time, waiting up to
        WRITER_WAIT_S for another (a large import) to finish.

        PostgreSQL hands out audit ids at insert but shows them at commit: two concurrent imports
        could commit id 7 after a reader has seen id 8, and 7 would be skipped for good (a removed
        entry left answerable). One writer at a time keeps ids in commit order; plain reads are not
        blocked. SQLite admits one writer anyway, but its driver begins the transaction only at the
        first write, so a concurrent import's reads ran outside it and its inserts collided: the
        write lock is taken first."""
        with self.engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            raw = conn.connection.driver_connection if sqlite else None
            if sqlite:
                raw.execute(f"PRAGMA busy_timeout = {int(WRITER_WAIT_S * 1000)}")
            try:
                with conn.begin():
                    if sqlite:
                        conn.exec_driver_sql("UPDATE kb_audit SET id = id WHERE 0 = 1")  # takes the write lock
                    elif conn.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(WRITER_WAIT_S * 1000)}ms'")
                        conn.exec_driver_sql("LOCK TABLE kb_audit IN EXCLUSIVE MODE")
                    yield conn
            finally:
                if sqlite:
                    raw.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_S * 1000)}")

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
                municipality=entry.municipality,
                entry_id=entry.id,
                action=action,
                actor=actor,
                at=now,
                before=row.data if row else None,
                after=data,
            )
        )
        return action

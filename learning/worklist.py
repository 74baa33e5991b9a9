"""The owners' work list: each signal (learning/signals.py) routed to exactly one department, with a status.

Routing is a pass that every service process runs every ROUTE_EVERY_S seconds (kommunchatt/app.py): it
reads what happened since its last pass, resolves each signal's owner (learning/owners.py) and inserts
the items, ignoring a source key that is already on a list. The unique (municipality, source_key) makes
a second pass, or another process's pass at the same moment, a no-op: a signal lands on one list once.

Statuses: new -> in_progress -> done | wont_do (any change allowed; who and when are kept, each change in the
item's history, learning/item_history.py). The contact centre (agents) reads them, webmasters and admins
change them. An item with a conversation goes when the conversation does (kommunchatt/retention.py purges
and erases every table with a conversation_id).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)

from core.db import metadata
from core.errors import NotFound
from core.municipalities import municipalities
from learning import item_history, signals
from learning.claims import insert_ignore
from learning.owners import Resolver, departments, get_department

log = logging.getLogger(__name__)

KINDS = ("negative_feedback", "low_rating", "unanswered", "overdue_review", "review_due", "broken_link")
STATUSES = ("new", "in_progress", "done", "wont_do")
ROUTE_EVERY_S = 15.0  # a negative feedback is on a list within a minute with margin
REVIEW_EVERY_S = 600.0  # review dates change rarely: every 10 minutes is soon enough
LOOKBACK_S = 14 * 86400  # what a process's first pass looks back on
ID_OVERLAP = 1000  # message ids a pass reads again: PostgreSQL may commit a lower id after a higher one
RATING_OVERLAP_S = 300.0

work_items = Table(
    "work_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("source_key", String(200), nullable=False),  # feedback:<message id>, rating:<conversation>, ...
    Column("department_id", Integer, ForeignKey("departments.id"), nullable=False),
    Column("routed_via", String(8), nullable=False),  # entry | topic | default | manual: why this department
    Column("kind", String(24), nullable=False),
    Column("entry_id", String(128)),
    Column("conversation_id", String(64)),
    Column("text", Text, nullable=False),  # masked
    Column("detail", JSON),
    Column("status", String(16), nullable=False),
    Column("occurred_at", Float, nullable=False),  # when the citizen / the calendar / the link check said it
    Column("created_at", Float, nullable=False),  # when it landed on the list
    Column("updated_at", Float, nullable=False),
    Column("changed_by", String(100)),  # who set the status last ("routing" until a person does)
    UniqueConstraint("municipality", "source_key", name="uq_work_items_source"),
    Index("ix_work_items_list", "municipality", "department_id", "status"),
    Index("ix_work_items_created", "municipality", "created_at"),
)


def add(engine: Engine, found: list[signals.Signal], now: float | None = None) -> int:
    """Route signals to their owners and put them on the lists; returns how many were new."""
    now = time.time() if now is None else now
    by_municipality: dict[str, list[signals.Signal]] = defaultdict(list)
    for signal in found:
        by_municipality[signal.municipality].append(signal)
    added = 0
    for municipality, group in by_municipality.items():
        with engine.begin() as conn:
            resolver = Resolver(conn, municipality)
            rows = []
            for s in group:
                owner = resolver.owner(s.entry_id, s.topic)
                rows.append(
                    {
                        "municipality": municipality,
                        "source_key": s.source_key[:200],
                        "department_id": owner.department_id,
                        "routed_via": owner.via,
                        "kind": s.kind,
                        "entry_id": s.entry_id,
                        "conversation_id": s.conversation_id,
                        "text": s.text,
                        "detail": {**s.detail, "topic": s.topic} if s.topic else s.detail,
                        "status": "new",
                        "occurred_at": s.occurred_at,
                        "created_at": now,
                        "updated_at": now,
                        "changed_by": "routing",
                    }
                )
            added += insert_ignore(conn, work_items, rows, ["municipality", "source_key"])
    return added


@dataclass
class Router:
    """One process's routing passes: remembers how far it has read, so a pass reads only what is new."""

    engine: Engine
    message_cursor: int = -1  # -1: nothing read yet (the first pass looks back LOOKBACK_S)
    ratings_since: float | None = None
    reviews_at: float = 0.0

    def run_once(self, now: float | None = None, reviews: bool | None = None) -> int:
        """One pass: feedback, unanswered questions and ratings; review dates every REVIEW_EVERY_S."""
        now = time.time() if now is None else now
        after = 0 if self.message_cursor < 0 else max(0, self.message_cursor - ID_OVERLAP)
        with self.engine.connect() as conn:
            known = self._known_keys(conn, after)
            found, last_id = signals.message_signals(conn, after, now - LOOKBACK_S, known)
            found += signals.rating_signals(conn, self.ratings_since or now - LOOKBACK_S)
        if reviews if reviews is not None else now - self.reviews_at >= REVIEW_EVERY_S:
            for municipality in self._municipalities():
                found += signals.review_signals(self.engine, municipality)
            self.reviews_at = now
        added = add(self.engine, found, now) if found else 0
        self.message_cursor = max(self.message_cursor, last_id)
        self.ratings_since = now - RATING_OVERLAP_S
        return added

    def _known_keys(self, conn, after_id: int) -> set[str]:
        """Message keys already routed in the overlap: their questions need not be looked up again."""
        if after_id <= 0:
            return set()
        rows = conn.execute(
            select(work_items.c.source_key).where(
                work_items.c.created_at >= time.time() - LOOKBACK_S,
                work_items.c.kind.in_(("negative_feedback", "unanswered")),
            )
        )
        return {r.source_key for r in rows}

    def _municipalities(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r.id for r in conn.execute(select(municipalities.c.id))]


def reroute(engine: Engine, municipality: str) -> int:
    """After an ownership change: new items (nobody has started on them) go to their owner as it is now;
    items a person handed to a department ("manual") stay. Returns how many moved."""
    with engine.begin() as conn:
        resolver = Resolver(conn, municipality)
        rows = conn.execute(
            select(work_items.c.id, work_items.c.entry_id, work_items.c.detail, work_items.c.department_id).where(
                work_items.c.municipality == municipality,
                work_items.c.status == "new",
                work_items.c.routed_via != "manual",
            )
        ).all()
        moved = 0
        for row in rows:
            owner = resolver.owner(row.entry_id, (row.detail or {}).get("topic"))
            if owner.department_id != row.department_id:
                conn.execute(
                    update(work_items)
                    .where(work_items.c.id == row.id)
                    .values(department_id=owner.department_id, routed_via=owner.via, updated_at=time.time())
                )
                moved += 1
        return moved


def _item(row) -> dict:
    return {
        "id": row.id,
        "municipality": row.municipality,
        "department_id": row.department_id,
        "department": row.department,
        "routed_via": row.routed_via,
        "kind": row.kind,
        "entry_id": row.entry_id,
        "conversation_id": row.conversation_id,
        "text": row.text,
        "detail": row.detail or {},
        "status": row.status,
        "occurred_at": row.occurred_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "changed_by": row.changed_by,
    }


def _select():
    return select(work_items, departments.c.name.label("department")).join(
        departments, departments.c.id == work_items.c.department_id
    )


def items(
    engine: Engine,
    municipality: str,
    department_id: int | None = None,
    status: str | None = None,
    kind: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[dict]:
    """The list, newest first, filtered by department, status, kind and the time it landed."""
    query = _select().where(work_items.c.municipality == municipality)
    for column, value in (
        (work_items.c.department_id, department_id),
        (work_items.c.status, status),
        (work_items.c.kind, kind),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(work_items.c.created_at >= since)
    if until is not None:
        query = query.where(work_items.c.created_at < until)
    query = query.order_by(work_items.c.created_at.desc(), work_items.c.id.desc()).limit(limit).offset(offset)
    with engine.connect() as conn:
        return [_item(r) for r in conn.execute(query)]


def get(engine: Engine, municipality: str, item_id: int) -> dict:
    with engine.connect() as conn:
        row = conn.execute(
            _select().where(work_items.c.id == item_id, work_items.c.municipality == municipality)
        ).first()
    if not row:
        raise NotFound(f"no work item with id {item_id} in '{municipality}'")
    return _item(row)


def change(
    engine: Engine,
    municipality: str,
    item_id: int,
    actor: str,
    status: str | None = None,
    department_id: int | None = None,
) -> dict:
    """Set an item's status or hand it to another department (a misrouted item); who and when are kept on the
    item (the last change) and in its history (every change, learning/item_history.py)."""
    now = time.time()
    values: dict = {"updated_at": now, "changed_by": actor}
    if status is not None:
        values["status"] = status
    with engine.begin() as conn:
        before = conn.execute(
            select(work_items)
            .where(work_items.c.id == item_id, work_items.c.municipality == municipality)
            .with_for_update()  # PostgreSQL: two changes at once are recorded one after the other
        ).first()
        if before is None:
            raise NotFound(f"no work item with id {item_id} in '{municipality}'")
        if department_id is not None:
            get_department(conn, municipality, department_id)
            values["department_id"] = department_id
            values["routed_via"] = "manual"  # a person's choice: ownership changes no longer move it
        conn.execute(update(work_items).where(work_items.c.id == item_id).values(**values))
        item_history.record(conn, before, status, department_id, actor, now)
    return get(engine, municipality, item_id)


def history(engine: Engine, municipality: str, item_ids: list[int]) -> dict[int, list[dict]]:
    """The items' changes, oldest first (see learning/item_history.py)."""
    with engine.connect() as conn:
        return item_history.of_items(conn, municipality, item_ids)


def with_history(engine: Engine, municipality: str, found: list[dict]) -> list[dict]:
    """`found` items, each with its history."""
    changes = history(engine, municipality, [i["id"] for i in found])
    return [{**i, "history": changes[i["id"]]} for i in found]


def counts(engine: Engine, municipality: str) -> dict[str, dict[str, int]]:
    """Open work per department: status -> count (the workshop's badge)."""
    query = (
        select(departments.c.name, work_items.c.status, func.count())
        .join(departments, departments.c.id == work_items.c.department_id)
        .where(work_items.c.municipality == municipality)
        .group_by(departments.c.name, work_items.c.status)
    )
    out: dict[str, dict[str, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for name, status, n in conn.execute(query):
            out[name][status] = n
    return dict(out)

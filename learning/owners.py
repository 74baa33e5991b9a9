"""Departments (units of a municipality, with contacts) and who owns which knowledge: entries and topics.

Why: feedback must reach the people who can change an answer. Ownership is resolved most specific
first: the entry's own owner, else the owner of its first tag (a topic) that has one, else the
municipality's default department (the contact centre, made on first need), so every item has
exactly one owner.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)

from core.db import metadata
from core.errors import Conflicting, NotFound
from knowledge import queries as knowledge_queries
from learning.claims import insert_ignore

DEFAULT_NAME = "Kontaktcenter"
KINDS = ("entry", "topic", "default")

departments = Table(
    "departments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("contacts", JSON, nullable=False, default=list),  # [{"name", "email"}]
    Column("created_at", Float, nullable=False, default=time.time),
    Column("updated_at", Float, nullable=False, default=time.time),
    UniqueConstraint("municipality", "name", name="uq_departments_name"),
)

content_owners = Table(
    "content_owners",
    metadata,
    Column("municipality", String(64), primary_key=True),
    Column("kind", String(8), primary_key=True),  # entry | topic | default
    Column("key", String(128), primary_key=True),  # the entry id, the tag, "" for the default
    Column("department_id", Integer, ForeignKey("departments.id"), nullable=False),
    Column("set_by", String(100)),
    Column("set_at", Float, nullable=False, default=time.time),
    Index("ix_content_owners_department", "department_id"),
)


def _department(row) -> dict:
    return {
        "id": row.id,
        "municipality": row.municipality,
        "name": row.name,
        "contacts": list(row.contacts or []),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def default_department_id(conn: Connection, municipality: str) -> int:
    """The municipality's default department; the first call makes "Kontaktcenter" the default (safe when
    several processes do it at once: both inserts ignore a conflict, both read the one that won)."""
    found = _default_in(conn, municipality)
    if found is not None:
        return found
    now = time.time()
    row = {"municipality": municipality, "name": DEFAULT_NAME, "contacts": [], "created_at": now, "updated_at": now}
    insert_ignore(conn, departments, [row], ["municipality", "name"])
    dept_id = conn.execute(
        select(departments.c.id).where(departments.c.municipality == municipality, departments.c.name == DEFAULT_NAME)
    ).scalar_one()
    owner = {"municipality": municipality, "kind": "default", "key": "", "department_id": dept_id, "set_at": now}
    insert_ignore(conn, content_owners, [owner], ["municipality", "kind", "key"])
    return _default_in(conn, municipality)


def _default_in(conn: Connection, municipality: str) -> int | None:
    return conn.execute(
        select(content_owners.c.department_id).where(
            content_owners.c.municipality == municipality, content_owners.c.kind == "default"
        )
    ).scalar()


def list_departments(engine: Engine, municipality: str) -> list[dict]:
    with engine.begin() as conn:
        default = default_department_id(conn, municipality)
        rows = conn.execute(
            select(departments).where(departments.c.municipality == municipality).order_by(departments.c.name)
        )
        return [{**_department(r), "is_default": r.id == default} for r in rows]


def get_department(conn: Connection, municipality: str, department_id: int) -> dict:
    row = conn.execute(
        select(departments).where(departments.c.id == department_id, departments.c.municipality == municipality)
    ).first()
    if not row:
        raise NotFound(f"no department with id {department_id} in '{municipality}'")
    return {**_department(row), "is_default": _default_in(conn, municipality) == row.id}


def _name_free(conn: Connection, municipality: str, name: str, other_than: int | None = None) -> None:
    query = select(departments.c.id).where(departments.c.municipality == municipality, departments.c.name == name)
    found = conn.execute(query).scalar()
    if found is not None and found != other_than:
        raise Conflicting(f"a department named '{name}' exists already", [{"field": "name", "message": "taken"}])


def create_department(engine: Engine, municipality: str, name: str, contacts: list[dict]) -> dict:
    with engine.begin() as conn:
        default_department_id(conn, municipality)  # the contact centre exists before any other
        _name_free(conn, municipality, name)
        now = time.time()
        new_id = conn.execute(
            insert(departments).values(
                municipality=municipality, name=name, contacts=contacts, created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        return get_department(conn, municipality, new_id)


def update_department(
    engine: Engine, municipality: str, department_id: int, name: str | None, contacts: list[dict] | None
) -> dict:
    with engine.begin() as conn:
        get_department(conn, municipality, department_id)
        values: dict = {"updated_at": time.time()}
        if name is not None:
            _name_free(conn, municipality, name, other_than=department_id)
            values["name"] = name
        if contacts is not None:
            values["contacts"] = contacts
        conn.execute(update(departments).where(departments.c.id == department_id).values(**values))
        return get_department(conn, municipality, department_id)


def delete_department(engine: Engine, municipality: str, department_id: int) -> int:
    """Remove a department: what it owned falls back to the topic or default owner, its work items move to
    the default department. Returns how many items moved. The default department cannot be removed."""
    from learning.worklist import work_items  # the list sits on top of the owners

    with engine.begin() as conn:
        department = get_department(conn, municipality, department_id)
        if department["is_default"]:
            raise Conflicting("the default department cannot be removed: make another one the default first")
        default = default_department_id(conn, municipality)
        moved = conn.execute(
            update(work_items).where(work_items.c.department_id == department_id).values(department_id=default)
        ).rowcount
        conn.execute(delete(content_owners).where(content_owners.c.department_id == department_id))
        conn.execute(delete(departments).where(departments.c.id == department_id))
        return moved


def set_owner(engine: Engine, municipality: str, kind: str, key: str, department_id: int, actor: str) -> dict:
    """Make a department the owner of an entry, a topic or the default; unknown ids are NotFound."""
    with engine.begin() as conn:
        get_department(conn, municipality, department_id)
        if kind == "entry" and not knowledge_queries.entry_exists(conn, municipality, key):
            raise NotFound(f"no knowledge entry with id '{key}' in '{municipality}'")
        if kind == "topic" and key not in entry_tags(conn, municipality):
            raise NotFound(f"no knowledge entry in '{municipality}' has the tag '{key}'")
        if kind == "default":
            default_department_id(conn, municipality)
            key = ""
        where = (
            content_owners.c.municipality == municipality,
            content_owners.c.kind == kind,
            content_owners.c.key == key,
        )
        conn.execute(delete(content_owners).where(*where))
        conn.execute(
            insert(content_owners).values(
                municipality=municipality,
                kind=kind,
                key=key,
                department_id=department_id,
                set_by=actor,
                set_at=time.time(),
            )
        )
        return {"kind": kind, "key": key, "department_id": department_id, "set_by": actor}


def clear_owner(engine: Engine, municipality: str, kind: str, key: str) -> None:
    """An entry or topic without its own owner falls back to the next one; the default is never cleared."""
    if kind == "default":
        raise Conflicting("the default owner can be changed, not removed")
    with engine.begin() as conn:
        gone = conn.execute(
            delete(content_owners).where(
                content_owners.c.municipality == municipality,
                content_owners.c.kind == kind,
                content_owners.c.key == key,
            )
        ).rowcount
    if not gone:
        raise NotFound(f"the {kind} '{key}' has no owner of its own")


def entry_tags(conn: Connection, municipality: str, entry_ids: list[str] | None = None) -> dict[str, list[str]]:
    """Tag -> nothing; or with `entry_ids`, entry id -> its tags (in order): the topics an entry belongs to."""
    tags = knowledge_queries.entry_tags(conn, municipality, entry_ids)
    if entry_ids is not None:
        return tags
    return {tag: [] for entry in tags.values() for tag in entry}


@dataclass(frozen=True)
class Owner:
    department_id: int
    via: str  # entry | topic | default
    key: str  # the entry id or tag that decided, "" for the default


class Resolver:
    """Resolves owners for one municipality from one read of its ownership rows (a routing pass asks many)."""

    def __init__(self, conn: Connection, municipality: str):
        self.conn, self.municipality = conn, municipality
        self.default = default_department_id(conn, municipality)
        rows = conn.execute(select(content_owners).where(content_owners.c.municipality == municipality))
        self.owned = {(r.kind, r.key): r.department_id for r in rows}
        self._tags: dict[str, list[str]] = {}

    def tags_of(self, entry_id: str) -> list[str]:
        if entry_id not in self._tags:
            self._tags.update(entry_tags(self.conn, self.municipality, [entry_id]))
            self._tags.setdefault(entry_id, [])
        return self._tags[entry_id]

    def owner(self, entry_id: str | None = None, topic: str | None = None) -> Owner:
        """The entry's owner, else its first owned tag's, else `topic`'s, else the default."""
        if entry_id:
            if ("entry", entry_id) in self.owned:
                return Owner(self.owned[("entry", entry_id)], "entry", entry_id)
            for tag in self.tags_of(entry_id):
                if ("topic", tag) in self.owned:
                    return Owner(self.owned[("topic", tag)], "topic", tag)
        if topic and ("topic", topic) in self.owned:
            return Owner(self.owned[("topic", topic)], "topic", topic)
        return Owner(self.default, "default", "")


def ownership(engine: Engine, municipality: str) -> dict:
    """What the workshop shows: the default department, the owned topics and entries, and topics without one."""
    with engine.begin() as conn:
        default = default_department_id(conn, municipality)
        rows = conn.execute(
            select(content_owners, departments.c.name)
            .join(departments, departments.c.id == content_owners.c.department_id)
            .where(content_owners.c.municipality == municipality, content_owners.c.kind != "default")
            .order_by(content_owners.c.kind, content_owners.c.key)
        ).all()
        tags = entry_tags(conn, municipality)
    owned = [
        {
            "kind": r.kind,
            "key": r.key,
            "department_id": r.department_id,
            "department": r.name,
            "set_by": r.set_by,
            "set_at": r.set_at,
        }
        for r in rows
    ]
    owned_topics = {o["key"] for o in owned if o["kind"] == "topic"}
    return {
        "default_department_id": default,
        "topics": [o for o in owned if o["kind"] == "topic"],
        "entries": [o for o in owned if o["kind"] == "entry"],
        "topics_without_owner": sorted(t for t in tags if t not in owned_topics),
    }


def owner_of_entry(engine: Engine, municipality: str, entry_id: str) -> dict:
    """Who owns an entry and why (its own owner, a topic, or the default)."""
    with engine.begin() as conn:
        if not knowledge_queries.entry_exists(conn, municipality, entry_id):
            raise NotFound(f"no knowledge entry with id '{entry_id}' in '{municipality}'")
        owner = Resolver(conn, municipality).owner(entry_id)
        department = get_department(conn, municipality, owner.department_id)
    return {"entry_id": entry_id, "department": department, "via": owner.via, "key": owner.key}

"""Idempotent writes that several service processes may attempt at once: insert-if-absent and job claims.

Why here: routing, the link check and the weekly mail run in every service process; a unique key and
"insert, ignore a conflict" make the second process's attempt a no-op on SQLite and PostgreSQL alike,
without locks or a leader.
"""

from __future__ import annotations

import time

from sqlalchemy import JSON, Column, Connection, Float, String, Table, update
from sqlalchemy.dialects import postgresql, sqlite

from core.db import metadata

learning_jobs = Table(
    "learning_jobs",
    metadata,
    Column("name", String(200), primary_key=True),  # "links:ekby", "digest:ekby:2026-W49"
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("result", JSON),
)


def insert_ignore(conn: Connection, table: Table, rows: list[dict], keys: list[str]) -> int:
    """Insert the rows whose unique `keys` are not taken yet; returns how many were inserted."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=keys).returning(table.c[keys[0]])
    inserted = 0
    for row in rows:  # one by one, counting what RETURNING gives back (rowcount is not portable here)
        inserted += conn.execute(statement, row).first() is not None
    return inserted


def claim(conn: Connection, name: str, every_s: float | None, now: float | None = None) -> bool:
    """Claim the job `name` for this process: True for exactly one caller per period (`every_s`; None:
    once for ever, e.g. one week's digest)."""
    now = time.time() if now is None else now
    if insert_ignore(conn, learning_jobs, [{"name": name, "started_at": now}], ["name"]):
        return True
    if every_s is None:
        return False
    taken = conn.execute(
        update(learning_jobs)
        .where(learning_jobs.c.name == name, learning_jobs.c.started_at <= now - every_s)
        .values(started_at=now, finished_at=None)
    )
    return taken.rowcount == 1


def finish(conn: Connection, name: str, result: dict | None = None) -> None:
    conn.execute(
        update(learning_jobs).where(learning_jobs.c.name == name).values(finished_at=time.time(), result=result)
    )


def release(conn: Connection, name: str) -> None:
    """Give a claim back (the job failed): the next attempt may run it again."""
    conn.execute(learning_jobs.delete().where(learning_jobs.c.name == name))

"""Who opened which transcript, when (GDPR art. 30 and the municipality's own audit): a row per opening
of a conversation by staff (the console, the REST API, an export or an erasure). Kept as long as the
municipality's log retention says, never longer than needed (see kommunchatt/retention.py)."""

from __future__ import annotations

import time

from sqlalchemy import Column, Engine, Float, Index, Integer, String, Table, delete, insert, select

from core.db import metadata

transcript_access = Table(
    "transcript_access",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("user_id", Integer),  # no foreign key: the log outlives a removed user
    Column("username", String(100), nullable=False),
    Column("conversation_id", String(64), nullable=False),
    Column("municipality", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # view | export | erase
    Column("via", String(16), nullable=False),  # console | api | cli
    Index("ix_transcript_access_conversation", "conversation_id", "at"),
    Index("ix_transcript_access_municipality", "municipality", "at"),
)

ACTIONS = ("view", "export", "erase")


def record(
    engine: Engine, user: dict | None, conversation_id: str, municipality: str, action: str = "view", via: str = "api"
) -> None:
    """Log one opening; `user` None is the command line (the operator of the machine)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    with engine.begin() as conn:
        conn.execute(
            insert(transcript_access).values(
                at=time.time(),
                user_id=(user or {}).get("id"),
                username=(user or {}).get("username") or "(command line)",
                conversation_id=conversation_id,
                municipality=municipality,
                action=action,
                via=via,
            )
        )


def entries(
    engine: Engine,
    municipalities: list[str] | None,
    conversation_id: str | None = None,
    username: str | None = None,
    limit: int = 200,
) -> list[dict]:
    """Newest first; `municipalities` None means all (a global admin)."""
    query = select(transcript_access).order_by(transcript_access.c.at.desc()).limit(min(max(limit, 1), 5000))
    if municipalities is not None:
        query = query.where(transcript_access.c.municipality.in_(municipalities))
    if conversation_id:
        query = query.where(transcript_access.c.conversation_id == conversation_id)
    if username:
        query = query.where(transcript_access.c.username == username)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def purge_before(engine: Engine, before: float) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(transcript_access).where(transcript_access.c.at < before)).rowcount

"""Which agents are connected, across service processes: one row per console WebSocket.

A process refreshes `last_seen` of its own connections every few seconds, so the rows of a process
that died go stale by themselves. An agent with no fresh open connection is offline; once the last
sign of life is older than the grace period, their chats go back to the front of the queue.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)

from core.db import metadata

agent_connections = Table(
    "agent_connections",  # one row per console WebSocket: presence and the grace period, across processes
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("process", String(64), nullable=False),
    Column("opened_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("closed", Boolean, nullable=False, default=False),
    Index("ix_agent_connections_user", "user_id", "last_seen"),
)

HEARTBEAT_SECONDS = float(os.environ.get("KOMMUNCHATT_AGENT_HEARTBEAT_S", "5"))
FRESH_SECONDS = 3 * HEARTBEAT_SECONDS  # a connection not refreshed for this long belongs to a dead process
GRACE_SECONDS = float(os.environ.get("KOMMUNCHATT_AGENT_GRACE_S", "60"))


def opened(engine: Engine, connection_id: str, user_id: int, process: str) -> None:
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            insert(agent_connections).values(
                id=connection_id, user_id=user_id, process=process, opened_at=now, last_seen=now, closed=False
            )
        )


def closed(engine: Engine, connection_id: str) -> None:
    """The socket closed: the time is kept, as the start of the grace period."""
    with engine.begin() as conn:
        conn.execute(
            update(agent_connections)
            .where(agent_connections.c.id == connection_id)
            .values(closed=True, last_seen=time.time())
        )


def heartbeat(engine: Engine, connection_ids: list[str]) -> None:
    if not connection_ids:
        return
    now = time.time()
    with engine.begin() as conn:
        conn.execute(update(agent_connections).where(agent_connections.c.id.in_(connection_ids)).values(last_seen=now))
        # Old history is not needed once past any grace period.
        conn.execute(delete(agent_connections).where(agent_connections.c.last_seen < now - 24 * 3600))


def online_user_ids(engine: Engine, now: float | None = None) -> set[int]:
    now = now or time.time()
    with engine.connect() as conn:
        rows = conn.execute(
            select(agent_connections.c.user_id)
            .where(and_(agent_connections.c.closed.is_(False), agent_connections.c.last_seen > now - FRESH_SECONDS))
            .distinct()
        )
        return {r.user_id for r in rows}


def gone_user_ids(engine: Engine, user_ids: set[int], now: float | None = None) -> set[int]:
    """Of `user_ids`, those who had a console and have shown no sign of life for the grace period."""
    if not user_ids:
        return set()
    now = now or time.time()
    online = online_user_ids(engine, now)
    with engine.connect() as conn:
        rows = conn.execute(
            select(agent_connections.c.user_id, func.max(agent_connections.c.last_seen).label("seen"))
            .where(agent_connections.c.user_id.in_(user_ids))
            .group_by(agent_connections.c.user_id)
        )
        return {r.user_id for r in rows if r.user_id not in online and r.seen < now - GRACE_SECONDS}

"""Call-back tickets: messages citizens leave outside opening hours, for agents to answer later."""

from __future__ import annotations

import time

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    Select,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from core.db import metadata

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id")),
    Column("municipality", String(64), nullable=False),
    Column("name", String(200)),
    Column("contact", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("language", String(8)),
    Column("status", String(16), nullable=False, default="open"),
    Column("created_at", Float, nullable=False, default=time.time),
    Column("consent_at", Float),  # when the citizen agreed to be contacted (the form's consent question)
)


def create(engine: Engine, conversation: dict, name: str | None, contact: str, message: str) -> int:
    """Store a ticket for the conversation's municipality and language; returns its id. Only ever called with
    the citizen's consent to be contacted, whose time is stored with it."""
    now = time.time()
    with engine.begin() as conn:
        return conn.execute(
            insert(tickets).values(
                conversation_id=conversation["id"],
                municipality=conversation["municipality"],
                name=name,
                contact=contact,
                message=message,
                language=conversation["language"],
                created_at=now,
                consent_at=now,
            )
        ).inserted_primary_key[0]


def get(engine: Engine, ticket_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
    return dict(row._mapping) if row else None


def in_status(engine: Engine, status: str = "open") -> list[dict]:
    """Tickets with this status, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(tickets).where(tickets.c.status == status).order_by(tickets.c.created_at))
        return [dict(r._mapping) for r in rows]


def set_status(engine: Engine, ticket_id: int, status: str) -> bool:
    """False if there is no such ticket."""
    with engine.begin() as conn:
        return bool(conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(status=status)).rowcount)


def open_conversation_ids() -> Select:
    """A SELECT of the conversations with an open ticket (no NULL): a chat waiting for a call-back has not
    ended, whatever its state (conversations.queries.ended's `unless`)."""
    return select(tickets.c.conversation_id).where(tickets.c.status == "open", tickets.c.conversation_id.is_not(None))


def contacts(conn: Connection) -> list[tuple[str | None, str]]:
    """(conversation id, contact) of every ticket: finding a citizen's chats by the contact they left."""
    return [(r.conversation_id, r.contact) for r in conn.execute(select(tickets.c.conversation_id, tickets.c.contact))]


def of_conversation(conn: Connection, conversation_id: str) -> list[dict]:
    """A conversation's tickets, whole rows (a citizen's data export)."""
    return [dict(r._mapping) for r in conn.execute(select(tickets).where(tickets.c.conversation_id == conversation_id))]

"""Conversations and their messages: every message is stored before anyone is told about it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, and_, bindparam, insert, select, update

# The tables live in conversations/tables.py, imported here by name for the store's own statements only (not
# a re-export: insights/, tests and benches import conversations.tables). handoff/, learning/ and kommunchatt/
# use conversations.queries (pyproject.toml's contract forbids them the tables).
from conversations.tables import conversations, messages

STATES = ("bot", "queued", "agent", "closed")


class UnknownConversation(LookupError):
    pass


class Conflict(RuntimeError):
    """The conversation is not in the state the action needs (someone else was faster)."""


@dataclass
class Message:
    id: int
    conversation_id: str
    sender: str
    text: str
    created_at: float
    data: dict = field(default_factory=dict)

    def public(self) -> dict:
        """The shape the widget and the console receive."""
        out = {"id": self.id, "sender": self.sender, "text": self.text, "created_at": self.created_at}
        for key in ("buttons", "url", "custom", "author"):
            if self.data.get(key):
                out[key] = self.data[key]
        return out


def _message(row) -> Message:
    return Message(row.id, row.conversation_id, row.sender, row.text, row.created_at, row.data or {})


# The statements of a message's path, built once: building and cache-keying them costs more than
# running them on SQLite.
_GET = select(conversations).where(conversations.c.id == bindparam("cid"))
_BY_CLIENT = select(messages).where(
    messages.c.conversation_id == bindparam("cid"), messages.c.client_id == bindparam("client")
)
_INSERT = insert(messages)
_TOUCH = update(conversations).where(conversations.c.id == bindparam("cid"))
_TOUCH_AT = _TOUCH.values(updated_at=bindparam("at"))


class ConversationStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, municipality: str, language: str) -> dict:
        now = time.time()
        row = {
            "id": uuid.uuid4().hex,
            "municipality": municipality,
            "language": language,
            "state": "bot",
            "created_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(conversations).values(**row))
        return row

    def get(self, conversation_id: str) -> dict:
        with self.engine.connect() as conn:
            return self.get_in(conn, conversation_id)

    @staticmethod
    def get_in(conn: Connection, conversation_id: str) -> dict:
        row = conn.execute(_GET, {"cid": conversation_id}).first()
        if not row:
            raise UnknownConversation(conversation_id)
        return dict(row._mapping)

    @staticmethod
    def find_in(conn: Connection, conversation_id: str) -> dict | None:
        """The conversation read on `conn` (the caller's transaction), or None if there is none."""
        row = conn.execute(_GET, {"cid": conversation_id}).first()
        return dict(row._mapping) if row else None

    @staticmethod
    def change_in(conn: Connection, seen: dict, **values) -> bool:
        """Change the conversation on `conn` (the caller's transaction) only if its state and holder are
        still what `seen` says: one conditional UPDATE (`WHERE state = ... AND assigned_to = ...`), so of
        two processes taking or releasing the same chat at once exactly one succeeds. Returns whether
        this one did; the caller gives up (or rolls back) otherwise. handoff's assignments take, move and
        release chats through this."""
        holder = conversations.c.assigned_to
        where = and_(
            conversations.c.id == seen["id"],
            conversations.c.state == seen["state"],
            holder.is_(None) if seen["assigned_to"] is None else holder == seen["assigned_to"],
        )
        return conn.execute(update(conversations).where(where).values(**values)).rowcount > 0

    def update(self, conversation_id: str, **values) -> None:
        values["updated_at"] = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(update(conversations).where(conversations.c.id == conversation_id).values(**values))
        if result.rowcount == 0:
            raise UnknownConversation(conversation_id)

    def add_message(
        self, conversation_id: str, sender: str, text: str, data: dict | None = None, client_id: str | None = None
    ) -> tuple[Message, bool]:
        """Store a message; returns (message, created). A repeated `client_id` returns the stored one."""
        with self.engine.begin() as conn:
            message, created = self.add_in(conn, conversation_id, sender, text, data, client_id)
            if created:
                conn.execute(_TOUCH_AT, {"cid": conversation_id, "at": message.created_at})
            return message, created

    def add_replies(self, conversation_id: str, sender: str, replies: list[tuple[str, dict, str | None]]
                    ) -> tuple[list[tuple[Message, bool]], str]:
        """A turn's replies (text, data, client id) in one transaction; returns them and the conversation's state
        after them (an action may have queued it meanwhile)."""
        with self.engine.begin() as conn:
            stored = [self.add_in(conn, conversation_id, sender, text, data, client_id)
                      for text, data, client_id in replies]
            created = [m.created_at for m, new in stored if new]
            if created:
                conn.execute(_TOUCH_AT, {"cid": conversation_id, "at": max(created)})
            return stored, self.get_in(conn, conversation_id)["state"]

    def post(
        self,
        conversation_id: str,
        sender: str,
        text: str,
        data: dict | None = None,
        client_id: str | None = None,
        check: Callable[[dict], None] | None = None,
        then: Callable[[Connection, dict, Message], dict | None] | None = None,
    ) -> tuple[dict, Message, bool]:
        """A message's whole storage in one transaction: read the conversation (`check` may refuse it by
        raising), store the message unless `client_id` was seen, and update the conversation with
        `updated_at` plus what `then(conn, conv, message)` returns. Returns (conversation, message, created)."""
        with self.engine.begin() as conn:
            conv = self.get_in(conn, conversation_id)
            if check:
                check(conv)
            message, created = self.add_in(conn, conversation_id, sender, text, data, client_id)
            if created:
                changes = (then(conn, conv, message) if then else None) or {}
                if changes:
                    changes["updated_at"] = message.created_at
                    conn.execute(_TOUCH.values(**changes), {"cid": conversation_id})
                else:
                    conn.execute(_TOUCH_AT, {"cid": conversation_id, "at": message.created_at})
                conv.update(changes, updated_at=message.created_at)
            return conv, message, created

    @staticmethod
    def add_in(
        conn: Connection,
        conversation_id: str,
        sender: str,
        text: str,
        data: dict | None = None,
        client_id: str | None = None,
    ) -> tuple[Message, bool]:
        """Insert a message on `conn` (the caller's transaction); a repeated `client_id` returns the stored one."""
        if client_id:
            row = conn.execute(_BY_CLIENT, {"cid": conversation_id, "client": client_id}).first()
            if row:
                return _message(row), False
        now = time.time()
        result = conn.execute(
            _INSERT,
            {
                "conversation_id": conversation_id,
                "sender": sender,
                "text": text,
                "data": data or {},
                "client_id": client_id,
                "created_at": now,
            },
        )
        return Message(result.inserted_primary_key[0], conversation_id, sender, text, now, data or {}), True

    @staticmethod
    def recent_in(conn: Connection, conversation_id: str, before_id: int, limit: int) -> list[Message]:
        """Up to `limit` messages before `before_id`, newest first (notes too: the caller filters)."""
        query = (
            select(messages)
            .where(messages.c.conversation_id == conversation_id, messages.c.id < before_id)
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
        return [_message(r) for r in conn.execute(query)]

    def recent(self, conversation_id: str, before_id: int, limit: int) -> list[Message]:
        with self.engine.connect() as conn:
            return self.recent_in(conn, conversation_id, before_id, limit)

    def messages(self, conversation_id: str, after_id: int = 0, include_notes: bool = False) -> list[Message]:
        query = select(messages).where(and_(messages.c.conversation_id == conversation_id, messages.c.id > after_id))
        if not include_notes:
            query = query.where(messages.c.sender != "note")
        with self.engine.connect() as conn:
            return [_message(r) for r in conn.execute(query.order_by(messages.c.id))]

    def in_state(self, *states: str, municipality: str | None = None) -> list[dict]:
        query = select(conversations).where(conversations.c.state.in_(states))
        if municipality:
            query = query.where(conversations.c.municipality == municipality)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(conversations.c.queued_at, conversations.c.created_at))
            return [dict(r._mapping) for r in rows]

"""The tables conversations/ owns: `conversations` and `messages`.

Only conversations/ writes them and only conversations/ and insights/ (reports, read-only) import them;
every other package asks `conversations.store` (one chat) or `conversations.queries` (many chats). The
import-linter contract in pyproject.toml keeps handoff/, learning/ and the app (kommunchatt/) out of this module.
"""

from __future__ import annotations

import time

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from core.db import metadata

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("municipality", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("state", String(16), nullable=False),  # bot | queued | agent | closed
    Column("created_at", Float, nullable=False, default=time.time),
    Column("updated_at", Float, nullable=False, default=time.time),
    Column("handoff_reason", String(32)),
    Column("topic", String(64)),
    Column("queued_at", Float),
    Column("assigned_to", Integer, ForeignKey("users.id")),
    Column("assigned_at", Float),
    Column("first_response_at", Float),
    Column("closed_at", Float),
    Column("outcome", String(32)),
    Column("csat_score", Integer),
    Column("csat_comment", Text),
    Index("ix_conversations_state", "state", "queued_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id"), nullable=False),
    Column("sender", String(16), nullable=False),  # citizen | bot | agent | system | note
    Column("text", Text, nullable=False),
    Column("data", JSON),  # buttons, url, custom payloads, author
    Column("client_id", String(64)),  # the widget's id for a message: resending it is idempotent
    Column("created_at", Float, nullable=False, default=time.time),
    Index("ix_messages_conversation", "conversation_id", "id"),
    Index("ix_messages_client", "conversation_id", "client_id"),
)

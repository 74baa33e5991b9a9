"""Frozen copy of the schema as `metadata.create_all` made it before migrations (kommunchatt/db.py
at commit 734ecbb, the last commit before Alembic): the upgrade tests create a database with it and
migrate that database to the current head. Never edit: it stands for databases already in use.
"""

import time

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

municipalities = Table(
    "municipalities",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("settings", JSON, nullable=False, default=dict),
)

kb_entries = Table(
    "kb_entries",
    metadata,
    Column("municipality", String(64), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", Float, nullable=False, default=time.time),
    Column("updated_by", String(100)),
)

kb_audit = Table(
    "kb_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("entry_id", String(128), nullable=False),
    Column("action", String(16), nullable=False),  # create | update | delete
    Column("actor", String(100)),
    Column("at", Float, nullable=False, default=time.time),
    Column("before", JSON),
    Column("after", JSON),
)

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

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("display_name", String(200)),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # agent | webmaster | admin
    Column("languages", JSON, nullable=False, default=list),
    Column("municipalities", JSON, nullable=False, default=list),
    Column("status", String(16), nullable=False, default="offline"),
    Column("max_chats", Integer, nullable=False, default=3),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False, default=time.time),
)

auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False, default=time.time),
    Column("expires_at", Float, nullable=False),
)

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
)

notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("area", String(200)),  # where: a street, a school, a district ("" = the whole municipality)
    Column("texts", JSON, nullable=False),  # {language: text}
    Column("keywords", JSON, nullable=False, default=list),  # extra words that make a question match
    Column("url", String(500)),
    Column("valid_from", Float, nullable=False),
    Column("valid_until", Float, nullable=False),
    Column("created_by", String(100)),
    Column("created_at", Float, nullable=False, default=time.time),
    Column("updated_at", Float, nullable=False, default=time.time),
    Index("ix_notices_validity", "municipality", "valid_until"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # auto | claim | transfer
    Column("queued_at", Float),  # the conversation's queued_at when it was taken (waiting-time reports)
    Column("wait_seconds", Float),  # set when the citizen waited in the queue for this assignment
    Column("started_at", Float, nullable=False),
    Column("first_response_at", Float),
    Column("ended_at", Float),
    Column("end_reason", String(16)),  # closed | handback | transfer | dropped | requeued
    Index("ix_assignments_conversation", "conversation_id", "started_at"),
    Index("ix_assignments_started", "started_at"),
)

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

canned_responses = Table(
    "canned_responses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("shortcut", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("texts", JSON, nullable=False),  # {"sv": "...", "en": "..."}
    Column("updated_at", Float, nullable=False, default=time.time),
    Column("updated_by", String(100)),
    Index("ux_canned_shortcut", "municipality", "shortcut", unique=True),
)

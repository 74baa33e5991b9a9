"""The tables core/users.py owns: `users` and `auth_sessions`.

Only core/users.py writes them and only core/ and insights/ (reports, read-only) import them; other
packages ask `core.users` (UserStore, or the functions over a Connection such as `available`, `by_ids`,
`names`). The import-linter contract in pyproject.toml keeps handoff/, learning/ and the app out of here.
"""

from __future__ import annotations

import time

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Integer, String, Table

from core.db import metadata

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

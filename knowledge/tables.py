"""The tables knowledge/ owns: `kb_entries` (the entries per municipality) and `kb_audit` (every change).

Only knowledge/store.py writes them and only knowledge/ and insights/ (read-only) import them; every other
package asks `knowledge.store` (KnowledgeStore) or `knowledge.queries` (functions over a Connection). The
import-linter contract in pyproject.toml keeps the other packages out of this module.
"""

from __future__ import annotations

import time

from sqlalchemy import JSON, Column, Float, Integer, String, Table

from core.db import metadata

kb_entries = Table(
    "kb_entries",
    metadata,
    Column("municipality", String(64), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("data", JSON, nullable=False),  # the public file format (knowledge/kbfile.py)
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

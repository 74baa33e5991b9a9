"""The whole database schema in one place: imports every module that defines a table on `core.db.metadata`.

Tables live next to the store that owns them (core/municipalities.py, core/users.py, knowledge/store.py,
knowledge/notices.py, conversations/store.py, handoff/assignment.py, handoff/presence.py, handoff/canned.py,
handoff/tickets.py). Only this top-layer module sees them all, so `metadata` here is complete: use it for
creating tables and for migrations (`from kommunchatt.schema import metadata`). A new table: define it next
to its store on `core.db.metadata` and add its module to the imports and `TABLE_MODULES` below.
"""

from __future__ import annotations

from sqlalchemy import Engine

import conversations.store
import core.municipalities
import core.users
import handoff.assignment
import handoff.canned
import handoff.presence
import handoff.tickets
import knowledge.notices
import knowledge.store
from core.db import metadata

TABLE_MODULES = (core.municipalities, core.users, knowledge.store, knowledge.notices, conversations.store,
                 handoff.assignment, handoff.presence, handoff.canned, handoff.tickets)

__all__ = ["TABLE_MODULES", "init_db", "metadata"]


def init_db(engine: Engine) -> None:
    """Create missing tables (idempotent) and the default municipality."""
    metadata.create_all(engine)
    core.municipalities.ensure_default(engine)

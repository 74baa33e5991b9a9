"""The whole database schema in one place: imports every module that defines a table on `core.db.metadata`.

Tables live in their owner's package. Where other packages must not build SQL on them they have a module of
their own (conversations/tables.py, core/user_tables.py, knowledge/tables.py: docs/architecture.md, "Tables
and their owners"), which the app may not import either (pyproject.toml's forbidden contracts), so they are
reached here through the store that imports them (conversations/store.py, core/users.py,
knowledge/store.py). The others are defined next to their store (core/municipalities.py,
knowledge/notices.py, knowledge/index_status.py, conversations/personal_data.py, handoff/assignment.py,
handoff/access_log.py, handoff/presence.py, handoff/canned.py, handoff/tickets.py, learning/*,
insights/dismissals.py). Only this top-layer module sees them all, so `metadata` here is complete: use it
for migrations (`from kommunchatt.schema import metadata`; migrations/env.py). A new table or column:
define it in its owner's table module or next to its store on `core.db.metadata`, add a new module to the
imports and `TABLE_MODULES` below, and add a revision (docs/migrations.md).
"""

from __future__ import annotations

from sqlalchemy import Engine

import conversations.personal_data
import conversations.store
import core.municipalities
import core.users
import handoff.access_log
import handoff.assignment
import handoff.canned
import handoff.presence
import handoff.tickets
import insights.dismissals
import knowledge.index_status
import knowledge.notices
import knowledge.store
import learning.claims
import learning.item_history
import learning.links
import learning.owners
import learning.suggestions
import learning.worklist
from core.db import metadata

TABLE_MODULES = (
    core.municipalities,
    core.users,
    knowledge.store,
    knowledge.index_status,
    knowledge.notices,
    conversations.store,
    conversations.personal_data,
    handoff.assignment,
    handoff.access_log,
    handoff.presence,
    handoff.canned,
    handoff.tickets,
    learning.suggestions,
    learning.claims,
    learning.owners,
    learning.worklist,
    learning.item_history,
    learning.links,
    insights.dismissals,
)

__all__ = ["TABLE_MODULES", "init_db", "metadata"]


def init_db(engine: Engine) -> None:
    """Bring the database to the newest schema revision (kommunchatt/migrate.py; never `create_all`,
    which would leave existing tables without new columns) and add the default municipality."""
    from kommunchatt.migrate import upgrade

    upgrade(engine)
    core.municipalities.ensure_default(engine)

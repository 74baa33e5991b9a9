"""Schema migrations: every database reaches the current schema through the revisions in migrations/.

`upgrade(engine)` is how a database is created or brought up to date (`init_db`, `kommunchatt db
upgrade`, the container's init step). PostgreSQL replicas starting together are serialised by an
advisory lock held for the whole upgrade. A database created before migrations existed (by
`metadata.create_all`, no `alembic_version` table) is adopted: the initial revision creates only
the tables it lacks, and afterwards the schema must match the models, else `MigrationError` names
the differences instead of the service failing later on a missing column. How to add a revision:
docs/migrations.md.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlalchemy.exc import SQLAlchemyError

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
VERSION_TABLE = "alembic_version"
ADVISORY_LOCK = 0x6B63_6D67  # any constant: one migrating process per PostgreSQL database

log = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """The database's schema cannot be brought to the models' schema without a person's help."""


def alembic_config() -> Config:
    """Alembic's configuration without an ini file (migrations/env.py reads the rest)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision (read once per process: the revision files do not change under it)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def include_name(name: str | None, type_: str, _parents: dict, metadata: MetaData) -> bool:
    """Compare only our own tables: Rasa's tracker (`events`) may share the PostgreSQL database."""
    return type_ != "table" or name in metadata.tables


def schema_drift(conn: Connection, metadata: MetaData) -> list:
    """Differences between the database and the models, as alembic's autogenerate sees them."""
    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "include_name": lambda name, type_, parents: include_name(name, type_, parents, metadata),
        },
    )
    return compare_metadata(context, metadata)


def describe(drift: list) -> list[str]:
    """Alembic's difference tuples as short phrases ("add_column messages.client_id")."""
    phrases = []
    for diff in drift:
        change = diff[0] if isinstance(diff, list) else diff  # column modifications come as lists
        kind = change[0]
        if kind in ("add_table", "remove_table"):
            target = change[1].name
        elif kind in ("add_column", "remove_column"):
            target = f"{change[2]}.{change[3].name}"
        elif kind.startswith("modify_"):
            target = f"{change[2]}.{change[3]}"
        else:  # indexes, constraints, foreign keys
            target = f"{change[1].table.name}.{change[1].name or ''}"
        phrases.append(f"{kind} {target}")
    return phrases


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to `revision` (default: the newest); returns the revision it is at."""
    from kommunchatt.schema import metadata

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        current = current_revision(conn)
        if revision == "head" and current == head_revision():
            return current
        if current is None and set(inspect(conn).get_table_names()) & set(metadata.tables):
            _adopt(conn, revision, metadata)
        else:
            _run_revisions(conn, revision)
        return current_revision(conn)


def _run_revisions(conn: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn  # migrations/env.py runs on this connection and transaction
    command.upgrade(config, revision)


def _adopt(conn: Connection, revision: str, metadata: MetaData) -> None:
    """Run the revisions over a database made by `create_all`; it must then match the models."""
    before = describe(schema_drift(conn, metadata))
    log.warning(
        "adopting a database created before migrations (differences from the models: %s)", "; ".join(before) or "none"
    )
    try:
        _run_revisions(conn, revision)
    except SQLAlchemyError as exc:  # e.g. an index on a column the old database lacks
        raise MigrationError(_not_adoptable(before, exc)) from exc
    left = describe(schema_drift(conn, metadata)) if revision == "head" else []
    if left:
        raise MigrationError(_not_adoptable(left))


def _not_adoptable(differences: list[str], error: Exception | None = None) -> str:
    cause = f" ({type(error).__name__}: {getattr(error, 'orig', error)})" if error else ""
    return (
        f"The database was created by an older Kommunchatt without migrations and differs from the current "
        f"schema in ways no revision covers: {'; '.join(differences)}{cause}. Add a revision for them "
        "(docs/migrations.md) or move the data into a fresh database."
    )

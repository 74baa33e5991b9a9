"""Schema migrations (Alembic) on SQLite and PostgreSQL.

- a fresh database reaches the head revision and then matches the models exactly (this is the test
  that fails when someone changes a table without adding a revision: docs/migrations.md);
- a database made by the last commit before migrations (`metadata.create_all` of the frozen schema in
  tests/data/schema_before_migrations.py) is adopted and upgraded with every row intact;
- a legacy database that differs from what any revision knows is refused with the differences named;
- replicas starting together on PostgreSQL migrate once (advisory lock), not twice.
"""

from __future__ import annotations

import importlib.util
import threading
import time

import pytest
from sqlalchemy import select, text

from core.db import make_engine
from kommunchatt import migrate
from kommunchatt.schema import metadata
from tests.conftest import ROOT

pytestmark = pytest.mark.postgres


def legacy_schema():
    """The frozen pre-migration schema module (its own MetaData, never the models')."""
    spec = importlib.util.spec_from_file_location(
        "schema_before_migrations", ROOT / "tests" / "data" / "schema_before_migrations.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fill_legacy(engine, old) -> None:
    """A little of everything a municipality has after some use, written with the old schema."""
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            old.municipalities.insert(),
            [
                {"id": "default", "name": "Default", "settings": {}},
                {"id": "norrvik", "name": "Norrviks kommun", "settings": {"hours": {"mon": ["08:00", "16:00"]}}},
            ],
        )
        conn.execute(
            old.users.insert().values(
                id=1,
                username="anna",
                password_hash="x" * 60,
                role="agent",
                languages=["sv", "ar"],
                municipalities=["norrvik"],
                status="offline",
                max_chats=3,
                active=True,
                created_at=now,
            )
        )
        conn.execute(
            old.kb_entries.insert().values(
                municipality="norrvik", id="sophamtning", data={"answers": {"sv": "Tisdagar."}}, updated_at=now
            )
        )
        conn.execute(
            old.conversations.insert().values(
                id="c1",
                municipality="norrvik",
                language="sv",
                state="closed",
                created_at=now,
                updated_at=now,
                assigned_to=1,
                csat_score=5,
                csat_comment="Tack för hjälpen, Åsa!",
            )
        )
        conn.execute(
            old.messages.insert(),
            [
                {
                    "conversation_id": "c1",
                    "sender": "citizen",
                    "text": "När hämtas soporna?",
                    "created_at": now,
                    "client_id": "m-1",
                    "data": None,
                },
                {
                    "conversation_id": "c1",
                    "sender": "bot",
                    "text": "Tisdagar.",
                    "data": {"buttons": []},
                    "created_at": now,
                    "client_id": None,
                },
            ],
        )
        conn.execute(
            old.tickets.insert().values(
                conversation_id="c1",
                municipality="norrvik",
                contact="070-123 45 67",
                message="Ring mig",
                status="open",
                created_at=now,
            )
        )


def rows(engine, tables) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(select(*t.columns)).all()), key=repr) for t in tables}


def test_a_fresh_database_reaches_head_and_matches_the_models(database_url):
    engine = make_engine(database_url)
    try:
        assert migrate.upgrade(engine) == migrate.head_revision()
        assert migrate.upgrade(engine) == migrate.head_revision()  # again: nothing to do
        with engine.connect() as conn:
            drift = migrate.schema_drift(conn, metadata)
        assert drift == [], (
            "the models and the migrations differ: add a revision (`alembic revision --autogenerate`, "
            f"docs/migrations.md): {migrate.describe(drift)}"
        )
    finally:
        engine.dispose()


def test_a_database_made_before_migrations_is_upgraded_with_its_data(database_url):
    old = legacy_schema()
    engine = make_engine(database_url)
    try:
        old.metadata.create_all(engine)
        fill_legacy(engine, old)
        before = rows(engine, old.metadata.sorted_tables)
        assert migrate.upgrade(engine) == migrate.head_revision()
        assert rows(engine, old.metadata.sorted_tables) == before
        with engine.connect() as conn:
            assert migrate.schema_drift(conn, metadata) == []
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == migrate.head_revision()
        # the ids go on where they were (SQLite rowids, PostgreSQL sequences)
        with engine.begin() as conn:
            new_id = conn.execute(
                old.messages.insert().values(conversation_id="c1", sender="agent", text="Hej!", created_at=time.time())
            ).inserted_primary_key[0]
        assert new_id == 3
    finally:
        engine.dispose()


def test_a_database_at_the_first_revision_is_upgraded_to_head(database_url):
    """The path every later revision takes: data written at one revision survives the upgrade."""
    old = legacy_schema()
    engine = make_engine(database_url)
    try:
        first = migrate.upgrade(engine, "0001")
        assert first == "0001"
        fill_legacy(engine, old)  # revision 0001 is the pre-migration schema
        before = rows(engine, old.metadata.sorted_tables)
        assert migrate.upgrade(engine) == migrate.head_revision()
        assert rows(engine, old.metadata.sorted_tables) == before
    finally:
        engine.dispose()


def test_a_legacy_database_that_differs_is_refused_with_the_differences(tmp_path):
    old = legacy_schema()
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        old.metadata.create_all(engine)
        with engine.begin() as conn:  # an even older database: before idempotent resends
            conn.execute(text("DROP INDEX ix_messages_client"))
            conn.execute(text("ALTER TABLE messages DROP COLUMN client_id"))
        with pytest.raises(migrate.MigrationError, match=r"add_column messages\.client_id"):
            migrate.upgrade(engine)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) is None  # not stamped: the next start refuses again
    finally:
        engine.dispose()


def test_replicas_starting_together_on_postgresql_migrate_once():
    from tests.conftest import fresh_pg_database

    url, drop = fresh_pg_database()
    from core.config import database_url

    engines = [make_engine(database_url(ROOT, url)) for _ in range(3)]
    results, errors = [], []

    def start(engine) -> None:
        try:
            results.append(migrate.upgrade(engine))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=start, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert results == [migrate.head_revision()] * 3
    finally:
        for engine in engines:
            engine.dispose()
        drop()

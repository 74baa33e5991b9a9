"""Backup and restore (`kommunchatt backup` / `restore`) on SQLite and PostgreSQL, Rasa's tracker included.

Rasa's tracker store is written and read back by Rasa itself (the .venv-rasa environment, our
EnvSQLTrackerStore), so the test proves Rasa finds its conversations after a restore, not just rows.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.config import database_url as resolve_url
from core.db import make_engine
from kommunchatt.backup import BackupError, Install, backup, read_manifest, restore
from kommunchatt.runner import tracker_env
from kommunchatt.schema import init_db, metadata
from tests.conftest import ROOT, fresh_pg_database

pytestmark = pytest.mark.postgres
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
RASA_TRACKER = """
import asyncio, json, sys
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from bot.tracker_store import EnvSQLTrackerStore

async def main():
    store = EnvSQLTrackerStore(domain=Domain.empty())
    if sys.argv[1] == "save":
        events = [ActionExecuted("action_listen"), UserUttered("När hämtas soporna i Norrvik?"),
                  BotUttered("På tisdagar."), ActionExecuted("action_listen")]
        await store.save(DialogueStateTracker.from_events("citizen-1", events))
    tracker = await store.retrieve("citizen-1")
    print(json.dumps([e.text for e in tracker.events if e.type_name in ("user", "bot")] if tracker else None))

asyncio.run(main())
"""


def rasa_tracker(action: str, url: str, data_dir: Path) -> list[str] | None:
    """Save (and read) or only read citizen-1's conversation through Rasa's own tracker store."""
    if not RASA_PYTHON.exists():
        pytest.fail("the Rasa environment is missing: run `make setup`")
    env = {**os.environ, "PYTHONPATH": str(ROOT), **tracker_env(url, data_dir)}
    result = subprocess.run(
        [str(RASA_PYTHON), "-c", RASA_TRACKER, action], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def install(url: str, data_dir: Path) -> Install:
    tracker = tracker_env(url, data_dir)
    return Install(url, Path(tracker["RASA_TRACKER_DB"]) if tracker["RASA_TRACKER_DIALECT"] == "sqlite" else None)


def fill(engine, conversations: int = 3) -> None:
    """Conversations with messages, a user, knowledge entries and a ticket: what a restore must keep."""
    t = metadata.tables
    now = time.time()
    with engine.begin() as conn:
        conn.execute(t["municipalities"].insert().values(id="norrvik", name="Norrviks kommun", settings={"a": [1]}))
        conn.execute(
            t["users"]
            .insert()
            .values(
                username="anna",
                password_hash="$2b$" + "x" * 56,
                role="agent",
                languages=["sv", "ar"],
                municipalities=["norrvik"],
                created_at=now,
            )
        )
        conn.execute(
            t["kb_entries"]
            .insert()
            .values(
                municipality="norrvik",
                id="sophamtning",
                data={"answers": {"sv": "Tisdagar.", "ar": "الثلاثاء"}},
                updated_at=now,
            )
        )
        for i in range(conversations):
            conn.execute(
                t["conversations"]
                .insert()
                .values(
                    id=f"c{i}", municipality="norrvik", language="sv", state="closed", created_at=now, updated_at=now
                )
            )
            conn.execute(
                t["messages"].insert(),
                [
                    {
                        "conversation_id": f"c{i}",
                        "sender": "citizen",
                        "text": f"Fråga {i} om bygglov",
                        "created_at": now,
                    },
                    {
                        "conversation_id": f"c{i}",
                        "sender": "bot",
                        "text": "Svar",
                        "data": {"buttons": []},
                        "created_at": now,
                    },
                ],
            )
        conn.execute(
            t["tickets"]
            .insert()
            .values(
                conversation_id="c0",
                municipality="norrvik",
                contact="anna@example.se",
                message="Ring mig",
                created_at=now,
            )
        )


def contents(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            name: sorted(map(tuple, conn.execute(select(table)).all()), key=repr)
            for name, table in metadata.tables.items()
        }


def fresh_install(kind: str, tmp_path: Path, name: str) -> tuple[str, Path, callable]:
    data_dir = tmp_path / name
    data_dir.mkdir()
    if kind == "sqlite":
        return resolve_url(data_dir), data_dir, lambda: None
    url, drop = fresh_pg_database()
    return resolve_url(data_dir, url), data_dir, drop


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_backup_restores_into_a_fresh_install_with_everything_intact(kind, tmp_path):
    source_url, source_dir, drop_source = fresh_install(kind, tmp_path, "source")
    target_url, target_dir, drop_target = fresh_install(kind, tmp_path, "target")
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        init_db(source)
        fill(source)
        assert rasa_tracker("save", source_url, source_dir) == ["När hämtas soporna i Norrvik?", "På tisdagar."]
        expected = contents(source)
        archive = tmp_path / "backups" / "kommunchatt.tar.gz"
        manifest = backup(install(source_url, source_dir), archive)
        assert manifest["rows"]["messages"] == 6 and manifest["database"] == kind
        assert read_manifest(archive) == manifest

        restore(install(target_url, target_dir), archive)
        target.dispose()
        assert contents(target) == expected
        assert rasa_tracker("read", target_url, target_dir) == ["När hämtas soporna i Norrvik?", "På tisdagar."]
        with target.begin() as conn:  # ids go on after the restored ones (sequences restored too)
            new_id = conn.execute(
                metadata.tables["messages"]
                .insert()
                .values(conversation_id="c0", sender="agent", text="Hej!", created_at=time.time())
            ).inserted_primary_key[0]
        assert new_id == 7
    finally:
        source.dispose()
        target.dispose()
        drop_source()
        drop_target()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_restore_over_data_needs_replace_and_then_replaces_it(kind, tmp_path):
    source_url, source_dir, drop_source = fresh_install(kind, tmp_path, "source")
    target_url, target_dir, drop_target = fresh_install(kind, tmp_path, "target")
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        init_db(source)
        fill(source, conversations=2)
        init_db(target)
        fill(target, conversations=5)
        archive = tmp_path / "b.tar.gz"
        backup(install(source_url, source_dir), archive)
        kept = contents(target)
        with pytest.raises(BackupError, match=r"already holds data \(5 conversations.*--replace"):
            restore(install(target_url, target_dir), archive)
        assert contents(target) == kept  # refused: nothing lost
        restore(install(target_url, target_dir), archive, replace=True)
        target.dispose()
        assert contents(target) == contents(source)
    finally:
        source.dispose()
        target.dispose()
        drop_source()
        drop_target()


def test_a_damaged_or_foreign_file_is_refused_before_anything_changes(tmp_path):
    source_url, source_dir, _ = fresh_install("sqlite", tmp_path, "source")
    target_url, target_dir, _ = fresh_install("sqlite", tmp_path, "target")
    engine = make_engine(source_url)
    init_db(engine)
    fill(engine)
    engine.dispose()
    archive = tmp_path / "good.tar.gz"
    backup(install(source_url, source_dir), archive)
    target = install(target_url, target_dir)

    foreign = tmp_path / "notes.tar.gz"
    foreign.write_bytes(os.urandom(2000))
    with pytest.raises(BackupError, match="not a Kommunchatt backup"):
        restore(target, foreign)
    with pytest.raises(BackupError, match="does not exist"):
        restore(target, tmp_path / "missing.tar.gz")

    damaged = tmp_path / "damaged.tar.gz"  # same manifest, another database file
    with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "kommunchatt.db":
                data = data[:-4096] + bytes(4096)
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(BackupError, match="damaged"):
        restore(target, damaged)

    pg = Install("postgresql+psycopg://postgres@127.0.0.1:5432/nowhere", None)
    with pytest.raises(BackupError, match="sqlite backup and this install uses postgresql"):
        restore(pg, archive)
    assert not Path(target_url.removeprefix("sqlite:///")).exists()  # the target was never touched


def test_a_sqlite_backup_taken_while_the_service_writes_is_consistent(tmp_path):
    url, data_dir, _ = fresh_install("sqlite", tmp_path, "live")
    engine = make_engine(url)
    init_db(engine)
    fill(engine, conversations=1)
    stop = threading.Event()
    messages = metadata.tables["messages"]

    def write() -> None:
        while not stop.is_set():
            with engine.begin() as conn:
                conn.execute(
                    messages.insert().values(conversation_id="c0", sender="citizen", text="mer", created_at=time.time())
                )

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.3)
        archives = [tmp_path / f"live-{i}.tar.gz" for i in range(3)]
        for archive in archives:
            backup(install(url, data_dir), archive)
    finally:
        stop.set()
        writer.join()
    counts = []
    for i, archive in enumerate(archives):
        target_url, target_dir, _ = fresh_install("sqlite", tmp_path, f"restored-{i}")
        restore(install(target_url, target_dir), archive)
        restored = make_engine(target_url)
        with restored.connect() as conn:
            n, top = conn.execute(select(func.count(), func.max(messages.c.id))).one()
        restored.dispose()
        assert n == top  # no gaps: a snapshot of committed transactions, never a torn copy
        counts.append(n)
    assert counts == sorted(counts) and counts[0] > 2  # taken while the writer went on
    engine.dispose()


def test_the_command_line_backs_up_restores_and_refuses_to_overwrite(tmp_path):
    """`kommunchatt backup` / `restore` as an operator runs them: exit codes and what they print."""
    source_url, source_dir, _ = fresh_install("sqlite", tmp_path, "source")
    engine = make_engine(source_url)
    init_db(engine)
    fill(engine)
    engine.dispose()

    def kommunchatt(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        return subprocess.run([sys.executable, "-m", "kommunchatt.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env={**env, "KOMMUNCHATT_DATA_DIR": str(data_dir)})

    archive = tmp_path / "nightly.tar.gz"
    done = kommunchatt(source_dir, "backup", str(archive))
    assert done.returncode == 0 and "3 conversations, 6 messages, 1 kb_entries, 1 users" in done.stdout, done.stderr
    target_dir = tmp_path / "target"
    done = kommunchatt(target_dir, "restore", str(archive))
    assert done.returncode == 0 and "restored" in done.stdout, done.stderr
    again = kommunchatt(target_dir, "restore", str(archive))
    assert again.returncode == 1 and "already holds data (3 conversations" in again.stderr


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_older_backup_restores_over_a_newer_schema_and_is_migrated(kind, tmp_path):
    """Rolling back after an upgrade: a backup made at revision 0001 replaces a database at head, whose
    newer tables (some referencing `messages`) must not block it, and is then migrated to head."""
    from kommunchatt import migrate
    from tests.test_migrations import fill_legacy, legacy_schema, rows

    source_url, source_dir, drop_source = fresh_install(kind, tmp_path, "old")
    target_url, target_dir, drop_target = fresh_install(kind, tmp_path, "new")
    source, target = make_engine(source_url), make_engine(target_url)
    old = legacy_schema()
    try:
        migrate.upgrade(source, "0001")
        fill_legacy(source, old)
        expected = rows(source, old.metadata.sorted_tables)
        archive = tmp_path / "before-upgrade.tar.gz"
        assert backup(install(source_url, source_dir), archive)["revision"] == "0001"

        init_db(target)
        fill(target)
        if "message_originals" in metadata.tables:  # a newer table with a foreign key to messages
            with target.begin() as conn:
                conn.execute(metadata.tables["message_originals"].insert().values(
                    message_id=1, conversation_id="c0", text="Fråga 0 om bygglov"))
        restore(install(target_url, target_dir), archive, replace=True)
        target.dispose()
        assert rows(target, old.metadata.sorted_tables) == expected
        with target.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
            assert migrate.schema_drift(conn, metadata) == []
    finally:
        source.dispose()
        target.dispose()
        drop_source()
        drop_target()

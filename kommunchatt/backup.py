"""Backup and restore of one install: the service's database and Rasa's tracker store, in one file.

`kommunchatt backup FILE` writes a tar archive with a manifest (database kind, schema revision,
tables, row counts, a SHA-256 per member) and
- SQLite: copies of `kommunchatt.db` and Rasa's `rasa-tracker.db`, taken with SQLite's online
  backup API (a consistent snapshot while the service and Rasa keep writing);
- PostgreSQL: one `pg_dump --format=custom` of the service's tables, `alembic_version` and Rasa's
  `events` table (the tracker store shares the service's database, see `runner.tracker_env`).

`kommunchatt restore FILE` checks the archive (manifest, checksums, database kind, SQLite
integrity) before it touches anything, refuses to overwrite a database that holds data unless told
to (`--replace`), then restores (SQLite: the backup API into the live files; PostgreSQL: our tables
dropped and the dump replayed by psql in one transaction, all or nothing) and upgrades the schema to
the current revision, so a backup from an older version restores into a newer one (a roll-back).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, func, inspect, make_url, select

from core.db import make_engine
from kommunchatt.migrate import VERSION_TABLE

FORMAT = 1
MANIFEST = "manifest.json"
SERVICE_DB = "kommunchatt.db"
TRACKER_DB = "rasa-tracker.db"
PG_DUMP = "database.dump"
RASA_TABLES = ("events",)  # Rasa's SQLTrackerStore
# Tables whose rows mean "this database is in use" (a fresh one has only the default municipality).
DATA_TABLES = ("conversations", "kb_entries", "users", "tickets")


class BackupError(RuntimeError):
    """A backup or restore that cannot go ahead, with one sentence naming the cause and the fix."""


@dataclass(frozen=True)
class Install:
    """Where one install keeps its data: the service's database URL and Rasa's SQLite file."""

    database_url: str
    tracker_db: Path | None  # SQLite mode: Rasa's own file; PostgreSQL mode: None (same database)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path:
        return Path(make_url(self.database_url).database or "")


def install_from_settings() -> Install:
    """The install the environment describes (the same variables the runner and service read)."""
    from core.config import load_settings
    from kommunchatt.runner import tracker_env

    settings = load_settings()
    tracker = tracker_env(settings.database_url, settings.data_dir)
    is_sqlite = tracker["RASA_TRACKER_DIALECT"] == "sqlite"
    return Install(settings.database_url, Path(tracker["RASA_TRACKER_DB"]) if is_sqlite else None)


# ----------------------------------------------------------------------------- backup


def backup(install: Install, target: Path) -> dict:
    """Write the archive to `target` (atomically: a partial file never has the final name)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(install.database_url)
    try:
        with tempfile.TemporaryDirectory(prefix="kommunchatt-backup-") as tmp:
            work = Path(tmp)
            if install.is_sqlite:
                members = {SERVICE_DB: _sqlite_snapshot(install.sqlite_path, work / SERVICE_DB)}
                if install.tracker_db and install.tracker_db.exists():
                    members[TRACKER_DB] = _sqlite_snapshot(install.tracker_db, work / TRACKER_DB)
            else:
                members = {PG_DUMP: _pg_dump(engine, work / PG_DUMP)}
            manifest = {
                "format": FORMAT,
                "created_at": time.time(),
                "database": "sqlite" if install.is_sqlite else "postgresql",
                "revision": schema_revision(engine),
                "rows": row_counts(engine),
                "files": {name: _sha256(path) for name, path in members.items()},
            }
            partial = target.with_name(target.name + ".partial")
            with tarfile.open(partial, "w:gz") as tar:
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
                for name, path in members.items():
                    tar.add(path, arcname=name)
            os.replace(partial, target)
    finally:
        engine.dispose()
    return manifest


def _sqlite_snapshot(source: Path, dest: Path) -> Path:
    """A consistent copy of a live SQLite database (one backup step holds one read transaction)."""
    if not source.exists():
        raise BackupError(f"There is no database at {source}: check KOMMUNCHATT_DATA_DIR / DATABASE_URL.")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return dest


def _pg_env(url: str) -> dict[str, str]:
    """libpq's variables for a SQLAlchemy URL: the password never appears on a command line."""
    parsed = make_url(url)
    env = {
        **os.environ,
        "PGHOST": parsed.host or "127.0.0.1",
        "PGPORT": str(parsed.port or 5432),
        "PGDATABASE": parsed.database or "postgres",
    }
    if parsed.username:
        env["PGUSER"] = parsed.username
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    if not shutil.which(command[0]):
        raise BackupError(
            f"{command[0]} is not installed: install PostgreSQL's client tools "
            f"(Debian: apt-get install postgresql-client) to {what}."
        )
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed to {what}: {result.stderr.strip()[-800:]}")


def _pg_dump(engine: Engine, dest: Path) -> Path:
    """The service's tables, the schema revision and Rasa's tracker events, in pg_dump's custom format."""
    tables = sorted(set(inspect(engine).get_table_names()) & set(_backed_up_tables()))
    args = [arg for table in tables for arg in ("--table", f'public."{table}"')]
    _run(
        ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--file", str(dest), *args],
        _pg_env(engine.url.render_as_string(hide_password=False)),
        "back up the database",
    )
    return dest


def _backed_up_tables() -> list[str]:
    from kommunchatt.schema import metadata

    return [*metadata.tables, VERSION_TABLE, *RASA_TABLES]


# ----------------------------------------------------------------------------- restore


def read_manifest(archive: Path) -> dict:
    """The archive's manifest, after checking that it is one of ours and that no member is damaged."""
    archive = Path(archive)
    if not archive.is_file():
        raise BackupError(f"{archive} does not exist.")
    try:
        with tarfile.open(archive, "r:*") as tar:
            with _open_member(tar, MANIFEST) as handle:
                manifest = json.load(handle)
            if manifest.get("format") != FORMAT:
                raise BackupError(
                    f"{archive} is a backup of format {manifest.get('format')}; this version reads format {FORMAT}."
                )
            for name, digest in manifest["files"].items():
                with _open_member(tar, name) as handle:
                    actual = _sha256(handle)
                if actual != digest:
                    raise BackupError(f"{archive}: {name} does not match its checksum; the file is damaged.")
    except (tarfile.TarError, json.JSONDecodeError, KeyError, EOFError, OSError) as exc:
        raise BackupError(f"{archive} is not a Kommunchatt backup ({exc}); nothing was restored.") from exc
    return manifest


def restore(install: Install, archive: Path, replace: bool = False) -> dict:
    """Restore `archive` into the install; returns the manifest. Upgrades the schema afterwards."""
    from kommunchatt.schema import init_db

    manifest = read_manifest(archive)
    kind = "sqlite" if install.is_sqlite else "postgresql"
    if manifest["database"] != kind:
        raise BackupError(
            f"{archive} is a {manifest['database']} backup and this install uses {kind}: restore it "
            "into an install of the same kind, then move the data with `kommunchatt kb export/import`."
        )
    engine = make_engine(install.database_url)
    try:
        in_use = {table: n for table, n in row_counts(engine).items() if table in DATA_TABLES and n}
    finally:
        engine.dispose()
    if in_use and not replace:
        held = ", ".join(f"{n} {table}" for table, n in sorted(in_use.items()))
        raise BackupError(
            f"The database already holds data ({held}); nothing was restored. Take a backup of it "
            "first (`kommunchatt backup FILE`), then restore with --replace to overwrite it."
        )
    with tempfile.TemporaryDirectory(prefix="kommunchatt-restore-") as tmp:
        work = Path(tmp)
        with tarfile.open(archive, "r:*") as tar:
            for name in manifest["files"]:
                with _open_member(tar, name) as src, open(work / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        if install.is_sqlite:
            _restore_sqlite(install, work)
        else:
            _restore_postgresql(install, work / PG_DUMP)
    engine = make_engine(install.database_url)
    try:
        init_db(engine)  # a backup from an older version: bring it to the current schema
    finally:
        engine.dispose()
    return manifest


def _restore_postgresql(install: Install, dump: Path) -> None:
    """Replace our tables by the dump's, in one transaction: all of it or nothing.

    Every table of ours that exists is dropped first (CASCADE), not only those in the dump: a backup
    from an older version lacks newer tables, which the upgrade after the restore creates again (and
    which would otherwise block dropping the tables they reference)."""
    env = _pg_env(install.database_url)
    script = dump.with_suffix(".sql")
    _run(["pg_restore", "--no-owner", "--no-privileges", "--file", str(script), str(dump)], env,
         "read the backup")
    engine = make_engine(install.database_url)
    try:
        present = sorted(set(inspect(engine).get_table_names()) & set(_backed_up_tables()))
    finally:
        engine.dispose()
    drops = "".join(f'DROP TABLE IF EXISTS public."{table}" CASCADE;\n' for table in present)
    combined = dump.with_name("restore.sql")
    with open(combined, "w", encoding="utf-8") as out, open(script, encoding="utf-8") as restored:
        out.write(drops)
        shutil.copyfileobj(restored, out, 1 << 20)
    _run(["psql", "--quiet", "--no-psqlrc", "--single-transaction", "--set", "ON_ERROR_STOP=1",
          "--file", str(combined)], env, "restore the database")


def _restore_sqlite(install: Install, work: Path) -> None:
    """Check every file first, then copy each over the live database with the backup API."""
    pairs = [(work / SERVICE_DB, install.sqlite_path)]
    if (work / TRACKER_DB).exists():
        if install.tracker_db is None:
            raise BackupError("The backup holds Rasa's tracker store but this install has no tracker file.")
        pairs.append((work / TRACKER_DB, install.tracker_db))
    for source, _dest in pairs:
        with sqlite3.connect(source) as conn:
            status = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if status != "ok":
            raise BackupError(f"{source.name} in the backup is damaged ({status}); nothing was restored.")
    for source, dest in pairs:
        dest.parent.mkdir(parents=True, exist_ok=True)
        src, dst = sqlite3.connect(source), sqlite3.connect(dest, timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()


# ----------------------------------------------------------------------------- helpers


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per backed-up table that exists (the manifest's summary, and restore's "in use" check)."""
    from kommunchatt.schema import metadata

    present = set(inspect(engine).get_table_names())
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for name, table in metadata.tables.items():
            if name in present:
                counts[name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
    return counts


def schema_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _sha256(source: Path | IO[bytes]) -> str:
    """SHA-256 of a file or an open stream, read in blocks (backups may be larger than memory)."""
    digest = hashlib.sha256()
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = tar.extractfile(name)  # KeyError if absent: read_manifest reports it as "not a backup"
    if handle is None:
        raise KeyError(name)
    return handle


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    tar.addfile(info, io.BytesIO(data))

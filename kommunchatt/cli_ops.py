"""The operations commands of `kommunchatt`: `db upgrade`, `db current`, `backup FILE`, `restore FILE`.

Registered on the main parser by kommunchatt/cli.py. They read the same environment as every other
process of the install (KOMMUNCHATT_DATA_DIR, DATABASE_URL), so the operator runs them beside the
service (`docker compose run --rm migrate kommunchatt backup /backups/x.tar.gz`, `kubectl exec`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema: upgrade (migrations, optional seed), current revision")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument(
        "--seed",
        action="store_true",
        help="upgrade: load data/knowledge into the default municipality if it has no entries",
    )
    db.set_defaults(func=_db)

    backup = sub.add_parser("backup", help="write the database and Rasa's tracker store to one archive file")
    backup.add_argument("file", help="the archive to write, e.g. kommunchatt-2026-12-02.tar.gz")
    backup.set_defaults(func=_backup)

    restore = sub.add_parser("restore", help="restore an archive written by `kommunchatt backup`")
    restore.add_argument("file")
    restore.add_argument(
        "--replace", action="store_true", help="overwrite a database that already holds conversations, entries or users"
    )
    restore.set_defaults(func=_restore)


def _db(args: argparse.Namespace) -> int:
    from core.config import load_settings
    from core.db import make_engine
    from kommunchatt.migrate import MigrationError, current_revision, head_revision

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        if args.action == "current":
            with engine.connect() as conn:
                current = current_revision(conn)
            print(f"schema revision {current or 'none'} (newest: {head_revision()})")
            return 0
        from kommunchatt.schema import init_db

        try:
            init_db(engine)
        except MigrationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        with engine.connect() as conn:
            print(f"schema at revision {current_revision(conn)}")
    finally:
        engine.dispose()
    if args.seed:
        from kommunchatt.runner import seed_knowledge

        seed_knowledge(settings.data_dir, settings.database_url)
    return 0


def _backup(args: argparse.Namespace) -> int:
    from kommunchatt.backup import BackupError, backup, install_from_settings

    try:
        manifest = backup(install_from_settings(), Path(args.file))
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"backed up the {manifest['database']} database (revision {manifest['revision']}) to {args.file}: "
        + _summary(manifest)
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from kommunchatt.backup import BackupError, install_from_settings, restore

    try:
        manifest = restore(install_from_settings(), Path(args.file), replace=args.replace)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    taken = dt.datetime.fromtimestamp(manifest["created_at"]).isoformat(timespec="seconds")
    print(
        f"restored {args.file} (taken {taken}): {_summary(manifest)}. Restart the service and Rasa "
        "so they read the restored data."
    )
    return 0


def _summary(manifest: dict) -> str:
    rows = manifest["rows"]
    return ", ".join(f"{rows.get(t, 0)} {t}" for t in ("conversations", "messages", "kb_entries", "users"))

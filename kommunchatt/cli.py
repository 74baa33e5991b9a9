"""The `kommunchatt` command: knowledge-base files, users, municipalities, serving, database and backups."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from core.config import load_settings


def _engine():
    from core.db import make_engine
    from kommunchatt.schema import init_db

    engine = make_engine(load_settings().database_url)
    init_db(engine)
    return engine


def _kb(args: argparse.Namespace) -> int:
    from knowledge.kbfile import KbFileError, dump, file_format, load_path, parse_bytes
    from knowledge.store import KnowledgeStore

    if args.action in ("import", "validate"):
        path = Path(args.file)
        if not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
        try:
            if path.is_dir():
                entries = load_path(path, args.municipality)
            else:
                entries = parse_bytes(path.read_bytes(), path.name, args.municipality)
        except KbFileError as exc:
            print(f"error: {path} is not a valid knowledge base; nothing was imported:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 1
        if args.action == "validate":
            print(f"{path}: {len(entries)} entries, valid")
            return 0
        from core import municipalities

        engine = _engine()
        municipalities.ensure(engine, args.municipality)
        store = KnowledgeStore(engine)
        counts = store.import_entries(args.municipality, entries, replace=args.replace, actor="cli")
        print(f"imported {len(entries)} entries into '{args.municipality}': " + json.dumps(counts), flush=True)
        return 0 if args.no_wait else _wait_until_answerable(engine, store.last_audit_id(), args.wait_timeout)
    if args.action == "export":
        entries = KnowledgeStore(_engine()).all(args.municipality)
        Path(args.file).write_text(dump(entries, file_format(args.file)), encoding="utf-8")
        print(f"exported {len(entries)} entries to {args.file}")
        return 0
    return 2


def _wait_until_answerable(engine, audit_id: int, timeout: float) -> int:
    """Wait until the running service answers with the import; a progress bar on a terminal, a line
    every few seconds otherwise. Exit 0 when live (or no service runs), 3 after the timeout."""
    import time

    from knowledge.index_status import wait_until_live

    bar = None
    last_line = [0.0]

    def show(state: dict) -> None:
        nonlocal bar
        if not state["workers"] or state["live"]:
            return
        if sys.stdout.isatty() and state["total"]:
            from tqdm import tqdm

            bar = bar or tqdm(total=state["total"], desc="indexing", unit="entries")
            bar.total = state["total"]
            bar.n = state["done"]
            bar.refresh()
        elif time.monotonic() - last_line[0] >= 5:
            last_line[0] = time.monotonic()
            todo = f"{state['done']} of {state['total']} entries" if state["total"] else "(starting)"
            print(f"indexing {todo}", flush=True)

    started = time.monotonic()
    state = wait_until_live(engine, audit_id, show, timeout)
    if bar is not None:
        bar.close()
    if state["live"]:
        workers = f"{state['workers']} worker{'s' if state['workers'] > 1 else ''}"
        print(f"live: answerable by the running service ({workers}) after {time.monotonic() - started:.1f} s")
        return 0
    if not state["workers"]:
        print("no service is running: the entries become answerable when it starts")
        return 0
    print(f"error: still indexing after {timeout:.0f} s ({state['done']} of {state['total']}); "
          "the entries are stored and become answerable when indexing finishes", file=sys.stderr)
    return 3


def _user(args: argparse.Namespace) -> int:
    from core.users import UserError, UserStore

    store = UserStore(_engine())
    if args.action == "list":
        for user in store.list():
            print(
                f"{user['username']}\t{user['role']}\t{','.join(user['languages'])}\t{','.join(user['municipalities'])}"
            )
        return 0
    if args.action in ("set", "disable", "enable"):
        return _user_change(store, args)
    password = args.password or os.environ.get("KOMMUNCHATT_PASSWORD")
    if not password:
        password = getpass.getpass(f"password for {args.name}: ")
    try:
        user = store.create(
            args.name,
            password,
            role=args.role or "agent",
            languages=(args.languages or "sv").split(","),
            municipalities=(args.municipalities or "default").split(","),
            max_chats=args.max_chats or 3,
            display_name=args.display_name,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"created {user['role']} '{user['username']}'")
    return 0


def _user_change(store, args: argparse.Namespace) -> int:
    """`user set NAME --max-chats 5 ...` changes only the options given; disable/enable a login."""
    user = next((u for u in store.list() if u["username"] == args.name), None)
    if not user:
        print(f"error: no user named '{args.name}'", file=sys.stderr)
        return 1
    values: dict = {"active": args.action == "enable"} if args.action != "set" else {}
    if args.action == "set":
        for key in ("role", "display_name", "max_chats", "status"):
            if getattr(args, key) is not None:
                values[key] = getattr(args, key)
        for key in ("languages", "municipalities"):
            if getattr(args, key):
                values[key] = getattr(args, key).split(",")
        if args.password:
            if len(args.password) < 8:
                print("error: the password must have at least 8 characters", file=sys.stderr)
                return 1
            values["password"] = args.password
    if values:
        store.update(user["id"], **values)
    print(f"{args.action}: '{args.name}' " + ", ".join(sorted(k for k in values if k != "password")))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from kommunchatt.observability import logging_config, prepare_multiprocess_metrics

    settings = load_settings()
    port = args.port or settings.port
    if args.workers > 1:  # before the workers start: they find the directory in their environment
        prepare_multiprocess_metrics(settings.data_dir / f"metrics-{port}")
    uvicorn.run(
        "kommunchatt.app:create_app",
        factory=True,
        host=settings.host,
        port=port,
        log_level="warning",
        workers=args.workers,
        log_config=logging_config(),
        timeout_keep_alive=30,  # a citizen writes every few seconds: keep their connection open between messages
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kommunchatt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    kb = sub.add_parser("kb", help="knowledge-base files: import, export, validate")
    kb.add_argument("action", choices=["import", "export", "validate"])
    kb.add_argument("file", help="a .yml/.yaml, .jsonl or .csv file (import/validate: or a folder of them)")
    kb.add_argument("--replace", action="store_true", help="import: delete entries that are not in the file")
    kb.add_argument("--municipality", default="default")
    kb.add_argument("--no-wait", action="store_true", help="import: return once stored, not once answerable")
    kb.add_argument("--wait-timeout", type=float, default=900.0, help="import: seconds to wait for the index")
    kb.set_defaults(func=_kb)

    user = sub.add_parser("user", help="staff users: add, list, set (change), disable, enable")
    user.add_argument("action", choices=["add", "list", "set", "disable", "enable"])
    user.add_argument("name", nargs="?")
    user.add_argument("--role", choices=["agent", "webmaster", "admin"], help="add: agent by default")
    user.add_argument("--password", help="or set KOMMUNCHATT_PASSWORD, or be asked")
    user.add_argument("--languages", help="comma-separated, e.g. sv,en,ar (add: sv)")
    user.add_argument("--municipalities", help="comma-separated municipality ids (add: default); "
                                               "'*' for an admin of every municipality (global)")
    user.add_argument("--max-chats", type=int, help="concurrent chats (add: 3)")
    user.add_argument("--display-name", help="the name citizens see")
    user.add_argument("--status", choices=["available", "away", "offline"])
    user.set_defaults(func=_user)

    serve = sub.add_parser("serve", help="run the service (HTTP API, web pages)")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=_serve)

    from kommunchatt import cli_ops

    cli_ops.register(sub)  # db upgrade/current, backup, restore
    from kommunchatt import cli_privacy

    cli_privacy.register(sub)  # privacy purge/find/export/erase/access-log

    args = parser.parse_args(argv)
    if args.command == "user" and args.action != "list" and not args.name:
        parser.error(f"user {args.action} needs a NAME")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

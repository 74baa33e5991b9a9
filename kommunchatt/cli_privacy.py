"""`kommunchatt privacy ...`: the data-protection officer's commands on the machine itself (the same
operations as /api/v1/admin/privacy): run the retention pass, find, export and erase one citizen's or one
conversation's data, and read the transcript access log. What the command line does is logged as
"(command line)" in the access log."""

from __future__ import annotations

import argparse
import json
import sys
import time


def _parts():
    from conversations.personal_data import PersonalData, privacy_key
    from core.config import load_settings
    from core.db import make_engine
    from kommunchatt.retention import RasaTracker
    from kommunchatt.schema import init_db

    settings = load_settings()
    engine = make_engine(settings.database_url)
    init_db(engine)
    return engine, PersonalData(engine, privacy_key(settings.data_dir)), RasaTracker.for_install(engine,
                                                                                                 settings.data_dir)


def _selected(engine, personal, args: argparse.Namespace) -> list[str]:
    from kommunchatt.retention import find_citizen

    ids = list(args.conversation or [])
    if args.citizen:
        ids += find_citizen(engine, personal, args.citizen)
    return list(dict.fromkeys(ids))


def _privacy(args: argparse.Namespace) -> int:
    from handoff import access_log
    from kommunchatt import retention

    engine, personal, tracker = _parts()
    if args.action == "purge":
        print(json.dumps(retention.report_dict(retention.purge(engine, tracker)), indent=1))
        return 0
    if args.action == "access-log":
        rows = access_log.entries(engine, [args.municipality] if args.municipality else None,
                                  (args.conversation or [None])[0], limit=args.limit)
        for row in rows:
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["at"]))
            print(f"{at}\t{row['username']}\t{row['action']}\t{row['via']}\t{row['municipality']}\t"
                  f"{row['conversation_id']}")
        return 0
    ids = _selected(engine, personal, args)
    if not ids:
        print("nothing matched: name conversations (--conversation) or a citizen's personnummer, phone or e-mail "
              "(--citizen); nothing was done", file=sys.stderr)
        return 1
    if args.action == "find":
        print("\n".join(ids))
        return 0
    if args.action == "export":
        data = json.dumps(retention.export(engine, personal, ids, None, "cli"), ensure_ascii=False, indent=1)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(data)
            print(f"exported {len(ids)} conversation(s) to {args.out}")
        else:
            print(data)
        return 0
    if not args.yes:
        answer = input(f"erase {len(ids)} conversation(s) for good, from Rasa's tracker too? [y/N] ")
        if answer.strip().lower() not in ("y", "yes", "j", "ja"):
            print("nothing was erased")
            return 1
    result = retention.erase(engine, tracker, ids, None, "cli")
    print(f"erased {len(result['conversations'])} conversation(s): {json.dumps(result['rows'])}; "
          f"{result['tracker_events']} Rasa tracker events")
    return 0


def register(sub) -> None:
    privacy = sub.add_parser("privacy", help="retention pass, find/export/erase a citizen's data, access log")
    privacy.add_argument("action", choices=["purge", "find", "export", "erase", "access-log"])
    privacy.add_argument("--conversation", action="append", help="a conversation (session) id; repeatable")
    privacy.add_argument("--citizen", help="a personnummer, phone number or e-mail address: all their chats")
    privacy.add_argument("--out", help="export: write the JSON to this file")
    privacy.add_argument("--yes", action="store_true", help="erase: do not ask for confirmation")
    privacy.add_argument("--municipality", help="access-log: only this municipality's")
    privacy.add_argument("--limit", type=int, default=200, help="access-log: newest N rows")
    privacy.set_defaults(func=_privacy)

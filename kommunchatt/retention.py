"""Retention, erasure and export of citizens' personal data, in the service's database and Rasa's tracker.

Policy (README, "Security and privacy"):
- A chat has ended when it is closed, or when a chat with the bot has had no message for an hour.
- When a chat has ended, the citizen's own unmasked texts are dropped (`message_originals`).
- `retention_days` (a municipality setting, default 30; 0 keeps no transcript after the chat ends) after
  the end, the transcript goes: every row that belongs to the conversation in any table with a
  `conversation_id` column (messages, tickets, personal references, ...) and Rasa's tracker events.
  The conversation's own row stays without its free-text comment, with the assignments, for reports
  (times, outcome, score: no personal data). A chat with an open call-back ticket has not ended.
- Erasure (art. 17) removes a conversation completely, its row and assignments too; the access log keeps
  that it was erased, by whom.
Every table is found from the schema (`kommunchatt.schema.metadata`), so a table added later with a
`conversation_id` column is purged and erased without a change here. Which conversations have ended, and
their own rows, are asked of their owner (`conversations.queries`), the open call-back tickets of
handoff (`handoff.tickets`): this module imports no other package's table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, delete, inspect, text

from conversations import queries as chats
from conversations.personal_data import PersonalData, forget_originals
from conversations.store import ConversationStore
from core import municipalities as municipality_store
from core import privacy
from handoff import access_log, tickets
from kommunchatt.schema import metadata

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30
ENDED_AFTER_IDLE_S = 3600
ACCESS_LOG_DAYS = 365 * 2
PURGE_EVERY_S = 600
DAY = 86400.0
STATISTICS = {"conversations", "assignments", "transcript_access"}  # kept by retention (no personal data)


def retention_days(settings: dict | None) -> int:
    value = (settings or {}).get("retention_days", DEFAULT_RETENTION_DAYS)
    return max(0, int(value))


@dataclass
class Purged:
    originals: int = 0
    conversations: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    tracker_events: int = 0
    access_log: int = 0

    def add(self, counts: dict[str, int]) -> None:
        for name, n in counts.items():
            self.rows[name] = self.rows.get(name, 0) + n


class RasaTracker:
    """Rasa's SQL tracker store (`events`, one row per event, by `sender_id` = our session id): the same
    PostgreSQL database as the service, or its own SQLite file in the data dir (runner.tracker_env)."""

    def __init__(self, engine: Engine | None):
        self.engine = engine

    @classmethod
    def for_install(cls, service_engine: Engine, data_dir: Path) -> RasaTracker:
        if service_engine.dialect.name != "sqlite":
            return cls(service_engine)
        path = data_dir / "rasa-tracker.db"
        return cls(create_engine(f"sqlite:///{path}", connect_args={"timeout": 2}) if path.exists() else None)

    def _has_events(self) -> bool:
        return self.engine is not None and inspect(self.engine).has_table("events")

    def delete(self, session_ids: list[str]) -> int:
        if not session_ids or not self._has_events():
            return 0
        events = Table("events", MetaData(), autoload_with=self.engine)
        with self.engine.begin() as conn:
            return sum(
                conn.execute(delete(events).where(events.c.sender_id.in_(chunk))).rowcount
                for chunk in _chunks(session_ids)
            )

    def texts(self, session_id: str) -> list[str]:
        """The user texts Rasa holds for a session (tests and audits: they must be masked)."""
        if not self._has_events():
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT data FROM events WHERE sender_id = :s AND type_name = 'user'"), {"s": session_id}
            )
            return [r.data for r in rows]


def _chunks(items: list[str], size: int = 500):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _conversation_tables() -> list[Table]:
    """Every table with a conversation_id column, dependents before what they depend on."""
    return [t for t in reversed(metadata.sorted_tables) if "conversation_id" in t.c]


def _message_dependents() -> list[Table]:
    return [
        t
        for t in reversed(metadata.sorted_tables)
        if any(fk.column.table.name == "messages" for fk in t.foreign_keys) and "conversation_id" not in t.c
    ]


def _delete_rows(conn: Connection, ids: list[str], keep: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for chunk in _chunks(ids):
        for table in _message_dependents():
            fk = next(fk for fk in table.foreign_keys if fk.column.table.name == "messages")
            n = conn.execute(delete(table).where(fk.parent.in_(chats.message_ids(chunk)))).rowcount
            counts[table.name] = counts.get(table.name, 0) + n
        for table in _conversation_tables():
            if table.name in keep:
                continue
            n = conn.execute(delete(table).where(table.c.conversation_id.in_(chunk))).rowcount
            counts[table.name] = counts.get(table.name, 0) + n
    return {k: v for k, v in counts.items() if v}


def ended_before(conn: Connection, municipality: str, cutoff: float, with_transcript: bool = False) -> list[str]:
    """Ids of `municipality`'s conversations that ended before `cutoff` (closed, or idle with the bot; not
    while a call-back ticket is open), only those with messages left if `with_transcript`. One statement:
    handoff's SELECT of the open tickets' conversations inside conversations' query."""
    unless = tickets.open_conversation_ids()
    return chats.ended(conn, municipality, cutoff, ENDED_AFTER_IDLE_S, unless=unless, with_transcript=with_transcript)


def purge(engine: Engine, tracker: RasaTracker, now: float | None = None) -> Purged:
    """One pass of the retention policy over every municipality (idempotent; safe in several processes)."""
    now = time.time() if now is None else now
    report = Purged()
    for municipality, settings in municipality_store.all_settings(engine):
        with engine.begin() as conn:
            live_ended = ended_before(conn, municipality, now)
            report.originals += forget_originals(conn, live_ended)
        cutoff = now - retention_days(settings) * DAY
        with engine.begin() as conn:
            expired = ended_before(conn, municipality, cutoff, with_transcript=True)  # not purged on an earlier pass
            if not expired:
                continue
            counts = _delete_rows(conn, expired, keep=STATISTICS)
            for chunk in _chunks(expired):
                chats.clear_comments(conn, chunk)
            report.add(counts)
            report.conversations += len(expired)
        report.tracker_events += tracker.delete(expired)
    report.access_log = access_log.purge_before(engine, now - ACCESS_LOG_DAYS * DAY)
    return report


def erase(
    engine: Engine, tracker: RasaTracker, conversation_ids: list[str], user: dict | None, via: str = "api"
) -> dict:
    """Remove conversations completely (art. 17), Rasa's tracker too; the access log records the erasure."""
    with engine.begin() as conn:
        found = chats.municipalities_of(conn, conversation_ids)
        ids = list(found)
        counts = _delete_rows(conn, ids, keep={"transcript_access", "conversations"})
        for chunk in _chunks(ids):
            counts["conversations"] = counts.get("conversations", 0) + chats.delete_rows(conn, chunk)
    events = tracker.delete(ids)
    for conversation_id, municipality in found.items():
        access_log.record(engine, user, conversation_id, municipality, "erase", via)
    return {"conversations": ids, "rows": counts, "tracker_events": events}


def find_citizen(engine: Engine, personal: PersonalData, identifier: str) -> list[str]:
    """Conversations of the citizen with this personnummer, phone number or e-mail address: where they wrote
    it in a chat, or left it as a call-back contact."""
    ref = privacy.identifier_reference(personal.key, identifier)
    if ref is None:
        return []
    found = set(personal.conversations_of(identifier))
    with engine.connect() as conn:
        for conversation_id, contact in tickets.contacts(conn):
            if conversation_id and privacy.identifier_reference(personal.key, contact) == ref:
                found.add(conversation_id)
    return sorted(found)


def export(
    engine: Engine, personal: PersonalData, conversation_ids: list[str], user: dict | None, via: str = "api"
) -> dict:
    """Everything stored about these conversations (art. 15 and 20), as JSON-ready data; the citizen's own
    texts in place of masked ones while the chat is live."""
    out = []
    with engine.connect() as conn:
        rows = chats.by_ids(conn, conversation_ids)
    store = ConversationStore(engine)
    for conv in rows:
        originals = personal.originals(conv["id"])
        texts = [  # the transcript without the agents' internal notes
            {"id": m.id, "sender": m.sender, "created_at": m.created_at, "text": originals.get(m.id, m.text)}
            for m in store.messages(conv["id"])
        ]
        with engine.connect() as conn:
            calls = tickets.of_conversation(conn, conv["id"])
        out.append(
            {
                "conversation": {
                    k: conv[k]
                    for k in (
                        "id",
                        "municipality",
                        "language",
                        "state",
                        "created_at",
                        "closed_at",
                        "outcome",
                        "csat_score",
                        "csat_comment",
                    )
                },
                "messages": texts,
                "callback_requests": calls,
            }
        )
        access_log.record(engine, user, conv["id"], conv["municipality"], "export", via)
    return {"exported_at": time.time(), "conversations": out}


def report_dict(report: Purged) -> dict:
    return asdict(report)


async def run_periodically(
    engine: Engine, tracker: RasaTracker, every: float = PURGE_EVERY_S, first_after: float = 30.0
) -> None:
    """The scheduled job: every service process runs it (each pass is idempotent)."""
    await asyncio.sleep(first_after)
    while True:
        try:
            report = await asyncio.to_thread(purge, engine, tracker)
            if report.conversations or report.originals:
                log.info("retention: %s", report_dict(report))
        except Exception:  # noqa: BLE001 - a locked database or Rasa's file missing: the next pass retries
            log.exception("retention pass failed")
        await asyncio.sleep(every)

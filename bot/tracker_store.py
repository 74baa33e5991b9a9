"""SQL tracker store configured from the RASA_TRACKER_* environment variables.

Rasa expands `${VAR}` in endpoints.yml but fails on unset variables and passes empty strings
through (an empty port cannot be cast to int), while SQLite needs no host, port or user. This
subclass reads the optional connection parameters itself and drops empty ones, so one
endpoints.yml serves both SQLite (`RASA_TRACKER_DB` = file path) and PostgreSQL.

A bot turn's cost must not grow with the conversation (issues 15 and 18). Rasa loads the events of
the conversation's latest session and replays them on every turn (rebuilding the tracker, featurizing
every prior state for the rule and memoization policies, sending them all to the action server), and
a session only ends after an hour of silence. So a session here also ends by length: once a turn
ends with more than RASA_TRACKER_SESSION_EVENTS events (default 60, a handful of turns) in the
session, the store writes the start of a new one, exactly as Rasa's own expiry does with
`carry_over_slots_to_new_session`: action_session_start, session_started, the slots that are set,
action_listen. The dialogue depends on the slots (`pending`/`awaiting` carry what the bot asked,
the rules are single steps), never on older turns, and MemoizationPolicy looks at 4 states. Never
in the middle of a turn, of a form, or of a paused (handed-off) conversation. Every event stays in
the table: `retrieve_full_tracker` still returns the whole conversation.
"""

import itertools
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.events import ActionExecuted, Event, SessionStarted, SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

import bot.speedups  # noqa: F401 - patches Rasa on import (see the module)

_OPTIONAL = {
    "host": "RASA_TRACKER_HOST",
    "port": "RASA_TRACKER_PORT",
    "username": "RASA_TRACKER_USER",
    "password": "RASA_TRACKER_PASSWORD",
}


# Events in a session after which a finished turn starts a new one (see the module's docstring).
SESSION_EVENTS = int(os.environ.get("RASA_TRACKER_SESSION_EVENTS", "60"))
# How many of the tracker's events are in the table: set on every tracker this store loads or saves.
_STORED = "_kommunchatt_stored_events"


def _clean(value: Any) -> Any | None:
    """Empty strings mean "not set"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """What the service's own SQLite has (core/db.py): WAL, and a commit that does not wait for the disk
    (synchronous=NORMAL: a killed process loses nothing, a power cut at most the last turns). Rasa's
    default journal synced the disk on each of a turn's commits."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class EnvSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore whose dialect/db come from endpoints.yml and the rest from the env."""

    def __init__(self, dialect: str = "", db: str = "", **kwargs: Any) -> None:
        dialect = _clean(dialect) or os.environ.get("RASA_TRACKER_DIALECT") or "sqlite"
        db = _clean(db) or os.environ.get("RASA_TRACKER_DB") or "rasa.db"
        # Rasa passes the endpoint's `url` as `host`; it is unused here.
        kwargs.pop("host", None)
        params = {key: _clean(kwargs.pop(key, None)) or _clean(os.environ.get(env)) for key, env in _OPTIONAL.items()}
        if dialect == "sqlite":
            params = {key: None for key in params}
            folder = os.path.dirname(os.path.abspath(db))
            os.makedirs(folder, exist_ok=True)
            # What citizens wrote (masked) is in it: readable by its owner only, like the service's database.
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(db, 0o600)
        super().__init__(dialect=dialect, db=db, **params, **kwargs)
        if dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._ensure_indexes()

    def _ensure_indexes(self) -> None:
        """The two lookups of every turn by index: the latest session start of a conversation, and its
        events since then (Rasa indexes sender_id only, so both scanned the conversation's every event)."""
        table = self.SQLEvent.__table__
        for name, columns in (
            ("ix_events_sender_type_time", (table.c.sender_id, table.c.type_name, table.c.timestamp)),
            ("ix_events_sender_time", (table.c.sender_id, table.c.timestamp)),
        ):
            sa.Index(name, *columns).create(self.engine, checkfirst=True)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        tracker = await super().retrieve(sender_id)
        if tracker is not None:
            setattr(tracker, _STORED, len(tracker.events))
        return tracker

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        """The events added since this tracker was loaded or last saved, without counting the table's rows
        (Rasa's way, which a new session written by `save` would put out of step with this tracker)."""
        stored = getattr(tracker, _STORED, None)
        if stored is None:  # a tracker this store has never seen: a new conversation
            return super()._additional_events(session, tracker)
        return itertools.islice(tracker.events, stored, len(tracker.events))

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Rasa's save, then a new session if this one has grown past SESSION_EVENTS at the end of a turn."""
        await super().save(tracker)
        setattr(tracker, _STORED, len(tracker.events))
        if self._turn_ended_long(tracker):
            self._store_events(tracker.sender_id, self._new_session(tracker))

    @staticmethod
    def _turn_ended_long(tracker: DialogueStateTracker) -> bool:
        return (
            len(tracker.events) > SESSION_EVENTS
            and tracker.latest_action_name == ACTION_LISTEN_NAME
            and isinstance(tracker.events[-1], ActionExecuted)
            and not tracker.is_paused()
            and not tracker.active_loop_name
            and tracker.followup_action is None
        )

    @staticmethod
    def _new_session(tracker: DialogueStateTracker) -> list[Event]:
        """What Rasa's action_session_start writes with carried-over slots, stamped now (the store finds the
        latest session by its session_started timestamp)."""
        now = time.time()
        slots = [
            SlotSet(name, slot.value, timestamp=now)
            for name, slot in tracker.slots.items()
            if slot.value != slot.initial_value
        ]
        return [
            ActionExecuted(ACTION_SESSION_START_NAME, timestamp=now),
            SessionStarted(timestamp=now),
            *slots,
            ActionExecuted(ACTION_LISTEN_NAME, timestamp=now),
        ]

    def _store_events(self, sender_id: str, events: list[Event]) -> None:
        """Rows exactly as Rasa's save writes them."""
        with self.session_scope() as session:
            for event in events:
                data = event.as_dict()
                session.add(
                    self.SQLEvent(
                        sender_id=sender_id,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        intent_name=None,
                        action_name=data.get("name"),
                        data=json.dumps(data),
                    )
                )
            session.commit()

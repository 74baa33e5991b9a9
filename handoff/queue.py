"""The agent queue: who waits, in which order, and roughly for how long."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from handoff.conversations import ConversationStore
from kommunchatt.db import conversations, municipalities, users

DEFAULT_HANDLE_SECONDS = 240.0  # used until the contact centre has a recent pace of its own
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def is_open(settings: dict, now: float | None = None) -> tuple[bool, float | None]:
    """Whether the contact centre is open, and when it next opens (UNIX time) if closed.

    `settings["opening_hours"]` = {"timezone": "Europe/Stockholm", "weekly": {"mon": [["08:00", "17:00"]], ...},
    "holidays": ["2026-12-24"]}. No opening hours configured means always open.
    """
    hours = settings.get("opening_hours")
    if not hours or not hours.get("weekly"):
        return True, None
    tz = ZoneInfo(hours.get("timezone", "Europe/Stockholm"))
    local = dt.datetime.fromtimestamp(now if now is not None else time.time(), tz)
    holidays = set(hours.get("holidays", []))
    for day_offset in range(15):
        day = (local + dt.timedelta(days=day_offset)).date()
        if day.isoformat() in holidays:
            continue
        for start, end in hours["weekly"].get(DAYS[day.weekday()], []):
            opens = dt.datetime.combine(day, dt.time.fromisoformat(start), tz)
            closes = dt.datetime.combine(day, dt.time.fromisoformat(end), tz)
            if day_offset == 0 and opens <= local < closes:
                return True, None
            if opens > local:
                return False, opens.timestamp()
    return False, None


class Queue:
    def __init__(self, engine: Engine, conversations_store: ConversationStore):
        self.engine = engine
        self.conversations = conversations_store

    def municipality_settings(self, municipality: str) -> dict | None:
        """The municipality's settings, or None if there is no such municipality."""
        with self.engine.connect() as conn:
            row = conn.execute(select(municipalities.c.settings).where(municipalities.c.id == municipality)).first()
        return (row.settings or {}) if row else None

    def enqueue(self, conversation_id: str, reason: str, topic: str | None = None) -> dict:
        """Queue a conversation for a person, unless the contact centre is closed."""
        conv = self.conversations.get(conversation_id)
        open_now, opens_at = is_open(self.municipality_settings(conv["municipality"]) or {})
        if not open_now:
            return {"state": conv["state"], "open": False, "opens_at": opens_at}
        if conv["state"] in ("bot", "closed"):
            self.conversations.update(
                conversation_id, state="queued", handoff_reason=reason, queued_at=time.time(),
                topic=topic or conv.get("topic"),
            )
        return {"open": True, **self.position(conversation_id)}

    def waiting(self, municipality: str | None = None) -> list[dict]:
        """Queued conversations, longest waiting first."""
        return self.conversations.in_state("queued", municipality=municipality)

    def position(self, conversation_id: str) -> dict:
        conv = self.conversations.get(conversation_id)
        if conv["state"] != "queued":
            return {"state": conv["state"], "position": 0, "estimated_wait_seconds": 0}
        ahead = [c for c in self.waiting() if (c["queued_at"] or 0) < (conv["queued_at"] or 0)]
        position = len(ahead) + 1
        return {
            "state": "queued",
            "position": position,
            "estimated_wait_seconds": int(position * self.seconds_per_conversation()),
        }

    def seconds_per_conversation(self) -> float:
        """Recent pace: the mean handling time of the last hour's conversations, spread over the agents online."""
        since = time.time() - 3600
        with self.engine.connect() as conn:
            handled = conn.execute(
                select(func.avg(conversations.c.closed_at - conversations.c.assigned_at)).where(
                    conversations.c.closed_at > since, conversations.c.assigned_at.is_not(None)
                )
            ).scalar()
            capacity = conn.execute(
                select(func.coalesce(func.sum(users.c.max_chats), 0)).where(users.c.status == "available")
            ).scalar()
        return float(handled or DEFAULT_HANDLE_SECONDS) / max(1, int(capacity or 0))

"""The agent queue: who waits, in which order, and roughly for how long."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from conversations.store import ConversationStore, conversations
from core.metrics import HANDOFFS
from core.municipalities import settings as municipality_settings
from core.municipalities import timezone
from core.users import users
from handoff.presence import online_user_ids
from knowledge.store import KnowledgeStore

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


def validate_hours(hours: dict) -> dict:
    """Check an opening-hours setting (raises ValueError with a readable reason); returns it normalised."""
    tz = hours.get("timezone", "Europe/Stockholm")
    try:
        ZoneInfo(tz)
    except Exception:  # noqa: BLE001 - ZoneInfo raises several kinds
        raise ValueError(f"unknown time zone '{tz}'") from None
    weekly = {}
    for day, ranges in (hours.get("weekly") or {}).items():
        if day not in DAYS:
            raise ValueError(f"'{day}' is not a weekday (use {', '.join(DAYS)})")
        for pair in ranges:
            if len(pair) != 2 or dt.time.fromisoformat(pair[0]) >= dt.time.fromisoformat(pair[1]):
                raise ValueError(f"{day}: {pair} is not an [opens, closes] pair with opens before closes")
        weekly[day] = [list(p) for p in ranges]
    holidays = [dt.date.fromisoformat(d).isoformat() for d in hours.get("holidays") or []]
    return {"timezone": tz, "weekly": weekly, "holidays": sorted(set(holidays))}


class Queue:
    def __init__(self, engine: Engine, conversations_store: ConversationStore, knowledge: KnowledgeStore | None = None):
        self.engine = engine
        self.conversations = conversations_store
        self.knowledge = knowledge or KnowledgeStore(engine)

    def availability(self, municipality: str) -> dict:
        settings = municipality_settings(self.engine, municipality) or {}
        open_now, opens_at = is_open(settings)
        return {"open": open_now, "opens_at": _iso(opens_at, settings)}

    def enqueue(self, conversation_id: str, reason: str, topic: str | None = None) -> dict:
        """Queue a conversation for a person, unless the contact centre is closed."""
        conv = self.conversations.get(conversation_id)
        settings = municipality_settings(self.engine, conv["municipality"]) or {}
        open_now, opens_at = is_open(settings)
        if not open_now:
            return {"state": conv["state"], "open": False, "opens_at": _iso(opens_at, settings)}
        if conv["state"] in ("bot", "closed"):
            self.conversations.update(
                conversation_id, state="queued", handoff_reason=reason, queued_at=time.time(),
                topic=topic or self.topic_of(conversation_id) or conv.get("topic"),
                assigned_to=None, closed_at=None, outcome=None,
            )
            HANDOFFS.labels(reason).inc()
        return {"open": True, **self.position(conversation_id)}

    def topic_of(self, conversation_id: str) -> str | None:
        """The topic from the knowledge base: the first tag of the last entry the bot answered with."""
        municipality = self.conversations.get(conversation_id)["municipality"]
        bot_messages = [m for m in self.conversations.messages(conversation_id) if m.sender == "bot"]
        for message in reversed(bot_messages[-20:]):
            custom = (message.data or {}).get("custom") or {}
            entry_id = custom.get("entry_id") or (custom.get("answer") or {}).get("id")
            entry = self.knowledge.get(municipality, entry_id) if entry_id else None
            if entry and entry.tags:
                return str(entry.tags[0])[:64]
        return None

    def waiting(self, municipality: str | None = None) -> list[dict]:
        """Queued conversations, longest waiting first."""
        return self.conversations.in_state("queued", municipality=municipality)

    def position(self, conversation_id: str) -> dict:
        conv = self.conversations.get(conversation_id)
        if conv["state"] != "queued":
            return {"state": conv["state"], "position": 0, "estimated_wait_seconds": 0}
        return self.positions().get(conversation_id) or {"state": "queued", "position": 1,
                                                         "estimated_wait_seconds": 0}

    def positions(self, waiting: list[dict] | None = None) -> dict[str, dict]:
        """Every waiting conversation's place and estimated wait, computed in one pass."""
        waiting = self.waiting() if waiting is None else waiting
        if not waiting:
            return {}
        pace = self.seconds_per_conversation()
        return {
            conv["id"]: {"state": "queued", "position": index, "estimated_wait_seconds": int(index * pace)}
            for index, conv in enumerate(waiting, start=1)
        }

    def seconds_per_conversation(self) -> float:
        """Recent pace: the mean handling time of the last hour's conversations over the capacity online."""
        since = time.time() - 3600
        online = online_user_ids(self.engine)
        with self.engine.connect() as conn:
            handled = conn.execute(
                select(func.avg(conversations.c.closed_at - conversations.c.assigned_at)).where(
                    conversations.c.closed_at > since, conversations.c.assigned_at.is_not(None)
                )
            ).scalar()
            capacity = 0
            if online:
                capacity = conn.execute(
                    select(func.coalesce(func.sum(users.c.max_chats), 0)).where(
                        users.c.status == "available", users.c.id.in_(online)
                    )
                ).scalar()
        return float(handled or DEFAULT_HANDLE_SECONDS) / max(1, int(capacity or 0))


def _iso(timestamp: float | None, settings: dict | None = None) -> str | None:
    """In the contact centre's time zone: the bot shows the citizen its local time as written."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, timezone(settings)).isoformat()

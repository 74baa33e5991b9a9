"""The agent queue: who waits, in which order, and roughly for how long."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from conversations import queries as chats
from conversations.store import ConversationStore
from core import users
from core.metrics import HANDOFFS
from core.municipalities import settings as municipality_settings
from core.municipalities import timezone
from handoff.presence import online_user_ids
from knowledge.store import KnowledgeStore

DEFAULT_HANDLE_SECONDS = 240.0  # used until the contact centre has handled chats of its own
MEASURED_CHATS = 100  # the handling time is the mean of the latest this many chats closed by a person ...
MEASURED_DAYS = 14  # ... within this many days
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
                conversation_id,
                state="queued",
                handoff_reason=reason,
                queued_at=time.time(),
                topic=topic or self.topic_of(conversation_id) or conv.get("topic"),
                assigned_to=None,
                closed_at=None,
                outcome=None,
            )
            HANDOFFS.labels(reason).inc()
        return {"open": True, **self.position(conversation_id), "hours_today": self.hours_today(conv["municipality"])}

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
        return self.positions().get(conversation_id) or {"state": "queued", "position": 1, **self.pace().estimate(1)}

    def positions(self, waiting: list[dict] | None = None) -> dict[str, dict]:
        """Every waiting conversation's place and estimated wait, computed in one pass."""
        waiting = self.waiting() if waiting is None else waiting
        if not waiting:
            return {}
        pace = self.pace()
        return {
            conv["id"]: {"state": "queued", "position": index, **pace.estimate(index)}
            for index, conv in enumerate(waiting, start=1)
        }

    def pace(self) -> Pace:
        """The measured handling time and the agents online now (available, with their free places)."""
        online = online_user_ids(self.engine)
        since = time.time() - MEASURED_DAYS * 86400
        with self.engine.connect() as conn:
            handled = chats.handling_times(conn, since, MEASURED_CHATS)
            agents = users.available(conn, online)
            load = chats.load_per_agent(conn)
        handle = sum(handled) / len(handled) if handled else DEFAULT_HANDLE_SECONDS
        capacity = sum(max(1, a["max_chats"] or 1) for a in agents)
        free = sum(max(0, max(1, a["max_chats"] or 1) - load.get(a["id"], 0)) for a in agents)
        return Pace(handle_seconds=float(handle), agents_online=len(agents), capacity=capacity, free=free)

    def hours_today(self, municipality: str) -> str | None:
        """Today's opening hours as the citizen reads them ("08:00–12:00, 13:00–16:30"), if the municipality
        has opening hours."""
        settings = municipality_settings(self.engine, municipality) or {}
        hours = settings.get("opening_hours") or {}
        if not hours.get("weekly"):
            return None
        today = dt.datetime.now(timezone(settings)).date()
        if today.isoformat() in set(hours.get("holidays") or []):
            return None
        ranges = hours["weekly"].get(DAYS[today.weekday()]) or []
        return ", ".join(f"{start}–{end}" for start, end in ranges) or None


@dataclass(frozen=True)
class Pace:
    """How fast the queue moves: the mean handling time of recent chats and the places agents have.

    Place `p` in the queue waits for nothing while agents have `free` places for everyone before it;
    after that, the `capacity` places each finish a chat every `handle_seconds` on average, so the wait is
    (p - free) * handle_seconds / capacity. With nobody online there is no estimate (None).
    """

    handle_seconds: float
    agents_online: int
    capacity: int
    free: int

    def wait_seconds(self, position: int) -> int | None:
        if self.agents_online == 0 or self.capacity == 0:
            return None
        if position <= self.free:
            return 0
        return math.ceil((position - self.free) * self.handle_seconds / self.capacity)

    def estimate(self, position: int) -> dict:
        return {"estimated_wait_seconds": self.wait_seconds(position), "agents_online": self.agents_online}


def _iso(timestamp: float | None, settings: dict | None = None) -> str | None:
    """In the contact centre's time zone: the bot shows the citizen its local time as written."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, timezone(settings)).isoformat()

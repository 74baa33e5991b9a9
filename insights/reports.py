"""Reports for the contact centre, computed from conversations and the assignment history.

Per day (in the municipality's time zone, `zone_name`), language or municipality: waiting time, first
response time, handling time, outcomes and satisfaction; per agent: chats, handling and concurrent chats.
Computed in Python from the rows of the period: the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import Counter, defaultdict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, and_, select, true

from conversations.tables import conversations
from core import municipalities as municipality_settings
from core.user_tables import users
from handoff.assignment import assignments

GROUPS = ("day", "language", "municipality")
clock = time.time  # "today" and "now" of the reports (the tests fix it around midnight)


def zone_name(engine: Engine, municipality: str | None) -> str:
    """The time zone a report counts days in: the municipality's (its opening hours', else its own setting),
    for a report over all municipalities the default municipality's, else Stockholm."""
    settings = municipality_settings.settings(engine, municipality or "default")
    try:
        return municipality_settings.timezone(settings).key
    except (ZoneInfoNotFoundError, ValueError):  # a setting written by hand that names no zone
        return municipality_settings.DEFAULT_TIMEZONE


def zone_of(tz: str) -> ZoneInfo:
    """The IANA time zone named `tz`; a ValueError (422 to the caller) for a name that is none."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{tz}' is not a time zone (use an IANA name such as Europe/Stockholm)") from None


def period(date_from: str | None, date_to: str | None, tz: str) -> tuple[float, float]:
    """[from 00:00, to 24:00) in the time zone; by default the last 7 days, today being the zone's today."""
    zone = zone_of(tz)
    today = dt.datetime.fromtimestamp(clock(), zone).date()
    start = dt.date.fromisoformat(date_from) if date_from else today - dt.timedelta(days=6)
    end = dt.date.fromisoformat(date_to) if date_to else today
    if end < start:
        raise ValueError("the period ends before it starts")
    begin = dt.datetime.combine(start, dt.time(), zone).timestamp()
    finish = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone).timestamp()
    return begin, finish


def _stats(values: list[float]) -> dict:
    if not values:
        return {"count": 0, "mean": None, "median": None, "p90": None, "max": None}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "mean": round(statistics.fmean(ordered), 1),
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "max": round(ordered[-1], 1),
    }


def _day(ts: float, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts, zone).date().isoformat()


def first_response_seconds(taken: list[dict]) -> float | None:
    """From entering the queue to the first agent reply, for the first time in the conversation an agent
    replied. Computed from the assignment that replied and the queue entry it was taken from, so a
    hand-back, a new request or a transfer never pairs a reply with another queue entry (never negative)."""
    for a in sorted(taken, key=lambda a: a["started_at"]):
        if a["first_response_at"] is None:
            continue
        queued = a["queued_at"]
        entered = queued if queued is not None and queued <= a["started_at"] else a["started_at"]
        return round(max(0.0, a["first_response_at"] - entered), 3)
    return None


def summary(
    engine: Engine,
    date_from: str | None = None,
    date_to: str | None = None,
    group_by: str = "day",
    tz: str = "Europe/Stockholm",
    municipality: str | None = None,
) -> dict:
    """Handoff figures per day, municipality or language over a period (the reports page's table)."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    zone = zone_of(tz)
    begin, finish = period(date_from, date_to, tz)
    convs, history = _conversations_with_history(engine, begin, finish, municipality)
    now = clock()
    groups: dict[str, list[dict]] = defaultdict(list)
    for conv in convs:
        key = _day(conv["queued_at"], zone) if group_by == "day" else conv[group_by]
        groups[key].append(conv)
    rows = [{group_by: key, **_group_row(groups[key], history, now)} for key in sorted(groups)]
    return {
        "from": dt.datetime.fromtimestamp(begin, zone).date().isoformat(),
        "to": dt.datetime.fromtimestamp(finish - 1, zone).date().isoformat(),
        "group_by": group_by,
        "timezone": tz,
        "rows": rows,
    }


def _conversations_with_history(
    engine: Engine, begin: float, finish: float, municipality: str | None
) -> tuple[list[dict], dict[str, list[dict]]]:
    """The period's handed-over conversations and each one's assignments, oldest first (read-only)."""
    query = select(conversations).where(and_(conversations.c.queued_at >= begin, conversations.c.queued_at < finish))
    if municipality:
        query = query.where(conversations.c.municipality == municipality)
    with engine.connect() as conn:
        convs = [dict(r._mapping) for r in conn.execute(query)]
        history: dict[str, list[dict]] = defaultdict(list)
        ids = [c["id"] for c in convs]
        for chunk in range(0, len(ids), 500):
            rows = conn.execute(
                select(assignments)
                .where(assignments.c.conversation_id.in_(ids[chunk : chunk + 500]))
                .order_by(assignments.c.started_at)
            )
            for row in rows:
                history[row.conversation_id].append(dict(row._mapping))
    return convs, history


def _outcome(conv: dict, taken: list[dict]) -> str:
    if conv["state"] == "queued":
        return "waiting"
    if conv["state"] == "agent":
        return "ongoing"
    if not taken:
        return "left_queue"  # handed back or gave up before anyone took it
    return conv["outcome"] or "handed_back"


def _group_row(group: list[dict], history: dict[str, list[dict]], now: float) -> dict:
    """One row of the summary: waits, first responses, handling times, outcomes and satisfaction."""
    waits, firsts, handling, scores = [], [], [], []
    outcomes: Counter = Counter()
    for conv in group:
        taken = history.get(conv["id"], [])
        first_wait = next((a["wait_seconds"] for a in taken if a["wait_seconds"] is not None), None)
        if first_wait is not None:
            waits.append(first_wait)
        first = first_response_seconds(taken)
        if first is not None:
            firsts.append(first)
        if taken:
            handling.append(sum((a["ended_at"] or now) - a["started_at"] for a in taken))
        outcomes[_outcome(conv, taken)] += 1
        if conv["csat_score"]:
            scores.append(conv["csat_score"])
    return {
        "conversations": len(group),
        "answered": sum(1 for c in group if history.get(c["id"])),
        "waiting_seconds": _stats(waits),
        "first_response_seconds": _stats(firsts),
        "handling_seconds": _stats(handling),
        "outcomes": dict(outcomes),
        "satisfaction": {
            "count": len(scores),
            "mean": round(statistics.fmean(scores), 2) if scores else None,
            "distribution": {str(s): scores.count(s) for s in range(1, 6)},
        },
    }


def concurrency(intervals: list[tuple[float, float]]) -> tuple[int, float]:
    """(most chats at once, mean chats at once over the time with at least one chat)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    current = peak = 0
    busy = weighted = 0.0
    last = None
    for at, delta in points:
        if last is not None and current > 0:
            busy += at - last
            weighted += current * (at - last)
        current += delta
        peak = max(peak, current)
        last = at
    return peak, round(weighted / busy, 2) if busy else 0.0


def agents(
    engine: Engine, date_from: str | None = None, date_to: str | None = None, tz: str = "Europe/Stockholm",
    municipalities: frozenset[str] | None = None,
) -> dict:
    """Per agent, over the chats of `municipalities` (None: all)."""
    zone = zone_of(tz)
    begin, finish = period(date_from, date_to, tz)
    now = clock()
    with engine.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(assignments, conversations.c.csat_score, conversations.c.language, conversations.c.municipality)
                .join(conversations, conversations.c.id == assignments.c.conversation_id)
                .where(and_(assignments.c.started_at >= begin, assignments.c.started_at < finish),
                       true() if municipalities is None else conversations.c.municipality.in_(municipalities))
            )
        ]
        names = {
            r.id: r.display_name or r.username
            for r in conn.execute(select(users.c.id, users.c.display_name, users.c.username))
        }
    per_agent: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        per_agent[row["user_id"]].append(row)
    out = []
    for user_id, items in sorted(per_agent.items()):
        intervals = [(a["started_at"], min(a["ended_at"] or now, finish)) for a in items]
        peak, mean = concurrency(intervals)
        by_day: dict[str, list] = defaultdict(list)
        for a, interval in zip(items, intervals, strict=True):
            by_day[_day(a["started_at"], zone)].append(interval)
        closed = [a for a in items if a["end_reason"] == "closed"]
        scores = [a["csat_score"] for a in closed if a["csat_score"]]
        out.append(
            {
                "user_id": user_id,
                "name": names.get(user_id),
                "chats": len(items),
                "closed": len(closed),
                "handling_seconds": _stats([e - s for s, e in intervals]),
                "first_response_seconds": _stats(
                    [max(0.0, a["first_response_at"] - a["started_at"]) for a in items if a["first_response_at"]]
                ),
                "max_concurrent": peak,
                "mean_concurrent": mean,
                "satisfaction": {"count": len(scores), "mean": round(statistics.fmean(scores), 2) if scores else None},
                "days": {
                    day: {"chats": len(iv), "max_concurrent": concurrency(iv)[0]} for day, iv in sorted(by_day.items())
                },
            }
        )
    return {
        "from": dt.datetime.fromtimestamp(begin, zone).date().isoformat(),
        "to": dt.datetime.fromtimestamp(finish - 1, zone).date().isoformat(),
        "timezone": tz,
        "agents": out,
    }

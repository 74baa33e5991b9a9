"""What citizens and the calendar tell an owner: asked of conversations.queries and the knowledge store.

- negative feedback: a system message `custom = {"kind": "feedback", "entry_id", "helpful": false}`
  (handoff/internal_api.py), about the question the answer was given to;
- unanswered: a question the bot had no answer for (decision no_match, a handoff the citizen did not ask
  for, or "none of these" after a clarify), one item per wording and week;
- low rating: a closed chat rated 1 or 2 with a comment;
- overdue review: an entry whose review date has passed;
- review due: an entry whose review date comes within the municipality's notice period (settings
  "reviews": {"notice_days": 14}; 0 turns it off), so the owner hears of it before it passes.

Each signal has a source key that names its source once (a message, a conversation, an entry's review
date), so routing it twice is a no-op. Texts are masked (core/privacy.py) before anyone sees them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection

from conversations import queries as conversation_queries
from core import municipalities as municipality_settings
from core.privacy import mask
from knowledge.lexical import fold
from knowledge.store import KnowledgeStore

LOW_RATING = 2  # a score at or below this, with a comment, goes to the owner
# Handoffs that say the knowledge base had no answer; "requested" (the citizen asked for a person),
# "negative_feedback" (its own item), "service_error" and "abuse" do not.
GAP_HANDOFFS = ("low_confidence", "failed_turns")
NONE_OF_THESE = "/none_of_these"
REVIEW_NOTICE_DAYS = 14  # default notice before a review date: two weeks leaves time to schedule the work
MAX_NOTICE_DAYS = 365


@dataclass
class Signal:
    """One thing an owner should look at, before it is routed to a department."""

    municipality: str
    source_key: str
    kind: str  # negative_feedback | low_rating | unanswered | overdue_review | review_due | broken_link
    occurred_at: float
    text: str  # masked
    entry_id: str | None = None
    conversation_id: str | None = None
    topic: str | None = None  # the conversation's topic: routes when there is no entry
    detail: dict = field(default_factory=dict)


def _custom(data: dict | None) -> dict:
    return (data or {}).get("custom") or {}


def masked(text: str | None, limit: int = 2000) -> str:
    return mask(text or "")[:limit]


def _trigger(row) -> str | None:
    """Which kind of signal a message is, if any."""
    custom = _custom(row.data)
    if row.sender == "system" and custom.get("kind") == "feedback" and custom.get("helpful") is False:
        return "negative_feedback"
    if row.sender == "citizen" and row.text.strip() == NONE_OF_THESE:
        return "unanswered"
    if row.sender == "bot" and custom.get("kind") == "decision" and custom.get("decision") == "no_match":
        return "unanswered"
    reason = custom.get("reason") or row.handoff_reason
    if row.sender == "bot" and custom.get("kind") == "handoff" and reason in GAP_HANDOFFS:
        return "unanswered"
    return None


def message_signals(conn: Connection, after_id: int, since: float, known: set[str] | None = None) -> tuple[list, int]:
    """Negative feedback and unanswered questions in messages after `after_id` (and not older than `since`);
    returns the signals and the highest message id seen. Keys in `known` are skipped before any lookup."""
    rows = conversation_queries.feedback_and_bot_messages(conn, after_id, since, citizen_text=NONE_OF_THESE)
    signals, last_id, seen = [], after_id, set(known or ())
    for row in rows:
        last_id = max(last_id, row.id)
        kind = _trigger(row)
        if kind is None or f"feedback:{row.id}" in seen:
            continue
        question = conversation_queries.citizen_question_before(conn, row.conversation_id, row.id)
        if question is None:
            continue
        key = _message_key(kind, row, question)
        if key in seen:
            continue
        seen.add(key)
        signals.append(_from_message(kind, key, row, question))
    return signals, last_id


def _message_key(kind: str, row, question) -> str:
    if kind == "negative_feedback":
        return f"feedback:{row.id}"
    # One unanswered item per wording and week: a no-match and the handoff after it are the same gap, and
    # the same question asked again that week is no new work (the workshop's groups count them).
    year, week, _ = dt.datetime.fromtimestamp(row.created_at, dt.UTC).isocalendar()
    wording = hashlib.sha1(" ".join(fold(question.text).split()).strip(" ?!.").encode()).hexdigest()[:16]
    return f"unanswered:{year}-W{week:02d}:{wording}"


def _from_message(kind: str, key: str, row, question) -> Signal:
    custom = _custom(row.data)
    detail = {"question_id": question.id}
    entry_id = None
    if kind == "negative_feedback":
        entry_id = custom.get("entry_id") or None
    else:
        detail["reason"] = custom.get("decision") or custom.get("reason") or "none_of_these"
    return Signal(
        municipality=row.municipality,
        source_key=key,
        kind=kind,
        occurred_at=row.created_at,
        text=masked(question.text),
        entry_id=entry_id,
        conversation_id=row.conversation_id,
        topic=row.topic,
        detail=detail,
    )


def rating_signals(conn: Connection, since: float) -> list[Signal]:
    """Chats rated LOW_RATING or lower with a comment, changed since `since`."""
    out = []
    for conv in conversation_queries.low_rated(conn, LOW_RATING, since):
        if not (conv.csat_comment or "").strip():
            continue
        out.append(
            Signal(
                municipality=conv.municipality,
                source_key=f"rating:{conv.id}",
                kind="low_rating",
                occurred_at=conv.closed_at or conv.updated_at,
                text=masked(conv.csat_comment),
                entry_id=_last_answer(conn, conv.id),
                conversation_id=conv.id,
                topic=conv.topic,
                detail={"score": conv.csat_score},
            )
        )
    return out


def _last_answer(conn: Connection, conversation_id: str) -> str | None:
    """The last entry the bot answered with in a conversation (it decides the owner of a rating)."""
    for data in conversation_queries.bot_message_data(conn, conversation_id):
        custom = _custom(data)
        if custom.get("kind") == "answer" and custom.get("entry_id"):
            return custom["entry_id"]
    return None


def _midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time()).timestamp()


def review_notice_days(settings: dict | None) -> int:
    """How many days before its review date an entry's owner is told (0: not before it passes)."""
    value = ((settings or {}).get("reviews") or {}).get("notice_days", REVIEW_NOTICE_DAYS)
    try:
        return max(0, min(MAX_NOTICE_DAYS, int(value)))
    except (TypeError, ValueError):
        return REVIEW_NOTICE_DAYS


def review_signals(engine, municipality: str, today: dt.date | None = None) -> list[Signal]:
    """Entries whose review date has passed (in the municipality's time zone), and those whose date comes
    within the notice period; a new date makes new items, and a date that passes after its notice gives the
    overdue item as well (another source key)."""
    settings = municipality_settings.settings(engine, municipality)
    if today is None:
        today = dt.datetime.now(municipality_settings.timezone(settings)).date()
    notice = review_notice_days(settings)
    out = []
    for entry in KnowledgeStore(engine).all(municipality):
        if not entry.review_by:
            continue
        days = (entry.review_by - today).days
        if days < 0:  # when the calendar said it: the date itself, or (notice) this pass
            kind, key, at, extra = "overdue_review", "review", _midnight(entry.review_by), {"days_overdue": -days}
        elif days <= notice and notice > 0:
            kind, key, at, extra = "review_due", "review_due", time.time(), {"days_left": days}
        else:
            continue
        out.append(
            Signal(
                municipality=municipality,
                source_key=f"{key}:{entry.id}:{entry.review_by.isoformat()}",
                kind=kind,
                occurred_at=at,
                text=masked(entry.first_question("sv")),
                entry_id=entry.id,
                detail={"review_by": entry.review_by.isoformat(), **extra},
            )
        )
    return out

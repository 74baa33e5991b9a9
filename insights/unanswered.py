"""What the conversations teach the webmaster: gaps, stale entries, and what chat achieves.

- `unanswered`: citizen questions that ended in clarify, handoff or "not helpful", grouped by
  meaning (the service's embedder) and language, with the agents' replies in handed-over chats as
  drafts for a new entry.
- `freshness`: entries past (or near) their review date and entries marked unhelpful.
- `dashboard`: conversations per day, deflection, handovers, satisfaction, languages, top questions,
  busiest hours and the estimated saving against the phone.

Bot messages carry `custom.kind` ("answer" | "clarify" | "handoff") from the Rasa actions; feedback
is a system message with `custom = {"kind": "feedback", "entry_id", "helpful"}`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, select

from conversations.tables import conversations, messages
from core import municipalities
from core.municipalities import timezone
from insights import dismissals
from knowledge.lexical import fold
from learning.meaning import GROUP_THRESHOLD, cluster, conversation_rows, normalise

# A Swedish municipality's defaults (each municipality sets its own on the dashboard or the municipalities page).
DEFAULT_COSTS = {"cost_per_call": 60.0, "cost_per_chat": 16.0, "currency": "SEK"}
GAP_REASONS = ("clarify", "handoff", "not_helpful")


@dataclass
class Gap:
    """One citizen message the knowledge base did not answer well."""

    message_id: int
    conversation_id: str
    text: str
    at: float
    session_language: str
    reasons: set[str] = field(default_factory=set)
    entry_id: str | None = None  # the entry marked unhelpful
    drafts: list[str] = field(default_factory=list)


def _custom(row) -> dict:
    return ((row.data or {}).get("custom") or {}) if row.data else {}


def find_gaps(engine: Engine, municipality: str, since: float) -> list[Gap]:
    """Walk each conversation: a question followed by clarify/handoff, or an answer marked unhelpful."""
    convs, by_conv = conversation_rows(engine, municipality, since)
    gaps: dict[int, Gap] = {}
    for conv_id, rows in by_conv.items():
        _walk(convs[conv_id], rows, gaps)
    return [g for g in gaps.values() if g.reasons]


def _walk(conv: dict, rows: list, gaps: dict[int, Gap]) -> None:
    question = None  # the last real question (button payloads start with "/")
    answered: Gap | None = None
    mine: list[Gap] = []

    def gap_for(row) -> Gap:
        if row.id not in gaps:
            gaps[row.id] = Gap(row.id, conv["id"], row.text, row.created_at, conv["language"])
            mine.append(gaps[row.id])
        return gaps[row.id]

    for row in rows:
        custom = _custom(row)
        kind = custom.get("kind")
        if row.sender == "citizen":
            if not row.text.startswith("/"):
                question = row
        elif row.sender == "bot" and question is not None:
            if kind == "answer":
                answered = Gap(
                    question.id,
                    conv["id"],
                    question.text,
                    question.created_at,
                    conv["language"],
                    entry_id=custom.get("entry_id"),
                )
            elif kind == "clarify":
                gap_for(question).reasons.add("clarify")
            # "I want a person" is no gap in the knowledge base; any other handoff is
            elif kind == "handoff" and (custom.get("reason") or conv.get("handoff_reason")) != "requested":
                gap_for(question).reasons.add("handoff")
        elif row.sender == "system" and kind == "feedback" and custom.get("helpful") is False and answered:
            gap = gap_for(_Row(answered.message_id, answered.text, answered.at))
            gap.reasons.add("not_helpful")
            gap.entry_id = custom.get("entry_id") or answered.entry_id
        elif row.sender == "agent" and row.text.strip():
            for gap in mine:
                if len(gap.drafts) < 3:
                    gap.drafts.append(row.text.strip())


@dataclass
class _Row:
    id: int
    text: str
    created_at: float


def _known_questions(knowledge, municipality: str) -> set[str]:
    return {fold(q).strip() for e in knowledge.store.all(municipality) for qs in e.questions.values() for q in qs}


def group_gaps(
    gaps: list[Gap], knowledge, municipality: str, threshold: float = GROUP_THRESHOLD, limit: int = 50
) -> list[dict]:
    """Group by language, then by meaning: greedy clustering on the embedder's query vectors."""
    known = _known_questions(knowledge, municipality)
    gaps = [g for g in gaps if fold(g.text).strip() not in known]  # already added as a variant
    by_language: dict[str, list[tuple[Gap, float]]] = defaultdict(list)
    for gap in gaps:
        lang, _conf = knowledge.detect_language(gap.text, prior=gap.session_language)
        by_language[lang].append((gap, 0.0))
    groups: list[dict] = []
    for lang, items in by_language.items():
        texts = [g.text for g, _ in items]
        vectors = normalise(knowledge.embedder.encode_queries(texts))
        members, centroids = cluster(vectors, sorted(range(len(items)), key=lambda i: items[i][0].at), threshold)
        for idx, group in enumerate(members):
            groups.append(_describe([items[i][0] for i in group], lang, vectors[group], centroids[idx]))
    groups.sort(key=lambda g: (-g["count"], -g["last_at"]))
    groups = groups[:limit]
    for group in groups:
        try:
            result = knowledge.answer(
                group["representative"], language=group["language"], municipality=municipality, top_k=3
            )
            group["suggestions"] = [
                {"id": a["id"], "question": a["question"], "score": round(float(a["score"]), 3)}
                for a in result.get("answers", [])
                if not str(a["id"]).startswith("notice-")
            ]
        except Exception:  # noqa: BLE001 - suggestions are a help, not a requirement
            group["suggestions"] = []
    return groups


def _describe(gaps: list[Gap], language: str, vectors: np.ndarray, centroid: np.ndarray) -> dict:
    centre = centroid / (np.linalg.norm(centroid) + 1e-9)
    representative = gaps[int(np.argmax(vectors @ centre))].text
    texts = Counter(g.text for g in gaps)
    reasons = Counter(r for g in gaps for r in g.reasons)
    drafts = list(dict.fromkeys(d for g in gaps for d in g.drafts))[:5]
    key = hashlib.sha1(f"{language}:{fold(representative)}".encode()).hexdigest()[:12]
    return {
        "id": key,
        "language": language,
        "count": len(gaps),
        "representative": representative,
        "texts": [{"text": t, "count": n} for t, n in texts.most_common(20)],
        "reasons": dict(reasons),
        "entry_ids": sorted({g.entry_id for g in gaps if g.entry_id}),
        "drafts": drafts,
        "conversations": list(dict.fromkeys(g.conversation_id for g in gaps))[:10],
        "last_at": max(g.at for g in gaps),
    }


def unanswered(knowledge, engine: Engine, municipality: str, days: int = 30, threshold: float = GROUP_THRESHOLD):
    """The gaps of the last `days`, grouped; wordings the webmaster dismissed as junk are left out."""
    junk = dismissals.dismissed_keys(engine, municipality)
    found = find_gaps(engine, municipality, time.time() - days * 86400)
    gaps = [g for g in found if dismissals.key(g.text) not in junk]
    return group_gaps(gaps, knowledge, municipality, threshold=threshold)


def feedback_counts(engine: Engine, municipality: str, since: float = 0.0) -> dict[str, dict[str, int]]:
    """Per entry: how often its answer was marked helpful and not helpful."""
    query = (
        select(messages.c.data)
        .join(conversations, conversations.c.id == messages.c.conversation_id)
        .where(
            conversations.c.municipality == municipality, messages.c.sender == "system", messages.c.created_at >= since
        )
    )
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"helpful": 0, "not_helpful": 0})
    with engine.connect() as conn:
        for (data,) in conn.execute(query):
            custom = (data or {}).get("custom") or {}
            if custom.get("kind") == "feedback" and custom.get("entry_id"):
                counts[custom["entry_id"]]["helpful" if custom.get("helpful") else "not_helpful"] += 1
    return dict(counts)


def freshness(knowledge, engine: Engine, municipality: str, soon_days: int = 30, today: dt.date | None = None):
    """The work list: overdue reviews, reviews due soon, and answers citizens marked unhelpful."""
    today = today or dt.date.today()
    feedback = feedback_counts(engine, municipality)
    items = []
    for entry in knowledge.store.all(municipality):
        reasons = []
        if entry.review_by and entry.review_by < today:
            reasons.append({"kind": "overdue", "days": (today - entry.review_by).days})
        elif entry.review_by and entry.review_by <= today + dt.timedelta(days=soon_days):
            reasons.append({"kind": "due_soon", "days": (entry.review_by - today).days})
        elif not entry.review_by:
            reasons.append({"kind": "no_review_date"})
        counts = feedback.get(entry.id, {"helpful": 0, "not_helpful": 0})
        if counts["not_helpful"]:
            reasons.append({"kind": "unhelpful", **counts})
        if not reasons:
            continue
        weight = sum(
            {"overdue": 100, "unhelpful": 50 + counts["not_helpful"], "due_soon": 10, "no_review_date": 1}[r["kind"]]
            for r in reasons
        )
        items.append(
            {
                "id": entry.id,
                "question": entry.first_question("sv"),
                "review_by": entry.review_by.isoformat() if entry.review_by else None,
                "reasons": reasons,
                "feedback": counts,
                "weight": weight,
            }
        )
    items.sort(key=lambda i: (-i["weight"], i["review_by"] or "9999"))
    return items


def _answered_item(entry_id: str, count: int, entries: dict, knowledge, municipality: str) -> dict:
    """An answered id as the dashboard shows it: an entry's question, or a notice's area or text (never the id)."""
    item = {"id": entry_id, "count": count, "kind": "entry"}
    if entry_id in entries:
        return {**item, "question": entries[entry_id].first_question("sv")}
    if entry_id.startswith("notice-") and entry_id[7:].isdigit():
        notice = knowledge.notices.get(municipality, int(entry_id[7:])) or {}
        return {**item, "kind": "notice", "question": (notice.get("area") or notice.get("text") or "")[:120]}
    return {**item, "kind": "deleted", "question": ""}


@dataclass
class _Tally:
    """The dashboard's counts, filled one conversation at a time."""

    per_day: dict[str, dict[str, int]]
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    languages: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    answered: Counter = field(default_factory=Counter)
    csat: Counter = field(default_factory=Counter)
    total: int = 0
    deflected: int = 0
    handed: int = 0
    helpful: int = 0
    not_helpful: int = 0

    def count(self, conv: dict, rows: list, citizen: list, tz: dt.tzinfo) -> None:
        self.total += 1
        day = dt.datetime.fromtimestamp(conv["created_at"], tz).date().isoformat()
        bucket = self.per_day.setdefault(day, {"bot": 0, "handed_over": 0})
        if conv["queued_at"]:
            self.handed += 1
            bucket["handed_over"] += 1
            self.reasons[conv["handoff_reason"] or "unknown"] += 1
        else:
            self.deflected += 1
            bucket["bot"] += 1
        if conv["csat_score"]:
            self.csat[int(conv["csat_score"])] += 1
        language = conv["language"]
        for row in rows:
            custom = _custom(row)
            if row.sender == "bot" and custom.get("language"):
                language = custom["language"]
            if row.sender == "bot" and custom.get("kind") == "answer" and custom.get("entry_id"):
                self.answered[custom["entry_id"]] += 1
            if row.sender == "system" and custom.get("kind") == "feedback":
                self.helpful += bool(custom.get("helpful"))
                self.not_helpful += custom.get("helpful") is False
        self.languages[language] += 1
        for row in citizen:
            self.hours[dt.datetime.fromtimestamp(row.created_at, tz).hour] += 1


def dashboard(knowledge, engine: Engine, municipality: str, days: int = 30, now: float | None = None) -> dict:
    """Figures for the dashboard over the last `days` days, in the municipality's time zone."""
    now = now or time.time()
    since = now - days * 86400
    settings = municipalities.settings(engine, municipality) or {}
    tz = timezone(settings)
    convs, by_conv = conversation_rows(engine, municipality, since, now)
    start_day = dt.datetime.fromtimestamp(since, tz).date()
    tally = _Tally(
        per_day={(start_day + dt.timedelta(days=n)).isoformat(): {"bot": 0, "handed_over": 0} for n in range(days + 1)}
    )
    for conv_id, rows in by_conv.items():
        citizen = [r for r in rows if r.sender == "citizen"]
        if citizen:  # a widget opened without a question is not a conversation
            tally.count(convs[conv_id], rows, citizen, tz)
    costs = {k: settings.get(k, v) for k, v in DEFAULT_COSTS.items()}
    call, chat = float(costs["cost_per_call"]), float(costs["cost_per_chat"])
    saving = tally.deflected * call + tally.handed * (call - chat)
    entries = {e.id: e for e in knowledge.store.all(municipality)}
    scored = sum(tally.csat.values())
    total, deflected = tally.total, tally.deflected
    return {
        "days": days,
        "since": since,
        "until": now,
        "timezone": str(tz),
        "conversations": total,
        "deflected": deflected,
        "handed_over": tally.handed,
        "deflection_rate": round(deflected / total, 3) if total else None,
        "handoff_reasons": dict(tally.reasons),
        "per_day": [{"day": d, **v} for d, v in sorted(tally.per_day.items())],
        "satisfaction": {
            "average": round(sum(k * v for k, v in tally.csat.items()) / scored, 2) if scored else None,
            "responses": scored,
            "distribution": {str(k): tally.csat.get(k, 0) for k in range(1, 6)},
            "helpful": tally.helpful,
            "not_helpful": tally.not_helpful,
        },
        "languages": dict(tally.languages.most_common()),
        "top_questions": [
            _answered_item(eid, n, entries, knowledge, municipality) for eid, n in tally.answered.most_common(10)
        ],
        "busiest_hours": tally.hours,
        "saving": {
            **costs,
            "amount": round(saving, 2),
            "formula": "deflected × cost per call + handed over × (cost per call − cost per chat)",
        },
    }

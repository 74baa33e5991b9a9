"""Suggestions from real traffic: how citizens ask, turned into question variants and new entries.

Evidence, read from the stored conversations of one municipality (shapes as the Rasa actions, the
feedback endpoint and the agents' console store them):
- a clarify choice: a question, the bot's "did you mean" (`custom.kind` clarify with `entry_ids`), the
  citizen picks one (an answer with `decision` "clarify_choice"): the question is a wording of that entry;
- a topic choice: a question the bot had no match for (`custom.kind` decision, `decision` no_match, with the
  municipality's top `topics` offered as the same /choose_entry buttons), the citizen picks one: like a
  clarify choice, unless the citizen then says the answer did not help (a topic is a guess, not a match);
- positive feedback: a question answered with entry X, then `feedback` with `helpful` true: a wording of X;
- an agent's answer to a handed-off chat: the citizen's questions before the agent replied and the reply
  become a NEW entry, or a variant of an entry when the agent sent that entry's answer. After the agent
  hands the chat back to the bot (a system message `custom.kind` handback) the walk goes on as before it.
Wordings are grouped by target, language (the citizen's, detected) and meaning, counted, with masked
evidence. Nothing changes the knowledge base until a webmaster accepts; a dismissed proposal's wordings
are remembered per target and never proposed again.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from core.db import metadata
from core.errors import Conflicting, Invalid, NotFound
from core.privacy import mask
from core.text import clean_message
from handoff.questions import is_payload, questions
from knowledge.entries import Entry
from knowledge.lexical import fold
from learning.meaning import GROUP_THRESHOLD, cluster, conversation_rows, encode

kb_suggestions = Table(
    "kb_suggestions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # variant | entry
    Column("entry_id", String(128), nullable=False),  # the target entry; "" for a new entry until accepted
    Column("text_key", String(500), nullable=False),  # the proposed question as matching sees it
    Column("question", Text, nullable=False),
    Column("answer", Text),  # a new entry's answer (the agent's reply, masked)
    Column("language", String(8)),
    Column("status", String(16), nullable=False),  # proposed | accepted | dismissed
    Column("count", Integer, nullable=False),
    Column("sources", JSON),  # {"clarify": n, "feedback": n, "agent": n}
    Column("evidence", JSON),  # [{"conversation_id", "text", "source", "at"}], masked
    Column("created_at", Float, nullable=False, default=time.time),
    Column("updated_at", Float, nullable=False, default=time.time),
    Column("decided_by", String(100)),
    Column("decided_at", Float),
    UniqueConstraint("municipality", "kind", "entry_id", "text_key", name="uq_kb_suggestions_wording"),
    Index("ix_kb_suggestions_status", "municipality", "status"),
)

VARIANT, NEW_ENTRY = "variant", "entry"
PROPOSED, ACCEPTED, DISMISSED = "proposed", "accepted", "dismissed"
SOURCES = ("clarify", "topic", "feedback", "agent")
MAX_EVIDENCE = 20  # shown per proposal
QUESTIONS_PER_HANDOFF = 2  # the citizen's last questions before an agent replied
MIN_MATCHED_ANSWER = 40  # characters of an entry's answer that must appear in an agent's reply to count as sent


class KnowledgeLike(Protocol):
    """What the miner and accept need of `knowledge.service.KnowledgeService` (the bench passes its own)."""

    store: Any
    embedder: Any

    def detect_language(self, text: str, prior: str | None = None) -> tuple[str, float]: ...

    def upsert(self, entry: Entry, actor: str | None = None) -> str: ...


def key(text: str) -> str:
    """The wording as matching sees it: folded case and accents, punctuation dropped, one space."""
    return " ".join(re.sub(r"[^\w\s]", " ", fold(text)).split())[:500]


@dataclass
class Evidence:
    """One citizen message that shows how a target entry (or a new one) is asked."""

    conversation_id: str
    message_id: int
    text: str  # masked
    at: float
    session_language: str
    entry_id: str  # "" = a new entry
    sources: set[str] = field(default_factory=set)
    answer: str | None = None  # the agent's reply (masked), for a new entry


def _custom(row) -> dict:
    return ((row.data or {}).get("custom") or {}) if row.data else {}


def _sent_entry(reply: str, answers: dict[str, list[str]]) -> str | None:
    """The entry whose answer the agent sent (from the console's suggestions), if any."""
    folded = " ".join(fold(reply).split())
    for entry_id, texts in answers.items():
        for text in texts:
            if len(text) < MIN_MATCHED_ANSWER:
                continue
            if text in folded or (len(folded) >= MIN_MATCHED_ANSWER and folded in text):
                return entry_id
    return None


class _Walk:
    """One conversation, message by message (see the module doc for what counts)."""

    def __init__(self, conv: dict, answers: dict[str, list[str]]):
        self.conv = conv
        self.answers = answers
        self.found: dict[tuple[int, str], Evidence] = {}
        self.question = None  # the citizen's last typed message
        self.offered: tuple[Any, set[str], str] | None = None  # (question, entry ids, source) of the last offer
        self.answered: tuple[Any, str] | None = None  # (question, entry id) of the last answer
        self.picked_topic: tuple[int, str] | None = None  # the evidence a topic choice gave, until feedback
        self.helped: set[int] = set()  # questions whose answer the citizen marked helpful

    def add(self, row, entry_id: str, source: str, answer: str | None = None) -> None:
        item = self.found.setdefault(
            (row.id, entry_id),
            Evidence(self.conv["id"], row.id, mask(row.text), row.created_at, self.conv["language"], entry_id),
        )
        item.sources.add(source)
        item.answer = item.answer or answer

    def bot(self, row, custom: dict) -> None:
        kind = custom.get("kind")
        if kind == "clarify" and self.question is not None:
            self.offered = (self.question, {str(i) for i in custom.get("entry_ids") or []}, "clarify")
        elif kind == "decision" and custom.get("decision") == "no_match" and self.question is not None:
            self.offered = (self.question, {str(i) for i in custom.get("topics") or []}, "topic")
        elif kind == "answer":
            entry_id = str(custom.get("entry_id") or "")
            self.picked_topic = None
            if custom.get("decision") == "clarify_choice":
                if self.offered and entry_id in self.offered[1]:
                    question, _, source = self.offered
                    self.add(question, entry_id, source)
                    self.answered = (question, entry_id)
                    self.picked_topic = (question.id, entry_id) if source == "topic" else None
                else:
                    self.answered = None  # a choice nobody offered for a question says nothing of its wording
            elif self.question is not None:
                self.answered = (self.question, entry_id)
            self.offered = None

    def feedback(self, custom: dict) -> None:
        same = self.answered and str(custom.get("entry_id")) == self.answered[1]
        if same and custom.get("helpful") is True:
            self.add(self.answered[0], self.answered[1], "feedback")
            self.helped.add(self.answered[0].id)
        elif same and custom.get("helpful") is False and self.picked_topic:
            item = self.found.get(self.picked_topic)
            if item is not None:
                item.sources.discard("topic")
                if not item.sources:
                    del self.found[self.picked_topic]
        self.answered = self.picked_topic = None

    def run(self, rows: list) -> list[Evidence]:
        start, index = 0, 0
        while index < len(rows):
            row = rows[index]
            custom = _custom(row)
            if row.sender == "citizen" and not is_payload(row.text) and row.text.strip():
                self.question = row
            elif row.sender == "bot":
                self.bot(row, custom)
            elif row.sender == "system" and custom.get("kind") == "feedback":
                self.feedback(custom)
            elif row.sender == "agent":
                end = _handed_back(rows, index)
                self.handed(rows[start:index], rows[index:end])
                self.question = self.offered = self.answered = self.picked_topic = None
                start = index = end  # the bot has the chat again: its own turns count as before
                continue
            index += 1
        return list(self.found.values())

    def handed(self, before: list, after: list) -> None:
        """An agent took over: their fullest reply answers the citizen's unresolved questions before it."""
        replies = [r.text.strip() for r in after if r.sender == "agent" and r.text.strip()][:5]
        if not replies:
            return
        reply = mask(max(replies, key=len))
        sent = _sent_entry(reply, self.answers)
        asked = [q for q in questions(before) if q.id not in self.helped][-QUESTIONS_PER_HANDOFF:]
        for question in asked:
            self.add(question, sent or "", "agent", None if sent else reply)


def _handed_back(rows: list, index: int) -> int:
    """Where the agent's part that starts at `index` ends: the handback to the bot, else the end."""
    for later in range(index + 1, len(rows)):
        if rows[later].sender == "system" and _custom(rows[later]).get("kind") == "handback":
            return later
    return len(rows)


def harvest(convs: dict[str, dict], by_conv: dict[str, list], answers: dict[str, list[str]]) -> list[Evidence]:
    """Every piece of evidence in the conversations, oldest conversation first."""
    found: list[Evidence] = []
    for conv_id in sorted(convs, key=lambda c: (convs[c]["created_at"], c)):
        found.extend(_Walk(convs[conv_id], answers).run(by_conv.get(conv_id, [])))
    return found


def answer_texts(entries: list[Entry]) -> dict[str, list[str]]:
    """Each entry's answers as an agent's masked reply would show them (masking may touch an answer's phone)."""
    return {e.id: [" ".join(fold(mask(t)).split()) for t in e.answer.values()] for e in entries}


def _known_wordings(entries: list[Entry]) -> dict[str, set[str]]:
    return {e.id: {key(q) for qs in e.questions.values() for q in qs} for e in entries}


def _proposal(kind: str, entry_id: str, language: str, items: list[Evidence]) -> dict:
    """One group of evidence as a proposal: the most frequent wording (earliest on a tie) is the question."""
    counts = Counter(i.text for i in items)
    first = {}
    for i in sorted(items, key=lambda i: (i.at, i.message_id)):
        first.setdefault(i.text, i.at)
    question = min(counts, key=lambda t: (-counts[t], first[t]))
    answers = Counter(i.answer for i in items if i.answer)
    answer = min(answers, key=lambda t: (-answers[t], -len(t), t)) if answers else None
    ordered = sorted(items, key=lambda i: (-i.at, -i.message_id))
    return {
        "kind": kind,
        "entry_id": entry_id,
        "language": language,
        "question": question,
        "text_key": key(question),
        "answer": answer,
        "count": len(items),
        "sources": dict(Counter(s for i in items for s in sorted(i.sources))),
        "evidence": [
            {"conversation_id": i.conversation_id, "text": i.text, "source": "+".join(sorted(i.sources)), "at": i.at}
            for i in ordered[:MAX_EVIDENCE]
        ],
        "wording_keys": sorted({key(i.text) for i in items}),
    }


def propose(
    evidence: list[Evidence],
    knowledge: KnowledgeLike,
    entries: list[Entry],
    decided: set[tuple[str, str, str]],
    threshold: float = GROUP_THRESHOLD,
) -> list[dict]:
    """Group the evidence into proposals (variants of known entries and new entries), most evidence first.

    Left out: wordings an entry already has, targets that no longer exist, and wordings dismissed for
    for the same target before (`decided` holds (kind, entry_id, key)); new entries that a question of the
    knowledge base already words."""
    known = _known_wordings(entries)
    every = set().union(*known.values()) if known else set()
    buckets: dict[tuple[str, str, str], list[Evidence]] = defaultdict(list)
    for item in evidence:
        kind = VARIANT if item.entry_id else NEW_ENTRY
        wording = key(item.text)
        if not wording or (kind == VARIANT and (item.entry_id not in known or wording in known[item.entry_id])):
            continue
        if (kind, item.entry_id, wording) in decided or (kind == NEW_ENTRY and wording in every):
            continue
        language, _ = knowledge.detect_language(item.text, prior=item.session_language)
        buckets[(kind, item.entry_id, language)].append(item)
    texts = sorted({i.text for items in buckets.values() for i in items})
    if not texts:
        return []
    vectors = dict(zip(texts, encode(knowledge.embedder, texts), strict=True))
    out = []
    for (kind, entry_id, language), items in sorted(buckets.items()):
        items.sort(key=lambda i: (i.at, i.message_id))
        matrix = np.stack([vectors[i.text] for i in items])
        members, _ = cluster(matrix, range(len(items)), threshold)
        out.extend(_proposal(kind, entry_id, language, [items[i] for i in group]) for group in members)
    out.sort(key=lambda p: (-p["count"], -p["evidence"][0]["at"], p["text_key"]))
    return out


# ----------------------------------------------------------------------------- the stored proposals


def _decided(engine: Engine, municipality: str) -> set[tuple[str, str, str]]:
    """(kind, target, key) of every wording of every accepted or dismissed proposal: the webmaster has seen
    them, so they are not proposed for the same target again (a new entry's target is "" while proposed)."""
    query = select(kb_suggestions).where(
        kb_suggestions.c.municipality == municipality, kb_suggestions.c.status != PROPOSED
    )
    out = set()
    with engine.connect() as conn:
        for row in conn.execute(query):
            wordings = {row.text_key, *(key(e["text"]) for e in row.evidence or [])}
            targets = {row.entry_id, ""} if row.kind == NEW_ENTRY else {row.entry_id}
            out.update((row.kind, t, w) for t in targets for w in wordings)
    return out


def mine(knowledge: KnowledgeLike, engine: Engine, municipality: str, since: float = 0.0) -> list[dict]:
    """The proposals the traffic since `since` supports now (nothing is stored or applied)."""
    entries = knowledge.store.all(municipality)
    convs, by_conv = conversation_rows(engine, municipality, since)
    evidence = harvest(convs, by_conv, answer_texts(entries))
    return propose(evidence, knowledge, entries, _decided(engine, municipality))


def refresh(knowledge: KnowledgeLike, engine: Engine, municipality: str, days: int = 90) -> list[dict]:
    """Mine again and store the result: proposals keep their id while their question stays the same, those
    the traffic no longer supports go; accepted and dismissed ones are never touched. Returns the proposed."""
    proposals = mine(knowledge, engine, municipality, time.time() - days * 86400)
    now = time.time()
    for _attempt in range(3):  # another worker refreshing at the same moment: try again
        try:
            _store(engine, municipality, proposals, now)
            break
        except IntegrityError:
            continue
    return listing(engine, municipality, PROPOSED)


def _store(engine: Engine, municipality: str, proposals: list[dict], now: float) -> None:
    with engine.begin() as conn:
        rows = conn.execute(select(kb_suggestions).where(kb_suggestions.c.municipality == municipality)).all()
        existing = {(r.kind, r.entry_id, r.text_key): r for r in rows}
        keep: set[int] = set()
        for p in proposals:
            values = {k: p[k] for k in ("question", "answer", "language", "count", "sources", "evidence")}
            row = existing.get((p["kind"], p["entry_id"], p["text_key"]))
            if row is None:
                conn.execute(
                    insert(kb_suggestions).values(
                        municipality=municipality,
                        kind=p["kind"],
                        entry_id=p["entry_id"],
                        text_key=p["text_key"],
                        status=PROPOSED,
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                )
            elif row.status == PROPOSED:
                keep.add(row.id)
                conn.execute(
                    update(kb_suggestions).where(kb_suggestions.c.id == row.id).values(updated_at=now, **values)
                )
        gone = [r.id for r in rows if r.status == PROPOSED and r.id not in keep]
        if gone:
            conn.execute(delete(kb_suggestions).where(kb_suggestions.c.id.in_(gone)))


def listing(engine: Engine, municipality: str, status: str | None = PROPOSED) -> list[dict]:
    query = select(kb_suggestions).where(kb_suggestions.c.municipality == municipality)
    if status:
        query = query.where(kb_suggestions.c.status == status)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    rows.sort(key=lambda r: (-r["count"], -r["updated_at"], r["id"]))
    return rows


MAX_ID = 2_147_483_647  # what both databases hold in an integer column: a larger id is unknown, not an overflow


def get(engine: Engine, municipality: str, suggestion_id: int) -> dict:
    if not 1 <= suggestion_id <= MAX_ID:
        raise NotFound(f"no suggestion with id {suggestion_id}")
    with engine.connect() as conn:
        row = conn.execute(
            select(kb_suggestions).where(
                kb_suggestions.c.id == suggestion_id, kb_suggestions.c.municipality == municipality
            )
        ).first()
    if row is None:
        raise NotFound(f"no suggestion with id {suggestion_id}")
    return dict(row._mapping)


def _decide(engine: Engine, row: dict, status: str, actor: str, **values) -> dict:
    """Record the webmaster's decision, once: a second decision on the same proposal is a conflict. The decided
    proposal keeps its (masked) wordings, so they are not proposed again, but no longer says which
    conversations they came from: retention and erasure of those conversations need not look here."""
    unlinked = [{**e, "conversation_id": None} for e in row["evidence"] or []]
    values.setdefault("evidence", unlinked)
    with engine.begin() as conn:
        done = conn.execute(
            update(kb_suggestions)
            .where(kb_suggestions.c.id == row["id"], kb_suggestions.c.status == PROPOSED)
            .values(status=status, decided_by=actor, decided_at=time.time(), updated_at=time.time(), **values)
        ).rowcount
    if not done:
        raise Conflicting(f"suggestion {row['id']} was already decided")
    return get(engine, row["municipality"], row["id"])


def _pending(engine: Engine, municipality: str, suggestion_id: int) -> dict:
    row = get(engine, municipality, suggestion_id)
    if row["status"] != PROPOSED:
        raise Conflicting(f"suggestion {suggestion_id} was already {row['status']}")
    return row


def dismiss(engine: Engine, municipality: str, suggestion_id: int, actor: str) -> dict:
    """The proposal's wordings are not proposed for this target again."""
    return _decide(engine, _pending(engine, municipality, suggestion_id), DISMISSED, actor)


def new_entry_id(question: str) -> str:
    slug = "-".join(re.sub(r"[^a-z0-9]+", " ", fold(question)).split()[:8])[:60].strip("-")
    digest = hashlib.sha1(question.encode()).hexdigest()[:6]
    return f"{slug}-{digest}" if slug else f"suggestion-{digest}"


def _new_wordings(texts: list[str], existing: list[str]) -> list[str]:
    """`texts` that `existing` does not word already (nor an earlier one of `texts`), in order."""
    seen = {key(v) for v in existing}
    out = []
    for text in texts:
        if text and key(text) not in seen:
            seen.add(key(text))
            out.append(text)
    return out


def accept(
    knowledge: KnowledgeLike,
    engine: Engine,
    municipality: str,
    suggestion_id: int,
    actor: str,
    question: str | None = None,
    answer: str | None = None,
    wordings: list[str] | None = None,
) -> dict:
    """Apply the proposal through the knowledge service (audited as `actor`, answerable when this returns),
    with the webmaster's edited question (and, for a new entry, answer) if given. `wordings`: other citizens'
    wordings from the proposal's evidence the webmaster ticked, added as further questions (no others)."""
    row = _pending(engine, municipality, suggestion_id)
    text = clean_message(question or row["question"])
    language = row["language"] or "sv"
    if not text:
        raise Invalid("the question is empty", [{"field": "question", "message": "write the question"}])
    shown = {e["text"] for e in row["evidence"] or []}
    unknown = [w for w in wordings or [] if w not in shown]
    if unknown:
        raise Invalid(
            "only wordings from the suggestion's evidence can be added",
            [{"field": "wordings", "message": f"not in the evidence: {w[:80]}"} for w in unknown],
        )
    texts = list(dict.fromkeys([text, *(clean_message(w) for w in wordings or [])]))
    if row["kind"] == VARIANT:
        entry = knowledge.store.get(municipality, row["entry_id"])
        if entry is None:
            raise Conflicting(f"the entry '{row['entry_id']}' no longer exists: dismiss the suggestion")
        variants = entry.questions.setdefault(language, [])
        added = _new_wordings(texts, variants)
        variants.extend(added)
        if added:
            knowledge.upsert(entry, actor=actor)
        return _decide(engine, row, ACCEPTED, actor, question=text)
    reply = clean_message(answer or row["answer"] or "")
    if not reply:
        raise Invalid("a new entry needs an answer", [{"field": "answer", "message": "write the answer"}])
    reply_language, _ = knowledge.detect_language(reply, prior="sv")
    entry_id = new_entry_id(text)
    while knowledge.store.get(municipality, entry_id) is not None:
        entry_id = new_entry_id(entry_id + text)
    questions = _new_wordings(texts, [])
    entry = Entry(
        id=entry_id, answer={reply_language: reply}, questions={language: questions}, municipality=municipality
    )
    knowledge.upsert(entry, actor=actor)
    return _decide(engine, row, ACCEPTED, actor, question=text, answer=reply, entry_id=entry_id)

"""Disruption notices (störningsinformation): a water leak on a street, a closed school.

A notice has a text per language, an area and a validity period. While valid it is shown as a banner
in the widget, and a question that matches it (names its area or one of its keywords, or is close in
meaning to its text) is answered with the notice first: the citizen asking about the water on a
street with a burst pipe should hear about the pipe, not the general FAQ about water.
The notices table and its store live here; the routes are in knowledge/notices_api.py (public) and
knowledge/admin_api.py (the workshop).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import numpy as np
from rapidfuzz import fuzz
from sqlalchemy import JSON, Column, Engine, Float, Index, Integer, String, Table, and_, delete, insert, select, update

from core.db import metadata
from knowledge.kbfile import LANG_RE
from knowledge.lexical import fold

notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("area", String(200)),  # where: a street, a school, a district ("" = the whole municipality)
    Column("texts", JSON, nullable=False),  # {language: text}
    Column("keywords", JSON, nullable=False, default=list),  # extra words that make a question match
    Column("url", String(500)),
    Column("valid_from", Float, nullable=False),
    Column("valid_until", Float, nullable=False),
    Column("created_by", String(100)),
    Column("created_at", Float, nullable=False, default=time.time),
    Column("updated_at", Float, nullable=False, default=time.time),
    Index("ix_notices_validity", "municipality", "valid_until"),
)

# Cosine of e5 query/passage vectors (a narrow high band): "vattnet är borta" vs a leak notice 0.84-0.86,
# unrelated questions 0.76-0.81 on a small hand check. A match by meaning alone only wins when the
# knowledge base itself is not sure (its decision is not "answer"); area and keywords always win.
DENSE_THRESHOLD = 0.835
FUZZY_WORD = 86  # rapidfuzz ratio for one word against another (typos: "storgatn")
_WORD = re.compile(r"\w+", re.UNICODE)


class NoticeError(ValueError):
    """A notice that cannot be stored; `problems` lists field and message."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(fold(text)) if len(w) >= 3]


def _term_in(term: str, words: list[str], folded: str) -> bool:
    """A term (one or more words) is in the question: exactly, inside a compound, or with a typo."""
    term_words = _words(term)
    if not term_words:
        return False
    if len(term_words) > 1:
        return fold(term) in folded or fuzz.partial_ratio(fold(term), folded) >= 92
    t = term_words[0]
    for w in words:
        if w == t or (len(t) >= 5 and t in w) or (len(t) >= 4 and len(w) >= 4 and fuzz.ratio(t, w) >= FUZZY_WORD):
            return True
    return False


def validate(data: dict) -> dict:
    """Check a notice from the workshop; returns the columns to store."""
    problems = []
    texts = data.get("texts") or {}
    if not isinstance(texts, dict):
        texts = {}
    texts = {k: str(v).strip() for k, v in texts.items() if isinstance(v, str) and v.strip()}
    if not texts:
        problems.append({"field": "texts", "message": "write the notice in at least one language (Swedish first)"})
    for lang in texts:
        if not LANG_RE.match(lang):
            problems.append({"field": f"texts.{lang}", "message": "not a language code (use sv, en, ar ...)"})
        elif len(texts[lang]) > 2000:
            problems.append({"field": f"texts.{lang}", "message": "at most 2000 characters"})
    times = {}
    for name in ("valid_from", "valid_until"):
        value = data.get(name)
        try:
            times[name] = _timestamp(value)
        except (TypeError, ValueError):
            problems.append({"field": name, "message": "a date and time is needed, e.g. 2026-11-22T08:00"})
    if len(times) == 2 and times["valid_until"] <= times["valid_from"]:
        problems.append({"field": "valid_until", "message": "must be after the start of the validity period"})
    url = data.get("url") or None
    if url and not re.match(r"^https?://\S+$", url):
        problems.append({"field": "url", "message": "must be a web address starting with http:// or https://"})
    keywords = data.get("keywords") or []
    if isinstance(keywords, str):
        keywords = [k for k in re.split(r"[,;\n]", keywords)]
    keywords = [k.strip() for k in keywords if isinstance(k, str) and k.strip()]
    area = (data.get("area") or "").strip()
    if len(area) > 200:
        problems.append({"field": "area", "message": "at most 200 characters"})
    if problems:
        raise NoticeError(problems)
    return {"texts": texts, "area": area, "keywords": keywords, "url": url, **times}


def _timestamp(value) -> float:
    """UNIX seconds from a number or an ISO date/time (local times are read as Swedish time)."""
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("empty")
    parsed = dt.datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        from zoneinfo import ZoneInfo

        parsed = parsed.replace(tzinfo=ZoneInfo("Europe/Stockholm"))
    return parsed.timestamp()


def public(row: dict, language: str | None = None) -> dict:
    """The shape the widget and the workshop read; `text` is in `language` when the notice has it."""
    texts = row["texts"] or {}
    lang = next((x for x in (language, "sv", "en") if x and x in texts), next(iter(texts), None))
    return {
        "id": row["id"],
        "area": row["area"] or "",
        "texts": texts,
        "keywords": row["keywords"] or [],
        "url": row["url"],
        "valid_from": row["valid_from"],
        "valid_until": row["valid_until"],
        "language": lang,
        "text": texts.get(lang, "") if lang else "",
        "created_by": row.get("created_by"),
        "updated_at": row.get("updated_at"),
    }


class NoticeStore:
    """Notices in the database, and matching questions against the valid ones."""

    def __init__(self, engine: Engine, embedder=None, encode_query=None):
        self.engine = engine
        self.embedder = embedder
        # The retriever's cached query encoder, so a question is not encoded twice per answer.
        self.encode_query = encode_query
        self._vectors: dict[tuple[int, float, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def create(self, municipality: str, data: dict, actor: str | None = None) -> dict:
        values = validate(data)
        now = time.time()
        with self.engine.begin() as conn:
            new_id = conn.execute(
                insert(notices).values(
                    municipality=municipality, created_by=actor, created_at=now, updated_at=now, **values
                )
            ).inserted_primary_key[0]
        return self.get(municipality, new_id)

    def update(self, municipality: str, notice_id: int, data: dict, actor: str | None = None) -> dict | None:
        values = validate(data)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(notices).where(self._key(municipality, notice_id)).values(updated_at=time.time(), **values)
            )
        return self.get(municipality, notice_id) if result.rowcount else None

    def delete(self, municipality: str, notice_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(notices).where(self._key(municipality, notice_id))).rowcount > 0

    def get(self, municipality: str, notice_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(notices).where(self._key(municipality, notice_id))).first()
        return public(dict(row._mapping)) if row else None

    def list(self, municipality: str, include_expired: bool = True) -> list[dict]:
        query = select(notices).where(notices.c.municipality == municipality)
        if not include_expired:
            query = query.where(notices.c.valid_until > time.time())
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(notices.c.valid_from.desc()))
            return [public(dict(r._mapping)) for r in rows]

    def active(self, municipality: str, language: str | None = None, now: float | None = None) -> list[dict]:
        now = time.time() if now is None else now
        query = select(notices).where(
            notices.c.municipality == municipality, notices.c.valid_from <= now, notices.c.valid_until > now
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(notices.c.valid_from.desc()))
            return [public(dict(r._mapping), language) for r in rows]

    def match(
        self, text: str, municipality: str, language: str | None = None, by_meaning: bool = True
    ) -> tuple[dict, str] | None:
        """The valid notice a question is about, and why (area, keyword or meaning), or None."""
        active = self.active(municipality, language)
        if not active:
            return None
        folded = fold(text)
        words = _words(text)
        for notice in active:
            if notice["area"] and _term_in(notice["area"], words, folded):
                return notice, f"the question names the area '{notice['area']}'"
            for keyword in notice["keywords"]:
                if _term_in(keyword, words, folded):
                    return notice, f"the question names the keyword '{keyword}'"
        best = self._closest(text, active) if by_meaning else None
        if best and best[1] >= DENSE_THRESHOLD:
            return best[0], f"the question is close in meaning to the notice (cosine {best[1]:.2f})"
        return None

    def _closest(self, text: str, active: list[dict]) -> tuple[dict, float] | None:
        """Dense similarity between the question and each notice's texts (all languages)."""
        encode_q = getattr(self.embedder, "encode_queries", None)
        encode_p = getattr(self.embedder, "encode_passages", None)
        if not encode_q or not encode_p:
            return None
        query = self.encode_query(text) if self.encode_query else np.asarray(encode_q([text]), dtype=np.float32)[0]
        best: tuple[dict, float] | None = None
        for notice in active:
            for lang, notice_text in notice["texts"].items():
                key = (notice["id"], notice["updated_at"] or 0.0, lang)
                with self._lock:
                    vector = self._vectors.get(key)
                if vector is None:
                    vector = np.asarray(encode_p([notice_text]), dtype=np.float32)[0]
                    with self._lock:
                        self._vectors[key] = vector
                score = float(np.dot(query, vector) / (np.linalg.norm(query) * np.linalg.norm(vector) + 1e-9))
                if best is None or score > best[1]:
                    best = (notice, score)
        return best

    def apply(self, result: dict, text: str, municipality: str, language: str, explain: bool = False) -> dict:
        """Put a matching notice first in an `/api/v1/answer` result (the hook in KnowledgeService)."""
        try:
            found = self.match(text, municipality, language, by_meaning=result.get("decision") != "answer")
        except Exception:  # noqa: BLE001 - a notice problem must never break answering
            return result
        if not found:
            return result
        notice, why = found
        item = {
            "id": f"notice-{notice['id']}",
            "score": 1.0,
            "question": notice["area"] or notice["text"][:80],
            "text": notice["text"],
            "url": notice["url"],
            "language": notice["language"],
        }
        result = {**result, "decision": "answer", "answers": [item, *result.get("answers", [])]}
        result["confidence"] = max(float(result.get("confidence") or 0.0), 1.0)
        if explain:
            result["explain"] = {**(result.get("explain") or {}), "notice": {"id": notice["id"], "why": why}}
        return result

    @staticmethod
    def _key(municipality: str, notice_id: int):
        return and_(notices.c.municipality == municipality, notices.c.id == notice_id)


"""Canned responses (standard answers) per municipality, with a text per language and a /shortcut."""

from __future__ import annotations

import re
import time

from rapidfuzz import fuzz
from sqlalchemy import JSON, Column, Engine, Float, Index, Integer, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.db import metadata

canned_responses = Table(
    "canned_responses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("shortcut", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("texts", JSON, nullable=False),  # {"sv": "...", "en": "..."}
    Column("updated_at", Float, nullable=False, default=time.time),
    Column("updated_by", String(100)),
    Index("ux_canned_shortcut", "municipality", "shortcut", unique=True),
)

SHORTCUT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class CannedError(ValueError):
    pass


def _row(row) -> dict:
    return {
        "id": row.id,
        "municipality": row.municipality,
        "shortcut": row.shortcut,
        "title": row.title,
        "texts": row.texts or {},
        "updated_at": row.updated_at,
        "updated_by": row.updated_by,
    }


def pick_text(item: dict, language: str) -> tuple[str, str]:
    """The variant in the citizen's language, else Swedish, else English, else any: (language, text)."""
    texts = item["texts"]
    for lang in (language, "sv", "en"):
        if texts.get(lang):
            return lang, texts[lang]
    lang = next(iter(texts))
    return lang, texts[lang]


class CannedStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def list(self, municipality: str | None = None) -> list[dict]:
        query = select(canned_responses).order_by(canned_responses.c.shortcut)
        if municipality:
            query = query.where(canned_responses.c.municipality == municipality)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def search(self, municipality: str, query: str = "", language: str | None = None, limit: int = 20) -> list[dict]:
        """By shortcut prefix first, then by fuzzy match on title and texts."""
        items = self.list(municipality)
        q = query.strip().lower().lstrip("/")
        if not q:
            return items[:limit]

        def score(item: dict) -> float:
            if item["shortcut"].startswith(q):
                return 200 - len(item["shortcut"])
            hay = " ".join([item["title"], *item["texts"].values()]).lower()
            return 100 if q in hay else fuzz.partial_ratio(q, hay)

        scored = sorted(((score(i), i) for i in items), key=lambda p: -p[0])
        return [i for s, i in scored if s >= 70][:limit]

    def by_shortcut(self, municipality: str, shortcut: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(canned_responses).where(
                    canned_responses.c.municipality == municipality, canned_responses.c.shortcut == shortcut
                )
            ).first()
        return _row(row) if row else None

    def _check(self, shortcut: str, title: str, texts: dict) -> None:
        if not SHORTCUT_RE.match(shortcut):
            raise CannedError("the shortcut takes lowercase letters, digits, - and _ (e.g. 'opening-hours')")
        if not title.strip():
            raise CannedError("the title is empty")
        if not texts or not all(isinstance(v, str) and v.strip() for v in texts.values()):
            raise CannedError('give at least one text, e.g. {"sv": "..."}')
        if any(not re.match(r"^[a-z]{2,3}$", k) for k in texts):
            raise CannedError("texts are keyed by language code (ISO 639-1, e.g. sv, en, ar)")

    def create(self, municipality: str, shortcut: str, title: str, texts: dict, actor: str | None = None) -> dict:
        self._check(shortcut, title, texts)
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(
                    insert(canned_responses).values(
                        municipality=municipality,
                        shortcut=shortcut,
                        title=title.strip(),
                        texts=texts,
                        updated_at=time.time(),
                        updated_by=actor,
                    )
                ).inserted_primary_key[0]
        except IntegrityError:
            raise CannedError(f"'{municipality}' has a canned response /{shortcut} already") from None
        return self.get(new_id)

    def get(self, item_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(canned_responses).where(canned_responses.c.id == item_id)).first()
        return _row(row) if row else None

    def update(self, item_id: int, shortcut: str, title: str, texts: dict, actor: str | None = None) -> dict | None:
        self._check(shortcut, title, texts)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(canned_responses)
                    .where(canned_responses.c.id == item_id)
                    .values(
                        shortcut=shortcut, title=title.strip(), texts=texts, updated_at=time.time(), updated_by=actor
                    )
                )
        except IntegrityError:
            raise CannedError(f"another canned response has the shortcut /{shortcut}") from None
        return self.get(item_id)

    def delete(self, item_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(canned_responses).where(canned_responses.c.id == item_id)).rowcount > 0

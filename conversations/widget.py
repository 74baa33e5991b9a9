"""What the citizen widget shows before the first message: the municipality's name, logo and colours,
and its top topics (also the buttons the bot offers when nothing matches).

The look lives in the municipality's settings under `widget` ({"name", "logo_url", "primary_color",
"topics"}), changed by an admin with PUT /api/v1/admin/municipalities/{id}/widget. The primary colour
is used for white text on it and for text on white, so it must contrast 4.5:1 with white (WCAG AA).
Top topics: the ones the municipality chose, else the entries the bot answered most in the last 30
days, else the first entries of its knowledge base.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Engine, select

from conversations.tables import conversations, messages
from core import municipalities
from core.db import run_db
from core.deps import DbEngine, check_municipality, component, require_role
from knowledge.queries import entry_tags

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])
admin_router = APIRouter(prefix="/api/v1/admin/municipalities", tags=["municipalities"])

TOPICS_SHOWN = 4
RECENT_SECONDS = 30 * 24 * 3600
SCANNED_MESSAGES = 5000
CACHE_SECONDS = 60.0
HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def contrast_with_white(hex_colour: str) -> float:
    """WCAG contrast ratio of a #rrggbb colour against white."""
    value = int(hex_colour[1:], 16)
    channels = []
    for shift in (16, 8, 0):
        c = ((value >> shift) & 255) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]
    return 1.05 / (luminance + 0.05)


class WidgetLook(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=80, description="shown as 'Chatta med {name}'")
    logo_url: str | None = Field(None, max_length=500, description="https URL or a path on this service")
    primary_color: str | None = Field(None, description="#rrggbb, at least 4.5:1 against white")
    topics: list[str] | None = Field(None, max_length=8, description="knowledge entry ids, in order")

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        if value and not (value.startswith("https://") or value.startswith("/")):
            raise ValueError("the logo must be an https:// address or a path on this service")
        return value

    @field_validator("primary_color")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not HEX.match(value):
            raise ValueError("write the colour as #rrggbb, e.g. #0b4f8a")
        ratio = contrast_with_white(value)
        if ratio < 4.5:
            raise ValueError(
                f"the colour contrasts {ratio:.1f}:1 with white; at least 4.5:1 is needed "
                "(white text on it, and text in it on white)"
            )
        return value.lower()


def _answer_language(answers: dict[str, str], language: str) -> str:
    """The entry's answer language for a citizen: theirs, else Swedish, else the first it has."""
    if language in answers:
        return language
    return "sv" if "sv" in answers else next(iter(answers))


def most_answered(engine: Engine, municipality: str, since: float) -> list[str]:
    """Entry ids the bot answered with, most often first (the latest SCANNED_MESSAGES bot messages)."""
    query = (
        select(messages.c.data)
        .join(conversations, conversations.c.id == messages.c.conversation_id)
        .where(conversations.c.municipality == municipality, messages.c.sender == "bot", messages.c.created_at >= since)
        .order_by(messages.c.id.desc())
        .limit(SCANNED_MESSAGES)
    )
    counts: Counter[str] = Counter()
    with engine.connect() as conn:
        for (data,) in conn.execute(query):
            custom = (data or {}).get("custom") or {}
            if custom.get("kind") == "answer" and custom.get("entry_id"):
                counts[str(custom["entry_id"])] += 1
    return [entry_id for entry_id, _ in counts.most_common()]


class Topics:
    """Top topics per (municipality, language), computed at most once a minute."""

    def __init__(self, engine: Engine, store):
        self.engine = engine
        self.store = store
        self._cache: dict[tuple[str, str], tuple[float, list[dict]]] = {}
        self._lock = threading.Lock()

    def top(self, municipality: str, language: str) -> list[dict]:
        key = (municipality, language)
        with self._lock:
            hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        topics = self._compute(municipality, language)
        with self._lock:
            self._cache[key] = (time.monotonic(), topics)
        return topics

    def _compute(self, municipality: str, language: str) -> list[dict]:
        look = (municipalities.settings(self.engine, municipality) or {}).get("widget") or {}
        ids = list(look.get("topics") or [])
        for entry_id in most_answered(self.engine, municipality, time.time() - RECENT_SECONDS):
            if entry_id not in ids:
                ids.append(entry_id)
        topics = []
        for entry_id in ids:
            entry = self.store.get(municipality, entry_id)
            if entry:
                topics.append(_topic(entry, language))
            if len(topics) >= TOPICS_SHOWN:
                return topics
        for entry in self.store.all(municipality):
            if all(t["id"] != entry.id for t in topics):
                topics.append(_topic(entry, language))
            if len(topics) >= TOPICS_SHOWN:
                break
        return topics

    def forget(self, municipality: str) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[0] == municipality]:
                del self._cache[key]


def _topic(entry, language: str) -> dict:
    lang = _answer_language(entry.answer, language)
    return {
        "id": entry.id,
        "question": entry.first_question(language),
        "text": entry.answer[lang],
        "url": entry.url,
        "language": lang,
    }


# The app's one cache of top topics (built with the other parts, kommunchatt/app.py).
WidgetTopics = Annotated[Topics, Depends(component("topics"))]


def _municipality(engine: Engine, municipality: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(
            select(municipalities.municipalities).where(municipalities.municipalities.c.id == municipality)
        ).first()
    if not row:
        raise HTTPException(404, f"no municipality with id '{municipality}'")
    return dict(row._mapping)


class TopicQuestion(BaseModel):
    id: str
    question: str


class WidgetConfig(BaseModel):
    municipality: str
    name: str | None
    logo_url: str | None
    colors: dict[str, str | None]
    topics: list[TopicQuestion]


class TopTopics(BaseModel):
    topics: list[dict[str, Any]] = Field(description="the top topics with their answers in the language")


@router.get("/config", response_model=WidgetConfig)
async def widget_config(
    engine: DbEngine, topics_of: WidgetTopics, municipality: str = "default", language: str = "sv"
) -> dict:
    """The municipality's look and its top topics' questions, for the widget's header and welcome."""
    row = await run_db(engine, _municipality, engine, municipality)
    look = (row["settings"] or {}).get("widget") or {}
    name = look.get("name") or (row["name"] if municipality != "default" else None)
    topics = await run_db(engine, topics_of.top, municipality, language)
    return {
        "municipality": municipality,
        "name": name,
        "logo_url": look.get("logo_url"),
        "colors": {"primary": look.get("primary_color")},
        "topics": [{"id": t["id"], "question": t["question"]} for t in topics],
    }


@router.get("/topics", response_model=TopTopics)
async def top_topics(
    engine: DbEngine, topics_of: WidgetTopics, municipality: str = "default", language: str = "sv"
) -> dict:
    """The top topics with their answers in `language` (the bot's buttons when nothing matches)."""
    await run_db(engine, _municipality, engine, municipality)
    return {"topics": await run_db(engine, topics_of.top, municipality, language)}


class WidgetLookSet(BaseModel):
    municipality: str
    widget: dict[str, Any] = Field(description="the look as stored: name, logo_url, primary_color, topics")


@admin_router.put("/{municipality}/widget", response_model=WidgetLookSet)
async def set_widget_look(
    engine: DbEngine,
    topics_of: WidgetTopics,
    municipality: str,
    body: WidgetLook,
    user=Depends(require_role("admin")),
) -> dict:
    """Name, logo, colour and chosen topics of the municipality's widget (unknown topic ids are refused)."""
    check_municipality(user, municipality)
    await run_db(engine, _municipality, engine, municipality)
    look = body.model_dump(exclude_none=True)
    known = await run_db(engine, _existing_entries, engine, municipality, look.get("topics", []))
    unknown = [t for t in look.get("topics", []) if t not in known]
    if unknown:
        raise HTTPException(422, f"no knowledge entry with id {', '.join(repr(t) for t in unknown)}")
    await run_db(engine, municipalities.update_settings, engine, municipality, {"widget": look})
    topics_of.forget(municipality)
    return {"municipality": municipality, "widget": look}


def _existing_entries(engine: Engine, municipality: str, entry_ids: list[str]) -> set[str]:
    """Which of `entry_ids` are the municipality's entries (one query, nothing decoded)."""
    with engine.connect() as conn:
        return set(entry_tags(conn, municipality, entry_ids))

"""Unanswered questions a webmaster dismissed as junk ("asdf qwerty", "vad är meningen med livet"): kept
per municipality by their folded wording, so the same messages never come back in the groups, while a
new wording still does (it may be a real question). A dismissal can be undone."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import Column, Engine, Float, Integer, String, Table, Text, UniqueConstraint, delete, insert, select

from core.db import metadata, run_db
from core.deps import DbEngine, check_municipality, require_role
from knowledge.lexical import fold

dismissed_questions = Table(
    "dismissed_questions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("text_key", String(500), nullable=False),  # the folded wording: what matching uses
    Column("text", Text, nullable=False),  # as the citizen wrote it
    Column("language", String(8)),
    Column("dismissed_by", String(100)),
    Column("dismissed_at", Float, nullable=False, default=time.time),
    UniqueConstraint("municipality", "text_key", name="uq_dismissed_questions_text"),
)

router = APIRouter(prefix="/api/v1/admin/unanswered", tags=["insights"])
webmaster = require_role("webmaster")


def key(text: str) -> str:
    """The wording as matching sees it: folded case and accents, runs of spaces as one."""
    return " ".join(fold(text).split())[:500]


def dismiss(engine: Engine, municipality: str, texts: list[str], language: str | None, actor: str) -> int:
    """Remember these wordings as junk; returns how many were new."""
    wanted: dict[str, str] = {}
    for text in texts:  # the first wording of each folded form is the one kept
        if key(text):
            wanted.setdefault(key(text), text)
    with engine.begin() as conn:
        known = {
            r.text_key
            for r in conn.execute(
                select(dismissed_questions.c.text_key).where(
                    dismissed_questions.c.municipality == municipality, dismissed_questions.c.text_key.in_(list(wanted))
                )
            )
        }
        rows = [
            {
                "municipality": municipality,
                "text_key": k,
                "text": t,
                "language": language,
                "dismissed_by": actor,
                "dismissed_at": time.time(),
            }
            for k, t in wanted.items()
            if k not in known
        ]
        if rows:
            conn.execute(insert(dismissed_questions), rows)
    return len(rows)


def restore(engine: Engine, municipality: str, texts: list[str]) -> int:
    with engine.begin() as conn:
        return conn.execute(
            delete(dismissed_questions).where(
                dismissed_questions.c.municipality == municipality,
                dismissed_questions.c.text_key.in_([key(t) for t in texts]),
            )
        ).rowcount


def dismissed_keys(engine: Engine, municipality: str) -> set[str]:
    with engine.connect() as conn:
        return {
            r.text_key
            for r in conn.execute(
                select(dismissed_questions.c.text_key).where(dismissed_questions.c.municipality == municipality)
            )
        }


def dismissed(engine: Engine, municipality: str) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(dismissed_questions)
                .where(dismissed_questions.c.municipality == municipality)
                .order_by(dismissed_questions.c.dismissed_at.desc())
            )
        ]


class Wordings(BaseModel):
    texts: list[str] = Field(..., min_length=1, max_length=500, description="the group's wordings")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$")


class Dismissed(BaseModel):
    dismissed: int = Field(description="wordings newly dismissed (already dismissed ones are not counted)")


class Restored(BaseModel):
    restored: int = Field(description="wordings that count as unanswered questions again")


class DismissedWording(BaseModel):
    id: int
    municipality: str
    text_key: str
    text: str
    language: str | None
    dismissed_by: str | None
    dismissed_at: float


@router.post("/dismiss", response_model=Dismissed)
async def dismiss_group(
    engine: DbEngine, body: Wordings, user: Annotated[dict, Depends(webmaster)], municipality: str = "default"
) -> dict:
    """Dismiss a group of unanswered questions as junk: its wordings no longer appear in the groups."""
    check_municipality(user, municipality)
    added = await run_db(engine, dismiss, engine, municipality, body.texts, body.language, user["username"])
    return {"dismissed": added}


@router.post("/restore", response_model=Restored)
async def restore_group(
    engine: DbEngine, body: Wordings, user: Annotated[dict, Depends(webmaster)], municipality: str = "default"
) -> dict:
    """Undo a dismissal: the wordings count as unanswered questions again."""
    check_municipality(user, municipality)
    return {"restored": await run_db(engine, restore, engine, municipality, body.texts)}


@router.get("/dismissed", response_model=list[DismissedWording])
async def dismissed_list(
    engine: DbEngine, user: Annotated[dict, Depends(webmaster)], municipality: str = "default"
) -> list[dict]:
    check_municipality(user, municipality)
    return await run_db(engine, dismissed, engine, municipality)

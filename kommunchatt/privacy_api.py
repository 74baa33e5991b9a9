"""The data-protection API for admins: retention and privacy notice per municipality, finding, exporting and
erasing one citizen's or one conversation's data, the transcript access log, and a retention pass on demand.

An admin acts on the municipalities they belong to; one with "*" among them on all (core.deps.MunicipalityScope).
Erasure is refused on empty input and asks for the conversations to be named, so nothing is erased by
a request that names nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, field_validator

from conversations import queries as chats
from conversations.deps import Personal
from core import municipalities
from core.db import run_db
from core.deps import Admin, AppSettings, DbEngine, MunicipalityScope
from handoff import access_log
from kommunchatt import retention

router = APIRouter(prefix="/api/v1/admin/privacy", tags=["privacy"])
public_router = APIRouter(prefix="/api/v1/chat", tags=["chat"])
MAX_NOTICE_CHARS = 1000


def _allowed(user: dict) -> frozenset[str] | None:
    """The municipalities the admin may act on; None = all (a global admin)."""
    return MunicipalityScope.of(user).ids


def _check(user: dict, municipality: str) -> None:
    MunicipalityScope.of(user).check(municipality)


def _owned(engine: DbEngine, user: dict, conversation_ids: list[str]) -> dict[str, str]:
    """{conversation id: municipality} of the named conversations; 404 for unknown, 403 for another's."""
    with engine.connect() as conn:
        found = chats.municipalities_of(conn, conversation_ids)
    missing = [i for i in conversation_ids if i not in found]
    if missing:
        raise HTTPException(404, f"no conversation with id {', '.join(repr(i) for i in missing[:5])}")
    for municipality in set(found.values()):
        _check(user, municipality)
    return found


def _tracker(engine: DbEngine, settings: AppSettings) -> retention.RasaTracker:
    return retention.RasaTracker.for_install(engine, settings.data_dir)


class PrivacySettings(BaseModel):
    retention_days: int = Field(
        retention.DEFAULT_RETENTION_DAYS,
        ge=0,
        le=3650,
        description="days a transcript is kept after the chat ends; 0 keeps none",
    )
    privacy_notice: dict[str, str] = Field(
        default_factory=dict,
        description='the widget\'s privacy notice per language, {"sv": "..."}; '
        "languages left out show the built-in text",
    )
    privacy_url: str | None = Field(None, max_length=500, description="https:// link to the full privacy policy")

    @field_validator("privacy_notice")
    @classmethod
    def _notice(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, text in value.items():
            if not (2 <= len(lang) <= 3 and lang.isalpha() and lang.islower()):
                raise ValueError(f"'{lang}' is not a language code (sv, en, ar, ...)")
            if not text.strip() or len(text) > MAX_NOTICE_CHARS:
                raise ValueError(f"the notice in '{lang}' must have 1 to {MAX_NOTICE_CHARS} characters")
        return {k: v.strip() for k, v in value.items()}

    @field_validator("privacy_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and not value.startswith("https://"):
            raise ValueError("the privacy policy link must be an https:// address")
        return value or None


class PrivacySettingsOut(BaseModel):
    municipality: str
    retention_days: int
    privacy_notice: dict[str, str]
    privacy_url: str | None


class FoundConversation(BaseModel):
    id: str
    municipality: str
    created_at: float
    state: str


class FoundConversations(BaseModel):
    conversations: list[FoundConversation]


class Exported(BaseModel):
    exported_at: float
    conversations: list[dict[str, Any]] = Field(
        description="per conversation: conversation, messages, callback_requests"
    )


class Erased(BaseModel):
    conversations: list[str]
    rows: dict[str, int]
    tracker_events: int


class AccessEntry(BaseModel):
    id: int
    at: float
    user_id: int | None
    username: str
    conversation_id: str
    municipality: str
    action: str
    via: str


class PurgeReport(BaseModel):
    originals: int
    conversations: int
    rows: dict[str, int]
    tracker_events: int
    access_log: int


class PrivacyNotice(BaseModel):
    municipality: str
    text: str | None
    url: str | None
    retention_days: int


def _settings_of(engine: DbEngine, municipality: str) -> dict:
    settings = municipalities.settings(engine, municipality)
    if settings is None:
        raise HTTPException(404, f"no municipality with id '{municipality}'")
    return {
        "retention_days": retention.retention_days(settings),
        "privacy_notice": settings.get("privacy_notice") or {},
        "privacy_url": settings.get("privacy_url"),
    }


@router.get("/settings", response_model=PrivacySettingsOut)
async def get_privacy_settings(engine: DbEngine, user: Admin, municipality: str = "default") -> dict:
    _check(user, municipality)
    return {"municipality": municipality, **_settings_of(engine, municipality)}


@router.put("/settings", response_model=PrivacySettingsOut)
async def put_privacy_settings(
    body: PrivacySettings, engine: DbEngine, user: Admin, municipality: str = "default"
) -> dict:
    """Retention in days (0: no transcript after the chat ends) and the widget's privacy notice."""
    _check(user, municipality)
    _settings_of(engine, municipality)
    municipalities.update_settings(engine, municipality, body.model_dump())
    return {"municipality": municipality, **_settings_of(engine, municipality)}


@router.get("/conversations", response_model=FoundConversations)
async def find_conversations(
    engine: DbEngine, personal: Personal, user: Admin, identifier: str = Query(..., min_length=3, max_length=200)
) -> dict:
    """The conversations of the citizen with this personnummer, phone number or e-mail address."""
    ids = await asyncio.to_thread(retention.find_citizen, engine, personal, identifier)
    allowed = _allowed(user)
    rows = await run_db(engine, _found, engine, ids)
    return {"conversations": [r for r in rows if allowed is None or r["municipality"] in allowed]}


def _found(engine, ids: list[str]) -> list[dict]:
    with engine.connect() as conn:
        return chats.found(conn, ids)


class Selection(BaseModel):
    conversation_ids: list[str] = Field(default_factory=list, max_length=1000)
    identifier: str | None = Field(
        None, max_length=200, description="a personnummer, phone or e-mail: all the citizen's chats"
    )


def _selected(engine: DbEngine, personal, user: dict, body: Selection) -> dict[str, str]:
    ids = list(dict.fromkeys(i for i in body.conversation_ids if i))
    if body.identifier:
        found = retention.find_citizen(engine, personal, body.identifier)
        allowed = _allowed(user)
        with engine.connect() as conn:
            ids += [
                cid
                for cid, municipality in chats.municipalities_of(conn, found).items()
                if allowed is None or municipality in allowed
            ]
    if not ids:
        raise HTTPException(
            422,
            "name the conversations (conversation_ids) or the citizen (identifier): "
            "nothing matched, so nothing was done",
        )
    return _owned(engine, user, list(dict.fromkeys(ids)))


@router.post("/export", response_model=Exported)
async def export_data(body: Selection, engine: DbEngine, personal: Personal, user: Admin) -> dict:
    """Everything stored about the conversations or the citizen (GDPR art. 15, 20), as JSON."""
    selected = _selected(engine, personal, user, body)
    return await asyncio.to_thread(retention.export, engine, personal, list(selected), user, "api")


@router.post("/erase", response_model=Erased)
async def erase_data(body: Selection, engine: DbEngine, settings: AppSettings, personal: Personal, user: Admin) -> dict:
    """Erase the conversations or the citizen's data (GDPR art. 17), from Rasa's tracker too."""
    selected = _selected(engine, personal, user, body)
    return await asyncio.to_thread(retention.erase, engine, _tracker(engine, settings), list(selected), user, "api")


@router.get("/access-log", response_model=list[AccessEntry])
async def access_entries(
    engine: DbEngine,
    user: Admin,
    municipality: str | None = None,
    conversation_id: str | None = None,
    username: str | None = None,
    limit: int = Query(200, ge=1, le=5000),
) -> list[dict]:
    """Who opened, exported or erased which transcript, when (newest first)."""
    allowed = _allowed(user)
    if municipality:
        _check(user, municipality)
        allowed = {municipality}
    return access_log.entries(engine, None if allowed is None else sorted(allowed), conversation_id, username, limit)


@router.post("/purge", response_model=PurgeReport)
async def purge_now(engine: DbEngine, settings: AppSettings, user: Admin) -> dict:
    """Run the retention pass now (it also runs every 10 minutes); global admins only."""
    if _allowed(user) is not None:
        raise HTTPException(403, "the retention pass covers every municipality: it needs a global admin")
    report = await asyncio.to_thread(retention.purge, engine, _tracker(engine, settings))
    return retention.report_dict(report)


@public_router.get("/privacy", response_model=PrivacyNotice)
async def privacy_notice(engine: DbEngine, municipality: str = "default", language: str = "sv") -> dict:
    """The widget's privacy notice: the municipality's own text in `language` if it has one (else null:
    the widget shows its built-in text), the link to its policy, and how long chats are kept."""
    settings = _settings_of(engine, municipality)
    return {
        "municipality": municipality,
        "text": settings["privacy_notice"].get(language),
        "url": settings["privacy_url"],
        "retention_days": settings["retention_days"],
    }

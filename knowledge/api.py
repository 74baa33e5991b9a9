"""HTTP API of the knowledge base: answering, and reading/changing entries (webmasters)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from core.db import run_db
from core.deps import AppSettings, Scope, Webmaster, WebmasterMunicipality
from core.errors import ERROR_RESPONSES, Invalid, NotFound, TooLarge, summary
from core.metrics import record_decision
from core.text import clean_message
from knowledge.deps import Knowledge
from knowledge.kbfile import LANG_RE, KbFileError, parse_entry
from knowledge.models import EntryOut, EntrySaved, IndexStatus
from knowledge.prefetch import DEFAULT_TOP_K

router = APIRouter(prefix="/api/v1", tags=["knowledge"], responses=ERROR_RESPONSES)


class AnswerRequest(BaseModel):
    text: str = Field(..., description="The citizen's question, in any language")
    language: str | None = Field(
        None, pattern=LANG_RE.pattern, description="Force the answer language (ISO 639-1); detected if absent"
    )
    municipality: str = "default"
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=20)
    session_id: str | None = None


class AnswerItem(BaseModel):
    id: str
    score: float
    question: str
    text: str
    url: str | None = None
    language: str | None = None


class AnswerResponse(BaseModel):
    decision: str = Field(..., description="answer | clarify | handoff")
    language: str
    language_confidence: float
    confidence: float
    answers: list[AnswerItem]
    answer_language: str | None = Field(
        None, description="the language of the first answer's text (Swedish when the entry lacks the citizen's)"
    )
    notice: str | None = Field(None, description="'this answer is only in Swedish', in the citizen's language")
    explain: dict | None = None


@router.post("/answer", response_model=AnswerResponse, response_model_exclude_none=True)
async def answer(body: AnswerRequest, knowledge: Knowledge, settings: AppSettings, explain: bool = False) -> dict:
    text = clean_message(body.text)
    if not text:
        raise Invalid("the text is empty", [{"field": "text", "message": "the text is empty"}])
    if len(text) > settings.max_message_chars:
        raise TooLarge(f"the text is longer than {settings.max_message_chars} characters")
    result = (
        None
        if explain
        else await knowledge.prefetch.take(body.session_id, text, body.language, body.municipality, body.top_k)
    )
    if result is None:  # off the event loop: encoding and search take tens of milliseconds
        result = await run_in_threadpool(
            knowledge.answer,
            text,
            language=body.language,
            municipality=body.municipality,
            top_k=body.top_k,
            explain=explain,
        )
    record_decision(result)  # decisions by confidence band (core/metrics.py)
    return result


@router.get("/knowledge/entries", response_model=list[EntryOut])
async def list_entries(municipality: WebmasterMunicipality, knowledge: Knowledge) -> list[dict]:
    return [e.to_dict() for e in await run_db(knowledge.store.engine, knowledge.store.all, municipality)]


@router.get("/knowledge/entries/{entry_id}", response_model=EntryOut)
async def get_entry(entry_id: str, municipality: WebmasterMunicipality, knowledge: Knowledge) -> dict:
    entry = await run_db(knowledge.store.engine, knowledge.store.get, municipality, entry_id)
    if not entry:
        raise NotFound(f"no entry with id '{entry_id}'")
    return entry.to_dict()


@router.put("/knowledge/entries/{entry_id}", response_model=EntrySaved)
async def put_entry(
    entry_id: str, body: dict, municipality: WebmasterMunicipality, user: Webmaster, knowledge: Knowledge
) -> dict:
    """Create or replace an entry (the file format's fields); answerable as soon as this returns."""
    body = {**body, "id": entry_id}
    try:
        entry = parse_entry(body, municipality)
    except KbFileError as exc:
        problems = [{"field": p.field, "message": p.message} for p in exc.problems]
        raise Invalid(summary(problems), problems) from None
    action = await run_in_threadpool(knowledge.upsert, entry, actor=user["username"])
    return {"id": entry_id, "action": action}


@router.delete("/knowledge/entries/{entry_id}", status_code=204)
async def delete_entry(
    entry_id: str, municipality: WebmasterMunicipality, user: Webmaster, knowledge: Knowledge
) -> None:
    if not await run_in_threadpool(knowledge.delete, municipality, entry_id, user["username"]):
        raise NotFound(f"no entry with id '{entry_id}'")


@router.get("/knowledge/status", response_model=IndexStatus)
async def index_status(_user: Webmaster, scope: Scope, knowledge: Knowledge) -> dict:
    """How far the search index is behind the knowledge base: per municipality the entries stored,
    indexed (by the worker answering), pending and the oldest pending change's age (`lag_s`);
    `live` is true once every running worker answers with every change up to `audit_id`, and
    `done`/`total` is the slowest worker's progress through the batch it is indexing."""
    return await run_in_threadpool(knowledge.status, None if scope.ids is None else sorted(scope.ids))

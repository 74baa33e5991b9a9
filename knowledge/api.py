"""HTTP API of the knowledge base: answering, and reading/changing entries (webmasters)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from core.deps import check_municipality, require_role
from core.metrics import record_decision
from core.text import clean_message
from knowledge.kbfile import KbFileError, parse_entry

router = APIRouter(prefix="/api/v1", tags=["knowledge"])


class AnswerRequest(BaseModel):
    text: str = Field(..., description="The citizen's question, in any language")
    language: str | None = Field(None, description="Force the answer language (ISO 639-1); detected if absent")
    municipality: str = "default"
    top_k: int = Field(3, ge=1, le=20)
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
    notice: str | None = None
    explain: dict | None = None


@router.post("/answer", response_model=AnswerResponse, response_model_exclude_none=True)
async def answer(request: Request, body: AnswerRequest, explain: bool = False) -> dict:
    text = clean_message(body.text)
    if not text:
        raise HTTPException(422, "the text is empty")
    if len(text) > request.app.state.c.settings.max_message_chars:
        raise HTTPException(413, f"the text is longer than {request.app.state.c.settings.max_message_chars} characters")
    result = request.app.state.c.knowledge.answer(
        text, language=body.language, municipality=body.municipality, top_k=body.top_k, explain=explain
    )
    record_decision(result)  # decisions by confidence band (core/metrics.py)
    return result


@router.get("/knowledge/entries")
async def list_entries(request: Request, municipality: str = "default", user=Depends(require_role("webmaster"))):
    check_municipality(user, municipality)
    return [e.to_dict() for e in request.app.state.c.knowledge.store.all(municipality)]


@router.get("/knowledge/entries/{entry_id}")
async def get_entry(request: Request, entry_id: str, municipality: str = "default",
                    user=Depends(require_role("webmaster"))):
    check_municipality(user, municipality)
    entry = request.app.state.c.knowledge.store.get(municipality, entry_id)
    if not entry:
        raise HTTPException(404, f"no entry with id '{entry_id}'")
    return entry.to_dict()


@router.put("/knowledge/entries/{entry_id}")
async def put_entry(request: Request, entry_id: str, body: dict, municipality: str = "default",
                    user=Depends(require_role("webmaster"))):
    """Create or replace an entry (the file format's fields); answerable as soon as this returns."""
    check_municipality(user, municipality)
    body = {**body, "id": entry_id}
    try:
        entry = parse_entry(body, municipality)
    except KbFileError as exc:
        raise HTTPException(422, [{"field": p.field, "message": p.message} for p in exc.problems]) from None
    action = request.app.state.c.knowledge.upsert(entry, actor=user["username"])
    return {"id": entry_id, "action": action}


@router.delete("/knowledge/entries/{entry_id}", status_code=204)
async def delete_entry(request: Request, entry_id: str, municipality: str = "default",
                       user=Depends(require_role("webmaster"))):
    check_municipality(user, municipality)
    if not request.app.state.c.knowledge.delete(municipality, entry_id, actor=user["username"]):
        raise HTTPException(404, f"no entry with id '{entry_id}'")

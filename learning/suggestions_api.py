"""The workshop's suggestions: list (mined afresh from the traffic), accept (optionally edited), dismiss.

Webmaster scope, per municipality (`?municipality=`, default "default"); an id of another municipality's
suggestion is unknown here (404). Accepting changes the knowledge base through the knowledge service, so
the change is audited under the webmaster's name and answerable when the response comes.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from core.deps import DbEngine, Webmaster, WebmasterMunicipality
from core.errors import ERROR_RESPONSES
from knowledge.deps import Knowledge
from learning import suggestions

router = APIRouter(prefix="/api/v1/admin/suggestions", tags=["workshop"], responses=ERROR_RESPONSES)


class EvidenceItem(BaseModel):
    conversation_id: str | None = Field(description="while proposed; a decided suggestion keeps no link")
    text: str = Field(description="the citizen's message, personal data masked")
    source: str = Field(description="clarify, feedback or agent (joined with + when several)")
    at: float


class Suggestion(BaseModel):
    id: int
    kind: Literal["variant", "entry"] = Field(description="a question variant of an entry, or a new entry")
    entry_id: str | None = Field(description="the target entry (a new entry's id once accepted)")
    entry_question: str | None = Field(None, description="the target entry's first question, to judge the target")
    question: str
    answer: str | None = Field(description="a new entry's proposed answer (the agent's reply, masked)")
    language: str | None
    status: Literal["proposed", "accepted", "dismissed"]
    count: int = Field(description="citizen messages behind the proposal")
    sources: dict[str, int]
    evidence: list[EvidenceItem]
    created_at: float
    updated_at: float
    decided_by: str | None
    decided_at: float | None


class SuggestionList(BaseModel):
    suggestions: list[Suggestion]


class Decision(BaseModel):
    question: str | None = Field(None, max_length=500, description="the question as edited by the webmaster")
    answer: str | None = Field(None, max_length=10000, description="a new entry's answer as edited")
    wordings: list[str] = Field(
        [], max_length=20, description="other wordings from the evidence to add as questions too (ticked ones)"
    )


def _shown(row: dict, knowledge) -> dict:
    entry = knowledge.store.get(row["municipality"], row["entry_id"]) if row["entry_id"] else None
    return {
        **row,
        "entry_id": row["entry_id"] or None,
        "entry_question": entry.first_question(row["language"]) if entry else None,
        "sources": row["sources"] or {},
        "evidence": row["evidence"] or [],
    }


@router.get("", response_model=SuggestionList)
async def list_suggestions(
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    engine: DbEngine,
    user: Webmaster,
    status: Literal["proposed", "accepted", "dismissed"] = "proposed",
    days: int = 90,
) -> dict:
    """The proposals the last `days` of traffic support (mined afresh), or the decided ones by `status`."""
    days = max(1, min(days, 3650))

    def work() -> list[dict]:
        rows = suggestions.refresh(knowledge, engine, municipality, days)
        return rows if status == "proposed" else suggestions.listing(engine, municipality, status)

    rows = await run_in_threadpool(work)
    return {"suggestions": [_shown(r, knowledge) for r in rows]}


@router.post("/{suggestion_id}/accept", response_model=Suggestion)
async def accept_suggestion(
    suggestion_id: int,
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    engine: DbEngine,
    user: Webmaster,
    body: Decision | None = None,
) -> dict:
    """Apply the proposal (with the edited question, and answer for a new entry, if given), and the ticked
    wordings of its evidence as further questions."""
    body = body or Decision()
    row = await run_in_threadpool(
        suggestions.accept,
        knowledge,
        engine,
        municipality,
        suggestion_id,
        user["username"],
        body.question,
        body.answer,
        body.wordings,
    )
    return _shown(row, knowledge)


@router.post("/{suggestion_id}/dismiss", response_model=Suggestion)
async def dismiss_suggestion(
    suggestion_id: int,
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    engine: DbEngine,
    user: Webmaster,
) -> dict:
    """Dismiss the proposal: its wordings are not proposed for the same target again."""
    row = await run_in_threadpool(suggestions.dismiss, engine, municipality, suggestion_id, user["username"])
    return _shown(row, knowledge)

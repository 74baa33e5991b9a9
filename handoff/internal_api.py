"""Endpoints for the Rasa action server only (shared secret): handoff, call-backs, language, feedback."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from conversations.deps import Conversations, Personal
from core.db import run_db
from core.deps import DbEngine, Events, internal_caller
from core.errors import Invalid
from core.privacy import EMAIL, PHONE, PLACEHOLDERS
from core.ratelimit import check_queue_entry
from handoff import tickets
from handoff.deps import QueueDep
from handoff.models import LanguageChanged, QueueEntry, Recorded, TicketCreated

# What the masked text says where the citizen wrote a phone number or e-mail address (core/privacy.py).
PLACEHOLDER_KINDS = {PLACEHOLDERS[PHONE]: PHONE, PLACEHOLDERS[EMAIL]: EMAIL}
router = APIRouter(prefix="/api/v1/internal/sessions", tags=["internal"], dependencies=[Depends(internal_caller)])

Reason = Literal["requested", "low_confidence", "negative_feedback", "failed_turns", "service_error", "abuse"]


class HandoffRequest(BaseModel):
    reason: Reason = "requested"
    topic: str | None = None


class CallbackRequest(BaseModel):
    name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    email: str | None = Field(None, max_length=200)
    message: str = Field(..., min_length=1, max_length=2000)
    consent: bool


class LanguageChange(BaseModel):
    language: str = Field(..., pattern=r"^[a-z]{2,3}$")


class Feedback(BaseModel):
    entry_id: str | None = None
    helpful: bool


@router.post("/{session_id}/handoff", response_model=QueueEntry)
async def handoff(request: Request, session_id: str, body: HandoffRequest, queue: QueueDep, engine: DbEngine) -> dict:
    # No state event here: the bot's "you are number N in the queue" is stored after this returns, and the
    # citizen's turn publishes the state once it is (conversations.service), so "X has joined" comes after it.
    await check_queue_entry(request, session_id)  # 429: scripted sessions cannot flood the queue
    return await run_db(engine, queue.enqueue, session_id, body.reason, topic=body.topic)


@router.post("/{session_id}/callback", status_code=201, response_model=TicketCreated)
async def callback(session_id: str, body: CallbackRequest, store: Conversations, personal: Personal,
                   engine: DbEngine, events: Events) -> dict:
    """A message left outside opening hours: becomes a ticket agents see when they log in."""
    conv = await run_db(engine, store.get, session_id)
    contact = body.phone or body.email
    if contact in PLACEHOLDER_KINDS and personal:  # Rasa saw the masked contact: the citizen's own, while live
        contact = await run_db(engine, personal.latest_contact, session_id, PLACEHOLDER_KINDS[contact])
    if not body.consent or not contact:
        raise Invalid("a call-back needs a phone number or e-mail address and the citizen's consent",
                      [{"field": "consent", "message": "a contact and consent are required"}])
    ticket_id = await run_db(engine, tickets.create, engine, conv, body.name, contact, body.message)
    await events.publish("agents", {"type": "ticket", "id": ticket_id})
    return {"ticket_id": ticket_id}


@router.post("/{session_id}/language", response_model=LanguageChanged)
async def change_language(session_id: str, body: LanguageChange, store: Conversations, engine: DbEngine) -> dict:
    await run_db(engine, store.update, session_id, language=body.language)
    return {"language": body.language}


@router.post("/{session_id}/feedback", response_model=Recorded)
async def feedback(session_id: str, body: Feedback, store: Conversations, engine: DbEngine) -> dict:
    await run_db(engine, _store_feedback, store, session_id, body)
    return {}


def _store_feedback(store, session_id: str, body: Feedback) -> None:
    store.get(session_id)
    store.add_message(session_id, "system", "feedback",
                      {"custom": {"kind": "feedback", "entry_id": body.entry_id, "helpful": body.helpful}})

"""What a citizen does to their place with the people: leave the queue, end the chat.

Each stores a system message first (the agent's console shows it in the transcript at once, kinds
`left_queue` and `citizen_ended`), then tells the consoles on the `agents` topic (the queue without
this chat; the agent's chat closed, with the reason). Routes under /api/v1/chat, public like the rest of
the chat API: the session id is the citizen's key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from conversations.deps import Chat, Conversations
from conversations.rasa_client import RasaUnavailable
from conversations.service import ChatService
from conversations.store import Conflict, ConversationStore
from core.db import run_db
from core.deps import DbEngine
from core.i18n import say
from handoff.deps import Agents, QueueDep
from handoff.queue import Queue
from handoff.service import AgentService

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/chat/sessions", tags=["chat"])


class CitizenState(BaseModel):
    state: str = Field(description="the conversation's state after the move: bot, queued, agent or closed")
    queue: dict[str, Any] = Field(description="its place in the queue: state, position, estimated wait")


@dataclass(frozen=True)
class Parts:
    """What a citizen's move touches: the chat, its store, the agents' side and the queue."""

    engine: Engine
    conversations: ConversationStore
    chat: ChatService
    agents: AgentService
    queue: Queue


def parts(engine: DbEngine, conversations: Conversations, chat: Chat, agents: Agents, queue: QueueDep) -> Parts:
    return Parts(engine, conversations, chat, agents, queue)


MoveParts = Annotated[Parts, Depends(parts)]


async def leave_queue(c: Parts, conversation_id: str) -> dict:
    """Queued -> bot; the bot listens again (the handoff had paused it)."""
    conv = await run_db(c.engine, c.conversations.get, conversation_id)
    if conv["state"] != "queued":
        raise Conflict("the chat is not waiting in the queue")
    before = await run_db(c.engine, c.agents.assignments.release, conversation_id, "bot", "left_queue", queued_at=None)
    message, _ = await run_db(
        c.engine,
        c.conversations.add_message,
        conversation_id,
        "system",
        say("left_queue", before["language"]),
        {"custom": {"kind": "left_queue"}},
    )
    await c.chat.publish(message)
    await c.agents.released(conversation_id, before["assigned_to"], "left_queue")
    try:
        await c.chat.rasa.resume(conversation_id)
    except RasaUnavailable as exc:  # the next message says so to the citizen
        log.warning("Rasa did not resume %s after leaving the queue: %s", conversation_id, exc)
    return await _state(c, conversation_id)


async def end_chat(c: Parts, conversation_id: str) -> dict:
    """Queued or with an agent -> closed (outcome `abandoned`); after an agent, the citizen may rate."""
    conv = await run_db(c.engine, c.conversations.get, conversation_id)
    if conv["state"] not in ("queued", "agent"):
        raise Conflict("only a chat waiting for or with a person can be ended; write to continue with the bot")
    before = await run_db(
        c.engine, c.agents.assignments.release, conversation_id, "closed", "citizen_ended", outcome="abandoned"
    )
    message, _ = await run_db(
        c.engine,
        c.conversations.add_message,
        conversation_id,
        "system",
        say("citizen_ended", before["language"]),
        {"custom": {"kind": "citizen_ended"}},
    )
    await c.chat.publish(message)
    if before["state"] == "agent":
        rating = await c.agents.rating_request(conversation_id, before["language"])
        await c.chat.publish(rating)
    await c.agents.released(conversation_id, before["assigned_to"], "citizen_ended")
    return await _state(c, conversation_id)


async def _state(c: Parts, conversation_id: str) -> dict:
    position = await run_db(c.engine, c.queue.position, conversation_id)
    return {"state": position["state"], "queue": position}


@router.post("/{session_id}/leave-queue", response_model=CitizenState)
async def leave_queue_route(c: MoveParts, session_id: str) -> dict:
    """The citizen stops waiting for a person; the bot answers again."""
    try:
        return await leave_queue(c, session_id)
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/{session_id}/end", response_model=CitizenState)
async def end_route(c: MoveParts, session_id: str) -> dict:
    """The citizen ends a chat that waits for or is with a person; the agent sees it at once."""
    try:
        return await end_chat(c, session_id)
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None

"""The chat API: the front door for the web widget and any integration."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, field_validator

from conversations.deps import Chat, Conversations
from conversations.service import DIRECT_HANDOFF, ChatService
from conversations.store import UnknownConversation
from core import municipalities
from core.db import run_db
from core.deps import AppSettings, DbEngine
from core.errors import ERROR_RESPONSES, Invalid, NotFound, TooLarge
from core.languages import NAMES as LANGUAGE_NAMES
from core.ratelimit import check_queue_entry, limit_messages, limit_new_sessions
from core.text import clean_message
from knowledge.kbfile import LANG_RE

router = APIRouter(prefix="/api/v1/chat", tags=["chat"], responses=ERROR_RESPONSES)
# A message id to continue after (the database's ids are 64-bit integers).
MessageId = Annotated[int, Query(ge=0, le=2**63 - 1, description="the last message id the caller has")]


class NewSession(BaseModel):
    language: str = Field("sv", description="The citizen's chosen language (ISO 639-1)")
    municipality: str = "default"

    @field_validator("language")
    @classmethod
    def _lang(cls, value: str) -> str:
        if not LANG_RE.match(value):
            raise ValueError("not a language code (use ISO 639-1 like sv, en, ar)")
        return value


class SessionCreated(BaseModel):
    session_id: str
    language: str
    state: str


class Button(BaseModel):
    title: str
    payload: str


class ChatMessage(BaseModel):
    id: int
    sender: str
    text: str
    created_at: float
    buttons: list[Button] | None = None
    custom: dict | None = None
    author: str | None = None


class NewMessage(BaseModel):
    text: str = Field(..., description="The citizen's message (1 to 2000 characters)")
    client_id: str | None = Field(
        None, max_length=64, description="The widget's id for this message: resending it does not duplicate it"
    )


class Replies(BaseModel):
    messages: list[ChatMessage]
    state: str


class Transcript(BaseModel):
    session_id: str
    state: str
    language: str
    municipality: str
    messages: list[ChatMessage]
    queue: dict


@router.post("/sessions", response_model=SessionCreated, status_code=201, dependencies=[Depends(limit_new_sessions())])
async def create_session(engine: DbEngine, store: Conversations, body: NewSession | None = None) -> dict:
    body = body or NewSession()
    if await run_db(engine, municipalities.settings, engine, body.municipality) is None:
        raise NotFound(f"no municipality with id '{body.municipality}'")
    conv = await run_db(engine, store.create, body.municipality, body.language)
    return {"session_id": conv["id"], "language": conv["language"], "state": conv["state"]}


@router.get("/sessions/{session_id}", response_model=Transcript)
async def get_session(session_id: str, chat: Chat, after: MessageId = 0) -> dict:
    """The conversation so far: what the widget shows after a page reload."""
    return await chat.db(_transcript, chat, session_id, after)


def _transcript(chat: ChatService, session_id: str, after: int) -> dict:
    conv = chat.conversations.get(session_id)
    return {
        "session_id": session_id,
        "state": conv["state"],
        "language": conv["language"],
        "municipality": conv["municipality"],
        "messages": chat.citizen_messages(session_id, after_id=after),
        "queue": chat.queue.position(session_id),
    }


@router.post("/sessions/{session_id}/messages", response_model=Replies, dependencies=[Depends(limit_messages())])
async def post_message(request: Request, session_id: str, body: NewMessage, chat: Chat, settings: AppSettings) -> dict:
    text = clean_message(body.text)
    if text == DIRECT_HANDOFF:  # the service queues this one itself: the queue's limits apply here
        await check_queue_entry(request, session_id)
    if not text:
        raise Invalid("the message is empty", [{"field": "text", "message": "the message is empty"}])
    if len(text) > settings.max_message_chars:
        raise TooLarge(f"the message is {len(text)} characters; at most {settings.max_message_chars} are allowed")
    return await chat.citizen_message(session_id, text, client_id=body.client_id)


class LanguageChoice(BaseModel):
    language: str = Field(..., pattern=r"^[a-z]{2,3}$")


@router.post("/sessions/{session_id}/language", response_model=LanguageChoice)
async def choose_language(session_id: str, body: LanguageChoice, store: Conversations, engine: DbEngine) -> dict:
    """The citizen picked a language in the widget: the bot answers in it from the next message."""
    if body.language not in LANGUAGE_NAMES:
        raise HTTPException(422, f"the bot does not speak '{body.language}'")
    await run_db(engine, store.get, session_id)  # an unknown session is a 404
    await run_db(engine, store.update, session_id, language=body.language)
    return {"language": body.language}


@router.websocket("/sessions/{session_id}/ws")
async def session_events(websocket: WebSocket, session_id: str, chat: Chat, after: MessageId = 0) -> None:
    """Pushes the conversation's later messages (an agent's) and state changes.

    On (re)connect it first sends every message after `after`, so a dropped connection loses nothing.
    """
    try:
        await chat.db(chat.conversations.get, session_id)
    except UnknownConversation:
        await websocket.close(code=4404)
        return
    await websocket.accept()
    async with chat.events.subscribe(f"conversation:{session_id}") as queue:
        sent: set[int] = set()  # ids, not the last id: events from another process may come out of order
        backlog, position = await chat.db(_since, chat, session_id, after)
        for message in backlog:
            await websocket.send_json({"type": "message", **message})
            sent.add(message["id"])
        await websocket.send_json({"type": "state", **position})
        receiver = asyncio.create_task(_drain(websocket, chat, session_id, queue))
        try:
            while True:
                event = await queue.get()
                if event is None:  # the receiver saw the socket close
                    break
                if event.get("type") == "message":
                    if event["id"] <= after or event["id"] in sent:
                        continue
                    sent.add(event["id"])
                    if event.get("sender") == "citizen":  # the citizen's own words, not the masked ones
                        event = await chat.db(chat.as_citizen_sees, session_id, event)
                await websocket.send_json(event)
        except WebSocketDisconnect:
            pass
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await receiver


def _since(chat: ChatService, session_id: str, after: int) -> tuple[list, dict]:
    return chat.citizen_messages(session_id, after_id=after), chat.queue.position(session_id)


async def _drain(websocket: WebSocket, chat: ChatService, session_id: str, events: asyncio.Queue) -> None:
    """Read what the client sends, so a disconnect is noticed (it ends the sender's wait on `events`);
    `{"type": "typing"}` goes to the agent."""
    try:
        await _read(websocket, chat, session_id)
    finally:
        events.put_nowait(None)


async def _read(websocket: WebSocket, chat: ChatService, session_id: str) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            raw = await websocket.receive_text()
            if len(raw) > 200 or '"typing"' not in raw:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                frame = json.loads(raw)
                if frame.get("type") == "typing":
                    await chat.citizen_typing(session_id, frame.get("typing", True) is not False)

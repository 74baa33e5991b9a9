"""The chat API: the front door for the web widget and any integration."""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, field_validator

from conversations.store import UnknownConversation
from core import municipalities
from core.db import run_db
from core.text import clean_message
from knowledge.kbfile import LANG_RE

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])


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


@router.post("/sessions", response_model=SessionCreated, status_code=201)
async def create_session(request: Request, body: NewSession | None = None) -> dict:
    body = body or NewSession()
    c = request.app.state.c
    if await run_db(c.engine, municipalities.settings, c.engine, body.municipality) is None:
        raise HTTPException(404, f"no municipality with id '{body.municipality}'")
    conv = await run_db(c.engine, c.conversations.create, body.municipality, body.language)
    return {"session_id": conv["id"], "language": conv["language"], "state": conv["state"]}


@router.get("/sessions/{session_id}", response_model=Transcript)
async def get_session(request: Request, session_id: str, after: int = 0) -> dict:
    """The conversation so far: what the widget shows after a page reload."""
    c = request.app.state.c
    return await run_db(c.engine, _transcript, c, session_id, after)


def _transcript(c, session_id: str, after: int) -> dict:
    conv = c.conversations.get(session_id)
    return {
        "session_id": session_id,
        "state": conv["state"],
        "language": conv["language"],
        "municipality": conv["municipality"],
        "messages": [m.public() for m in c.conversations.messages(session_id, after_id=after)],
        "queue": c.chat.queue.position(session_id),
    }


@router.post("/sessions/{session_id}/messages", response_model=Replies)
async def post_message(request: Request, session_id: str, body: NewMessage) -> dict:
    c = request.app.state.c
    text = clean_message(body.text)
    if not text:
        raise HTTPException(422, "the message is empty")
    if len(text) > c.settings.max_message_chars:
        raise HTTPException(
            413, f"the message is {len(text)} characters; at most {c.settings.max_message_chars} are allowed"
        )
    return await c.chat.citizen_message(session_id, text, client_id=body.client_id)


@router.websocket("/sessions/{session_id}/ws")
async def session_events(websocket: WebSocket, session_id: str, after: int = 0) -> None:
    """Pushes the conversation's later messages (an agent's) and state changes.

    On (re)connect it first sends every message after `after`, so a dropped connection loses nothing.
    """
    c = websocket.app.state.c
    try:
        await run_db(c.engine, c.conversations.get, session_id)
    except UnknownConversation:
        await websocket.close(code=4404)
        return
    await websocket.accept()
    async with c.events.subscribe(f"conversation:{session_id}") as queue:
        sent: set[int] = set()  # ids, not the last id: events from another process may come out of order
        backlog, position = await run_db(c.engine, _since, c, session_id, after)
        for message in backlog:
            await websocket.send_json({"type": "message", **message.public()})
            sent.add(message.id)
        await websocket.send_json({"type": "state", **position})
        receiver = asyncio.create_task(_drain(websocket, c, session_id, queue))
        try:
            while True:
                event = await queue.get()
                if event is None:  # the receiver saw the socket close
                    break
                if event.get("type") == "message":
                    if event["id"] <= after or event["id"] in sent:
                        continue
                    sent.add(event["id"])
                await websocket.send_json(event)
        except WebSocketDisconnect:
            pass
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await receiver


def _since(c, session_id: str, after: int) -> tuple[list, dict]:
    return c.conversations.messages(session_id, after_id=after), c.chat.queue.position(session_id)


async def _drain(websocket: WebSocket, c, session_id: str, events: asyncio.Queue) -> None:
    """Read what the client sends, so a disconnect is noticed (it ends the sender's wait on `events`);
    `{"type": "typing"}` goes to the agent."""
    try:
        await _read(websocket, c, session_id)
    finally:
        events.put_nowait(None)


async def _read(websocket: WebSocket, c, session_id: str) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            raw = await websocket.receive_text()
            if len(raw) > 200 or '"typing"' not in raw:
                continue
            with contextlib.suppress(ValueError, AttributeError):
                frame = json.loads(raw)
                if frame.get("type") == "typing":
                    await c.chat.citizen_typing(session_id, frame.get("typing", True) is not False)

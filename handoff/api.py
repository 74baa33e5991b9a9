"""HTTP API for staff (logging in, the queue, conversations, canned responses, tickets, users, opening
hours, reports) and the citizen's side of a handover (availability, satisfaction rating)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from core import municipalities
from core.db import run_db
from core.deps import COOKIE, current_user, require_role, session_token
from core.text import clean_message
from core.users import ROLES, UserError
from handoff import tickets
from handoff.assignment import OUTCOMES, Conflict
from handoff.canned import CannedError, CannedStore
from handoff.console import STATUSES, conversation_view
from handoff.console import router as console_router
from handoff.queue import validate_hours

router = APIRouter(prefix="/api/v1", tags=["handoff"])
staff = require_role("agent")


class Login(BaseModel):
    username: str
    password: str


@router.post("/auth/login")
async def login(request: Request, body: Login, response: Response) -> dict:
    # bcrypt takes a quarter of a second on purpose: not on the event loop, nor on the database thread.
    result = await asyncio.to_thread(request.app.state.c.users.login, body.username, body.password)
    if not result:
        raise HTTPException(401, "wrong username or password")
    token, user = result
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=8 * 3600)
    return {"token": token, "user": user}


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, response: Response) -> None:
    c = request.app.state.c
    token = session_token(request)
    if token:
        user = c.users.by_token(token)
        c.users.logout(token)
        if user:
            c.users.update(user["id"], status="offline")
            await c.events.publish("agents", {"type": "status", "user_id": user["id"], "status": "offline"})
    response.delete_cookie(COOKIE)


@router.get("/auth/me")
async def me(user: dict = Depends(current_user)) -> dict:
    return user


# --- the queue and conversations ---------------------------------------------------------------------


@router.get("/handoff/queue")
async def queue(request: Request, _user=Depends(staff)) -> list[dict]:
    """Waiting conversations, longest waiting first, with reason, language, topic and municipality."""
    c = request.app.state.c
    items = request.app.state.live.queue_items(c.queue.waiting())
    return [{"session_id": i["id"], **{k: v for k, v in i.items() if k != "id"}} for i in items]


@router.get("/handoff/conversations")
async def my_conversations(request: Request, user=Depends(staff)) -> list[dict]:
    """The conversations the caller has now (an admin: everyone's)."""
    c = request.app.state.c
    return [conversation_view(c, conv["id"]) for conv in c.conversations.in_state("agent")
            if user["role"] == "admin" or conv["assigned_to"] == user["id"]]


@router.get("/handoff/conversations/{conversation_id}")
async def conversation(request: Request, conversation_id: str, _user=Depends(staff)) -> dict:
    """The whole transcript: the bot part before the handover, the citizen, agents and internal notes."""
    return conversation_view(request.app.state.c, conversation_id)


def _conflict(exc: Exception) -> HTTPException:
    return HTTPException(409, str(exc))


@router.post("/handoff/conversations/{conversation_id}/claim")
async def claim(request: Request, conversation_id: str, user=Depends(staff)) -> dict:
    c = request.app.state.c
    c.conversations.get(conversation_id)
    try:
        await c.agents.claim(conversation_id, user)
    except Conflict as exc:
        raise _conflict(exc) from None
    return conversation_view(c, conversation_id)


class AgentMessage(BaseModel):
    text: str
    note: bool = Field(False, description="an internal note: staff see it, the citizen never does")
    client_id: str | None = Field(None, max_length=64)


@router.post("/handoff/conversations/{conversation_id}/messages", status_code=201)
async def agent_message(request: Request, conversation_id: str, body: AgentMessage, user=Depends(staff)) -> dict:
    c = request.app.state.c
    text = clean_message(body.text)
    if not text:
        raise HTTPException(422, "the message is empty")
    if len(text) > c.settings.max_message_chars:
        raise HTTPException(413, f"the message is longer than {c.settings.max_message_chars} characters")
    try:
        message = await c.agents.message(conversation_id, user, text, client_id=body.client_id, note=body.note)
    except Conflict as exc:
        raise _conflict(exc) from None
    return message.public()


class Transfer(BaseModel):
    to_user_id: int | None = Field(None, description="the agent; none: back to the front of the queue")


@router.post("/handoff/conversations/{conversation_id}/transfer")
async def transfer_conversation(request: Request, conversation_id: str, body: Transfer, user=Depends(staff)) -> dict:
    try:
        return await request.app.state.c.agents.transfer(conversation_id, user, body.to_user_id)
    except Conflict as exc:
        raise _conflict(exc) from None
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/handoff/conversations/{conversation_id}/handback")
async def handback(request: Request, conversation_id: str, user=Depends(staff)) -> dict:
    c = request.app.state.c
    try:
        replies = await c.agents.hand_back(conversation_id, user)
    except Conflict as exc:
        raise _conflict(exc) from None
    return {"state": c.conversations.get(conversation_id)["state"], "messages": [m.public() for m in replies]}


class Close(BaseModel):
    outcome: Literal[OUTCOMES] = "resolved"  # type: ignore[valid-type]


@router.post("/handoff/conversations/{conversation_id}/close")
async def close(request: Request, conversation_id: str, body: Close, user=Depends(staff)) -> dict:
    c = request.app.state.c
    try:
        await c.agents.close(conversation_id, user, body.outcome)
    except Conflict as exc:
        raise _conflict(exc) from None
    return {"state": "closed", "outcome": body.outcome}


@router.get("/handoff/conversations/{conversation_id}/suggestions")
async def suggestions(request: Request, conversation_id: str, _user=Depends(staff)) -> dict:
    """Knowledge-base answers for the citizen's last message."""
    c = request.app.state.c
    conv = c.conversations.get(conversation_id)
    return await asyncio.to_thread(request.app.state.live.suggestions, conversation_id, conv["language"],
                                   conv["municipality"])


class Status(BaseModel):
    status: Literal[STATUSES]  # type: ignore[valid-type]


@router.put("/handoff/status")
async def set_status(request: Request, body: Status, user=Depends(staff)) -> dict:
    c = request.app.state.c
    updated = c.users.update(user["id"], status=body.status)
    await c.events.publish("agents", {"type": "status", "user_id": user["id"], "status": body.status})
    return updated


@router.get("/handoff/agents")
async def agent_list(request: Request, _user=Depends(staff)) -> list[dict]:
    """Agents with status, whether a console is connected, and their open chats (for transfers)."""
    return await run_db(request.app.state.c.engine, request.app.state.live.agent_list)


# --- canned responses --------------------------------------------------------------------------------


class Canned(BaseModel):
    municipality: str = "default"
    shortcut: str = Field(..., description="typed as /shortcut in the console")
    title: str
    texts: dict[str, str] = Field(..., description="the text per language, e.g. {\"sv\": \"...\", \"en\": \"...\"}")


@router.get("/handoff/canned")
async def canned_list(request: Request, municipality: str = "default", q: str = "", _user=Depends(staff)):
    return CannedStore(request.app.state.c.engine).search(municipality, q, limit=50)


@router.post("/handoff/canned", status_code=201)
async def canned_create(request: Request, body: Canned, user=Depends(require_role("webmaster"))) -> dict:
    try:
        return CannedStore(request.app.state.c.engine).create(body.municipality, body.shortcut, body.title,
                                                              body.texts, actor=user["username"])
    except CannedError as exc:
        raise HTTPException(422, str(exc)) from None


@router.put("/handoff/canned/{item_id}")
async def canned_update(request: Request, item_id: int, body: Canned, user=Depends(require_role("webmaster"))):
    store = CannedStore(request.app.state.c.engine)
    if not store.get(item_id):
        raise HTTPException(404, f"no canned response {item_id}")
    try:
        return store.update(item_id, body.shortcut, body.title, body.texts, actor=user["username"])
    except CannedError as exc:
        raise HTTPException(422, str(exc)) from None


@router.delete("/handoff/canned/{item_id}", status_code=204)
async def canned_delete(request: Request, item_id: int, _user=Depends(require_role("webmaster"))) -> None:
    if not CannedStore(request.app.state.c.engine).delete(item_id):
        raise HTTPException(404, f"no canned response {item_id}")


# --- call-back tickets -------------------------------------------------------------------------------


@router.get("/handoff/tickets")
async def ticket_list(request: Request, status: str = "open", user=Depends(staff)) -> list[dict]:
    """Messages left outside opening hours, oldest first (an agent sees their municipalities')."""
    rows = tickets.in_status(request.app.state.c.engine, status)
    return [t for t in rows if user["role"] == "admin" or t["municipality"] in (user["municipalities"] or [])]


class TicketChange(BaseModel):
    status: Literal["open", "done"]


@router.patch("/handoff/tickets/{ticket_id}")
async def ticket_change(request: Request, ticket_id: int, body: TicketChange, _user=Depends(staff)) -> dict:
    c = request.app.state.c
    if not tickets.set_status(c.engine, ticket_id, body.status):
        raise HTTPException(404, f"no ticket {ticket_id}")
    await c.events.publish("agents", {"type": "ticket", "id": ticket_id})
    return {"id": ticket_id, "status": body.status}


# --- administration: users and opening hours ---------------------------------------------------------

admin = require_role("admin")


class NewUser(BaseModel):
    username: str
    password: str
    role: Literal[ROLES] = "agent"  # type: ignore[valid-type]
    display_name: str | None = None
    languages: list[str] = ["sv"]
    municipalities: list[str] = ["default"]
    max_chats: int = Field(3, ge=1, le=50)


class UserChange(BaseModel):
    password: str | None = None
    role: Literal[ROLES] | None = None  # type: ignore[valid-type]
    display_name: str | None = None
    languages: list[str] | None = None
    municipalities: list[str] | None = None
    max_chats: int | None = Field(None, ge=1, le=50)
    status: Literal[STATUSES] | None = None  # type: ignore[valid-type]
    active: bool | None = None


@router.get("/admin/users")
async def users_list(request: Request, _user=Depends(admin)) -> list[dict]:
    return request.app.state.c.users.list()


@router.post("/admin/users", status_code=201)
async def users_create(request: Request, body: NewUser, _user=Depends(admin)) -> dict:
    try:
        return request.app.state.c.users.create(
            body.username, body.password, role=body.role, languages=body.languages,
            municipalities=body.municipalities, max_chats=body.max_chats, display_name=body.display_name,
        )
    except UserError as exc:
        raise HTTPException(422, str(exc)) from None


@router.patch("/admin/users/{user_id}")
async def users_change(request: Request, user_id: int, body: UserChange, _user=Depends(admin)) -> dict:
    c = request.app.state.c
    if not c.users.get(user_id):
        raise HTTPException(404, f"no user {user_id}")
    values = body.model_dump(exclude_none=True)
    if "password" in values and len(values["password"]) < 8:
        raise HTTPException(422, "the password must have at least 8 characters")
    updated = c.users.update(user_id, **values)
    await c.events.publish("agents", {"type": "status", "user_id": user_id, "status": updated["status"]})
    return updated


@router.get("/admin/municipalities/{municipality}/opening-hours")
async def hours_get(request: Request, municipality: str, _user=Depends(staff)) -> dict:
    settings = municipalities.settings(request.app.state.c.engine, municipality)
    if settings is None:
        raise HTTPException(404, f"no municipality with id '{municipality}'")
    return {"opening_hours": settings.get("opening_hours"), **request.app.state.c.queue.availability(municipality)}


class Hours(BaseModel):
    timezone: str = "Europe/Stockholm"
    weekly: dict[str, list[list[str]]] = Field(..., description='{"mon": [["08:00", "16:30"]], ...}')
    holidays: list[str] = Field([], description="dates (YYYY-MM-DD) when the contact centre is closed")


@router.put("/admin/municipalities/{municipality}/opening-hours")
async def hours_put(request: Request, municipality: str, body: Hours, _user=Depends(admin)) -> dict:
    c = request.app.state.c
    settings = municipalities.settings(c.engine, municipality)
    if settings is None:
        raise HTTPException(404, f"no municipality with id '{municipality}'")
    try:
        hours = validate_hours(body.model_dump())
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    municipalities.update_settings(c.engine, municipality, {"opening_hours": hours})
    return {"opening_hours": hours, **c.queue.availability(municipality)}


# --- the citizen's side ------------------------------------------------------------------------------

citizen = APIRouter(prefix="/chat", tags=["chat"])


@citizen.get("/availability")
async def availability(request: Request, municipality: str = "default") -> dict:
    """Whether people answer now (opening hours), when they open next, and the current estimated wait."""
    c = request.app.state.c
    if municipalities.settings(c.engine, municipality) is None:
        raise HTTPException(404, f"no municipality with id '{municipality}'")
    waiting = len(c.queue.waiting())
    return {**c.queue.availability(municipality), "waiting": waiting, **c.queue.pace().estimate(waiting + 1)}


class Rating(BaseModel):
    score: int = Field(..., ge=1, le=5, description="1 (not at all satisfied) to 5 (very satisfied)")
    comment: str | None = Field(None, max_length=2000)


@citizen.post("/sessions/{session_id}/rating")
async def rate(request: Request, session_id: str, body: Rating) -> dict:
    """The citizen's answer to the satisfaction question after an agent closed the chat."""
    comment = clean_message(body.comment) if body.comment else None
    try:
        await request.app.state.c.chat.rate(session_id, body.score, comment or None)
    except Conflict as exc:
        raise _conflict(exc) from None
    return {"score": body.score, "comment": comment or None}


router.include_router(console_router)
router.include_router(citizen)

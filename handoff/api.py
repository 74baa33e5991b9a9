"""HTTP API for staff (logging in, the queue, conversations, canned responses, tickets, users, opening
hours, reports) and the citizen's side of a handover (availability, satisfaction rating)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from conversations.deps import Chat
from core import municipalities
from core.db import run_db
from core.deps import (
    COOKIE,
    Admin,
    AgentMunicipality,
    CurrentUser,
    DbEngine,
    Events,
    MunicipalityScope,
    Scope,
    StaffUser,
    Users,
    Webmaster,
    municipality_of,
    session_token,
)
from core.errors import ERROR_RESPONSES, Forbidden, Invalid, NotFound, NotLoggedIn
from core.ratelimit import Limits, client_address
from core.security import cookie_secure
from core.text import clean_message
from core.users import ROLES, UserError
from handoff import tickets
from handoff.assignment import OUTCOMES
from handoff.canned import CannedError, CannedStore
from handoff.console import router as console_router
from handoff.deps import Agents, LiveDep, QueueDep
from handoff.models import (
    AgentRow,
    Availability,
    CannedOut,
    Closed,
    ConversationView,
    HandedBack,
    LoggedIn,
    MessageOut,
    OpeningHours,
    QueueItem,
    Rated,
    StaffUserOut,
    Suggestions,
    TicketChanged,
    TicketOut,
    Transferred,
)
from handoff.queue import validate_hours
from handoff.service import STATUSES

router = APIRouter(prefix="/api/v1", tags=["handoff"], responses=ERROR_RESPONSES)


class Login(BaseModel):
    username: str
    password: str


@router.post("/auth/login", response_model=LoggedIn)
async def login(request: Request, body: Login, response: Response, users: Users, limits: Limits) -> dict:
    """A session (cookie and token). Failed logins slow down from the third and lock the user (and the
    address) out for a while at the limit: 429 with Retry-After (core/ratelimit.py)."""
    address = client_address(request)
    await limits.before_login(body.username, address)
    # bcrypt takes a quarter of a second on purpose: not on the event loop, nor on the database thread.
    result = await asyncio.to_thread(users.login, body.username, body.password)
    if not result:
        await limits.login_failed(body.username, address)
        raise NotLoggedIn("wrong username or password")
    await limits.login_succeeded(body.username)
    token, user = result
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=8 * 3600,
                        secure=cookie_secure(request))
    return {"token": token, "user": user}


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, response: Response, users: Users, agents: Agents) -> None:
    token = session_token(request)
    user = await run_db(users.engine, users.by_token, token) if token else None
    if token:
        await run_db(users.engine, users.logout, token)
    if user:
        await agents.set_status(user, "offline")
    response.delete_cookie(COOKIE)


@router.get("/auth/me", response_model=StaffUserOut)
async def me(user: CurrentUser) -> dict:
    return user


# --- the queue and conversations: every command is one call onto AgentService (the console's too) ------


@router.get("/handoff/queue", response_model=list[QueueItem])
async def queue(scope: Scope, _user: StaffUser, queue: QueueDep, live: LiveDep, engine: DbEngine) -> list[dict]:
    """Waiting conversations of the caller's municipalities, longest waiting first, with reason, language,
    topic and municipality."""
    items = scope.filter(await run_db(engine, lambda: live.queue_items(queue.waiting())))
    return [{"session_id": i["id"], **{k: v for k, v in i.items() if k != "id"}} for i in items]


@router.get("/handoff/conversations", response_model=list[ConversationView])
async def my_conversations(user: StaffUser, agents: Agents) -> list[dict]:
    """The conversations the caller has now (an admin: everyone's)."""
    return await agents.mine(user)


@router.get("/handoff/conversations/{conversation_id}", response_model=ConversationView)
async def conversation(conversation_id: str, user: StaffUser, agents: Agents) -> dict:
    """The whole transcript: the bot part before the handover, the citizen, agents and internal notes."""
    return await agents.view(conversation_id, user)


@router.post("/handoff/conversations/{conversation_id}/claim", response_model=ConversationView)
async def claim(conversation_id: str, user: StaffUser, agents: Agents) -> dict:
    await agents.claim(conversation_id, user)
    return await agents.view(conversation_id, user)


class AgentMessage(BaseModel):
    text: str
    note: bool = Field(False, description="an internal note: staff see it, the citizen never does")
    client_id: str | None = Field(None, max_length=64)


@router.post("/handoff/conversations/{conversation_id}/messages", status_code=201, response_model=MessageOut)
async def agent_message(conversation_id: str, body: AgentMessage, user: StaffUser, agents: Agents) -> dict:
    command = agents.note if body.note else agents.reply
    return (await command(conversation_id, user, body.text, client_id=body.client_id)).public()


class Transfer(BaseModel):
    to_user_id: int | None = Field(None, description="the agent; none: back to the front of the queue")


@router.post("/handoff/conversations/{conversation_id}/transfer", response_model=Transferred)
async def transfer_conversation(conversation_id: str, body: Transfer, user: StaffUser, agents: Agents) -> dict:
    return await agents.transfer(conversation_id, user, body.to_user_id)


@router.post("/handoff/conversations/{conversation_id}/handback", response_model=HandedBack)
async def handback(conversation_id: str, user: StaffUser, agents: Agents, engine: DbEngine) -> dict:
    replies = await agents.give_back(conversation_id, user)
    state = (await run_db(engine, agents.conversations.get, conversation_id))["state"]
    return {"state": state, "messages": [m.public() for m in replies]}


class Close(BaseModel):
    outcome: Literal[OUTCOMES] = "resolved"  # type: ignore[valid-type]


@router.post("/handoff/conversations/{conversation_id}/close", response_model=Closed)
async def close(conversation_id: str, body: Close, user: StaffUser, agents: Agents) -> dict:
    await agents.close_with(conversation_id, user, body.outcome)
    return {"state": "closed", "outcome": body.outcome}


@router.get("/handoff/conversations/{conversation_id}/suggestions", response_model=Suggestions)
async def suggestions(conversation_id: str, user: StaffUser, agents: Agents, live: LiveDep) -> dict:
    """Knowledge-base answers for the citizen's last message."""
    return await agents.suggestions(conversation_id, user, live.suggestions)


class Status(BaseModel):
    status: Literal[STATUSES]  # type: ignore[valid-type]


@router.put("/handoff/status", response_model=StaffUserOut)
async def set_status(body: Status, user: StaffUser, agents: Agents) -> dict:
    return await agents.set_status(user, body.status)


@router.get("/handoff/agents", response_model=list[AgentRow])
async def agent_list(user: StaffUser, scope: Scope, live: LiveDep, engine: DbEngine) -> list[dict]:
    """Agents with status, whether a console is connected, and their open chats (for transfers): the
    caller's colleagues (who share a municipality with them)."""
    return [a for a in await run_db(engine, live.agent_list) if a["id"] == user["id"] or scope.shares(a)]


# --- canned responses --------------------------------------------------------------------------------


class Canned(BaseModel):
    municipality: str = "default"
    shortcut: str = Field(..., description="typed as /shortcut in the console")
    title: str
    texts: dict[str, str] = Field(..., description='the text per language, e.g. {"sv": "...", "en": "..."}')


def _canned_in_scope(store: CannedStore, item_id: int, scope: MunicipalityScope) -> dict:
    item = store.get(item_id)
    if not item:
        raise NotFound(f"no canned response {item_id}")
    scope.check(item["municipality"])
    return item


@router.get("/handoff/canned", response_model=list[CannedOut])
async def canned_list(municipality: AgentMunicipality, engine: DbEngine, q: str = "") -> list[dict]:
    return await run_db(engine, CannedStore(engine).search, municipality, q, limit=50)


@router.post("/handoff/canned", status_code=201, response_model=CannedOut)
async def canned_create(body: Canned, user: Webmaster, scope: Scope, engine: DbEngine) -> dict:
    scope.check(body.municipality)
    try:
        return await run_db(engine, CannedStore(engine).create, body.municipality, body.shortcut, body.title,
                            body.texts, actor=user["username"])
    except CannedError as exc:
        raise Invalid(str(exc)) from None


@router.put("/handoff/canned/{item_id}", response_model=CannedOut)
async def canned_update(item_id: int, body: Canned, user: Webmaster, scope: Scope, engine: DbEngine) -> dict:
    store = CannedStore(engine)
    await run_db(engine, _canned_in_scope, store, item_id, scope)
    try:
        return await run_db(engine, store.update, item_id, body.shortcut, body.title, body.texts,
                            actor=user["username"])
    except CannedError as exc:
        raise Invalid(str(exc)) from None


@router.delete("/handoff/canned/{item_id}", status_code=204)
async def canned_delete(item_id: int, _user: Webmaster, scope: Scope, engine: DbEngine) -> None:
    store = CannedStore(engine)
    await run_db(engine, _canned_in_scope, store, item_id, scope)
    await run_db(engine, store.delete, item_id)


# --- call-back tickets -------------------------------------------------------------------------------


@router.get("/handoff/tickets", response_model=list[TicketOut])
async def ticket_list(_user: StaffUser, scope: Scope, engine: DbEngine, status: str = "open") -> list[dict]:
    """Messages left outside opening hours, oldest first (an agent sees their municipalities')."""
    return scope.filter(await run_db(engine, tickets.in_status, engine, status))


class TicketChange(BaseModel):
    status: Literal["open", "done"]


@router.patch("/handoff/tickets/{ticket_id}", response_model=TicketChanged)
async def ticket_change(
    ticket_id: int, body: TicketChange, _user: StaffUser, scope: Scope, engine: DbEngine, events: Events
) -> dict:
    ticket = await run_db(engine, tickets.get, engine, ticket_id)
    if not ticket:
        raise NotFound(f"no ticket {ticket_id}")
    scope.check(ticket["municipality"])
    await run_db(engine, tickets.set_status, engine, ticket_id, body.status)
    await events.publish("agents", {"type": "ticket", "id": ticket_id})
    return {"id": ticket_id, "status": body.status}


# --- administration: users and opening hours ---------------------------------------------------------


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


@router.get("/admin/users", response_model=list[StaffUserOut])
async def users_list(_user: Admin, scope: Scope, users: Users) -> list[dict]:
    """The staff of the admin's municipalities (a global admin: everyone)."""
    return [u for u in await run_db(users.engine, users.list) if scope.shares(u)]


@router.post("/admin/users", status_code=201, response_model=StaffUserOut)
async def users_create(body: NewUser, _user: Admin, scope: Scope, users: Users) -> dict:
    if not scope.covers(body.municipalities):
        raise Forbidden("you can only give users the municipalities you work for (\"*\": a global admin only)")
    try:
        return await run_db(
            users.engine,
            users.create,
            body.username,
            body.password,
            role=body.role,
            languages=body.languages,
            municipalities=body.municipalities,
            max_chats=body.max_chats,
            display_name=body.display_name,
        )
    except UserError as exc:
        raise Invalid(str(exc)) from None


@router.patch("/admin/users/{user_id}", response_model=StaffUserOut)
async def users_change(user_id: int, body: UserChange, _user: Admin, scope: Scope, users: Users,
                       events: Events) -> dict:
    """Change a user; a new password or `active: false` ends their sessions at once."""
    target = await run_db(users.engine, users.get, user_id)
    if not target or not scope.shares(target):
        raise NotFound(f"no user {user_id}")
    values = body.model_dump(exclude_none=True)
    if not values:
        raise Invalid("nothing to change: name at least one field", [{"field": "body", "message": "empty"}])
    if not scope.covers(values.get("municipalities") or []):
        raise Forbidden("you can only give users the municipalities you work for (\"*\": a global admin only)")
    if "password" in values and len(values["password"]) < 8:
        raise Invalid(
            "the password must have at least 8 characters", [{"field": "password", "message": "at least 8 characters"}]
        )
    updated = await run_db(users.engine, users.update, user_id, **values)
    await events.publish("agents", {"type": "status", "user_id": user_id, "status": updated["status"]})
    return updated


def _settings_of(engine, municipality: str) -> dict:
    settings = municipalities.settings(engine, municipality)
    if settings is None:
        raise NotFound(f"no municipality with id '{municipality}'")
    return settings


@router.get("/admin/municipalities/{municipality}/opening-hours", response_model=OpeningHours)
async def hours_get(
    municipality: Annotated[str, Depends(municipality_of("agent", in_path=True))], engine: DbEngine, queue: QueueDep
) -> dict:
    settings = await run_db(engine, _settings_of, engine, municipality)
    return {"opening_hours": settings.get("opening_hours"), **await run_db(engine, queue.availability, municipality)}


class Hours(BaseModel):
    timezone: str = "Europe/Stockholm"
    weekly: dict[str, list[list[str]]] = Field(..., description='{"mon": [["08:00", "16:30"]], ...}')
    holidays: list[str] = Field([], description="dates (YYYY-MM-DD) when the contact centre is closed")


@router.put("/admin/municipalities/{municipality}/opening-hours", response_model=OpeningHours)
async def hours_put(
    municipality: Annotated[str, Depends(municipality_of("admin", in_path=True))],
    body: Hours,
    engine: DbEngine,
    queue: QueueDep,
) -> dict:
    await run_db(engine, _settings_of, engine, municipality)
    try:
        hours = validate_hours(body.model_dump())
    except ValueError as exc:
        raise Invalid(str(exc), [{"field": "opening_hours", "message": str(exc)}]) from None
    await run_db(engine, municipalities.update_settings, engine, municipality, {"opening_hours": hours})
    return {"opening_hours": hours, **await run_db(engine, queue.availability, municipality)}


# --- the citizen's side ------------------------------------------------------------------------------

citizen = APIRouter(prefix="/chat", tags=["chat"])


@citizen.get("/availability", response_model=Availability)
async def availability(engine: DbEngine, queue: QueueDep, municipality: str = "default") -> dict:
    """Whether people answer now (opening hours), when they open next, and the current estimated wait."""
    return await run_db(engine, _availability, engine, queue, municipality)


def _availability(engine, queue, municipality: str) -> dict:
    _settings_of(engine, municipality)
    waiting = len(queue.waiting())
    return {**queue.availability(municipality), "waiting": waiting, **queue.pace().estimate(waiting + 1)}


class Rating(BaseModel):
    score: int = Field(..., ge=1, le=5, description="1 (not at all satisfied) to 5 (very satisfied)")
    comment: str | None = Field(None, max_length=2000)


@citizen.post("/sessions/{session_id}/rating", response_model=Rated)
async def rate(session_id: str, body: Rating, chat: Chat) -> dict:
    """The citizen's answer to the satisfaction question after an agent closed the chat."""
    comment = clean_message(body.comment) if body.comment else None
    await chat.rate(session_id, body.score, comment or None)  # Conflict: 409
    return {"score": body.score, "comment": comment or None}


router.include_router(console_router)
router.include_router(citizen)

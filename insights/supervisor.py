"""The supervisor's live view: agents (online, status, their chats) and the citizens waiting, with the
longest wait. Read-only over the conversation, user and presence tables. The page fetches `/live` and
hears `/ws` say when to fetch again, from what the consoles hear: the staff event stream (the `agents`
topic: chat states, assignments, statuses, consoles opened and closed; across processes with Redis) and
this process's queue as the live loop pushes it to the consoles (a citizen the action server queued)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select

from conversations.tables import conversations, messages
from core.db import run_db
from core.deps import DbEngine, Events, MunicipalityScope, Users, require_role, session_token
from core.user_tables import users
from handoff.deps import LiveDep
from handoff.history import title_of
from handoff.presence import online_user_ids

router = APIRouter(prefix="/api/v1/supervisor", tags=["supervisor"])
STAFF_ROLES = ("agent", "admin")
# The events after which the view differs: a chat queued, taken, moved or ended; a status; a console; the queue.
CHANGES = frozenset({"conversation", "assigned", "released", "status", "agent_connected", "agent_disconnected",
                     "queue"})
SESSION_CHECK_S = 30.0  # a session that expires while the page stays open ends the socket (4401)


def _titles(conn, ids: list[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """Each conversation's title (first question) and the citizen's last words."""
    rows_by: dict[str, list] = defaultdict(list)
    if ids:
        for row in conn.execute(
            select(messages.c.id, messages.c.conversation_id, messages.c.sender, messages.c.text, messages.c.data)
            .where(messages.c.conversation_id.in_(ids))
            .order_by(messages.c.id)
        ):
            rows_by[row.conversation_id].append(row)
    typed = {cid: [r.text for r in rows if r.sender == "citizen" and not r.text.startswith("/")]
             for cid, rows in rows_by.items()}
    last = {cid: texts[-1][:160] if texts else "" for cid, texts in typed.items()}
    return {cid: title_of(rows_by[cid]) for cid in ids}, last


def snapshot(engine: Engine, now: float | None = None) -> dict:
    now = now or time.time()
    online = online_user_ids(engine, now)
    with engine.connect() as conn:
        staff = [
            dict(r._mapping)
            for r in conn.execute(select(users).where(users.c.role.in_(STAFF_ROLES)).order_by(users.c.username))
        ]
        live = [
            dict(r._mapping)
            for r in conn.execute(
                select(conversations)
                .where(conversations.c.state.in_(("queued", "agent")))
                .order_by(conversations.c.queued_at, conversations.c.created_at)
            )
        ]
        titles, last = _titles(conn, [c["id"] for c in live])
    chats_of: dict[int, list[dict]] = defaultdict(list)
    waiting = []
    for conv in live:
        item = {
            "id": conv["id"],
            "language": conv["language"],
            "municipality": conv["municipality"],
            "reason": conv["handoff_reason"],
            "title": titles.get(conv["id"]),
            "preview": last.get(conv["id"], ""),
        }
        if conv["state"] == "agent":
            chats_of[conv["assigned_to"]].append({**item, "assigned_at": conv["assigned_at"]})
        else:
            waiting.append({**item, "position": len(waiting) + 1, "queued_at": conv["queued_at"] or conv["created_at"]})
    agents = [
        {
            "id": u["id"],
            "name": u["display_name"] or u["username"],
            "status": u["status"],
            "online": u["id"] in online,
            "languages": u["languages"] or [],
            "municipalities": u["municipalities"] or [],
            "max_chats": u["max_chats"],
            "chats": chats_of.get(u["id"], []),
        }
        for u in staff
        if u["active"] or chats_of.get(u["id"])
    ]
    agents.sort(key=lambda a: (not a["online"], a["name"].lower()))
    longest = max((now - w["queued_at"] for w in waiting), default=None)
    return {
        "now": now,
        "agents": agents,
        "waiting": waiting,
        "longest_wait_seconds": round(longest, 1) if longest is not None else None,
    }


class LiveView(BaseModel):
    now: float
    agents: list[dict[str, Any]] = Field(description="online agents (and those with chats), with their chats")
    waiting: list[dict[str, Any]] = Field(description="who waits, in queue order, with their position")
    longest_wait_seconds: float | None


@router.get("/live", response_model=LiveView)
async def live(engine: DbEngine, user: Annotated[dict, Depends(require_role("admin"))]) -> dict:
    """Who is online and what they have; who waits, in queue order, and the longest wait now: of the
    admin's municipalities (their colleagues, their chats, their queue)."""
    view = await run_db(engine, snapshot, engine)
    scope = MunicipalityScope.of(user)
    if scope.ids is None:
        return view
    waiting = scope.filter(view["waiting"])
    agents = [{**a, "chats": scope.filter(a["chats"])} for a in view["agents"] if scope.shares(a)]
    longest = max((view["now"] - w["queued_at"] for w in waiting), default=None)
    return {**view, "agents": agents, "waiting": [{**w, "position": i} for i, w in enumerate(waiting, start=1)],
            "longest_wait_seconds": round(longest, 1) if longest is not None else None}


@router.websocket("/ws")
async def live_socket(
    websocket: WebSocket, engine: DbEngine, user_store: Users, hub: Events, live: LiveDep
) -> None:
    """`{"type": "changed", "kind": ...}` whenever the live view changes, so the page fetches `/live` at once.
    The console's session and check (cookie, bearer header or ?token=; 4401 when missing or expired), for
    admins; a socket of its own because opening the console's would make the supervisor an available agent."""
    token = session_token(websocket)
    user = await run_db(engine, user_store.by_token, token) if token else None
    if not user or user["role"] != "admin":
        await websocket.close(code=4401)
        return
    await websocket.accept()
    async with hub.subscribe("agents") as events:
        live.queue_watchers.add(events)
        tasks = [asyncio.create_task(_push(websocket, events, engine, user_store, token)),
                 asyncio.create_task(_until_closed(websocket))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            live.queue_watchers.discard(events)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _push(websocket: WebSocket, events: asyncio.Queue, engine: Engine, user_store, token: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.send_json({"type": "hello", "now": time.time()})
        while True:
            try:
                event = await asyncio.wait_for(events.get(), timeout=SESSION_CHECK_S)
            except TimeoutError:
                if not await run_db(engine, user_store.by_token, token):
                    await websocket.close(code=4401)
                    return
                continue
            if event.get("type") in CHANGES:  # no ids: what the admin may see comes from /live
                await websocket.send_json({"type": "changed", "kind": event["type"]})


async def _until_closed(websocket: WebSocket) -> None:
    """The page sends nothing; reading is how a closed socket is noticed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

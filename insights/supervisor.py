"""The supervisor's live view: agents (online, status, their chats) and the citizens waiting, with the
longest wait. Read-only over the conversation, user and presence tables; the page polls it."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select

from conversations.store import conversations, messages
from core.db import run_db
from core.deps import DbEngine, MunicipalityScope, require_role
from core.users import users
from handoff.history import title_of
from handoff.presence import online_user_ids

router = APIRouter(prefix="/api/v1/supervisor", tags=["supervisor"])
STAFF_ROLES = ("agent", "admin")


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

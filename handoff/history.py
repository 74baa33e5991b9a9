"""Past conversations for staff: search (words, session id, a citizen's contact, municipality, state,
language, period) and one conversation with its whole transcript and the same citizen's other chats.

A citizen is recognised across chats by what they left: the contact of a call-back ticket. Staff see
the municipalities they work for (admins all). Read-only: the conversations and their messages come from
conversations.queries, the agents' names from core.users; this package's own tables (tickets,
assignments) are read here.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, select

from conversations import queries as chats
from conversations.store import ConversationStore
from core import users
from core.db import run_db
from core.deps import DbEngine, MunicipalityScope, require_role
from core.municipalities import DEFAULT_TIMEZONE
from handoff import access_log
from handoff.assignment import assignments
from handoff.questions import questions
from handoff.tickets import tickets

router = APIRouter(prefix="/api/v1/handoff", tags=["history"])
staff = require_role("agent")
MAX_LIMIT = 200


def _day_start(day: str, zone: ZoneInfo, after: int = 0) -> float:
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise HTTPException(422, [{"field": "date", "message": f"'{day}' is not a date (YYYY-MM-DD)"}]) from None
    return dt.datetime.combine(date + dt.timedelta(days=after), dt.time(), zone).timestamp()


class _Message:
    """The parts of a stored message the question rule needs."""

    __slots__ = ("id", "sender", "text", "data")

    def __init__(self, row):
        self.id, self.sender, self.text, self.data = row.id, row.sender, row.text, row.data or {}


def title_of(rows: list) -> str | None:
    """The citizen's first question (else their first typed words), as the console's tab shows it."""
    found = questions([_Message(r) for r in rows])
    if found:
        return found[0].text[:120]
    typed = [r for r in rows if r.sender == "citizen" and not r.text.startswith("/")]
    return typed[0].text[:120] if typed else None


def _search(
    user: dict, q: str, contact: str, municipality: str, state: str, language: str, date_from: str, date_to: str
) -> chats.Search:
    """The search as conversations.queries takes it: days as times, a contact as the SELECT of the ids of
    the chats whose call-back ticket left it (tickets are this package's; one statement as before)."""
    zone = ZoneInfo(DEFAULT_TIMEZONE)
    among = None
    if contact:
        among = select(tickets.c.conversation_id).where(
            tickets.c.contact.ilike(chats.like_pattern(contact), escape="\\")
        )
    return chats.Search(
        municipalities=MunicipalityScope.of(user).ids,
        municipality=municipality,
        state=state,
        language=language,
        created_from=_day_start(date_from, zone) if date_from else None,
        created_before=_day_start(date_to, zone, after=1) if date_to else None,
        words=q,
        among=among,
    )


def _agents(conn: Connection, ids: list[str]) -> dict[str, list[str]]:
    """{conversation id: its agents' names, first assigned first}. Two queries combined here: this
    package's assignments of a page of conversations, then core.users' names of the few agents in them
    (once a join of assignments and users; the same rows, in the same order)."""
    rows = conn.execute(
        select(assignments.c.conversation_id, assignments.c.user_id)
        .where(assignments.c.conversation_id.in_(ids))
        .order_by(assignments.c.started_at)
    ).all()
    names = users.names(conn, {row.user_id for row in rows})
    agents_by: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        name = names.get(row.user_id)
        if name is not None and name not in agents_by[row.conversation_id]:
            agents_by[row.conversation_id].append(name)
    return agents_by


def _summaries(conn: Connection, convs: list[dict]) -> list[dict]:
    """Title, message count and agents' names for each conversation (three queries for the page)."""
    ids = [c["id"] for c in convs]
    rows_by: dict[str, list] = defaultdict(list)
    agents_by: dict[str, list[str]] = defaultdict(list)
    if ids:
        for row in chats.messages_of(conn, ids):
            rows_by[row.conversation_id].append(row)
        agents_by = _agents(conn, ids)
    return [
        {
            "id": c["id"],
            "municipality": c["municipality"],
            "language": c["language"],
            "state": c["state"],
            "created_at": c["created_at"],
            "updated_at": c["updated_at"],
            "reason": c["handoff_reason"],
            "outcome": c["outcome"],
            "csat_score": c["csat_score"],
            "title": title_of(rows_by[c["id"]]),
            "messages": sum(1 for r in rows_by[c["id"]] if r.sender != "note"),
            "agents": agents_by[c["id"]],
            "agent": ", ".join(agents_by[c["id"]]) or None,
        }
        for c in convs
    ]


def search(
    engine: Engine,
    user: dict,
    q: str = "",
    contact: str = "",
    municipality: str = "",
    state: str = "",
    language: str = "",
    date_from: str = "",
    date_to: str = "",
    limit: int = 50,
    offset: int = 0,
) -> dict:
    wanted = _search(user, q.strip(), contact.strip(), municipality, state, language, date_from, date_to)
    with engine.connect() as conn:
        total, convs = chats.search(conn, wanted, limit, offset)
        return {"total": total, "items": _summaries(conn, convs)}


def related_ids(conn, conversation_id: str) -> list[str]:
    """The same citizen's other chats: those whose call-back ticket left the same contact."""
    contacts = select(tickets.c.contact).where(tickets.c.conversation_id == conversation_id)
    rows = conn.execute(
        select(tickets.c.conversation_id).where(
            tickets.c.contact.in_(contacts), tickets.c.conversation_id != conversation_id
        )
    )
    return list(dict.fromkeys(r.conversation_id for r in rows if r.conversation_id))


def detail(engine: Engine, user: dict, conversation_id: str) -> dict:
    with engine.connect() as conn:
        row = ConversationStore.find_in(conn, conversation_id)
        scope = MunicipalityScope.of(user)
        if not row or not scope.allows(row["municipality"]):
            raise HTTPException(404, f"no conversation '{conversation_id}'")
        conv = _summaries(conn, [row])[0]
        conv["csat_comment"] = row["csat_comment"]
        related = chats.by_ids(conn, related_ids(conn, conversation_id), newest_first=True)
        related = _summaries(conn, scope.filter(related))
    stored = ConversationStore(engine).messages(conversation_id, include_notes=True)
    access_log.record(engine, user, conversation_id, row["municipality"], "view", "history")
    return {"conversation": conv, "messages": [m.public() for m in stored], "related": related}


class HistoryPage(BaseModel):
    total: int = Field(description="conversations matching the search, on every page")
    items: list[dict[str, Any]] = Field(description="this page's conversations, newest first, with a title")


class HistoryDetail(BaseModel):
    conversation: dict[str, Any]
    messages: list[dict[str, Any]] = Field(description="the whole transcript, notes included")
    related: list[dict[str, Any]] = Field(description="the same citizen's other chats")


@router.get("/history", response_model=HistoryPage)
async def history(
    engine: DbEngine,
    user: Annotated[dict, Depends(staff)],
    q: str = "",
    contact: str = "",
    municipality: str = "",
    state: str = "",
    language: str = "",
    date_from: str = "",
    date_to: str = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """Past conversations, newest first; `q` searches every message (and matches a session id's start)."""
    return await run_db(
        engine, search, engine, user, q, contact, municipality, state, language, date_from, date_to, limit, offset
    )


@router.get("/history/{conversation_id}", response_model=HistoryDetail)
async def history_detail(engine: DbEngine, conversation_id: str, user: Annotated[dict, Depends(staff)]) -> dict:
    """One conversation: facts, the whole transcript (notes included), and the citizen's other chats."""
    return await run_db(engine, detail, engine, user, conversation_id)

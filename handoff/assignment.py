"""Who has which conversation: automatic assignment, claiming, transfer, release, and their history.

Every change of a conversation is a conditional UPDATE (`WHERE state = ... AND assigned_to = ...`) done by
its owner, `ConversationStore.change_in`, inside the transaction that also writes the `assignments` rows,
so two service processes can never both take the same conversation; the `assignments` rows are the
history the reports are computed from.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)

from conversations import queries as chats
from conversations.store import Conflict, ConversationStore
from core import users
from core.db import metadata
from core.deps import MunicipalityScope
from core.metrics import QUEUE_WAIT_SECONDS

__all__ = ["OUTCOMES", "Assignments", "Conflict", "Taken", "assignments"]
from handoff.presence import online_user_ids

assignments = Table(
    "assignments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # auto | claim | transfer
    Column("queued_at", Float),  # the conversation's queued_at when it was taken (waiting-time reports)
    Column("wait_seconds", Float),  # set when the citizen waited in the queue for this assignment
    Column("started_at", Float, nullable=False),
    Column("first_response_at", Float),
    Column("ended_at", Float),
    Column("end_reason", String(16)),  # closed | handback | transfer | dropped | requeued
    Index("ix_assignments_conversation", "conversation_id", "started_at"),
    Index("ix_assignments_started", "started_at"),
)

STAFF_ROLES = ("agent", "admin")
OUTCOMES = ("resolved", "referred", "callback", "unresolved", "abandoned", "spam")
_PG_LOCK_KEY = 0x6B636861  # "kcha": one assignment pass at a time across processes
# A chat just queued is left alone this long: the bot's turn that queued it (its "you are number N in the
# queue") is stored first, so the citizen never reads "X has joined" before their place in the queue.
QUEUE_SETTLE_SECONDS = 1.0


_FIRST_RESPONSE = (
    update(assignments)
    .where(
        assignments.c.conversation_id == bindparam("cid"),
        assignments.c.user_id == bindparam("uid"),
        assignments.c.ended_at.is_(None),
        assignments.c.first_response_at.is_(None),
    )
    .values(first_response_at=bindparam("at"))
)


@dataclass
class Taken:
    conversation_id: str
    user_id: int
    display_name: str
    previous_user_id: int | None = None


class Assignments:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._local = threading.Lock()
        self._answered: set[tuple] = set()  # (conversation, agent, assigned_at) whose first reply is recorded

    # --- automatic assignment ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self):
        """One pass at a time: a thread lock in this process, and an advisory lock on PostgreSQL."""
        with self._local:
            if self.engine.dialect.name != "postgresql":
                yield
                return
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                    conn.commit()

    def load(self) -> dict[int, int]:
        """Open chats per agent."""
        with self.engine.connect() as conn:
            return chats.load_per_agent(conn)

    def auto_assign(self, settle_seconds: float = QUEUE_SETTLE_SECONDS) -> list[Taken]:
        """Longest-waiting first, each to an available, connected agent with spare capacity, preferring one
        who speaks the citizen's language and serves the municipality; ties go to the least busy."""
        with self._exclusive():
            with self.engine.connect() as conn:
                waiting = chats.queued(conn, settled_before=time.time() - settle_seconds)
            if not waiting:
                return []
            agents = self._available_agents()
            if not agents:
                return []
            load = self.load()
            with self.engine.connect() as conn:  # an agent who put a chat back in the queue does not get it again
                passed = {
                    (r.conversation_id, r.user_id)
                    for r in conn.execute(
                        select(assignments.c.conversation_id, assignments.c.user_id).where(
                            assignments.c.end_reason == "requeued", assignments.c.ended_at > time.time() - 600
                        )
                    )
                }
            taken: list[Taken] = []
            for conv in waiting:
                free = [a for a in agents if load.get(a["id"], 0) < a["max_chats"] and (conv.id, a["id"]) not in passed
                        and MunicipalityScope.of(a).allows(conv.municipality)]
                if not free:
                    continue  # nobody of this municipality is free: the others' citizens still get theirs

                def score(agent: dict, conv=conv) -> tuple:
                    return (
                        conv.language in (agent["languages"] or []),
                        conv.municipality in (agent["municipalities"] or []),
                        -load.get(agent["id"], 0) / max(1, agent["max_chats"]),
                        -agent["id"],
                    )

                agent = max(free, key=score)
                result = self._take(conv.id, agent, "auto", from_states=("queued",))
                if result:
                    load[agent["id"]] = load.get(agent["id"], 0) + 1
                    taken.append(result)
            return taken

    def _available_agents(self) -> list[dict]:
        """Staff who are connected, active and available (their public fields)."""
        online = online_user_ids(self.engine)
        if not online:
            return []
        with self.engine.connect() as conn:
            return users.available(conn, online, roles=STAFF_ROLES, active_only=True)

    def rebalance(self) -> list[Taken]:
        """A chat the pass gave to an agent without the citizen's language, and which that agent has not
        answered yet, moves to an available agent who has the language as soon as one has room (say, has
        just come online). A chat an agent claimed or was given by hand stays where it is.

        Once one join over three owners' tables, now three questions on one connection: conversations
        answers for the chats among this package's unanswered automatic assignments (a subquery of ids,
        so still one statement), core.users for their holders' languages (a handful of agents)."""
        with self._exclusive():
            agents = self._available_agents()
            if not agents:
                return []
            unanswered = select(assignments.c.conversation_id).where(
                assignments.c.ended_at.is_(None),
                assignments.c.first_response_at.is_(None),
                assignments.c.kind.in_(("auto", "rebalance")),
            )
            with self.engine.connect() as conn:
                held = chats.held_among(conn, unanswered)
                holders = users.by_ids(conn, {chat.assigned_to for chat in held})
            load = self.load()
            moved: list[Taken] = []
            for chat in held:
                holder = holders.get(chat.assigned_to)
                if holder is None or chat.language in (holder["languages"] or []):
                    continue
                speakers = [
                    a
                    for a in agents
                    if chat.language in (a["languages"] or [])
                    and MunicipalityScope.of(a).allows(chat.municipality)
                    and a["id"] != chat.assigned_to
                    and load.get(a["id"], 0) < a["max_chats"]
                ]
                if not speakers:
                    continue
                agent = min(speakers, key=lambda a: (load.get(a["id"], 0) / max(1, a["max_chats"]), a["id"]))
                result = self._take(chat.id, agent, "rebalance", from_states=("agent",), from_user_id=chat.assigned_to)
                if result:
                    load[agent["id"]] = load.get(agent["id"], 0) + 1
                    load[chat.assigned_to] = load.get(chat.assigned_to, 1) - 1
                    moved.append(result)
            return moved

    # --- by hand ------------------------------------------------------------------------------------

    def claim(self, conversation_id: str, user: dict) -> Taken:
        result = self._take(conversation_id, user, "claim", from_states=("queued",))
        if not result:
            raise Conflict("the conversation is no longer waiting in the queue")
        return result

    def transfer(self, conversation_id: str, from_user: dict, to_user: dict) -> Taken:
        if to_user.get("role") not in STAFF_ROLES:
            raise Conflict("a conversation can only be transferred to an agent")
        with self.engine.connect() as conn:
            municipality = chats.municipality_of(conn, conversation_id)
        if municipality is not None and not MunicipalityScope.of(to_user).allows(municipality):
            raise Conflict(f"{to_user.get('display_name') or to_user.get('username')} does not work for the "
                           f"municipality '{municipality}'")
        result = self._take(
            conversation_id,
            to_user,
            "transfer",
            from_states=("agent",),
            from_user_id=None if from_user["role"] == "admin" else from_user["id"],
        )
        if not result:
            raise Conflict("the conversation is not yours to transfer")
        return result

    def _take(
        self, conversation_id: str, user: dict, kind: str, from_states: tuple[str, ...], from_user_id: int | None = None
    ) -> Taken | None:
        """Give the chat to `user` if it is in one of `from_states` (and held by `from_user_id`, if given):
        the conversation changes through `ConversationStore.change_in` (a conditional UPDATE, so two
        processes never both take it) in the same transaction as the assignment rows."""
        now = time.time()
        with self.engine.begin() as conn:
            conv = ConversationStore.find_in(conn, conversation_id)
            if not conv or conv["state"] not in from_states:
                return None
            if not MunicipalityScope.of(user).allows(conv["municipality"]):
                return None  # an agent only ever gets chats of the municipalities they work for
            if from_user_id is not None and conv["assigned_to"] != from_user_id:
                return None
            if not ConversationStore.change_in(
                conn, conv, state="agent", assigned_to=user["id"], assigned_at=now, updated_at=now
            ):
                return None
            if conv["assigned_to"] is not None:
                self._end(conn, conversation_id, "transfer", now)
            waited = None
            if conv["state"] == "queued" and conv["queued_at"]:
                earlier = conn.execute(
                    select(func.count())
                    .select_from(assignments)
                    .where(assignments.c.conversation_id == conversation_id,
                           assignments.c.started_at >= conv["queued_at"])
                ).scalar()
                waited = None if earlier else now - conv["queued_at"]
            conn.execute(
                insert(assignments).values(
                    conversation_id=conversation_id,
                    user_id=user["id"],
                    kind=kind,
                    queued_at=conv["queued_at"],
                    wait_seconds=waited,
                    started_at=now,
                )
            )
        if waited is not None:
            QUEUE_WAIT_SECONDS.observe(waited)
        return Taken(conversation_id, user["id"], user.get("display_name") or user["username"], conv["assigned_to"])

    # --- letting go ---------------------------------------------------------------------------------

    def release(self, conversation_id: str, state: str, reason: str, user_id: int | None = None, **values) -> dict:
        """End the current assignment and move the conversation to `state` (queued, bot or closed).

        `user_id`: only if that agent has it (None: whoever has it, e.g. an admin or the grace sweep).
        Returns the conversation as it was. The change is conditional (`ConversationStore.change_in`): if
        another process moved the chat meanwhile (state or holder), nothing changes and this is a Conflict.
        """
        now = time.time()
        with self.engine.begin() as conn:
            conv = ConversationStore.find_in(conn, conversation_id)
            if not conv or conv["state"] not in ("agent", "queued"):
                raise Conflict("the conversation is not with a person")
            if user_id is not None and conv["assigned_to"] != user_id:
                raise Conflict("the conversation is not yours")
            changes = {"state": state, "assigned_to": None, "updated_at": now, **values}
            if state == "closed":
                changes["closed_at"] = now
            if not ConversationStore.change_in(conn, conv, **changes):
                raise Conflict("the conversation changed meanwhile")
            self._end(conn, conversation_id, reason, now)
            return conv

    def requeue_agents(self, user_ids: set[int]) -> list[dict]:
        """The grace period is over for these agents: their chats go back to the front of the queue.

        They keep their original `queued_at`, which is older than that of anyone who came later.
        """
        if not user_ids:
            return []
        with self.engine.connect() as conn:
            convs = chats.held_by(conn, user_ids)
        moved = []
        for conv in convs:
            with contextlib.suppress(Conflict):
                self.release(
                    conv["id"],
                    "queued",
                    "dropped",
                    user_id=conv["assigned_to"],
                    queued_at=conv["queued_at"] or time.time(),
                )
                moved.append(conv)
        return moved

    def agents_with_chats(self) -> set[int]:
        with self.engine.connect() as conn:
            return chats.holders(conn)

    def first_response_in(self, conn: Connection, conv: dict, user_id: int, at: float) -> dict | None:
        """Inside the reply's own transaction: the assignment's first reply (once per assignment, remembered
        in this process so later replies cost nothing); returns the conversation's change, if any."""
        key = (conv["id"], user_id, conv["assigned_at"])
        if key not in self._answered:
            conn.execute(_FIRST_RESPONSE, {"cid": conv["id"], "uid": user_id, "at": at})
        return {"first_response_at": at} if conv["first_response_at"] is None else None

    def answered(self, conv: dict, user_id: int) -> None:
        """The reply that recorded the first response is committed: skip the update from now on."""
        if len(self._answered) > 50_000:
            self._answered.clear()
        self._answered.add((conv["id"], user_id, conv["assigned_at"]))

    @staticmethod
    def _end(conn, conversation_id: str, reason: str, now: float) -> None:
        conn.execute(
            update(assignments)
            .where(assignments.c.conversation_id == conversation_id, assignments.c.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
        )

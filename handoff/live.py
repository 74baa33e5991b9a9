"""The live side of the contact centre in one service process: agent consoles, assignment, grace periods.

Every process runs one `Live`. It hears the `agents` topic (from all processes when Redis is used),
runs the assignment pass, requeues the chats of agents gone for longer than the grace period, and
pushes the queue to its own consoles and the queue position to every waiting citizen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid

from conversations import queries as chats
from core.db import run_db
from handoff import presence, tickets
from handoff.questions import last_question

log = logging.getLogger(__name__)
SWEEP_SECONDS = 2.0


class Live:
    def __init__(self, components):
        self.c = components
        self.process = uuid.uuid4().hex
        self.connections: dict[str, object] = {}  # connection id -> handoff.console.AgentConnection
        self.queue_watchers: set[asyncio.Queue] = set()  # hear {"type": "queue"} when the consoles get a new queue
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._queue_items: list[dict] = []
        self._queue_sig: tuple | None = None
        self._positions: dict[str, tuple[int, int]] = {}
        self._suggest_lock = threading.Lock()  # one retrieval at a time: the model is the heavy part
        self._suggestions: dict[tuple[str, int], dict] = {}

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._loop())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def db(self, fn, *args):
        """Database work on the engine's threads (one writer on SQLite), never on the event loop."""
        return await run_db(self.c.engine, fn, *args)

    def wake(self) -> None:
        self._wake.set()

    def of_user(self, user_id: int | None) -> list:
        return [conn for conn in self.connections.values() if conn.user["id"] == user_id]

    # --- events from every process -------------------------------------------------------------------

    async def _watch(self) -> None:
        async with self.c.events.subscribe("agents") as events:
            while True:
                event = await events.get()
                try:
                    await self._on_event(event)
                except Exception:  # noqa: BLE001 - one bad event must not stop the consoles
                    log.exception("agent event %s failed", event)
                self.wake()

    async def _on_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "assigned":
            for conn in self.of_user(event.get("previous_user_id")):
                await conn.drop_chat(event["conversation_id"], "transferred")
            for conn in self.of_user(event["user_id"]):
                await conn.open_chat(event["conversation_id"], new=True)
        elif kind == "released":
            for conn in self.of_user(event.get("user_id")):
                await conn.drop_chat(event["conversation_id"], event.get("kind", "released"))
        elif kind == "ticket":
            items = await self.db(self.open_tickets)
            for conn in list(self.connections.values()):
                conn.send({"type": "tickets", "items": conn.visible_tickets(items), "new": event.get("id")})
        elif kind in ("status", "agent_connected") and self.connections:
            items = await self.db(self.agent_list)  # once for all consoles
            for conn in list(self.connections.values()):
                conn.send({"type": "agents", "items": conn.visible_agents(items)})

    # --- the periodic pass -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        last_beat = last_sweep = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            self._wake.clear()
            await asyncio.sleep(0.02)  # let a burst of events settle into one pass
            now = time.time()
            try:
                if now - last_beat >= presence.HEARTBEAT_SECONDS:
                    last_beat = now
                    await self._heartbeat()
                if now - last_sweep >= SWEEP_SECONDS:
                    last_sweep = now
                    await self._sweep()
                for taken in await self.db(self.c.agents.assignments.auto_assign):
                    await self.c.agents.announce_taken(taken)
                for taken in await self.db(self.c.agents.assignments.rebalance):  # a speaker of the language came
                    await self.c.agents.announce_taken(taken)
                await self._broadcast_queue()
            except Exception:  # noqa: BLE001 - a database hiccup: try again on the next pass
                log.exception("handoff pass failed")

    async def _heartbeat(self) -> None:
        conns = list(self.connections.values())
        await self.db(presence.heartbeat, self.c.engine, [conn.id for conn in conns])
        for conn in conns:  # sessions expire even while the console stays open
            if not await self.db(self.c.users.by_token, conn.token):
                await conn.expire()

    async def _sweep(self) -> None:
        """Agents gone for longer than the grace period lose their chats to the front of the queue."""
        holders = await self.db(self.c.agents.assignments.agents_with_chats)
        gone = await self.db(presence.gone_user_ids, self.c.engine, holders)
        if not gone:
            return
        moved = await self.db(self.c.agents.assignments.requeue_agents, gone)
        for conv in moved:
            log.info(
                "agent %s did not come back: conversation %s returns to the queue", conv["assigned_to"], conv["id"]
            )
            await self.c.agents.released(conv["id"], conv["assigned_to"], "dropped")

    async def _broadcast_queue(self) -> None:
        waiting = await self.db(self.c.queue.waiting)
        sig = tuple((conv["id"], conv["queued_at"]) for conv in waiting)
        if sig != self._queue_sig:
            self._queue_sig = sig
            self._queue_items = await self.db(self.queue_items, waiting)
            for conn in list(self.connections.values()):
                conn.send_queue(self._queue_items)
            for watcher in list(self.queue_watchers):  # the supervisor pages (insights/supervisor.py)
                watcher.put_nowait({"type": "queue"})
        positions = await self.db(self.c.queue.positions, waiting) if waiting else {}
        for conversation_id, pos in positions.items():
            key = (pos["position"], pos["estimated_wait_seconds"])
            if self._positions.get(conversation_id) != key:
                await self.c.events.publish(f"conversation:{conversation_id}", {"type": "state", **pos})
        self._positions = {k: (v["position"], v["estimated_wait_seconds"]) for k, v in positions.items()}

    # --- what consoles show ----------------------------------------------------------------------------

    @property
    def queue_snapshot(self) -> list[dict]:
        return self._queue_items

    def queue_items(self, waiting: list[dict]) -> list[dict]:
        """The queue as consoles show it, with the citizen's last words as a preview."""
        previews: dict[str, str] = {}
        ids = [conv["id"] for conv in waiting]
        if ids:
            with self.c.engine.connect() as conn:
                previews = {cid: text[:160] for cid, text in chats.last_citizen_words(conn, ids).items()}
        return [
            {
                "id": conv["id"],
                "municipality": conv["municipality"],
                "language": conv["language"],
                "reason": conv["handoff_reason"],
                "topic": conv["topic"],
                "queued_at": conv["queued_at"],
                "position": index,
                "preview": previews.get(conv["id"], ""),
            }
            for index, conv in enumerate(waiting, start=1)
        ]

    def open_tickets(self) -> list[dict]:
        return tickets.in_status(self.c.engine, "open")

    def agent_list(self) -> list[dict]:
        online = presence.online_user_ids(self.c.engine)
        load = self.c.agents.assignments.load()
        return [
            {
                **{
                    k: u[k]
                    for k in (
                        "id",
                        "display_name",
                        "username",
                        "languages",
                        "municipalities",
                        "status",
                        "max_chats",
                        "role",
                    )
                },
                "online": u["id"] in online,
                "chats": load.get(u["id"], 0),
            }
            for u in self.c.users.list()
            if u["role"] in ("agent", "admin")
        ]

    def _topic(self, result: dict, municipality: str) -> str | None:
        if result.get("decision") != "answer" or not result.get("answers"):
            return None
        entry = self.c.knowledge.store.get(municipality, result["answers"][0]["id"])
        return entry.tags[0] if entry and entry.tags else None

    def suggestions(self, conversation_id: str, language: str, municipality: str) -> dict:
        """Knowledge-base answers for the citizen's last question (cached per message): not for a button's
        payload nor a turn the dialogue answered by itself ("I want a person"; handoff/questions.py). The
        topic is the first tag of the entry that answers it, so the console's topic follows the chat."""
        message = last_question(self.c.conversations.messages(conversation_id))
        if message is None:
            return {"conversation_id": conversation_id, "message_id": None, "answers": []}
        key = (conversation_id, message.id)
        if key not in self._suggestions:
            with self._suggest_lock:
                result = self.c.knowledge.answer(message.text, municipality=municipality, prior=language, top_k=3)
            if len(self._suggestions) > 2000:
                self._suggestions.clear()
            self._suggestions[key] = {
                "conversation_id": conversation_id,
                "message_id": message.id,
                "query": message.text,
                "decision": result.get("decision"),
                "language": result.get("language"),
                "notice": result.get("notice"),
                "answers": result.get("answers", [])[:3],
                "topic": self._topic(result, municipality),
            }
        return self._suggestions[key]

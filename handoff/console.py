"""The agent console's WebSocket: one per open console tab, live in both directions.

Server → console: hello, queue, chat (a conversation with its whole transcript, notes included),
message, typing, state, chat_closed, suggestions, tickets, agents, ack, error.
Console → server: send, note, typing, claim, transfer, handback, close, status, suggest, peek.
Every reply is stored before it is acknowledged (`ack` carries the stored message); a resend with
the same `ref` is not stored twice. An `error` frame has the REST errors' words: `detail` in English
(stable), `message` in the agent's language (the console's staff language, `?lang=`, else the socket's
Accept-Language; core/error_texts.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from conversations.store import UnknownConversation
from core.db import run_db
from core.deps import DbEngine, MunicipalityScope, Users, session_token
from core.error_texts import FALLBACK, localised, preferred_language
from core.errors import ApiError, NotLoggedIn
from handoff import presence
from handoff.assignment import OUTCOMES, Conflict
from handoff.deps import LiveDep
from handoff.service import STATUSES

log = logging.getLogger(__name__)
router = APIRouter()


def socket_language(websocket: WebSocket) -> str:
    """The agent's language for error texts: the console's staff language (`?lang=`, as the browser cannot
    set headers on a WebSocket), else the handshake's Accept-Language, else English."""
    return (
        preferred_language(websocket.query_params.get("lang"))
        or preferred_language(websocket.headers.get("accept-language"))
        or FALLBACK
    )


def error_frame(exc: Exception, language: str) -> dict:
    """An error frame's words, as a REST error's: the English `detail` and the `message` in `language`."""
    if isinstance(exc, UnknownConversation):
        status, detail, problems = 404, f"no conversation '{exc.args[0]}'", []
    elif isinstance(exc, ApiError):
        status, detail, problems = exc.status, exc.detail, exc.errors
    else:
        status, detail, problems = (409 if isinstance(exc, Conflict) else 400), str(exc), []
    return {"detail": detail, "message": localised(status, detail, problems, language, from_fields=False)}


class AgentConnection:
    def __init__(self, live, websocket: WebSocket, user: dict, token: str):
        self.live = live
        self.c = live.c
        self.ws = websocket
        self.user = user
        self.token = token
        self.language = socket_language(websocket)
        self.id = uuid.uuid4().hex
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.chats: dict[str, tuple[contextlib.AbstractAsyncContextManager, asyncio.Task]] = {}
        self._closing = False

    def send(self, event: dict) -> None:
        self.outbox.put_nowait(event)

    def send_queue(self, items: list[dict]) -> None:
        """The queue of the municipalities this agent works for (the live loop has everyone's)."""
        self.send({"type": "queue", "now": time.time(), "items": MunicipalityScope.of(self.user).filter(items)})

    def visible_tickets(self, items: list[dict]) -> list[dict]:
        return MunicipalityScope.of(self.user).filter(items)

    def visible_agents(self, items: list[dict]) -> list[dict]:
        """Colleagues: agents who share a municipality with this user (a global admin sees all)."""
        scope = MunicipalityScope.of(self.user)
        return [a for a in items if a["id"] == self.user["id"] or scope.shares(a)]

    async def expire(self) -> None:
        self.send({"type": "error", **error_frame(NotLoggedIn("the session has expired: log in again"), self.language)})
        self._closing = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=4401)

    # --- conversations this console follows ---------------------------------------------------------

    async def open_chat(self, conversation_id: str, new: bool = False) -> None:
        if conversation_id in self.chats:
            return
        context = self.c.events.subscribe(f"conversation:{conversation_id}", f"staff:{conversation_id}")
        events = await context.__aenter__()
        view = await self.c.agents.view(conversation_id, self.user, via="console")  # scope checked, access logged
        view["language_warning"] = view["language"] not in (self.user.get("languages") or [])
        seen = {m["id"] for m in view["messages"]}
        self.send({"type": "chat", "new": new, "now": time.time(), "conversation": view})
        task = asyncio.create_task(self._pump(conversation_id, events, seen))
        self.chats[conversation_id] = (context, task)

    async def drop_chat(self, conversation_id: str, reason: str) -> None:
        entry = self.chats.pop(conversation_id, None)
        if not entry:
            return
        context, task = entry
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await context.__aexit__(None, None, None)
        self.send({"type": "chat_closed", "conversation_id": conversation_id, "reason": reason})

    async def _pump(self, conversation_id: str, events: asyncio.Queue, seen: set[int]) -> None:
        while True:
            event = await events.get()
            if event.get("type") == "message":
                if event["id"] in seen:
                    continue
                seen.add(event["id"])
            elif event.get("type") == "typing" and event.get("sender") == "agent":
                continue
            self.send({**event, "conversation_id": conversation_id})

    # --- the socket ---------------------------------------------------------------------------------

    async def run(self) -> None:
        c = self.c
        await run_db(c.engine, presence.opened, c.engine, self.id, self.user["id"], self.live.process)
        self.live.connections[self.id] = self
        writer = asyncio.create_task(self._write())
        try:
            if self.user["status"] == "offline":  # opening the console means being at work
                self.user = await run_db(c.engine, c.users.update, self.user["id"], status="available")
            await c.events.publish("agents", {"type": "agent_connected", "user_id": self.user["id"]})
            self.send(
                {
                    "type": "hello",
                    "now": time.time(),
                    "user": self.user,
                    "outcomes": list(OUTCOMES),
                    "statuses": list(STATUSES),
                    "tickets": self.visible_tickets(await run_db(c.engine, self.live.open_tickets)),
                    "agents": self.visible_agents(await run_db(c.engine, self.live.agent_list)),
                }
            )
            self.send_queue(
                self.live.queue_snapshot or await run_db(c.engine, lambda: self.live.queue_items(c.queue.waiting()))
            )
            for conv in await run_db(c.engine, c.conversations.in_state, "agent"):
                if conv["assigned_to"] == self.user["id"]:
                    await self.open_chat(conv["id"])
            while True:
                frame = await self.ws.receive_json()
                if isinstance(frame, dict):
                    await self._handle(frame)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.live.connections.pop(self.id, None)
            for conversation_id in list(self.chats):
                context, task = self.chats.pop(conversation_id)
                task.cancel()
                await context.__aexit__(None, None, None)
            writer.cancel()
            with contextlib.suppress(Exception):
                await run_db(c.engine, presence.closed, c.engine, self.id)
                await c.events.publish("agents", {"type": "agent_disconnected", "user_id": self.user["id"]})
            self.live.wake()

    async def _write(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                event = await self.outbox.get()
                await self.ws.send_json(event)

    async def _handle(self, frame: dict) -> None:
        ref = frame.get("ref")
        try:
            result = await self._dispatch(frame.get("type"), frame)
            if ref is not None:
                self.send({"type": "ack", "ref": ref, **(result or {})})
        except (Conflict, UnknownConversation, ValueError) as exc:
            self.send({"type": "error", "ref": ref, "action": frame.get("type"), **error_frame(exc, self.language)})
        except Exception:  # as REST's 500: said, logged, and the socket stays (a kept reply is resent on reconnect)
            log.exception("console command %r failed", frame.get("type"))
            failed = ApiError("internal error: the service could not complete the request")
            self.send({"type": "error", "ref": ref, "action": frame.get("type"), **error_frame(failed, self.language)})

    async def _dispatch(self, kind: str | None, frame: dict) -> dict | None:
        command = COMMANDS.get(kind or "")
        if command is None:
            raise ValueError(f"unknown action '{kind}'")
        return await command(self, str(frame.get("conversation_id") or ""), frame)

    # --- the commands: each one line onto handoff.service.AgentService, which REST uses too -------------

    async def _send(self, conversation_id: str, frame: dict, note: bool = False) -> dict:
        client_id = str(ref)[:64] if (ref := frame.get("ref")) is not None else None
        command = self.c.agents.note if note else self.c.agents.reply
        message = await command(conversation_id, self.user, frame.get("text"), client_id=client_id)
        return {"message": message.public(), "conversation_id": conversation_id}

    async def _note(self, conversation_id: str, frame: dict) -> dict:
        return await self._send(conversation_id, frame, note=True)

    async def _typing(self, conversation_id: str, frame: dict) -> None:
        if conversation_id in self.chats:  # only chats this console has opened (their scope was checked)
            await self.c.agents.typing(conversation_id, self.user, frame.get("typing", True) is not False)

    async def _claim(self, conversation_id: str, frame: dict) -> dict:
        await self.c.agents.claim(conversation_id, self.user)
        return {"conversation_id": conversation_id}

    async def _transfer(self, conversation_id: str, frame: dict) -> dict:
        return await self.c.agents.transfer(conversation_id, self.user, frame.get("to_user_id"))

    async def _handback(self, conversation_id: str, frame: dict) -> dict:
        await self.c.agents.give_back(conversation_id, self.user)
        return {"conversation_id": conversation_id}

    async def _close(self, conversation_id: str, frame: dict) -> dict:
        await self.c.agents.close_with(conversation_id, self.user, frame.get("outcome"))
        return {"conversation_id": conversation_id}

    async def _status(self, conversation_id: str, frame: dict) -> dict:
        self.user = await self.c.agents.set_status(self.user, frame.get("status"))
        return {"status": self.user["status"]}

    async def _suggest(self, conversation_id: str, frame: dict) -> None:
        result = await self.c.agents.suggestions(conversation_id, self.user, self.live.suggestions)
        self.send({"type": "suggestions", **result})

    async def _peek(self, conversation_id: str, frame: dict) -> dict:
        return {"conversation": await self.c.agents.view(conversation_id, self.user, via="console")}


# Console frame type -> command (frame fields: conversation_id, text, ref, outcome, to_user_id, status, typing).
COMMANDS = {
    "send": AgentConnection._send,
    "note": AgentConnection._note,
    "typing": AgentConnection._typing,
    "claim": AgentConnection._claim,
    "transfer": AgentConnection._transfer,
    "handback": AgentConnection._handback,
    "close": AgentConnection._close,
    "status": AgentConnection._status,
    "suggest": AgentConnection._suggest,
    "peek": AgentConnection._peek,
}


@router.websocket("/agent/ws")
async def agent_socket(websocket: WebSocket, engine: DbEngine, users: Users, live: LiveDep) -> None:
    """The console's live connection; the staff session comes from the cookie, a bearer header or ?token=."""
    token = session_token(websocket)
    user = await run_db(engine, users.by_token, token) if token else None
    if not user or user["role"] not in ("agent", "admin"):
        await websocket.close(code=4401)
        return
    await websocket.accept()
    await AgentConnection(live, websocket, user, token).run()

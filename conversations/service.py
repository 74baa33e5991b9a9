"""One citizen message through the system: store it, let the bot or a person have it, store replies.

The citizen's side only: what agents do to a conversation is `handoff.service.AgentService`. Where the
conversation stands in the agents' queue comes from a `QueuePosition` (handoff's Queue) given at wiring,
so this package never imports the layer above it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Protocol

from conversations.rasa_client import RasaClient, RasaUnavailable
from conversations.store import Conflict, ConversationStore, Message
from core.db import run_db
from core.events import EventHub
from core.i18n import say
from core.metrics import ERRORS, record_turn
from knowledge.service import KnowledgeService

log = logging.getLogger(__name__)


class QueuePosition(Protocol):
    """Where a conversation stands: {"state", "position", "estimated_wait_seconds"} (handoff's Queue)."""

    def position(self, conversation_id: str) -> dict: ...

    def enqueue(self, conversation_id: str, reason: str, topic: str | None = None) -> dict: ...


# The payload of the "talk to a person" button offered while Rasa is down: the service queues the
# citizen itself, without Rasa (which may still be restarting).
DIRECT_HANDOFF = "/direct_handoff"


class ChatService:
    def __init__(
        self,
        conversations: ConversationStore,
        queue: QueuePosition,
        knowledge: KnowledgeService,
        rasa: RasaClient,
        events: EventHub,
    ):
        self.conversations = conversations
        self.queue = queue
        self.knowledge = knowledge
        self.rasa = rasa
        self.events = events
        self.engine = conversations.engine

    async def db(self, fn, *args, **kwargs):
        """Blocking database work, off the event loop (see core.db.run_db)."""
        return await run_db(self.engine, fn, *args, **kwargs)

    async def publish(self, message: Message) -> None:
        await self.events.publish(f"conversation:{message.conversation_id}", {"type": "message", **message.public()})

    async def publish_state(self, conversation_id: str) -> None:
        position = await self.db(self.queue.position, conversation_id)  # carries the state
        await self.events.publish(f"conversation:{conversation_id}", {"type": "state", **position})
        await self.events.publish("agents", {"type": "conversation", "id": conversation_id,
                                             "state": position["state"]})

    async def citizen_message(self, conversation_id: str, text: str, client_id: str | None = None) -> dict:
        """Returns {"messages": replies, "state"}; replies are the bot's (a person answers later)."""
        started = time.perf_counter()
        reopened = []

        def reopen(_conn, conv: dict, _message: Message) -> dict | None:
            if conv["state"] != "closed":
                return None
            reopened.append(True)  # the citizen writes again after an agent closed the chat
            return {"state": "bot"}

        # One transaction on the database thread: the conversation, the message, and its reopening.
        conv, message, created = await self.db(self.conversations.post, conversation_id, "citizen", text,
                                               client_id=client_id, then=reopen)
        if not created:  # a resend after a dropped connection: answer with what followed it
            replies = [m for m in await self.db(self.conversations.messages, conversation_id, after_id=message.id)
                       if m.sender != "citizen"]
            if replies or conv["state"] != "bot":
                return {"messages": [m.public() for m in replies], "state": conv["state"]}
            # Stored but never answered: the process that had it stopped mid-turn (a replica killed).
            log.info("answering a resent message that was never answered")
            return await self._bot_turn(conv, message, text, time.perf_counter())
        await self.publish(message)
        if reopened:
            with contextlib.suppress(RasaUnavailable):  # if Rasa is down, the send below says so
                await self.rasa.resume(conversation_id)
        if conv["state"] != "bot":  # a person has it: the bot stays silent
            return {"messages": [], "state": conv["state"]}
        return await self._bot_turn(conv, message, text, started)

    async def _bot_turn(self, conv: dict, message: Message, text: str, started: float) -> dict:
        """Rasa's answer to `message`, stored once: each output's client id derives from the message, so
        answering a resend of it again never stores a reply twice."""
        conversation_id = conv["id"]
        if text.startswith("/"):  # a button's payload says nothing about the citizen's language
            language, confidence = conv["language"], 1.0
        else:
            language, confidence = self.knowledge.detect_language(text, prior=conv["language"])
        metadata = {
            "language": language,
            "language_confidence": confidence,
            "session_language": conv["language"],
            "municipality": conv["municipality"],
        }
        rasa_started = time.perf_counter()
        if text.strip() == DIRECT_HANDOFF:
            outputs = await self._direct_handoff(conversation_id, language)
        else:
            outputs = await self._ask_rasa(conversation_id, text, metadata, language)
        rasa_seconds = time.perf_counter() - rasa_started
        replies = []
        for i, out in enumerate(outputs):
            stored = await self.store_bot_output(conversation_id, out, client_id=f"bot:{message.id}:{i}")
            if stored:
                replies.append(stored)
        state = (await self.db(self.conversations.get, conversation_id))["state"]
        if state != "bot":
            await self.publish_state(conversation_id)
        record_turn(time.perf_counter() - started, rasa_seconds)
        return {"messages": [m.public() for m in replies], "state": state}

    async def _ask_rasa(self, conversation_id: str, text: str, metadata: dict, language: str) -> list[dict]:
        try:
            outputs = await self.rasa.send(conversation_id, text, metadata)
            if not outputs:  # Rasa answers nothing when its action server is down
                raise RasaUnavailable("no reply (is the action server running?)")
            return outputs
        except RasaUnavailable as exc:
            ERRORS.labels("rasa_unavailable").inc()
            log.warning("Rasa unavailable: %s", exc)
            return [{  # never silence: an apology and a way to a person that does not need Rasa
                "text": say("dialogue_unavailable", language),
                "buttons": [{"title": say("talk_to_person", language), "payload": DIRECT_HANDOFF}],
            }]

    async def _direct_handoff(self, conversation_id: str, language: str) -> list[dict]:
        """Queue the citizen for a person without Rasa (offered while Rasa or its actions are down)."""
        ERRORS.labels("direct_handoff").inc()
        result = await self.db(self.queue.enqueue, conversation_id, "service_error")
        if not result.get("open"):
            return [{"text": say("direct_handoff_closed", language)}]
        return [{"text": say("direct_handoff_queued", language).format(position=result.get("position") or 1)}]

    async def store_bot_output(self, conversation_id: str, out: dict,
                               client_id: str | None = None) -> Message | None:
        """Store one of Rasa's outputs (text, buttons, custom data) as a bot message (once per client id)."""
        text = out.get("text") or ""
        data = {k: out[k] for k in ("buttons", "custom") if out.get(k)}
        if not text and not data:
            return None
        message, created = await self.db(self.conversations.add_message, conversation_id, "bot", text, data,
                                         client_id)
        if created:
            await self.publish(message)
        return message

    async def citizen_typing(self, conversation_id: str, typing: bool) -> None:
        """Only staff hear it: the staff topic is never forwarded to the citizen."""
        await self.events.publish(f"staff:{conversation_id}", {"type": "typing", "sender": "citizen",
                                                               "typing": bool(typing)})

    async def rate(self, conversation_id: str, score: int, comment: str | None) -> None:
        conv = await self.db(self.conversations.get, conversation_id)
        if conv["closed_at"] is None:
            raise Conflict("a conversation can be rated once a person has closed it")
        await self.db(self.conversations.update, conversation_id, csat_score=score, csat_comment=comment)
        await self.events.publish("agents", {"type": "rated", "conversation_id": conversation_id, "score": score})

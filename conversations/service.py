"""One citizen message through the system: store it, let the bot or a person have it, store replies.

The citizen's side only: what agents do to a conversation is `handoff.service.AgentService`. Where the
conversation stands in the agents' queue comes from a `QueuePosition` (handoff's Queue) given at wiring,
so this package never imports the layer above it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

from conversations.rasa_client import RasaClient, RasaUnavailable
from conversations.store import Conflict, ConversationStore, Message
from core.db import run_db
from core.events import EventHub
from core.i18n import say
from knowledge.service import KnowledgeService

log = logging.getLogger(__name__)


class QueuePosition(Protocol):
    """Where a conversation stands: {"state", "position", "estimated_wait_seconds"} (handoff's Queue)."""

    def position(self, conversation_id: str) -> dict: ...


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
            replies = await self.db(self.conversations.messages, conversation_id, after_id=message.id)
            return {"messages": [m.public() for m in replies if m.sender != "citizen"], "state": conv["state"]}
        await self.publish(message)
        if reopened:
            with contextlib.suppress(RasaUnavailable):  # if Rasa is down, the send below says so
                await self.rasa.resume(conversation_id)
        if conv["state"] != "bot":  # a person has it: the bot stays silent
            return {"messages": [], "state": conv["state"]}

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
        try:
            outputs = await self.rasa.send(conversation_id, text, metadata)
            if not outputs:  # Rasa answers nothing when its action server is down
                raise RasaUnavailable("no reply (is the action server running?)")
        except RasaUnavailable as exc:
            log.warning("Rasa unavailable for %s: %s", conversation_id, exc)
            outputs = [{  # never silence: an apology and a way to a person, in the citizen's language
                "text": say("dialogue_unavailable", language),
                "buttons": [{"title": say("talk_to_person", language), "payload": "/request_human"}],
            }]
        replies = []
        for out in outputs:
            stored = await self.store_bot_output(conversation_id, out)
            if stored:
                replies.append(stored)
        state = (await self.db(self.conversations.get, conversation_id))["state"]
        if state != "bot":
            await self.publish_state(conversation_id)
        return {"messages": [m.public() for m in replies], "state": state}

    async def store_bot_output(self, conversation_id: str, out: dict) -> Message | None:
        """Store one of Rasa's outputs (text, buttons, custom data) as a bot message."""
        text = out.get("text") or ""
        data = {k: out[k] for k in ("buttons", "custom") if out.get(k)}
        if not text and not data:
            return None
        message, _ = await self.db(self.conversations.add_message, conversation_id, "bot", text, data)
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

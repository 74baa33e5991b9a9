"""One citizen message through the system: store it, let the bot or a person have it, store replies."""

from __future__ import annotations

import logging

from handoff.conversations import ConversationStore, Message
from handoff.queue import Queue
from knowledge.service import KnowledgeService
from kommunchatt.events import EventHub
from kommunchatt.rasa_client import RasaClient, RasaUnavailable

log = logging.getLogger(__name__)

# Shown when the dialogue engine cannot be reached: the citizen is never left in silence.
RASA_DOWN = {
    "sv": "Förlåt, chatten har tekniska problem just nu. Vill du prata med en person?",
    "en": "Sorry, the chat has technical problems right now. Would you like to talk to a person?",
    "ar": "عذرًا، تواجه المحادثة مشاكل تقنية الآن. هل تريد التحدث إلى شخص؟",
}


class ChatService:
    def __init__(
        self,
        conversations: ConversationStore,
        queue: Queue,
        knowledge: KnowledgeService,
        rasa: RasaClient,
        events: EventHub,
    ):
        self.conversations = conversations
        self.queue = queue
        self.knowledge = knowledge
        self.rasa = rasa
        self.events = events

    async def publish(self, message: Message) -> None:
        await self.events.publish(f"conversation:{message.conversation_id}", {"type": "message", **message.public()})

    async def publish_state(self, conversation_id: str) -> None:
        conv = self.conversations.get(conversation_id)
        event = {"type": "state", "state": conv["state"], **self.queue.position(conversation_id)}
        await self.events.publish(f"conversation:{conversation_id}", event)
        await self.events.publish("agents", {"type": "conversation", "id": conversation_id, "state": conv["state"]})

    async def citizen_message(self, conversation_id: str, text: str, client_id: str | None = None) -> dict:
        """Returns {"messages": replies, "state"}; replies are the bot's (a person answers later)."""
        conv = self.conversations.get(conversation_id)
        message, created = self.conversations.add_message(conversation_id, "citizen", text, client_id=client_id)
        if not created:  # a resend after a dropped connection: answer with what followed it
            replies = [m for m in self.conversations.messages(conversation_id, after_id=message.id)]
            return {"messages": [m.public() for m in replies if m.sender != "citizen"], "state": conv["state"]}
        await self.publish(message)
        if conv["state"] == "closed":
            self.conversations.update(conversation_id, state="bot")
            conv["state"] = "bot"
        if conv["state"] != "bot":  # a person has it: the bot stays silent
            return {"messages": [], "state": conv["state"]}

        language, confidence = self.knowledge.detect_language(text, prior=conv["language"])
        metadata = {
            "language": language,
            "language_confidence": confidence,
            "session_language": conv["language"],
            "municipality": conv["municipality"],
        }
        try:
            outputs = await self.rasa.send(conversation_id, text, metadata)
        except RasaUnavailable as exc:
            log.warning("Rasa unavailable for %s: %s", conversation_id, exc)
            lang = conv["language"] if conv["language"] in RASA_DOWN else "en"
            outputs = [{"text": RASA_DOWN[lang], "buttons": [{"title": "👤", "payload": "/request_human"}]}]
        replies = []
        for out in outputs:
            stored = await self.store_bot_output(conversation_id, out)
            if stored:
                replies.append(stored)
        state = self.conversations.get(conversation_id)["state"]
        if state != "bot":
            await self.publish_state(conversation_id)
        return {"messages": [m.public() for m in replies], "state": state}

    async def store_bot_output(self, conversation_id: str, out: dict) -> Message | None:
        """Store one of Rasa's outputs (text, buttons, custom data) as a bot message."""
        text = out.get("text") or ""
        data = {k: out[k] for k in ("buttons", "custom") if out.get(k)}
        if not text and not data:
            return None
        message, _ = self.conversations.add_message(conversation_id, "bot", text, data)
        await self.publish(message)
        return message

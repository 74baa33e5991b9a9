"""One citizen message through the system: store it, let the bot or a person have it, store replies."""

from __future__ import annotations

import contextlib
import logging

from handoff.assignment import Assignments, Conflict, Taken
from handoff.conversations import ConversationStore, Message
from handoff.queue import Queue
from knowledge.service import KnowledgeService
from kommunchatt.db import run_db
from kommunchatt.events import EventHub
from kommunchatt.i18n import say
from kommunchatt.rasa_client import RasaClient, RasaUnavailable

log = logging.getLogger(__name__)

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
        self.assignments = Assignments(conversations.engine)
        self.engine = conversations.engine

    async def db(self, fn, *args, **kwargs):
        """Blocking database work, off the event loop (see kommunchatt.db.run_db)."""
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

    # --- the agent side (handoff/) ------------------------------------------------------------------

    async def citizen_typing(self, conversation_id: str, typing: bool) -> None:
        """Only staff hear it: the staff topic is never forwarded to the citizen."""
        await self.events.publish(f"staff:{conversation_id}", {"type": "typing", "sender": "citizen",
                                                               "typing": bool(typing)})

    async def agent_typing(self, conversation_id: str, user: dict, typing: bool) -> None:
        await self.events.publish(f"conversation:{conversation_id}", {"type": "typing", "sender": "agent",
                                                                      "typing": bool(typing)})

    async def agent_message(
        self, conversation_id: str, user: dict, text: str, client_id: str | None = None, note: bool = False
    ) -> Message:
        """Store an agent's reply (or internal note) first, then deliver it. A repeated client_id is a resend."""

        def check(conv: dict) -> None:
            mine = conv["state"] == "agent" and conv["assigned_to"] == user["id"]
            if not note and not mine:
                raise Conflict("only the agent who has the conversation can reply")
            if note and not (mine or user["role"] == "admin" or conv["state"] == "queued"):
                raise Conflict("notes are for a conversation you have or one that waits in the queue")

        def first_response(conn, conv: dict, message: Message) -> dict | None:
            return None if note else self.assignments.first_response_in(conn, conv, user["id"], message.created_at)

        data = {"author": user.get("display_name") or user["username"], "user_id": user["id"]}
        sender = "note" if note else "agent"
        # One transaction on the database thread: check, store, and the first-response times.
        conv, message, created = await self.db(self.conversations.post, conversation_id, sender, text, data,
                                               client_id=client_id, check=check, then=first_response)
        if created:
            if note:
                await self.events.publish(f"staff:{conversation_id}", {"type": "message", **message.public()})
            else:
                self.assignments.answered(conv, user["id"])
                await self.publish(message)
        return message

    async def announce_taken(self, taken: Taken) -> None:
        conv = await self.db(self.conversations.get, taken.conversation_id)
        text = _say(JOINED, conv["language"]).format(name=taken.display_name)
        message, _ = await self.db(
            self.conversations.add_message, taken.conversation_id, "system", text,
            {"custom": {"kind": "agent_joined", "agent": taken.display_name}},
        )
        await self.publish(message)
        await self.publish_state(taken.conversation_id)
        await self.events.publish("agents", {"type": "assigned", "conversation_id": taken.conversation_id,
                                             "user_id": taken.user_id, "previous_user_id": taken.previous_user_id})

    async def released(self, conversation_id: str, user_id: int | None, kind: str) -> None:
        await self.publish_state(conversation_id)
        await self.events.publish("agents", {"type": "released", "conversation_id": conversation_id,
                                             "user_id": user_id, "kind": kind})

    async def hand_back(self, conversation_id: str, user: dict) -> list[Message]:
        """The agent gives the conversation back to the bot; Rasa hears EXTERNAL_handback."""
        before = await self.db(self.assignments.release, conversation_id, "bot", "handback", user_id=_own(user))
        message, _ = await self.db(
            self.conversations.add_message, conversation_id, "system", _say(HANDBACK, before["language"]),
            {"custom": {"kind": "handback"}},
        )
        await self.publish(message)
        await self.released(conversation_id, before["assigned_to"], "handback")
        replies = [message]
        try:
            await self.rasa.resume(conversation_id)  # the handoff paused it
            outputs = await self.rasa.trigger(conversation_id, "EXTERNAL_handback")
        except RasaUnavailable as exc:
            log.warning("Rasa did not take the handback of %s: %s", conversation_id, exc)
            outputs = []
        for out in outputs:
            stored = await self.store_bot_output(conversation_id, out)
            if stored:
                replies.append(stored)
        return replies

    async def close(self, conversation_id: str, user: dict, outcome: str) -> Message:
        """Close with an outcome; the citizen is asked how satisfied they are (1-5 and a comment)."""
        before = await self.db(self.assignments.release, conversation_id, "closed", "closed", user_id=_own(user),
                               outcome=outcome)
        message, _ = await self.db(
            self.conversations.add_message, conversation_id, "system", _say(RATING, before["language"]),
            {"custom": {"kind": "rating_request", "min": 1, "max": 5,
                        "rating_url": f"/api/v1/chat/sessions/{conversation_id}/rating"}},
        )
        await self.publish(message)
        await self.released(conversation_id, before["assigned_to"], "closed")
        return message

    async def rate(self, conversation_id: str, score: int, comment: str | None) -> None:
        conv = await self.db(self.conversations.get, conversation_id)
        if conv["closed_at"] is None:
            raise Conflict("a conversation can be rated once a person has closed it")
        await self.db(self.conversations.update, conversation_id, csat_score=score, csat_comment=comment)
        await self.events.publish("agents", {"type": "rated", "conversation_id": conversation_id, "score": score})


def _own(user: dict) -> int | None:
    """Admins may act on anyone's conversation; agents only on their own."""
    return None if user["role"] == "admin" else user["id"]


def _say(texts: dict[str, str], language: str) -> str:
    return texts.get(language) or texts["en"]


# Fallback texts of the system messages; the widget shows its own translation of `custom.kind`.
JOINED = {"sv": "{name} har anslutit till chatten.", "en": "{name} has joined the chat.",
          "fi": "{name} liittyi keskusteluun.", "ar": "انضم {name} إلى المحادثة."}
HANDBACK = {"sv": "Du chattar nu med chattroboten igen.", "en": "You are now chatting with the chatbot again.",
            "fi": "Keskustelet taas chatbotin kanssa.", "ar": "أنت تتحدث الآن مع روبوت المحادثة مرة أخرى."}
RATING = {"sv": "Chatten är avslutad. Hur nöjd är du med hjälpen, från 1 till 5?",
          "en": "The chat has ended. How satisfied are you with the help, from 1 to 5?",
          "fi": "Keskustelu on päättynyt. Kuinka tyytyväinen olet saamaasi apuun asteikolla 1–5?",
          "ar": "انتهت المحادثة. ما مدى رضاك عن المساعدة من 1 إلى 5؟"}

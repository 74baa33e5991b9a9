"""Every agent command, implemented once: used by the REST API (handoff/api.py) and the console WebSocket
(handoff/console.py) alike.

Each command stores first, then tells the citizen (their conversation topic), the staff (the conversation's
staff topic) and the consoles (the `agents` topic). The citizen's side of a chat is
`conversations.service.ChatService`; this service uses it to publish and to hand back to the bot.
"""

from __future__ import annotations

import logging

from conversations.rasa_client import RasaUnavailable
from conversations.service import ChatService
from conversations.store import Conflict, ConversationStore, Message
from core.db import run_db
from core.events import EventHub
from core.users import UserStore
from handoff.assignment import Assignments, Taken

log = logging.getLogger(__name__)


class AgentService:
    def __init__(self, chat: ChatService, users: UserStore, events: EventHub):
        self.chat = chat
        self.conversations: ConversationStore = chat.conversations
        self.users = users
        self.events = events
        self.engine = chat.engine
        self.assignments = Assignments(self.engine)

    async def db(self, fn, *args, **kwargs):
        """Blocking database work, off the event loop (see core.db.run_db)."""
        return await run_db(self.engine, fn, *args, **kwargs)

    async def claim(self, conversation_id: str, user: dict) -> None:
        """Take a waiting conversation (or, for an admin, anyone's)."""
        taken = await self.db(self.assignments.claim, conversation_id, user)
        await self.announce_taken(taken)

    async def transfer(self, conversation_id: str, user: dict, to_user_id) -> dict:
        """To another agent, or (no agent named) back to the front of the queue."""
        if to_user_id in (None, "", "queue"):
            before = await self.db(self.assignments.release, conversation_id, "queued", "requeued",
                                   user_id=_own(user))
            await self.released(conversation_id, before["assigned_to"], "transferred")
            return {"conversation_id": conversation_id, "to": "queue"}
        target = await self.db(self.users.get, int(to_user_id))
        if not target:
            raise ValueError(f"no agent with id {to_user_id}")
        taken = await self.db(self.assignments.transfer, conversation_id, user, target)
        await self.announce_taken(taken)
        return {"conversation_id": conversation_id, "to": target["id"]}

    async def typing(self, conversation_id: str, user: dict, typing: bool) -> None:
        await self.events.publish(f"conversation:{conversation_id}", {"type": "typing", "sender": "agent",
                                                                      "typing": bool(typing)})

    async def message(
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
                await self.chat.publish(message)
        return message

    async def announce_taken(self, taken: Taken) -> None:
        conv = await self.db(self.conversations.get, taken.conversation_id)
        text = _say(JOINED, conv["language"]).format(name=taken.display_name)
        message, _ = await self.db(
            self.conversations.add_message, taken.conversation_id, "system", text,
            {"custom": {"kind": "agent_joined", "agent": taken.display_name}},
        )
        await self.chat.publish(message)
        await self.chat.publish_state(taken.conversation_id)
        await self.events.publish("agents", {"type": "assigned", "conversation_id": taken.conversation_id,
                                             "user_id": taken.user_id, "previous_user_id": taken.previous_user_id})

    async def released(self, conversation_id: str, user_id: int | None, kind: str) -> None:
        await self.chat.publish_state(conversation_id)
        await self.events.publish("agents", {"type": "released", "conversation_id": conversation_id,
                                             "user_id": user_id, "kind": kind})

    async def hand_back(self, conversation_id: str, user: dict) -> list[Message]:
        """The agent gives the conversation back to the bot; Rasa hears EXTERNAL_handback."""
        before = await self.db(self.assignments.release, conversation_id, "bot", "handback", user_id=_own(user))
        message, _ = await self.db(
            self.conversations.add_message, conversation_id, "system", _say(HANDBACK, before["language"]),
            {"custom": {"kind": "handback"}},
        )
        await self.chat.publish(message)
        await self.released(conversation_id, before["assigned_to"], "handback")
        replies = [message]
        try:
            await self.chat.rasa.resume(conversation_id)  # the handoff paused it
            outputs = await self.chat.rasa.trigger(conversation_id, "EXTERNAL_handback")
        except RasaUnavailable as exc:
            log.warning("Rasa did not take the handback of %s: %s", conversation_id, exc)
            outputs = []
        for out in outputs:
            stored = await self.chat.store_bot_output(conversation_id, out)
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
        await self.chat.publish(message)
        await self.released(conversation_id, before["assigned_to"], "closed")
        return message



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

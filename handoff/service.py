"""Every agent command, implemented once: used by the REST API (handoff/api.py) and the console WebSocket
(handoff/console.py) alike.

Each command first checks the conversation exists (`UnknownConversation`: 404 / an error frame) and lies in
the caller's municipalities (`core.deps.MunicipalityScope`: `Forbidden`, 403), validates its input the same
way for both doors (`core.errors.Invalid` / `TooLarge`), stores, then tells the citizen (their conversation
topic), the staff (the conversation's staff topic) and the consoles (the `agents` topic). The citizen's side
of a chat is `conversations.service.ChatService`; this service uses it to publish and to hand back to the bot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from conversations.rasa_client import RasaUnavailable
from conversations.service import ChatService
from conversations.store import Conflict, ConversationStore, Message
from core.db import run_db
from core.deps import MunicipalityScope
from core.errors import Invalid, NotFound, TooLarge
from core.events import EventHub
from core.text import clean_message
from core.users import UserStore
from handoff import access_log
from handoff.assignment import OUTCOMES, Assignments, Taken
from knowledge.service import KnowledgeService

STATUSES = ("available", "away", "offline")

log = logging.getLogger(__name__)


def conversation_view(store: ConversationStore, conversation_id: str) -> dict:
    """A conversation as the console shows it: the whole transcript (bot part and notes included)."""
    conv = store.get(conversation_id)
    return {
        "id": conv["id"],
        "municipality": conv["municipality"],
        "language": conv["language"],
        "state": conv["state"],
        "reason": conv["handoff_reason"],
        "topic": conv["topic"],
        "queued_at": conv["queued_at"],
        "assigned_at": conv["assigned_at"],
        "assigned_to": conv["assigned_to"],
        "created_at": conv["created_at"],
        "outcome": conv["outcome"],
        "csat_score": conv["csat_score"],
        "messages": [m.public() for m in store.messages(conversation_id, include_notes=True)],
    }


def in_agent_language(store, suggestions: dict, conv: dict, agent_languages: list[str]) -> dict:
    """For an agent who lacks the citizen's language: each suggested answer also in the first of the agent's
    languages the entry has (`translation`), and `language_warning` set; the agent sends the citizen's."""
    if conv["language"] in agent_languages:
        return {**suggestions, "language_warning": False}
    answers = []
    for answer in suggestions.get("answers", []):
        entry = store.get(conv["municipality"], answer["id"])
        mine = next((lang for lang in agent_languages if entry and lang in entry.answer), None)
        if mine and mine != answer.get("language"):
            answer = {**answer, "translation": {"language": mine, "text": entry.answer[mine]}}
        answers.append(answer)
    return {**suggestions, "answers": answers, "language_warning": True}


class AgentService:
    def __init__(
        self,
        chat: ChatService,
        users: UserStore,
        events: EventHub,
        knowledge: KnowledgeService,
        max_message_chars: int = 2000,
    ):
        self.chat = chat
        self.conversations: ConversationStore = chat.conversations
        self.users = users
        self.events = events
        self.knowledge = knowledge
        self.max_message_chars = max_message_chars
        self.engine = chat.engine
        self.assignments = Assignments(self.engine)

    async def db(self, fn, *args, **kwargs):
        """Blocking database work, off the event loop (see core.db.run_db)."""
        return await run_db(self.engine, fn, *args, **kwargs)

    # --- checks shared by every command ---------------------------------------------------------------

    async def conversation(self, conversation_id: str, user: dict) -> dict:
        """The conversation, if it exists (else UnknownConversation) and is in the user's municipalities
        (else Forbidden)."""
        conv = await self.db(self.conversations.get, conversation_id)
        MunicipalityScope.of(user).check(conv["municipality"])
        return conv

    def clean_text(self, text: str | None) -> str:
        """A reply's or note's text, cleaned; empty or too long is refused."""
        cleaned = clean_message(str(text or ""))
        if not cleaned:
            raise Invalid("the message is empty", [{"field": "text", "message": "the message is empty"}])
        if len(cleaned) > self.max_message_chars:
            raise TooLarge(f"the message is longer than {self.max_message_chars} characters")
        return cleaned

    # --- the commands ---------------------------------------------------------------------------------

    async def view(self, conversation_id: str, user: dict, via: str = "api") -> dict:
        """Peek at or open a conversation: the whole transcript, notes included; the opening is logged
        (handoff/access_log.py: who read which transcript)."""
        conv = await self.conversation(conversation_id, user)
        view = await self.db(conversation_view, self.conversations, conversation_id)
        await self.db(access_log.record, self.engine, user, conversation_id, conv["municipality"], "view", via)
        return view

    async def mine(self, user: dict) -> list[dict]:
        """The conversations the user has now (an admin: everyone's in the admin's municipalities)."""
        convs = MunicipalityScope.of(user).filter(await self.db(self.conversations.in_state, "agent"))
        ids = [conv["id"] for conv in convs if user["role"] == "admin" or conv["assigned_to"] == user["id"]]
        return [await self.view(cid, user) for cid in ids]

    async def claim(self, conversation_id: str, user: dict) -> None:
        """Take a waiting conversation (or, for an admin, anyone's)."""
        await self.conversation(conversation_id, user)
        taken = await self.db(self.assignments.claim, conversation_id, user)
        await self.announce_taken(taken)

    async def reply(self, conversation_id: str, user: dict, text: str | None, client_id: str | None = None) -> Message:
        return await self.message(conversation_id, user, self.clean_text(text), client_id=client_id)

    async def note(self, conversation_id: str, user: dict, text: str | None, client_id: str | None = None) -> Message:
        return await self.message(conversation_id, user, self.clean_text(text), client_id=client_id, note=True)

    async def close_with(self, conversation_id: str, user: dict, outcome: str | None) -> Message:
        """Close with one of OUTCOMES (default resolved)."""
        outcome = outcome or "resolved"
        if outcome not in OUTCOMES:
            raise Invalid(
                f"the outcome must be one of {', '.join(OUTCOMES)}",
                [{"field": "outcome", "message": f"one of {', '.join(OUTCOMES)}"}],
            )
        await self.conversation(conversation_id, user)
        return await self.close(conversation_id, user, outcome)

    async def give_back(self, conversation_id: str, user: dict) -> list[Message]:
        """Hand the conversation back to the bot."""
        await self.conversation(conversation_id, user)
        return await self.hand_back(conversation_id, user)

    async def set_status(self, user: dict, status: str | None) -> dict:
        """available | away | offline; returns the updated user."""
        if status not in STATUSES:
            raise Invalid(
                f"the status must be one of {', '.join(STATUSES)}",
                [{"field": "status", "message": f"one of {', '.join(STATUSES)}"}],
            )
        updated = await self.db(self.users.update, user["id"], status=status)
        await self.events.publish("agents", {"type": "status", "user_id": user["id"], "status": status})
        return updated

    async def suggestions(self, conversation_id: str, user: dict, suggest: Callable[[str, str, str], dict]) -> dict:
        """Knowledge-base answers for the citizen's last question, from `suggest` (this process's cached
        `handoff.live.Live.suggestions`), with a translation into the agent's language when the agent lacks
        the citizen's."""
        conv = await self.conversation(conversation_id, user)
        result = await asyncio.to_thread(suggest, conversation_id, conv["language"], conv["municipality"])
        return await asyncio.to_thread(
            in_agent_language, self.knowledge.store, result, conv, list(user.get("languages") or [])
        )

    async def transfer(self, conversation_id: str, user: dict, to_user_id) -> dict:
        """To another agent, or (no agent named) back to the front of the queue."""
        await self.conversation(conversation_id, user)
        if to_user_id in (None, "", "queue"):
            before = await self.db(self.assignments.release, conversation_id, "queued", "requeued", user_id=_own(user))
            await self.released(conversation_id, before["assigned_to"], "transferred")
            return {"conversation_id": conversation_id, "to": "queue"}
        try:
            target = await self.db(self.users.get, int(to_user_id))
        except (TypeError, ValueError):
            raise Invalid(
                f"'{to_user_id}' is not an agent's id", [{"field": "to_user_id", "message": "an id"}]
            ) from None
        if not target:
            raise NotFound(f"no agent with id {to_user_id}")
        taken = await self.db(self.assignments.transfer, conversation_id, user, target)
        await self.announce_taken(taken)
        return {"conversation_id": conversation_id, "to": target["id"]}

    async def typing(self, conversation_id: str, user: dict, typing: bool) -> None:
        """The agent is typing: only the citizen hears it (the console sends it only for chats it has open)."""
        await self.events.publish(
            f"conversation:{conversation_id}", {"type": "typing", "sender": "agent", "typing": bool(typing)}
        )

    async def message(
        self, conversation_id: str, user: dict, text: str, client_id: str | None = None, note: bool = False
    ) -> Message:
        """Store an agent's reply (or internal note) first, then deliver it. A repeated client_id is a resend."""

        def check(conv: dict) -> None:
            MunicipalityScope.of(user).check(conv["municipality"])
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
        conv, message, created = await self.db(
            self.conversations.post,
            conversation_id,
            sender,
            text,
            data,
            client_id=client_id,
            check=check,
            then=first_response,
        )
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
            self.conversations.add_message,
            taken.conversation_id,
            "system",
            text,
            {"custom": {"kind": "agent_joined", "agent": taken.display_name}},
        )
        await self.chat.publish(message)
        await self.chat.publish_state(taken.conversation_id)
        await self.events.publish(
            "agents",
            {
                "type": "assigned",
                "conversation_id": taken.conversation_id,
                "user_id": taken.user_id,
                "previous_user_id": taken.previous_user_id,
            },
        )

    async def released(self, conversation_id: str, user_id: int | None, kind: str) -> None:
        await self.chat.publish_state(conversation_id)
        await self.events.publish(
            "agents", {"type": "released", "conversation_id": conversation_id, "user_id": user_id, "kind": kind}
        )

    async def hand_back(self, conversation_id: str, user: dict) -> list[Message]:
        """The agent gives the conversation back to the bot; Rasa hears EXTERNAL_handback."""
        before = await self.db(self.assignments.release, conversation_id, "bot", "handback", user_id=_own(user))
        message, _ = await self.db(
            self.conversations.add_message,
            conversation_id,
            "system",
            _say(HANDBACK, before["language"]),
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
        replies += (await self.chat.store_bot_outputs(conversation_id, outputs, None))[0]
        return replies

    async def rating_request(self, conversation_id: str, language: str) -> Message:
        """The citizen's "how satisfied are you, 1 to 5?" after a person closed the chat (or they ended it)."""
        message, _ = await self.db(
            self.conversations.add_message,
            conversation_id,
            "system",
            _say(RATING, language),
            {
                "custom": {
                    "kind": "rating_request",
                    "min": 1,
                    "max": 5,
                    "rating_url": f"/api/v1/chat/sessions/{conversation_id}/rating",
                }
            },
        )
        return message

    async def close(self, conversation_id: str, user: dict, outcome: str) -> Message:
        """Close with an outcome; the citizen is asked how satisfied they are (1-5 and a comment)."""
        before = await self.db(
            self.assignments.release, conversation_id, "closed", "closed", user_id=_own(user), outcome=outcome
        )
        message = await self.rating_request(conversation_id, before["language"])
        await self.chat.publish(message)
        await self.released(conversation_id, before["assigned_to"], "closed")
        return message


def _own(user: dict) -> int | None:
    """Admins may act on anyone's conversation; agents only on their own."""
    return None if user["role"] == "admin" else user["id"]


def _say(texts: dict[str, str], language: str) -> str:
    return texts.get(language) or texts["en"]


# Fallback texts of the system messages; the widget shows its own translation of `custom.kind`.
JOINED = {
    "sv": "{name} har anslutit till chatten.",
    "en": "{name} has joined the chat.",
    "fi": "{name} liittyi keskusteluun.",
    "ar": "انضم {name} إلى المحادثة.",
}
HANDBACK = {
    "sv": "Du chattar nu med chattroboten igen.",
    "en": "You are now chatting with the chatbot again.",
    "fi": "Keskustelet taas chatbotin kanssa.",
    "ar": "أنت تتحدث الآن مع روبوت المحادثة مرة أخرى.",
}
RATING = {
    "sv": "Chatten är avslutad. Hur nöjd är du med hjälpen, från 1 till 5?",
    "en": "The chat has ended. How satisfied are you with the help, from 1 to 5?",
    "fi": "Keskustelu on päättynyt. Kuinka tyytyväinen olet saamaasi apuun asteikolla 1–5?",
    "ar": "انتهت المحادثة. ما مدى رضاك عن المساعدة من 1 إلى 5؟",
}

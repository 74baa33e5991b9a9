"""One citizen message through the system: store it, let the bot or a person have it, store replies.

The citizen's side only: what agents do to a conversation is `handoff.service.AgentService`. Where the
conversation stands in the agents' queue comes from a `QueuePosition` (handoff's Queue) given at wiring,
so this package never imports the layer above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from conversations import direct
from conversations.personal_data import PersonalData
from conversations.rasa_client import RasaClient, RasaUnavailable
from conversations.store import Conflict, ConversationStore, Message
from core.db import run_db
from core.events import EventHub
from core.i18n import say
from core.languages import CODES as CONVERSATION_LANGUAGES
from core.metrics import BOT_TURNS, ERRORS, record_decision, record_turn
from knowledge.service import KnowledgeService

log = logging.getLogger(__name__)


class QueuePosition(Protocol):
    """Where a conversation stands: {"state", "position", "estimated_wait_seconds"} (handoff's Queue)."""

    def position(self, conversation_id: str) -> dict: ...

    def enqueue(self, conversation_id: str, reason: str, topic: str | None = None) -> dict: ...


# The payload of the "talk to a person" button offered while Rasa is down: the service queues the
# citizen itself, without Rasa (which may still be restarting).
DIRECT_HANDOFF = "/direct_handoff"
# How sure the language detection must be before the conversation's language follows the citizen's writing
# (below it, a short "ok" or a name keeps the language the conversation has).
FOLLOW_LANGUAGE_CONFIDENCE = 0.65
# A citizen hears within 3 s that the bot is slow (Rasa restarting, overloaded): the answer follows later.
ANSWER_WITHIN_S = 2.5
# Of which Rasa's NLU may take this much before the service stops waiting for it and leaves the turn to Rasa
# (conversations/direct.py): a hung Rasa still leaves time to say so within ANSWER_WITHIN_S.
PARSE_WITHIN_S = 2.0
# Direct turns waiting for Rasa's NLU below which the answer starts beside it (conversations/direct.py).
SPECULATE_BELOW = 2


def _bot_message(out: dict) -> tuple[str, dict]:
    """One of Rasa's outputs as a bot message's text and data (buttons, custom payload; `direct`, the mark of a
    turn the service took itself, is kept but never shown: conversations/direct.py)."""
    return out.get("text") or "", {k: out[k] for k in ("buttons", "custom", "direct") if out.get(k)}


class ChatService:
    def __init__(
        self,
        conversations: ConversationStore,
        queue: QueuePosition,
        knowledge: KnowledgeService,
        rasa: RasaClient,
        events: EventHub,
        personal: PersonalData | None = None,
    ):
        self.personal = personal  # masks what the citizen types before anyone else sees it
        self.conversations = conversations
        self.queue = queue
        self.knowledge = knowledge
        self.rasa = rasa
        self.events = events
        self.engine = conversations.engine
        self._late: set[asyncio.Task] = set()  # answers Rasa gives after the citizen was told it was slow
        self.texts = direct.BotTexts()  # the domain's texts a direct answer shows
        self._direct_turns = 0  # waiting for Rasa's NLU now

    async def db(self, fn, *args, **kwargs):
        """Blocking database work, off the event loop (see core.db.run_db)."""
        return await run_db(self.engine, fn, *args, **kwargs)

    def citizen_messages(self, conversation_id: str, after_id: int = 0) -> list[dict]:
        """The transcript as the citizen sees it: their own words where everyone else sees masked ones."""
        messages = self.conversations.messages(conversation_id, after_id=after_id)
        originals = self.personal.originals(conversation_id, after_id) if self.personal else {}
        return [{**m.public(), "text": originals.get(m.id, m.text)} for m in messages]

    def as_citizen_sees(self, conversation_id: str, event: dict) -> dict:
        """A message event for the citizen's own socket: their own words (`citizen_messages`)."""
        if not self.personal:
            return event
        original = self.personal.originals(conversation_id, event["id"] - 1).get(event["id"])
        return {**event, "text": original} if original else event

    async def publish(self, message: Message) -> None:
        await self.events.publish(f"conversation:{message.conversation_id}", {"type": "message", **message.public()})

    async def publish_state(self, conversation_id: str) -> None:
        position = await self.db(self.queue.position, conversation_id)  # carries the state
        await self.events.publish(f"conversation:{conversation_id}", {"type": "state", **position})
        await self.events.publish("agents", {"type": "conversation", "id": conversation_id, "state": position["state"]})

    async def citizen_message(self, conversation_id: str, text: str, client_id: str | None = None) -> dict:
        """Returns {"messages": replies, "state"}; replies are the bot's (a person answers later)."""
        started = time.perf_counter()
        reopened = []
        # Staff, reports, logs and Rasa see the masked text; the citizen's own is kept while the chat is live.
        original, text = text, (self.personal.mask(text) if self.personal else text)

        def reopen(conn, conv: dict, message: Message) -> dict | None:
            if text != original:
                self.personal.keep(conn, conv["id"], message.id, original, message.created_at)
            if conv["state"] != "closed":
                return None
            reopened.append(True)  # the citizen writes again after an agent closed the chat
            return {"state": "bot"}

        # One transaction on the database thread: the conversation, the message, and its reopening.
        conv, message, created = await self.db(
            self.conversations.post, conversation_id, "citizen", text, client_id=client_id, then=reopen
        )
        if not created:  # a resend after a dropped connection: answer with what followed it
            replies = [
                m
                for m in await self.db(self.conversations.messages, conversation_id, after_id=message.id)
                if m.sender != "citizen"
            ]
            if replies or conv["state"] != "bot":
                return {"messages": [m.public() for m in replies], "state": conv["state"]}
            # Stored but never answered: the process that had it stopped mid-turn (a replica killed).
            log.info("answering a resent message that was never answered")
            return await self._bot_turn(conv, message, message.text, time.perf_counter())
        await self.publish(message)
        if reopened:
            with contextlib.suppress(RasaUnavailable):  # if Rasa is down, the send below says so
                await self.rasa.resume(conversation_id)
        if conv["state"] != "bot":  # a person has it: the bot stays silent
            return {"messages": [], "state": conv["state"]}
        return await self._bot_turn(conv, message, text, started)

    async def _follow_language(self, conv: dict, language: str, confidence: float) -> dict:
        """The conversation's language becomes the one the citizen writes in (the widget's choice is only
        the prior): the queue's routing, canned responses and suggestions read it."""
        if (
            language == conv["language"]
            or confidence < FOLLOW_LANGUAGE_CONFIDENCE
            or language not in CONVERSATION_LANGUAGES
        ):
            return conv
        await self.db(self.conversations.update, conv["id"], language=language)
        return {**conv, "language": language}

    async def _bot_turn(self, conv: dict, message: Message, text: str, started: float) -> dict:
        """Rasa's answer to `message`, stored once: each output's client id derives from the message, so
        answering a resend of it again never stores a reply twice."""
        conversation_id = conv["id"]
        if text.startswith("/"):  # a button's payload says nothing about the citizen's language
            language, confidence = conv["language"], 1.0
        else:
            language, confidence = self.knowledge.detect_language(text, prior=conv["language"])
            conv = await self._follow_language(conv, language, confidence)
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
            state = await self._dialogue(conversation_id, message.id)
            metadata.update(state.rasa_metadata())
            outputs = await self._direct_turn(conv, text, language, state, metadata)
            BOT_TURNS.labels("rasa" if outputs is None else "direct").inc()
            if outputs is None:
                if direct.may_ask(text, metadata.get("parse_data")):  # its answer is ready when the action asks
                    self.knowledge.prefetch.start(conversation_id, text, language, conv["municipality"])
                within = max(ANSWER_WITHIN_S - (time.perf_counter() - rasa_started), 0.1)  # the parse's share spent
                outputs = await self._ask_rasa(conversation_id, text, metadata, language, message.id, within)
        rasa_seconds = time.perf_counter() - rasa_started
        replies, state = await self.store_bot_outputs(conversation_id, outputs, f"bot:{message.id}")
        if state != "bot":
            await self.publish_state(conversation_id)
        record_turn(time.perf_counter() - started, rasa_seconds)
        return {"messages": [m.public() for m in replies], "state": state}

    async def _dialogue(self, conversation_id: str, message_id: int) -> direct.Dialogue:
        """Rasa's side of the conversation, read from the latest messages (the last turn's usually tell)."""
        few, more = direct.RECENT
        recent = await self.db(self.conversations.recent, conversation_id, message_id, few)
        state = direct.dialogue(recent, complete=len(recent) < few)
        if state is None:
            state = direct.dialogue(await self.db(self.conversations.recent, conversation_id, message_id, more))
        return state

    async def _direct_turn(
        self, conv: dict, text: str, language: str, state: direct.Dialogue, metadata: dict
    ) -> list[dict] | None:
        """What Rasa would say, when its NLU reads a question the knowledge service answers or clarifies, or small
        talk its rules answer with one response, and the dialogue is at rest (conversations/direct.py); else None, with
        what was learnt on the way left for Rasa's turn."""
        if not direct.may_answer(text, language, state):
            return None
        answer = functools.partial(
            self.knowledge.answer, text, language=language, municipality=conv["municipality"], top_k=direct.TOP_K
        )
        # Quiet: the answer is computed beside the NLU (a citizen waits for the longer of the two, not both);
        # busy: after it, so that small talk costs no answer nobody reads.
        early = asyncio.ensure_future(run_in_threadpool(answer)) if self._direct_turns < SPECULATE_BELOW else None
        if early:  # unread when the NLU says small talk: its error, if any, is nobody's
            early.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._direct_turns += 1
        try:
            parse = await self.rasa.parse(text, timeout=PARSE_WITHIN_S)
        except RasaUnavailable:
            return None  # Rasa's whole turn tells the citizen, as it always has
        finally:
            self._direct_turns -= 1
        metadata["parse_data"] = parse  # Rasa's turn, if it has one, need not parse again
        intent = direct.intent(parse)
        if intent not in direct.QUESTION_INTENTS:
            reply = self.texts.reply(intent, language)
            return direct.marked(reply) if reply else None
        result = await (early or run_in_threadpool(answer))
        record_decision(result)
        entry = direct.answerable(result)
        if entry is not None:
            return direct.answer_outputs(self.texts, entry, result, language)
        candidates = direct.clarifying(result)
        if candidates:
            return direct.clarify_outputs(self.texts, candidates, result, language)
        # no match: Rasa's action (topics, the failure count) asks for this very answer
        self.knowledge.prefetch.keep(conv["id"], text, language, conv["municipality"], result, top_k=direct.TOP_K)
        return None

    async def _ask_rasa(self, conversation_id: str, text: str, metadata: dict, language: str,
                        message_id: int = 0, within: float = ANSWER_WITHIN_S) -> list[dict]:
        """Rasa's outputs; if Rasa has not answered `within` seconds, the citizen is told so at once (with
        a way to a person that needs no Rasa) and Rasa's answer follows over the WebSocket when it comes."""
        asked = asyncio.ensure_future(self.rasa.send(conversation_id, text, metadata))
        try:
            outputs = await asyncio.wait_for(asyncio.shield(asked), within)
        except TimeoutError:
            ERRORS.labels("rasa_slow").inc()
            log.warning("Rasa slower than %.1f s: the citizen is told, its answer follows", ANSWER_WITHIN_S)
            self._late.add(task := asyncio.create_task(self._late_answer(asked, conversation_id, message_id)))
            task.add_done_callback(self._late.discard)
            return [{"text": say("dialogue_slow", language),
                     "buttons": [{"title": say("talk_to_person", language), "payload": DIRECT_HANDOFF}]}]
        except RasaUnavailable:
            outputs = None
        try:
            if outputs is None:
                outputs = await asked  # raises the RasaUnavailable again
            if not outputs:  # Rasa answers nothing when its action server is down
                raise RasaUnavailable("no reply (is the action server running?)")
            return outputs
        except RasaUnavailable as exc:
            ERRORS.labels("rasa_unavailable").inc()
            log.warning("Rasa unavailable: %s", exc)
            return [
                {  # never silence: an apology and a way to a person that does not need Rasa
                    "text": say("dialogue_unavailable", language),
                    "buttons": [{"title": say("talk_to_person", language), "payload": DIRECT_HANDOFF}],
                }
            ]

    async def _late_answer(self, asked: asyncio.Future, conversation_id: str, message_id: int) -> None:
        """Store and push Rasa's answer that came after the citizen was told it was slow."""
        try:
            outputs = await asked
        except RasaUnavailable as exc:
            log.warning("Rasa did not answer in the end: %s", exc)
            return
        conv = await self.db(self.conversations.get, conversation_id)
        if conv["state"] != "bot":  # the citizen went to a person meanwhile: the bot stays silent
            return
        _, state = await self.store_bot_outputs(conversation_id, outputs or [], f"bot:{message_id}:late")
        if state != "bot":
            await self.publish_state(conversation_id)

    async def _direct_handoff(self, conversation_id: str, language: str) -> list[dict]:
        """Queue the citizen for a person without Rasa (offered while Rasa or its actions are down)."""
        ERRORS.labels("direct_handoff").inc()
        result = await self.db(self.queue.enqueue, conversation_id, "service_error")
        if not result.get("open"):
            return [{"text": say("direct_handoff_closed", language)}]
        return [{"text": say("direct_handoff_queued", language).format(position=result.get("position") or 1)}]

    async def store_bot_outputs(self, conversation_id: str, outputs: list[dict], client_prefix: str | None
                                ) -> tuple[list[Message], str]:
        """Rasa's outputs (text, buttons, custom data) as bot messages in one transaction, each published once;
        returns them and the conversation's state after them. Client ids `<prefix>:<i>`: a resend stores none
        twice."""
        replies = [(*_bot_message(out), client_prefix and f"{client_prefix}:{i}") for i, out in enumerate(outputs)]
        replies = [(text, data, client_id) for text, data, client_id in replies if text or data]
        stored, state = await self.db(self.conversations.add_replies, conversation_id, "bot", replies)
        for message, created in stored:
            if created:
                await self.publish(message)
        return [message for message, _ in stored], state

    # --- the agent side (handoff/) ------------------------------------------------------------------

    async def citizen_typing(self, conversation_id: str, typing: bool) -> None:
        """Only staff hear it: the staff topic is never forwarded to the citizen."""
        await self.events.publish(
            f"staff:{conversation_id}", {"type": "typing", "sender": "citizen", "typing": bool(typing)}
        )

    async def rate(self, conversation_id: str, score: int, comment: str | None) -> None:
        conv = await self.db(self.conversations.get, conversation_id)
        if conv["closed_at"] is None:
            raise Conflict("a conversation can be rated once a person has closed it")
        if comment and self.personal:
            comment = self.personal.mask(comment)
        await self.db(self.conversations.update, conversation_id, csat_score=score, csat_comment=comment)
        await self.events.publish("agents", {"type": "rated", "conversation_id": conversation_id, "score": score})

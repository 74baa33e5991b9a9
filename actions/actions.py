"""Dialogue actions: answer questions, clarify, feedback, handoff, insults, language switch."""

import json
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import service
from actions.common import (
    MAX_CANDIDATES,
    button,
    detected_language,
    language,
    latest_intent,
    localized_text,
    metadata,
    municipality,
    offer_human,
    perform_handoff,
    send_answer,
)
from actions.languages import NATIVE_NAMES, SUPPORTED, find_target_language, names_unsupported_language, normalize

logger = logging.getLogger(__name__)

DomainDict = dict[str, Any]


class ActionSessionSlots(Action):
    """Custom slot mapping run by action_extract_slots on every user message.

    Sets `language` and `municipality` from the message metadata the service sends, and moves
    `pending` (what the bot's previous turn asked) into `awaiting`, which the rules read; when the
    service took the previous turn itself (`direct`), what Rasa's own turn would have left. So
    `awaiting` is valid for exactly one user turn and never changes while the bot responds
    (a featurized slot changing mid-turn would break the rules' action_listen prediction).
    """

    def name(self) -> str:
        return "action_session_slots"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        meta = metadata(tracker)
        events: list[EventType] = []
        lang = self._language(tracker, meta)
        if lang and lang != tracker.get_slot("language"):
            events.append(SlotSet("language", lang))
        municipality = meta.get("municipality")
        if municipality and municipality != tracker.get_slot("municipality"):
            events.append(SlotSet("municipality", str(municipality)))
        pending = tracker.get_slot("pending")
        behind = meta.get("direct")  # the service took the previous turn itself (conversations/direct.py)
        if isinstance(behind, dict):
            pending = "feedback" if behind.get("answered") else "clarify" if behind.get("clarified") else None
            if behind.get("answered"):
                events += [SlotSet("last_entry_id", str(behind["answered"])), SlotSet("candidates", None)]
            elif behind.get("clarified"):
                events.append(SlotSet("candidates", list(behind["clarified"])))
        if pending != tracker.get_slot("awaiting"):
            events.append(SlotSet("awaiting", pending))
        if pending is not None:
            events.append(SlotSet("pending", None))
        return events

    @staticmethod
    def _language(tracker: Tracker, meta: dict[str, Any]) -> str | None:
        """This message's language, or None to keep the conversation's.

        A button press and an answer to the call-back form (a name, a phone number, an e-mail
        address) say nothing about the language: they keep it, or take the session's language
        if the conversation has none yet.
        """
        text = str((tracker.latest_message or {}).get("text") or "")
        if text.startswith("/") or tracker.active_loop_name == "callback_form":
            chosen = any(e.get("event") == "slot" and e.get("name") == "language" for e in tracker.events)
            return None if chosen else normalize(meta.get("session_language"))
        return detected_language(tracker) or normalize(meta.get("session_language"))


def _choose_button(entry: dict[str, Any]) -> dict[str, str]:
    """A button that picks one entry (clarify candidate or topic) by id."""
    return {
        "title": str(entry.get("question") or entry.get("id")),
        "payload": "/choose_entry"
        + json.dumps({"entry_id": entry.get("id")}, separators=(",", ":"), ensure_ascii=False),
    }


def _candidate(entry: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """What the clarify slot keeps of an answer, so choosing it needs no extra lookup."""
    return {
        "id": entry.get("id"),
        "question": entry.get("question"),
        "text": entry.get("text"),
        "url": entry.get("url"),
        "score": entry.get("score"),
        "language": entry.get("language"),
        "answer_language": result.get("answer_language"),
        "notice": result.get("notice"),
    }


class ActionAnswer(Action):
    """Asks the knowledge service and follows its band: answer; "did you mean" buttons plus "none
    of these"; or, when nothing matches, says so with the municipality's top topics and a button
    for a person. Only the citizen puts the chat in the agents' queue (the button or asking)."""

    def name(self) -> str:
        return "action_answer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        lang = language(tracker)
        text = (tracker.latest_message or {}).get("text") or ""
        try:
            result = service.answer(
                text, lang, tracker.get_slot("municipality") or metadata(tracker).get("municipality"), tracker.sender_id
            )
        except service.ServiceError:
            events = offer_human(dispatcher, "utter_service_error", "service_error")
            dispatcher.utter_message(json_message={"kind": "error", "decision": "error"})
            return events

        decision = result.get("decision")
        answers = [a for a in result.get("answers") or [] if isinstance(a, dict)]
        if decision == "clarify" and len(answers) == 1:
            decision = "answer"
        if decision == "answer" and answers:
            return send_answer(
                dispatcher, domain, answers[0], lang, result.get("answer_language"), result.get("notice"), "answer"
            )
        if decision == "clarify" and answers:
            return self._clarify(dispatcher, domain, lang, result, answers[:MAX_CANDIDATES])
        return self._no_match(dispatcher, tracker, domain, lang, result)

    @staticmethod
    def _no_match(
        dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict, lang: str, result: dict[str, Any]
    ) -> list[EventType]:
        """Nothing matches: say so, offer the top topics (chosen like clarify candidates) and a person."""
        try:
            topics = service.topics(municipality(tracker), lang)[:MAX_CANDIDATES]
        except service.ServiceError:
            topics = []
        buttons = [_choose_button(t) for t in topics]
        buttons.append(button(domain, "utter_button_talk_to_person", lang, "/request_human"))
        dispatcher.utter_message(response="utter_no_match", buttons=buttons)
        dispatcher.utter_message(
            json_message={
                "kind": "decision",
                "decision": "no_match",
                "confidence": result.get("confidence"),
                "topics": [t.get("id") for t in topics],
            }
        )
        failed = float(tracker.get_slot("failed_turns") or 0) + 1
        return [SlotSet("candidates", [_candidate(t, {}) for t in topics] or None), SlotSet("failed_turns", failed)]

    @staticmethod
    def _clarify(
        dispatcher: CollectingDispatcher,
        domain: DomainDict,
        lang: str,
        result: dict[str, Any],
        answers: list[dict[str, Any]],
    ) -> list[EventType]:
        buttons = [_choose_button(a) for a in answers]
        none_title = localized_text(domain, "utter_button_none_of_these", lang) or "Inget av dessa"
        buttons.append({"title": none_title, "payload": "/none_of_these"})
        dispatcher.utter_message(response="utter_clarify", buttons=buttons)
        dispatcher.utter_message(
            json_message={"kind": "clarify", "decision": "clarify", "entry_ids": [a.get("id") for a in answers]}
        )
        return [SlotSet("candidates", [_candidate(a, result) for a in answers]), SlotSet("pending", "clarify")]


class ActionChooseEntry(Action):
    """Gives the clarify candidate the citizen clicked (kept in the `candidates` slot)."""

    def name(self) -> str:
        return "action_choose_entry"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        entry_id = next(tracker.get_latest_entity_values("entry_id"), None)
        chosen: dict[str, Any] | None = None
        for candidate in tracker.get_slot("candidates") or []:
            if isinstance(candidate, dict) and str(candidate.get("id")) == str(entry_id):
                chosen = candidate
        if chosen is None:
            dispatcher.utter_message(response="utter_ask_rephrase")
            return [SlotSet("candidates", None)]
        return send_answer(
            dispatcher,
            domain,
            chosen,
            language(tracker),
            chosen.get("answer_language"),
            chosen.get("notice"),
            "clarify_choice",
        )


class ActionFeedback(Action):
    """Handles "did this help?" and "none of these".

    Helped: record it, reset the failure count. Did not help / none of these: record it, ask to
    rephrase; the second failure in a row offers a person.
    """

    def name(self) -> str:
        return "action_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = latest_intent(tracker)
        awaiting = tracker.get_slot("awaiting")
        entry_id = tracker.get_slot("last_entry_id")
        helped = intent == "affirm" and awaiting == "feedback"
        if awaiting == "feedback" and entry_id:
            try:
                service.feedback(tracker.sender_id, entry_id, helped)
            except service.ServiceError:
                logger.warning("feedback for %s not recorded", entry_id)
        if helped:
            dispatcher.utter_message(response="utter_glad_to_help")
            return [SlotSet("failed_turns", 0.0)]

        failed = float(tracker.get_slot("failed_turns") or 0) + 1
        events: list[EventType] = [SlotSet("failed_turns", failed), SlotSet("candidates", None)]
        if failed >= 2:
            reason = "negative_feedback" if awaiting == "feedback" else "failed_turns"
            return events + offer_human(dispatcher, "utter_offer_human", reason)
        dispatcher.utter_message(response="utter_ask_rephrase")
        return events


class ActionHandoff(Action):
    """Hands the conversation to a person (or offers a call-back when closed)."""

    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if next(tracker.get_latest_entity_values("callback"), None):  # "leave a message": the call-back form
            # The marker tells the service the form has the next turns (conversations/direct.py).
            dispatcher.utter_message(json_message={"kind": "callback", "state": "started"})
            return [SlotSet("handoff_reason", None), FollowupAction("callback_form")]
        if latest_intent(tracker) == "request_human":
            reason = "requested"
        else:
            reason = tracker.get_slot("handoff_reason") or "requested"
        return perform_handoff(dispatcher, tracker, reason, domain)


class ActionInsult(Action):
    """A calm reply; the second insult in a conversation offers a person."""

    def name(self) -> str:
        return "action_insult"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        count = float(tracker.get_slot("insults") or 0) + 1
        if count >= 2:
            return [SlotSet("insults", count)] + offer_human(dispatcher, "utter_insult_offer_human", "abuse")
        dispatcher.utter_message(response="utter_insult_reply")
        return [SlotSet("insults", count)]


class ActionSwitchLanguage(Action):
    """Switches the conversation language and confirms in the new language.

    The target comes from the `target_language` entity (language buttons) or from a language
    name in the text ("kan vi prata engelska", "هل يمكن التحدث بالعربية").
    """

    def name(self) -> str:
        return "action_switch_language"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = (tracker.latest_message or {}).get("text") or ""
        target = normalize(next(tracker.get_latest_entity_values("target_language"), None))
        if target is None and not text.startswith("/"):
            target = find_target_language(text)
        if target is None:
            response = "utter_language_unsupported" if names_unsupported_language(text) else "utter_which_language"
            buttons = [
                {"title": NATIVE_NAMES[code], "payload": f'/switch_language{{"target_language":"{code}"}}'}
                for code in SUPPORTED
            ]
            dispatcher.utter_message(response=response, buttons=buttons)
            return []
        try:
            service.set_language(tracker.sender_id, target)
        except service.ServiceError:
            logger.warning("language switch to %s not recorded by the service", target)
        # The tracker still has the old language while this action runs, so the confirmation
        # is taken from the domain's variation for the new language.
        confirmation = localized_text(domain, "utter_language_switched", target)
        if confirmation:
            dispatcher.utter_message(text=confirmation)
        else:
            dispatcher.utter_message(response="utter_language_switched")
        dispatcher.utter_message(json_message={"kind": "language", "language": target})
        return [SlotSet("language", target)]

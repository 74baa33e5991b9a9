"""Helpers shared by the actions: reading the tracker, localized texts, answer messages, handoff."""

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import service
from actions.languages import DEFAULT, normalize
from actions.waits import wait_phrase

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 3


def metadata(tracker: Tracker) -> dict[str, Any]:
    """The metadata the service sent with the latest citizen message."""
    data = (tracker.latest_message or {}).get("metadata") or {}
    return data if isinstance(data, dict) else {}


def detected_language(tracker: Tracker) -> str | None:
    """The service's detection of this message's language; None for a button payload.

    A payload ("/affirm", "/choose_entry{...}") is not the citizen's language, and detection
    reads it as English: a button press keeps the conversation's language.
    """
    text = str((tracker.latest_message or {}).get("text") or "")
    if text.startswith("/"):
        return None
    return normalize(metadata(tracker).get("language"))


def language(tracker: Tracker) -> str:
    """The citizen's language: this message's detected language, else the slot."""
    return (
        detected_language(tracker)
        or normalize(tracker.get_slot("language"))
        or normalize(metadata(tracker).get("session_language"))
        or DEFAULT
    )


def municipality(tracker: Tracker) -> str | None:
    """The municipality of this conversation (metadata first, then the slot)."""
    value = metadata(tracker).get("municipality") or tracker.get_slot("municipality")
    return str(value) if value else None


def latest_intent(tracker: Tracker) -> str | None:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def button(domain: dict[str, Any], response: str, lang: str, payload: str) -> dict[str, str]:
    """A button whose title is a one-line response of the domain in `lang`."""
    return {"title": localized_text(domain, response, lang) or response, "payload": payload}


def localized_text(domain: dict[str, Any], response: str, lang: str) -> str | None:
    """The text of `response` in `lang` (for button titles composed by an action).

    Reads the domain's language-conditioned variations; falls back to the unconditioned
    (Swedish) one.
    """
    default = None
    for variation in (domain or {}).get("responses", {}).get(response, []):
        conditions = variation.get("condition") or []
        if not conditions:
            default = default or variation.get("text")
        elif any(c.get("name") == "language" and str(c.get("value")) == lang for c in conditions):
            return variation.get("text")
    return default


def answer_message(entry: dict[str, Any]) -> str:
    """The answer text unchanged, with the entry's url (if any, and not already in it) on its own line."""
    text = str(entry.get("text") or "").strip()
    url = str(entry.get("url") or "").strip()
    return f"{text}\n{url}" if url and url not in text else text


# The payloads of the quiet thumbs under an answer: still "yes"/"no" to the rules, marked so the
# widget shows them as small icons, not as a question after every answer.
HELPED = '/affirm{"feedback":"yes"}'
NOT_HELPED = '/deny{"feedback":"no"}'
# "Leave a message" when no one is online: a request for a person that asks for a call-back instead of
# waiting (the widget first takes the chat out of the queue, where the bot does not listen).
LEAVE_MESSAGE = '/request_human{"callback":"yes"}'


def send_answer(
    dispatcher: CollectingDispatcher,
    domain: dict[str, Any],
    entry: dict[str, Any],
    lang: str,
    answer_language: str | None,
    notice: str | None,
    decision: str,
) -> list[EventType]:
    """Sends one answer with quiet "did this help?" thumbs, after the "only in Swedish" notice if needed.

    The answer's own language (`language` of the answer item) wins over the response-wide
    `answer_language`: that is the text the citizen gets.
    """
    answer_language = normalize(entry.get("language") or answer_language) or answer_language
    if answer_language and answer_language != lang:
        swedish_only = localized_text(domain, "utter_only_swedish", lang)
        if answer_language == "sv" and swedish_only:
            dispatcher.utter_message(text=swedish_only)
        elif notice:
            dispatcher.utter_message(text=str(notice))
    dispatcher.utter_message(
        text=answer_message(entry),
        buttons=[
            button(domain, "utter_button_helped", lang, HELPED),
            button(domain, "utter_button_not_helped", lang, NOT_HELPED),
        ],
    )
    dispatcher.utter_message(
        json_message={
            "kind": "answer",
            "entry_id": entry.get("id"),
            "decision": decision,
            "score": entry.get("score"),
            "answer_language": answer_language,
            "language": lang,
        }
    )
    return [SlotSet("pending", "feedback"), SlotSet("last_entry_id", entry.get("id")), SlotSet("candidates", None)]


def offer_human(dispatcher: CollectingDispatcher, response: str, reason: str) -> list[EventType]:
    """Asks whether the citizen wants a person; the rules route the yes/no."""
    dispatcher.utter_message(response=response)
    return [SlotSet("pending", "offer_human"), SlotSet("handoff_reason", reason)]


def _format_opens_at(value: Any) -> str | None:
    """ "2025-11-24T08:00:00+01:00" -> "2025-11-24 08:00" (language-neutral)."""
    if not value:
        return None
    text = str(value).replace("T", " ")
    return text[:16] if len(text) >= 16 else text


def _tell_queued(
    dispatcher: CollectingDispatcher, domain: dict[str, Any], tracker: Tracker, result: dict[str, Any]
) -> None:
    """The place in the queue and the wait; with no one online to answer, says so and offers a message
    (call-back) or leaving the queue, and today's opening hours if the municipality has them."""
    lang = language(tracker)
    position = result.get("position") or 1
    if result.get("agents_online") == 0:
        dispatcher.utter_message(
            response="utter_no_agent_online",
            position=position,
            buttons=[
                button(domain, "utter_button_leave_message", lang, LEAVE_MESSAGE),
                button(domain, "utter_button_leave_queue", lang, "/leave_queue"),
            ],
        )
        if result.get("hours_today"):
            dispatcher.utter_message(response="utter_opening_hours_today", hours=result["hours_today"])
        return
    dispatcher.utter_message(
        response="utter_handoff_queued", position=position, wait=wait_phrase(lang, result.get("estimated_wait_seconds"))
    )


def perform_handoff(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, domain: dict[str, Any] | None = None
) -> list[EventType]:
    """Asks the service to queue the conversation for a person and tells the citizen.

    Queued: position and estimated wait, then the conversation is paused (the service stops
    posting; `EXTERNAL_handback` resumes it). Closed: the out-of-hours message and the call-back
    form. Service down: an apology, never silence.
    """
    resets = [SlotSet("failed_turns", 0.0), SlotSet("insults", 0.0), SlotSet("handoff_reason", None)]
    try:
        result = service.handoff(tracker.sender_id, reason)
    except service.ServiceError:
        dispatcher.utter_message(response="utter_service_down")
        dispatcher.utter_message(json_message={"kind": "handoff", "state": "error", "reason": reason})
        return resets
    if result.get("open") is False or result.get("state") == "bot":
        dispatcher.utter_message(response="utter_out_of_hours")
        opens_at = _format_opens_at(result.get("opens_at"))
        if opens_at:
            dispatcher.utter_message(response="utter_opens_at", opens_at=opens_at)
        dispatcher.utter_message(
            json_message={"kind": "handoff", "state": "closed", "opens_at": result.get("opens_at"), "reason": reason}
        )
        return resets + [FollowupAction("callback_form")]
    _tell_queued(dispatcher, domain, tracker, result)
    dispatcher.utter_message(
        json_message={
            "kind": "handoff",
            "state": result.get("state", "queued"),
            "position": result.get("position"),
            "estimated_wait_seconds": result.get("estimated_wait_seconds"),
            "agents_online": result.get("agents_online"),
            "reason": reason,
        }
    )
    # The explicit action_listen lets the rules match the next user turn (e.g. the
    # EXTERNAL_handback the service triggers after resuming the conversation).
    return resets + [ConversationPaused(), ActionExecuted("action_listen")]

"""The call-back form used outside opening hours: validation and submission."""

import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import service

DomainDict = dict[str, Any]

FORM_SLOTS = ("callback_name", "callback_contact", "callback_message", "callback_consent")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]{2,}$")
_PHONE_CHARS = re.compile(r"^\+?[\d\s\-().]{6,25}$")
_MASKED = {"[telefonnummer]": "phone", "[e-post]": "email"}  # core/privacy.py's placeholders


# Typed answers to the consent question (the buttons send /affirm and /deny).
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_YES = _words(
    "ja jo yes yeah yep sure ok okay نعم اي ايوه haa بله آره اره kyllä joo erê ere belê evet tamam "
    "так ага absolut gärna gerne gjerne"
)
_NO = _words("nej nä nei no nope لا maya may نه خیر ei na nexêr hayır hayir yok nie ні")


def parse_contact(value: Any) -> tuple[str, str] | None:
    """("email", "a@b.se") or ("phone", "+46701234567"), or None if neither."""
    text = str(value or "").strip()
    # The service masks personal data before Rasa sees it; it fills in the citizen's own contact itself.
    if text in _MASKED:
        return _MASKED[text], text
    if _EMAIL.match(text):
        return "email", text
    if _PHONE_CHARS.match(text):
        digits = re.sub(r"[^\d+]", "", text)
        if 6 <= len(digits.lstrip("+")) <= 15:
            return "phone", digits
    return None


def parse_consent(value: Any) -> bool | None:
    """True/False from the intent mapping, or from a typed yes/no word."""
    if isinstance(value, bool):
        return value
    words = re.findall(r"[\w']+", str(value or "").lower())
    if words and words[0] in _YES:
        return True
    if words and words[0] in _NO:
        return False
    return None


class ValidateCallbackForm(FormValidationAction):
    """Checks name, phone/e-mail, message and consent before they are accepted."""

    def name(self) -> str:
        return "validate_callback_form"

    def validate_callback_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        name = str(value or "").strip()
        ok = 1 <= len(name) <= 120 and not name.startswith("/")
        return {"callback_name": name if ok else None}

    def validate_callback_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        parsed = parse_contact(value)
        if parsed is None:
            dispatcher.utter_message(response="utter_invalid_contact")
            return {"callback_contact": None}
        return {"callback_contact": parsed[1]}

    def validate_callback_message(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        message = str(value or "").strip()
        ok = 1 <= len(message) <= 4000 and not message.startswith("/")
        return {"callback_message": message if ok else None}

    def validate_callback_consent(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {"callback_consent": parse_consent(value)}


class ActionSubmitCallback(Action):
    """Sends the call-back request to the service (only with consent) and confirms."""

    def name(self) -> str:
        return "action_submit_callback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        resets: list[EventType] = [SlotSet(slot, None) for slot in FORM_SLOTS]
        contact = parse_contact(tracker.get_slot("callback_contact"))
        if tracker.get_slot("callback_consent") is not True or contact is None:
            dispatcher.utter_message(response="utter_callback_not_saved")
            dispatcher.utter_message(json_message={"kind": "callback", "state": "not_saved"})
            return resets
        payload = {
            "name": tracker.get_slot("callback_name"),
            contact[0]: contact[1],
            "message": tracker.get_slot("callback_message"),
            "consent": True,
        }
        try:
            result = service.callback(tracker.sender_id, payload)
        except service.ServiceError:
            dispatcher.utter_message(response="utter_service_down")
            dispatcher.utter_message(json_message={"kind": "callback", "state": "error"})
            return resets
        ticket_id = result.get("ticket_id") or "-"
        dispatcher.utter_message(response="utter_callback_confirmed", ticket_id=ticket_id)
        dispatcher.utter_message(json_message={"kind": "callback", "state": "registered", "ticket_id": ticket_id})
        return resets

"""Direct answers: a question the bot would answer is answered by the service, after Rasa's NLU alone.

Why (issue 18): a full bot turn is service → Rasa (load the tracker, NLU, policies, save it) → action
server → service's `/api/v1/answer` → back, ~70-90 ms of CPU a turn over three processes, and most turns
are questions whose whole dialogue is one rule: `ask` (or `nlu_fallback`) → `action_answer`. Here
Rasa's NLU still reads every message (`/model/parse`: intent only, no tracker), and when it says
"question", the dialogue is at rest and the knowledge service answers, the service sends what
`action_answer` would have sent, to the byte (tests/test_direct_answers.py compares both paths).

Rasa stays the dialogue's owner:
- anything but a question, a button's payload, a language the bot has no texts for, a clarify or no
  match, goes through Rasa's whole turn as before (the NLU's result travels with it, so Rasa does not
  parse twice; the answer computed here is kept for the action's request);
- "at rest" means no form is running: the call-back form starts only where an action says so in its
  outputs (`handoff`/`closed`, `callback`/`started`) and ends with `callback`/`registered|not_saved|
  error`. Where the recent messages do not tell, Rasa has the turn (the safe side: slower, never wrong);
- Rasa's tracker does not see a direct turn. The next turn Rasa has carries `answered` (the entry the
  service answered last), and `action_session_slots` sets the slots `action_answer` would have set
  (`awaiting` feedback, `last_entry_id`, no candidates), so the thumbs or a "no" after a direct answer
  mean what they mean after Rasa's.

`KOMMUNCHATT_DIRECT_ANSWERS=0` sends every turn through Rasa.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from conversations.store import Message
from core.languages import CODES

ENABLED_ENV = "KOMMUNCHATT_DIRECT_ANSWERS"
QUESTION_INTENTS = frozenset({"ask", "nlu_fallback"})  # rules: both go to action_answer, whatever is pending
TOP_K = 3  # what the action's `/api/v1/answer` request gets (knowledge.prefetch.DEFAULT_TOP_K)
# Messages looked back at for the latest marker: a few (the last turn's) first, more when those do not tell.
RECENT = (6, 40)
# The quiet thumbs under an answer (actions/common.py HELPED / NOT_HELPED).
HELPED = '/affirm{"feedback":"yes"}'
NOT_HELPED = '/deny{"feedback":"no"}'
DOMAIN = Path(__file__).resolve().parent.parent / "bot" / "domain.yml"


def enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Dialogue:
    """What the recent messages say about Rasa's side of the conversation."""

    at_rest: bool  # no form running: a question may be answered directly
    answered: str | None = None  # the entry a direct turn answered last (Rasa has not seen it)

    def rasa_metadata(self) -> dict:
        return {"answered": self.answered} if self.answered else {}


def _custom(message: Message) -> dict:
    custom = message.data.get("custom") if message.sender == "bot" else None
    return custom if isinstance(custom, dict) else {}


def _starts_form(custom: dict) -> bool:
    return (custom.get("kind"), custom.get("state")) in (("handoff", "closed"), ("callback", "started"))


def dialogue(recent: list[Message], complete: bool = True) -> Dialogue | None:
    """`recent`: the messages before the citizen's new one, newest first (ConversationStore.recent); `complete`
    when they are all there are or all that will be looked at, else None when they do not tell."""
    others = [m for m in recent if m.sender not in ("citizen", "note", "system")]
    if not recent:  # a new conversation
        return Dialogue(at_rest=True)
    last = _custom(others[0]) if others else {}
    answered = last.get("entry_id") if last.get("kind") == "answer" and last.get("direct") else None
    for message in others:
        custom = _custom(message)
        if custom.get("kind"):
            return Dialogue(at_rest=not _starts_form(custom), answered=answered and str(answered))
    return Dialogue(at_rest=False) if complete else None


class BotTexts:
    """The few domain responses a direct answer shows, read from Rasa's domain (one source of the texts)."""

    NAMES = ("utter_only_swedish", "utter_button_helped", "utter_button_not_helped")

    def __init__(self, path: Path = DOMAIN):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        responses = yaml.load(path.read_text(encoding="utf-8"), Loader=loader).get("responses") or {}
        self._variations = {name: responses.get(name) or [] for name in self.NAMES}

    def text(self, response: str, language: str) -> str | None:
        """The response in `language`, else its unconditioned variation (actions/common.py localized_text)."""
        default = None
        for variation in self._variations.get(response, []):
            conditions = variation.get("condition") or []
            if not conditions:
                default = default or variation.get("text")
            elif any(c.get("name") == "language" and str(c.get("value")) == language for c in conditions):
                return variation.get("text")
        return default


def is_question(parse: dict) -> bool:
    return ((parse.get("intent") or {}).get("name")) in QUESTION_INTENTS


def answerable(result: dict) -> dict | None:
    """The answer `action_answer` would give (a clarify with one candidate is an answer), or None."""
    answers = [a for a in result.get("answers") or [] if isinstance(a, dict)]
    decision = result.get("decision")
    if answers and (decision == "answer" or (decision == "clarify" and len(answers) == 1)):
        return answers[0]
    return None


def answer_outputs(texts: BotTexts, entry: dict, result: dict, language: str) -> list[dict]:
    """`send_answer`'s messages (actions/common.py): the "only in Swedish" notice if needed, the answer
    with its link and thumbs, and the decision record, marked `direct`."""
    answer_language = entry.get("language") or result.get("answer_language")
    outputs: list[dict] = []
    if answer_language and answer_language != language:
        swedish_only = texts.text("utter_only_swedish", language)
        if answer_language == "sv" and swedish_only:
            outputs.append({"text": swedish_only})
        elif result.get("notice"):
            outputs.append({"text": str(result["notice"])})
    text = str(entry.get("text") or "").strip()
    url = str(entry.get("url") or "").strip()
    buttons = [
        {"title": texts.text("utter_button_helped", language) or "utter_button_helped", "payload": HELPED},
        {"title": texts.text("utter_button_not_helped", language) or "utter_button_not_helped", "payload": NOT_HELPED},
    ]
    outputs.append({"text": f"{text}\n{url}" if url and url not in text else text, "buttons": buttons})
    outputs.append({"custom": {
        "kind": "answer", "entry_id": entry.get("id"), "decision": "answer", "score": entry.get("score"),
        "answer_language": answer_language, "language": language, "direct": True,
    }})
    return outputs


def may_answer(text: str, language: str, state: Dialogue) -> bool:
    """Whether a message may be answered directly at all (before asking Rasa's NLU)."""
    return enabled() and state.at_rest and not text.startswith("/") and language in CODES

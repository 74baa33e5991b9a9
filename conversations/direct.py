"""Direct turns: what the bot would say to a question or to small talk, said by the service after Rasa's NLU alone.

Why (issue 18): a full bot turn is service → Rasa (load the tracker, NLU, policies, save it) → action
server → service's `/api/v1/answer` → back, ~70-90 ms of CPU a turn over three processes, and most turns
need no dialogue state at all: a question is one rule (`ask` or `nlu_fallback` → `action_answer`), a
greeting, thanks or goodbye is one rule that says one response. Here Rasa's NLU still reads every message
(`/model/parse`: intent only, no tracker); when the dialogue is at rest the service then sends what Rasa
would have sent, to the byte (tests/test_e2e_dialogue.py compares both paths on the real Rasa):
- a question the knowledge service answers: `action_answer`'s messages (actions/common.py send_answer);
- a question it clarifies: `action_answer`'s "did you mean" buttons (actions/actions.py ActionAnswer._clarify);
- an intent whose only rules are unconditioned `intent → utter_*` in data/rules.yml (greet, thanks,
  goodbye, bot_challenge today): that response of the domain in the citizen's language. Intents with a
  rule that has a condition (affirm, deny: they read what is pending) are Rasa's.

Rasa stays the dialogue's owner:
- anything else (a button's payload, a language the bot has no texts for, no match, asking for a person)
  goes through Rasa's whole turn as before; the NLU's result travels with it, so Rasa does not parse
  twice, and an answer computed here is kept for the action's request;
- "at rest" means no form is running: the call-back form starts only where an action says so in its
  outputs (`handoff`/`closed`, `callback`/`started`) and ends with `callback`/`registered|not_saved|
  error`. Where the recent messages do not tell, Rasa has the turn (the safe side: slower, never wrong);
- Rasa's tracker does not see a direct turn. Its last message keeps `direct` in its data (never shown),
  and the next turn Rasa has carries it: `action_session_slots` then sets what Rasa's own turn would have
  left (after an answer `awaiting` feedback, `last_entry_id`, no candidates; after a clarify `awaiting`
  clarify and the candidates; after small talk nothing pending), so the thumbs, a button or a "no" mean
  what they mean after Rasa's own turn.

`KOMMUNCHATT_DIRECT_ANSWERS=0` sends every turn through Rasa.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from conversations.store import Message
from core.languages import CODES

ENABLED_ENV = "KOMMUNCHATT_DIRECT_ANSWERS"
QUESTION_INTENTS = frozenset({"ask", "nlu_fallback"})  # rules: both go to action_answer, whatever is pending
TOP_K = 3  # what the action's `/api/v1/answer` request gets (knowledge.prefetch.DEFAULT_TOP_K), and the
# candidates a "did you mean" offers (actions/common.py MAX_CANDIDATES)
# Messages looked back at for the latest marker: a few (the last turn's) first, more when those do not tell.
RECENT = (6, 40)
# The quiet thumbs under an answer (actions/common.py HELPED / NOT_HELPED).
HELPED = '/affirm{"feedback":"yes"}'
NOT_HELPED = '/deny{"feedback":"no"}'
ROOT = Path(__file__).resolve().parent.parent
DOMAIN, RULES = ROOT / "bot" / "domain.yml", ROOT / "data" / "rules.yml"


def enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Dialogue:
    """What the recent messages say about Rasa's side of the conversation."""

    at_rest: bool  # no form running: the service may take the turn
    behind: dict | None = None  # the last turn was the service's: {"answered": entry id or None}

    def rasa_metadata(self) -> dict:
        return {"direct": self.behind} if self.behind is not None else {}


def _custom(message: Message) -> dict:
    custom = message.data.get("custom") if message.sender == "bot" else None
    return custom if isinstance(custom, dict) else {}


def _starts_form(custom: dict) -> bool:
    return (custom.get("kind"), custom.get("state")) in (("handoff", "closed"), ("callback", "started"))


def dialogue(recent: list[Message], complete: bool = True) -> Dialogue | None:
    """`recent`: the messages before the citizen's new one, newest first (ConversationStore.recent); `complete`
    when they are all there are or all that will be looked at, else None when they do not tell."""
    if not recent:  # a new conversation
        return Dialogue(at_rest=True)
    others = [m for m in recent if m.sender not in ("citizen", "note", "system")]
    behind = others[0].data.get("direct") if others and others[0].sender == "bot" else None
    behind = behind if isinstance(behind, dict) else None
    for message in others:
        custom = _custom(message)
        if custom.get("kind"):
            return Dialogue(at_rest=not _starts_form(custom), behind=behind)
        if message.data.get("direct") is not None:  # a direct turn happens only at rest
            return Dialogue(at_rest=True, behind=behind)
    return Dialogue(at_rest=False) if complete else None


class BotTexts:
    """The domain's responses and the rules that only say one, read from Rasa's own files (one source)."""

    def __init__(self, domain: Path = DOMAIN, rules: Path = RULES):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        self._responses = yaml.load(domain.read_text(encoding="utf-8"), Loader=loader).get("responses") or {}
        self.replies = _single_response_rules(yaml.load(rules.read_text(encoding="utf-8"), Loader=loader))

    def text(self, response: str, language: str) -> str | None:
        """The response in `language`, else its unconditioned variation (actions/common.py localized_text)."""
        variation = self.variation(response, language)
        return variation.get("text") if variation else None

    def variation(self, response: str, language: str) -> dict | None:
        default = None
        for variation in self._responses.get(response) or []:
            conditions = variation.get("condition") or []
            if not conditions:
                default = default or variation
            elif any(c.get("name") == "language" and str(c.get("value")) == language for c in conditions):
                return variation
        return default

    def reply(self, intent: str, language: str) -> list[dict] | None:
        """What Rasa says to `intent` when its rules only say a response; None when Rasa must decide."""
        name = self.replies.get(intent)
        variation = self.variation(name, language) if name else None
        if not variation or set(variation) - {"text", "buttons", "condition"} or "{" in variation.get("text", ""):
            return None  # images, custom payloads or slots filled in: Rasa's own
        out: dict = {"text": variation.get("text") or ""}
        if variation.get("buttons"):
            out["buttons"] = variation["buttons"]
        return [out]


def _single_response_rules(rules: dict) -> dict[str, str]:
    """intent → response for the intents whose every rule is `intent → utter_*` without a condition."""
    says: dict[str, set[str]] = {}
    decided: set[str] = set()  # intents with any other kind of rule: Rasa decides
    for rule in rules.get("rules") or []:
        steps = rule.get("steps") or []
        intents = [step["intent"] for step in steps if "intent" in step]
        action = str(steps[1].get("action", "")) if len(steps) == 2 else ""
        if action.startswith("utter_") and not rule.get("condition") and "intent" in steps[0]:
            says.setdefault(intents[0], set()).add(action)
        else:
            decided.update(intents)
    return {intent: next(iter(names)) for intent, names in says.items() if len(names) == 1 and intent not in decided}


def answerable(result: dict) -> dict | None:
    """The answer `action_answer` would give (a clarify with one candidate is an answer), or None."""
    answers = [a for a in result.get("answers") or [] if isinstance(a, dict)]
    decision = result.get("decision")
    if answers and (decision == "answer" or (decision == "clarify" and len(answers) == 1)):
        return answers[0]
    return None


def answer_outputs(texts: BotTexts, entry: dict, result: dict, language: str) -> list[dict]:
    """`send_answer`'s messages (actions/common.py): the "only in Swedish" notice if needed, the answer
    with its link and thumbs, and the decision record."""
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
        "answer_language": answer_language, "language": language,
    }})
    return marked(outputs, entry.get("id"))


def clarify_outputs(texts: BotTexts, answers: list[dict], result: dict, language: str) -> list[dict]:
    """`action_answer`'s "did you mean" (actions/actions.py ActionAnswer._clarify): a button for each candidate
    and "none of these", and the decision record; the mark carries the candidates as the `candidates` slot
    keeps them (actions/actions.py _candidate), so choosing one needs no lookup."""
    variation = texts.variation("utter_clarify", language) or {}
    buttons = [*(variation.get("buttons") or []), *(_choose_button(a) for a in answers)]
    buttons.append({"title": texts.text("utter_button_none_of_these", language) or "Inget av dessa",
                    "payload": "/none_of_these"})
    outputs = [
        {"text": variation.get("text") or "", "buttons": buttons},
        {"custom": {"kind": "clarify", "decision": "clarify", "entry_ids": [a.get("id") for a in answers]}},
    ]
    return marked(outputs, clarified=[_candidate(a, result) for a in answers])


def _choose_button(entry: dict) -> dict:
    payload = json.dumps({"entry_id": entry.get("id")}, separators=(",", ":"), ensure_ascii=False)
    return {"title": str(entry.get("question") or entry.get("id")), "payload": "/choose_entry" + payload}


def _candidate(entry: dict, result: dict) -> dict:
    keys = ("id", "question", "text", "url", "score", "language")
    return {**{k: entry.get(k) for k in keys}, "answer_language": result.get("answer_language"),
            "notice": result.get("notice")}


def clarifying(result: dict) -> list[dict] | None:
    """The candidates `action_answer` would offer ("did you mean"), or None."""
    answers = [a for a in result.get("answers") or [] if isinstance(a, dict)]
    return answers[:TOP_K] if result.get("decision") == "clarify" and len(answers) > 1 else None


def marked(outputs: list[dict], answered: str | None = None, clarified: list[dict] | None = None) -> list[dict]:
    """A direct turn's outputs, the last one marked for `dialogue` (and from there Rasa's next turn):
    `answered` the entry given, or `clarified` the candidates offered."""
    behind = {"answered": answered, "clarified": clarified} if clarified else {"answered": answered}
    return [*outputs[:-1], {**outputs[-1], "direct": behind}]


def may_answer(text: str, language: str, state: Dialogue) -> bool:
    """Whether a message may be answered directly at all (before asking Rasa's NLU)."""
    return enabled() and state.at_rest and not text.startswith("/") and language in CODES


def may_ask(text: str, parse: dict | None) -> bool:
    """Whether Rasa's turn may ask the knowledge service for an answer (not a payload, not small talk)."""
    return not text.startswith("/") and (parse is None or intent(parse) in QUESTION_INTENTS)


def intent(parse: dict) -> str | None:
    return (parse.get("intent") or {}).get("name")

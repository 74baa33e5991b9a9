"""Which of a citizen's messages are questions for the knowledge base.

The agent's suggestions are for the citizen's last question, not for "I want a person", "hej" or a
button's payload: those turns were the dialogue's own (Rasa answered them by rule), and the knowledge
base finds nothing useful for them, just confidently wrong entries. The stored bot replies tell which
turn was which: an answer, a clarify list or a retrieval decision came from the knowledge base; a
handoff asked for, a call-back form or a language change did not. The console's tab title uses the
same rule (web/agent/transcript.js, `questions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

KNOWLEDGE_KINDS = {"answer", "clarify", "decision", "error"}
# The apology's button to a person: the bot's, or the service's own when Rasa is down (conversations.service).
PERSON_PAYLOADS = {"/request_human", "/direct_handoff"}


class StoredMessage(Protocol):
    id: int
    sender: str
    text: str
    data: dict


def _kind(message: StoredMessage) -> str | None:
    return ((message.data or {}).get("custom") or {}).get("kind")


def is_payload(text: str) -> bool:
    """A button's payload ("/affirm", "/choose_entry{...}"), not words the citizen typed."""
    return text.startswith("/")


def _asked(replies: list[StoredMessage]) -> bool:
    if not replies:
        return True  # a person had the chat (the bot stays silent), or no reply yet
    kinds = {k for k in map(_kind, replies) if k}
    if kinds & KNOWLEDGE_KINDS:
        return True
    if kinds:
        return False  # a handoff asked for, a call-back, a language change
    # only rule texts (a greeting, thanks), unless it is the apology that offers a person
    return any(b.get("payload") in PERSON_PAYLOADS for r in replies for b in (r.data or {}).get("buttons") or [])


def questions(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """The citizen's typed messages that were questions, oldest first."""
    ordered = sorted(messages, key=lambda m: m.id)
    out = []
    for index, message in enumerate(ordered):
        if message.sender != "citizen" or is_payload(message.text) or not message.text.strip():
            continue
        replies = []
        for later in ordered[index + 1 :]:
            if later.sender == "citizen":
                break
            if later.sender == "bot":
                replies.append(later)
        if _asked(replies):
            out.append(message)
    return out


def last_question(messages: Sequence[StoredMessage]) -> StoredMessage | None:
    found = questions(messages)
    return found[-1] if found else None

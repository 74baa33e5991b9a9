"""Stores on both databases: knowledge entries with audit, conversations, users, the queue."""

from __future__ import annotations

import pytest

from conversations.store import ConversationStore, UnknownConversation
from core.users import UserError, UserStore
from handoff.queue import Queue, is_open
from knowledge.kbfile import parse_text
from knowledge.store import KnowledgeStore

KB = """\
- id: a
  questions: {sv: ["Fråga a?"]}
  answer: {sv: "Svar a."}
- id: b
  answer: {sv: "Svar b.", en: "Answer b."}
"""


def test_import_is_atomic_and_audited(engine):
    store = KnowledgeStore(engine)
    assert store.import_entries("default", parse_text(KB), actor="t") == {
        "create": 2,
        "update": 0,
        "unchanged": 0,
        "delete": 0,
    }
    changed = parse_text(KB.replace("Svar b.", "Nytt svar b."))[1:]
    counts = store.import_entries("default", changed, replace=True, actor="t")
    assert counts == {"create": 0, "update": 1, "unchanged": 0, "delete": 1}
    assert [e.id for e in store.all("default")] == ["b"]
    assert store.get("default", "b").answer["sv"] == "Nytt svar b."
    actions = [row["action"] for row in store.audit("default")]
    assert actions[:2] in (["delete", "update"], ["update", "delete"]) and actions.count("create") == 2


def test_entries_belong_to_a_municipality(engine):
    store = KnowledgeStore(engine)
    store.import_entries("default", parse_text(KB))
    store.import_entries("other", parse_text(KB)[:1])
    assert len(store.all("default")) == 2 and len(store.all("other")) == 1
    assert store.delete("other", "a") and store.get("default", "a") is not None
    assert not store.delete("other", "missing")


def test_messages_are_stored_in_order_and_resends_are_idempotent(engine):
    conversations = ConversationStore(engine)
    conv = conversations.create("default", "sv")
    first, created = conversations.add_message(conv["id"], "citizen", "Hej", client_id="c1")
    again, created_again = conversations.add_message(conv["id"], "citizen", "Hej", client_id="c1")
    assert created and not created_again and again.id == first.id
    conversations.add_message(conv["id"], "bot", "Hej! Vad kan jag hjälpa till med?", {"buttons": []})
    conversations.add_message(conv["id"], "note", "internal note")
    assert [m.sender for m in conversations.messages(conv["id"])] == ["citizen", "bot"]
    assert len(conversations.messages(conv["id"], include_notes=True)) == 3
    with pytest.raises(UnknownConversation):
        conversations.get("nope")


def test_queue_order_position_and_opening_hours(engine):
    conversations = ConversationStore(engine)
    queue = Queue(engine, conversations)
    first = conversations.create("default", "sv")["id"]
    second = conversations.create("default", "ar")["id"]
    assert queue.enqueue(first, "requested")["position"] == 1
    result = queue.enqueue(second, "low_confidence")
    assert result["open"] and result["position"] == 2
    assert result["estimated_wait_seconds"] is None and result["agents_online"] == 0  # nobody online: no estimate
    assert [c["id"] for c in queue.waiting()] == [first, second]
    closed = {"opening_hours": {"timezone": "Europe/Stockholm", "weekly": {"mon": [["08:00", "17:00"]]}}}
    # Sunday 2026-11-22 12:00 Stockholm: closed, opens Monday 08:00.
    open_now, opens_at = is_open(closed, now=1795345200.0)
    assert not open_now and opens_at == 1795417200.0


def test_users_passwords_and_sessions(engine):
    users = UserStore(engine)
    users.create("anna", "correct horse", role="agent", languages=["sv", "ar"])
    with pytest.raises(UserError):
        users.create("anna", "another password")
    with pytest.raises(UserError):
        users.create("bo", "short")
    assert users.login("anna", "wrong password") is None
    token, user = users.login("anna", "correct horse")
    assert users.by_token(token)["username"] == "anna" and user["languages"] == ["sv", "ar"]
    users.logout(token)
    assert users.by_token(token) is None

"""Retention, erasure, export and the access log (kommunchatt/retention.py) on SQLite and PostgreSQL, with a
Rasa tracker store table laid out as Rasa's SQLTrackerStore makes it."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, insert, select

import conversations.personal_data  # noqa: F401 - its tables join the schema before init_db
import handoff.access_log  # noqa: F401
from conversations.personal_data import PersonalData, message_originals, personal_references
from conversations.store import ConversationStore
from conversations.tables import conversations, messages
from core import municipalities
from handoff import access_log, tickets
from kommunchatt import retention

KEY = b"test-key-0123456789"
PNR = "19850709-9805"


def rasa_events_table(engine) -> Table:
    """The columns of Rasa 3.6's SQLTrackerStore `events` table."""
    meta = MetaData()
    table = Table(
        "events",
        meta,
        Column("id", Integer, primary_key=True),
        Column("sender_id", String(255)),
        Column("type_name", String(255)),
        Column("timestamp", Float),
        Column("intent_name", String(255)),
        Column("action_name", String(255)),
        Column("data", Text),
    )
    meta.create_all(engine)
    return table


@pytest.fixture
def world(engine, tmp_path):
    if engine.dialect.name == "sqlite":
        tracker_engine = create_engine(f"sqlite:///{tmp_path / 'rasa-tracker.db'}")
    else:
        tracker_engine = engine
    events = rasa_events_table(tracker_engine)
    with engine.begin() as conn:
        conn.execute(municipalities.municipalities.insert().values(id="ekby", name="Ekby", settings={}))
    return engine, ConversationStore(engine), PersonalData(engine, KEY), retention.RasaTracker(tracker_engine), events


def chat(
    store: ConversationStore,
    personal: PersonalData,
    tracker,
    events,
    municipality: str,
    text: str,
    ended_ago: float,
    state: str = "closed",
) -> str:
    conv = store.create(municipality, "sv")
    masked = personal.mask(text)

    def keep(conn, _conv, message):
        if masked != text:
            personal.keep(conn, conv["id"], message.id, text, message.created_at)

    store.post(conv["id"], "citizen", masked, then=keep)
    store.add_message(conv["id"], "bot", "Svar från boten")
    with tracker.engine.begin() as conn:
        conn.execute(
            insert(events).values(
                sender_id=conv["id"], type_name="user", timestamp=time.time(), data=json.dumps({"text": masked})
            )
        )
    at = time.time() - ended_ago
    with store.engine.begin() as conn:
        conn.execute(
            conversations.update()
            .where(conversations.c.id == conv["id"])
            .values(state=state, updated_at=at, closed_at=at if state == "closed" else None, csat_comment="bra")
        )
    return conv["id"]


def count(engine, table, conversation_id) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table).where(table.c.conversation_id == conversation_id)).all())


def test_stored_text_is_masked_and_the_original_is_kept_only_while_live(world):
    engine, store, personal, tracker, events = world
    live = chat(store, personal, tracker, events, "default", f"mitt pnr är {PNR}", ended_ago=10, state="bot")
    ended = chat(store, personal, tracker, events, "default", f"ring 070-123 45 67, {PNR}", ended_ago=10)
    assert [m.text for m in store.messages(live)][0] == "mitt pnr är [personnummer]"
    assert list(personal.originals(live).values()) == [f"mitt pnr är {PNR}"]
    assert personal.latest_contact(ended, "phone") == "070-123 45 67"
    assert tracker.texts(live) == [json.dumps({"text": "mitt pnr är [personnummer]"})]

    report = retention.purge(engine, tracker)
    assert report.originals == 1
    assert personal.originals(ended) == {} and personal.originals(live)  # the live chat keeps its own
    assert store.messages(ended)  # the masked transcript stays for the retention time (30 days)
    assert sorted(personal.conversations_of("850709-9805")) == sorted([live, ended])


def test_retention_purges_both_stores_per_municipality(world):
    engine, store, personal, tracker, events = world
    municipalities.update_settings(engine, "ekby", {"retention_days": 0})
    old_default = chat(store, personal, tracker, events, "default", f"pnr {PNR}", ended_ago=31 * 86400)
    new_default = chat(store, personal, tracker, events, "default", "hej", ended_ago=86400)
    ekby_closed = chat(store, personal, tracker, events, "ekby", "anna@ekby.se", ended_ago=5)
    ekby_idle = chat(store, personal, tracker, events, "ekby", "hej", ended_ago=2 * 3600, state="bot")
    ekby_live = chat(store, personal, tracker, events, "ekby", "hej", ended_ago=60, state="bot")
    ekby_waiting = chat(store, personal, tracker, events, "ekby", "hej", ended_ago=9 * 86400, state="queued")
    with_open_ticket = chat(store, personal, tracker, events, "ekby", "ring mig", ended_ago=9 * 86400)
    tickets.create(engine, store.get(with_open_ticket), "Anna", "0701234567", "ring mig")

    report = retention.purge(engine, tracker)
    gone = {old_default, ekby_closed, ekby_idle}
    assert report.conversations == 3
    for conversation_id in gone:
        assert store.messages(conversation_id) == []
        assert tracker.texts(conversation_id) == []
        assert count(engine, personal_references, conversation_id) == 0
        row = store.get(conversation_id)  # the statistics row stays, without its free-text comment
        assert row["csat_comment"] is None and row["state"] in ("closed", "bot")
    for conversation_id in (new_default, ekby_live, ekby_waiting, with_open_ticket):
        assert store.messages(conversation_id), conversation_id
        assert tracker.texts(conversation_id), conversation_id
    assert retention.purge(engine, tracker).conversations == 0  # nothing left to do: idempotent


def test_erase_and_export_one_citizen(world):
    engine, store, personal, tracker, events = world
    first = chat(store, personal, tracker, events, "default", f"Mitt personnummer är {PNR}", ended_ago=60, state="bot")
    second = chat(store, personal, tracker, events, "default", "ring 070-111 22 33", ended_ago=60)
    tickets.create(engine, store.get(second), "Anna", "+46701112233", "ring mig")
    other = chat(store, personal, tracker, events, "default", "hej", ended_ago=60)
    staff = {"id": 7, "username": "dpo"}

    assert retention.find_citizen(engine, personal, "8507099805") == [first]
    assert retention.find_citizen(engine, personal, "0701112233") == [second]

    exported = retention.export(engine, personal, [first, second], staff)
    texts = [m["text"] for c in exported["conversations"] for m in c["messages"]]
    assert f"Mitt personnummer är {PNR}" in texts  # the citizen's own text while the chat is live
    assert exported["conversations"][1]["callback_requests"][0]["contact"] == "+46701112233"

    result = retention.erase(engine, tracker, [first, second], staff)
    assert sorted(result["conversations"]) == sorted([first, second])
    with engine.connect() as conn:
        assert conn.execute(select(conversations).where(conversations.c.id.in_([first, second]))).all() == []
        assert conn.execute(select(messages).where(messages.c.conversation_id.in_([first, second]))).all() == []
        assert conn.execute(select(message_originals)).all() == []
        assert conn.execute(select(tickets.tickets)).all() == []
    assert tracker.texts(first) == [] and tracker.texts(second) == []
    assert store.messages(other) and tracker.texts(other)
    log = access_log.entries(engine, None)
    assert [(e["action"], e["username"]) for e in log].count(("erase", "dpo")) == 2
    assert [(e["action"], e["username"]) for e in log].count(("export", "dpo")) == 2
    assert access_log.entries(engine, ["ekby"]) == []

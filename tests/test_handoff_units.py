"""The agent side's building blocks on both databases: opening hours, assignment order and preference,
presence and the grace period, canned-response search, report arithmetic."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from conversations.store import ConversationStore
from core.users import UserStore
from handoff import presence
from handoff.assignment import Assignments, Conflict
from handoff.canned import CannedStore, pick_text
from handoff.queue import Queue, is_open, validate_hours
from insights.reports import concurrency

STHLM = ZoneInfo("Europe/Stockholm")
HOURS = {
    "opening_hours": {
        "timezone": "Europe/Stockholm",
        "weekly": {"mon": [["08:00", "16:00"]], "tue": [["08:00", "16:00"]]},
        "holidays": ["2026-01-06"],
    }
}


def at(y, m, d, hh, mm=0) -> float:
    return dt.datetime(y, m, d, hh, mm, tzinfo=STHLM).timestamp()


def test_opening_hours_with_holidays():
    assert is_open(HOURS, at(2026, 1, 12, 9)) == (True, None)  # a Monday morning
    closed, opens = is_open(HOURS, at(2026, 1, 12, 17))
    assert not closed and opens == at(2026, 1, 13, 8)
    closed, opens = is_open(HOURS, at(2026, 1, 6, 9))  # Tuesday, but Epiphany
    assert not closed and opens == at(2026, 1, 12, 8)
    assert is_open({}, at(2026, 1, 6, 3)) == (True, None)
    with pytest.raises(ValueError):
        validate_hours({"weekly": {"fri": [["16:00", "08:00"]]}})
    with pytest.raises(ValueError):
        validate_hours({"timezone": "Mars/Base", "weekly": {}})


def test_concurrency():
    assert concurrency([(0, 10), (5, 15), (6, 7)]) == (3, 1.4)  # 21 chat-seconds over 15 busy seconds
    assert concurrency([]) == (0, 0.0)


def _agent(users: UserStore, engine, name: str, languages: list[str], municipalities=None, max_chats=2) -> dict:
    user = users.create(
        name, "a long password", languages=languages, municipalities=municipalities or ["default"], max_chats=max_chats
    )
    user = users.update(user["id"], status="available")
    presence.opened(engine, f"conn-{name}", user["id"], "test")
    return user


def test_assignment_order_preference_and_capacity(engine):
    convs, users = ConversationStore(engine), UserStore(engine)
    queue, assign = Queue(engine, convs), Assignments(engine)
    sv = _agent(users, engine, "sv", ["sv"], max_chats=1)
    ar = _agent(users, engine, "ar", ["sv", "ar"], max_chats=1)
    ids = []
    for lang in ("ar", "sv", "sv"):
        conv = convs.create("default", lang)
        queue.enqueue(conv["id"], "requested")
        ids.append(conv["id"])
        time.sleep(0.01)
    assert [p["position"] for p in queue.positions().values()] == [1, 2, 3]
    taken = {t.conversation_id: t.user_id for t in assign.auto_assign(settle_seconds=0)}
    assert taken == {ids[0]: ar["id"], ids[1]: sv["id"]}  # longest waiting first, to who speaks Arabic
    assert queue.position(ids[2])["position"] == 1  # the third waits: nobody has room
    with pytest.raises(Conflict):
        assign.claim(ids[0], sv)  # taken already
    # Conditional updates: a second claim of the same waiting conversation loses.
    assert assign.claim(ids[2], sv).user_id == sv["id"]
    with pytest.raises(Conflict):
        assign.claim(ids[2], ar)


def test_grace_period_requeues_to_the_front(engine, monkeypatch):
    convs, users = ConversationStore(engine), UserStore(engine)
    queue, assign = Queue(engine, convs), Assignments(engine)
    agent = _agent(users, engine, "g", ["sv"])
    first = convs.create("default", "sv")["id"]
    queue.enqueue(first, "requested")
    assign.claim(first, agent)
    later = convs.create("default", "sv")["id"]
    queue.enqueue(later, "requested")
    presence.closed(engine, "conn-g")
    assert presence.gone_user_ids(engine, {agent["id"]}) == set()  # within the grace period
    assert presence.gone_user_ids(engine, {agent["id"]}, now=time.time() + presence.GRACE_SECONDS + 1) == {agent["id"]}
    assign.requeue_agents({agent["id"]})
    assert [c["id"] for c in queue.waiting()] == [first, later]


def test_a_chat_changes_only_if_nobody_moved_it_since_it_was_read(engine):
    """ConversationStore.change_in, the conditional UPDATE assignments take and release chats through."""
    convs, users = ConversationStore(engine), UserStore(engine)
    queue, assign = Queue(engine, convs), Assignments(engine)
    anna, bo = _agent(users, engine, "anna", ["sv"]), _agent(users, engine, "bo", ["sv"])
    cid = convs.create("default", "sv")["id"]
    queue.enqueue(cid, "requested")
    with engine.connect() as conn:
        seen = ConversationStore.find_in(conn, cid)
    assign.claim(cid, anna)  # another process got there between the read and the write
    with engine.begin() as conn:
        assert ConversationStore.change_in(conn, seen, state="agent", assigned_to=bo["id"]) is False
    assert convs.get(cid)["assigned_to"] == anna["id"]
    transferred = assign.transfer(cid, anna, bo)  # with a fresh read it goes through
    assert transferred.previous_user_id == anna["id"] and convs.get(cid)["assigned_to"] == bo["id"]
    with engine.begin() as conn:  # the holder changed (anna -> bo): a change based on anna's chat loses
        assert ConversationStore.change_in(conn, {**seen, "state": "agent", "assigned_to": anna["id"]},
                                           state="queued", assigned_to=None) is False
    with pytest.raises(Conflict):
        assign.release(cid, "queued", "requeued", user_id=anna["id"])  # not hers any more
    before = assign.release(cid, "queued", "requeued", user_id=bo["id"])
    assert before["assigned_to"] == bo["id"] and convs.get(cid)["state"] == "queued"
    with engine.connect() as conn:
        assert ConversationStore.find_in(conn, "no-such-chat") is None


def test_canned_search_and_language_variant(engine):
    store = CannedStore(engine)
    store.create("default", "oppet", "Öppettider", {"sv": "Vi har öppet 8–16.", "en": "We are open 8–16."})
    store.create("default", "bygglov", "Bygglov", {"sv": "Ansök om bygglov i e-tjänsten."})
    store.create("ekby", "oppet", "Öppettider Ekby", {"sv": "Ekby: 9–15."})
    assert [i["shortcut"] for i in store.search("default", "/opp")] == ["oppet"]
    assert [i["shortcut"] for i in store.search("default", "e-tjänsten")] == ["bygglov"]
    item = store.by_shortcut("default", "oppet")
    assert pick_text(item, "en") == ("en", "We are open 8–16.")
    assert pick_text(item, "ar") == ("sv", "Vi har öppet 8–16.")
    assert len(store.list("ekby")) == 1


def test_user_cli(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = str(Path(sys.executable).parent / "kommunchatt")
    env = {**os.environ, "KOMMUNCHATT_DATA_DIR": str(tmp_path), "KOMMUNCHATT_PASSWORD": "a long password"}
    env.pop("DATABASE_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, "user", *args], env=env, capture_output=True, text=True, timeout=120)

    assert run("add", "bo", "--languages", "sv,fi", "--display-name", "Bo").returncode == 0
    assert run("add", "bo").returncode == 1  # exists already
    assert run("set", "bo", "--max-chats", "5", "--municipalities", "default,ekby").returncode == 0
    assert "bo\tagent\tsv,fi\tdefault,ekby" in run("list").stdout
    assert run("disable", "bo").returncode == 0
    from core.config import database_url
    from core.db import make_engine

    engine = make_engine(database_url(tmp_path))
    store = UserStore(engine)
    bo = next(u for u in store.list() if u["username"] == "bo")
    assert bo["max_chats"] == 5 and bo["display_name"] == "Bo"
    assert store.login("bo", "a long password") is None  # disabled
    engine.dispose()

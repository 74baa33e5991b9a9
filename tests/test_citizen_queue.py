"""The citizen's side of the queue (issue 16) against a real `kommunchatt serve` (no Rasa) and real consoles:
leaving the queue and ending a chat (the agent's console hears it at once), wait estimates from measured
handling times and the agents online, the conversation's language following what the citizen writes,
routing and rebalancing by language, the agent who lacks the language, the widget's look and topics, and
the answer API's `answer_language` contract.
"""

from __future__ import annotations

import contextlib
import json
import re
import time

import httpx
import pytest
from sqlalchemy import select, update

from actions.waits import _PHRASES, plural_category, wait_phrase
from conversations.store import ConversationStore
from conversations.tables import conversations
from core.config import database_url as resolve
from core.db import make_engine
from core.i18n import say
from core.users import UserStore
from handoff import presence
from handoff.queue import Pace, Queue
from knowledge.kbfile import load_path
from knowledge.store import KnowledgeStore
from kommunchatt.runner import seed_knowledge
from tests.conftest import ROOT
from tests.e2e import prime_data_dir
from tests.test_handoff_support import Service, Socket

ENTRIES = {e.id: e for e in load_path(ROOT / "data" / "knowledge")}
ARABIC_QUESTION = ENTRIES["home-care-apply"].questions["ar"][0]
WIDGET_TEXTS = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "web" / "i18n").glob("*.json")}

_names = iter(range(10_000))


def name(prefix: str) -> str:
    return f"{prefix}{next(_names)}-{int(time.time() * 1000) % 100000}"


# --- pure: the wait in words, the estimate --------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "seconds", "said"),
    [
        ("sv", 60, "ungefär 1 minut"),
        ("sv", 61, "ungefär 2 minuter"),
        ("sv", 30, "under en minut"),
        ("en", 60, "about 1 minute"),
        ("en", 180, "about 3 minutes"),
        ("ar", 60, "حوالي دقيقة واحدة"),
        ("ar", 120, "حوالي دقيقتين"),
        ("ar", 300, "حوالي 5 دقائق"),
        ("ar", 660, "حوالي 11 دقيقة"),
        ("uk", 21 * 60, "приблизно 21 хвилина"),
        ("uk", 22 * 60, "приблизно 22 хвилини"),
        ("uk", 12 * 60, "приблизно 12 хвилин"),
        ("pl", 60, "około 1 minuty"),
        ("fi", 600, "noin 10 minuuttia"),
    ],
)
def test_the_wait_is_said_with_the_right_plural(language, seconds, said):
    assert wait_phrase(language, seconds) == said


def test_the_widget_says_the_wait_with_the_same_words_as_the_bot():
    """web/i18n wait_* keys are the same phrases as actions/waits.py (the bot's message and the status line)."""
    for language, (under, forms) in _PHRASES.items():
        texts = WIDGET_TEXTS[language]
        assert texts["wait_under"] == under, language
        for category, form in forms.items():
            assert texts[f"wait_{category}"] == form, (language, category)
        assert "{wait}" in texts["queue_wait"] and "{minutes}" not in texts["queue_wait"], language


def test_plural_categories_follow_cldr():
    assert [plural_category("ar", n) for n in (1, 2, 3, 10, 11, 100, 103)] == [
        "one",
        "two",
        "few",
        "few",
        "other",
        "other",
        "few",
    ]
    assert [plural_category("uk", n) for n in (1, 2, 5, 11, 21, 22, 25)] == [
        "one",
        "few",
        "other",
        "other",
        "one",
        "few",
        "other",
    ]


def test_the_estimate_uses_free_places_handling_time_and_capacity():
    pace = Pace(handle_seconds=300, agents_online=2, capacity=4, free=1)
    assert pace.wait_seconds(1) == 0  # a free place: taken at the next pass
    assert pace.wait_seconds(2) == 75  # one chat ahead of it over 4 places of 300 s
    assert pace.wait_seconds(10) == 675
    assert Pace(300, 0, 0, 0).estimate(10) == {"estimated_wait_seconds": None, "agents_online": 0}


def test_handling_time_is_measured_and_nobody_online_means_no_estimate(engine):
    convs, users = ConversationStore(engine), UserStore(engine)
    queue = Queue(engine, convs, KnowledgeStore(engine))
    now = time.time()
    for seconds in (200, 300, 400):
        conv = convs.create("default", "sv")
        convs.update(conv["id"], state="closed", assigned_at=now - 1000 - seconds, closed_at=now - 1000)
    waiting = [convs.create("default", "sv") for _ in range(3)]
    for conv in waiting:
        queue.enqueue(conv["id"], "requested")
        time.sleep(0.01)
    pace = queue.pace()
    assert pace.handle_seconds == pytest.approx(300)
    assert queue.position(waiting[2]["id"]) == {
        "state": "queued",
        "position": 3,
        "estimated_wait_seconds": None,
        "agents_online": 0,
    }
    agent = users.create("pace-agent", "a long password", languages=["sv"], max_chats=2)
    users.update(agent["id"], status="available")
    presence.opened(engine, "conn-pace", agent["id"], "test")
    busy = convs.create("default", "sv")
    convs.update(busy["id"], state="agent", assigned_to=agent["id"], assigned_at=now)
    assert queue.position(waiting[0]["id"])["estimated_wait_seconds"] == 0  # one free place
    assert queue.position(waiting[2]["id"]) == {
        "state": "queued",
        "position": 3,
        "estimated_wait_seconds": 300,
        "agents_online": 1,
    }  # (3 - 1) * 300 / 2


# --- the running service ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service_once(tmp_path_factory, model_path):
    data_dir = tmp_path_factory.mktemp("citizen-queue")
    prime_data_dir(data_dir)  # the seed knowledge base, its vectors from the shared cache
    seed_knowledge(data_dir, None, log=lambda *_: None)
    service = Service(data_dir, model_path, grace_s=3).start()
    service.engine = make_engine(resolve(data_dir, None))
    service.admin = service.agent("admin-cux", role="admin")
    yield service
    service.stop()
    service.engine.dispose()


@pytest.fixture
def svc(service_once):
    """Each test starts with nobody waiting and nobody's chats left over."""
    with service_once.engine.begin() as conn:
        conn.execute(update(conversations).where(conversations.c.state.in_(["queued", "agent"]))
                     .values(state="closed", assigned_to=None))
    return service_once


@contextlib.asynccontextmanager
async def console(svc, token: str, status: str = "available"):
    socket = await Socket.agent(svc, token)
    try:
        await socket.wait(lambda e: e.get("type") == "hello")
        if status != "available":
            await socket.send({"type": "status", "status": status, "ref": "s"})
            await socket.wait(lambda e: e.get("type") == "ack" and e.get("ref") == "s")
        yield socket
    finally:
        await socket.close()


def new_session(svc, language: str = "sv") -> str:
    response = httpx.post(f"{svc.url}/api/v1/chat/sessions", json={"language": language, "municipality": "default"})
    response.raise_for_status()
    return response.json()["session_id"]


def queued_ids(event: dict) -> set[str]:
    return {item["id"] for item in event.get("items", [])}


@pytest.mark.asyncio
async def test_the_citizen_leaves_the_queue_and_the_console_sees_it_at_once(svc):
    async with console(svc, svc.agent(name("away")), status="away") as agent:
        sid = svc.citizen("sv")
        await agent.wait(lambda e: e.get("type") == "queue" and sid in queued_ids(e))
        start = len(agent.events)
        left_at = time.monotonic()
        response = httpx.post(f"{svc.url}/api/v1/chat/sessions/{sid}/leave-queue")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "bot"
        await agent.wait(lambda e: e.get("type") == "queue" and sid not in queued_ids(e), start=start, timeout=5)
        assert time.monotonic() - left_at < 2.5
    transcript = svc.transcript(sid)
    assert transcript["state"] == "bot" and transcript["queue"]["position"] == 0
    last = transcript["messages"][-1]
    assert last["custom"]["kind"] == "left_queue" and last["text"] == say("left_queue", "sv")
    again = httpx.post(f"{svc.url}/api/v1/chat/sessions/{sid}/leave-queue")
    assert again.status_code == 409 and "not waiting" in again.json()["detail"]
    assert httpx.post(f"{svc.url}/api/v1/chat/sessions/nope/leave-queue").status_code == 404


@pytest.mark.asyncio
async def test_the_citizen_ends_a_chat_with_an_agent_who_is_told_at_once(svc):
    async with console(svc, svc.agent(name("ender"))) as agent:
        sid = svc.citizen("sv")
        await agent.wait(lambda e: e.get("type") == "chat" and e["conversation"]["id"] == sid, timeout=10)
        start = len(agent.events)
        response = httpx.post(f"{svc.url}/api/v1/chat/sessions/{sid}/end")
        assert response.status_code == 200 and response.json()["state"] == "closed", response.text
        told = await agent.wait(
            lambda e: e.get("type") == "message" and (e.get("custom") or {}).get("kind") == "citizen_ended",
            start=start,
            timeout=3,
        )
        closed = await agent.wait(
            lambda e: e.get("type") == "chat_closed" and e["conversation_id"] == sid, start=start, timeout=3
        )
        assert told["conversation_id"] == sid and closed["reason"] == "citizen_ended"
    with svc.engine.connect() as conn:
        row = conn.execute(select(conversations).where(conversations.c.id == sid)).first()
    assert row.state == "closed" and row.outcome == "abandoned" and row.closed_at
    kinds = [(m.get("custom") or {}).get("kind") for m in svc.transcript(sid)["messages"]]
    assert kinds[-2:] == ["citizen_ended", "rating_request"]  # with a person: the citizen may rate
    assert httpx.post(f"{svc.url}/api/v1/chat/sessions/{sid}/rating", json={"score": 4}).status_code in (200, 204)
    ended = httpx.post(f"{svc.url}/api/v1/chat/sessions/{sid}/end")
    assert ended.status_code == 409 and "bot" in ended.json()["detail"]


@pytest.mark.asyncio
async def test_nobody_online_gives_no_estimate_and_says_so(svc):
    sid = new_session(svc)
    result = svc.handoff(sid)
    assert result["state"] == "queued" and result["agents_online"] == 0 and result["estimated_wait_seconds"] is None
    assert svc.transcript(sid)["queue"]["agents_online"] == 0
    async with console(svc, svc.agent(name("pace"), max_chats=1), status="away"):
        # online but away: still nobody to answer
        assert svc.transcript(sid)["queue"]["agents_online"] == 0
    engine_queue = Queue(svc.engine, ConversationStore(svc.engine), KnowledgeStore(svc.engine))
    async with console(svc, svc.agent(name("pace"), languages="fi", max_chats=1)) as agent:
        await agent.wait(lambda e: e.get("type") == "chat", timeout=10)  # takes the waiting chat
        second = new_session(svc)
        result = svc.handoff(second)
        pace = engine_queue.pace()
        assert result["agents_online"] == 1 and pace.free == 0 and pace.capacity == 1
        assert result["estimated_wait_seconds"] == pace.wait_seconds(result["position"]) > 0


@pytest.mark.asyncio
async def test_the_language_follows_the_citizen_routes_warns_and_rebalances(svc):
    sid = new_session(svc, "sv")  # a widget left in Swedish ...
    svc.say(sid, ARABIC_QUESTION)  # ... and a citizen who writes Arabic
    assert svc.transcript(sid)["language"] == "ar"
    svc.say(sid, "ok")  # a short word in no clear language keeps it
    assert svc.transcript(sid)["language"] == "ar"
    svc.say(sid, ARABIC_QUESTION)  # (the suggestions below are for the last question)

    swedish_token = svc.agent(name("sv-only"), languages="sv")
    async with console(svc, swedish_token) as swedish:
        assert svc.handoff(sid)["state"] == "queued"
        chat = await swedish.wait(lambda e: e.get("type") == "chat" and e["conversation"]["id"] == sid, timeout=10)
        assert chat["conversation"]["language"] == "ar" and chat["conversation"]["language_warning"] is True
        await swedish.send({"type": "suggest", "conversation_id": sid})
        hint = await swedish.wait(lambda e: e.get("type") == "suggestions" and e["conversation_id"] == sid)
        assert hint["language_warning"] is True
        top = hint["answers"][0]
        assert top["id"] == "home-care-apply" and top["language"] == "ar"
        assert top["translation"] == {"language": "sv", "text": ENTRIES["home-care-apply"].answer["sv"]}
        # An Arabic-speaking agent comes online: the chat the Swedish agent has not answered moves to them.
        start = len(swedish.events)
        async with console(svc, svc.agent(name("ar"), languages="ar,sv")) as arabic:
            moved = await arabic.wait(lambda e: e.get("type") == "chat" and e["conversation"]["id"] == sid, timeout=10)
            assert moved["conversation"]["language_warning"] is False
            dropped = await swedish.wait(
                lambda e: e.get("type") == "chat_closed" and e["conversation_id"] == sid, start=start
            )
            assert dropped["reason"] == "transferred"


@pytest.mark.asyncio
async def test_a_chat_the_agent_answered_stays_with_them(svc):
    sid = new_session(svc, "sv")
    svc.say(sid, ARABIC_QUESTION)
    swedish_token = svc.agent(name("sv-answers"), languages="sv")
    async with console(svc, swedish_token) as swedish:
        svc.handoff(sid)
        await swedish.wait(lambda e: e.get("type") == "chat" and e["conversation"]["id"] == sid, timeout=10)
        svc.staff(swedish_token).post(
            f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "مرحبا"}
        ).raise_for_status()
        async with console(svc, svc.agent(name("ar-late"), languages="ar")) as arabic:
            await arabic.wait(lambda e: e.get("type") == "hello")
            time.sleep(2.5)  # two assignment passes
            assert not [e for e in arabic.events if e.get("type") == "chat"]
    with svc.engine.connect() as conn:
        assert conn.execute(select(conversations.c.state).where(conversations.c.id == sid)).scalar() == "agent"


# --- the widget's look and topics; the answer API's contract ------------------------------------------------


def test_the_widget_config_has_the_municipality_look_and_top_topics(svc):
    base = svc.url
    config = httpx.get(f"{base}/api/v1/chat/config", params={"municipality": "default", "language": "ar"}).json()
    assert config["name"] is None and len(config["topics"]) == 4
    admin = svc.staff(svc.admin)
    bad = admin.put("/api/v1/admin/municipalities/default/widget", json={"primary_color": "#ffd700"})
    assert bad.status_code == 422 and "4.5:1" in bad.text
    assert (
        admin.put("/api/v1/admin/municipalities/default/widget", json={"topics": ["no-such-entry"]}).status_code == 422
    )
    assert (
        admin.put("/api/v1/admin/municipalities/default/widget", json={"logo_url": "javascript:alert(1)"}).status_code
        == 422
    )
    look = {
        "name": "Ekby kommun",
        "primary_color": "#1D5C2E",
        "logo_url": "/static/ekby.svg",
        "topics": ["waste-collection-schedule", "home-care-apply"],
    }
    saved = admin.put("/api/v1/admin/municipalities/default/widget", json=look)
    assert saved.status_code == 200, saved.text
    config = httpx.get(f"{base}/api/v1/chat/config", params={"municipality": "default", "language": "ar"}).json()
    assert config["name"] == "Ekby kommun" and config["colors"]["primary"] == "#1d5c2e"
    assert config["logo_url"] == "/static/ekby.svg"
    assert [t["id"] for t in config["topics"][:2]] == look["topics"]
    assert config["topics"][1]["question"] == ENTRIES["home-care-apply"].questions["ar"][0]
    topics = httpx.get(f"{base}/api/v1/chat/topics", params={"municipality": "default", "language": "fi"}).json()
    first = topics["topics"][0]
    entry = ENTRIES["waste-collection-schedule"]
    assert first["language"] == ("fi" if "fi" in entry.answer else "sv")
    assert first["text"] == entry.answer[first["language"]]
    assert httpx.get(f"{base}/api/v1/chat/config", params={"municipality": "nowhere"}).status_code == 404
    assert (
        svc.staff(svc.agent(name("not-admin")))
        .put("/api/v1/admin/municipalities/default/widget", json=look)
        .status_code
        == 403
    )
    admin.put("/api/v1/admin/municipalities/default/widget", json={})  # back to the defaults for other tests


def test_the_answer_api_says_which_language_the_answer_is_in(svc):
    """The action reads `answer_language`: the API must send it (it was dropped by the response model)."""
    missing_fi = next(e for e in ENTRIES.values() if "fi" not in e.answer and e.questions.get("sv"))
    result = httpx.post(
        f"{svc.url}/api/v1/answer", json={"text": missing_fi.questions["sv"][0], "language": "fi"}
    ).json()
    assert result["decision"] in ("answer", "clarify"), result
    assert result["answers"][0]["language"] == "sv"
    assert result["answer_language"] == "sv"
    assert result["notice"] == "Tämä vastaus on saatavilla vain ruotsiksi."
    swedish = httpx.post(f"{svc.url}/api/v1/answer", json={"text": missing_fi.questions["sv"][0]}).json()
    assert swedish["answer_language"] == "sv" and "notice" not in swedish
    assert re.fullmatch(r"[a-z]{2}", swedish["language"])

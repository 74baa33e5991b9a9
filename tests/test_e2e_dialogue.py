"""Every dialogue flow of issue 4 through the chat API, in Swedish, Arabic and English.

One running system (service + Rasa + actions, SQLite) for the module; PostgreSQL is covered by the
skeleton test. Expected texts come from the domain (the language's variation) and the seed knowledge
base, never from copies in this file. Clarify and handoff depend on the knowledge service's
decision, so those tests first ask `/api/v1/answer` which message it clarifies or hands over, then
check the conversation follows that decision.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from actions.waits import wait_phrase
from core.config import database_url as resolve
from core.config import internal_token
from core.db import make_engine
from core.municipalities import municipalities
from knowledge.decision import FALLBACK_LANGUAGE
from knowledge.kbfile import load_path
from kommunchatt.runner import free_port
from tests.conftest import ROOT
from tests.e2e import Citizen, running_system, staff_login

pytestmark = pytest.mark.e2e

LANGUAGES = ["sv", "ar", "en"]
DOMAIN = yaml.safe_load((ROOT / "bot" / "domain.yml").read_text())
ENTRIES = {e.id: e for e in load_path(ROOT / "data" / "knowledge")}

# Requests for a person, misspelled as citizens write them.
ASK_PERSON = {
    "sv": ["jag vill prata med en riktg människa", "kan jag få prata med en handläggre"],
    "ar": ["اريد التحدث مع موظف", "ممكن اكلم شخص حقيقي"],
    "en": ["can i talk to a reel person pls", "i want an agnet"],
}
SMALL_TALK = {  # greet, thanks, goodbye
    "sv": ("Hej!", "tack så mycket", "hej då"),
    "ar": ("مرحبا", "شكرا جزيلا", "مع السلامة"),
    "en": ("Hello", "thanks a lot", "bye"),
}
HELPED, NOT_HELPED = '/affirm{"feedback":"yes"}', '/deny{"feedback":"no"}'  # actions/common.py (Rasa's venv)
YES_NO = {"sv": ("ja", "nej"), "ar": ("نعم", "لا"), "en": ("yes", "no")}
# Short or broad messages, and questions no entry answers: the knowledge service decides which
# of them it clarifies or hands over (the tests use the first that it does).
BROAD = {
    "sv": ["förskola", "bygglov", "parkering", "sopor", "avgift"],
    "ar": ["روضة الأطفال", "الحضانة", "موقف السيارات", "رسوم"],
    "en": ["preschool", "daycare", "parking", "permit", "fees"],
}
UNANSWERABLE = {
    "sv": ["Vem vann fotbolls-VM 1994?", "Kan du rekommendera ett recept på lasagne?", "asdkjh qwe zzxq"],
    "ar": ["من فاز بكأس العالم لكرة القدم عام 1994؟", "هل يمكنك أن تقترح وصفة لازانيا؟", "asdkjh qwe zzxq"],
    "en": ["Who won the football World Cup in 1994?", "Can you recommend a lasagne recipe?", "asdkjh qwe zzxq"],
}
SWITCH = {  # (session language, request, target language)
    "sv": ("kan vi prata engelska?", "en"),
    "ar": ("هل يمكن أن نتحدث بالإنجليزية؟", "en"),
    "en": ("can we speak Swedish?", "sv"),
}
CALLBACK = {  # name, contact, message, consent
    "sv": ("Anna Svensson", "070-123 45 67", "Ring mig om bygglovet för altanen", "ja"),
    "ar": ("أحمد علي", "ahmad.ali@example.se", "أريد أن يتصل بي أحد بخصوص رخصة البناء", "نعم"),
    "en": ("John Smith", "+46 70 765 43 21", "Please call me about my parking permit", "yes"),
}


# --- expected content ------------------------------------------------------------------------------


def variation(name: str, language: str) -> dict:
    """The domain's variation of a response for a language (the unconditioned one is Swedish)."""
    for variant in DOMAIN["responses"][name]:
        values = [c.get("value") for c in variant.get("condition") or [] if c.get("name") == "language"]
        if language in values or (not values and language == "sv"):
            return variant
    raise AssertionError(f"{name} has no variation for {language}")


def said(name: str, language: str, **values) -> str:
    return variation(name, language)["text"].format(**values)


def buttons(name: str, language: str) -> list[dict]:
    return variation(name, language).get("buttons") or []


def answer_text(entry_id: str, language: str) -> str:
    """What the bot says for an entry: the answer unchanged (the Swedish one where the entry has none in
    the citizen's language), the link on its own line."""
    entry = ENTRIES[entry_id]
    answer = entry.answer.get(language) or entry.answer[FALLBACK_LANGUAGE]
    if entry.url and entry.url not in answer:
        return f"{answer}\n{entry.url}"
    return answer


def texts(reply: dict) -> list[str]:
    return [m["text"] for m in reply["messages"] if m["text"]]


def customs(reply: dict, kind: str | None = None) -> list[dict]:
    found = [m["custom"] for m in reply["messages"] if m.get("custom")]
    return [c for c in found if kind is None or c.get("kind") == kind]


def with_buttons(reply: dict) -> list[dict]:
    return [m for m in reply["messages"] if m.get("buttons")]


# --- the running system ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("e2e-dialogue")
    with running_system(data_dir) as system:
        system.engine_url = resolve(data_dir, None)
        system.token = internal_token(data_dir)
        yield system


@pytest.fixture(scope="module")
def agent(system) -> httpx.Client:
    return staff_login(system.service_url, system.engine_url)


@pytest.fixture(scope="module")
def admin(system) -> httpx.Client:
    # A global admin ("*"): it configures the second municipality 'natt' too (an admin acts only on the
    # municipalities listed on it otherwise, core.deps.MunicipalityScope).
    return staff_login(system.service_url, system.engine_url, role="admin", municipalities=["*"])


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def municipality_with_hours(system, admin, municipality: str, hours: list[str], holidays: list[str]) -> dict:
    """Add `municipality` with the same `hours` every day and these holidays; the opening-hours answer."""
    engine = make_engine(system.engine_url)
    with engine.begin() as conn:
        conn.execute(municipalities.insert().values(id=municipality, name=municipality.title(), settings={}))
    engine.dispose()
    week = {day: [hours] for day in DAYS}
    response = admin.put(
        f"/api/v1/admin/municipalities/{municipality}/opening-hours",
        json={"timezone": "Europe/Stockholm", "weekly": week, "holidays": holidays},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def closed_municipality(system, admin) -> str:
    """A second municipality whose contact centre is closed today and tomorrow (holidays)."""
    today = dt.datetime.now(ZoneInfo("Europe/Stockholm")).date()
    holidays = [today.isoformat(), (today + dt.timedelta(days=1)).isoformat()]
    assert municipality_with_hours(system, admin, "natt", ["08:00", "16:00"], holidays)["open"] is False
    return "natt"


@pytest.fixture(scope="module")
def all_day_municipality(system, admin) -> str:
    """A third municipality whose contact centre is open all day every day (no holidays)."""
    municipality_with_hours(system, admin, "dygn", ["00:00", "23:59"], [])
    return "dygn"


def decision(system, text: str, language: str) -> dict:
    response = httpx.post(f"{system.service_url}/api/v1/answer", json={"text": text, "language": language})
    response.raise_for_status()
    return response.json()


def first_decided(system, texts_: list[str], language: str, wanted: str) -> tuple[str, dict]:
    """The first message the knowledge service decides `wanted` for (clarify or handoff)."""
    seen = {}
    for text in texts_:
        result = decision(system, text, language)
        if result["decision"] == wanted:
            return text, result
        seen[text] = (result["decision"], result["confidence"])
    pytest.fail(
        f"the knowledge service decides {wanted} for none of {seen} ({language}): "
        f"its decision calibration (knowledge/settings.py, tests/test_retrieval.py) is off"
    )


def served_tracker(system, session_id: str) -> dict:
    """The tracker Rasa serves for a conversation."""
    return httpx.get(
        f"http://127.0.0.1:{system.rasa_port}/conversations/{session_id}/tracker",
        params={"token": system.token},
        timeout=10,
    ).json()


def rasa_actions(system, session_id: str) -> list[str]:
    """The actions Rasa ran in a conversation (from its tracker)."""
    return [e["name"] for e in served_tracker(system, session_id)["events"] if e["event"] == "action"]


def assert_queued(citizen: Citizen, reply: dict, language: str, reason: str, agent: httpx.Client) -> None:
    """The citizen is told, in their language, their place in the queue and the estimated wait."""
    assert reply["state"] == "queued", reply
    [handoff] = customs(reply, "handoff")
    if handoff["agents_online"] == 0:  # nobody to answer: said so, with "leave a message" and "leave the queue"
        assert said("utter_no_agent_online", language, position=handoff["position"]) in texts(reply)
        [offer] = [
            m
            for m in with_buttons(reply)
            if m["text"] == said("utter_no_agent_online", language, position=handoff["position"])
        ]
        assert [b["payload"] for b in offer["buttons"]] == ['/request_human{"callback":"yes"}', "/leave_queue"]
    else:
        wait = wait_phrase(language, handoff["estimated_wait_seconds"])
        assert said("utter_handoff_queued", language, position=handoff["position"], wait=wait) in texts(reply)
    transcript = citizen.http.get(f"/api/v1/chat/sessions/{citizen.session_id}").json()
    assert transcript["queue"]["position"] == handoff["position"] >= 1
    [queued] = [q for q in agent.get("/api/v1/handoff/queue").json() if q["session_id"] == citizen.session_id]
    assert queued["reason"] == reason


def assert_answer(reply: dict, entry_id: str, language: str) -> None:
    assert reply["state"] == "bot", reply
    assert answer_text(entry_id, language) in texts(reply), reply
    assert customs(reply, "answer")[0]["entry_id"] == entry_id
    [answer] = with_buttons(reply)  # quiet thumbs on the answer itself, no "did that help?" after every answer
    assert answer["text"] == answer_text(entry_id, language)
    assert [(b["title"], b["payload"]) for b in answer["buttons"]] == [
        (said("utter_button_helped", language), HELPED),
        (said("utter_button_not_helped", language), NOT_HELPED),
    ]
    assert said("utter_did_that_help", language) not in texts(reply)


# --- answer, feedback, clarify ---------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_answer_not_helpful_twice_offers_a_person(system, agent, language):
    citizen = Citizen(system.service_url, language)
    yes, no = YES_NO[language]
    reply = citizen.say(ENTRIES["waste-collection-schedule"].first_question(language))
    assert_answer(reply, "waste-collection-schedule", language)
    assert "https://e.ekby.se/hamtdag" in "\n".join(texts(reply))

    reply = citizen.say(no)
    assert texts(reply) == [said("utter_ask_rephrase", language)]

    reply = citizen.say(ENTRIES["preschool-application"].first_question(language))
    assert_answer(reply, "preschool-application", language)
    reply = citizen.say(NOT_HELPED)  # the thumbs-down under the answer
    [offer] = with_buttons(reply)
    assert offer["text"] == said("utter_offer_human", language)
    assert offer["buttons"] == buttons("utter_offer_human", language)
    assert_queued(citizen, citizen.say(yes), language, "negative_feedback", agent)


@pytest.mark.parametrize("language", LANGUAGES)
def test_answer_that_helped(system, language):
    citizen = Citizen(system.service_url, language)
    assert_answer(
        citizen.say(ENTRIES["residents-parking-permit"].first_question(language)), "residents-parking-permit", language
    )
    reply = citizen.say(HELPED)  # the thumbs-up under the answer
    assert texts(reply) == [said("utter_glad_to_help", language)] and reply["state"] == "bot"


def rasa_turn(system, text: str, language: str) -> list[dict]:
    """Rasa's own whole turn for a message in a new conversation (its channel, as the service posts it)."""
    metadata = {"language": language, "language_confidence": 1.0, "session_language": language,
                "municipality": "default"}
    response = httpx.post(
        f"http://127.0.0.1:{system.rasa_port}/webhooks/kommunchatt/webhook",
        json={"sender": f"rasa-only-{os.urandom(4).hex()}", "message": text, "metadata": metadata},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize("language", LANGUAGES)
def test_direct_turns_say_what_rasas_own_turn_says_and_the_thumbs_reach_the_entry(system, language):
    """Issue 18: the service takes a greeting, a question it clarifies and one it answers itself after Rasa's
    NLU (conversations/direct.py); the citizen gets what Rasa's whole turn sends for the same message, to the
    byte, and the thumbs under the answer (Rasa's turn) are feedback on that entry."""
    citizen = Citizen(system.service_url, language)
    broad, _ = first_decided(system, BROAD[language], language, "clarify")
    for text in (SMALL_TALK[language][0], broad, ENTRIES["bulky-waste"].first_question(language)):
        reply = citizen.say(text)
        direct = [(m["text"], m.get("buttons"), m.get("custom")) for m in reply["messages"]]
        rasa = [(m.get("text") or "", m.get("buttons"), m.get("custom")) for m in rasa_turn(system, text, language)]
        assert direct == rasa
    [record] = customs(reply, "answer")
    assert record["entry_id"] == "bulky-waste"
    assert not {"utter_greet", "action_answer"} & set(rasa_actions(system, citizen.session_id))  # not Rasa's turns

    reply = citizen.say(NOT_HELPED)
    assert texts(reply) == [said("utter_ask_rephrase", language)]
    transcript = citizen.http.get(f"/api/v1/chat/sessions/{citizen.session_id}").json()["messages"]
    feedback = [m["custom"] for m in transcript if (m.get("custom") or {}).get("kind") == "feedback"]
    assert feedback == [{"kind": "feedback", "entry_id": "bulky-waste", "helpful": False}], transcript


@pytest.mark.parametrize("language", LANGUAGES)
def test_clarify_then_choose_an_entry(system, language):
    text, result = first_decided(system, BROAD[language], language, "clarify")
    citizen = Citizen(system.service_url, language)
    reply = citizen.say(text)
    [question] = with_buttons(reply)
    assert question["text"] == said("utter_clarify", language)
    candidates = result["answers"]
    assert 2 <= len(candidates) <= 3
    none = said("utter_button_none_of_these", language)
    assert [b["title"] for b in question["buttons"]] == [a["question"] for a in candidates] + [none]
    assert question["buttons"][-1]["payload"] == "/none_of_these"

    chosen = candidates[1]
    payload = question["buttons"][1]["payload"]
    assert payload == "/choose_entry" + json.dumps({"entry_id": chosen["id"]}, separators=(",", ":"))
    reply = citizen.say(payload)
    assert_answer(reply, chosen["id"], language)
    url = chosen["url"]  # on its own line, unless the answer already says it (one link, one tab stop)
    expected = f"{chosen['text']}\n{url}" if url and url not in chosen["text"] else chosen["text"]
    assert expected in texts(reply)


@pytest.mark.parametrize("language", LANGUAGES)
def test_none_of_these_twice_offers_a_person(system, agent, language):
    text, _ = first_decided(system, BROAD[language], language, "clarify")
    citizen = Citizen(system.service_url, language)
    assert with_buttons(citizen.say(text))
    reply = citizen.say("/none_of_these")
    assert texts(reply) == [said("utter_ask_rephrase", language)]
    assert with_buttons(citizen.say(text))
    reply = citizen.say("/none_of_these")
    assert texts(reply) == [said("utter_offer_human", language)]
    assert_queued(citizen, citizen.say("/affirm"), language, "failed_turns", agent)


# --- handoff ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("attempt", [0, 1])
def test_explicit_request_for_a_person(system, agent, language, attempt):
    citizen = Citizen(system.service_url, language)
    reply = citizen.say(ASK_PERSON[language][attempt])
    assert_queued(citizen, reply, language, "requested", agent)
    assert "action_answer" not in rasa_actions(system, citizen.session_id)


@pytest.mark.parametrize("language", LANGUAGES)
def test_nothing_matches_says_so_offers_topics_and_a_person_queues_only_when_asked(system, agent, language):
    text, _ = first_decided(system, UNANSWERABLE[language], language, "handoff")
    citizen = Citizen(system.service_url, language)
    reply = citizen.say(text)
    assert reply["state"] == "bot" and not customs(reply, "handoff"), reply
    [decided] = customs(reply, "decision")
    assert decided["decision"] == "no_match"
    [offer] = with_buttons(reply)
    assert offer["text"] == said("utter_no_match", language)
    topics = httpx.get(
        f"{system.service_url}/api/v1/chat/topics", params={"municipality": "default", "language": language}
    ).json()["topics"][:3]
    assert [b["title"] for b in offer["buttons"]] == [t["question"] for t in topics] + [
        said("utter_button_talk_to_person", language)
    ]
    assert offer["buttons"][-1]["payload"] == "/request_human"
    assert "action_handoff" not in rasa_actions(system, citizen.session_id)
    # A topic button answers that topic ...
    chosen = citizen.say(offer["buttons"][0]["payload"])
    assert customs(chosen, "answer")[0]["entry_id"] == topics[0]["id"] and chosen["state"] == "bot"
    # ... and only the person button queues.
    assert_queued(citizen, citizen.say("/request_human"), language, "requested", agent)


@pytest.mark.parametrize("text", ["asdf qwerty", "vad är meningen med livet"])
def test_an_unclear_message_in_a_fresh_chat_is_not_queued(system, agent, text):
    """Issue 16, item 1: these went straight to the agents' queue ("nummer 3 i kön")."""
    citizen = Citizen(system.service_url, "sv")
    reply = citizen.say(text)
    assert reply["state"] == "bot", reply
    assert not customs(reply, "handoff")
    assert "action_handoff" not in rasa_actions(system, citizen.session_id)
    assert citizen.session_id not in [q["session_id"] for q in agent.get("/api/v1/handoff/queue").json()]
    # the bot keeps listening
    assert_answer(
        citizen.say(ENTRIES["waste-collection-schedule"].first_question("sv")), "waste-collection-schedule", "sv"
    )


def test_a_finnish_question_without_a_finnish_answer_says_it_is_only_in_swedish(system):
    """Issue 16, item 2: "paljonko maksaa rakennuslupa" got a Swedish answer without a word."""
    entry = ENTRIES["building-permit-fees"]
    assert "fi" not in entry.answer  # the premise: the seed has no Finnish answer for it
    citizen = Citizen(system.service_url, "fi")
    reply = citizen.say("paljonko maksaa rakennuslupa")
    [answer] = customs(reply, "answer")
    assert answer["answer_language"] == "sv" and answer["entry_id"] == entry.id, reply
    shown = texts(reply)
    notice = said("utter_only_swedish", "fi")
    assert notice in shown and shown.index(notice) < shown.index(answer_text(entry.id, "sv"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_bot_silent_with_a_person_and_resumes_in_the_language_after_hand_back(system, agent, language):
    citizen = Citizen(system.service_url, language)
    assert_queued(citizen, citizen.say(ASK_PERSON[language][0]), language, "requested", agent)
    assert citizen.say(SMALL_TALK[language][0]) == {"messages": [], "state": "queued"}

    sid = citizen.session_id
    assert agent.post(f"/api/v1/handoff/conversations/{sid}/claim").status_code == 200
    assert agent.post(f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "Hej! / Hi!"}).status_code == 201
    silent = ENTRIES["waste-collection-schedule"].first_question(language)
    assert citizen.say(silent) == {"messages": [], "state": "agent"}
    ran = rasa_actions(system, sid)

    back = agent.post(f"/api/v1/handoff/conversations/{sid}/handback")
    assert back.status_code == 200 and back.json()["state"] == "bot", back.text
    assert said("utter_handback", language) in [m["text"] for m in back.json()["messages"]]
    # Nothing the citizen wrote while a person had the conversation reached the bot.
    assert rasa_actions(system, sid)[: len(ran)] == ran and "action_answer" not in ran

    assert_answer(
        citizen.say(ENTRIES["preschool-application"].first_question(language)), "preschool-application", language
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_nobody_online_offers_a_message_or_leaving_and_says_todays_hours(system, all_day_municipality, language):
    """Issue 16: "no agent online" says so and offers a call-back or the opening hours; here both."""
    citizen = Citizen(system.service_url, language, municipality=all_day_municipality)
    reply = citizen.say(ASK_PERSON[language][0])
    assert reply["state"] == "queued", reply
    [queued] = customs(reply, "handoff")
    assert queued["agents_online"] == 0 and queued["estimated_wait_seconds"] is None, queued
    nobody = said("utter_no_agent_online", language, position=queued["position"])
    [offer] = [m for m in with_buttons(reply) if m["text"] == nobody]
    assert [b["payload"] for b in offer["buttons"]] == ['/request_human{"callback":"yes"}', "/leave_queue"]
    assert texts(reply)[-1] == said("utter_opening_hours_today", language, hours="00:00–23:59")
    left = citizen.http.post(f"/api/v1/chat/sessions/{citizen.session_id}/leave-queue")
    assert left.status_code == 200 and left.json()["state"] == "bot"


@pytest.mark.parametrize("language", LANGUAGES)
def test_out_of_hours_leave_a_message(system, admin, closed_municipality, language):
    citizen = Citizen(system.service_url, language, municipality=closed_municipality)
    reply = citizen.say(ASK_PERSON[language][0])
    assert reply["state"] == "bot", reply
    [closed] = customs(reply, "handoff")
    assert closed["state"] == "closed"
    opens = dt.datetime.fromisoformat(closed["opens_at"])
    local_date = dt.datetime.now(ZoneInfo("Europe/Stockholm")).date() + dt.timedelta(days=2)
    assert opens.strftime("%Y-%m-%d %H:%M") == f"{local_date.isoformat()} 08:00"
    assert texts(reply) == [
        said("utter_out_of_hours", language),
        said("utter_opens_at", language, opens_at=f"{local_date.isoformat()} 08:00"),
        said("utter_ask_callback_name", language),
    ]

    name, contact, message, consent = CALLBACK[language]
    assert texts(citizen.say(name)) == [said("utter_ask_callback_contact", language)]
    assert texts(citizen.say(contact)) == [said("utter_ask_callback_message", language)]
    reply = citizen.say(message)
    assert texts(reply) == [said("utter_ask_callback_consent", language)]
    reply = citizen.say(consent)
    [saved] = customs(reply, "callback")
    assert saved["state"] == "registered"
    assert texts(reply) == [said("utter_callback_confirmed", language, ticket_id=saved["ticket_id"])]
    [ticket] = [t for t in admin.get("/api/v1/handoff/tickets").json() if t["id"] == saved["ticket_id"]]
    assert ticket["conversation_id"] == citizen.session_id and ticket["municipality"] == closed_municipality
    assert ticket["name"] == name and ticket["message"] == message and ticket["language"] == language
    digits = "".join(ch for ch in contact if ch.isdigit() or ch == "+")
    assert ticket["contact"] in (contact, digits)
    assert reply["state"] == "bot"


# --- dialogue that is not a question ---------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_greet_thanks_goodbye_stay_with_the_bot(system, language):
    citizen = Citizen(system.service_url, language)
    for text, response in zip(
        SMALL_TALK[language], ("utter_greet", "utter_thanks_reply", "utter_goodbye"), strict=True
    ):
        reply = citizen.say(text)
        assert reply["state"] == "bot"
        assert texts(reply) == [said(response, language)], (text, reply)
        assert not customs(reply)
    ran = rasa_actions(system, citizen.session_id)
    assert not {"action_answer", "action_handoff"} & set(ran), ran


@pytest.mark.parametrize("language", LANGUAGES)
def test_switch_language_mid_conversation(system, language):
    request, target = SWITCH[language]
    citizen = Citizen(system.service_url, language)
    assert texts(citizen.say(SMALL_TALK[language][0])) == [said("utter_greet", language)]
    reply = citizen.say(request)
    assert texts(reply) == [said("utter_language_switched", target)]
    assert customs(reply, "language") == [{"kind": "language", "language": target}]
    assert citizen.http.get(f"/api/v1/chat/sessions/{citizen.session_id}").json()["language"] == target
    # Short replies and button presses now get the new language.
    assert texts(citizen.say("ok")) == [said("utter_anything_else", target)]
    assert texts(citizen.say("/deny")) == [said("utter_anything_else", target)]
    assert_answer(
        citizen.say(ENTRIES["waste-collection-schedule"].first_question(target)), "waste-collection-schedule", target
    )


def test_button_press_keeps_the_language(system):
    """A payload like /affirm is not English: an Arabic conversation stays Arabic."""
    citizen = Citizen(system.service_url, "ar")
    assert_answer(citizen.say(ENTRIES["building-permit-general"].first_question("ar")), "building-permit-general", "ar")
    assert texts(citizen.say("/deny")) == [said("utter_ask_rephrase", "ar")]


def test_markup_is_stored_and_returned_verbatim(system):
    text = "<script>alert('x')</script><b>När</b> hämtas soporna? & \"citat\" <img src=x onerror=alert(1)>"
    citizen = Citizen(system.service_url, "sv")
    reply = citizen.say(text)
    assert reply["state"] == "bot" and texts(reply)
    transcript = citizen.http.get(f"/api/v1/chat/sessions/{citizen.session_id}").json()
    mine = [m for m in transcript["messages"] if m["sender"] == "citizen"]
    assert [m["text"] for m in mine] == [text]


# --- the knowledge service unreachable from the actions (last: restarts the action server) ---------


@contextlib.contextmanager
def actions_without_service(system):
    """Restart the action server with SERVICE_URL on a closed port, then restore it.

    The action server is the runner's supervised child (kommunchatt/runner.py, its own command line:
    bot.action_server); it is replaced in place, so the system's stop() still ends it. The supervisor's
    loop does not run in these tests, so nothing restarts it behind the test's back."""
    child = system.supervisor.children["actions"]

    def restart(env: dict[str, str]) -> None:
        os.killpg(child.proc.pid, signal.SIGTERM)
        child.proc.wait(timeout=15)
        with open(child.log_path, "ab") as out:  # the child has its own copy of the descriptor
            child.proc = subprocess.Popen(
                child.command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{system.actions_port}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise TimeoutError("the action server did not restart in 60 s")

    restart({**system.env(), "SERVICE_URL": f"http://127.0.0.1:{free_port()}"})
    try:
        yield
    finally:
        restart(system.env())


def test_knowledge_service_unreachable_apology_and_a_person(system):
    """The action server cannot reach the service: a question Rasa's action answers (one nothing matches;
    answers and clarifies are the service's own, conversations/direct.py) gets an apology and a way to a
    person."""
    citizens = {language: Citizen(system.service_url, language) for language in LANGUAGES}
    unmatched = {language: first_decided(system, UNANSWERABLE[language], language, "handoff")[0]
                 for language in LANGUAGES}
    with actions_without_service(system):  # one outage for all three languages
        for language, citizen in citizens.items():
            reply = citizen.say(unmatched[language])
            [apology] = with_buttons(reply)
            assert apology["text"] == said("utter_service_error", language)
            assert apology["buttons"] == buttons("utter_service_error", language)
            assert customs(reply, "error")
            reply = citizen.say("/affirm")  # yes, a person: the handoff call fails too, never silence
            assert texts(reply) == [said("utter_service_down", language)] and reply["state"] == "bot"
    for language, citizen in citizens.items():  # the service is reachable again: the same conversation works
        assert_answer(
            citizen.say(ENTRIES["waste-collection-schedule"].first_question(language)),
            "waste-collection-schedule",
            language,
        )


def test_forged_choose_entry_payload_is_not_trusted(system):
    """A payload typed by hand with an unknown entry (here markup) is not trusted; it keeps the session language."""
    citizen = Citizen(system.service_url, "en")
    reply = citizen.say('/choose_entry{"entry_id":"<script>x</script>"}')
    assert texts(reply) == [said("utter_ask_rephrase", "en")], json.dumps(reply)


# --- personal data in Rasa's own tracker store (issue 15) -----------------------------------------

PNR, PHONE, EMAIL = "19121212-1212", "070-123 45 67", "anna.svensson@example.se"


# (a request for a person, a question) with contact details, which Rasa reads masked (core/privacy.py).
WITH_CONTACT = {
    "sv": (f"jag vill prata med en människa, ring mig på {PHONE}", f"Mitt personnummer är {PNR}. När hämtas soporna?"),
    "en": (f"can I talk to a real person? my number is {PHONE}", f"my email is {EMAIL}, when is my bin emptied?"),
    "ar": (f"اريد التحدث مع موظف، رقم هاتفي {PHONE}", f"بريدي الإلكتروني {EMAIL}، متى تأتي سيارة القمامة؟"),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_contact_details_do_not_change_what_a_message_asks(system, agent, language):
    """A citizen who asks for a person and gives a phone number is queued; one who gives an e-mail address or
    a personnummer with a question gets the bot's answer (or "did you mean"), not a person."""
    person, question = WITH_CONTACT[language]
    asker = Citizen(system.service_url, language)
    reply = asker.say(question)
    assert reply["state"] == "bot" and (customs(reply, "answer") or customs(reply, "clarify")), reply
    citizen = Citizen(system.service_url, language)
    assert_queued(citizen, citizen.say(person), language, "requested", agent)


def tracker_rows(system, session_id: str) -> list[str]:
    """The raw rows Rasa's SQL tracker store keeps for a session (its own SQLite file here)."""
    engine = make_engine(f"sqlite:///{system.data_dir / 'rasa-tracker.db'}")
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("SELECT data FROM events WHERE sender_id = ?", (session_id,))]
    finally:
        engine.dispose()


def test_rasa_never_sees_personal_data_and_erase_and_retention_purge_its_tracker(system, admin, closed_municipality):
    """Masked before Rasa: the tracker Rasa serves and the rows it stores hold placeholders only, for a message
    and for the call-back form's answers. Erasing the citizen removes the session from Rasa's store; a
    municipality keeping no transcripts (retention 0) loses the ended chat from both stores at the next
    retention pass."""

    def tracker(citizen: Citizen) -> tuple[str, str]:
        served = json.dumps(served_tracker(system, citizen.session_id), ensure_ascii=False)
        return served, "\n".join(tracker_rows(system, citizen.session_id))

    # Asking for a person is Rasa's turn (answers and clarifies are the service's: conversations/direct.py).
    citizen = Citizen(system.service_url)
    assert citizen.say(f"jag vill prata med en människa, mitt personnummer är {PNR}")["state"] == "queued"
    served, stored = tracker(citizen)
    assert stored and "[personnummer]" in served
    # The call-back form (a contact centre that is closed) has Rasa's every turn.
    caller = Citizen(system.service_url, municipality=closed_municipality)
    assert said("utter_ask_callback_name", "sv") in texts(caller.say(ASK_PERSON["sv"][0]))
    for answer in ("Anna", PHONE, f"Mejla mig på {EMAIL}, personnummer {PNR}"):
        caller.say(answer)
    caller_served, caller_stored = tracker(caller)
    assert "[telefonnummer]" in caller_served and "[e-post]" in caller_served, caller_served
    for secret in (PNR, "19121212", PHONE, "123 45 67", EMAIL):
        assert secret not in served + caller_served and secret not in stored + caller_stored, secret

    erased = admin.post("/api/v1/admin/privacy/erase", json={"identifier": PNR})
    assert erased.status_code == 200 and citizen.session_id in erased.json()["conversations"], erased.text
    assert erased.json()["tracker_events"] > 0 and tracker_rows(system, citizen.session_id) == []

    engine = make_engine(system.engine_url)
    with engine.begin() as conn:
        conn.execute(municipalities.insert().values(id="glom", name="Glömsta", settings={}))
    engine.dispose()
    kept = admin.put(
        "/api/v1/admin/privacy/settings",
        params={"municipality": "glom"},
        json={"retention_days": 0, "privacy_notice": {}},
    )
    assert kept.status_code == 200 and kept.json()["retention_days"] == 0, kept.text
    forgotten = Citizen(system.service_url, municipality="glom")
    forgotten.say(f"Mitt personnummer är {PNR}")
    assert forgotten.say("jag vill prata med en människa")["state"] == "queued"
    assert forgotten.http.post(f"/api/v1/chat/sessions/{forgotten.session_id}/end").json()["state"] == "closed"
    assert tracker_rows(system, forgotten.session_id)
    purged = admin.post("/api/v1/admin/privacy/purge")
    assert purged.status_code == 200 and purged.json()["tracker_events"] > 0, purged.text
    assert tracker_rows(system, forgotten.session_id) == []
    assert purged.json()["conversations"] >= 1
    transcript = forgotten.http.get(f"/api/v1/chat/sessions/{forgotten.session_id}").json()
    assert transcript["messages"] == [], transcript  # the row stays for statistics, the transcript is gone

"""Direct answers (conversations/direct.py, issue 18): a question the bot would answer is answered by the service
after Rasa's NLU alone. Fast layer: the dialogue state read from the stored messages, the domain's texts, and
the real app in this process with a fake Rasa whose NLU says "question" (tests/inprocess.py). The real Rasa's
answer to the same questions is compared in tests/test_e2e_dialogue.py."""

from __future__ import annotations

import pytest

from conversations.direct import HELPED, NOT_HELPED, BotTexts, Dialogue, dialogue
from conversations.rasa_client import RasaUnavailable
from conversations.store import Message
from knowledge.kbfile import load_path
from tests.conftest import ROOT
from tests.e2e import domain_responses
from tests.inprocess import FakeRasa, running_app

SEED_IDS = {"waste-collection-schedule", "bulky-waste", "home-care-apply", "preschool-application",
            "building-permit-fees"}


def msg(sender: str, custom: dict | None = None, direct: dict | None = None) -> Message:
    data = {**({"custom": custom} if custom else {}), **({"direct": direct} if direct else {})}
    return Message(1, "c", sender, "text", 0.0, data)


def test_the_dialogue_is_read_from_the_recent_messages_newest_first():
    assert dialogue([]) == Dialogue(at_rest=True)
    answer = {"kind": "answer", "entry_id": "bulky-waste"}
    answered = msg("bot", answer, direct={"answered": "bulky-waste"})
    assert dialogue([answered, msg("citizen")]) == Dialogue(at_rest=True, behind={"answered": "bulky-waste"})
    assert dialogue([answered]).rasa_metadata() == {"direct": {"answered": "bulky-waste"}}
    greeted = msg("bot", direct={"answered": None})  # small talk the service answered
    assert dialogue([greeted, msg("citizen"), answered]) == Dialogue(at_rest=True, behind={"answered": None})
    # Rasa had the last turn: its tracker knows, nothing to tell it.
    assert dialogue([msg("bot", answer)]) == Dialogue(at_rest=True)
    assert dialogue([msg("bot"), msg("citizen"), answered]).rasa_metadata() == {}
    # The call-back form runs from its start marker to its end marker; its questions carry none.
    closed = msg("bot", {"kind": "handoff", "state": "closed"})
    started = msg("bot", {"kind": "callback", "state": "started"})
    for start in (closed, started):
        assert dialogue([msg("bot"), msg("citizen"), msg("bot"), start]) == Dialogue(at_rest=False)
    done = msg("bot", {"kind": "callback", "state": "registered"})
    assert dialogue([done, msg("bot"), closed]) == Dialogue(at_rest=True)
    # Nothing in the window tells: a wider one is read, and if that does not tell either, Rasa has the turn
    # (slower, never wrong); notes and agents' words do not count.
    undecided = [msg("agent"), msg("note", answer, direct={"answered": "x"}), msg("citizen")]
    assert dialogue(undecided, complete=False) is None
    assert dialogue(undecided) == Dialogue(at_rest=False)


def test_the_texts_and_the_one_response_rules_are_rasas_own():
    texts = BotTexts()
    for language in ("sv", "ar", "en", "fi"):
        for name in ("utter_only_swedish", "utter_button_helped", "utter_button_not_helped"):
            assert texts.text(name, language) in domain_responses(name, language), (name, language)
        assert texts.reply("greet", language) == [{"text": domain_responses("utter_greet", language)[0]}]
    assert texts.text("utter_button_helped", "xx") == domain_responses("utter_button_helped", "sv")[0]
    # data/rules.yml: greet, thanks, goodbye and bot_challenge only ever say one response; affirm and deny
    # depend on what is pending, asking for a person runs an action: Rasa's.
    assert {"greet", "thanks", "goodbye", "bot_challenge"} <= set(texts.replies)
    assert not {"affirm", "deny", "request_human", "ask", "insult"} & set(texts.replies)


class QuestionRasa(FakeRasa):
    """Rasa whose NLU reads every message as a question, except greetings; records what reaches it."""

    def __init__(self, components):
        super().__init__(components)
        self.parsed: list[str] = []
        self.metadata: list[dict] = []
        self.down = False

    async def parse(self, text: str, timeout: float) -> dict:
        if self.down:
            raise RasaUnavailable("connection refused")
        self.parsed.append(text)
        name = {"hej": "greet", "ja": "affirm"}.get(text.lower().split()[0].strip("!"), "ask")
        return {"text": text, "intent": {"name": name, "confidence": 0.9}, "entities": []}

    async def send(self, session_id: str, text: str, metadata: dict) -> list[dict]:
        self.metadata.append(metadata)
        return await super().send(session_id, text, metadata)


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("direct"), model_path) as (client, c):
        c.rasa = c.chat.rasa = QuestionRasa(c)
        files = ("care.yml", "waste.yml", "preschool-school.yml", "building.yml")
        seed = [e for name in files for e in load_path(ROOT / "data" / "knowledge" / name)]
        c.knowledge.import_entries("default", [e for e in seed if e.id in SEED_IDS])
        yield client, c


def session(client, language: str = "sv") -> str:
    return client.post("/api/v1/chat/sessions", json={"language": language}).json()["session_id"]


def say(client, sid: str, text: str) -> dict:
    response = client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


def first_answer(c, text: str, language: str) -> dict:
    return c.knowledge.answer(text, language=language, municipality="default", top_k=3)


def test_a_question_is_answered_without_rasas_turn_and_rasa_hears_of_it_next(app):
    client, c = app
    rasa = c.rasa
    sid = session(client)
    question = "När hämtas soporna?"
    expected = first_answer(c, question, "sv")
    assert expected["decision"] == "answer", expected  # the seed answers it (tests/test_retrieval.py)
    top = expected["answers"][0]
    sent_before = len(rasa.sent)
    reply = say(client, sid, question)
    assert len(rasa.sent) == sent_before and rasa.parsed[-1] == question  # NLU only, no Rasa turn
    text_message, record = reply["messages"]
    url = top.get("url") or ""
    shown = top["text"].strip() if url in top["text"] else f"{top['text'].strip()}\n{url}"  # the link once
    assert text_message["text"] == shown
    assert [b["payload"] for b in text_message["buttons"]] == [HELPED, NOT_HELPED]
    assert [b["title"] for b in text_message["buttons"]] == [
        domain_responses("utter_button_helped", "sv")[0], domain_responses("utter_button_not_helped", "sv")[0]
    ]
    assert record["custom"] == {"kind": "answer", "entry_id": top["id"], "decision": "answer", "score": top["score"],
                                "answer_language": "sv", "language": "sv"}

    # A greeting: the domain's response, without Rasa's turn either.
    assert say(client, sid, "Hej!")["messages"][0]["text"] == domain_responses("utter_greet", "sv")[0]
    assert len(rasa.sent) == sent_before
    # The next turn Rasa has is told what the service's last turn left pending (nothing, after small talk) and
    # gets the NLU's result along.
    say(client, sid, "ja tack")
    assert rasa.metadata[-1]["direct"] == {"answered": None}
    assert rasa.metadata[-1]["parse_data"]["intent"]["name"] == "affirm"
    say(client, sid, question)
    say(client, sid, "/affirm")  # the thumbs under a direct answer: Rasa reads them as feedback on that entry
    assert rasa.metadata[-1]["direct"] == {"answered": top["id"]} and "parse_data" not in rasa.metadata[-1]
    say(client, sid, "/affirm")  # Rasa had the last turn: nothing more to tell it
    assert "direct" not in rasa.metadata[-1]


def test_a_question_in_another_language_gets_the_swedish_notice_first(app):
    client, c = app
    sid = session(client, "fi")
    question = "paljonko maksaa rakennuslupa"  # the seed has no Finnish answer for it (test_e2e_dialogue.py)
    expected = first_answer(c, question, "fi")
    assert expected["decision"] == "answer" and expected["answers"][0]["language"] == "sv", expected
    messages = say(client, sid, question)["messages"]
    assert messages[0]["text"] == domain_responses("utter_only_swedish", "fi")[0]
    assert messages[-1]["custom"]["answer_language"] == "sv" and messages[-1]["custom"]["language"] == "fi"


def test_a_clarify_is_the_services_and_rasas_next_turn_gets_the_candidates(app):
    client, c = app
    rasa = c.rasa
    sid = session(client)
    broad = next(t for t in ("ansöka", "tider", "skola", "barn", "taxa")
                 if first_answer(c, t, "sv")["decision"] == "clarify")
    candidates = first_answer(c, broad, "sv")["answers"]
    assert len(candidates) > 1  # a clarify with one candidate is an answer
    sent = len(rasa.sent)
    question, record = say(client, sid, broad)["messages"]
    assert len(rasa.sent) == sent  # NLU only, no Rasa turn
    assert question["text"] == domain_responses("utter_clarify", "sv")[0]
    assert [b["title"] for b in question["buttons"]] == [
        *(a["question"] for a in candidates), domain_responses("utter_button_none_of_these", "sv")[0]]
    chosen = candidates[1]
    assert question["buttons"][1]["payload"] == '/choose_entry{"entry_id":"' + chosen["id"] + '"}'
    assert record["custom"] == {"kind": "clarify", "decision": "clarify", "entry_ids": [a["id"] for a in candidates]}

    say(client, sid, question["buttons"][1]["payload"])  # Rasa's turn, told the candidates the service offered
    clarified = rasa.metadata[-1]["direct"]["clarified"]
    assert [a["id"] for a in clarified] == [a["id"] for a in candidates]
    assert clarified[1]["text"] == chosen["text"] and clarified[1]["url"] == chosen.get("url")


def test_no_match_goes_to_rasa_with_the_nlu_result_and_the_answer_kept(app):
    client, c = app
    rasa = c.rasa
    sid = session(client)
    unanswerable = next(t for t in ("Vem vann fotbolls-VM 1994?", "Kan du rekommendera ett recept på lasagne?")
                        if first_answer(c, t, "sv")["decision"] == "handoff")
    sent = len(rasa.sent)
    say(client, sid, unanswerable)
    assert len(rasa.sent) == sent + 1 and rasa.metadata[-1]["parse_data"]["text"] == unanswerable
    # The action's request for the same answer takes the one computed already.
    kept = client.post("/api/v1/answer", json={"text": unanswerable, "language": "sv", "session_id": sid}).json()
    assert kept["decision"] == "handoff"
    assert not c.knowledge.prefetch._items  # taken, not left behind

    for text in ("ja", "/affirm"):  # what reads what is pending, and a button's payload: Rasa's turn
        sent = len(rasa.sent)
        say(client, sid, text)
        assert len(rasa.sent) == sent + 1


def test_a_running_form_or_rasa_down_keeps_every_turn_with_rasa(app):
    client, c = app
    rasa = c.rasa
    sid = session(client)
    c.conversations.add_message(sid, "bot", "", {"custom": {"kind": "handoff", "state": "closed"}})
    c.conversations.add_message(sid, "bot", "Vad heter du?", {})
    parsed, sent = len(rasa.parsed), len(rasa.sent)
    say(client, sid, "När hämtas soporna?")  # the form's answer to "what is your name", however it reads
    assert len(rasa.parsed) == parsed and len(rasa.sent) == sent + 1

    other = session(client)
    rasa.down = True
    try:
        sent = len(rasa.sent)
        say(client, other, "När hämtas soporna?")
        assert len(rasa.sent) == sent + 1  # the whole turn, which says what it always said when Rasa is down
    finally:
        rasa.down = False

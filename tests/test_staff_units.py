"""Fast checks of the staff side's rules (issue 16): which citizen messages are questions, which
translations are out of date, the first-response time after hand-backs and transfers."""

from __future__ import annotations

from dataclasses import dataclass, field

from handoff.questions import last_question, questions
from insights.reports import first_response_seconds
from knowledge.translations import answer_changes, stale


@dataclass
class Msg:
    id: int
    sender: str
    text: str
    data: dict = field(default_factory=dict)


def bot(i: int, text: str = "", kind: str | None = None, **custom) -> Msg:
    data = {"custom": {"kind": kind, **custom}} if kind else {}
    return Msg(i, "bot", text, data)


def test_asking_for_a_person_is_no_question_but_the_question_before_it_is():
    transcript = [
        Msg(1, "citizen", "När töms soptunnan?"),
        bot(2, "Varannan vecka."),
        bot(3, kind="answer", entry_id="waste"),
        Msg(4, "citizen", "/affirm"),
        Msg(5, "citizen", "jag vill prata med en person"),
        bot(6, "Jag kopplar dig …"),
        bot(7, kind="handoff", state="queued", reason="requested"),
    ]
    assert [m.id for m in questions(transcript)] == [1]
    assert last_question(transcript).text == "När töms soptunnan?"


def test_a_greeting_is_no_question_and_words_to_a_person_are():
    transcript = [
        Msg(1, "citizen", "hej"),
        bot(2, "Hej! Vad undrar du?"),
        Msg(3, "citizen", "/request_human"),
        bot(4, kind="handoff", state="queued", reason="requested"),
        Msg(5, "citizen", "Hur ansöker jag om bygglov för en altan?"),
    ]  # the agent has the chat
    assert [m.id for m in questions(transcript)] == [5]


def test_when_the_bot_was_down_the_message_still_counts_as_a_question():
    apology = Msg(
        2,
        "bot",
        "Förlåt, chatten har tekniska problem …",
        {"buttons": [{"title": "Prata med en person", "payload": "/request_human"}]},
    )
    assert [m.id for m in questions([Msg(1, "citizen", "När hämtas soporna?"), apology])] == [1]
    assert last_question([Msg(1, "citizen", "/affirm")]) is None


def test_editing_the_swedish_answer_makes_the_other_languages_out_of_date():
    created = {"answer": {"sv": "Tisdagar.", "en": "Tuesdays.", "fi": "Tiistaisin."}}
    rows = [
        {"entry_id": "waste", "action": "create", "at": 100.0, "before": None, "after": created},
        {
            "entry_id": "waste",
            "action": "update",
            "at": 200.0,
            "before": created,
            "after": {"answer": {**created["answer"], "sv": "Onsdagar."}},
        },
    ]
    assert stale(answer_changes(rows)["waste"]) == {"en": 200.0, "fi": 200.0}
    fixed = {"answer": {"sv": "Onsdagar.", "en": "Wednesdays.", "fi": "Tiistaisin."}}
    rows.append({"entry_id": "waste", "action": "update", "at": 300.0, "before": rows[1]["after"], "after": fixed})
    assert stale(answer_changes(rows)["waste"]) == {"fi": 200.0}  # the English one was brought up to date
    both = {"answer": {"sv": "Torsdagar.", "en": "Thursdays.", "fi": "Torstaisin."}}
    rows.append({"entry_id": "waste", "action": "update", "at": 400.0, "before": fixed, "after": both})
    assert stale(answer_changes(rows)["waste"]) == {}  # all changed together (an import)


def test_first_response_is_never_before_the_queue_entry_it_answers():
    # Anna took it at 110 (queued at 100) and handed it back without a word; the citizen asked again at 500,
    # Bo took it at 520 and replied at 530: 30 s, never 530 - 100 nor a negative figure.
    taken = [
        {"queued_at": 100.0, "started_at": 110.0, "first_response_at": None},
        {"queued_at": 500.0, "started_at": 520.0, "first_response_at": 530.0},
    ]
    assert first_response_seconds(taken) == 30.0
    # A transfer keeps the queue entry: measured from when the citizen entered the queue.
    transferred = [
        {"queued_at": 100.0, "started_at": 105.0, "first_response_at": None},
        {"queued_at": 100.0, "started_at": 140.0, "first_response_at": 150.0},
    ]
    assert first_response_seconds(transferred) == 50.0
    # A queue time after the assignment's start (clock skew between processes) counts from the start.
    assert first_response_seconds([{"queued_at": 200.0, "started_at": 190.0, "first_response_at": 195.0}]) == 5.0
    assert first_response_seconds([{"queued_at": 1.0, "started_at": 2.0, "first_response_at": None}]) is None

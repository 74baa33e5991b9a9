"""The knowledge answer started while Rasa reads the message (knowledge/prefetch.py, turned on with
KOMMUNCHATT_ANSWER_PREFETCH=1): the action's request takes exactly that answer, anything else computes
as before."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import REGISTRY

from knowledge.prefetch import AnswerPrefetch
from tests.inprocess import running_app
from tests.test_inprocess_chat import new_session


@pytest.fixture(autouse=True)
def turned_on(monkeypatch):
    monkeypatch.setenv("KOMMUNCHATT_ANSWER_PREFETCH", "1")


def taken() -> float:
    return REGISTRY.get_sample_value("kommunchatt_answer_prefetch_total", {"outcome": "taken"}) or 0.0


class Answers:
    """A stand-in for KnowledgeService.answer that counts its calls and the threads they ran on."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.threads: set[int] = set()

    def __call__(self, text: str, language: str, municipality: str, top_k: int) -> dict:
        self.calls.append((text, language, municipality, top_k))
        self.threads.add(threading.get_ident())
        return {"decision": "answer", "text": text}


def test_the_started_answer_is_taken_once_off_the_event_loop():
    answers = Answers()
    prefetch = AnswerPrefetch(answers)

    async def scenario():
        prefetch.start("s1", "bygglov altan", "sv", "default")
        first = await prefetch.take("s1", "bygglov altan", "sv", "default", 3)
        second = await prefetch.take("s1", "bygglov altan", "sv", "default", 3)
        return first, second, threading.get_ident()

    first, second, loop_thread = asyncio.run(scenario())
    assert first == {"decision": "answer", "text": "bygglov altan"} and second is None
    assert answers.calls == [("bygglov altan", "sv", "default", 3)]
    assert loop_thread not in answers.threads


def test_any_other_request_is_not_given_the_started_answer():
    answers = Answers()
    prefetch = AnswerPrefetch(answers)

    async def scenario():
        prefetch.start("s1", "bygglov altan", "sv", "default")
        others = [
            await prefetch.take("s2", "bygglov altan", "sv", "default", 3),  # another conversation
            await prefetch.take("s1", "bygglov", "sv", "default", 3),  # another text
            await prefetch.take("s1", "bygglov altan", "en", "default", 3),  # another language
            await prefetch.take("s1", "bygglov altan", "sv", "norrvik", 3),  # another municipality
            await prefetch.take("s1", "bygglov altan", "sv", "default", 5),  # more answers
            await prefetch.take(None, "bygglov altan", "sv", "default", 3),  # no conversation
        ]
        return others, await prefetch.take("s1", "bygglov altan", "sv", "default", 3)

    others, own = asyncio.run(scenario())
    assert others == [None] * 6 and own is not None


def test_an_answer_nobody_asks_for_expires():
    prefetch = AnswerPrefetch(Answers(), ttl_s=0.0)

    async def scenario():
        prefetch.start("s1", "hej", "sv", "default")
        await asyncio.sleep(0.01)
        return await prefetch.take("s1", "hej", "sv", "default", 3)

    assert asyncio.run(scenario()) is None


def test_a_failed_answer_is_computed_again_by_the_request():
    def broken(*_args, **_kwargs):
        raise RuntimeError("index being swapped")

    prefetch = AnswerPrefetch(broken)

    async def scenario():
        prefetch.start("s1", "hej", "sv", "default")
        return await prefetch.take("s1", "hej", "sv", "default", 3)

    assert asyncio.run(scenario()) is None


def test_in_the_app_the_actions_request_takes_the_answer_the_message_started(tmp_path, model_path, monkeypatch):
    monkeypatch.setenv("KOMMUNCHATT_DIRECT_ANSWERS", "0")  # every turn Rasa's (a direct turn needs no prefetch)
    with running_app(tmp_path, model_path) as (client, c):
        sid = new_session(client)
        text = "Hur ansöker jag om bygglov för en altan?"
        assert client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": text}).status_code == 200
        before = taken()
        body = {"text": text, "language": "sv", "municipality": "default", "session_id": sid}
        prefetched = client.post("/api/v1/answer", json=body)
        assert prefetched.status_code == 200 and taken() == before + 1
        computed = client.post("/api/v1/answer", json=body)  # taken once: this one computes
        assert computed.status_code == 200 and taken() == before + 1
        assert prefetched.json() == computed.json()


def test_it_is_off_unless_turned_on(monkeypatch):
    monkeypatch.delenv("KOMMUNCHATT_ANSWER_PREFETCH", raising=False)
    answers = Answers()
    prefetch = AnswerPrefetch(answers)

    async def scenario():
        prefetch.start("s1", "hej", "sv", "default")
        return await prefetch.take("s1", "hej", "sv", "default", 3)

    assert asyncio.run(scenario()) is None and answers.calls == []

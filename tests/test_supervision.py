"""Supervision: kill -9 each process of a running system in turn; it comes back, the other two keep
running (same process), the citizen is never left in silence while it is down, and chats go on after.

The system is started by the runner's own System and supervised by its Supervisor, as `make run` does.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from knowledge.kbfile import load_path
from tests.conftest import ROOT
from tests.e2e import Citizen, bot_texts, running_system

pytestmark = pytest.mark.e2e
RECOVERIES: dict[str, float] = {}


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    with running_system(tmp_path_factory.mktemp("supervised")) as system:
        system.supervisor.run_in_background(every=0.25)
        yield system
    print("recovery after kill -9 (s):", {k: round(v, 1) for k, v in RECOVERIES.items()})


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def seed_answer() -> str:
    entry = next(e for e in load_path(ROOT / "data" / "knowledge") if e.id == "waste-collection-schedule")
    return entry.answer["sv"]


@pytest.mark.parametrize("victim", ["actions", "rasa", "service"])
def test_a_killed_process_comes_back_and_the_others_keep_running(system, victim):
    supervisor = system.supervisor
    citizen = Citizen(system.service_url)  # a conversation that started before the crash
    assert seed_answer() in bot_texts(citizen.say("När hämtas soporna?"))
    others = {name: child.proc.pid for name, child in supervisor.children.items() if name != victim}
    victim_pid = supervisor.children[victim].proc.pid

    killed_at = time.monotonic()
    os.killpg(victim_pid, signal.SIGKILL)
    if victim != "service":
        # While the dialogue is down: an apology and a button that reaches a person without Rasa. With only the
        # action server down, a question the service answers itself is still answered (a direct turn), and what
        # needs an action (asking for a person) gets the apology.
        if victim == "actions":
            assert seed_answer() in bot_texts(Citizen(system.service_url).say("När hämtas soporna?"))
        text = "Jag vill prata med en människa" if victim == "actions" else "Hur ansöker jag om bygglov?"
        reply = Citizen(system.service_url).say(text)
        assert reply["messages"][0]["buttons"][0]["payload"] == "/direct_handoff", reply
        waiting = Citizen(system.service_url)
        assert waiting.say("/direct_handoff")["state"] == "queued"

    while not healthy(system.service_url):
        assert time.monotonic() - killed_at < 300, f"{victim} did not come back in 300 s"
        time.sleep(0.25)
    RECOVERIES[victim] = time.monotonic() - killed_at

    assert supervisor.children[victim].proc.pid != victim_pid and supervisor.children[victim].restarts == 1
    for name, pid in others.items():  # untouched: the same process, still running
        assert supervisor.children[name].proc.pid == pid and supervisor.children[name].running, name
    # The conversation from before goes on, and new ones are answered.
    assert seed_answer() in bot_texts(citizen.say("När hämtas soporna?"))
    assert seed_answer() in bot_texts(Citizen(system.service_url).say("När hämtas soporna?"))

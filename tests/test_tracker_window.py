"""Rasa's tracker store keeps a turn's cost flat (issues 15, 18): a long conversation is loaded as a bounded
session with its slots carried over, while the table keeps every event once.

Runs Rasa's own tracker store code in the .venv-rasa environment (bot/tracker_store.py), the way Rasa's
processor uses it: retrieve, save after the citizen's message, save at the end of the turn.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
CONVERSATION = """
import asyncio, json, sys
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, BotUttered, ConversationPaused, ConversationResumed,
                                     SessionStarted, SlotSet, UserUttered)
from rasa.shared.core.trackers import DialogueStateTracker
from bot.tracker_store import EnvSQLTrackerStore

TURNS = int(sys.argv[1])

async def main():
    domain = Domain.load("bot/domain.yml")
    store = EnvSQLTrackerStore(domain=domain)
    loaded = []
    for turn in range(TURNS):
        tracker = await store.retrieve("citizen-1")
        if tracker is None:
            tracker = DialogueStateTracker("citizen-1", domain.slots)
            tracker.update_with_events([ActionExecuted("action_session_start"), SessionStarted(),
                                        ActionExecuted("action_listen")], domain)
        loaded.append(len(tracker.events))
        tracker.update(UserUttered(f"fråga {turn}"), domain)
        await store.save(tracker)  # Rasa saves once the message is logged
        events = [SlotSet("awaiting", tracker.get_slot("pending")), ActionExecuted("action_answer"),
                  BotUttered(f"svar {turn}"), SlotSet("pending", "feedback"), SlotSet("failed_turns", float(turn))]
        if turn == 1:
            events.append(SlotSet("language", "ar"))
        if turn == 30:  # handed to a person: paused until the agent hands back
            events.append(ConversationPaused())
        if turn == 34:
            events.append(ConversationResumed())
        tracker.update_with_events(events + [ActionExecuted("action_listen")], domain)
        await store.save(tracker)
        if turn == 32:
            assert tracker.is_paused()
    last = await store.retrieve("citizen-1")
    full = await store.retrieve_full_tracker("citizen-1")
    print(json.dumps({
        "loaded": loaded,
        "slots": {name: last.get_slot(name) for name in ("language", "failed_turns", "pending")},
        "user_texts": [e.text for e in full.events if e.type_name == "user"],
        "bot_texts": [e.text for e in full.events if e.type_name == "bot"],
        "sessions": sum(1 for e in full.events if e.type_name == "session_started"),
    }))

asyncio.run(main())
"""


def run_conversation(turns: int, tmp_path: Path, session_events: int = 60) -> dict:
    if not RASA_PYTHON.exists():
        pytest.fail("the Rasa environment is missing: run `make setup`")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RASA_TELEMETRY_ENABLED": "false",
        "RASA_TRACKER_DIALECT": "sqlite",
        "RASA_TRACKER_DB": str(tmp_path / "tracker.db"),
        "RASA_TRACKER_SESSION_EVENTS": str(session_events),
    }
    result = subprocess.run(
        [str(RASA_PYTHON), "-c", CONVERSATION, str(turns)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_long_conversation_is_loaded_as_a_bounded_session_and_nothing_is_lost(tmp_path: Path) -> None:
    turns = 50
    result = run_conversation(turns, tmp_path)
    loaded = result["loaded"]
    # Each turn adds 8 events: a turn loads at most the window plus one turn, at turn 50 as at 8 (turns 31-35
    # are paused, below, and grow on).
    assert max(loaded[:30] + loaded[36:]) <= 60 + 8, loaded
    assert loaded[-1] < loaded[8], loaded
    assert result["sessions"] > 1
    # The slots survive every new session: the language chosen at turn 2, the latest count, what the bot asked.
    assert result["slots"] == {"language": "ar", "failed_turns": float(turns - 1), "pending": "feedback"}
    # The table holds each message once, in order (a save never repeats or drops events).
    assert result["user_texts"] == [f"fråga {i}" for i in range(turns)]
    assert result["bot_texts"] == [f"svar {i}" for i in range(turns)]


def test_paused_conversation_is_not_cut(tmp_path: Path) -> None:
    """While handed to a person (paused) the session grows on: a new session would drop the pause."""
    result = run_conversation(36, tmp_path, session_events=20)
    loaded = result["loaded"]
    assert loaded[33] > loaded[31] > loaded[30], loaded  # turns 31-34 paused: no new session
    assert loaded[35] < loaded[34], loaded  # resumed: the next finished turn starts one

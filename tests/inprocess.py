"""The fast in-process layer: the real app (real stores, SQLite, knowledge service, queue, agent service)
driven through FastAPI's TestClient, with a fake Rasa client.

The fake stands in for a separate process (Rasa and its action server), which the real end-to-end
tests (tests/e2e.py, test_e2e_*.py) start for real. It answers the way the dialogue does for the turns
these tests use: a greeting gets a reply, asking for a person queues the conversation exactly as the
action server's handoff call does (`Queue.enqueue` and the state event), a hand-back trigger gets a
welcome back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from core.config import Settings, database_url
from core.db import run_db
from core.users import UserStore

PERSON_WORDS = ("person", "människa", "handläggare", "/request_human")


class FakeRasa:
    """Rasa's REST channel as ChatService uses it (send, parse, trigger, resume, healthy, close)."""

    def __init__(self, components):
        self.c = components
        self.sent: list[tuple[str, str]] = []
        self.resumed: list[str] = []

    async def send(self, session_id: str, text: str, metadata: dict) -> list[dict]:
        self.sent.append((session_id, text))
        if any(word in text.lower() for word in PERSON_WORDS):
            result = await run_db(self.c.engine, self.c.queue.enqueue, session_id, "requested")
            return [{"text": f"Du är nummer {result.get('position', 1)} i kön.",
                     "custom": {"kind": "handoff"}}]
        return [{"text": "Hej! Vad kan jag hjälpa dig med?", "custom": {"kind": "greet"}}]

    async def parse(self, text: str, timeout: float) -> dict:
        """Rasa's NLU alone: an intent the service leaves to Rasa's whole turn (this fake's `send`), so these
        tests see that turn; tests/test_direct_answers.py's fake reads questions and greetings instead."""
        name = "request_human" if any(word in text.lower() for word in PERSON_WORDS) else "fake_rasa_turn"
        return {"text": text, "intent": {"name": name, "confidence": 1.0}, "entities": []}

    async def trigger(self, session_id: str, intent: str, entities: dict | None = None) -> list[dict]:
        return [{"text": "Välkommen tillbaka till chattroboten."}] if intent == "EXTERNAL_handback" else []

    async def resume(self, session_id: str) -> None:
        self.resumed.append(session_id)

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None


@contextlib.contextmanager
def running_app(data_dir: Path, model_path: Path) -> Iterator[tuple[TestClient, object]]:
    """The app in this process, its parts (`app.state.c`) with the fake Rasa plugged in."""
    from kommunchatt.app import create_app

    os.environ["KOMMUNCHATT_MODEL_PATH"] = str(model_path)
    settings = Settings(data_dir=data_dir, database_url=database_url(data_dir), internal_token="in-process",
                        rasa_url="http://127.0.0.1:9", actions_url="http://127.0.0.1:9")
    app = create_app(settings)
    with TestClient(app) as client:
        c = app.state.c
        c.rasa = c.chat.rasa = FakeRasa(c)
        yield client, c


def staff(client: TestClient, c, username: str, role: str = "agent", municipalities: tuple[str, ...] = ("default",),
          languages: tuple[str, ...] = ("sv",)) -> dict:
    """A staff user, logged in: returns headers with their bearer token."""
    UserStore(c.engine).create(username, "password-123", role=role, municipalities=list(municipalities),
                               languages=list(languages))
    token = client.post("/api/v1/auth/login", json={"username": username, "password": "password-123"}).json()["token"]
    return {"authorization": f"Bearer {token}"}


def add_municipality(c, municipality: str) -> None:
    from core.municipalities import municipalities

    with c.engine.begin() as conn:
        conn.execute(municipalities.insert().values(id=municipality, name=municipality.title(), settings={}))

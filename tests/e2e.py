"""Helpers for end-to-end tests: citizens and staff over HTTP, the domain's texts. Starting the processes is
tests/harness.py (re-exported here for the tests that import it from this module)."""

from __future__ import annotations

import os

import httpx
import yaml

from tests.conftest import ROOT
from tests.harness import prime_data_dir, running_service, running_system  # noqa: F401 - the harness, re-exported


class Citizen:
    """A chat session through the public chat API."""

    def __init__(self, base_url: str, language: str = "sv", municipality: str = "default"):
        self.http = httpx.Client(base_url=base_url, timeout=30)
        response = self.http.post("/api/v1/chat/sessions", json={"language": language, "municipality": municipality})
        response.raise_for_status()
        self.session_id = response.json()["session_id"]

    def say(self, text: str) -> dict:
        response = self.http.post(f"/api/v1/chat/sessions/{self.session_id}/messages", json={"text": text})
        response.raise_for_status()
        return response.json()


def bot_texts(reply: dict) -> str:
    return "\n".join(m["text"] for m in reply["messages"])


def domain_responses(name: str, language: str) -> list[str]:
    """The texts of a response in the domain for one language (the condition on the language slot)."""
    domain = yaml.safe_load((ROOT / "bot" / "domain.yml").read_text())
    texts = []
    for variant in domain["responses"][name]:
        values = [c.get("value") for c in variant.get("condition") or [] if c.get("name") == "language"]
        if language in values or (not values and language == "sv"):  # Swedish is the default variation
            texts.append(variant["text"])
    return texts


def staff_login(
    base_url: str, engine_url: str, role: str = "agent", municipalities: list[str] | None = None
) -> httpx.Client:
    """A logged-in staff client; `municipalities` None: the default one ("*" makes an admin global)."""
    from core.db import make_engine
    from core.users import UserStore

    engine = make_engine(engine_url)
    name = f"{role}-{os.urandom(3).hex()}"
    UserStore(engine).create(
        name, "a long password", role=role, languages=["sv", "ar", "en"], municipalities=municipalities
    )
    engine.dispose()
    client = httpx.Client(base_url=base_url, timeout=30)
    client.post("/api/v1/auth/login", json={"username": name, "password": "a long password"}).raise_for_status()
    return client

"""Helpers for end-to-end tests: the real three processes, started by the same runner as `make run`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import httpx
import yaml

from kommunchatt.runner import System, free_port, prepare
from tests.conftest import ROOT, SHARED_DATA


def prime_data_dir(data_dir: Path) -> None:
    """Share the seed's vector cache (content-addressed, so safe to copy): no test re-encodes the seed."""
    import shutil

    vectors = SHARED_DATA / "index" / "vectors"
    if vectors.exists():
        shutil.copytree(vectors, data_dir / "index" / "vectors", dirs_exist_ok=True)


@contextlib.contextmanager
def running_system(data_dir: Path, database_url: str | None = None, redis_url: str | None = None):
    """Start service, Rasa and actions on free ports; models are shared with `make run`."""
    os.environ.setdefault("KOMMUNCHATT_MODEL_PATH", str(SHARED_DATA / "models" / "multilingual-e5-small"))
    os.environ.setdefault("KOMMUNCHATT_RASA_MODELS", str(SHARED_DATA / "rasa-models"))
    prime_data_dir(data_dir)
    model = prepare(data_dir, database_url, log=lambda *_: None)
    system = System(
        data_dir=data_dir, service_port=free_port(), rasa_port=free_port(), actions_port=free_port(),
        database_url=database_url, redis_url=redis_url,
    )
    system.start(model)
    try:
        system.wait_ready(timeout=240)
        yield system
    finally:
        system.stop()


@contextlib.contextmanager
def running_service(data_dir: Path, database_url: str | None = None, redis_url: str | None = None, port: int = 0):
    """Only the service process (no Rasa): for API, agent and workshop tests that need no dialogue.

    Its /health reports Rasa as down, so readiness is the OpenAPI document answering.
    """
    import subprocess
    import sys
    import time

    from kommunchatt.runner import seed_knowledge

    os.environ.setdefault("KOMMUNCHATT_MODEL_PATH", str(SHARED_DATA / "models" / "multilingual-e5-small"))
    prime_data_dir(data_dir)
    seed_knowledge(data_dir, database_url, log=lambda *_: None)
    system = System(data_dir=data_dir, service_port=port or free_port(), database_url=database_url,
                    redis_url=redis_url, rasa_port=free_port(), actions_port=free_port())
    log = open(data_dir / "service.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "kommunchatt.cli", "serve"], cwd=ROOT, env=system.env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    system.processes["service"] = proc
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError((data_dir / "service.log").read_text()[-3000:])
            try:
                if httpx.get(f"{system.service_url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the service did not start in 120 s")
            time.sleep(0.3)
        yield system
    finally:
        system.stop()
        log.close()


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


def staff_login(base_url: str, engine_url: str, role: str = "agent") -> httpx.Client:
    from core.db import make_engine
    from core.users import UserStore

    engine = make_engine(engine_url)
    name = f"{role}-{os.urandom(3).hex()}"
    UserStore(engine).create(name, "a long password", role=role, languages=["sv", "ar", "en"])
    engine.dispose()
    client = httpx.Client(base_url=base_url, timeout=30)
    client.post("/api/v1/auth/login", json={"username": name, "password": "a long password"}).raise_for_status()
    return client

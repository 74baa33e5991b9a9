"""Two installs with their own data dirs and ports run side by side and share nothing."""

from __future__ import annotations

import contextlib

import httpx

from core.config import database_url
from core.db import make_engine
from core.users import UserStore
from tests.e2e import running_service


def webmaster(base_url: str, data_dir) -> httpx.Client:
    engine = make_engine(database_url(data_dir))
    UserStore(engine).create("web", "a long password", role="webmaster")
    engine.dispose()
    client = httpx.Client(base_url=base_url, timeout=30)
    client.post("/api/v1/auth/login", json={"username": "web", "password": "a long password"}).raise_for_status()
    return client


def test_two_instances_side_by_side(tmp_path):
    with contextlib.ExitStack() as stack:
        one = stack.enter_context(running_service(tmp_path / "one"))
        two = stack.enter_context(running_service(tmp_path / "two"))
        assert one.service_port != two.service_port
        editor = webmaster(one.service_url, tmp_path / "one")
        entry = {
            "questions": {"sv": ["Får man bada i Ekbysjön på vintern?"]},
            "answer": {"sv": "Vinterbad i Ekbysjön är tillåtet vid bryggan vid Sjöparken."},
        }
        assert editor.put("/api/v1/knowledge/entries/winter-swimming", json=entry).status_code == 200
        other = editor.put("/api/v1/knowledge/entries/winter-swimming?municipality=elsewhere", json=entry)
        assert other.status_code == 403  # a webmaster edits only their own municipality
        question = {"text": "Får man vinterbada i Ekbysjön?"}
        first = httpx.post(f"{one.service_url}/api/v1/answer", json=question).json()
        second = httpx.post(f"{two.service_url}/api/v1/answer", json=question).json()
        assert first["answers"][0]["id"] == "winter-swimming"
        assert all(a["id"] != "winter-swimming" for a in second["answers"])
        assert (tmp_path / "one" / "kommunchatt.db").exists() and (tmp_path / "two" / "kommunchatt.db").exists()

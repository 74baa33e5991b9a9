"""Bad input gets a clear error and loses nothing (the service alone, over real HTTP)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e import running_service


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("api")) as system:
        yield httpx.Client(base_url=system.service_url, timeout=30)


def new_session(service, **body) -> str:
    response = service.post("/api/v1/chat/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


def test_empty_and_oversized_messages_are_refused_clearly(service):
    session = new_session(service)
    empty = service.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": "   \u0000  "})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    long = service.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": "a" * 2001})
    assert long.status_code == 413 and "2000" in long.json()["detail"]
    assert service.get(f"/api/v1/chat/sessions/{session}").json()["messages"] == []


def test_broken_utf8_and_bad_json(service):
    session = new_session(service)
    broken = service.post(
        f"/api/v1/chat/sessions/{session}/messages",
        content=b'{"text": "hej \xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert broken.status_code in (400, 422)
    assert "JSON" in str(broken.json()["detail"]) or "body" in str(broken.json()["detail"])
    missing = service.post(f"/api/v1/chat/sessions/{session}/messages", json={"txt": "hej"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "text"


def test_unknown_ids(service):
    response = service.post("/api/v1/chat/sessions/does-not-exist/messages", json={"text": "hej"})
    assert response.status_code == 404 and "does-not-exist" in response.json()["detail"]
    assert service.post("/api/v1/chat/sessions", json={"municipality": "atlantis"}).status_code == 404
    assert service.post("/api/v1/chat/sessions", json={"language": "<script>"}).status_code == 422


def test_rasa_down_gives_an_apology_not_silence(service):
    """This service runs without Rasa: the citizen is told and offered a person, the message is kept."""
    session = new_session(service)
    reply = service.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": "<b>hej</b>"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["state"] == "bot" and "Förlåt" in body["messages"][0]["text"]
    assert body["messages"][0]["buttons"][0]["payload"] == "/direct_handoff"  # queues without Rasa
    transcript = service.get(f"/api/v1/chat/sessions/{session}").json()["messages"]
    assert transcript[0] == {**transcript[0], "sender": "citizen", "text": "<b>hej</b>"}


def test_resending_the_same_client_id_does_not_duplicate(service):
    session = new_session(service)
    for _ in range(2):
        service.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": "hej", "client_id": "m-1"})
    messages = service.get(f"/api/v1/chat/sessions/{session}").json()["messages"]
    citizen = [m for m in messages if m["sender"] == "citizen"]
    assert len(citizen) == 1


def test_answer_api_validates_and_explains(service):
    assert service.post("/api/v1/answer", json={"text": ""}).status_code == 422
    assert service.post("/api/v1/answer", json={"text": "x", "top_k": 21}).status_code == 422
    body = service.post("/api/v1/answer?explain=true", json={"text": "När hämtas soporna?"}).json()
    assert body["decision"] in ("answer", "clarify", "handoff") and "explain" in body
    assert body["answers"][0]["id"] == "waste-collection-schedule"


def test_internal_endpoints_need_the_token(service):
    session = new_session(service)
    response = service.post(f"/api/v1/internal/sessions/{session}/handoff", json={"reason": "requested"})
    assert response.status_code == 403

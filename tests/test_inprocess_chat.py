"""Fast layer: the citizen's chat through the real app in this process (fake Rasa, see tests/inprocess.py)."""

from __future__ import annotations

import pytest

from tests.inprocess import running_app


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("inprocess-chat"), model_path) as running:
        yield running


def new_session(client, language: str = "sv") -> str:
    response = client.post("/api/v1/chat/sessions", json={"language": language})
    assert response.status_code == 201 and response.json()["state"] == "bot"
    return response.json()["session_id"]


def test_a_message_is_stored_answered_and_in_the_transcript(app):
    client, c = app
    sid = new_session(client)
    reply = client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "Hej", "client_id": "m1"})
    assert reply.status_code == 200
    assert [m["sender"] for m in reply.json()["messages"]] == ["bot"] and reply.json()["state"] == "bot"
    transcript = client.get(f"/api/v1/chat/sessions/{sid}").json()
    assert [(m["sender"], m["text"]) for m in transcript["messages"]][:1] == [("citizen", "Hej")]
    assert transcript["queue"]["state"] == "bot" and (sid, "Hej") in c.rasa.sent


def test_a_resend_is_not_stored_twice_and_gets_the_same_answer(app):
    client, _ = app
    sid = new_session(client)
    first = client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "Hej", "client_id": "same"}).json()
    again = client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "Hej", "client_id": "same"}).json()
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
    citizen = [m for m in client.get(f"/api/v1/chat/sessions/{sid}").json()["messages"] if m["sender"] == "citizen"]
    assert len(citizen) == 1


def test_bad_input_gets_one_error_shape(app):
    client, _ = app
    sid = new_session(client)
    empty = client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "   "})
    assert empty.status_code == 422 and empty.json()["detail"] == "the message is empty"
    assert empty.json()["errors"] == [{"field": "text", "message": "the message is empty"}]
    missing = client.post(f"/api/v1/chat/sessions/{sid}/messages", json={})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "text"
    assert isinstance(missing.json()["detail"], str)
    unknown = client.get("/api/v1/chat/sessions/no-such-session")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no chat session with id 'no-such-session'",
                                                            "errors": []}
    too_long = client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "x" * 2001})
    assert too_long.status_code == 413 and "2000" in too_long.json()["detail"]


def test_the_language_table_is_served_once_for_every_page(app):
    client, _ = app
    languages = client.get("/api/v1/languages").json()["languages"]
    codes = [x["code"] for x in languages]
    assert codes[:2] == ["sv", "en"] and {"ar", "fa"} <= set(codes)
    assert {x["code"] for x in languages if x["direction"] == "rtl"} == {"ar", "fa"}
    assert client.post("/api/v1/chat/sessions", json={"language": "no such!"}).status_code == 422


def test_openapi_documents_the_error_shape_and_response_models(app):
    client, _ = app
    spec = client.get("/openapi.json").json()
    assert "ErrorBody" in spec["components"]["schemas"]
    claim = spec["paths"]["/api/v1/handoff/conversations/{conversation_id}/claim"]["post"]["responses"]
    assert claim["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert claim["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ConversationView")


def test_the_action_servers_calls_set_language_feedback_tickets_and_queue(app):
    client, c = app
    sid = new_session(client)
    internal = {"x-internal-token": "in-process"}
    base = f"/api/v1/internal/sessions/{sid}"
    assert client.post(f"{base}/language", json={"language": "en"}, headers=internal).json() == {"language": "en"}
    assert client.get(f"/api/v1/chat/sessions/{sid}").json()["language"] == "en"
    assert client.post(f"{base}/feedback", json={"entry_id": "x", "helpful": False}, headers=internal).json() == {}
    refused = client.post(f"{base}/callback", json={"message": "Ring mig", "phone": "0701234567", "consent": False},
                          headers=internal)
    assert refused.status_code == 422 and "consent" in refused.json()["detail"]
    ticket = client.post(f"{base}/callback", json={"message": "Ring mig", "phone": "0701234567", "consent": True},
                         headers=internal)
    assert ticket.status_code == 201 and isinstance(ticket.json()["ticket_id"], int)
    queued = client.post(f"{base}/handoff", json={"reason": "requested"}, headers=internal).json()
    assert queued["open"] is True and queued["state"] == "queued" and queued["position"] >= 1
    assert client.post(f"{base}/handoff", json={}, headers={"x-internal-token": "wrong"}).status_code == 403

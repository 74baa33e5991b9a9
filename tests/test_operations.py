"""Operations of the service alone (no Rasa, real HTTP): health by part, liveness and readiness, the
direct way to a person while the dialogue is down, Prometheus metrics, request ids, JSON logs
without personal data, and /docs without a CDN."""

from __future__ import annotations

import json
import os
import re
import time

import httpx
import pytest

from core.config import database_url as resolve
from tests.e2e import running_service, staff_login


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ops")
    os.environ["KOMMUNCHATT_LOG_FORMAT"] = "json"
    try:
        with running_service(data_dir) as system:
            system.engine_url = resolve(data_dir)
            system.http = httpx.Client(base_url=system.service_url, timeout=30)
            yield system
    finally:
        os.environ.pop("KOMMUNCHATT_LOG_FORMAT", None)


def new_session(http: httpx.Client) -> str:
    response = http.post("/api/v1/chat/sessions", json={"language": "en"})
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


def test_health_names_the_part_that_is_down(system):
    health = system.http.get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "degraded", "model": True, "database": True, "rasa": False, "actions": False}
    assert system.http.get("/health/live").json() == {"status": "alive"}
    ready = system.http.get("/health/ready")  # Rasa down does not make the service unready
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "model": True, "database": True}


def test_while_rasa_is_down_the_button_queues_the_citizen_directly(system):
    http = system.http
    session = new_session(http)
    first = http.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": "I need help with my rent"}).json()
    assert first["state"] == "bot" and "technical problems" in first["messages"][0]["text"]
    button = first["messages"][0]["buttons"][0]
    assert button == {"title": "Talk to a person", "payload": "/direct_handoff"}
    pressed = http.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": button["payload"]}).json()
    assert pressed["state"] == "queued", pressed
    assert pressed["messages"][0][
        "text"
    ] == "I'm connecting you to a person. You are number 1 in the queue." or re.match(
        r"I'm connecting you to a person\. You are number \d+ in the queue\.", pressed["messages"][0]["text"]
    )
    agent = staff_login(system.service_url, system.engine_url)
    waiting = [q for q in agent.get("/api/v1/handoff/queue").json() if q["session_id"] == session]
    assert waiting and waiting[0]["reason"] == "service_error"
    # Everything the citizen wrote is kept for the agent, once.
    texts = [
        m["text"] for m in http.get(f"/api/v1/chat/sessions/{session}").json()["messages"] if m["sender"] == "citizen"
    ]
    assert texts == ["I need help with my rent", "/direct_handoff"]


def test_a_resent_message_is_answered_once(system):
    """A resend (same client id) of a message gets the stored reply, never a second one."""
    http = system.http
    session = new_session(http)
    body = {"text": "hello", "client_id": "c-1"}
    first = http.post(f"/api/v1/chat/sessions/{session}/messages", json=body).json()
    again = http.post(f"/api/v1/chat/sessions/{session}/messages", json=body).json()
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
    transcript = http.get(f"/api/v1/chat/sessions/{session}").json()["messages"]
    assert [m["sender"] for m in transcript] == ["citizen", "bot"]


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of `name` whose labels include `labels` (None if there is none)."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    return None


def test_metrics(system):
    http = system.http
    session = new_session(http)
    http.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": "hello"})
    http.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": "/direct_handoff"})
    http.post("/api/v1/answer", json={"text": "När hämtas soporna?"})
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = "/api/v1/chat/sessions/{session_id}/messages"  # the route template, never the session id
    assert _sample(text, "kommunchatt_http_request_duration_seconds_count", handler=route, method="POST") >= 2
    assert session not in text
    assert _sample(text, "kommunchatt_turn_seconds_count", part="total") >= 2
    assert _sample(text, "kommunchatt_turn_seconds_count", part="rasa") >= 2
    assert _sample(text, "kommunchatt_errors_total", kind="rasa_unavailable") >= 1
    assert _sample(text, "kommunchatt_errors_total", kind="direct_handoff") >= 1
    assert _sample(text, "kommunchatt_handoffs_total", reason="service_error") >= 1
    assert _sample(text, "kommunchatt_queue_length", municipality="default") >= 1
    assert _sample(text, "kommunchatt_agents_online") is not None
    decisions = [line for line in text.splitlines() if line.startswith("kommunchatt_answer_decisions_total{")]
    assert decisions and all(re.search(r'band="0\.\d"', line) for line in decisions)


def test_request_ids(system):
    echoed = system.http.get("/health/live", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    made = system.http.get("/health/live", headers={"x-request-id": "bad id; drop table"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])


def test_json_logs_carry_ids_but_no_message_text(system):
    http = system.http
    session = new_session(http)
    secret = "Zebrafinken 19121212-1212"
    http.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": secret}, headers={"x-request-id": "req-77"})
    deadline = time.monotonic() + 5  # the access line is written once the response has been sent
    while True:
        log_text = (system.data_dir / "service.log").read_text()
        records = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
        mine = [r for r in records if r.get("request_id") == "req-77"]
        access = [r for r in mine if r["logger"] == "kommunchatt.access"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "Zebrafinken" not in log_text and "19121212" not in log_text
    assert mine, log_text[-2000:]
    assert access and access[0]["conversation_id"] == session
    assert access[0]["route"] == "/api/v1/chat/sessions/{session_id}/messages" and access[0]["status"] == 200


def test_docs_are_served_without_a_cdn(system):
    page = system.http.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs-assets/") for s in sources), sources
    assert "cdn" not in page.text.lower()
    for source in sources:
        assert system.http.get(source).status_code == 200, source
    assert system.http.get("/openapi.json").status_code == 200

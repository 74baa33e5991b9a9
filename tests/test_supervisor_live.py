"""The supervisor's live view is pushed, not polled (issue 16): /api/v1/supervisor/ws says `changed` when a
citizen is queued, a chat is taken or ended, or an agent's status changes, from the staff event stream the
consoles hear; with the console's session check, for admins only, and without making the supervisor an
available agent. In process; tests/test_browser_staff_pages.py has the page in Chromium."""

from __future__ import annotations

import time

import pytest
from starlette.websockets import WebSocketDisconnect

from handoff.presence import online_user_ids
from tests.inprocess import running_app, staff

SOCKET = "/api/v1/supervisor/ws"


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("inprocess-supervisor-live"), model_path) as running:
        yield running


def changes_until(ws, kind: str) -> list[str]:
    """The `changed` kinds heard up to and with `kind` (the test's timeout stops a wait for one never sent)."""
    heard = []
    while not heard or heard[-1] != kind:
        event = ws.receive_json()
        assert event["type"] == "changed" and set(event) == {"type", "kind"}, event  # no ids: /live is scoped
        heard.append(event["kind"])
    return heard


@pytest.mark.timeout(300)
def test_the_socket_says_when_the_queue_chats_and_agents_change(app):
    client, c = app
    admin = staff(client, c, "chef", role="admin")
    agent = staff(client, c, "gustav")
    listening = len(c.events._subscribers["agents"])
    with client.websocket_connect(SOCKET, headers=admin) as ws:
        assert ws.receive_json()["type"] == "hello"
        sid = client.post("/api/v1/chat/sessions", json={"language": "sv"}).json()["session_id"]
        client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "Jag vill prata med en människa"})
        assert "conversation" in changes_until(ws, "conversation")  # a citizen queued
        client.post(f"/api/v1/handoff/conversations/{sid}/claim", headers=agent).raise_for_status()
        changes_until(ws, "assigned")
        client.post(f"/api/v1/handoff/conversations/{sid}/close", json={"outcome": "resolved"},
                    headers=agent).raise_for_status()
        changes_until(ws, "released")
        client.put("/api/v1/handoff/status", json={"status": "away"}, headers=agent).raise_for_status()
        changes_until(ws, "status")
        # Queued by the action server (its state event follows the bot's turn): the consoles' next queue.
        other = client.post("/api/v1/chat/sessions", json={"language": "sv"}).json()["session_id"]
        client.post(f"/api/v1/internal/sessions/{other}/handoff", json={"reason": "requested"},
                    headers={"X-Internal-Token": "in-process"}).raise_for_status()
        changes_until(ws, "queue")
        chef = client.get("/api/v1/auth/me", headers=admin).json()
        assert chef["id"] not in online_user_ids(c.engine)  # watching is not being at work
        assert chef["status"] == "offline"
        # The page goes away; the socket unsubscribes. (Leaving the block at once, the test client cancels
        # the endpoint mid-way through that, which uvicorn never does, and reports the cancellation.)
        ws.close()
        give_up = time.monotonic() + 10
        while len(c.events._subscribers["agents"]) > listening and time.monotonic() < give_up:
            time.sleep(0.01)
        assert len(c.events._subscribers["agents"]) == listening, "the socket kept listening after it closed"


def test_only_admins_with_a_session_hear_it(app):
    client, c = app
    agent = staff(client, c, "bo")
    for headers in (agent, {}, {"authorization": "Bearer not-a-session"}):
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(SOCKET, headers=headers) as ws:
            ws.receive_json()
        assert refused.value.code == 4401

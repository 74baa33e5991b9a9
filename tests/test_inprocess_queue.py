"""Fast layer: the queue and the agent commands through the real app in this process (fake Rasa): one
AgentService behind REST, and the municipality scope on every command."""

from __future__ import annotations

import pytest

from tests.inprocess import add_municipality, running_app, staff


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("inprocess-queue"), model_path) as (client, c):
        add_municipality(c, "norrvik")
        yield client, c


def queued(client, municipality: str = "default") -> str:
    sid = client.post("/api/v1/chat/sessions", json={"language": "sv", "municipality": municipality}).json()
    sid = sid["session_id"]
    reply = client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "Jag vill prata med en människa"})
    assert reply.json()["state"] == "queued"
    return sid


def test_asking_for_a_person_queues_and_an_agent_claims_replies_and_closes(app):
    client, _ = app
    sid = queued(client)
    agent = staff(client, _, "anna")
    waiting = client.get("/api/v1/handoff/queue", headers=agent).json()
    assert sid in [item["session_id"] for item in waiting]
    assert next(i for i in waiting if i["session_id"] == sid)["preview"] == "Jag vill prata med en människa"
    claimed = client.post(f"/api/v1/handoff/conversations/{sid}/claim", headers=agent)
    assert claimed.status_code == 200 and claimed.json()["state"] == "agent"
    sent = client.post(f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "Hej, Anna här"}, headers=agent)
    assert sent.status_code == 201 and sent.json()["sender"] == "agent"
    citizen_view = client.get(f"/api/v1/chat/sessions/{sid}").json()["messages"]
    assert "Hej, Anna här" in [m["text"] for m in citizen_view]
    bad = client.post(f"/api/v1/handoff/conversations/{sid}/close", json={"outcome": "maybe"}, headers=agent)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "outcome"
    closed = client.post(f"/api/v1/handoff/conversations/{sid}/close", json={"outcome": "resolved"}, headers=agent)
    assert closed.json() == {"state": "closed", "outcome": "resolved"}
    rated = client.post(f"/api/v1/chat/sessions/{sid}/rating", json={"score": 5})
    assert rated.status_code == 200 and rated.json()["score"] == 5


def test_a_second_claim_conflicts_and_notes_never_reach_the_citizen(app):
    client, c = app
    sid = queued(client)
    one, two = staff(client, c, "bo"), staff(client, c, "cecilia")
    assert client.post(f"/api/v1/handoff/conversations/{sid}/claim", headers=one).status_code == 200
    again = client.post(f"/api/v1/handoff/conversations/{sid}/claim", headers=two)
    assert again.status_code == 409 and isinstance(again.json()["detail"], str)
    note = client.post(
        f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "intern", "note": True}, headers=one
    )
    assert note.status_code == 201 and note.json()["sender"] == "note"
    assert "intern" not in [m["text"] for m in client.get(f"/api/v1/chat/sessions/{sid}").json()["messages"]]
    staff_view = client.get(f"/api/v1/handoff/conversations/{sid}", headers=one).json()
    assert "intern" in [m["text"] for m in staff_view["messages"]]
    back = client.post(f"/api/v1/handoff/conversations/{sid}/handback", headers=one)
    assert back.status_code == 200 and back.json()["state"] == "bot" and c.rasa.resumed[-1] == sid


def test_an_agent_of_another_municipality_can_neither_see_nor_act(app):
    client, c = app
    sid = queued(client, "norrvik")
    outsider = staff(client, c, "dan", municipalities=("default",))
    member = staff(client, c, "eva", municipalities=("norrvik",))
    assert sid not in [i["session_id"] for i in client.get("/api/v1/handoff/queue", headers=outsider).json()]
    assert sid in [i["session_id"] for i in client.get("/api/v1/handoff/queue", headers=member).json()]
    base = f"/api/v1/handoff/conversations/{sid}"
    for method, path, body in [
        ("get", "", None),
        ("post", "/claim", None),
        ("get", "/suggestions", None),
        ("post", "/messages", {"text": "hej", "note": True}),
        ("post", "/close", {"outcome": "resolved"}),
        ("post", "/handback", None),
        ("post", "/transfer", {"to_user_id": None}),
    ]:
        response = client.request(method, base + path, json=body, headers=outsider)
        assert response.status_code == 403, (method, path, response.text)
        assert "norrvik" in response.json()["detail"]
    assert client.post(f"{base}/claim", headers=member).status_code == 200


def test_unknown_ids_are_404_with_the_error_shape(app):
    client, c = app
    agent = staff(client, c, "frida")
    for method, path in [
        ("get", "/api/v1/handoff/conversations/nope"),
        ("post", "/api/v1/handoff/conversations/nope/claim"),
        ("patch", "/api/v1/handoff/tickets/999999"),
        ("delete", "/api/v1/handoff/canned/999999"),
    ]:
        body = {"status": "done"} if method == "patch" else None
        response = client.request(
            method,
            path,
            json=body,
            headers=agent if method != "delete" else staff(client, c, f"web-{method}", role="webmaster"),
        )
        assert response.status_code == 404, (path, response.text)
        assert set(response.json()) == {"detail", "errors"}


def test_metrics_count_the_queue_per_municipality_from_the_database(app):
    client, _ = app

    def waiting(municipality: str) -> float:
        text = client.get("/metrics").text
        line = next(
            (
                x
                for x in text.splitlines()
                if x.startswith(f'kommunchatt_queue_length{{municipality="{municipality}"}}')
            ),
            None,
        )
        return float(line.split()[-1]) if line else 0.0

    before = waiting("norrvik")
    queued(client, "norrvik")
    assert waiting("norrvik") == before + 1
    assert "kommunchatt_agents_online " in client.get("/metrics").text


def test_with_nobody_online_the_queue_answer_carries_todays_opening_hours(app):
    """Issue 16: "no agent online" says so and offers a call-back or the opening hours. The action server
    (actions/common.py `_tell_queued`) says today's hours from the handoff answer's `hours_today`."""
    client, c = app
    chef = staff(client, c, "chef-hours", role="admin", municipalities=("norrvik",))
    every_day = {day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    hours = "/api/v1/admin/municipalities/norrvik/opening-hours"
    client.put(hours, json={"timezone": "Europe/Stockholm", "weekly": every_day}, headers=chef).raise_for_status()
    try:
        sid = client.post("/api/v1/chat/sessions", json={"language": "sv", "municipality": "norrvik"}).json()
        handoff = client.post(
            f"/api/v1/internal/sessions/{sid['session_id']}/handoff",
            json={"reason": "requested"},
            headers={"X-Internal-Token": "in-process"},
        )
        assert handoff.status_code == 200, handoff.text
        assert handoff.json() | {"position": None} == {
            "state": "queued",
            "open": True,
            "opens_at": None,
            "position": None,
            "estimated_wait_seconds": None,
            "agents_online": 0,
            "hours_today": "00:00–23:59",
        }
    finally:
        client.put(hours, json={"timezone": "Europe/Stockholm", "weekly": {}}, headers=chef).raise_for_status()

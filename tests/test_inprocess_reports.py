"""Fast layer: reports over conversations an agent handled, through the real app in this process."""

from __future__ import annotations

import pytest

from tests.inprocess import running_app, staff


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("inprocess-reports"), model_path) as running:
        yield running


def handled(client, agent: dict, outcome: str) -> str:
    sid = client.post("/api/v1/chat/sessions", json={"language": "sv"}).json()["session_id"]
    client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "Jag vill prata med en människa"})
    client.post(f"/api/v1/handoff/conversations/{sid}/claim", headers=agent).raise_for_status()
    client.post(f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "Hej"}, headers=agent).raise_for_status()
    client.post(f"/api/v1/handoff/conversations/{sid}/close", json={"outcome": outcome},
                headers=agent).raise_for_status()
    return sid


def test_summary_and_agent_reports_count_what_happened(app):
    client, c = app
    agent, admin = staff(client, c, "gustav"), staff(client, c, "chef", role="admin")
    sids = [handled(client, agent, "resolved"), handled(client, agent, "referred")]
    client.post(f"/api/v1/chat/sessions/{sids[0]}/rating", json={"score": 4}).raise_for_status()
    summary = client.get("/api/v1/reports/summary", headers=admin)
    assert summary.status_code == 200
    rows = summary.json()["rows"]
    assert sum(r.get("handled", r.get("conversations", 0)) for r in rows) >= 2, rows
    agents = client.get("/api/v1/reports/agents", headers=admin).json()["agents"]
    mine = next(a for a in agents if a.get("username") == "gustav" or a.get("name") == "gustav")
    assert mine["chats"] == 2, mine
    assert client.get("/api/v1/reports/summary", headers=agent).status_code == 403
    bad = client.get("/api/v1/reports/summary", params={"date_from": "not-a-date"}, headers=admin)
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], str)

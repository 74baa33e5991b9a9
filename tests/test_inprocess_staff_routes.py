"""Fast layer: the staff routes on typed dependencies and response models (privacy, dismissals, history,
supervisor, municipalities) and the widget's language choice, through the real app in this process."""

from __future__ import annotations

import pytest

from tests.inprocess import running_app, staff


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("inprocess-staff-routes"), model_path) as running:
        yield running


def chat(client, text: str = "Jag vill prata med en människa") -> str:
    sid = client.post("/api/v1/chat/sessions", json={"language": "sv"}).json()["session_id"]
    client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": text}).raise_for_status()
    return sid


def test_language_choice_is_stored_and_unknown_languages_refused(app):
    client, c = app
    sid = chat(client, "Hej")
    assert client.post(f"/api/v1/chat/sessions/{sid}/language", json={"language": "en"}).json() == {"language": "en"}
    assert c.conversations.get(sid)["language"] == "en"
    bad = client.post(f"/api/v1/chat/sessions/{sid}/language", json={"language": "xx"})
    assert bad.status_code == 422 and "xx" in bad.json()["detail"]
    assert client.post("/api/v1/chat/sessions/nope/language", json={"language": "en"}).status_code == 404


def test_privacy_settings_notice_export_erase_and_access_log(app):
    client, c = app
    admin = staff(client, c, "dpo", role="admin", municipalities=("*",))
    body = {"retention_days": 30, "privacy_notice": {"sv": "Vi sparar"}}
    put = client.put("/api/v1/admin/privacy/settings", json=body, headers=admin)
    assert put.status_code == 200 and put.json()["retention_days"] == 30
    notice = client.get("/api/v1/chat/privacy", params={"language": "sv"}).json()
    assert notice == {"municipality": "default", "text": "Vi sparar", "url": None, "retention_days": 30}
    sid = chat(client)
    exported = client.post("/api/v1/admin/privacy/export", json={"conversation_ids": [sid]}, headers=admin).json()
    assert [x["conversation"]["id"] for x in exported["conversations"]] == [sid]
    log = client.get("/api/v1/admin/privacy/access-log", params={"conversation_id": sid}, headers=admin).json()
    assert [(e["action"], e["username"]) for e in log] == [("export", "dpo")]
    empty = client.post("/api/v1/admin/privacy/erase", json={}, headers=admin)
    assert empty.status_code == 422 and set(empty.json()) >= {"detail", "errors"}
    erased = client.post("/api/v1/admin/privacy/erase", json={"conversation_ids": [sid]}, headers=admin).json()
    assert erased["conversations"] == [sid]
    assert set(client.post("/api/v1/admin/privacy/purge", headers=admin).json()) >= {"conversations", "rows"}
    agent = staff(client, c, "agneta")
    assert client.get("/api/v1/admin/privacy/settings", headers=agent).status_code == 403


def test_dismissals_history_supervisor_and_municipalities(app):
    client, c = app
    admin = staff(client, c, "chef", role="admin")
    webmaster = staff(client, c, "webb", role="webmaster")
    wordings = {"texts": ["asdf qwerty"], "language": "sv"}
    assert client.post("/api/v1/admin/unanswered/dismiss", json=wordings, headers=webmaster).json() == {"dismissed": 1}
    listed = client.get("/api/v1/admin/unanswered/dismissed", headers=webmaster).json()
    assert [(d["text"], d["dismissed_by"]) for d in listed] == [("asdf qwerty", "webb")]
    assert client.post("/api/v1/admin/unanswered/restore", json=wordings, headers=webmaster).json() == {"restored": 1}
    sid = chat(client)
    found = client.get("/api/v1/handoff/history", params={"q": sid[:8]}, headers=admin).json()
    assert sid in [row["id"] for row in found["items"]]
    assert client.get(f"/api/v1/handoff/history/{sid}", headers=admin).json()["conversation"]["id"] == sid
    assert sid in [w["id"] for w in client.get("/api/v1/supervisor/live", headers=admin).json()["waiting"]]
    assert "default" in [m["id"] for m in client.get("/api/v1/admin/municipalities", headers=admin).json()]


def test_health_citizen_moves_and_municipality_changes(app):
    client, c = app
    assert client.get("/health/live").json() == {"status": "alive"}
    assert client.get("/health/ready").json() == {"status": "ok", "model": True, "database": True}
    full = client.get("/health")  # the action server is not running in this layer
    assert full.status_code == 503 and full.json()["actions"] is False and full.json()["database"] is True
    sid = chat(client)
    left = client.post(f"/api/v1/chat/sessions/{sid}/leave-queue").json()
    assert left["state"] == "bot" and left["queue"]["state"] == "bot"
    sid = chat(client)
    assert client.post(f"/api/v1/chat/sessions/{sid}/end").json()["state"] == "closed"
    assert client.post(f"/api/v1/chat/sessions/{sid}/end").status_code == 409
    admin = staff(client, c, "root", role="admin", municipalities=("*",))
    made = client.post("/api/v1/admin/municipalities", json={"id": "ekby", "name": "Ekby"}, headers=admin)
    assert made.status_code == 201 and made.json() == {"id": "ekby", "name": "Ekby", "settings": {}}
    changed = client.patch("/api/v1/admin/municipalities/ekby", json={"settings": {"currency": "EUR"}}, headers=admin)
    assert changed.json()["settings"]["currency"] == "EUR"


def test_widget_config_and_topics_answer_in_their_declared_shape(app):
    client, _ = app
    config = client.get("/api/v1/chat/config", params={"language": "sv"}).json()
    assert config["municipality"] == "default" and set(config["colors"]) == {"primary"}
    assert all(set(t) == {"id", "question"} for t in config["topics"])
    assert isinstance(client.get("/api/v1/chat/topics").json()["topics"], list)
    assert client.get("/api/v1/chat/config", params={"municipality": "nowhere"}).status_code == 404


def test_widget_look_is_stored_and_unknown_topics_refused(app):
    client, c = app
    admin = staff(client, c, "looks", role="admin")
    set_look = client.put("/api/v1/admin/municipalities/default/widget", json={"name": "Ekby kommun"}, headers=admin)
    assert set_look.json() == {"municipality": "default", "widget": {"name": "Ekby kommun"}}
    assert client.get("/api/v1/chat/config").json()["name"] == "Ekby kommun"
    bad = client.put("/api/v1/admin/municipalities/default/widget", json={"topics": ["no-such-entry"]}, headers=admin)
    assert bad.status_code == 422 and "no-such-entry" in bad.json()["detail"]

"""The staff side's API against the real service (issue 16): reports after hand-backs and transfers,
history and search, the supervisor's live view, municipalities, dismissed questions, the dashboard's
currency and names. No Rasa: conversations enter the queue through the internal endpoint."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from tests.test_handoff_support import Service


@pytest.fixture(scope="module")
def svc(tmp_path_factory, model_path):
    from tests.conftest import ROOT

    service = Service(
        tmp_path_factory.mktemp("staff-api"), model_path, kb=ROOT / "data" / "knowledge" / "waste.yml"
    ).start(timeout=900)  # a loaded machine takes minutes to build the index
    service.agent("chef", role="admin", municipalities="*")  # a global admin: adds municipalities
    yield service
    service.stop()


@pytest.fixture(scope="module")
def staff(svc):
    admin = svc.staff(svc.admin_token)
    anna = svc.staff(svc.agent("anna", languages="sv,en"))
    bo = svc.staff(svc.agent("bo", languages="sv,ar"))
    users = {u["username"]: u["id"] for u in admin.get("/api/v1/admin/users").json()}
    return {"admin": admin, "anna": anna, "bo": bo, "ids": users}


def reply(client: httpx.Client, sid: str, text: str) -> None:
    client.post(f"/api/v1/handoff/conversations/{sid}/messages", json={"text": text}).raise_for_status()


def test_first_response_is_measured_per_queue_entry_never_negative(svc, staff):
    anna, bo, admin = staff["anna"], staff["bo"], staff["admin"]
    # Anna answers, hands back; the citizen asks for a person again and Bo answers: today's conversation
    # column pairs Anna's reply with the second queue entry and the chat had no first-response time.
    again = svc.citizen("sv", text="Jag vill prata med någon om sophämtningen")
    anna.post(f"/api/v1/handoff/conversations/{again}/claim").raise_for_status()
    reply(anna, again, "Hej, jag heter Anna.")
    anna.post(f"/api/v1/handoff/conversations/{again}/handback").raise_for_status()
    assert svc.handoff(again)["state"] == "queued"
    bo.post(f"/api/v1/handoff/conversations/{again}/claim").raise_for_status()
    reply(bo, again, "Hej igen, Bo här.")
    # A transfer: Anna answers, passes it to Bo, who answers too.
    moved = svc.citizen("sv", text="Fråga om avgiften")
    anna.post(f"/api/v1/handoff/conversations/{moved}/claim").raise_for_status()
    reply(anna, moved, "Jag kollar.")
    anna.post(
        f"/api/v1/handoff/conversations/{moved}/transfer", json={"to_user_id": staff["ids"]["bo"]}
    ).raise_for_status()
    reply(bo, moved, "Avgiften är 1 200 kr.")
    # Handed back before any reply, then answered by Bo after a new request.
    silent = svc.citizen("sv", text="Hämtar ni grovsopor?")
    anna.post(f"/api/v1/handoff/conversations/{silent}/claim").raise_for_status()
    anna.post(f"/api/v1/handoff/conversations/{silent}/handback").raise_for_status()
    svc.handoff(silent)
    bo.post(f"/api/v1/handoff/conversations/{silent}/claim").raise_for_status()
    reply(bo, silent, "Ja, två gånger om året.")

    today = dt.date.today().isoformat()
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()  # whatever the server's time zone
    rows = admin.get(
        "/api/v1/reports/summary", params={"date_from": today, "date_to": tomorrow, "group_by": "municipality"}
    ).json()["rows"]
    first = rows[0]["first_response_seconds"]
    assert first["count"] == rows[0]["answered"] == 3, rows  # every answered (replied) chat has one
    assert first["mean"] >= 0 and first["max"] >= 0
    per_agent = admin.get("/api/v1/reports/agents", params={"date_from": today, "date_to": tomorrow}).json()["agents"]
    for agent in per_agent:
        stats = agent["first_response_seconds"]
        assert stats["count"] and stats["mean"] >= 0, agent


def test_history_finds_past_chats_by_words_session_and_contact_and_names_the_citizens_other_chats(svc, staff):
    admin, anna = staff["admin"], staff["anna"]
    first = svc.citizen("sv", text="Hur sorterar jag batterier?")
    anna.post(f"/api/v1/handoff/conversations/{first}/claim").raise_for_status()
    reply(anna, first, "Batterier lämnar du i batteriholken.")
    anna.post(f"/api/v1/handoff/conversations/{first}/close", json={"outcome": "resolved"}).raise_for_status()
    later = svc.citizen("sv", text="Och glödlampor då?")
    for sid in (first, later):
        httpx.post(
            f"{svc.url}/api/v1/internal/sessions/{sid}/callback",
            headers={"X-Internal-Token": svc.token},
            json={"name": "Åsa", "phone": "070-123 45 67", "message": "Ring mig", "consent": True},
        ).raise_for_status()

    found = admin.get("/api/v1/handoff/history", params={"q": "batterier"}).json()
    assert [c["id"] for c in found["items"]] == [first] and found["total"] == 1
    item = found["items"][0]
    assert item["title"] == "Hur sorterar jag batterier?" and item["agents"] == ["anna"]
    assert item["state"] == "closed" and item["outcome"] == "resolved"
    assert [c["id"] for c in admin.get("/api/v1/handoff/history", params={"q": first[:10]}).json()["items"]] == [first]
    by_contact = admin.get("/api/v1/handoff/history", params={"contact": "123 45 67"}).json()["items"]
    by_contact = {c["id"] for c in by_contact}
    assert by_contact == {first, later}

    detail = anna.get(f"/api/v1/handoff/history/{first}").json()
    assert [m["text"] for m in detail["messages"] if m["sender"] == "agent"] == ["Batterier lämnar du i batteriholken."]
    assert [r["id"] for r in detail["related"]] == [later]
    assert admin.get("/api/v1/handoff/history", params={"date_from": "not a date"}).status_code == 422
    # An agent of another municipality sees nothing of these.
    other = svc.staff(svc.agent("cilla", municipalities="norrvik"))
    assert other.get("/api/v1/handoff/history", params={"q": "batterier"}).json()["total"] == 0
    assert other.get(f"/api/v1/handoff/history/{first}").status_code == 404


def test_supervisor_sees_waiting_citizens_and_agents_live(svc, staff):
    admin, bo = staff["admin"], staff["bo"]
    waiting = svc.citizen("ar", text="متى يتم جمع القمامة؟")
    live = admin.get("/api/v1/supervisor/live").json()
    entry = next(w for w in live["waiting"] if w["id"] == waiting)
    assert entry["language"] == "ar" and entry["title"] == "متى يتم جمع القمامة؟"
    assert live["longest_wait_seconds"] >= 0 and entry["position"] >= 1
    bo.post(f"/api/v1/handoff/conversations/{waiting}/claim").raise_for_status()
    live = admin.get("/api/v1/supervisor/live").json()
    assert waiting not in {w["id"] for w in live["waiting"]}
    bos = next(a for a in live["agents"] if a["name"] == "bo")
    assert waiting in {c["id"] for c in bos["chats"]}
    assert bo.get("/api/v1/supervisor/live").status_code == 403


def test_municipalities_are_managed_and_the_dashboard_defaults_to_kronor(svc, staff):
    admin = staff["admin"]
    created = admin.post(
        "/api/v1/admin/municipalities",
        json={"id": "norrvik", "name": "Norrviks kommun", "settings": {"languages": ["sv", "en", "fi"]}},
    )
    assert created.status_code == 201, created.text
    assert admin.post("/api/v1/admin/municipalities", json={"id": "norrvik", "name": "x"}).status_code == 409
    bad = admin.post("/api/v1/admin/municipalities", json={"id": "Bad Id!", "name": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "id"
    changed = admin.patch("/api/v1/admin/municipalities/norrvik", json={"settings": {"currency": "EUR"}}).json()
    assert changed["settings"] == {"languages": ["sv", "en", "fi"], "currency": "EUR"}
    assert admin.patch("/api/v1/admin/municipalities/nowhere", json={"name": "x"}).status_code == 404
    assert {m["id"] for m in admin.get("/api/v1/admin/municipalities").json()} >= {"default", "norrvik"}
    # The missing column checks the languages the municipality offers.
    entries = admin.get("/api/v1/admin/entries", params={"municipality": "norrvik"}).json()
    assert entries["required_languages"] == ["sv", "en", "fi"]
    # Swedish kronor unless the municipality says otherwise.
    assert admin.get("/api/v1/admin/settings").json()["currency"] == "SEK"
    assert admin.get("/api/v1/admin/dashboard").json()["saving"]["currency"] == "SEK"


def test_a_dismissed_group_stays_dismissed(svc, staff):
    admin = staff["admin"]
    texts = ["asdf qwerty", "ASDF  qwerty"]
    dismissed = admin.post("/api/v1/admin/unanswered/dismiss", json={"texts": texts, "language": "sv"})
    assert dismissed.json() == {"dismissed": 1}
    assert admin.post("/api/v1/admin/unanswered/dismiss", json={"texts": texts}).json() == {"dismissed": 0}
    assert [d["text"] for d in admin.get("/api/v1/admin/unanswered/dismissed").json()] == ["asdf qwerty"]
    assert admin.post("/api/v1/admin/unanswered/dismiss", json={"texts": []}).status_code == 422
    assert admin.post("/api/v1/admin/unanswered/restore", json={"texts": ["asdf qwerty"]}).json() == {"restored": 1}

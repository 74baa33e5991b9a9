"""The webmaster's workshop API over real HTTP against the real service (SQLite, real embedding model).

Conversations for the insights are written with the service's own ConversationStore into its
database, shaped as the Rasa actions and the feedback endpoint store them.
"""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest
import yaml

from knowledge.kbfile import parse_text
from tests.test_workshop_helpers import login, service_only, store_conversation

ORIGIN = "http://site.example"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with service_only(tmp_path_factory.mktemp("workshop")) as svc:
        yield svc


@pytest.fixture(scope="module")
def webmaster(service) -> httpx.Client:
    return login(service.service_url, service.engine_url, "webmaster")


def answer(service, text: str, **extra) -> dict:
    response = httpx.post(f"{service.service_url}/api/v1/answer", json={"text": text, **extra}, timeout=60)
    response.raise_for_status()
    return response.json()


def test_only_webmasters_and_admins_get_in(service, webmaster):
    assert httpx.get(f"{service.service_url}/api/v1/admin/entries").status_code == 401
    agent = login(service.service_url, service.engine_url, "agent")
    assert agent.get("/api/v1/admin/entries").status_code == 403
    assert webmaster.get("/api/v1/admin/entries", params={"municipality": "elsewhere"}).status_code == 403
    admin = login(service.service_url, service.engine_url, "admin")
    assert admin.get("/api/v1/admin/entries").status_code == 200


def test_entry_list_shows_languages_missing_translations_and_searches(webmaster):
    data = webmaster.get("/api/v1/admin/entries").json()
    # With no list of its own, a municipality offers every language the bot speaks: each is checked.
    offered = webmaster.get("/api/v1/admin/languages").json()["languages"]
    assert data["required_languages"] == [x["code"] for x in offered]
    rows = {r["id"]: r for r in data["entries"]}
    home = rows["home-care-apply"]
    assert {"sv", "en", "ar", "fa"} <= set(home["answer_languages"])
    assert set(home["missing"]) == set(data["required_languages"]) - set(home["answer_languages"])
    found = webmaster.get("/api/v1/admin/entries", params={"q": "hemtjänst"}).json()["entries"]
    ids = {r["id"] for r in found}
    assert {"home-care-apply", "home-care-services"} <= ids and "waste-collection-schedule" not in ids
    lacking_ar = webmaster.get("/api/v1/admin/entries", params={"missing": "ar"}).json()["entries"]
    assert "home-care-apply" not in {r["id"] for r in lacking_ar} and lacking_ar


def test_a_new_entry_is_answered_within_a_second_and_audited(service, webmaster):
    entry = {
        "tags": ["idrott"],
        "url": "https://www.ekby.se/bastu",
        "review_by": "2027-01-31",
        "questions": {"sv": ["Hur bokar jag bastun i Ekbyhallen?"], "en": ["How do I book the sauna in Ekbyhallen?"]},
        "answer": {
            "sv": "Bastun i Ekbyhallen bokar du i receptionen eller på ekby.se/bastu.",
            "en": "Book the sauna in Ekbyhallen at the reception or on ekby.se/bastu.",
        },
    }
    answer(service, "Hur bokar jag en lokal?")  # warm the process up: we time the change, not the first query
    started = time.monotonic()
    response = webmaster.put("/api/v1/knowledge/entries/sauna-booking", json=entry)
    saving = time.monotonic() - started
    assert response.status_code == 200, response.text
    # Live means: the very first question after the save returns is answered with the new entry.
    result = answer(service, "hur bokar jag bastun i ekbyhallen")
    assert result["decision"] == "answer" and result["answers"][0]["id"] == "sauna-booking"
    assert saving < 1.0, f"saving the entry took {saving:.2f} s"

    entry["answer"]["sv"] += " Bastun är öppen kl. 16–21."
    webmaster.put("/api/v1/knowledge/entries/sauna-booking", json=entry).raise_for_status()
    detail = webmaster.get("/api/v1/admin/entries/sauna-booking").json()
    assert [a["action"] for a in detail["audit"]] == ["update", "create"]
    latest = detail["audit"][0]
    assert latest["actor"].startswith("webmaster-") and latest["changed"] == ["answer"]
    assert latest["before"]["answer"]["sv"] != latest["after"]["answer"]["sv"]
    assert "ar" in detail["missing"] and "ar" in detail["missing_required"] and "sv" not in detail["missing_required"]


@pytest.mark.parametrize(
    "name, content, line, field",
    [
        (
            "bad.yml",
            "- id: ok-entry\n  answer: {sv: Hej}\n- id: broken\n  url: not-a-link\n  answer: {sv: Hej}\n",
            4,
            "url",
        ),
        (
            "bad.jsonl",
            '{"id": "a", "answer": {"sv": "Hej"}}\n{"id": "b", "answer": {"sv": "Hej"}, "review_by": "soon"}\n',
            2,
            "review_by",
        ),
        ("bad.csv", "id,answer_sv,question_sv\ngood,Hej,Fråga?\nbad id!,Hej,Fråga?\n", 3, "id"),
    ],
)
def test_a_malformed_import_names_line_and_field_and_imports_nothing(webmaster, name, content, line, field):
    before = len(webmaster.get("/api/v1/admin/entries").json()["entries"])
    response = webmaster.post("/api/v1/admin/import", params={"filename": name}, content=content.encode())
    assert response.status_code == 422
    problems = response.json()["errors"]
    assert any(p["line"] == line and p["field"] == field for p in problems), problems
    assert len(webmaster.get("/api/v1/admin/entries").json()["entries"]) == before


def test_export_round_trips_in_every_format_and_import_reports_counts(webmaster):
    entries = {}
    for fmt in ("yaml", "jsonl", "csv"):
        response = webmaster.get("/api/v1/admin/export", params={"format": fmt})
        assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
        entries[fmt] = {e.id: e.to_dict() for e in parse_text(response.text, fmt)}
    assert entries["yaml"] == entries["jsonl"] == entries["csv"] and len(entries["yaml"]) > 100
    text = webmaster.get("/api/v1/admin/export", params={"format": "yaml"}).text
    data = yaml.safe_load(text)
    data[0]["tags"] = [*data[0].get("tags", []), "granskad"]
    changed = yaml.safe_dump(data, allow_unicode=True).encode()
    check = webmaster.post("/api/v1/admin/import", params={"filename": "kb.yml", "dry_run": True}, content=changed)
    assert check.json()["counts"] == {"create": 0, "update": 1, "unchanged": len(data) - 1, "delete": 0}
    done = webmaster.post("/api/v1/admin/import", params={"filename": "kb.yml"}, content=changed).json()
    assert done["counts"]["update"] == 1
    audit = webmaster.get("/api/v1/admin/audit", params={"limit": 1}).json()
    assert audit[0]["entry_id"] == data[0]["id"] and audit[0]["changed"] == ["tags"]


def test_notices_banner_and_answered_first(service, webmaster):
    now = time.time()
    bad = webmaster.post("/api/v1/admin/notices", json={"texts": {}, "valid_from": now, "valid_until": now - 5})
    assert bad.status_code == 422
    assert {p["field"] for p in bad.json()["errors"]} == {"texts", "valid_until"}
    leak = webmaster.post(
        "/api/v1/admin/notices",
        json={
            "area": "Storgatan",
            "keywords": ["vattenläcka"],
            "texts": {
                "sv": "Vattenläcka på Storgatan: vattnet är avstängt till kl. 18.",
                "ar": "تسرب مياه في شارع Storgatan: المياه مقطوعة حتى الساعة 18.",
            },
            "valid_from": now - 60,
            "valid_until": now + 3600,
        },
    )
    assert leak.status_code == 201, leak.text
    expired = webmaster.post(
        "/api/v1/admin/notices",
        json={
            "area": "Skolgatan",
            "texts": {"sv": "Gammal störning."},
            "valid_from": now - 7200,
            "valid_until": now - 3600,
        },
    ).json()
    banner = httpx.get(f"{service.service_url}/api/v1/notices", params={"language": "ar"}, headers={"origin": ORIGIN})
    assert banner.headers["access-control-allow-origin"] == "*"
    assert [n["area"] for n in banner.json()] == ["Storgatan"] and banner.json()[0]["language"] == "ar"
    assert "created_by" not in banner.json()[0]

    result = httpx.post(
        f"{service.service_url}/api/v1/answer?explain=true",
        json={"text": "Varför kommer det inget vatten på storgatan?"},
        timeout=60,
    ).json()
    assert result["decision"] == "answer" and result["answers"][0]["id"] == f"notice-{leak.json()['id']}"
    assert "Storgatan" in result["explain"]["notice"]["why"]
    assert answer(service, "När hämtas soporna?")["answers"][0]["id"] == "waste-collection-schedule"
    assert answer(service, "Skolgatan parkering")["answers"][0]["id"] != f"notice-{expired['id']}"

    assert webmaster.delete(f"/api/v1/admin/notices/{leak.json()['id']}").status_code == 204
    assert httpx.get(f"{service.service_url}/api/v1/notices").json() == []


def _conversation(service, language: str, turns: list[tuple], days_ago: float = 0.0, **columns) -> str:
    return store_conversation(service.engine, language, turns, days_ago, **columns)


def test_unanswered_questions_are_grouped_with_counts_and_agents_drafts(service, webmaster):
    clarify = {"kind": "clarify", "decision": "clarify", "entry_ids": ["a", "b"]}
    handoff = {"kind": "handoff", "state": "queued", "reason": "low_confidence"}
    for text in ("Får man ha höns i trädgården?", "får jag ha höns på min tomt", "Får man hålla höns i villaträdgård?"):
        _conversation(service, "sv", [("citizen", text, None), ("bot", "Menar du …", None), ("bot", "", clarify)])
    _conversation(
        service,
        "sv",
        [
            ("citizen", "Får jag ha egna höns hemma i trädgården?", None),
            ("bot", "", handoff),
            ("agent", "Ja, upp till fem höns utan tupp i villaområden, men anmäl det till miljöförvaltningen.", None),
        ],
        queued_at=time.time(),
        handoff_reason="low_confidence",
    )
    _conversation(
        service,
        "ar",
        [("citizen", "متى تفتح المكتبة يوم الأحد في العطلة الصيفية؟", None), ("bot", "", handoff)],
        queued_at=time.time(),
        handoff_reason="low_confidence",
    )
    _conversation(
        service,
        "sv",
        [("citizen", "jag vill prata med en människa", None), ("bot", "", {**handoff, "reason": "requested"})],
        queued_at=time.time(),
        handoff_reason="requested",
    )

    groups = webmaster.get("/api/v1/admin/unanswered").json()["groups"]
    hens = [g for g in groups if "höns" in g["representative"]]
    assert len(hens) == 1, groups
    hens = hens[0]
    assert hens["language"] == "sv" and hens["count"] == 4
    assert hens["reasons"] == {"clarify": 3, "handoff": 1}
    assert hens["drafts"] and "fem höns" in hens["drafts"][0]
    assert any(g["language"] == "ar" and g["count"] == 1 for g in groups)
    assert not any("människa" in g["representative"] for g in groups)  # asking for a person is no gap

    target = hens["suggestions"][0]["id"] if hens["suggestions"] else "sauna-booking"
    added = webmaster.post(
        "/api/v1/admin/variants", json={"entry_id": target, "language": "sv", "text": "Får man ha höns i trädgården?"}
    )
    assert added.json()["action"] == "update"
    after = webmaster.get("/api/v1/admin/unanswered").json()["groups"]
    assert all("Får man ha höns i trädgården?" not in [t["text"] for t in g["texts"]] for g in after)


def test_freshness_lists_overdue_and_unhelpful_entries(service, webmaster):
    past = (dt.date.today() - dt.timedelta(days=10)).isoformat()
    old = {"review_by": past, "questions": {"sv": ["Gammal regel?"]}, "answer": {"sv": "En gammal regel."}}
    webmaster.put("/api/v1/knowledge/entries/old-rule", json=old).raise_for_status()
    feedback = {"kind": "feedback", "entry_id": "waste-collection-schedule", "helpful": False}
    answered = {"kind": "answer", "entry_id": "waste-collection-schedule", "decision": "answer"}
    for _ in range(2):
        _conversation(
            service,
            "sv",
            [
                ("citizen", "När töms soptunnan?", None),
                ("bot", "…", None),
                ("bot", "", answered),
                ("system", "feedback", feedback),
            ],
        )
    items = {i["id"]: i for i in webmaster.get("/api/v1/admin/freshness").json()["items"]}
    assert items["old-rule"]["reasons"][0] == {"kind": "overdue", "days": 10}
    unhelpful = [r for r in items["waste-collection-schedule"]["reasons"] if r["kind"] == "unhelpful"]
    assert unhelpful and unhelpful[0]["not_helpful"] >= 2
    groups = webmaster.get("/api/v1/admin/unanswered").json()["groups"]
    assert any(g["reasons"].get("not_helpful") and "waste-collection-schedule" in g["entry_ids"] for g in groups)


def test_dashboard_figures_and_configurable_saving(service, webmaster):
    answered = {"kind": "answer", "entry_id": "home-care-apply", "decision": "answer", "language": "ar"}
    base = webmaster.get("/api/v1/admin/dashboard", params={"days": 7}).json()
    for _ in range(3):
        _conversation(
            service,
            "ar",
            [
                ("citizen", "كيف أتقدم بطلب للحصول على خدمة الرعاية المنزلية؟", None),
                ("bot", "…", None),
                ("bot", "", answered),
            ],
            days_ago=1,
        )
    _conversation(
        service,
        "sv",
        [("citizen", "Jag vill prata med någon", None)],
        days_ago=2,
        queued_at=time.time(),
        handoff_reason="requested",
        csat_score=4,
    )
    _conversation(service, "sv", [], days_ago=1)  # opened, never asked: not counted
    webmaster.put("/api/v1/admin/settings", json={"cost_per_call": 40, "cost_per_chat": 11, "currency": "DKK"})
    data = webmaster.get("/api/v1/admin/dashboard", params={"days": 7}).json()
    assert data["conversations"] - base["conversations"] == 4
    assert data["deflected"] - base["deflected"] == 3 and data["handed_over"] - base["handed_over"] == 1
    assert data["languages"]["ar"] - base["languages"].get("ar", 0) == 3
    assert data["top_questions"][0]["id"] == "home-care-apply"
    assert data["satisfaction"]["distribution"]["4"] >= 1 and data["satisfaction"]["average"]
    assert sum(data["busiest_hours"]) >= sum(base["busiest_hours"]) + 4
    assert sum(d["bot"] + d["handed_over"] for d in data["per_day"]) == data["conversations"]
    assert data["saving"]["amount"] == data["deflected"] * 40 + data["handed_over"] * (40 - 11)
    webmaster.put("/api/v1/admin/settings", json={"cost_per_call": 50, "cost_per_chat": 10, "currency": "SEK"})
    data = webmaster.get("/api/v1/admin/dashboard", params={"days": 7}).json()
    assert data["saving"]["currency"] == "SEK"
    assert data["saving"]["amount"] == data["deflected"] * 50 + data["handed_over"] * 40


def test_widget_routes_are_public_cross_origin_and_staff_routes_are_not(service):
    url = service.service_url
    pre = httpx.options(
        f"{url}/api/v1/chat/sessions",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in pre.headers
    strings = httpx.get(f"{url}/api/v1/chat/i18n/fa", headers={"origin": ORIGIN})
    assert strings.headers["access-control-allow-origin"] == "*" and strings.json()["dir"] == "rtl"
    assert httpx.get(f"{url}/api/v1/chat/i18n/xx").status_code == 404
    staff = httpx.options(
        f"{url}/api/v1/admin/entries", headers={"origin": ORIGIN, "access-control-request-method": "GET"}
    )
    assert "access-control-allow-origin" not in staff.headers
    session = httpx.post(f"{url}/api/v1/chat/sessions", json={"language": "sv"}).json()["session_id"]
    chosen = httpx.post(f"{url}/api/v1/chat/sessions/{session}/language", json={"language": "ar"})
    assert chosen.json() == {"language": "ar"}
    assert httpx.get(f"{url}/api/v1/chat/sessions/{session}").json()["language"] == "ar"
    assert httpx.post(f"{url}/api/v1/chat/sessions/{session}/language", json={"language": "xx"}).status_code == 422


def test_every_language_file_has_every_string():
    import json

    from tests.conftest import ROOT

    files = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "web" / "i18n").glob("*.json")}
    assert set(files) == {"sv", "en", "ar", "so", "fa", "fi", "ku", "tr", "pl", "uk", "da", "no"}
    keys = set(files["sv"])
    # The wait's plural forms follow each language's categories (Intl.PluralRules in web/widget.js, which
    # falls back to "other"): Arabic adds "two" and "few", Persian and Turkish need no "one".
    plural_forms = {f"wait_{category}" for category in ("zero", "one", "two", "few", "many")}
    for lang, strings in files.items():
        assert keys - plural_forms <= set(strings), (lang, keys - plural_forms - set(strings))
        assert set(strings) - keys <= plural_forms, (lang, set(strings) - keys)
        assert all(v.strip() for v in strings.values()), lang
        for key in ("queue_position", "queue_wait", "valid_until", "too_long", "rating_score"):
            assert "{" in strings[key], (lang, key)

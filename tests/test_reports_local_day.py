"""Reports count days in the municipality's time zone (issue 16), in process with a fixed clock around
midnight: a chat queued at 00:30 local time is today's, the default period ends on the municipality's
today, and dates given are that zone's days. The reports page takes its default period from these."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from conversations.tables import conversations
from core import municipalities
from handoff.assignment import assignments
from insights import reports
from tests.inprocess import add_municipality, running_app, staff

HELSINKI = ZoneInfo("Europe/Helsinki")
# 00:30 on 11 March in Helsinki: still 10 March in Stockholm (23:30) and in UTC (22:30).
QUEUED = dt.datetime(2026, 3, 11, 0, 30, tzinfo=HELSINKI).timestamp()
NOW = QUEUED + 600


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("inprocess-report-days"), model_path) as running:
        yield running


@pytest.fixture(scope="module")
def tornio(app):
    """A municipality in Helsinki time with one chat an agent handled, queued at 00:30 its time."""
    client, c = app
    add_municipality(c, "tornio")
    municipalities.update_settings(c.engine, "tornio", {"timezone": "Europe/Helsinki"})
    agent = staff(client, c, "aino", municipalities=("tornio",))
    sid = client.post("/api/v1/chat/sessions", json={"language": "sv", "municipality": "tornio"}).json()["session_id"]
    client.post(f"/api/v1/chat/sessions/{sid}/messages", json={"text": "Jag vill prata med en människa"})
    client.post(f"/api/v1/handoff/conversations/{sid}/claim", headers=agent).raise_for_status()
    client.post(f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "Hej"}, headers=agent).raise_for_status()
    client.post(f"/api/v1/handoff/conversations/{sid}/close", json={"outcome": "resolved"},
                headers=agent).raise_for_status()
    with c.engine.begin() as conn:  # as if it had happened just after midnight
        conn.execute(update(conversations).where(conversations.c.id == sid)
                     .values(created_at=QUEUED - 60, queued_at=QUEUED))
        conn.execute(update(assignments).where(assignments.c.conversation_id == sid)
                     .values(queued_at=QUEUED, started_at=QUEUED + 30, first_response_at=QUEUED + 60,
                             ended_at=QUEUED + 300))
    return sid


@pytest.fixture
def fixed_clock(monkeypatch):
    monkeypatch.setattr(reports, "clock", lambda: NOW)


def test_the_default_period_ends_on_the_municipalitys_today(app, tornio, fixed_clock):
    client, c = app
    admin = staff(client, c, "tornion-chef", role="admin", municipalities=("tornio",))
    summary = client.get("/api/v1/reports/summary", headers=admin).json()
    assert (summary["from"], summary["to"], summary["timezone"]) == ("2026-03-05", "2026-03-11", "Europe/Helsinki")
    assert [(r["day"], r["conversations"]) for r in summary["rows"]] == [("2026-03-11", 1)]
    per_agent = client.get("/api/v1/reports/agents", headers=admin).json()
    assert (per_agent["to"], per_agent["timezone"]) == ("2026-03-11", "Europe/Helsinki")
    assert list(next(a for a in per_agent["agents"] if a["name"] == "aino")["days"]) == ["2026-03-11"]


def test_dates_given_are_days_in_the_municipalitys_zone(app, tornio, fixed_clock):
    client, c = app
    admin = staff(client, c, "global-chef", role="admin", municipalities=("*",))

    def count(**params) -> int:
        response = client.get("/api/v1/reports/summary", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return sum(r["conversations"] for r in response.json()["rows"])

    assert count(municipality="tornio", date_from="2026-03-11", date_to="2026-03-11") == 1
    assert count(municipality="tornio", date_from="2026-03-10", date_to="2026-03-10") == 0
    # Over all municipalities the days are the default municipality's (Stockholm): there it was the 10th.
    everyone = client.get("/api/v1/reports/summary", headers=admin).json()
    assert everyone["timezone"] == "Europe/Stockholm" and everyone["to"] == "2026-03-10"
    assert [r["day"] for r in everyone["rows"]] == ["2026-03-10"]
    # A zone the caller names wins.
    assert count(municipality="tornio", date_from="2026-03-10", date_to="2026-03-10", tz="UTC") == 1


def test_just_after_midnight_swedish_time_the_default_period_ends_on_the_new_day(app, fixed_clock, monkeypatch):
    client, c = app
    admin = staff(client, c, "standard-chef", role="admin")  # the default municipality: no zone set
    swedish = dt.datetime(2026, 3, 11, 0, 30, tzinfo=ZoneInfo("Europe/Stockholm")).timestamp()
    monkeypatch.setattr(reports, "clock", lambda: swedish + 60)
    summary = client.get("/api/v1/reports/summary", headers=admin).json()
    assert (summary["to"], summary["timezone"]) == ("2026-03-11", "Europe/Stockholm")  # UTC says the 10th

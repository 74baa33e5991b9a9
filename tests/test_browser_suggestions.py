"""The workshop's "Förslag från chattar" tab (issue 19) in real Chromium against the real service (no Rasa):
a webmaster sees what citizens wrote (masked, as text), edits and accepts one proposal, which becomes a
question of the entry, and dismisses another, which does not come back."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.test_browser_workshop_ux import browser, no_serious, service, webmaster  # noqa: F401 - fixtures
from tests.test_workshop_helpers import store_conversation

pytestmark = pytest.mark.browser
HELPED = '/affirm{"feedback":"yes"}'


def choose(entry_id: str) -> str:
    return "/choose_entry" + json.dumps({"entry_id": entry_id}, separators=(",", ":"))


def test_a_webmaster_edits_and_accepts_one_suggestion_and_dismisses_another(service, webmaster):  # noqa: F811
    offered = ["home-care-apply", "home-care-services"]
    store_conversation(service.engine, "sv", [
        ("citizen", "Hur får min pappa hemtjänst? Mitt personnummer är 811218-9876", None),
        ("bot", "Menade du något av detta?", {"kind": "clarify", "decision": "clarify", "entry_ids": offered}),
        ("citizen", choose("home-care-apply"), None),
        ("bot", "", {"kind": "answer", "entry_id": "home-care-apply", "decision": "clarify_choice"}),
    ])
    store_conversation(service.engine, "sv", [
        ("citizen", "<img src=x onerror=alert(1)> när töms soporna hos mig", None),
        ("bot", "", {"kind": "answer", "entry_id": "waste-collection-schedule", "decision": "answer"}),
        ("citizen", HELPED, None),
        ("system", "feedback", {"kind": "feedback", "entry_id": "waste-collection-schedule", "helpful": True}),
    ])
    webmaster.get_by_role("link", name="Förslag från chattar").click()
    cards = webmaster.locator("#suggestion-list article")
    expect(cards).to_have_count(2, timeout=120_000)
    home = cards.filter(has_text="home-care-apply")
    question = home.get_by_label("Fråga")
    expect(question).to_have_value("Hur får min pappa hemtjänst? Mitt personnummer är [personnummer]")
    expect(webmaster.locator("#suggestion-list")).not_to_contain_text("811218-9876")
    waste = cards.filter(has_text="waste-collection-schedule")
    expect(waste.get_by_label("Fråga")).to_have_value("<img src=x onerror=alert(1)> när töms soporna hos mig")
    assert webmaster.locator("#suggestion-list img").count() == 0  # citizens' text is never HTML
    no_serious(webmaster)

    question.fill("Hur får min pappa hemtjänst?")
    home.get_by_role("button", name="Godkänn").click()
    expect(webmaster.locator("#toast")).to_contain_text("är nu en fråga i home-care-apply")
    expect(cards).to_have_count(1)
    entry = webmaster.api.get("/api/v1/admin/entries/home-care-apply").json()
    assert "Hur får min pappa hemtjänst?" in json.dumps(entry, ensure_ascii=False)

    waste.get_by_role("button", name="Avfärda").click()
    expect(webmaster.locator("#toast")).to_contain_text("föreslås inte igen")
    expect(webmaster.locator("#suggestion-list")).to_contain_text("Inga nya förslag.")
    webmaster.get_by_role("link", name="Obesvarade frågor").click()
    webmaster.get_by_role("link", name="Förslag från chattar").click()
    expect(webmaster.locator("#suggestion-list")).to_contain_text("Inga nya förslag.", timeout=120_000)

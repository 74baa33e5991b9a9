"""The owners' work list on the staff pages (/staff#worklist, issue 19) in real Chromium against the real
service: a webmaster sets a department as owner of a topic (/staff#owners), a citizen's "no, that did not
help" reaches that department, the contact centre (an agent) sees it masked and read-only, a webmaster
changes its status with the keyboard, and the agent sees the new status; checked with axe-core and
photographed."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.test_handoff_support import PASSWORD, Service
from tests.test_workshop_helpers import axe_violations, chromium

pytestmark = pytest.mark.browser
SHOTS = ROOT / "docs" / "screenshots"
PHONE = "070-123 45 67"


@pytest.fixture(scope="module")
def svc(tmp_path_factory, model_path):
    service = Service(
        tmp_path_factory.mktemp("worklist"), model_path, kb=ROOT / "data" / "knowledge" / "waste.yml"
    ).start(timeout=900)
    service.agent("chef", role="admin", municipalities="*")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def logged_in(browser, svc, name: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="sv-SE", bypass_csp=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{svc.url}/staff#worklist")
    expect(page.get_by_label("Användarnamn")).to_be_visible()  # the form shows once the page knows nobody is in
    page.get_by_label("Användarnamn").focus()
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_have_text("")
    expect(page.get_by_role("heading", level=1)).to_have_text("Arbetslista")
    return page


def show_feedback_only(page) -> None:
    """The filter: only answers that did not help (the seed also has an entry past its review date)."""
    kind = page.get_by_label("Typ")
    expect(kind.locator("option")).to_have_count(7)
    kind.focus()
    kind.select_option(label="Svaret hjälpte inte")  # a filter shows its list at once


def no_serious(page) -> None:
    violations = axe_violations(page)
    assert violations == [], json.dumps(violations, indent=1, ensure_ascii=False)


def owners_set_on_the_page(webmaster) -> None:
    """A webmaster adds a department with a contact and gives it the topic "avfall", on /staff#owners."""
    link = webmaster.get_by_role("navigation").get_by_role("link", name="Ägare")
    link.focus()
    webmaster.keyboard.press("Enter")
    expect(webmaster.get_by_role("heading", level=1)).to_have_text("Ägare")
    webmaster.get_by_label("Namn", exact=True).fill("Avfall och återvinning")
    webmaster.get_by_label("Kontakter").fill("Ada Berg, ada@ekby.se")
    webmaster.get_by_role("button", name="Spara").press("Enter")
    departments = webmaster.get_by_role("table", name="Avdelningar")
    expect(departments).to_contain_text("ada@ekby.se")
    expect(departments).to_contain_text("Kontaktcenter (standard)")
    topic = webmaster.get_by_label("Ägare av avfall")
    topic.focus()
    topic.select_option(label="Avfall och återvinning")
    expect(webmaster.get_by_role("status")).to_contain_text("Sparat")
    expect(webmaster.get_by_label("Ägare av avfall")).to_have_value(re.compile(r"^\d+$"))
    no_serious(webmaster)
    SHOTS.mkdir(parents=True, exist_ok=True)
    webmaster.screenshot(path=str(SHOTS / "staff-owners.png"), full_page=True)


def test_feedback_reaches_the_owner_and_its_status_is_visible_to_the_contact_centre(svc, browser):
    web = svc.staff(svc.agent("webb", role="webmaster"))
    svc.agent("anna", role="agent")
    webmaster = logged_in(browser, svc, "webb")
    owners_set_on_the_page(webmaster)
    (department,) = [d for d in web.get("/api/v1/admin/departments").json() if d["name"] == "Avfall och återvinning"]
    assert department["contacts"] == [{"name": "Ada Berg", "email": "ada@ekby.se"}]
    assert web.get("/api/v1/admin/owners/entries/waste-collection-schedule").json()["via"] == "topic"
    sid = svc.citizen("sv", text=f"När töms soptunnan? Ring mig på {PHONE}")
    httpx.post(
        f"{svc.url}/api/v1/internal/sessions/{sid}/feedback",
        headers={"X-Internal-Token": svc.token},
        json={"entry_id": "waste-collection-schedule", "helpful": False},
    ).raise_for_status()
    given = time.monotonic()
    while not (items := web.get("/api/v1/worklist?kind=negative_feedback").json()):
        assert time.monotonic() - given < 60, "the feedback did not reach a list within a minute"
        time.sleep(0.5)
    (item,) = items

    agent = logged_in(browser, svc, "anna")
    show_feedback_only(agent)
    rows = agent.get_by_role("table", name="Ärenden: 1")
    expect(rows).to_contain_text("Svaret hjälpte inte")
    expect(rows).to_contain_text("Avfall och återvinning")
    expect(rows).to_contain_text("[telefonnummer]")
    expect(rows).not_to_contain_text(PHONE)
    expect(rows).to_contain_text("Ny")
    expect(agent.get_by_label(f"Status för ärende {item['id']}")).to_have_count(0)  # agents read, not change
    week = web.get("/api/v1/worklist/digest").json()["week"]
    expect(agent.get_by_role("heading", name=f"Veckans sammanställning {week}")).to_be_visible()
    expect(agent.get_by_role("table", name="Per avdelning och typ")).to_contain_text("Avfall och återvinning")
    no_serious(agent)

    webmaster.goto(f"{svc.url}/staff#worklist")
    expect(webmaster.get_by_role("heading", level=1)).to_have_text("Arbetslista")
    show_feedback_only(webmaster)
    status = webmaster.get_by_label(f"Status för ärende {item['id']}")
    status.focus()
    status.select_option("done")
    expect(webmaster.get_by_role("status")).to_have_text("Statusen är sparad.")
    expect(webmaster.get_by_role("table", name="Ärenden: 1")).to_contain_text("webb")  # who changed it
    no_serious(webmaster)
    SHOTS.mkdir(parents=True, exist_ok=True)
    webmaster.screenshot(path=str(SHOTS / "staff-worklist.png"), full_page=True)
    assert web.get(f"/api/v1/worklist/{item['id']}").json()["changed_by"] == "webb"

    agent.reload()
    show_feedback_only(agent)
    expect(agent.get_by_role("table", name="Ärenden: 1")).to_contain_text("Klar")
    history = agent.get_by_role("table", name="Ärenden: 1").locator("details")  # who did what, and when
    expect(history.locator("summary")).to_have_text("Ändringar: 1")
    history.locator("summary").focus()
    agent.keyboard.press("Enter")
    expect(history.get_by_role("listitem")).to_have_count(2)
    expect(history.get_by_role("listitem").last).to_contain_text("Ny → Klar · webb")
    no_serious(agent)
    agent.screenshot(path=str(SHOTS / "staff-worklist-history.png"), full_page=True)
    csv = agent.get_by_role("link", name="Ladda ner veckan som CSV")
    exported = svc.staff(svc.login("anna")).get(csv.get_attribute("href"))
    assert exported.status_code == 200 and ",done," in exported.text and PHONE not in exported.text

    agent.get_by_label("Språk").select_option("en")  # the staff member's own language
    expect(agent.get_by_role("heading", level=1)).to_have_text("Work list")
    agent.get_by_label("Kind").select_option(label="The answer did not help")
    expect(agent.get_by_role("table", name="Items: 1")).to_contain_text("Done")
    missing = agent.evaluate(
        "() => [...document.querySelectorAll('body *')].filter(n => n.children.length === 0"
        " && /\\bstaff_[a-z_]+/.test(n.textContent)).map(n => n.textContent)"
    )
    assert missing == []  # every word came from the table
    no_serious(agent)
    agent.get_by_label("Language").select_option("sv")

"""The workshop, the widget's layout and the notices banner in real Chromium, against the real service.

The service runs without Rasa here (nothing in this module needs the dialogue); the widget answering
questions is in test_browser_widget.py with the whole system.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.test_workshop_helpers import (
    answer_late,
    axe_violations,
    chromium,
    make_user,
    other_origin_page,
    service_only,
    store_conversation,
    wait_for_late_answer,
)

pytestmark = pytest.mark.browser
SHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with service_only(tmp_path_factory.mktemp("browser-admin")) as svc:
        yield svc


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def admin(service, browser):
    """A logged-in webmaster on /admin (through the login form)."""
    name, password = make_user(service.engine_url, "webmaster")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="sv-SE")
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{service.service_url}/admin")
    page.get_by_label("Användarnamn").fill(name)
    page.get_by_label("Lösenord").fill(password)
    page.get_by_role("button", name="Logga in").click()
    expect(page.get_by_role("navigation", name="Verktyg")).to_be_visible()
    yield page
    context.close()


def no_serious(page, selector: str | None = None) -> None:
    violations = axe_violations(page, selector)
    assert violations == [], json.dumps(violations, indent=1, ensure_ascii=False)


def shot(page, name: str, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / name), full_page=full_page)


def test_entries_list_search_and_accessibility(admin):
    expect(admin.get_by_role("link", name="home-care-apply")).to_be_visible()
    admin.get_by_label("Sök i frågor, svar och taggar").fill("soptunnan")
    expect(admin.get_by_role("link", name="home-care-apply")).to_have_count(0)
    expect(admin.get_by_role("link", name="waste-collection-schedule")).to_be_visible()
    admin.get_by_label("Sök i frågor, svar och taggar").fill("")
    expect(admin.get_by_role("link", name="home-care-apply")).to_be_visible()
    no_serious(admin)
    shot(admin, "admin-entries.png")


def test_a_late_answer_to_an_earlier_search_does_not_replace_the_newest(admin):
    answer_late(admin, "q=bygglov")  # comes after the webmaster typed on
    search = admin.get_by_label("Sök i frågor, svar och taggar")
    search.fill("bygglov")
    admin.wait_for_timeout(600)  # past the search box's pause, so "bygglov" is asked
    search.fill("soptunnan")
    expect(admin.get_by_role("link", name="waste-collection-schedule")).to_be_visible()
    wait_for_late_answer(admin)
    expect(admin.get_by_role("link", name="building-permit-general")).to_have_count(0)
    expect(admin.get_by_role("link", name="waste-collection-schedule")).to_be_visible()


def test_editor_shows_languages_side_by_side_and_a_new_entry_is_live(service, admin):
    admin.goto(f"{service.service_url}/admin#edit/home-care-apply")
    for legend in ("Svenska (sv)", "Engelska (en)", "Arabiska (ar)", "Persiska (fa)"):
        expect(admin.get_by_role("group", name=legend)).to_be_visible()
    expect(admin.locator("textarea[data-lang=ar][data-kind=answer]")).to_have_attribute("dir", "rtl")
    expect(admin.get_by_text("Översättningar som saknas:")).to_be_visible()
    expect(admin.get_by_role("table", name="ändringar")).to_be_visible()
    no_serious(admin)
    shot(admin, "admin-editor.png")

    admin.get_by_role("link", name="Kunskapsbank").click()
    admin.get_by_role("link", name="Ny post").click()
    admin.get_by_label("Id", exact=True).fill("library-card-lost")
    admin.locator("#q-sv").fill("Jag har tappat mitt lånekort, vad gör jag?\ntappat lånekort")
    admin.locator("#a-sv").fill("Spärra kortet i bibliotekets e-tjänst och hämta ett nytt i disken; det kostar 20 kr.")
    admin.get_by_label("Visa språk").select_option("en")
    admin.get_by_role("button", name="Lägg till språkkolumn").click()
    admin.locator("#a-en").fill("Block the card in the library's e-service and get a new one at the desk.")
    admin.get_by_label("Taggar (kommaseparerade)").fill("bibliotek, lånekort")
    admin.get_by_label("Granskas senast").fill("2027-06-30")
    admin.get_by_role("button", name="Spara").click()
    expect(admin.locator("#toast")).to_contain_text("Sparat (ny post)")
    result = httpx.post(f"{service.service_url}/api/v1/answer", json={"text": "tappat lånekortet"}, timeout=30).json()
    assert result["answers"][0]["id"] == "library-card-lost"
    expect(admin.get_by_role("heading", name="Post library-card-lost")).to_be_visible()


def test_a_malformed_import_shows_line_and_field(admin):
    admin.get_by_role("link", name="Import och export").click()
    bad = "- id: fine\n  answer: {sv: Hej}\n- id: broken\n  url: not-a-link\n  answer: {sv: Hej}\n"
    admin.get_by_label("Fil (YAML, JSON Lines eller CSV)").set_input_files(
        {"name": "kunskap.yml", "mimeType": "application/yaml", "buffer": bad.encode()}
    )
    admin.get_by_role("button", name="Importera").click()
    report = admin.get_by_role("table", name="Valideringsrapport")
    expect(report).to_be_visible()
    row = report.locator("tbody tr").filter(has_text="url")
    expect(row.locator("td").nth(0)).to_have_text("4")
    expect(row.locator("td").nth(1)).to_have_text("'broken'")
    expect(row.locator("td").nth(2)).to_have_text("url")
    expect(admin.get_by_text("Filen importerades inte")).to_be_visible()
    no_serious(admin)
    shot(admin, "admin-import.png")


def test_unanswered_groups_become_variants_or_entries_in_one_click(service, admin):
    clarify = {"kind": "clarify", "decision": "clarify", "entry_ids": ["a", "b"]}
    for text in ("Får man ha höns i trädgården?", "får jag ha höns på min tomt", "Får man hålla höns i villaträdgård?"):
        store_conversation(service.engine, "sv", [("citizen", text, None), ("bot", "", clarify)])
    store_conversation(
        service.engine,
        "sv",
        [
            ("citizen", "Får jag ha egna höns hemma i trädgården?", None),
            ("bot", "", {"kind": "handoff", "state": "queued", "reason": "low_confidence"}),
            ("agent", "Ja, upp till fem höns utan tupp, men anmäl det till miljöförvaltningen.", None),
        ],
        queued_at=time.time(),
        handoff_reason="low_confidence",
    )
    arabic_question = "هل يمكنني ركن السيارة أمام المدرسة؟"
    store_conversation(service.engine, "ar", [("citizen", arabic_question, None), ("bot", "", clarify)])
    admin.get_by_role("link", name="Obesvarade frågor").click()
    group = admin.locator("article").filter(has_text="höns")
    expect(group).to_have_count(1)
    expect(group.get_by_role("heading", level=2)).to_contain_text("4 gånger")
    expect(group.locator("blockquote")).to_contain_text("fem höns")
    no_serious(admin)
    shot(admin, "admin-unanswered.png")

    group.get_by_role("button", name="Skapa ny post av gruppen").click()
    expect(admin.get_by_role("heading", name="Ny post")).to_be_visible()
    expect(admin.locator("#q-sv")).to_have_value(lambda_contains("höns"))
    # The agent's reply is shown beside the editor, not put in the answer (it is rarely one as it stands).
    expect(admin.locator("#a-sv")).to_have_value("")
    expect(admin.locator(".reference blockquote")).to_contain_text("fem höns")

    admin.get_by_role("link", name="Obesvarade frågor").click()
    arabic = admin.locator("article").filter(has_text="Arabiska")
    expect(arabic).to_have_count(1)
    arabic.get_by_role("combobox").select_option("home-care-apply")
    arabic.get_by_role("button", name="Lägg till variant").click()
    expect(admin.locator("#toast")).to_contain_text("är nu en variant av home-care-apply")
    expect(admin.locator("article").filter(has_text="Arabiska")).to_have_count(0)


def lambda_contains(word: str):
    import re

    return re.compile(f".*{re.escape(word)}.*", re.S)


def test_test_console_shows_candidates_scores_decision_and_why(admin):
    admin.get_by_role("link", name="Testkonsol").click()
    admin.get_by_label("Fråga (på valfritt språk)").fill("när töms soptunnan")
    admin.get_by_role("button", name="Testa").click()
    expect(admin.locator(".decision")).to_contain_text("Beslut:")
    table = admin.get_by_role("table", name="Rangordnade kandidater")
    expect(table.locator("tbody tr").first).to_contain_text("waste-collection-schedule")
    expect(admin.get_by_text("Varför – alla detaljer")).to_be_visible()
    no_serious(admin)
    shot(admin, "admin-console.png")


def test_a_notice_created_in_the_workshop_shows_in_the_widget_on_another_site(service, admin, browser):
    admin.get_by_role("link", name="Störningar").click()
    admin.get_by_label("Område (gata, skola, stadsdel)").fill("Storgatan")
    admin.get_by_label("Svenska (sv)").fill("Vattenläcka på Storgatan: vattnet är avstängt till kl. 18 i dag.")
    admin.get_by_label("Engelska (en)").fill("Water leak on Storgatan: the water is off until 6 pm today.")
    admin.get_by_role("button", name="Publicera").click()
    expect(admin.get_by_role("table", name="1 störningar")).to_contain_text("aktiv")
    no_serious(admin)
    shot(admin, "admin-notices.png")

    with other_origin_page(service.service_url) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(url)
        page.get_by_role("button", name="Chatta med oss").click()
        banner = page.get_by_role("region", name="Störningsinformation")
        expect(banner).to_contain_text("Vattenläcka på Storgatan")
        page.get_by_label("Språk").select_option("en")
        expect(page.get_by_role("region", name="Service disruptions")).to_contain_text("Water leak on Storgatan")
        no_serious(page, "#kommunchatt")
        shot(page, "widget-notice.png")
        context.close()


def test_dashboard_charts_and_saving(service, admin):
    answered = {"kind": "answer", "entry_id": "home-care-apply", "decision": "answer"}
    for day in range(6):
        for _ in range(day % 3 + 1):
            turns = [("citizen", "Hur ansöker jag om hemtjänst?", None), ("bot", "", answered)]
            store_conversation(service.engine, "sv" if day % 2 else "ar", turns, days_ago=day)
    store_conversation(
        service.engine,
        "sv",
        [("citizen", "Jag vill prata med någon", None)],
        days_ago=1,
        queued_at=time.time(),
        handoff_reason="requested",
        csat_score=5,
    )
    admin.get_by_role("link", name="Statistik").click()
    expect(admin.get_by_text("Uppskattad besparing mot telefon")).to_be_visible()
    expect(admin.locator("figure svg[role=img]")).to_have_count(6)
    top = admin.locator("figure").filter(has_text="Vanligaste frågorna")
    expect(top).to_contain_text("Hur ansöker jag om hemtjänst?")
    admin.get_by_label("Kostnad per telefonsamtal").fill("50")
    admin.get_by_role("button", name="Spara kostnader").click()
    expect(admin.locator("#toast")).to_contain_text("Kostnaderna är sparade")
    expect(admin.locator(".muted").filter(has_text="Besparing")).to_contain_text("50 SEK per samtal")
    no_serious(admin)
    shot(admin, "admin-dashboard.png", full_page=True)


def test_widget_keyboard_language_picker_rtl_phone_and_zoom(service, browser):
    strings = {p.stem: json.loads(p.read_text()) for p in (ROOT / "web" / "i18n").glob("*.json")}
    with other_origin_page(service.service_url) as url:
        context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.goto(url)
        launcher = page.get_by_role("button", name="Chatta med oss")
        # Keyboard: the launcher is reachable, opens the dialog with focus in the question box, Escape closes.
        for _ in range(5):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement && document.activeElement.id === 'kommunchatt'"):
                break
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Chatta med kommunen")
        expect(dialog).to_be_visible()
        expect(page.get_by_label("Din fråga")).to_be_focused()
        box = dialog.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, box
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        # The host page's styles (30px red Georgia, lime borders) do not reach into the widget.
        font = page.get_by_label("Din fråga").evaluate(
            "e => getComputedStyle(e).fontFamily + '|' + getComputedStyle(e).color"
        )
        assert "Georgia" not in font and "rgb(255, 0, 0)" not in font
        shot(page, "widget-mobile-375.png")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(launcher).to_be_focused()

        # Every language of the picker, right-to-left for Arabic and Persian.
        launcher.click()
        current = "sv"
        for lang, texts in strings.items():
            page.get_by_label(strings[current]["language"], exact=True).select_option(lang)
            current = lang
            expect(page.get_by_role("heading", name=texts["title"])).to_be_visible()
            direction = page.locator(".kc").get_attribute("dir")
            assert direction == ("rtl" if lang in ("ar", "fa") else "ltr"), lang
        page.locator("#kc-lang").select_option("ar")
        expect(page.get_by_role("button", name=strings["ar"]["talk_to_person"])).to_be_visible()
        no_serious(page, "#kommunchatt")
        context.close()

        # 200 % zoom of a 1280 x 800 window: a 640 x 400 CSS viewport; everything still reachable.
        context = browser.new_context(viewport={"width": 640, "height": 400}, device_scale_factor=2)
        page = context.new_page()
        page.goto(url)
        page.get_by_role("button", name=strings["sv"]["open_chat"]).click()
        for lang in ("sv", "ar"):
            page.locator("#kc-lang").select_option(lang)
            for name in (strings[lang]["send"], strings[lang]["talk_to_person"]):
                box = page.get_by_role("button", name=name, exact=True).bounding_box()
                assert box and box["y"] >= 0 and box["y"] + box["height"] <= 400 and box["x"] >= 0, (name, box)
                assert box["x"] + box["width"] <= 640, (name, box)
        shot(page, "widget-zoom-200-ar.png")
        context.close()


def test_agent_console_has_no_serious_accessibility_violations(service, browser):
    name, password = make_user(service.engine_url, "agent")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.request.post(f"{service.service_url}/api/v1/auth/login", data={"username": name, "password": password})
    page.goto(f"{service.service_url}/agent")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    no_serious(page)
    context.close()

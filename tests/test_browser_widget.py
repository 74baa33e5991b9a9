"""The citizen widget in real Chromium, on a plain page of another origin, against the whole system
(service + Rasa + actions): Swedish and Arabic answers, right-to-left, handover to a real agent
(through the agent API), page reload, dropped HTTP and WebSocket connections, and an entry made in
the workshop answered at once.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from core.config import database_url
from knowledge.kbfile import load_path
from tests.conftest import ROOT
from tests.e2e import running_system, staff_login
from tests.test_workshop_helpers import (
    axe_violations,
    chromium,
    make_user,
    other_origin_page,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
SHOTS = ROOT / "docs" / "screenshots"
ENTRIES = {e.id: e for e in load_path(ROOT / "data" / "knowledge")}


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("widget-e2e")
    with running_system(data_dir) as system:
        system.engine_url = database_url(data_dir)
        yield system


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def site(system):
    with other_origin_page(system.service_url) as url:
        yield url


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    yield context
    context.close()


def open_widget(context, site):
    page = context.new_page()
    page.goto(site)
    page.get_by_role("button", name="Chatta med oss").click()
    expect(page.locator("#kc-input")).to_be_focused()
    return page


def ask(page, text: str) -> None:
    before = page.locator(".msg.bot[data-id]").count()
    page.locator("#kc-input").fill(text)
    page.keyboard.press("Enter")
    expect(page.locator(".msg.bot[data-id]")).not_to_have_count(before, timeout=60_000)


def session_id(page, system) -> str:
    key = f"kommunchatt:{system.service_url}:default"
    return page.evaluate("k => JSON.parse(localStorage.getItem(k)).session", key)


def no_serious(page) -> None:
    violations = axe_violations(page, "#kommunchatt")
    assert violations == [], violations


def test_a_swedish_question_is_answered_with_its_link_on_another_site(context, site):
    page = open_widget(context, site)
    ask(page, "När hämtas soporna?")
    entry = ENTRIES["waste-collection-schedule"]
    log = page.get_by_role("log")
    expect(log).to_contain_text(entry.answer["sv"][:60])
    expect(page.locator(".msg.bot").filter(has_text=entry.answer["sv"][:60])).to_have_count(1)
    expect(log.get_by_role("link", name=entry.url).last).to_have_attribute("href", entry.url)
    expect(page.locator(".kc")).to_have_attribute("dir", "ltr")
    no_serious(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "widget-sv-answer.png"))
    # A button (here: "did that help?") sends its payload; the citizen sees its title, not the payload.
    buttons = page.locator(".choices button:enabled")
    if buttons.count():
        title = buttons.first.get_attribute("aria-label") or buttons.first.inner_text()  # thumbs are icons
        buttons.first.click()
        expect(page.locator(".msg.citizen").last).to_contain_text(title)
        expect(page.locator(".msg.citizen").last).not_to_contain_text("/")


def test_an_arabic_question_is_answered_right_to_left(context, site):
    page = open_widget(context, site)
    page.get_by_label("Språk").select_option("ar")
    expect(page.locator(".kc")).to_have_attribute("dir", "rtl")
    entry = ENTRIES["home-care-apply"]
    ask(page, entry.questions["ar"][0])
    expect(page.get_by_role("log")).to_contain_text(entry.answer["ar"][:40])
    panel = page.get_by_role("dialog").bounding_box()
    assert panel["x"] > 600  # the panel is at the end of the line, which on a LTR page is the right
    assert page.locator("#kc-input").evaluate("e => getComputedStyle(e).direction") == "rtl"
    no_serious(page)
    page.screenshot(path=str(SHOTS / "widget-ar-rtl.png"))


def test_handover_agent_reply_reload_and_dropped_connections(context, site, system):
    page = context.new_page()
    sockets: list = []
    down = {"now": False}

    def websocket(route):
        if down["now"]:
            route.close()
            return
        route.connect_to_server()
        sockets.append(route)

    page.route_web_socket(re.compile(r".*/api/v1/chat/sessions/.*/ws.*"), websocket)
    page.goto(site)
    page.get_by_role("button", name="Chatta med oss").click()
    page.get_by_role("button", name="Prata med en person").click()
    status = page.get_by_role("dialog").get_by_role("status").first
    expect(status).to_contain_text(re.compile(r"Du är nummer \d+ i kön"), timeout=60_000)
    expect(page.get_by_role("button", name="Prata med en person")).to_be_disabled()
    expect(page.locator(".msg.citizen").last).to_have_text(re.compile("Prata med en person"))

    sid = session_id(page, system)
    agent = staff_login(system.service_url, system.engine_url, "agent")
    agent.put("/api/v1/handoff/status", json={"status": "available"})
    agent.post(f"/api/v1/handoff/conversations/{sid}/claim").raise_for_status()
    expect(status).to_contain_text("Du chattar nu med en handläggare")
    agent.post(
        f"/api/v1/handoff/conversations/{sid}/messages",
        json={"text": "Hej! Jag heter Sara. Vad kan jag hjälpa till med?"},
    ).raise_for_status()
    expect(page.locator(".msg.agent")).to_contain_text("Jag heter Sara")
    no_serious(page)
    page.screenshot(path=str(SHOTS / "widget-agent.png"))

    # HTTP dropped after the server stored the message: the widget resends with the same client_id.
    lost = {"count": 0}

    def drop_response(route):
        if lost["count"] == 0:
            lost["count"] += 1
            route.fetch()  # the server gets and stores it ...
            route.abort("connectionreset")  # ... but the answer never reaches the browser
        else:
            route.continue_()

    page.route(re.compile(r".*/api/v1/chat/sessions/[^/]+/messages$"), drop_response)
    page.locator("#kc-input").fill("Jag har en fråga om min faktura")
    page.keyboard.press("Enter")
    expect(page.locator(".msg.citizen[data-id]").filter(has_text="min faktura")).to_have_count(1)
    expect(page.locator(".msg.pending")).to_have_count(0, timeout=30_000)
    assert lost["count"] == 1
    transcript = httpx.get(f"{system.service_url}/api/v1/chat/sessions/{sid}").json()
    assert [m["text"] for m in transcript["messages"]].count("Jag har en fråga om min faktura") == 1

    # WebSocket dropped: what the agent writes meanwhile arrives once, and live events resume.
    assert sockets, "the widget never opened its WebSocket"
    down["now"] = True
    sockets[-1].close()
    expect(status).to_contain_text("Försöker ansluta igen")
    agent.post(f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "Vilket fakturanummer gäller det?"})
    expect(page.locator(".msg.agent").filter(has_text="fakturanummer")).to_have_count(1)
    opened = len(sockets)
    down["now"] = False
    deadline = time.monotonic() + 40
    while len(sockets) == opened and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert len(sockets) > opened, "the widget did not reconnect its WebSocket"
    expect(status).not_to_contain_text("Försöker ansluta igen")
    agent.post(f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "Tack, jag kollar."})
    expect(page.locator(".msg.agent").filter(has_text="jag kollar")).to_have_count(1)
    expect(page.locator(".msg.agent").filter(has_text="fakturanummer")).to_have_count(1)

    # A page reload: the same conversation, nothing lost or doubled, still with the agent.
    shown = page.locator(".msg[data-id]").all_inner_texts()
    page.reload()
    expect(page.locator(".msg.agent").filter(has_text="jag kollar")).to_have_count(1)
    assert page.locator(".msg[data-id]").all_inner_texts() == shown
    expect(page.get_by_role("dialog")).to_be_visible()  # it was open before the reload
    expect(page.get_by_role("dialog").get_by_role("status").first).to_contain_text("handläggare")

    # Text from citizens and agents is text, never markup.
    page.locator("#kc-input").fill("<img src=x onerror=alert(1)> <b>fet</b>")
    page.keyboard.press("Enter")
    agent.post(f"/api/v1/handoff/conversations/{sid}/messages", json={"text": "<script>alert(2)</script><i>kursiv</i>"})
    expect(page.locator(".msg.citizen").filter(has_text="<b>fet</b>")).to_have_count(1)
    expect(page.locator(".msg.agent").filter(has_text="<i>kursiv</i>")).to_have_count(1)
    assert page.locator("#kommunchatt b, #kommunchatt i, #kommunchatt script").count() == 0
    # The one <img> of the widget's own is the municipality's logo in the header; none in any message.
    assert page.locator("#kommunchatt img").count() == page.locator("#kommunchatt header img").count() == 1

    # The agent closes: the citizen rates the chat (1-5), and the rating lands on the conversation.
    agent.post(f"/api/v1/handoff/conversations/{sid}/close", json={"outcome": "resolved"}).raise_for_status()
    page.get_by_label("4 av 5").check()
    page.get_by_label("Kommentar (frivillig)").fill("Snabb hjälp")
    page.get_by_role("button", name="Skicka betyg").click()
    expect(page.get_by_text("Tack för ditt betyg!")).to_be_visible()
    from sqlalchemy import select

    from conversations.tables import conversations
    from core.db import make_engine

    engine = make_engine(system.engine_url)
    with engine.connect() as conn:
        row = conn.execute(
            select(conversations.c.csat_score, conversations.c.csat_comment).where(conversations.c.id == sid)
        ).first()
    engine.dispose()
    assert (row.csat_score, row.csat_comment) == (4, "Snabb hjälp")
    no_serious(page)


def test_an_entry_made_in_the_workshop_is_answered_by_the_widget_at_once(context, browser, site, system):
    name, password = make_user(system.engine_url, "webmaster")
    workshop = browser.new_context(viewport={"width": 1280, "height": 900}, locale="sv-SE")  # a Swedish webmaster
    admin = workshop.new_page()
    admin.goto(f"{system.service_url}/admin")
    admin.get_by_label("Användarnamn").fill(name)
    admin.get_by_label("Lösenord").fill(password)
    admin.get_by_role("button", name="Logga in").click()
    admin.get_by_role("link", name="Ny post").click()
    admin.get_by_label("Id", exact=True).fill("ice-rink-hours")
    admin.locator("#q-sv").fill("När är ishallen i Ekby öppen för allmänheten?\nallmänhetens åkning ishallen")
    admin.locator("#a-sv").fill("Allmänhetens åkning i Ekby ishall är lördagar och söndagar kl. 13–15.")
    admin.get_by_role("button", name="Spara").click()
    expect(admin.locator("#toast")).to_contain_text("Sparat (ny post)")
    saved = time.monotonic()
    first = httpx.post(f"{system.service_url}/api/v1/answer", json={"text": "när är ishallen öppen för allmänheten"})
    live_after = time.monotonic() - saved
    workshop.close()
    assert first.json()["answers"][0]["id"] == "ice-rink-hours"
    assert live_after < 1.0, f"answerable {live_after:.2f} s after the save"

    page = open_widget(context, site)
    ask(page, "När är ishallen öppen för allmänheten?")
    expect(page.get_by_role("log")).to_contain_text("lördagar och söndagar kl. 13–15")

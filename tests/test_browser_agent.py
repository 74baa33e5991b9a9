"""The agent console in real Chromium (Debian's, through Playwright): log in, see a waiting conversation,
take it, use a suggested answer and a canned response, reply; the citizen receives it; close; the
citizen's rating is stored. Citizen text is shown as text, never run as HTML."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.test_handoff_support import ROOT, Service, Socket

pytestmark = [pytest.mark.asyncio, pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = ROOT / "docs" / "screenshots"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def svc(tmp_path_factory, model_path):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("Debian's chromium is missing: `make browser` (apt-get install chromium) installs it")
    service = Service(
        tmp_path_factory.mktemp("browser"), model_path, kb=ROOT / "data" / "knowledge" / "waste.yml"
    ).start()
    yield service
    service.stop()


async def test_agent_takes_replies_and_closes_in_chromium(svc):
    from playwright.async_api import async_playwright

    admin = svc.staff(svc.agent("chef", role="admin"))
    admin.post(
        "/api/v1/handoff/canned",
        json={
            "shortcut": "oppet",
            "title": "Öppettider",
            "texts": {"sv": "Vi har öppet vardagar 8–16.", "en": "We are open weekdays 8–16."},
        },
    ).raise_for_status()
    svc.agent("anna", languages="sv,en")
    anna_id = next(u["id"] for u in admin.get("/api/v1/admin/users").json() if u["username"] == "anna")
    admin.patch(f"/api/v1/admin/users/{anna_id}", json={"status": "away", "display_name": "Anna"}).raise_for_status()
    first = svc.citizen("sv", text=XSS)
    svc.say(first, "När hämtas soporna?")

    dialogs: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 860}, locale="sv-SE")  # Swedish staff
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        await page.goto(f"{svc.url}/agent")
        await page.fill("input[name=username]", "anna")
        await page.fill("input[name=password]", "a long password")
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "agent-login.png"))
        await page.click("button[type=submit]")

        # The waiting conversation, with its preview as text.
        item = page.locator(f"#queue li[data-id='{first}']")
        await item.wait_for()
        assert await page.locator("#status").input_value() == "away"
        second = svc.citizen("en", text="I would like to talk to a person about parking permits")
        await page.locator(f"#queue li[data-id='{second}']").wait_for()
        await page.locator("#banner").wait_for()
        assert "kön" in await page.locator("#banner").inner_text()  # the visible alert
        assert await page.evaluate("window.__beeps || 0") >= 1  # the audible one
        await page.screenshot(path=str(SHOTS / "agent-queue.png"))

        await item.locator("button.take").click()
        tab = page.locator(f"#tabs .tab[data-id='{first}']")
        await tab.wait_for()
        bodies = page.locator("#transcript .msg.citizen .body")
        await bodies.first.wait_for()
        assert await bodies.first.inner_text() == XSS
        assert await page.locator("#transcript img").count() == 0
        assert await page.locator("#conv-lang").text_content() == "sv · svenska"

        # A suggested answer from the knowledge base, inserted with one click, then sent.
        citizen = await Socket.citizen(svc, first)
        insert = page.locator("#suggestions button.insert").first
        await insert.wait_for(timeout=60_000)
        await insert.click()
        suggested = await page.locator("#text").input_value()
        assert suggested.strip()
        await page.click("#send")
        got = await citizen.wait(lambda e: e.get("type") == "message" and e.get("sender") == "agent", timeout=15)
        assert got["text"] == suggested.strip() and got["author"] == "Anna"

        # A canned response by /shortcut, in the citizen's language.
        await page.locator("#text").type("/opp")
        await page.locator("#shortcuts li").first.wait_for()
        await page.keyboard.press("Tab")
        assert await page.locator("#text").input_value() == "Vi har öppet vardagar 8–16."
        await page.keyboard.press("Enter")
        await citizen.wait(lambda e: e.get("text") == "Vi har öppet vardagar 8–16.")

        # An internal note stays with the staff.
        await page.check("input[name=mode][value=note]")
        await page.fill("#text", "Intern: kolla fakturan")
        await page.keyboard.press("Enter")
        await page.locator("#transcript .msg.note").wait_for()

        # Typing: the citizen's shows in the console; a new citizen message updates the transcript.
        await citizen.send({"type": "typing", "typing": True})
        await page.locator("#typing").wait_for(state="visible")
        svc.say(first, f"Tack! {XSS}")
        await page.locator("#transcript .msg.citizen .body", has_text="Tack!").wait_for()
        await page.screenshot(path=str(SHOTS / "agent-console.png"))

        # Close with an outcome: the citizen is asked for a rating, which is stored.
        await page.select_option("#outcome", "resolved")
        await page.click("#close")
        ask = await citizen.wait(lambda e: e.get("custom", {}).get("kind") == "rating_request")
        assert ask["sender"] == "system"
        await tab.wait_for(state="detached")
        httpx.post(
            f"{svc.url}/api/v1/chat/sessions/{first}/rating", json={"score": 5, "comment": "Snabbt!"}
        ).raise_for_status()
        view = admin.get(f"/api/v1/handoff/conversations/{first}").json()
        assert (view["state"], view["outcome"], view["csat_score"]) == ("closed", "resolved", 5)
        assert "Intern: kolla fakturan" not in [m["text"] for m in svc.transcript(first)["messages"]]
        await citizen.close()
        await browser.close()
    assert dialogs == []  # the <img onerror> never ran

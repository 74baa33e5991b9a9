"""What the agent reads in the console (issue 16, item 5), in real Chromium against the real service:
button titles instead of payloads, readable events instead of "System: feedback", no empty bubbles,
the tab titled by the first question, suggestions for the question and not for "I want a person",
the topic following the chat, Arabic with dir=auto, a typing indicator that clears, the citizen
leaving, desktop notifications (opt-in), and the console in English."""

from __future__ import annotations

import asyncio
import json
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
AXE = ROOT / "web" / "vendor" / "axe-core" / "axe.min.js"
CHOOSE = '/choose_entry{"entry_id":"waste-collection-schedule"}'


@pytest.fixture(scope="module")
def svc(tmp_path_factory, model_path):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("Debian's chromium is missing: `make browser` (apt-get install chromium) installs it")
    service = Service(
        tmp_path_factory.mktemp("console-ux"), model_path, kb=ROOT / "data" / "knowledge" / "waste.yml"
    ).start(timeout=900)  # a loaded machine takes minutes to build the index
    service.agent("chef", role="admin")
    yield service
    service.stop()


def store_bot_dialogue(svc: Service, sid: str) -> None:
    """The turns Rasa and its actions would have stored: greeting, clarify, choice, answer, feedback, a person."""
    from conversations.store import ConversationStore
    from core.config import database_url
    from core.db import make_engine

    engine = make_engine(database_url(svc.data_dir))
    store = ConversationStore(engine)
    turns = [
        ("citizen", "hej", None),
        ("bot", "Hej! Vad undrar du?", None),
        ("citizen", "När töms soptunnan?", None),
        (
            "bot",
            "Menade du något av detta?",
            {
                "buttons": [
                    {"title": "När hämtas soporna?", "payload": CHOOSE},
                    {"title": "Inget av dessa", "payload": "/none_of_these"},
                ]
            },
        ),
        ("bot", "", {"custom": {"kind": "clarify", "decision": "clarify"}}),
        ("citizen", CHOOSE, None),
        ("bot", "Soporna hämtas varannan vecka.", None),
        ("bot", "", {"custom": {"kind": "answer", "entry_id": "waste-collection-schedule"}}),
        (
            "bot",
            "Fick du svar på din fråga?",
            {"buttons": [{"title": "Ja", "payload": "/affirm"}, {"title": "Nej, inte riktigt", "payload": "/deny"}]},
        ),
        ("citizen", "/deny", None),
        (
            "system",
            "feedback",
            {"custom": {"kind": "feedback", "entry_id": "waste-collection-schedule", "helpful": False}},
        ),
        # "Leave a message": the service's marker of the form's start (shown once, by its end), then its end.
        ("bot", "", {"custom": {"kind": "callback", "state": "started"}}),
        ("bot", "", {"custom": {"kind": "callback", "state": "not_saved"}}),
        ("citizen", "jag vill prata med en person", None),
        ("bot", "Jag kopplar dig till en handläggare.", None),
        ("bot", "", {"custom": {"kind": "handoff", "state": "queued", "position": 1, "reason": "requested"}}),
    ]
    for sender, text, data in turns:
        store.add_message(sid, sender, text, data)
    engine.dispose()


def away_agent(svc: Service, name: str, languages: str) -> None:
    """An agent who is away: chats wait in the queue for them to take (no automatic assignment)."""
    token = svc.agent(name, languages=languages)
    svc.staff(token).put("/api/v1/handoff/status", json={"status": "away"}).raise_for_status()


async def serious_violations(page) -> list[dict]:
    """axe-core's serious and critical findings on the page (as tests/test_workshop_helpers.py, async)."""
    if not await page.evaluate("() => !!window.axe"):
        await page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = await page.evaluate("""async () => (await axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})).violations
        .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    return [v for v in found if v["impact"] in ("serious", "critical")]


async def login(page, svc: Service, name: str) -> None:
    await page.goto(f"{svc.url}/agent")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", "a long password")
    await page.click("button[type=submit]")


async def console_with_chat(pw, svc, agent: str, sid: str):
    """(browser, page): `agent` logged in to the console in Swedish, having taken the chat `sid`."""
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="sv-SE", bypass_csp=True)
    page = await context.new_page()
    await login(page, svc, agent)
    await page.locator(f"#queue li[data-id='{sid}'] button.take").click()
    return browser, page


async def test_the_agent_reads_what_the_citizen_did_not_payloads(svc):
    from playwright.async_api import async_playwright

    away_agent(svc, "anna", "sv,ar")
    sid = svc.citizen("sv")
    store_bot_dialogue(svc, sid)
    async with async_playwright() as pw:
        browser, page = await console_with_chat(pw, svc, "anna", sid)
        tab = page.locator(f"#tabs .tab[data-id='{sid}']")
        await tab.wait_for()
        transcript = page.locator("#transcript")
        await transcript.locator("li.msg").first.wait_for()

        bodies = await transcript.locator(".body").all_inner_texts()
        assert not [b for b in bodies if b.startswith("/")], bodies  # no raw payloads
        chosen = transcript.locator("li.choice .body")
        assert await chosen.all_inner_texts() == ["När hämtas soporna?", "Nej, inte riktigt"]
        # no empty bubbles: every line has words or buttons
        for item in await transcript.locator("li.msg").all():
            assert (await item.locator(".body, .chips").count()) > 0, await item.inner_html()
        feedback = transcript.locator("li[data-event=feedback]")
        assert await feedback.locator(".body").inner_text() == "👎 Svaret hjälpte inte"
        assert (await feedback.locator(".meta").inner_text()).startswith("Medborgare")
        assert "System" not in await transcript.inner_text() and "feedback" not in await transcript.inner_text()
        assert await transcript.locator("li[data-event=callback]").count() == 1
        # the tab is titled by the first question, not by "hej" or a payload
        assert await tab.locator(".label").inner_text() == "När töms soptunnan?"
        # suggestions for that question, not for "jag vill prata med en person"; the topic follows
        await page.locator("#suggest-query", has_text="När töms soptunnan?").wait_for(timeout=60_000)
        await page.locator("#conv-topic", has_text="avfall").wait_for()
        assert await serious_violations(page) == []
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "agent-console-transcript.png"))

        # typing: shown while the citizen types, gone as soon as the message arrives
        citizen = await Socket.citizen(svc, sid)
        await citizen.send({"type": "typing", "typing": True})
        await page.locator("#typing").wait_for(state="visible")
        svc.say(sid, "Hallå, är någon där?")
        await transcript.locator(".body", has_text="Hallå, är någon där?").wait_for()
        await page.locator("#typing").wait_for(state="hidden", timeout=1500)
        # and gone by itself when the citizen stops typing without sending
        await citizen.send({"type": "typing", "typing": True})
        await page.locator("#typing").wait_for(state="visible")
        await page.locator("#typing").wait_for(state="hidden", timeout=7000)

        # the citizen ends the chat: the agent is told at once and keeps the transcript to read
        httpx.post(f"{svc.url}/api/v1/chat/sessions/{sid}/end").raise_for_status()
        await page.locator("#banner", has_text="Medborgaren avslutade chatten").wait_for()
        await transcript.locator("li[data-event=citizen_ended]").wait_for()
        assert await tab.locator(".label").count() == 1 and "left" in (await tab.get_attribute("class"))
        assert await page.locator("#composer").is_hidden()
        await page.click("#close-tab")
        await tab.wait_for(state="detached")
        await citizen.close()
        await browser.close()


async def test_arabic_is_shown_in_its_direction_and_english_staff_read_english(svc):
    from playwright.async_api import async_playwright

    away_agent(svc, "bo", "ar,en")
    sid = svc.citizen("ar", text="متى يتم جمع القمامة؟")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB", bypass_csp=True)
        page = await context.new_page()
        sockets: list[str] = []  # the console's socket names the staff language: its error frames speak it
        page.on("websocket", lambda ws: sockets.append(ws.url))
        await login(page, svc, "bo")
        assert await page.locator("#send").inner_text() == "Send"  # English from the server's table
        assert await page.evaluate("document.documentElement.lang") == "en"
        await page.locator(f"#queue li[data-id='{sid}'] button.take").click()
        body = page.locator("#transcript .msg.citizen .body", has_text="القمامة")
        await body.wait_for()
        assert await body.get_attribute("dir") == "auto"
        assert await page.locator(f"#tabs .tab[data-id='{sid}'] .label").get_attribute("dir") == "auto"
        # the staff member may switch to Swedish; the choice is kept
        assert [url for url in sockets if "/agent/ws" in url][-1].endswith("?lang=en")
        await page.select_option("#staff-lang", "sv")
        await page.locator("#send", has_text="Skicka").wait_for()
        await page.locator("#connection", has_text="ansluten").wait_for()
        assert [url for url in sockets if "/agent/ws" in url][-1].endswith("?lang=sv")  # in an en-GB browser
        await browser.close()


async def test_an_agent_without_the_citizens_language_is_warned_and_reads_the_answer_in_both(svc):
    """Item 3: a citizen writing Arabic in a widget left in Swedish; the agent who has only Swedish is
    warned beside the language and gets the knowledge answer in Arabic, to send, with the Swedish beside it."""
    from playwright.async_api import async_playwright

    from knowledge.kbfile import load_path

    entry = next(e for e in load_path(ROOT / "data" / "knowledge" / "waste.yml") if e.id == "waste-collection-schedule")
    away_agent(svc, "dag", "sv")
    sid = svc.citizen("sv", text=entry.first_question("ar"))
    assert svc.transcript(sid)["language"] == "ar"
    async with async_playwright() as pw:
        browser, page = await console_with_chat(pw, svc, "dag", sid)
        await page.locator("#conv-lang.warning").wait_for()
        shown = await page.locator("#conv-lang").text_content()  # (the pill's CSS writes it in capitals)
        assert shown.startswith("ar · ") and shown.endswith(" – du talar inte språket"), shown
        answer = page.locator("#suggestions li").filter(has_text=entry.answer["ar"][:30])
        await answer.wait_for(timeout=60_000)
        assert entry.answer["ar"][:30] in await answer.locator(".text[lang=ar]").inner_text()
        swedish = answer.locator(".text.translation[lang=sv]")
        assert (await swedish.inner_text()).startswith("På svenska: " + entry.answer["sv"][:30])
        await answer.locator("button.insert").click()
        assert (await page.locator("#text").input_value()).startswith(entry.answer["ar"][:30])
        assert await serious_violations(page) == []
        await page.screenshot(path=str(SHOTS / "agent-console-language-warning.png"))
        await browser.close()


async def test_desktop_notifications_are_opt_in_and_announce_new_chats(svc):
    from playwright.async_api import async_playwright

    away_agent(svc, "cilla", "sv")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="sv-SE", bypass_csp=True)
        await context.grant_permissions(["notifications"], origin=svc.url)
        # Record each notification the page shows (the real API still runs underneath).
        await context.add_init_script("""(() => {
            const Real = window.Notification;
            window.__shown = [];
            class Recorded extends Real {
                constructor(title, options) {
                    super(title, options);
                    window.__shown.push({title, body: options && options.body});
                }
            }
            window.Notification = Recorded;
        })()""")
        page = await context.new_page()
        await login(page, svc, "cilla")
        button = page.locator("#notify")
        await button.wait_for()
        assert await button.get_attribute("aria-pressed") == "false"
        # Headless Chromium never loses focus: the page is told when the agent works in another window.
        away = "() => { document.hasFocus = () => false; }"
        here = "() => { document.hasFocus = () => true; }"
        await page.evaluate(away)
        svc.citizen("sv", text="Ingen avisering än")  # not turned on: nothing shown
        await page.locator("#queue li", has_text="Ingen avisering än").wait_for()
        await asyncio.sleep(1)
        assert await page.evaluate("window.__shown.length") == 0
        await button.click()
        await page.locator("#notify[aria-pressed=true]").wait_for()
        await page.evaluate(here)  # looking at the console: the banner and the beep are enough
        svc.citizen("sv", text="Medan jag tittar")
        await page.locator("#queue li", has_text="Medan jag tittar").wait_for()
        await asyncio.sleep(1)
        assert await page.evaluate("window.__shown.length") == 0
        await page.evaluate(away)
        svc.citizen("sv", text="Hur bokar jag grovsopor?")
        await page.wait_for_function("window.__shown.length > 0", timeout=15_000)
        shown = json.loads(await page.evaluate("JSON.stringify(window.__shown)"))
        assert shown[-1]["title"] == "Ny chatt i kön" and "grovsopor" in shown[-1]["body"]
        await browser.close()

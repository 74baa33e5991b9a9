"""Helpers for the widget and workshop tests (no tests here).

`service_only` starts the real service process (uvicorn, real HTTP, SQLite, the real embedding
model) without Rasa: enough for the workshop, the notices and the answer API. Tests that need the
dialogue (the widget answering) use `tests.e2e.running_system` instead.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
import time
from pathlib import Path

import httpx

from core.config import database_url, internal_token
from kommunchatt.runner import free_port
from tests.conftest import ROOT
from tests.e2e import running_service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AXE = ROOT / "web" / "vendor" / "axe-core" / "axe.min.js"


@contextlib.contextmanager
def service_only(data_dir: Path):
    """The service alone on a free port, with the seed knowledge base (no Rasa)."""
    from core.db import make_engine

    with running_service(data_dir) as system:
        system.engine_url = database_url(data_dir)
        system.engine = make_engine(system.engine_url)
        system.internal_token = internal_token(data_dir)
        yield system
        system.engine.dispose()


@contextlib.contextmanager
def chromium():
    """Debian's Chromium driven by Playwright (it cannot download a browser of its own here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_browser(p)
        yield browser
        browser.close()


def make_user(engine_url: str, role: str, municipalities: list[str] | None = None) -> tuple[str, str]:
    """A staff user straight in the users table (as `kommunchatt user add` does); returns name, password."""
    from core.db import make_engine
    from core.users import UserStore

    engine = make_engine(engine_url)
    name = f"{role}-{os.urandom(3).hex()}"
    UserStore(engine).create(
        name, "a long password", role=role, languages=["sv", "ar", "en"], municipalities=municipalities or ["default"]
    )
    engine.dispose()
    return name, "a long password"


def login(base_url: str, engine_url: str, role: str = "webmaster") -> httpx.Client:
    name, password = make_user(engine_url, role)
    client = httpx.Client(base_url=base_url, timeout=60)
    client.post("/api/v1/auth/login", json={"username": name, "password": password}).raise_for_status()
    return client


@contextlib.contextmanager
def other_origin_page(widget_host: str, lang: str = "sv", municipality: str = "default"):
    """A plain HTML page on another port (another origin) that embeds the widget with one tag."""
    html = f"""<!doctype html>
<html lang="sv"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ekby kommun – Avfall</title>
<style>body {{ font: 30px Georgia; color: red; }} div, button, li {{ border: 5px solid lime !important; }}</style>
</head><body><main><h1>Sophämtning</h1><p>En vanlig sida på kommunens webbplats.</p></main>
<script src="{widget_host}/widget.js" data-municipality="{municipality}" data-lang="{lang}" defer></script>
</body></html>"""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def axe_violations(page, context_selector: str | None = None) -> list[dict]:
    """Serious and critical axe-core violations on the page (shadow roots included)."""
    if not page.evaluate("() => !!window.axe"):
        # From the service itself, so the staff pages' CSP (script-src 'self') stays on in the test; a page
        # on another site (the widget's host) has no /static and allows inline scripts.
        with contextlib.suppress(Exception):
            page.add_script_tag(url="/static/vendor/axe-core/axe.min.js")
        if not page.evaluate("() => !!window.axe"):
            page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async (sel) => {
            const r = await axe.run(sel ? {include: [[sel]]} : document,
                                    {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                                                     'best-practice']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' +
                                                                                n.failureSummary)}));
        }""",
        context_selector,
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def store_conversation(engine, language: str, turns: list[tuple], days_ago: float = 0.0, **columns) -> str:
    """Store one conversation as the chat service, the Rasa actions and the agents do: (sender, text, custom)."""
    from conversations.store import ConversationStore
    from conversations.tables import conversations

    store = ConversationStore(engine)
    conv = store.create("default", language)
    for sender, text, custom in turns:
        store.add_message(conv["id"], sender, text, {"custom": custom} if custom else None)
    with engine.begin() as conn:
        conn.execute(
            conversations.update()
            .where(conversations.c.id == conv["id"])
            .values(created_at=time.time() - days_ago * 86400, **columns)
        )
    return conv["id"]


LATE_ANSWERS = """([part, ms]) => {
  const realFetch = window.fetch;
  window.lateAnswerShown = false;
  window.fetch = async (url, options) => {
    const response = await realFetch(url, options);
    if (String(url).includes(part)) {
      await new Promise((resolve) => setTimeout(resolve, ms));
      setTimeout(() => { window.lateAnswerShown = true; }, 100);
    }
    return response;
  };
}"""


def answer_late(page, url_part: str, seconds: float = 1.5) -> None:
    """Answers to the page's requests whose URL contains `url_part` reach it `seconds` late, as on a loaded
    machine: for the races where an older answer arrives after a newer one."""
    page.evaluate(LATE_ANSWERS, [url_part, seconds * 1000])


def wait_for_late_answer(page, timeout_s: float = 10.0) -> None:
    """Until the page has had a late answer (and 0.1 s to show it). Polls with evaluate: the workshop's CSP
    forbids the eval that wait_for_function needs."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate("window.lateAnswerShown === true"):
        assert time.monotonic() < deadline, f"no late answer within {timeout_s} s"
        page.wait_for_timeout(100)

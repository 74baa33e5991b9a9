"""The webmaster workshop in English and back in Swedish (issue 16: staff pages in both, from the server's
string table), in real Chromium against the real service (no Rasa).

A browser whose language is English opens the workshop in English; on every view (entries, editor, import,
unanswered questions, audit and the rest of the navigation) no Swedish text of the workshop's table is left
in the page's own words (text, aria-label, title, placeholder, option-group labels, the document title),
and no key shows instead of a text. Choosing Svenska switches every view to Swedish with no English left,
and the choice is remembered over the browser's language. Expected words are read from the table
(core/service_texts.yml), never written here."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from core.i18n import texts
from tests.conftest import ROOT
from tests.test_workshop_helpers import axe_violations, chromium, make_user, service_only, store_conversation

pytestmark = pytest.mark.browser
SHOTS = ROOT / "docs" / "screenshots"
CLARIFY = {"kind": "clarify", "decision": "clarify", "entry_ids": ["a", "b"]}
EN = texts("en", "workshop_")
SV = texts("sv", "workshop_")
BAD_FILE = "- id: fine\n  answer: {sv: Hej}\n- id: broken\n  url: not-a-link\n  answer: {sv: Hej}\n"
GOOD_FILE = "- id: library-card\n  questions: {sv: [tappat lånekort]}\n  answer: {sv: Spärra kortet.}\n"

# The page's own words: every text node and labelling attribute outside what holds data (questions and answers
# from the knowledge base, citizens' words, ids, JSON of the audit, the user's name).
OWN_WORDS = """() => {
  const data = 'pre, blockquote, textarea, script, style, [dir=auto], a[href^="#edit/"], #username, #municipality,'
    + ' select[id^="variant-"] option:not([value=""])';
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement || node.parentElement.closest(data)) continue;
    if (node.nodeValue.trim()) out.push(node.nodeValue.trim());
  }
  for (const el of document.body.querySelectorAll('[aria-label], [title], [placeholder], optgroup[label]')) {
    if (el.closest(data)) continue;
    for (const name of ['aria-label', 'title', 'placeholder', 'label']) {
      if (el.hasAttribute(name) && !(name === 'label' && el.tagName !== 'OPTGROUP')) out.push(el.getAttribute(name));
    }
  }
  out.push(document.title);
  return out;
}"""


def patterns(table: dict[str, str], other: dict[str, str]) -> dict[str, re.Pattern]:
    """One pattern per text of `table` that `other` words differently and does not use itself; a {placeholder}
    matches anything."""
    out = {}
    for key, template in table.items():
        if template == other[key]:
            continue  # spelt alike in both (Period, Id, Status …)
        body = ".+?".join(re.escape(part) for part in re.split(r"\{\w+\}", template.strip()))
        start = r"(?<!\w)" if re.match(r"\w", template.strip()) else ""
        end = r"(?!\w)" if re.search(r"\w$", template.strip()) else ""
        pattern = re.compile(start + body + end)
        if not any(pattern.search(re.sub(r"\{\w+\}", "", text)) for text in other.values()):  # "Import" is Swedish too
            out[key] = pattern
    return out


SWEDISH = patterns(SV, EN)
ENGLISH = patterns(EN, SV)


def left_over(page, words: dict[str, re.Pattern]) -> list[tuple[str, str]]:
    """(key, text) for every text of the page in the other language, and every key shown instead of a text."""
    found = []
    for text in page.evaluate(OWN_WORDS):
        found += [(key, text) for key, pattern in words.items() if pattern.search(text)]
        found += [("untranslated key", text)] if re.search(r"\bworkshop_[a-z_]+", text) else []
    return found


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with service_only(tmp_path_factory.mktemp("workshop-i18n")) as svc:
        for text in ("Får man ha höns i trädgården?", "får jag ha höns på min tomt"):
            store_conversation(svc.engine, "sv", [("citizen", text, None), ("bot", "", CLARIFY)])
        store_conversation(
            svc.engine,
            "sv",
            [
                ("citizen", "Får jag ha egna höns hemma i trädgården?", None),
                ("bot", "", {"kind": "handoff", "state": "queued", "reason": "low_confidence"}),
                ("agent", "Ja, upp till fem höns utan tupp.", None),
            ],
            queued_at=time.time(),
            handoff_reason="low_confidence",
        )
        yield svc


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


class Quiet:
    """Waits until the page has had no request in flight for half a second (a view renders what it fetched)."""

    def __init__(self, page):
        self.page, self.pending = page, set()
        page.on("request", lambda request: self.pending.add(request))
        page.on("requestfinished", lambda request: self.pending.discard(request))
        page.on("requestfailed", lambda request: self.pending.discard(request))

    def wait(self, timeout: float = 120.0) -> None:
        deadline, quiet_since = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(100)  # Playwright delivers the request events meanwhile
            if self.pending:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 0.5:
                return
        raise AssertionError(f"requests still in flight after {timeout} s: {[r.url for r in self.pending]}")


def open_view(page, link: str, title: str) -> None:
    page.locator("nav").get_by_role("link", name=link, exact=True).click()
    expect(page.locator("#page-title")).to_have_text(title)


def visit_main_views(page, words: dict[str, str], leftovers: dict[str, re.Pattern]) -> dict[str, list]:
    """Entries, editor (with a save and its toast), import (a refused file, then a valid dry run),
    unanswered questions, audit; returns what is left in the other language on each."""
    found: dict[str, list] = {}
    open_view(page, words["workshop_nav_entries"], words["workshop_nav_entries"])
    expect(page.get_by_role("link", name="home-care-apply")).to_be_visible()
    found["entries"] = left_over(page, leftovers)

    page.get_by_role("link", name="home-care-apply").click()
    expect(page.locator("#page-title")).to_have_text(words["workshop_entry_title"].replace("{id}", "home-care-apply"))
    tags = page.get_by_label(words["workshop_tags"])
    tags.fill(tags.input_value() + ", " + str(time.time_ns()))  # a real change: an audit row and a toast
    page.get_by_role("button", name=words["workshop_save"], exact=True).click()
    expect(page.locator("#toast")).to_contain_text(words["workshop_saved_update"])
    expect(
        page.get_by_role("table", name=re.compile(words["workshop_changes_count"].replace("{n}", r"\d+")))
    ).to_be_visible()
    found["editor"] = left_over(page, leftovers)

    open_view(page, words["workshop_nav_import"], words["workshop_nav_import"])
    upload = page.get_by_label(words["workshop_import_file"])
    upload.set_input_files({"name": "bad.yml", "mimeType": "application/yaml", "buffer": BAD_FILE.encode()})
    page.get_by_role("button", name=words["workshop_import_button"], exact=True).click()
    expect(page.get_by_role("table", name=words["workshop_validation_report"])).to_be_visible()
    found["import, refused"] = left_over(page, leftovers)
    upload.set_input_files({"name": "good.yml", "mimeType": "application/yaml", "buffer": GOOD_FILE.encode()})
    page.get_by_label(words["workshop_import_dry_run"]).check()
    page.get_by_role("button", name=words["workshop_import_button"], exact=True).click()
    expect(page.locator("#import-report")).to_contain_text(words["workshop_import_valid"].split("{")[0].strip())
    found["import, dry run"] = left_over(page, leftovers)

    open_view(page, words["workshop_nav_unanswered"], words["workshop_nav_unanswered"])
    group = page.locator("article").filter(has_text="höns")
    expect(group).to_have_count(1, timeout=120_000)  # grouping encodes every question: slow on a loaded machine
    expect(group.locator("h3")).to_have_text(words["workshop_agents_drafts"])
    found["unanswered"] = left_over(page, leftovers)

    open_view(page, words["workshop_nav_audit"], words["workshop_nav_audit"])
    expect(page.get_by_role("link", name="home-care-apply").first).to_be_visible()
    found["audit"] = left_over(page, leftovers)
    return found


def test_the_workshop_in_english_and_switched_to_swedish(service, browser):
    name, password = make_user(service.engine_url, "webmaster")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(90_000)
    page = context.new_page()
    page.goto(f"{service.service_url}/admin")

    # An English browser gets the workshop in English, from the login form on.
    expect(page.get_by_role("heading", name=EN["workshop_log_in"])).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.locator("#who")).to_be_hidden()  # no municipality or log-out before logging in
    assert left_over(page, SWEDISH) == []
    page.get_by_label(EN["workshop_username"]).fill(name)
    page.get_by_label(EN["workshop_password"]).fill(password)
    page.get_by_role("button", name=EN["workshop_log_in"]).click()
    expect(page.get_by_role("navigation", name=EN["workshop_nav_label"])).to_be_visible()
    assert page.title() == EN["workshop_document_title"]

    found = visit_main_views(page, EN, SWEDISH)
    # The other views of the navigation too (console, notices, statistics, freshness, suggestions …).
    quiet = Quiet(page)
    for link in page.locator("nav a").all():
        href = link.get_attribute("href")
        link.click()
        title = EN["workshop_notices_title"] if href == "#notices" else link.inner_text()
        expect(page.locator("#page-title")).to_have_text(title)
        quiet.wait()
        found[href] = left_over(page, SWEDISH)
    assert {view: words for view, words in found.items() if words} == {}

    page.goto(f"{service.service_url}/admin#entries")
    expect(page.get_by_role("link", name="home-care-apply")).to_be_visible()
    violations = axe_violations(page)
    assert violations == [], json.dumps(violations, indent=1, ensure_ascii=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "admin-entries-en.png"))
    page.goto(f"{service.service_url}/admin#unanswered")
    expect(page.locator("article").filter(has_text="höns")).to_have_count(1, timeout=120_000)
    page.screenshot(path=str(SHOTS / "admin-unanswered-en.png"))

    # Svenska in the language switch: the whole workshop in Swedish, nothing English left.
    page.get_by_label(EN["workshop_language"], exact=True).select_option("sv")
    expect(page.get_by_role("navigation", name=SV["workshop_nav_label"])).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "sv"
    expect(page.get_by_role("heading", name=SV["workshop_nav_unanswered"])).to_be_visible()
    found = visit_main_views(page, SV, ENGLISH)
    assert {view: words for view, words in found.items() if words} == {}

    # The choice is the staff member's: a new page in this English browser opens in Swedish.
    second = context.new_page()
    second.goto(f"{service.service_url}/admin")
    expect(second.get_by_role("navigation", name=SV["workshop_nav_label"])).to_be_visible()
    assert second.evaluate("document.documentElement.lang") == "sv"
    context.close()


def test_the_left_over_check_finds_the_other_language_and_only_it():
    """The check above is only as good as its patterns: Swedish words in an English text are found (also with
    a {placeholder} filled in), a Swedish word inside a longer one is not, and a key shown as text is."""
    page = type("Page", (), {"evaluate": lambda self, _script: self.words})()
    page.words = [" – 4 gånger · Arabic", "Lägg till variant", "Testkonsolen", "Entry", "workshop_nav_audit"]
    assert {key for key, _ in left_over(page, SWEDISH)} >= {
        "workshop_times",
        "workshop_add_variant",
        "untranslated key",
    }
    assert all(text != "Testkonsolen" and text != "Entry" for _, text in left_over(page, SWEDISH))
    assert {text for _, text in left_over(page, ENGLISH)} == {"Entry", "workshop_nav_audit"}

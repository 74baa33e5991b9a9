"""The webmaster workshop's words (the `workshop_*` keys of core/service_texts.yml), in-process: each has
Swedish and English with the same {placeholders}, every key the page asks for exists (a missing one would
show as its key), every code the server sends has words, and the texts API serves them by prefix."""

from __future__ import annotations

import re
import string
from typing import get_args

import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.i18n_api import router
from handoff.internal_api import Reason
from insights.unanswered import GAP_REASONS
from tests.conftest import ROOT

TABLE = yaml.safe_load((ROOT / "core" / "service_texts.yml").read_text(encoding="utf-8"))
WORKSHOP = {key: texts for key, texts in TABLE.items() if key.startswith("workshop_")}
SCRIPT = (ROOT / "web" / "admin" / "admin.js").read_text(encoding="utf-8")
HTML = (ROOT / "web" / "admin" / "index.html").read_text(encoding="utf-8")
PAGE = SCRIPT + HTML
# Keys the page builds from a code the server sends (said(prefix, code), "workshop_status_" + status).
CODES = {
    "action_": ("create", "update", "delete"),  # the knowledge base's audit actions
    "reason_": GAP_REASONS,
    "decision_": ("answer", "clarify", "handoff"),  # knowledge/decision.py
    "handoff_reason_": (*get_args(Reason), "no_match", "unknown"),
    "status_": ("active", "upcoming", "expired"),
}
# Words Swedish and English spell alike.
SHARED_WORDS = {"workshop_period", "workshop_id", "workshop_col_status", "workshop_col_text", "workshop_col_problem"}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_workshop_key_has_swedish_and_english_with_the_same_placeholders():
    assert len(WORKSHOP) > 150  # the whole workshop, not a handful
    for key, texts in WORKSHOP.items():
        assert set(texts) == {"sv", "en"}, key
        assert texts["sv"].strip() and texts["en"].strip(), key
        assert placeholders(texts["sv"]) == placeholders(texts["en"]), key
    # Written in each language, not copied: only names and words the two share are the same.
    same = {key for key, texts in WORKSHOP.items() if texts["sv"] == texts["en"]}
    assert same <= SHARED_WORDS, same


def test_every_key_the_page_uses_exists_and_every_key_is_used():
    used = set(re.findall(r"\bworkshop_[a-z_]*[a-z]\b", PAGE))
    # Keys built from a code: said("reason_", code) or "workshop_status_" + status.
    built = set(re.findall(r'said\("([a-z_]+_)"', SCRIPT)) | set(re.findall(r'"workshop_([a-z_]+_)"', SCRIPT))
    assert set(CODES) <= built
    assert sorted(used - set(WORKSHOP)) == []
    codes = {f"workshop_{prefix}{code}" for prefix, codes in CODES.items() for code in codes}
    assert sorted(codes - set(WORKSHOP)) == []  # every code the server sends has words
    unused = {key for key in set(WORKSHOP) - used if not any(key.startswith(f"workshop_{p}") for p in built)}
    assert sorted(unused) == []


def test_no_swedish_words_are_left_in_the_page_source():
    # Visible words come from the table; the only Swedish left in the script is the server's language names
    # (shown in Swedish only) and comments.
    script = re.sub(r"/\*.*?\*/|//[^\n]*", "", SCRIPT, flags=re.S)
    script = re.sub(r"\bNAMES = \{[^}]*\}", "", script)
    literals = re.findall(r'"((?:[^"\\\n]|\\.)*)"', script)
    html = re.sub(r"<!--.*?-->", "", HTML, flags=re.S)
    literals += re.findall(r">([^<>]+)<", html) + re.findall(r'="([^"]*)"', html)
    swedish_words = {texts["sv"].strip() for texts in WORKSHOP.values() if texts["sv"] != texts["en"]}
    swedish = sorted(s for s in literals if re.search(r"[åäöÅÄÖ]", s) or s.strip() in swedish_words)
    assert swedish == []


def test_the_texts_api_serves_the_workshop_keys_in_each_language():
    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    for language in ("sv", "en"):
        body = client.get(f"/api/v1/i18n/{language}", params={"prefix": "workshop_"}).json()
        assert body["language"] == language
        assert body["strings"] == {key: texts[language] for key, texts in WORKSHOP.items()}
    staff = client.get("/api/v1/i18n/en").json()["strings"]  # the staff pages' default prefix is unchanged
    assert staff and not any(key.startswith("workshop_") for key in staff)
    assert client.get("/api/v1/i18n/en", params={"prefix": "dialogue_"}).status_code == 422
    assert client.get("/api/v1/i18n/fi", params={"prefix": "workshop_"}).status_code == 404

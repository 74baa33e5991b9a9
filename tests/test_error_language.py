"""Error texts in the staff's language (issue 16): the one error shape keeps its English `detail` (and each
field's English `message`) for API clients and adds `message` (and each field's `text`), in Swedish when
the request's Accept-Language prefers Swedish, from the string table's `error_*` keys (core/error_texts.py).
In process: a small app with the real handlers, then the real app; tests/test_browser_staff_pages.py has
a staff page showing one."""

from __future__ import annotations

import ast
import string

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from core import errors
from core.error_texts import preferred_language
from tests.conftest import ROOT
from tests.inprocess import running_app, staff

TABLE = yaml.safe_load((ROOT / "core" / "service_texts.yml").read_text(encoding="utf-8"))
ERRORS = {key: texts for key, texts in TABLE.items() if key.startswith("error_")}
SWEDISH = {"accept-language": "sv-SE,sv;q=0.9,en-US;q=0.8,en;q=0.7"}
ENGLISH = {"accept-language": "en-GB,en;q=0.9,sv;q=0.5"}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


class Body(BaseModel):
    text: str = Field(min_length=1)
    count: int = Field(ge=1)


def small_app() -> TestClient:
    app = FastAPI()
    errors.install(app, {LookupError: 409})

    @app.get("/municipalities/{mid}")
    async def municipality(mid: str) -> dict:
        raise errors.NotFound(f"no municipality with id '{mid}'")

    @app.get("/odd")
    async def odd() -> dict:
        raise errors.Forbidden("a rule nobody wrote words for")

    @app.get("/crash")
    async def crash() -> dict:
        raise RuntimeError("boom")

    @app.get("/taken")
    async def taken() -> dict:
        raise LookupError("the conversation is not yours")

    @app.post("/things")
    async def things(body: Body) -> dict:
        return {}

    return TestClient(app, raise_server_exceptions=False)


def test_every_error_text_has_swedish_and_english_with_the_same_placeholders():
    assert len(ERRORS) > 40
    for key, texts in ERRORS.items():
        assert set(texts) == {"sv", "en"}, key
        assert texts["sv"].strip() and texts["en"].strip() and texts["sv"] != texts["en"], key
        assert placeholders(texts["sv"]) == placeholders(texts["en"]), key
    statuses = {key for key in ERRORS if key.startswith("error_status_")}
    assert all(ERRORS[key]["en"] == "{detail}" for key in statuses)


def test_the_string_table_names_each_key_once():
    """YAML keeps the last of two equal keys without a word: the console's language warning was written
    twice, and its first text never showed."""

    class Strict(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
            assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})
            return super().construct_mapping(node, deep=deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, Strict.construct_mapping)
    assert yaml.load((ROOT / "core" / "service_texts.yml").read_text(encoding="utf-8"), Loader=Strict) == TABLE


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("sv-SE,sv;q=0.9,en;q=0.8", "sv"),
        ("en-US,en;q=0.9,sv;q=0.8", "en"),
        ("fi, sv;q=0.5, en;q=0.4", "sv"),  # Finnish first, but of the offered two Swedish ranks higher
        ("sv;q=0.2, en;q=0.7", "en"),
        ("ar", "en"),  # a language the staff texts lack: the English detail
        ("", None),
        (None, None),
    ],
)
def test_the_request_language_is_the_offered_one_ranked_highest(header, language):
    assert preferred_language(header) == language


def test_swedish_is_given_when_swedish_is_preferred_and_detail_stays_english():
    client = small_app()
    plain = client.get("/municipalities/norrvik")
    assert plain.status_code == 404
    assert plain.json() == {"detail": "no municipality with id 'norrvik'", "errors": []}  # API clients: unchanged
    swedish = client.get("/municipalities/norrvik", headers=SWEDISH)
    assert swedish.json() == {
        "detail": "no municipality with id 'norrvik'",
        "errors": [],
        "message": "det finns ingen kommun med id 'norrvik'",
    }
    assert swedish.headers["content-language"] == "sv" and "accept-language" in swedish.headers["vary"].lower()
    english = client.get("/municipalities/norrvik", headers=ENGLISH)
    assert english.json()["message"] == "no municipality with id 'norrvik'"
    assert english.headers["content-language"] == "en"


def test_validation_errors_unknown_details_crashes_and_other_layers_errors_get_swedish_too():
    client = small_app()
    invalid = client.post("/things", json={"text": "", "count": 0}, headers=SWEDISH).json()
    assert invalid["detail"] == (
        "text: String should have at least 1 character; count: Input should be greater than or equal to 1"
    )
    assert invalid["message"] == "text: får inte vara tomt; count: måste vara minst 1"
    assert [e["message"] for e in invalid["errors"]] == [  # per field: English as before, and the reader's text
        "String should have at least 1 character",
        "Input should be greater than or equal to 1",
    ]
    assert [e["text"] for e in invalid["errors"]] == ["får inte vara tomt", "måste vara minst 1"]
    english = client.post("/things", json={"text": "", "count": 0}, headers=ENGLISH).json()
    assert [e["text"] for e in english["errors"]] == [e["message"] for e in english["errors"]]
    missing = client.post("/things", json={}, headers=SWEDISH).json()
    assert missing["message"] == "text: måste anges; count: måste anges"
    odd = client.get("/odd", headers=SWEDISH).json()  # no key of its own: the status's Swedish lead-in
    assert odd["message"] == "inte tillåtet: a rule nobody wrote words for"
    crash = client.get("/crash", headers=SWEDISH)
    assert crash.status_code == 500 and crash.json()["message"] == "internt fel: tjänsten kunde inte slutföra begäran"
    taken = client.get("/taken", headers=SWEDISH)
    assert taken.status_code == 409 and taken.json()["message"] == "samtalet är inte ditt"


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_path):
    with running_app(tmp_path_factory.mktemp("inprocess-error-language"), model_path) as running:
        yield running


def test_the_real_app_answers_staff_in_swedish(app):
    client, c = app
    me = client.get("/api/v1/auth/me", headers=SWEDISH)
    assert me.status_code == 401
    assert me.json()["detail"] == "log in first (the session is missing or has expired)"
    assert me.json()["message"] == "logga in först (sessionen saknas eller har gått ut)"
    login = client.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": "not-a-password"}, headers=SWEDISH
    )
    assert login.status_code == 401 and login.json()["message"] == "fel användarnamn eller lösenord"
    chat = client.get("/api/v1/chat/sessions/no-such-session", headers=SWEDISH)
    assert chat.status_code == 404 and chat.json()["message"] == "det finns ingen chatt med id 'no-such-session'"
    assert "message" not in client.get("/api/v1/auth/me").json()  # no Accept-Language: the shape as before
    admin = {**staff(client, c, "chef", role="admin"), **SWEDISH}
    hours = client.put(
        "/api/v1/admin/municipalities/default/opening-hours",
        headers=admin,
        json={"timezone": "Europe/Stockholm", "weekly": {"tue": [["25:00", "26:00"]]}},
    )
    assert hours.status_code == 422 and hours.json()["detail"] == "hour must be in 0..23"
    assert hours.json()["message"] == "timmen måste vara 0–23"
    assert hours.json()["errors"] == [
        {"field": "opening_hours", "message": "hour must be in 0..23", "text": "timmen måste vara 0–23"}
    ]
    backwards = client.get(
        "/api/v1/reports/summary", params={"date_from": "2026-03-02", "date_to": "2026-03-01"}, headers=admin
    )
    assert backwards.status_code == 422 and backwards.json()["message"] == "perioden slutar innan den börjar"


def test_a_locked_login_is_told_in_swedish_with_its_wait() -> None:
    from core.error_texts import localised

    detail = "too many failed logins: the account is locked for now; try again in 37 s"
    assert localised(429, detail, [], "sv", from_fields=False) == (
        "för många misslyckade inloggningar: kontot är låst en stund; försök igen om 37 s"
    )
    assert localised(429, detail, [], "en", from_fields=False) == detail


# --- the agent console's socket (handoff/console.py): the same words as the REST errors ----------------------

CONSOLE = "/api/v1/agent/ws"


def console_errors(client: TestClient, path: str, headers: dict, frames: list[dict]) -> dict[str, dict]:
    """The error frame each of `frames` (each with its own `ref`) gets back, by ref."""
    got: dict[str, dict] = {}
    with client.websocket_connect(path, headers=headers) as ws:
        for frame in frames:
            ws.send_json(frame)
        while len(got) < len(frames):
            event = ws.receive_json()
            if event.get("ref") in {f["ref"] for f in frames}:
                assert event["type"] == "error", event
                got[event["ref"]] = event
    return got


def test_the_console_socket_speaks_the_agents_language_and_keeps_the_english_detail(app):
    from tests.inprocess import add_municipality

    client, c = app
    agent = staff(client, c, "sigrid")
    add_municipality(c, "vby")
    waiting = client.post("/api/v1/chat/sessions", json={"language": "sv"}).json()["session_id"]
    client.post(f"/api/v1/chat/sessions/{waiting}/messages", json={"text": "Jag vill prata med en människa"})
    elsewhere = c.conversations.create("vby", "sv")["id"]
    frames = [
        {"type": "dance", "ref": "unknown"},
        {"type": "send", "ref": "gone", "conversation_id": "no-such-chat", "text": "Hej"},
        {"type": "send", "ref": "empty", "conversation_id": waiting, "text": "  "},
        {"type": "send", "ref": "not-mine", "conversation_id": waiting, "text": "Hej"},
        {"type": "close", "ref": "outcome", "conversation_id": waiting, "outcome": "maybe"},
        {"type": "status", "ref": "status", "status": "napping"},
        {"type": "transfer", "ref": "to", "conversation_id": waiting, "to_user_id": "anna"},
        {"type": "claim", "ref": "scope", "conversation_id": elsewhere},
    ]
    swedish = console_errors(client, f"{CONSOLE}?lang=sv", agent, frames)
    assert {ref: (e["detail"], e["message"]) for ref, e in swedish.items()} == {
        "unknown": ("unknown action 'dance'", "okänd åtgärd 'dance'"),
        "gone": ("no conversation 'no-such-chat'", "det finns inget samtal 'no-such-chat'"),
        "empty": ("the message is empty", "meddelandet är tomt"),
        "not-mine": (
            "only the agent who has the conversation can reply",
            "bara handläggaren som har samtalet kan svara",
        ),
        "outcome": (
            "the outcome must be one of resolved, referred, callback, unresolved, abandoned, spam",
            "utfallet måste vara ett av resolved, referred, callback, unresolved, abandoned, spam",
        ),
        "status": (
            "the status must be one of available, away, offline",
            "statusen måste vara en av available, away, offline",
        ),
        "to": ("'anna' is not an agent's id", "'anna' är inget id för en handläggare"),
        "scope": ("you do not work for the municipality 'vby'", "du arbetar inte för kommunen 'vby'"),
    }
    assert all(e["action"] == f["type"] for f in frames for e in [swedish[f["ref"]]])
    # Without ?lang= the handshake's Accept-Language decides; ?lang= (the console's choice) wins over it.
    one = [frames[0]]
    assert console_errors(client, CONSOLE, {**agent, **SWEDISH}, one)["unknown"]["message"] == "okänd åtgärd 'dance'"
    assert console_errors(client, f"{CONSOLE}?lang=en", {**agent, **SWEDISH}, one)["unknown"]["message"] == (
        "unknown action 'dance'"
    )
    for plain in ({}, {"accept-language": "ar"}):  # no language, or one the staff texts lack: English
        english = console_errors(client, CONSOLE, {**agent, **plain}, one)["unknown"]
        assert english["message"] == english["detail"] == "unknown action 'dance'"


def test_an_expired_console_session_is_told_in_the_agents_language() -> None:
    from core.errors import NotLoggedIn
    from handoff.console import error_frame

    expired = NotLoggedIn("the session has expired: log in again")
    assert error_frame(expired, "sv") == {
        "detail": "the session has expired: log in again",
        "message": "sessionen har gått ut: logga in igen",
    }
    assert error_frame(expired, "en")["message"] == "the session has expired: log in again"


def test_a_console_command_that_fails_unexpectedly_is_told_and_the_socket_stays(app, monkeypatch):
    """As REST's 500: an error frame in the agent's language, and the socket keeps answering (it used to
    close, and the console's kept reply was resent into the same failure on every reconnect)."""
    from handoff import console

    client, c = app
    agent = staff(client, c, "ture")

    async def broken(self, conversation_id: str, frame: dict) -> dict:
        raise KeyError("a bug")

    monkeypatch.setitem(console.COMMANDS, "peek", broken)
    frames = [{"type": "peek", "ref": "bug", "conversation_id": "x"}, {"type": "dance", "ref": "after"}]
    got = console_errors(client, f"{CONSOLE}?lang=sv", agent, frames)
    assert got["bug"]["detail"] == "internal error: the service could not complete the request"
    assert got["bug"]["message"] == "internt fel: tjänsten kunde inte slutföra begäran"
    assert got["after"]["message"] == "okänd åtgärd 'dance'"  # still answering


# --- every error the code raises has Swedish words -------------------------------------------------------------

PACKAGES = ("core", "knowledge", "conversations", "handoff", "learning", "insights", "kommunchatt")
INTERNAL = {  # errors about the model file or the retrieval settings: read by whoever runs the service
    "knowledge/embedding.py",
    "knowledge/settings.py",
    "knowledge/notices.py",
}
RAISED = {
    "Invalid",
    "NotFound",
    "Forbidden",
    "Conflicting",
    "TooLarge",
    "NotLoggedIn",
    "ApiError",
    "Conflict",
    "HTTPException",
    "CannedError",
    "ValueError",
    "LookupError",
}


def sample(node) -> str | None:
    """A literal or f-string as the code would raise it, with a made-up value for each {…}."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) else "'v1'" if v.conversion == ord("r") else "v1"
            for v in node.values
        )
    return None


def raised_texts() -> list[tuple[str, str]]:
    """(where, text) of every error text raised in the service's packages, field messages included."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where in INTERNAL:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                    continue
                func = node.exc.func
                if getattr(func, "id", getattr(func, "attr", None)) not in RAISED:
                    continue
                texts = [
                    sample(node.exc.args[-1] if getattr(func, "attr", func.id) == "HTTPException" else node.exc.args[0])
                ]
                texts += [
                    sample(d.values[d.keys.index(k)])
                    for d in ast.walk(node.exc)
                    if isinstance(d, ast.Dict)
                    for k in d.keys
                    if isinstance(k, ast.Constant) and k.value == "message"
                ]
                found += [(f"{where}:{node.lineno}", text) for text in texts if text]
    return found


def test_every_error_the_code_raises_has_swedish_words():
    """A new error needs an `error_*` key in core/service_texts.yml (sv and en); else the staff read the
    status's Swedish lead-in before English words ("felaktig begäran: …")."""
    from core.error_texts import translate

    found = raised_texts()
    assert len(found) > 100
    missing = [f"{where}: {text}" for where, text in found if translate(text, "sv") is None]
    assert not missing, "\n".join(missing)


def test_a_validators_value_error_is_translated_without_pydantics_lead_in():
    from core.error_texts import field_text

    message = "Value error, write the colour as #rrggbb, e.g. #0b4f8a"
    assert field_text(message, "sv") == "skriv färgen som #rrggbb, t.ex. #0b4f8a"
    assert field_text(message, "en") == message
    assert field_text('give at least one text, e.g. {"sv": "..."}', "sv") == 'ange minst en text, t.ex. {"sv": "..."}'

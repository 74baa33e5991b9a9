"""HTTP client for the Kommunchatt service used by the actions.

Every call has a short timeout: a slow or dead service must turn into an apology to the citizen
(`ServiceError`), never into a silent bot.
"""

import logging
import os
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = float(os.environ.get("KOMMUNCHATT_ACTION_TIMEOUT", "5"))


def _session(retry: Retry) -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


# One connection pool per kind of call to the service (keep-alive): a new TCP connection per call cost a
# connect on both sides, two or three times a turn. The actions run one at a time on the server's loop.
# When a service replica dies during a call, the balancer answers 502/503 (or the connection fails) although
# another replica could answer at once: urllib3 retries the call twice, 0.1 s and 0.2 s apart. Calls that are
# safe to repeat (reads, and writes the service does once per conversation) retry on those answers and on a
# connection the balancer closed without an answer (what it does when the replica died mid-request); a
# call-back request only when it never reached the service (a refused connection), or it could be left twice.
_http = _session(Retry(total=2, connect=2, read=2, status=2, backoff_factor=0.1, allowed_methods=None,
                       status_forcelist=(502, 503, 504), raise_on_status=False))
_http_once = _session(Retry(total=2, connect=2, read=0, status=0, backoff_factor=0.1, allowed_methods=None))


class ServiceError(Exception):
    """The service could not be reached or answered with an error."""


def _base_url() -> str:
    return os.environ.get("SERVICE_URL", "http://127.0.0.1:8000").rstrip("/")


def _post(path: str, payload: dict[str, Any], internal: bool = False, repeatable: bool = True) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if internal:
        headers["X-Internal-Token"] = os.environ.get("KOMMUNCHATT_INTERNAL_TOKEN", "")
    url = f"{_base_url()}{path}"
    try:
        http = _http if repeatable else _http_once
        response = http.post(url, json=payload, headers=headers, timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
        data = response.json() if response.content else {}
    except (requests.RequestException, ValueError) as exc:
        logger.warning("service call %s failed: %s", path, exc)
        raise ServiceError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ServiceError(f"unexpected response from {path}")
    return data


def _get(path: str, params: dict[str, str]) -> dict[str, Any]:
    url = f"{_base_url()}{path}"
    try:
        response = _http.get(url, params=params, timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
        data = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("service call %s failed: %s", path, exc)
        raise ServiceError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ServiceError(f"unexpected response from {path}")
    return data


def _session_path(session_id: str, what: str) -> str:
    return f"/api/v1/internal/sessions/{quote(session_id, safe='')}/{what}"


def answer(text: str, language: str | None, municipality: str | None, session_id: str) -> dict[str, Any]:
    """POST /api/v1/answer: the knowledge service's decision and ranked answers."""
    payload: dict[str, Any] = {"text": text, "session_id": session_id}
    if language:
        payload["language"] = language
    if municipality:
        payload["municipality"] = municipality
    data = _post("/api/v1/answer", payload)
    if data.get("decision") not in ("answer", "clarify", "handoff", "no_match"):
        raise ServiceError(f"unknown decision {data.get('decision')!r}")
    return data


def handoff(session_id: str, reason: str) -> dict[str, Any]:
    """Queue the conversation for a person (or learn that the contact centre is closed)."""
    return _post(_session_path(session_id, "handoff"), {"reason": reason}, internal=True)


def callback(session_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Leave a call-back request (outside opening hours)."""
    return _post(_session_path(session_id, "callback"), payload, internal=True, repeatable=False)


def set_language(session_id: str, language: str) -> dict[str, Any]:
    """Tell the service the citizen switched language."""
    return _post(_session_path(session_id, "language"), {"language": language}, internal=True)


def feedback(session_id: str, entry_id: str, helpful: bool) -> dict[str, Any]:
    """Record whether an answer helped."""
    return _post(_session_path(session_id, "feedback"), {"entry_id": entry_id, "helpful": helpful}, internal=True)


def topics(municipality: str | None, language: str) -> list[dict[str, Any]]:
    """The municipality's top topics with their answers in `language` (the widget shows the same)."""
    data = _get("/api/v1/chat/topics", {"municipality": municipality or "default", "language": language})
    return [t for t in data.get("topics") or [] if isinstance(t, dict) and t.get("id")]

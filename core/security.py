"""HTTP hardening as ASGI middleware: body size limits, security headers, and the Origin check on
cookie-authenticated writes and the staff WebSocket.

Pure ASGI (not BaseHTTPMiddleware) so a too-large body is refused before it is read: by its
Content-Length at once, or by counting a streamed body as it arrives, never buffering more than the
limit. The headers keep staff pages out of frames on other sites while the citizen widget, a script
that runs on the municipality's own pages, stays loadable from anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "kommunchatt_session"
MAX_BODY_BYTES = 1_000_000
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# Staff pages: only this origin's own scripts and styles, never framed.
STAFF_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The OpenAPI page (Swagger UI) starts itself with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# The demo page hosts the widget, which brings its own <style> into its shadow root.
DEMO_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# JSON and everything else: nothing to run, nothing to frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'"

DOCS_PATHS = ("/docs", "/redoc")
STAFF_PATHS = ("/agent", "/admin", "/staff", "/static/agent/", "/static/admin/", "/static/staff/")


def _json_response(status: int, detail: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *extra,
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    """Refuses request bodies over `default` bytes (or `larger[path prefix]`) with 413."""

    def __init__(self, app: ASGIApp, default: int = MAX_BODY_BYTES, larger: dict[str, int] | None = None):
        self.app, self.default, self.larger = app, default, larger or {}

    def limit_for(self, path: str) -> int:
        return next((n for prefix, n in self.larger.items() if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            for message in _json_response(413, f"the request body is larger than {limit:,} bytes"):
                await send(message)
            return None
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a streamed body without (or lying about) its length
                    raise HTTPException(413, f"the request body is larger than {limit:,} bytes")
            return message

        return await self.app(scope, counting_receive, send)


def request_is_https(headers: dict[bytes, bytes], scheme: str) -> bool:
    """HTTPS directly, or behind a proxy that says so (X-Forwarded-Proto). Trusting the header is safe for
    what it decides here: a client that lies only gets cookies its own browser will not send back over HTTP."""
    forwarded = headers.get(b"x-forwarded-proto", b"").decode("latin-1").split(",")[0].strip().lower()
    return scheme in ("https", "wss") or forwarded == "https"


def cookie_secure(request: Request) -> bool:
    """Whether a session cookie set in answer to `request` must be `Secure`."""
    return request_is_https(dict(request.scope["headers"]), request.url.scheme)


def _policy(path: str) -> str:
    if path.startswith(DOCS_PATHS):
        return DOCS_CSP
    if path.startswith(STAFF_PATHS):
        return STAFF_CSP
    if path == "/":
        return DEMO_CSP
    return API_CSP


class SecurityHeaders:
    """CSP with frame-ancestors 'none', X-Frame-Options, nosniff, Referrer-Policy on every response;
    HSTS when the request came over HTTPS."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        extra = [
            (b"content-security-policy", _policy(scope["path"]).encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (
                b"referrer-policy",
                b"strict-origin-when-cross-origin" if scope["path"] == "/widget.js" else b"same-origin",
            ),
        ]
        if request_is_https(headers, scope.get("scheme", "http")):
            extra.append((b"strict-transport-security", b"max-age=31536000"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in names)]
            await send(message)

        return await self.app(scope, receive, with_headers)


def _origin_of(value: str) -> str | None:
    parts = urlsplit(value)
    return parts.netloc.lower() if parts.scheme and parts.netloc else None


def same_origin(headers: dict[bytes, bytes], allowed: Iterable[str] = ()) -> bool:
    """Whether the request's Origin (or, lacking it, its Referer) is this service's own host or an allowed
    one. A request with neither comes from no browser page (curl, a script), so no forged page either."""
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin:
        referer = headers.get(b"referer", b"").decode("latin-1")
        if not referer:
            return True
        origin = referer
    if origin == "null":
        return False
    own = {headers.get(b"host", b"").decode("latin-1").lower()}
    forwarded = headers.get(b"x-forwarded-host", b"").decode("latin-1").split(",")[0].strip().lower()
    if forwarded:
        own.add(forwarded)
    theirs = _origin_of(origin)
    return theirs is not None and (theirs in own or theirs in {_origin_of(a) for a in allowed})


def _cookie_authenticated(headers: dict[bytes, bytes]) -> bool:
    """The staff session cookie is the credential (no bearer token): what a forged page could use."""
    if headers.get(b"authorization", b"").lower().startswith(b"bearer "):
        return False
    return SESSION_COOKIE.encode() + b"=" in headers.get(b"cookie", b"")


class OriginCheck:
    """Cookie-authenticated writes and WebSockets must come from this service's own pages (or `allowed`
    origins): a page elsewhere cannot act with a logged-in staff member's cookie (CSRF, WebSocket
    hijacking). The SameSite=Strict cookie already stops most of it; this holds without it."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()):
        self.app, self.allowed = app, tuple(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        checked = scope["type"] == "websocket" or scope.get("method") in UNSAFE_METHODS
        if checked and _cookie_authenticated(headers) and not same_origin(headers, self.allowed):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4403, "reason": "cross-origin staff connection"})
                return None
            for message in _json_response(
                403,
                "cross-origin request refused: use the staff pages of this service (the Origin header does not match)",
            ):
                await send(message)
            return None
        return await self.app(scope, receive, send)

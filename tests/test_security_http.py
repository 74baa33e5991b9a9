"""core/security.py and core/ratelimit.py over real HTTP (uvicorn in a thread): body limits answer 413 at
once without reading the body, headers are present, cross-origin cookie writes are refused, and limits
answer 429 with Retry-After."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, Request

from core.ratelimit import RateLimits, limit_messages, limit_new_sessions
from core.security import BodyLimit, OriginCheck, SecurityHeaders


def small_app() -> FastAPI:
    app = FastAPI()
    app.state.limits = RateLimits(overrides={"session_per_address": "3/minute", "message_per_session": "4/minute"})

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.post("/api/v1/admin/import")
    async def big(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.get("/ping")
    async def ping() -> dict:
        return {"ok": True}

    @app.post("/sessions", dependencies=[Depends(limit_new_sessions())])
    async def new_session() -> dict:
        return {}

    @app.post("/sessions/{session_id}/messages", dependencies=[Depends(limit_messages())])
    async def message(session_id: str) -> dict:
        return {"session_id": session_id}

    app.add_middleware(OriginCheck)
    app.add_middleware(BodyLimit, larger={"/api/v1/admin/import": 5_000_000})
    app.add_middleware(SecurityHeaders)
    return app


@pytest.fixture(scope="module")
def base_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(small_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_a_100_mb_body_is_refused_at_once_and_others_are_served(base_url):
    """The 100 MB POST that froze the service for 24 s: 413 from its Content-Length, body never read."""

    async def scenario():
        async def huge():
            chunk = b"x" * 1_000_000
            for _ in range(100):
                yield chunk
                await asyncio.sleep(0)

        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            started = time.perf_counter()
            big = asyncio.create_task(
                client.post("/echo", content=huge(), headers={"content-length": str(100_000_000)})
            )
            pings = [await client.get("/ping") for _ in range(5)]
            try:
                response = await big
                status = response.status_code
            except httpx.HTTPError:  # the server may close the connection while the client still sends
                status = 413
            return status, time.perf_counter() - started, pings

    status, seconds, pings = asyncio.run(scenario())
    assert status == 413
    assert seconds < 2
    assert all(p.status_code == 200 for p in pings)


def test_a_streamed_body_without_length_is_cut_at_the_limit(base_url):
    """Chunked, no Content-Length: the 413 arrives once ~1 MB has come in, while the client still sends."""
    import select

    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"y" * 100_000
    sent, answer = 0, b""
    started = time.perf_counter()
    try:
        while sent < 100_000_000 and not answer:
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sent += len(chunk)
            if select.select([sock], [], [], 0.01)[0]:
                answer = sock.recv(4096)
    except OSError:  # the server closed the connection after answering
        answer = answer or sock.recv(4096)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent <= 3_000_000  # answered after about the limit, not after the 100 MB
    assert time.perf_counter() - started < 2


def test_imports_may_be_larger(base_url):
    body = b"z" * 3_000_000
    assert httpx.post(f"{base_url}/api/v1/admin/import", content=body).json() == {"bytes": 3_000_000}
    assert httpx.post(f"{base_url}/echo", content=body).status_code == 413
    assert httpx.post(f"{base_url}/echo", content=b"z" * 900_000).status_code == 200


def test_security_headers(base_url):
    response = httpx.get(f"{base_url}/ping")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"]
    assert "strict-transport-security" not in response.headers
    behind_tls = httpx.get(f"{base_url}/ping", headers={"x-forwarded-proto": "https"})
    assert behind_tls.headers["strict-transport-security"].startswith("max-age=")


def test_cookie_writes_must_come_from_our_own_pages(base_url):
    cookie = {"cookie": "kommunchatt_session=abc"}
    host = base_url.removeprefix("http://")
    assert httpx.post(f"{base_url}/echo", headers={**cookie, "origin": "https://evil.example"}).status_code == 403
    assert httpx.post(f"{base_url}/echo", headers={**cookie, "origin": "null"}).status_code == 403
    assert httpx.post(f"{base_url}/echo", headers={**cookie, "referer": "https://evil.example/x"}).status_code == 403
    assert httpx.post(f"{base_url}/echo", headers={**cookie, "origin": f"http://{host}"}).status_code == 200
    # A bearer token or no cookie: nothing a forged page could send.
    assert httpx.post(f"{base_url}/echo", headers={"origin": "https://evil.example"}).status_code == 200
    assert (
        httpx.post(
            f"{base_url}/echo", headers={**cookie, "authorization": "Bearer t", "origin": "https://evil.example"}
        ).status_code
        == 200
    )
    assert httpx.get(f"{base_url}/ping", headers={**cookie, "origin": "https://evil.example"}).status_code == 200


def test_session_and_message_limits_answer_429_with_retry_after(base_url):
    statuses = [httpx.post(f"{base_url}/sessions").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    started = time.perf_counter()
    replies = [httpx.post(f"{base_url}/sessions/s1/messages") for _ in range(6)]
    assert [r.status_code for r in replies] == [200, 200, 200, 200, 429, 429]
    assert int(replies[-1].headers["retry-after"]) >= 1
    assert time.perf_counter() - started < 2  # refusals are immediate
    assert httpx.post(f"{base_url}/sessions/s2/messages").status_code == 200  # another session is not limited


def test_login_backoff_then_lockout():
    async def scenario():
        limits = RateLimits(overrides={"login_failure_per_user": "6/15minutes"})
        delays = []
        for _ in range(6):
            started = time.perf_counter()
            await limits.before_login("anna", "10.0.0.1")
            delays.append(time.perf_counter() - started)
            await limits.login_failed("anna", "10.0.0.1")
        with pytest.raises(Exception) as locked:
            await limits.before_login("ANNA", "10.0.0.2")
        await limits.before_login("bertil", "10.0.0.1")  # another user from the same address may still try
        return delays, locked.value

    delays, locked = asyncio.run(scenario())
    assert delays[0] < 0.1 and delays[2] < 0.1
    assert delays[3] >= 0.25 and delays[4] >= 0.5 and delays[5] >= 1.0
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 60

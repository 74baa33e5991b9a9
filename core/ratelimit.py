"""Rate limits (the `limits` library, moving windows): per chat session and per client address for
messages, new sessions and queue entries; failed logins per user and per address (back-off, then lockout).

The counters live in Redis when REDIS_URL is set (shared by every service process), else in memory.
Each limit can be changed with KOMMUNCHATT_LIMIT_<NAME>, e.g. KOMMUNCHATT_LIMIT_MESSAGE_PER_SESSION="30/minute".
A refusal is 429 with Retry-After, so a widget or script knows when to try again.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

DEFAULTS = {
    # A person types one message every few seconds; 20 a minute leaves room for quick button clicks.
    "message_per_session": "20/minute;300/hour",
    # Many citizens may share one address (a library, an office behind NAT).
    "message_per_address": "120/minute",
    "session_per_address": "20/minute;300/hour",
    "queue_per_session": "5/hour",
    "queue_per_address": "5/minute;30/hour",
    # Failed logins: back-off from the 3rd failure, lockout at the limit until the window has room again.
    "login_failure_per_user": "10/15minutes",
    "login_failure_per_address": "30/15minutes",
}
BACKOFF_FROM_FAILURE = 3
MAX_BACKOFF_SECONDS = 4.0


def client_address(request: Request) -> str:
    """The caller's address (uvicorn takes it from X-Forwarded-For only behind trusted proxies)."""
    return request.client.host if request.client else "unknown"


class RateLimits:
    def __init__(self, storage: Storage | None = None, overrides: dict[str, str] | None = None):
        self.storage = storage or MemoryStorage()
        self.limiter = MovingWindowRateLimiter(self.storage)
        texts = {**DEFAULTS, **(overrides or {})}
        self.items: dict[str, list[RateLimitItem]] = {name: parse_many(text) for name, text in texts.items()}
        self._addresses: OrderedDict[str, str] = OrderedDict()  # session -> its last client address

    @classmethod
    def from_env(cls, redis_url: str | None = None) -> RateLimits:
        overrides = {
            name: os.environ[f"KOMMUNCHATT_LIMIT_{name.upper()}"]
            for name in DEFAULTS
            if os.environ.get(f"KOMMUNCHATT_LIMIT_{name.upper()}")
        }
        storage = storage_from_string(f"async+{redis_url}") if redis_url else MemoryStorage()
        return cls(storage, overrides)

    async def retry_after(self, name: str, key: str) -> int | None:
        """Seconds until `key` may act again under limit `name`, or None if it may now (nothing counted)."""
        for item in self.items[name]:
            if not await self.limiter.test(item, name, key):
                stats = await self.limiter.get_window_stats(item, name, key)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def hit(self, name: str, key: str) -> int | None:
        """Count one action; None if allowed, else the seconds to wait (then nothing is counted)."""
        wait = await self.retry_after(name, key)
        if wait is not None:
            return wait
        for item in self.items[name]:
            await self.limiter.hit(item, name, key)
        return None

    async def check(self, name: str, key: str, what: str) -> None:
        """Count one action or refuse it with 429 and Retry-After."""
        wait = await self.hit(name, key)
        if wait is not None:
            raise too_many(what, wait)

    async def failures(self, name: str, key: str) -> int:
        item = self.items[name][0]
        stats = await self.limiter.get_window_stats(item, name, key)
        return item.amount - stats.remaining

    async def clear(self, name: str, key: str) -> None:
        for item in self.items[name]:
            await self.limiter.clear(item, name, key)

    # --- which address a session's messages come from (for queue entries, asked by the action server) --

    def remember_address(self, session_id: str, address: str) -> None:
        self._addresses[session_id] = address
        self._addresses.move_to_end(session_id)
        while len(self._addresses) > 100_000:
            self._addresses.popitem(last=False)

    def address_of(self, session_id: str) -> str | None:
        return self._addresses.get(session_id)

    # --- logins ------------------------------------------------------------------------------------

    async def before_login(self, username: str, address: str) -> None:
        """Refuse a locked-out user or address (429); wait longer after each failure past the third."""
        for name, key in (("login_failure_per_user", username.lower()), ("login_failure_per_address", address)):
            wait = await self.retry_after(name, key)
            if wait is not None:
                raise too_many("too many failed logins: the account is locked for now", wait)
        failures = await self.failures("login_failure_per_user", username.lower())
        if failures >= BACKOFF_FROM_FAILURE:
            await asyncio.sleep(min(MAX_BACKOFF_SECONDS, 0.25 * 2 ** (failures - BACKOFF_FROM_FAILURE)))

    async def login_failed(self, username: str, address: str) -> None:
        await self.hit("login_failure_per_user", username.lower())
        await self.hit("login_failure_per_address", address)

    async def login_succeeded(self, username: str) -> None:
        await self.clear("login_failure_per_user", username.lower())


def too_many(what: str, retry_after: int) -> HTTPException:
    return HTTPException(429, f"{what}; try again in {retry_after} s", headers={"Retry-After": str(retry_after)})


def limits_of(request: Request) -> RateLimits:
    """The app's limiter (put on `app.state` by create_app, before any request): the dependencies here
    and `Limits` are the only readers."""
    return request.app.state.limits


Limits = Annotated[RateLimits, Depends(limits_of)]


def limit_new_sessions() -> Callable:
    """A route dependency: new chat sessions per client address."""

    async def dependency(request: Request) -> None:
        await limits_of(request).check(
            "session_per_address", client_address(request), "too many new chat sessions from this address"
        )

    return dependency


def limit_messages() -> Callable:
    """A route dependency for `/sessions/{session_id}/...`: messages per session and per client address."""

    async def dependency(request: Request, session_id: str) -> None:
        limits, address = limits_of(request), client_address(request)
        await limits.check("message_per_address", address, "too many messages from this address")
        await limits.check("message_per_session", session_id, "too many messages in this chat")
        limits.remember_address(session_id, address)

    return dependency


async def check_queue_entry(request: Request, session_id: str) -> None:
    """Queue entries per session, and per the address the session's messages come from (when this process
    saw them: in a multi-process install each process counts its own)."""
    limits = limits_of(request)
    await limits.check("queue_per_session", session_id, "this chat has asked for a person too often")
    address = limits.address_of(session_id)
    if address:
        await limits.check("queue_per_address", address, "too many requests for a person from this address")

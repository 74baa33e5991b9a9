"""Live events (new messages, state changes, queue changes) for WebSocket listeners.

In-process fan-out by topic; with `REDIS_URL` set, events go through Redis pub/sub so a citizen on
one service process and an agent on another see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)


class EventHub:
    def __init__(self, redis_url: str | None = None):
        self._subscribers: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._redis_url = redis_url
        self._redis = None
        self._listener: asyncio.Task | None = None
        self._origin = uuid.uuid4().hex  # so a process does not deliver its own events twice

    async def start(self) -> None:
        if not self._redis_url:
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self._redis_url)
        pubsub = self._redis.pubsub()
        await pubsub.psubscribe("kommunchatt:*")
        self._listener = asyncio.create_task(self._listen(pubsub))

    async def stop(self) -> None:
        if self._listener:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis:
            await self._redis.aclose()

    async def _listen(self, pubsub) -> None:
        async for item in pubsub.listen():
            if item.get("type") != "pmessage":
                continue
            envelope = json.loads(item["data"])
            if envelope["origin"] != self._origin:
                self._deliver(envelope["topic"], envelope["event"])

    def _deliver(self, topic: str, event: dict) -> None:
        for queue in list(self._subscribers.get(topic, ())):
            queue.put_nowait(event)

    async def publish(self, topic: str, event: dict) -> None:
        self._deliver(topic, event)
        if self._redis:
            envelope = {"origin": self._origin, "topic": topic, "event": event}
            await self._redis.publish(f"kommunchatt:{topic}", json.dumps(envelope, ensure_ascii=False))

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue]:
        queue: asyncio.Queue = asyncio.Queue()
        for topic in topics:
            self._subscribers[topic].add(queue)
        try:
            yield queue
        finally:
            for topic in topics:
                self._subscribers[topic].discard(queue)

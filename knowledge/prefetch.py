"""The knowledge answer computed while Rasa reads the message.

A citizen's question travels service → Rasa → action server → service (`/api/v1/answer`), so the
answer (language detection, encoding, search, decision) used to start only after Rasa's own work.
The service already knows the text, language and municipality when it hands the message to Rasa:
it starts the answer then, on a thread, and the action's request takes the result. The two overlap
instead of adding up (issue 18: "cut what a hop does twice").

Only an exact match is taken: the same conversation, text, language, municipality and number of
answers, within `ttl_s`. Anything else (a request that reaches another replica, a greeting that
never asks for an answer, `explain`) computes as before; an unused answer is dropped after `ttl_s`.

Off unless `KOMMUNCHATT_ANSWER_PREFETCH=1`: on the shared 2-core machine it did not measurably shorten a
first turn (bench/dialogue.py --only first, p50 121/144 ms on against 120/68 ms off, load 4-8), and
behind a balancer the action's request reaches the other replica half the time, so the work is done
twice: tests/test_replicas.py's turns after a kill were slower with it (worst 5.1-6.0 s, 11-15 resends)
than without (3.6 s, 1 resend). It can only pay where the service has a core of its own beside Rasa and
runs as one process (not measured here).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from core.metrics import ANSWER_PREFETCH as PREFETCHED

DEFAULT_TOP_K = 3  # what `/api/v1/answer` returns unless asked (the action server never asks)
ENABLED_ENV = "KOMMUNCHATT_ANSWER_PREFETCH"  # "1" turns it on; off by default (module docstring)

Key = tuple[str, str, str, str, int]


class AnswerPrefetch:
    """Answers started ahead of the action's request, per process, keyed by what the request will ask."""

    def __init__(self, answer: Callable[..., dict], ttl_s: float = 30.0, max_items: int = 2000):
        self._answer = answer
        self.ttl_s, self.max_items = ttl_s, max_items
        self._items: dict[Key, tuple[float, asyncio.Future]] = {}
        self.enabled = os.environ.get(ENABLED_ENV, "0").strip().lower() in ("1", "true", "yes", "on")

    def start(self, session_id: str, text: str, language: str, municipality: str, top_k: int = DEFAULT_TOP_K) -> None:
        """Start answering on the event loop's thread pool (call from a coroutine)."""
        self._expire()
        key = (session_id, text, language, municipality, top_k)
        if not self.enabled or len(self._items) >= self.max_items or key in self._items:  # kept or started already
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, self._run, text, language, municipality, top_k)
        future.add_done_callback(_quiet)
        self._items[key] = (time.monotonic() + self.ttl_s, future)

    def keep(self, session_id: str, text: str, language: str, municipality: str, result: dict,
             top_k: int = DEFAULT_TOP_K) -> None:
        """An answer computed already (conversations/direct.py's, for a turn it leaves to Rasa): the action's
        request takes it instead of computing it again. Kept even when prefetching is off: it costs nothing."""
        self._expire()
        if len(self._items) >= self.max_items:
            return
        future = asyncio.get_running_loop().create_future()
        future.set_result(result)
        self._items[(session_id, text, language, municipality, top_k)] = (time.monotonic() + self.ttl_s, future)

    async def take(
        self, session_id: str | None, text: str, language: str | None, municipality: str, top_k: int
    ) -> dict | None:
        """The answer started for exactly this request, or None (then the caller computes it)."""
        if not session_id or not language:
            return None
        item = self._items.pop((session_id, text, language, municipality, top_k), None)
        if item is None or item[0] < time.monotonic():
            if item is not None:
                PREFETCHED.labels("unused").inc()
            return None
        try:
            result = await item[1]
        except Exception:  # noqa: BLE001 - the caller computes it again and sees the error itself
            return None
        PREFETCHED.labels("taken").inc()
        return result

    def _run(self, text: str, language: str, municipality: str, top_k: int) -> dict:
        return self._answer(text, language=language, municipality=municipality, top_k=top_k)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, (deadline, _) in self._items.items() if deadline < now]:
            del self._items[key]
            PREFETCHED.labels("unused").inc()


def _quiet(future: asyncio.Future) -> None:
    """An answer nobody takes must not log 'exception was never retrieved'."""
    if not future.cancelled():
        future.exception()

"""Full-turn latency through the chat API (service → Rasa → actions → service → reply).

Starts the real three processes on free ports with a temporary data dir (SQLite, or `DATABASE_URL`),
then runs conversations at 1, 20 and 100 concurrent sessions and prints p50/p95 per level, plus the
Rasa training time (measured only when the training data changed, else reported as cached).

    .venv/bin/python bench/dialogue.py [--turns 5] [--levels 1,20,100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e import running_system  # noqa: E402 - after the path set-up

TURNS = {
    "sv": ["Hej!", "När hämtas soporna?", "hur ansöker jag om förskola", "bygglov altan??", "tack, hej då"],
    "en": ["Hello", "When is my bin emptied?", "How do I get a parking permit?", "thanks", "bye"],
    "ar": ["مرحبا", "متى تأتي سيارة القمامة", "كيف أسجل في المدرسة", "شكرا", "مع السلامة"],
}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def conversation(
    client: httpx.AsyncClient, index: int, turns: int, think: float, latencies: list[float], errors: list[str]
):
    """One citizen: `turns` messages, pausing about `think` seconds between them (a person reads and types)."""
    pause = random.Random(index)
    language = list(TURNS)[index % len(TURNS)]
    response = await client.post("/api/v1/chat/sessions", json={"language": language})
    session = response.json()["session_id"]
    for turn in range(turns):
        if think:
            await asyncio.sleep(pause.expovariate(1 / think))
        text = TURNS[language][turn % len(TURNS[language])]
        started = time.perf_counter()
        reply = await client.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": text})
        latencies.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200 or not reply.json()["messages"]:
            errors.append(f"{reply.status_code} {text}")


async def level(base_url: str, sessions: int, turns: int, think: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=sessions + 5)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(conversation(client, i, turns, think, latencies, errors) for i in range(sessions)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--levels", default="1,20,100")
    parser.add_argument(
        "--think", default="0,3", help="mean seconds between a citizen's turns; 0 = back to back (comma-separated)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        with running_system(Path(tmp), os.environ.get("DATABASE_URL")) as system:
            print(f"system ready in {time.monotonic() - started:.1f} s (models prepared or cached)")
            asyncio.run(level(system.service_url, 2, 2, 0))  # warm-up
            header = ("think s", "sessions", "turns", "p50 ms", "p95 ms", "max ms", "errors", "turns/s")
            print(f"load average {os.getloadavg()[0]:.1f}\n" + " ".join(f"{h:>8}" for h in header))
            for think in (float(x) for x in args.think.split(",")):
                for sessions in (int(x) for x in args.levels.split(",")):
                    t0 = time.perf_counter()
                    latencies, errors = asyncio.run(level(system.service_url, sessions, args.turns, think))
                    rate = len(latencies) / (time.perf_counter() - t0)
                    print(f"{think:>8.0f} {sessions:>8} {len(latencies):>8} {statistics.median(latencies):>8.0f} "
                          f"{pct(latencies, 0.95):>8.0f} {max(latencies):>8.0f} {len(errors):>8} {rate:>8.1f}")


if __name__ == "__main__":
    main()

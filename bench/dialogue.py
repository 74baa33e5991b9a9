"""Full-turn latency through the chat API (service → Rasa's NLU → a direct turn, or Rasa's whole turn → actions
→ service → reply; `KOMMUNCHATT_DIRECT_ANSWERS=0` for Rasa's whole turn every time).

Starts the real three processes on free ports with a temporary data dir (SQLite, or `DATABASE_URL`),
then measures (issue 18):
- p50/p95 and turns/s at 1, 20 and 100 concurrent sessions, back to back and with a think time; the
  highest turns/s of the back-to-back levels is the saturation figure;
- one long conversation (`--long 200` messages back to back): median of messages 1-10 vs 91-100 vs
  191-200, so a turn whose cost grows with the conversation shows as a ratio above 1;
- a first turn (a new session's first question) vs `/api/v1/answer` alone for the same questions;
- where a turn's CPU goes: CPU ms per turn of each process (service, Rasa, actions, with their child
  processes) over a back-to-back run of `--cpu-sessions` sessions; on 2 cores, 50 turns/s needs ≤ 40.

    .venv/bin/python bench/dialogue.py [--turns 5] [--levels 1,20,100] [--think 0,3] [--long 200] [--first 20]
    .venv/bin/python bench/dialogue.py --only long,first     # skip the load levels
    .venv/bin/python bench/dialogue.py --only cpu            # CPU per turn and process
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


SETTLE_S = 10.0


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


async def long_conversation(base_url: str, messages: int) -> list[float]:
    """One citizen asking one question after another, back to back: the latency of each message."""
    questions = [t for t in TURNS["sv"][1:4]] + ["hur länge gäller ett parkeringstillstånd", "var lämnar jag grovsopor"]
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        session = (await client.post("/api/v1/chat/sessions", json={"language": "sv"})).json()["session_id"]
        for i in range(messages):
            started = time.perf_counter()
            reply = await client.post(
                f"/api/v1/chat/sessions/{session}/messages", json={"text": questions[i % len(questions)]}
            )
            latencies.append((time.perf_counter() - started) * 1000)
            reply.raise_for_status()
    return latencies


FIRST_QUESTIONS = [
    ("sv", "När hämtas soporna?"),
    ("sv", "hur ansöker jag om förskola"),
    ("sv", "bygglov altan??"),
    ("en", "How do I get a parking permit?"),
    ("en", "When is my bin emptied?"),
    ("ar", "كيف أسجل في المدرسة"),
    ("sv", "var lämnar jag grovsopor"),
    ("sv", "hur söker jag ekonomiskt bistånd"),
]


async def first_turns(base_url: str, rounds: int) -> tuple[list[float], list[float]]:
    """The same questions as a new session's first message and as `/api/v1/answer` alone, interleaved."""
    chat: list[float] = []
    answer: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for i in range(rounds):
            language, text = FIRST_QUESTIONS[i % len(FIRST_QUESTIONS)]
            started = time.perf_counter()
            (await client.post("/api/v1/answer", json={"text": text, "language": language})).raise_for_status()
            answer.append((time.perf_counter() - started) * 1000)
            session = (await client.post("/api/v1/chat/sessions", json={"language": language})).json()["session_id"]
            started = time.perf_counter()
            reply = await client.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": text})
            chat.append((time.perf_counter() - started) * 1000)
            reply.raise_for_status()
    return chat, answer


def report_long(latencies: list[float]) -> None:
    first = statistics.median(latencies[:10])
    print(f"\nlong conversation, {len(latencies)} messages back to back (load {os.getloadavg()[0]:.1f})")
    for start in (0, 40, 90, 140, 190):
        window = latencies[start : start + 10]
        if window:
            median = statistics.median(window)
            print(f"  messages {start + 1:>3}-{start + len(window):<3} median {median:6.0f} ms  x{median / first:.2f}")
    for start in (90, 190):
        if len(latencies) >= start + 10:
            median = statistics.median(latencies[start : start + 10])
            print(f"  message {start + 10} vs 1: x{median / first:.2f} (median of 10 vs first 10)")


def report_first(chat: list[float], answer: list[float]) -> None:
    print(f"\nfirst turn vs /api/v1/answer alone, {len(chat)} questions (load {os.getloadavg()[0]:.1f})")
    for name, values in (("first chat turn", chat), ("/api/v1/answer", answer)):
        print(f"  {name:<16} p50 {statistics.median(values):6.0f} ms  p95 {pct(values, 0.95):6.0f} ms")
    print(
        f"  ratio p50 x{statistics.median(chat) / statistics.median(answer):.1f}  "
        f"p95 x{pct(chat, 0.95) / pct(answer, 0.95):.1f}"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its living descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, seconds)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    family = {pid}
    for _ in range(5):  # a few generations are enough (Rasa's, the supervisor's)
        family |= {p for p, (parent, _) in stats.items() if parent in family}
    return sum(stats[p][1] for p in family if p in stats)


def report_cpu(system, sessions: int, turns: int) -> None:
    """CPU ms per turn of each part, over one back-to-back level."""
    pids = {name: proc.pid for name, proc in system.children().items()}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.perf_counter()
    latencies, errors = asyncio.run(level(system.service_url, sessions, turns, 0))
    wall = time.perf_counter() - t0
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    n = len(latencies)
    print(f"\nCPU per turn, {sessions} sessions x {turns} turns back to back: {n / wall:.1f} turns/s, "
          f"{len(errors)} errors (load {os.getloadavg()[0]:.1f})")
    for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<8} {seconds * 1000 / n:6.1f} ms/turn  ({seconds / wall * 100:4.0f} % of a core)")
    total = sum(used.values())
    print(f"  {'total':<8} {total * 1000 / n:6.1f} ms/turn  -> at most {os.cpu_count() * n / total:.0f} turns/s "
          f"on {os.cpu_count()} cores")


def report_levels(base_url: str, args: argparse.Namespace) -> None:
    header = ("think s", "sessions", "turns", "p50 ms", "p95 ms", "max ms", "errors", "turns/s")
    print(f"load average {os.getloadavg()[0]:.1f}\n" + " ".join(f"{h:>8}" for h in header))
    saturation = 0.0
    for think in (float(x) for x in args.think.split(",")):
        for sessions in (int(x) for x in args.levels.split(",")):
            # Each level starts on a settled system: an overloaded level's answers that came after "the bot is
            # slow" are still being stored for a few seconds after it ends.
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            latencies, errors = asyncio.run(level(base_url, sessions, args.turns, think))
            rate = len(latencies) / (time.perf_counter() - t0)
            saturation = max(saturation, rate) if think == 0 else saturation
            print(
                f"{think:>8.0f} {sessions:>8} {len(latencies):>8} {statistics.median(latencies):>8.0f} "
                f"{pct(latencies, 0.95):>8.0f} {max(latencies):>8.0f} {len(errors):>8} {rate:>8.1f}"
            )
    print(f"turns/s at saturation (best back-to-back level): {saturation:.1f} (load {os.getloadavg()[0]:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--levels", default="1,20,100")
    parser.add_argument(
        "--think", default="0,3", help="mean seconds between a citizen's turns; 0 = back to back (comma-separated)"
    )
    parser.add_argument("--long", type=int, default=200, help="messages in the one long conversation (0 = skip)")
    parser.add_argument("--first", type=int, default=24, help="first turns vs /api/v1/answer (0 = skip)")
    parser.add_argument("--cpu-sessions", type=int, default=20, help="sessions of the CPU-per-turn run")
    parser.add_argument("--only", default="levels,long,first,cpu", help="which parts to run (comma-separated)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        with running_system(Path(tmp), os.environ.get("DATABASE_URL")) as system:
            print(f"system ready in {time.monotonic() - started:.1f} s (models prepared or cached)")
            asyncio.run(level(system.service_url, 2, 2, 0))  # warm-up
            if "first" in parts and args.first:
                report_first(*asyncio.run(first_turns(system.service_url, args.first)))
            if "long" in parts and args.long:
                report_long(asyncio.run(long_conversation(system.service_url, args.long)))
            if "levels" in parts:
                report_levels(system.service_url, args)
            if "cpu" in parts:
                report_cpu(system, args.cpu_sessions, max(args.turns, 10))


if __name__ == "__main__":
    main()

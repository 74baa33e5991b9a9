"""Benchmark of the agent side: N citizens and M agents over WebSockets on loopback.

Starts `kommunchatt serve` on a fresh data dir (SQLite unless --database-url), creates M agents with
room for all chats, hands N conversations over, and lets every citizen write at --interval while the
agents answer every message. Measures delivery latency (sent → received over the other side's
WebSocket) both ways, and checks that nothing was lost or duplicated. `--ramp` raises N stage by stage
to find where the p99 target (--target-ms) or delivery breaks. `--restart` kills the service in the
middle of the conversations, starts it again, and checks that nothing was lost.

    .venv/bin/python bench/handoff.py                       # 500 citizens, 50 agents
    .venv/bin/python bench/handoff.py --ramp 250,500,750,1000,1500
    .venv/bin/python bench/handoff.py --restart --citizens 100 --agents 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
KOMMUNCHATT = str(Path(sys.executable).parent / "kommunchatt")
PASSWORD = "bench password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, database_url: str | None, redis_url: str | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {**os.environ, "KOMMUNCHATT_DATA_DIR": str(data_dir), "KOMMUNCHATT_PORT": str(self.port),
                    "RASA_URL": f"http://127.0.0.1:{free_port()}", "KOMMUNCHATT_AGENT_HEARTBEAT_S": "2"}
        self.env.setdefault("KOMMUNCHATT_MODEL_PATH", str(ROOT / "var" / "models" / "multilingual-e5-small"))
        for key, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
            if value:
                self.env[key] = value
            else:
                self.env.pop(key, None)
        self.process = None

    def start(self) -> float:
        began = time.time()
        log = open(self.data_dir / "service.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen([KOMMUNCHATT, "serve"], env=self.env, stdout=log, stderr=log)
        while time.time() - began < 300:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=3).json().get("database"):
                    return time.time() - began
            if self.process.poll() is not None:
                sys.exit(f"the service exited; see {self.data_dir / 'service.log'}")
            time.sleep(0.2)
        sys.exit("the service did not come up")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @property
    def token(self) -> str:
        return (self.data_dir / "internal-token").read_text().strip()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1)] if ordered else float("nan")


class Stats:
    def __init__(self):
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.received: dict[str, Counter] = defaultdict(Counter)  # direction -> key -> times received
        self.sent: dict[str, set] = defaultdict(set)
        self.errors = 0

    def report(self) -> dict:
        out = {}
        for direction in ("to_agent", "to_citizen"):
            lat = [v * 1000 for v in self.latency[direction]]
            got = self.received[direction]
            out[direction] = {
                "sent": len(self.sent[direction]), "received": len(got),
                "lost": len(self.sent[direction] - set(got)), "duplicated": sum(1 for n in got.values() if n > 1),
                "p50_ms": round(percentile(lat, 0.5), 1), "p99_ms": round(percentile(lat, 0.99), 1),
                "max_ms": round(max(lat), 1) if lat else None,
            }
        all_lat = [v * 1000 for d in self.latency.values() for v in d]
        out["all"] = {"p50_ms": round(percentile(all_lat, 0.5), 1), "p99_ms": round(percentile(all_lat, 0.99), 1),
                      "mean_ms": round(statistics.fmean(all_lat), 1) if all_lat else None}
        out["http_errors"] = self.errors
        return out


class Agent:
    """A console: answers every citizen message once (also ones it sees again after a reconnect)."""

    def __init__(self, server: Server, token: str, stats: Stats):
        self.server, self.token, self.stats = server, token, stats
        self.chats: set[str] = set()
        self.answered: set[str] = set()
        self.pending: dict[str, dict] = {}
        self.ws = None
        self.running = True
        self.connected = asyncio.Event()

    async def run(self) -> None:
        url = self.server.url.replace("http", "ws") + "/api/v1/agent/ws"
        while self.running:
            try:
                async with websockets.connect(url, additional_headers={"authorization": f"Bearer {self.token}"},
                                              max_queue=None, open_timeout=30) as ws:
                    self.ws = ws
                    async for raw in ws:
                        await self.on_event(json.loads(raw), time.time())
            except (TimeoutError, OSError, websockets.WebSocketException):
                self.connected.clear()
                await asyncio.sleep(0.5)

    async def on_event(self, event: dict, now: float) -> None:
        kind = event.get("type")
        if kind == "hello":
            self.connected.set()
            for frame in list(self.pending.values()):  # unacknowledged replies: resend, same ref
                await self.ws.send(json.dumps(frame))
        elif kind == "chat":
            self.chats.add(event["conversation"]["id"])
            for message in event["conversation"]["messages"]:
                await self.on_citizen(event["conversation"]["id"], message, None)
        elif kind == "message" and event.get("sender") == "citizen":
            await self.on_citizen(event["conversation_id"], event, now)
        elif kind == "ack":
            self.pending.pop(event.get("ref"), None)
        elif kind == "chat_closed":
            self.chats.discard(event["conversation_id"])

    async def on_citizen(self, conversation_id: str, message: dict, now: float | None) -> None:
        parts = message["text"].split("|")
        if message["sender"] != "citizen" or parts[0] != "c":
            return
        key = parts[1]
        if now is not None:
            self.stats.received["to_agent"][key] += 1
            self.stats.latency["to_agent"].append(now - float(parts[2]))
        elif key not in self.stats.received["to_agent"]:
            self.stats.received["to_agent"][key] = 1  # first seen in a transcript after a reconnect
        if key in self.answered:
            return
        self.answered.add(key)
        ref = f"a-{key}"
        frame = {"type": "send", "conversation_id": conversation_id, "text": f"a|{key}|{time.time()}", "ref": ref}
        self.stats.sent["to_citizen"].add(key)
        self.pending[ref] = frame
        with contextlib.suppress(websockets.WebSocketException):
            await self.ws.send(json.dumps(frame))


class Citizen:
    def __init__(self, server: Server, http: httpx.AsyncClient, stats: Stats):
        self.server, self.http, self.stats = server, http, stats
        self.sid = ""
        self.last_id = 0
        self.assigned = asyncio.Event()
        self.running = True

    async def open(self) -> None:
        for _attempt in range(5):  # a kept-alive connection the server has just closed: try again
            try:
                if not self.sid:
                    response = await self.http.post("/api/v1/chat/sessions", json={"language": "sv"})
                    self.sid = response.json()["session_id"]
                await self.http.post(f"/api/v1/internal/sessions/{self.sid}/handoff", json={"reason": "requested"},
                                     headers={"X-Internal-Token": self.server.token})
                return
            except httpx.TransportError:
                self.stats.errors += 1
                await asyncio.sleep(0.2)

    async def listen(self) -> None:
        base = self.server.url.replace("http", "ws")
        while self.running:
            try:
                async with websockets.connect(f"{base}/api/v1/chat/sessions/{self.sid}/ws?after={self.last_id}",
                                              max_queue=None, open_timeout=30) as ws:
                    async for raw in ws:
                        now = time.time()
                        event = json.loads(raw)
                        if event.get("type") == "state" and event.get("state") == "agent":
                            self.assigned.set()
                        if event.get("type") != "message":
                            continue
                        self.last_id = max(self.last_id, event["id"])
                        parts = event["text"].split("|")
                        if event["sender"] == "agent" and parts[0] == "a":
                            self.assigned.set()
                            self.stats.received["to_citizen"][parts[1]] += 1
                            self.stats.latency["to_citizen"].append(now - float(parts[2]))
            except (TimeoutError, OSError, websockets.WebSocketException):
                await asyncio.sleep(0.5)

    async def say(self, seq: int) -> None:
        key = f"{self.sid[:12]}-{seq}"
        self.stats.sent["to_agent"].add(key)
        body = {"text": f"c|{key}|{time.time()}", "client_id": key}
        for _attempt in range(120):  # a resend with the same client_id is stored once
            try:
                response = await self.http.post(f"/api/v1/chat/sessions/{self.sid}/messages", json=body)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            self.stats.errors += 1
            await asyncio.sleep(0.5)


def make_agents(server: Server, count: int, max_chats: int) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from handoff.users import UserStore
    from kommunchatt.config import database_url
    from kommunchatt.db import init_db, make_engine

    engine = make_engine(database_url(server.data_dir, server.env.get("DATABASE_URL")))
    init_db(engine)
    store = UserStore(engine)
    tag = uuid.uuid4().hex[:6]
    names = []
    for i in range(count):
        name = f"bench-{tag}-{i}"
        store.create(name, PASSWORD, languages=["sv"], max_chats=max_chats)
        names.append(name)
    engine.dispose()
    return [httpx.post(f"{server.url}/api/v1/auth/login", json={"username": n, "password": PASSWORD}).json()["token"]
            for n in names]


async def stage(server: Server, citizens: int, agents: int, messages: int, interval: float,
                restart_after: float | None = None) -> dict:
    stats = Stats()
    tokens = make_agents(server, agents, max(1, math.ceil(citizens / agents)))
    consoles = [Agent(server, t, stats) for t in tokens]
    tasks = [asyncio.create_task(a.run()) for a in consoles]
    await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in consoles)), 60)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
        people = [Citizen(server, http, stats) for _ in range(citizens)]
        began = time.time()
        for chunk in range(0, citizens, 50):
            await asyncio.gather(*(p.open() for p in people[chunk:chunk + 50]))
        tasks += [asyncio.create_task(p.listen()) for p in people]
        await asyncio.wait_for(asyncio.gather(*(p.assigned.wait() for p in people)), 120)
        setup = time.time() - began

        restarted = {}

        async def restart() -> None:
            await asyncio.sleep(restart_after)
            server.kill()
            killed = time.time()
            loop = asyncio.get_running_loop()
            startup = await loop.run_in_executor(None, server.start)
            restarted.update({"down_seconds": round(time.time() - killed, 1), "startup_seconds": round(startup, 1)})

        async def talk(person: Citizen, offset: float) -> None:
            await asyncio.sleep(offset)
            for seq in range(messages):
                await person.say(seq)
                await asyncio.sleep(interval)

        load_began = time.time()
        if restart_after is not None:
            tasks.append(asyncio.create_task(restart()))
        await asyncio.gather(*(talk(p, i * interval / citizens) for i, p in enumerate(people)))
        # Drain: wait until every message has an answer delivered (or give up after 60 s).
        deadline = time.time() + 60
        while time.time() < deadline:
            if (stats.sent["to_agent"] <= set(stats.received["to_agent"])
                    and stats.sent["to_citizen"] <= set(stats.received["to_citizen"])
                    and len(stats.sent["to_citizen"]) == len(stats.sent["to_agent"])):
                break
            await asyncio.sleep(0.2)
        load_seconds = time.time() - load_began
        # Stored exactly once? Count in the transcripts.
        stored_dupes = 0
        for chunk in range(0, citizens, 50):
            transcripts = await asyncio.gather(*(http.get(f"/api/v1/chat/sessions/{p.sid}")
                                                 for p in people[chunk:chunk + 50]))
            for t in transcripts:
                texts = Counter(m["text"].split("|")[1] + m["sender"] for m in t.json()["messages"]
                                if m["text"][:2] in ("c|", "a|"))
                stored_dupes += sum(1 for n in texts.values() if n > 1)
        for p in people:
            p.running = False
        for a in consoles:
            a.running = False
            if a.ws:
                for cid in list(a.chats):
                    with contextlib.suppress(websockets.WebSocketException):
                        await a.ws.send(json.dumps({"type": "close", "conversation_id": cid, "outcome": "resolved"}))
                await asyncio.sleep(0)
        await asyncio.sleep(1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    total = len(stats.sent["to_agent"]) + len(stats.sent["to_citizen"])
    return {"citizens": citizens, "agents": agents, "setup_seconds": round(setup, 1),
            "messages": total, "rate_per_second": round(total / load_seconds, 1),
            "stored_duplicates": stored_dupes, **restarted, **stats.report()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--citizens", type=int, default=500)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--messages", type=int, default=6, help="messages per citizen (each answered)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a citizen's messages")
    parser.add_argument("--ramp", help="comma-separated citizen counts (agents: max(--agents, N/10))")
    parser.add_argument("--restart", action="store_true", help="kill and restart the service in the middle")
    parser.add_argument("--target-ms", type=float, default=100.0)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kc-bench-") as tmp:
        server = Server(Path(tmp), args.database_url, args.redis_url)
        print(f"service up in {server.start():.1f} s ({'PostgreSQL' if args.database_url else 'SQLite'})", flush=True)
        results = []
        try:
            if args.restart:
                res = asyncio.run(stage(server, args.citizens, args.agents, args.messages, args.interval,
                                        restart_after=args.interval * args.messages / 2))
                results.append(res)
                print(json.dumps(res, indent=1))
                ok = all(res[d]["lost"] == 0 and res[d]["duplicated"] == 0 for d in ("to_agent", "to_citizen"))
                ok = ok and res["stored_duplicates"] == 0
                print("restart:", "nothing lost or duplicated" if ok else "LOST OR DUPLICATED MESSAGES")
            else:
                counts = [int(n) for n in args.ramp.split(",")] if args.ramp else [args.citizens]
                for n in counts:
                    agents = max(args.agents, math.ceil(n / 10)) if args.ramp else args.agents
                    res = asyncio.run(stage(server, n, agents, args.messages, args.interval))
                    results.append(res)
                    held = all(res[d]["lost"] == 0 and res[d]["duplicated"] == 0 for d in ("to_agent", "to_citizen"))
                    fast = res["all"]["p99_ms"] <= args.target_ms
                    print(f"{n:5d} citizens {agents:3d} agents  {res['rate_per_second']:6.1f} msg/s  "
                          f"p50 {res['all']['p50_ms']:6.1f} ms  p99 {res['all']['p99_ms']:7.1f} ms  "
                          f"lost {res['to_agent']['lost'] + res['to_citizen']['lost']}  "
                          f"dup {res['to_agent']['duplicated'] + res['to_citizen']['duplicated']}  "
                          f"{'ok' if held and fast else 'BROKEN'}", flush=True)
                    if args.ramp and not (held and fast):
                        print(f"breaking point: {n} citizens ({'p99 over target' if held else 'messages lost'})")
                        break
                if not args.ramp:
                    print(json.dumps(results[-1], indent=1))
        finally:
            server.stop()
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

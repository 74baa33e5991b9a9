"""Benchmark of the agent side: N citizens and M agents over WebSockets on loopback.

Starts `kommunchatt serve` on a fresh data dir (SQLite, or a fresh PostgreSQL database with
--postgres), creates M agents with room for all chats, hands N conversations over, and lets every
citizen write at --interval while the agents answer every message. Measures delivery latency (sent →
received over the other side's WebSocket) both ways, and checks that nothing was lost or duplicated
(as delivered, and as stored). `--ramp` raises N stage by stage to find where the p99 target
(--target-ms) or delivery breaks. `--restart` kills the service in the middle and starts it again.

The load generator runs in its own processes (one for the agents' consoles, --procs for the
citizens), each with its own event loop, so it does not share the service's: their CPU use is
measured and reported next to the service's, with the machine's load. A citizen posts over its own
HTTP/1.1 connection, as a browser does (a minimal client: httpx's pool costs more CPU than the
service does at 500 connections).

    .venv/bin/python bench/handoff.py                       # 500 citizens, 50 agents, SQLite
    .venv/bin/python bench/handoff.py --postgres            # the same on a fresh PostgreSQL database
    .venv/bin/python bench/handoff.py --ramp 250,500,1000,1500,2000
    .venv/bin/python bench/handoff.py --restart --citizens 100 --agents 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import socket
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
sys.path.insert(0, str(ROOT))  # run as a script: the tests' harness is importable

from tests.harness import ServiceProcess, health_has  # noqa: E402 - after the path set-up

KOMMUNCHATT = str(Path(sys.executable).parent / "kommunchatt")
PASSWORD = "bench password"
PG_ADMIN_URL = os.environ.get("KOMMUNCHATT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, database_url: str | None, redis_url: str | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "KOMMUNCHATT_DATA_DIR": str(data_dir),
            "KOMMUNCHATT_PORT": str(self.port),
            "RASA_URL": f"http://127.0.0.1:{free_port()}",
            "KOMMUNCHATT_AGENT_HEARTBEAT_S": "2",
        }
        self.env.setdefault("KOMMUNCHATT_MODEL_PATH", str(ROOT / "var" / "models" / "multilingual-e5-small"))
        for key, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
            if value:
                self.env[key] = value
            else:
                self.env.pop(key, None)

    def start(self) -> float:
        """Start and wait for the database (tests/harness.py, the tests' way); returns the seconds it took."""
        self.server = ServiceProcess(self.env, self.url, self.data_dir / "service.log")
        try:
            return self.server.start(health_has("database"), timeout=300)
        except (RuntimeError, TimeoutError) as exc:
            sys.exit(f"the service did not come up: {exc}")

    @property
    def process(self) -> subprocess.Popen | None:
        return self.server.process if getattr(self, "server", None) else None

    def kill(self) -> None:
        self.server.stop(kill=True)

    def stop(self) -> None:
        self.server.stop()

    @property
    def token(self) -> str:
        return (self.data_dir / "internal-token").read_text().strip()


# --- measuring --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1)] if ordered else float("nan")


class Stats:
    """What one process saw; merged in the parent (sets and counters add up across processes)."""

    def __init__(self):
        self.latency: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (sent at, seconds)
        self.received: dict[str, Counter] = defaultdict(Counter)  # direction -> key -> times received
        self.sent: dict[str, set] = defaultdict(set)
        self.errors = 0

    def merge(self, other: Stats) -> None:
        for direction in ("to_agent", "to_citizen"):
            self.latency[direction] += other.latency[direction]
            self.received[direction].update(other.received[direction])
            self.sent[direction] |= other.sent[direction]
        self.errors += other.errors

    def report(self) -> dict:
        out = {}
        for direction in ("to_agent", "to_citizen"):
            lat = [v * 1000 for _, v in self.latency[direction]]
            got = self.received[direction]
            out[direction] = {
                "sent": len(self.sent[direction]),
                "received": len(got),
                "lost": len(self.sent[direction] - set(got)),
                "duplicated": sum(1 for n in got.values() if n > 1),
                "p50_ms": round(percentile(lat, 0.5), 1),
                "p99_ms": round(percentile(lat, 0.99), 1),
                "max_ms": round(max(lat), 1) if lat else None,
            }
        pairs = [p for d in self.latency.values() for p in d]
        all_lat = [v * 1000 for _, v in pairs]
        out["all"] = {
            "p50_ms": round(percentile(all_lat, 0.5), 1),
            "p90_ms": round(percentile(all_lat, 0.9), 1),
            "p99_ms": round(percentile(all_lat, 0.99), 1),
        }
        if pairs:  # are slow deliveries spread out, or one stall? The slowest seconds of the run:
            start, worst = min(t for t, _ in pairs), defaultdict(float)
            for sent, value in pairs:
                worst[int(sent - start)] = max(worst[int(sent - start)], value * 1000)
            out["slowest_seconds"] = {f"{k}s": round(v) for k, v in sorted(worst.items(), key=lambda kv: -kv[1])[:5]}
        out["http_retries"] = self.errors
        return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_wait_seconds(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (the kernel's schedstat)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[1])
    return total / 1e9


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- the load generator's processes -------------------------------------------------------------------


def run_loop(coro) -> object:
    """A client process's event loop: uvloop when installed (the load generator should cost little)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class Agent:
    """A console: answers every citizen message once (also ones it sees again after a reconnect)."""

    def __init__(self, url: str, token: str, stats: Stats):
        self.url, self.token, self.stats = url, token, stats
        self.chats: set[str] = set()
        self.answered: set[str] = set()
        self.pending: dict[str, dict] = {}
        self.ws = None
        self.running = True
        self.connected = asyncio.Event()

    async def run(self) -> None:
        url = self.url.replace("http", "ws") + "/api/v1/agent/ws"
        while self.running:
            try:
                async with websockets.connect(
                    url,
                    additional_headers={"authorization": f"Bearer {self.token}"},
                    max_queue=None,
                    open_timeout=60,
                    compression=None,
                ) as ws:
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
            self.stats.latency["to_agent"].append((float(parts[2]), now - float(parts[2])))
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

    async def close_chats(self) -> None:
        """End of a stage: close every chat, so the next stage's agents do not inherit them."""
        if not self.ws:
            return
        for cid in list(self.chats):
            with contextlib.suppress(websockets.WebSocketException):
                await self.ws.send(
                    json.dumps({"type": "close", "conversation_id": cid, "outcome": "resolved", "ref": f"close-{cid}"})
                )


def agents_process(url: str, tokens: list[str], ready, stop, results) -> None:
    async def main() -> Stats:
        stats = Stats()
        consoles = [Agent(url, t, stats) for t in tokens]
        tasks = [asyncio.create_task(a.run()) for a in consoles]
        await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in consoles)), 120)
        ready.put("agents")
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for a in consoles:
            a.running = False
            await a.close_chats()
        deadline = time.time() + 10
        while time.time() < deadline and any(a.chats for a in consoles):
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return stats

    results.put(("agents", run_loop(main())))


class Http:
    """One citizen's HTTP/1.1 connection (kept alive for a little less than uvicorn's 5 s)."""

    KEEP_S = 3.0

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        if self.writer is None or time.monotonic() - self.used > self.KEEP_S or self.reader.at_eof():
            self.close()
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(
            b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (path.encode(), len(data), data)
        )
        try:
            status = int((await self.reader.readline()).split()[1])
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await self.reader.readexactly(length)
        except Exception:
            self.close()
            raise
        self.used = time.monotonic()
        return status, payload

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        self.reader = self.writer = None


class Citizen:
    def __init__(self, url: str, sid: str, stats: Stats):
        self.url, self.sid, self.stats = url, sid, stats
        self.http = Http(int(url.rsplit(":", 1)[1]))
        self.last_id = 0
        self.assigned = asyncio.Event()
        self.running = True

    async def listen(self) -> None:
        base = self.url.replace("http", "ws")
        while self.running:
            try:
                async with websockets.connect(
                    f"{base}/api/v1/chat/sessions/{self.sid}/ws?after={self.last_id}",
                    max_queue=None,
                    open_timeout=60,
                    compression=None,
                ) as ws:
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
                            self.stats.latency["to_citizen"].append((float(parts[2]), now - float(parts[2])))
            except (TimeoutError, OSError, websockets.WebSocketException):
                await asyncio.sleep(0.5)

    async def say(self, seq: int) -> None:
        key = f"{self.sid[:12]}-{seq}"
        self.stats.sent["to_agent"].add(key)
        for _attempt in range(240):  # a resend with the same client_id is stored once
            body = {"text": f"c|{key}|{time.time()}", "client_id": key}
            try:
                status, _ = await self.http.post(f"/api/v1/chat/sessions/{self.sid}/messages", body)
                if status == 200:
                    return
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                pass
            self.stats.errors += 1
            await asyncio.sleep(0.5)


def citizens_process(
    url: str, sids: list[str], messages: int, interval: float, index: int, procs: int, ready, go, results
) -> None:
    async def main() -> Stats:
        stats = Stats()
        people = [Citizen(url, sid, stats) for sid in sids]
        tasks = [asyncio.create_task(p.listen()) for p in people]
        await asyncio.wait_for(asyncio.gather(*(p.assigned.wait() for p in people)), 300)
        ready.put(f"citizens-{index}")
        while not go.is_set():
            await asyncio.sleep(0.01)
        total = len(people) * procs

        async def talk(person: Citizen, offset: float) -> None:
            await asyncio.sleep(offset)
            for seq in range(messages):
                await person.say(seq)
                await asyncio.sleep(interval)

        # Spread evenly over the interval across all processes: citizen i of process p is number i*procs+p.
        await asyncio.gather(*(talk(p, (i * procs + index) * interval / total) for i, p in enumerate(people)))
        deadline = time.time() + 60  # drain: every message answered (or give up after 60 s)
        while time.time() < deadline and not stats.sent["to_agent"] <= set(stats.received["to_citizen"]):
            await asyncio.sleep(0.1)
        for p in people:
            p.running = False
            p.http.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return stats

    results.put((f"citizens-{index}", run_loop(main())))


# --- a stage: set up, load, check --------------------------------------------------------------------


def make_agents(server: Server, count: int, max_chats: int) -> list[str]:
    """M agents with session tokens, written straight to the database: one bcrypt hash for all, and no
    login round (a quarter of a second of bcrypt each; logging in is not what is measured here)."""
    import secrets

    import bcrypt

    sys.path.insert(0, str(ROOT))
    from sqlalchemy import insert

    from core.config import database_url
    from core.db import make_engine
    from core.user_tables import auth_sessions, users
    from core.users import SESSION_SECONDS, _hash_token
    from kommunchatt.schema import init_db

    engine = make_engine(database_url(server.data_dir, server.env.get("DATABASE_URL")))
    init_db(engine)
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt()).decode()
    tag, now, tokens = uuid.uuid4().hex[:6], time.time(), []
    with engine.begin() as conn:
        for i in range(count):
            user_id = conn.execute(
                insert(users).values(
                    username=f"bench-{tag}-{i}",
                    display_name=f"Agent {i}",
                    password_hash=password_hash,
                    role="agent",
                    languages=["sv"],
                    municipalities=["default"],
                    status="available",
                    max_chats=max_chats,
                    active=True,
                    created_at=now,
                )
            ).inserted_primary_key[0]
            tokens.append(secrets.token_urlsafe(32))
            conn.execute(
                insert(auth_sessions).values(
                    token_hash=_hash_token(tokens[-1]),
                    user_id=user_id,
                    created_at=now,
                    expires_at=now + SESSION_SECONDS,
                )
            )
    engine.dispose()
    with httpx.Client(base_url=server.url, timeout=60) as http:  # one real login, to check the password works
        assert http.post("/api/v1/auth/login", json={"username": f"bench-{tag}-0", "password": PASSWORD}).is_success
    return tokens


async def open_sessions(server: Server, count: int) -> list[str]:
    """Sessions handed over to a person, 25 at a time (set-up, not measured)."""
    sids: list[str] = []
    headers = {"X-Internal-Token": server.token}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:

        async def one() -> str:
            sid = (await http.post("/api/v1/chat/sessions", json={"language": "sv"})).json()["session_id"]
            await http.post(f"/api/v1/internal/sessions/{sid}/handoff", json={"reason": "requested"}, headers=headers)
            return sid

        for chunk in range(0, count, 25):
            sids += await asyncio.gather(*(one() for _ in range(min(25, count - chunk))))
    return sids


async def stored_duplicates(server: Server, sids: list[str]) -> int:
    """Messages stored more than once, counted in the transcripts."""
    dupes = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        for chunk in range(0, len(sids), 25):
            transcripts = await asyncio.gather(
                *(http.get(f"/api/v1/chat/sessions/{sid}") for sid in sids[chunk : chunk + 25])
            )
            for t in transcripts:
                texts = Counter(
                    m["text"].split("|")[1] + m["sender"] for m in t.json()["messages"] if m["text"][:2] in ("c|", "a|")
                )
                dupes += sum(1 for n in texts.values() if n > 1)
    return dupes


def stage(
    server: Server,
    citizens: int,
    agents: int,
    messages: int,
    interval: float,
    procs: int,
    restart_after: float | None = None,
) -> dict:
    ctx = mp.get_context("fork")
    ready, results, go, stop = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    began = time.time()
    tokens = make_agents(server, agents, max(1, math.ceil(citizens / agents)))
    children = [ctx.Process(target=agents_process, args=(server.url, tokens, ready, stop, results))]
    children[0].start()
    ready.get(timeout=180)
    sids = asyncio.run(open_sessions(server, citizens))
    for i in range(procs):
        children.append(
            ctx.Process(
                target=citizens_process,
                args=(server.url, sids[i::procs], messages, interval, i, procs, ready, go, results),
            )
        )
        children[-1].start()
    for _ in range(procs):
        ready.get(timeout=400)
    setup = time.time() - began

    pids = {"service": server.process.pid, "clients": [c.pid for c in children]}
    cpu0 = {"service": cpu_seconds(pids["service"]), "clients": sum(cpu_seconds(p) for p in pids["clients"])}
    wait0 = cpu_wait_seconds(pids["service"])
    machine0, load0, t0 = machine_ticks(), os.getloadavg()[0], time.time()
    print(f"  set up in {setup:.0f} s; {citizens} citizens talk for {messages * interval:.0f} s", flush=True)
    go.set()
    restarted: dict = {}
    if restart_after is not None:
        time.sleep(restart_after)
        cpu0["service"] -= cpu_seconds(server.process.pid)  # the new process starts from zero
        wait0 -= cpu_wait_seconds(server.process.pid)
        server.kill()
        killed = time.time()
        startup = server.start()
        restarted = {"down_seconds": round(time.time() - killed, 1), "startup_seconds": round(startup, 1)}
    stats = Stats()
    for _ in range(procs):
        stats.merge(results.get(timeout=3600)[1])
    elapsed = time.time() - t0
    service_cpu = cpu_seconds(server.process.pid) - cpu0["service"]
    service_wait = cpu_wait_seconds(server.process.pid) - wait0
    client_cpu = sum(cpu_seconds(p) for p in pids["clients"]) - cpu0["clients"]
    machine1, load1 = machine_ticks(), os.getloadavg()[0]
    stop.set()
    stats.merge(results.get(timeout=120)[1])
    for child in children:
        child.join(30)
    dupes = asyncio.run(stored_duplicates(server, sids))
    total = len(stats.sent["to_agent"]) + len(stats.sent["to_citizen"])
    busy = (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1])
    cores = os.cpu_count() or 1
    return {
        "citizens": citizens,
        "agents": agents,
        "setup_seconds": round(setup, 1),
        "messages": total,
        "rate_per_second": round(total / elapsed, 1),
        "stored_duplicates": dupes,
        **restarted,
        **stats.report(),
        "cpu": {
            "service_percent_of_a_core": round(100 * service_cpu / elapsed, 1),
            "service_ms_per_message": round(1000 * service_cpu / max(1, total), 2),
            "service_waited_for_cpu_ms_per_s": round(1000 * service_wait / elapsed, 1),
            "clients_percent_of_a_core": round(100 * client_cpu / elapsed, 1),
            "machine_busy_percent": round(100 * busy, 1),
            "others_percent_of_a_core": round(100 * (busy * cores) - 100 * (service_cpu + client_cpu) / elapsed, 1),
            "load_average": [round(load0, 2), round(load1, 2)],
        },
    }


def line(res: dict, target_ms: float) -> str:
    lost = res["to_agent"]["lost"] + res["to_citizen"]["lost"]
    dup = res["to_agent"]["duplicated"] + res["to_citizen"]["duplicated"] + res["stored_duplicates"]
    ok = lost == 0 and dup == 0 and res["all"]["p99_ms"] <= target_ms
    cpu = res["cpu"]
    return (
        f"{res['citizens']:5d} citizens {res['agents']:3d} agents {res['rate_per_second']:6.1f} msg/s  "
        f"p50 {res['all']['p50_ms']:6.1f}  p99 {res['all']['p99_ms']:7.1f} ms "
        f"(to agent {res['to_agent']['p99_ms']:.0f}, to citizen {res['to_citizen']['p99_ms']:.0f})  "
        f"lost {lost} dup {dup}  service {cpu['service_percent_of_a_core']:.0f}% "
        f"({cpu['service_ms_per_message']:.2f} ms/msg, waited {cpu['service_waited_for_cpu_ms_per_s']:.0f} ms/s) "
        f"clients {cpu['clients_percent_of_a_core']:.0f}% "
        f"others {cpu['others_percent_of_a_core']:.0f}% load {cpu['load_average'][1]:.1f}  "
        f"{'ok' if ok else 'BROKEN'}"
    )


@contextlib.contextmanager
def postgres_database():
    """A fresh PostgreSQL database for one run, dropped afterwards."""
    import psycopg

    name = f"kc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--citizens", type=int, default=500)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--messages", type=int, default=6, help="messages per citizen (each answered)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a citizen's messages")
    parser.add_argument("--procs", type=int, default=2, help="citizen processes (plus one for the agents)")
    parser.add_argument("--ramp", help="comma-separated citizen counts (agents: max(--agents, N/10))")
    parser.add_argument("--restart", action="store_true", help="kill and restart the service in the middle")
    parser.add_argument("--target-ms", type=float, default=100.0)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--postgres", action="store_true", help="a fresh database on " + PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres_database()) if args.postgres else args.database_url
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kc-bench-"))
        server = Server(Path(tmp), database_url, args.redis_url)
        kind = "PostgreSQL" if database_url else "SQLite"
        print(f"service up in {server.start():.1f} s ({kind}); load average {os.getloadavg()[0]:.1f}", flush=True)
        results = []
        try:
            counts = [int(n) for n in args.ramp.split(",")] if args.ramp else [args.citizens]
            for n in counts:
                agents = max(args.agents, math.ceil(n / 10)) if args.ramp else args.agents
                res = stage(
                    server,
                    n,
                    agents,
                    args.messages,
                    args.interval,
                    args.procs,
                    restart_after=args.interval * args.messages / 2 if args.restart else None,
                )
                res["database"] = kind
                results.append(res)
                print(line(res, args.target_ms), flush=True)
                broken = line(res, args.target_ms).endswith("BROKEN")
                if args.restart:  # latency includes the outage: what counts is that nothing is lost
                    kept = "BROKEN" not in line(res, float("inf"))
                    print(f"restart: {'nothing lost or duplicated' if kept else 'LOST OR DUPLICATED MESSAGES'}")
                if args.ramp and broken:
                    print(f"breaking point: {n} citizens")
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

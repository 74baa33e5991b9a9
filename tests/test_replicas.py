"""Two replicas behind HAProxy (two services, two Rasa servers with the Redis lock store and the
PostgreSQL tracker store, two action servers): kill -9 one service and one Rasa replica in the middle
of 100 live conversations. Nothing is lost or duplicated, every citizen has an answer within 5 s of
the kill, and the agents' consoles reconnect by themselves.

The citizens behave as the widget does: a message keeps its client id when it is resent after an
error, with the widget's back-off (1, 2, 4 s). Slow (about 3-5 minutes); `-m replicas` selects it.

It cannot hang: every loop has a deadline (a citizen gives up on a turn GIVE_UP_AFTER_S after the load
ends, a console stops listening when its time is up even if the socket stays quiet), and the whole
scenario fails after SCENARIO_TIMEOUT_S with the list of what was still waiting.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
import websockets

from core.config import database_url as resolve
from kommunchatt.replicas import ReplicaSet
from kommunchatt.runner import free_port, prepare
from tests.conftest import SHARED_DATA, fresh_pg_database
from tests.e2e import prime_data_dir, staff_login

pytestmark = [pytest.mark.replicas, pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

CONVERSATIONS = 100
PAUSE_S = (5.0, 9.0)  # a person reading the answer and typing the next question
KILL_AFTER_S = 20.0
RUN_AFTER_KILL_S = 25.0
ANSWER_WITHIN_S = 5.0
AGENTS = 4
GIVE_UP_AFTER_S = 90.0  # after the load ends, a citizen stops resending an unanswered turn (it is then reported)
SCENARIO_TIMEOUT_S = 8 * 60.0  # the whole load, kill included; normally about a minute
# Questions the seed answers (or greets) in one turn; the cycle keeps every conversation with the bot.
QUESTIONS = [
    "Hej!",
    "När hämtas soporna?",
    "Hur ansöker jag om bygglov?",
    "Var kan jag parkera?",
    "Hur söker jag förskoleplats?",
    "Tack!",
]
REDIS_URL = os.environ.get("KOMMUNCHATT_TEST_REDIS", "redis://127.0.0.1:6379/0")


@dataclass
class Turn:
    conversation: str
    client_id: str
    text: str
    sent_at: float
    answered_at: float | None = None
    attempts: int = 0
    replies: list[dict] = field(default_factory=list)
    state: str = ""
    last_error: str = ""  # the last failed attempt: a status code or an exception's name


def failure(response: httpx.Response | None, exc: Exception | None = None) -> str:
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"[:200]
    return f"HTTP {response.status_code}: {response.text[:120]}"


@pytest.fixture(scope="module")
def replica_set(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("replicas")
    os.environ.setdefault("KOMMUNCHATT_MODEL_PATH", str(SHARED_DATA / "models" / "multilingual-e5-small"))
    os.environ.setdefault("KOMMUNCHATT_RASA_MODELS", str(SHARED_DATA / "rasa-models"))
    # The 100 simulated citizens share one address (like an office behind NAT): raise the per-address limits.
    limits = {
        "KOMMUNCHATT_LIMIT_SESSION_PER_ADDRESS": "10000/minute",
        "KOMMUNCHATT_LIMIT_MESSAGE_PER_ADDRESS": "100000/minute",
        "KOMMUNCHATT_LIMIT_QUEUE_PER_ADDRESS": "10000/minute",
    }
    saved = {k: os.environ.get(k) for k in limits}
    os.environ.update(limits)
    url, drop = fresh_pg_database()
    prime_data_dir(data_dir)
    model = prepare(data_dir, url, log=lambda *_: None)
    replicas = ReplicaSet(data_dir, url, REDIS_URL, count=2, port=free_port())
    try:
        replicas.start(model)
        replicas.wait_ready(timeout=600)
        replicas.supervise_in_background()
        replicas.engine_url = resolve(data_dir, url)
        yield replicas
    finally:
        replicas.stop()
        drop()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


async def pause(seconds: float, until: float) -> None:
    """Sleep, but never past `until`."""
    await asyncio.sleep(max(0.0, min(seconds, until - time.monotonic())))


async def citizen(
    http: httpx.AsyncClient, turns: list[Turn], stop_at: float, start_delay: float, waiting: dict[str, str], name: str
) -> None:
    """Opens a session and asks until `stop_at`; resends an unanswered turn until GIVE_UP_AFTER_S after it
    (then leaves it unanswered, which the test reports). `waiting[name]` says what it is waiting for."""
    give_up_at = stop_at + GIVE_UP_AFTER_S
    await asyncio.sleep(start_delay)
    session, attempts, last = None, 0, ""
    while session is None and time.monotonic() < give_up_at:  # the widget retries opening its session too
        attempts += 1
        waiting[name] = f"opening its session (attempt {attempts}, last: {last or '-'})"
        try:
            response = await http.post("/api/v1/chat/sessions", json={"language": "sv"})
            session = response.json()["session_id"] if response.status_code == 201 else None
            last = "" if session else failure(response)
        except (httpx.HTTPError, ValueError) as exc:
            last = failure(None, exc)
        if session is None:
            await pause(1, give_up_at)
    if session is None:
        waiting[name] = f"gave up opening its session after {attempts} attempts (last: {last})"
        return
    i = 0
    while time.monotonic() < stop_at:
        turn = Turn(session, uuid.uuid4().hex, QUESTIONS[i % len(QUESTIONS)], time.monotonic())
        turns.append(turn)
        delay = 0.5  # the widget's first retry (web/widget.js FIRST_RETRY_MS)
        while turn.answered_at is None and time.monotonic() < give_up_at:
            turn.attempts += 1
            waiting[name] = (
                f"an answer to {turn.text!r} in {session} (attempt {turn.attempts}, last: {turn.last_error or '-'})"
            )
            try:
                r = await http.post(
                    f"/api/v1/chat/sessions/{session}/messages", json={"text": turn.text, "client_id": turn.client_id}
                )
                if r.status_code == 200:
                    body = r.json()
                    turn.replies, turn.state, turn.answered_at = body["messages"], body["state"], time.monotonic()
                    break
                turn.last_error = failure(r)
            except httpx.HTTPError as exc:
                turn.last_error = failure(None, exc)
            await pause(delay, give_up_at)  # the widget's back-off, same client id
            delay = min(delay * 2, 15)
        if turn.answered_at is None:
            waiting[name] = f"gave up on {turn.text!r} in {session} after {turn.attempts} attempts"
            return
        i += 1
        waiting[name] = f"reading (conversation {session})"
        await pause(random.uniform(*PAUSE_S), stop_at)
    waiting.pop(name, None)


@dataclass
class AgentConsole:
    """A console's socket as web/agent/socket.js keeps it: reconnects by itself (0.5 s, doubling)."""

    url: str
    token: str
    connected: bool = False
    drops: list[float] = field(default_factory=list)
    reconnects: list[float] = field(default_factory=list)
    frames: int = 0
    quiet_at_end: bool = False  # its time ran out while the socket said nothing (no frame to wake it)

    def waiting_for(self) -> str:
        state = "connected, listening" if self.connected else "reconnecting"
        return f"{state} ({self.frames} frames, {len(self.drops)} drops, {len(self.reconnects)} reconnects)"

    async def run(self, stop_at: float) -> None:
        """Listens until `stop_at`, whether frames come or not: a console's socket is quiet while nothing
        happens (no queue, no chats), so waiting for the next frame to notice the time could wait forever."""
        delay = 0.5
        while (left := stop_at - time.monotonic()) > 0:
            try:
                async with websockets.connect(
                    self.url,
                    additional_headers={"authorization": f"Bearer {self.token}"},
                    open_timeout=min(10.0, left),
                    close_timeout=5,
                ) as ws:
                    while (left := stop_at - time.monotonic()) > 0:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), timeout=left)
                        except TimeoutError:
                            self.quiet_at_end = True
                            return
                        self.frames += 1
                        if json.loads(raw).get("type") == "hello":
                            if self.drops and len(self.reconnects) < len(self.drops):
                                self.reconnects.append(time.monotonic())
                            self.connected, delay = True, 0.5
                    return
            except (OSError, TimeoutError, websockets.WebSocketException):
                pass
            if self.connected:
                self.drops.append(time.monotonic())
            self.connected = False
            await pause(delay, stop_at)
            delay = min(delay * 2, 5)


async def load(replicas: ReplicaSet, agents: list[AgentConsole]) -> tuple[list[Turn], float]:
    turns: list[Turn] = []
    waiting: dict[str, str] = {}  # citizen -> what it waits for, while it runs
    started = time.monotonic()
    stop_at = started + KILL_AFTER_S + RUN_AFTER_KILL_S
    limits = httpx.Limits(max_connections=CONVERSATIONS + 10)
    async with httpx.AsyncClient(base_url=replicas.url, timeout=30, limits=limits) as http:
        citizens = {
            f"citizen {n + 1}": asyncio.create_task(
                citizen(http, turns, stop_at, random.uniform(0, PAUSE_S[1]), waiting, f"citizen {n + 1}")
            )
            for n in range(CONVERSATIONS)
        }
        consoles = {f"agent {n + 1}": (a, asyncio.create_task(a.run(stop_at + 10))) for n, a in enumerate(agents)}
        killed_at = None
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT_S):
                await asyncio.sleep(KILL_AFTER_S)
                killed_at = time.monotonic()
                for name, replica in (("service", replicas.replicas[0]), ("rasa", replicas.replicas[1])):
                    os.killpg(replica.supervisor.children[name].proc.pid, signal.SIGKILL)
                await asyncio.gather(*citizens.values(), *(task for _, task in consoles.values()))
        except TimeoutError:
            still = [f"{name}: {waiting.get(name, 'not started')}" for name, t in citizens.items() if not t.done()]
            still += [f"{name}: {a.waiting_for()}" for name, (a, t) in consoles.items() if not t.done()]
            pytest.fail(
                f"the scenario did not finish within {SCENARIO_TIMEOUT_S:.0f} s (kill "
                f"{'at ' + format(killed_at - started, '.0f') + ' s' if killed_at else 'not reached'}); "
                f"{len(still)} still waiting:\n  " + "\n  ".join(still),
                pytrace=False,
            )
        finally:
            for task in [*citizens.values(), *(t for _, t in consoles.values())]:
                task.cancel()
    return turns, killed_at


def test_killing_a_service_and_a_rasa_replica_under_load(replica_set):
    agents = []
    for _ in range(AGENTS):
        client = staff_login(replica_set.url, replica_set.engine_url)
        token = client.cookies.get("kommunchatt_session")
        agents.append(AgentConsole(replica_set.url.replace("http", "ws") + "/api/v1/agent/ws", token))
    turns, killed_at = asyncio.run(load(replica_set, agents))

    # Every turn answered by the bot, within 5 s of the kill for those the kill touched.
    unanswered = [t for t in turns if t.answered_at is None]
    assert not unanswered, f"{len(unanswered)} turns never answered: " + "; ".join(
        f"{t.text!r} in {t.conversation} after {t.attempts} attempts (last: {t.last_error or '-'})"
        for t in unanswered[:10]
    )
    # The kill's own turns (in flight, or sent within 5 s of it) each waited from max(sent, kill) for an answer;
    # turns sent later meet one replica of each part serving every conversation until the killed ones are back:
    # their slow ones are counted and printed (capacity, issue 18), not failover.
    touched = [t for t in turns if t.sent_at <= killed_at + ANSWER_WITHIN_S and t.answered_at >= killed_at]
    late = [t for t in touched if t.answered_at - max(t.sent_at, killed_at) > ANSWER_WITHIN_S]
    slow_later = [t for t in turns if t.sent_at > killed_at + ANSWER_WITHIN_S and t.answered_at - t.sent_at > 5]
    apologies = [t for t in turns if any("tekniska problem" in m["text"] for m in t.replies)]
    silent = [t for t in turns if not t.replies]
    worst = max((t.answered_at - max(t.sent_at, killed_at) for t in touched), default=0.0)
    print(
        f"\n{len(turns)} turns in {CONVERSATIONS} conversations; {len(touched)} in flight or sent within "
        f"{ANSWER_WITHIN_S:.0f} s of the kill; retried {sum(t.attempts > 1 for t in turns)}; worst answer after "
        f"the kill {worst:.2f} s; late {len(late)}; apologies {len(apologies)}; silent {len(silent)}; "
        f"later turns slower than 5 s: {len(slow_later)}"
    )
    for t in apologies:  # which part apologised, and when
        print(f"apology at kill{t.sent_at - killed_at:+.2f} s after {t.answered_at - t.sent_at:.2f} s: "
              f"{[m['text'][:60] for m in t.replies]}")

    # Nothing lost or duplicated: each message stored once, each reply stored once.
    with httpx.Client(base_url=replica_set.url, timeout=30) as http:
        by_conversation: dict[str, list[Turn]] = {}
        for t in turns:
            by_conversation.setdefault(t.conversation, []).append(t)
        for conversation, sent in by_conversation.items():
            messages = http.get(f"/api/v1/chat/sessions/{conversation}").json()["messages"]
            citizen_texts = [m["text"] for m in messages if m["sender"] == "citizen"]
            assert citizen_texts == [t.text for t in sent], conversation
            ids = [m["id"] for m in messages]
            assert len(ids) == len(set(ids))
            for turn in sent:  # the replies the citizen got are the stored ones, once each
                stored = [m for m in messages if m["id"] in {r["id"] for r in turn.replies}]
                assert len(stored) == len(turn.replies)
    for agent in agents:
        assert agent.connected, "an agent's console did not reconnect"
        assert len(agent.reconnects) == len(agent.drops)
    reconnect_times = [r - d for a in agents for d, r in zip(a.drops, a.reconnects, strict=True)]
    print(
        f"agents dropped {sum(len(a.drops) for a in agents)} times, reconnected after "
        f"{max(reconnect_times, default=0):.2f} s at most; {sum(a.quiet_at_end for a in agents)} of {len(agents)} "
        f"consoles were quiet when their time ran out"
    )

    assert not silent and not apologies
    assert not late, f"{len(late)} turns answered later than {ANSWER_WITHIN_S} s after the kill (worst {worst:.2f} s)"

"""Durability of the agent side: a restart of the service (even a kill) loses no conversation, queue
position or message, on SQLite and PostgreSQL; consoles and citizens reconnect and catch up; with Redis,
two service processes share the work."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from tests.conftest import fresh_pg_database
from tests.test_handoff_support import Service, Socket

pytestmark = pytest.mark.asyncio
REDIS_URL = os.environ.get("KOMMUNCHATT_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    if request.param == "sqlite":
        yield None
        return
    url, drop = fresh_pg_database()
    yield url
    drop()


@pytest.mark.parametrize("kill", [True], ids=["kill"])
async def test_restart_in_the_middle_loses_nothing(database, kill, tmp_path, model_path):
    svc = Service(tmp_path / "data", model_path, database_url=database, grace_s=60).start()
    try:
        token = svc.agent("durable", max_chats=3)
        chats = [svc.citizen("sv", text=f"fråga {i}") for i in range(3)]
        waiting = [svc.citizen("sv", text=f"väntar {i}") for i in range(2)]
        agent = await Socket.agent(svc, token)
        held = {e["conversation"]["id"] for e in await agent.wait_count(lambda e: e["type"] == "chat", 3)}
        assert held == set(chats)
        citizens = {sid: await Socket.citizen(svc, sid) for sid in chats}

        sent_by_citizen, acked_by_agent = {}, {}
        for round_ in range(5):
            for sid in chats:
                text = f"medborgare {round_} {sid[:6]}"
                cid = uuid.uuid4().hex
                svc.say(sid, text, client_id=cid)  # acknowledged: stored
                sent_by_citizen[cid] = (sid, text)
                ref = uuid.uuid4().hex
                await agent.send({"type": "send", "conversation_id": sid, "text": f"svar {round_}", "ref": ref})
                acked_by_agent[ref] = sid
        for ref in acked_by_agent:
            await agent.wait(lambda e, ref=ref: e.get("type") == "ack" and e.get("ref") == ref)
        before_positions = [svc.transcript(sid)["queue"]["position"] for sid in waiting]

        svc.stop(kill=kill)
        await agent.close()
        for sock in citizens.values():
            await sock.close()
        svc.start()

        # The agent comes back within the grace period: the same chats, with every message.
        agent = await Socket.agent(svc, token)
        back = {
            e["conversation"]["id"]: e["conversation"] for e in await agent.wait_count(lambda e: e["type"] == "chat", 3)
        }
        assert set(back) == set(chats)
        for cid, (sid, text) in sent_by_citizen.items():
            assert sum(m["text"] == text and m["sender"] == "citizen" for m in back[sid]["messages"]) == 1, cid
        for sid in chats:
            assert sum(m["sender"] == "agent" for m in back[sid]["messages"]) == 5
        # Resending what was already stored (the client did not see the answer) changes nothing.
        cid, (sid, text) = next(iter(sent_by_citizen.items()))
        svc.say(sid, text, client_id=cid)
        assert sum(m["text"] == text for m in svc.transcript(sid)["messages"]) == 1
        assert [svc.transcript(s)["queue"]["position"] for s in waiting] == before_positions == [1, 2]

        # A citizen reconnects after the last message it saw and gets the rest, then the chat goes on.
        sid = chats[0]
        messages = svc.transcript(sid)["messages"]
        citizen = await Socket.citizen(svc, sid, after=messages[2]["id"])
        replayed = [e for e in await _settle(citizen) if e["type"] == "message"]
        assert [m["id"] for m in replayed] == [m["id"] for m in messages[3:]]
        await agent.send({"type": "send", "conversation_id": sid, "text": "efter omstarten", "ref": "after"})
        await citizen.wait(lambda e: e.get("text") == "efter omstarten")
        await agent.close()
        await citizen.close()
    finally:
        svc.stop()


async def _settle(sock: Socket, quiet: float = 0.7) -> list[dict]:
    count = -1
    while count != len(sock.events):
        count = len(sock.events)
        await asyncio.sleep(quiet)
    return sock.events


async def test_two_processes_share_the_work_over_redis(tmp_path, model_path):
    import redis

    redis.Redis.from_url(REDIS_URL).ping()
    url, drop = fresh_pg_database()
    token_env = {"KOMMUNCHATT_INTERNAL_TOKEN": uuid.uuid4().hex}
    os.environ.update(token_env)
    try:
        one = Service(tmp_path / "one", model_path, database_url=url, redis_url=REDIS_URL).start()
        two = Service(tmp_path / "two", model_path, database_url=url, redis_url=REDIS_URL).start()
        try:
            token = one.agent("shared")
            agent = await Socket.agent(one, token)  # the agent's console is on process one
            await agent.wait(lambda e: e["type"] == "hello")
            sid = two.citizen("sv", text="hej från process två")  # the citizen is on process two
            chat = await agent.wait(lambda e: e["type"] == "chat")
            assert chat["conversation"]["id"] == sid
            citizen = await Socket.citizen(two, sid)
            await citizen.wait(lambda e: e["type"] == "state" and e["state"] == "agent")
            for i in range(5):
                two.say(sid, f"fråga {i}")
                await agent.wait(lambda e, i=i: e.get("text") == f"fråga {i}")
                await agent.send({"type": "send", "conversation_id": sid, "text": f"svar {i}", "ref": f"r{i}"})
                await citizen.wait(lambda e, i=i: e.get("text") == f"svar {i}")
            await citizen.send({"type": "typing", "typing": True})
            await agent.wait(lambda e: e["type"] == "typing")
            # Nothing lost, nothing twice, on either side.
            got = [e["text"] for e in citizen.events if e.get("type") == "message"]
            assert [t for t in got if t.startswith("svar")] == [f"svar {i}" for i in range(5)]
            heard = [e["text"] for e in agent.events if e.get("type") == "message" and e["sender"] == "citizen"]
            assert heard == [f"fråga {i}" for i in range(5)]
            # The queue seen on process one includes a handover made on process two.
            await agent.send({"type": "status", "status": "away", "ref": "away"})
            await agent.wait(lambda e: e.get("ref") == "away")
            waiting = two.citizen("sv", text="i kön")
            await agent.wait(lambda e: e["type"] == "queue" and any(i["id"] == waiting for i in e["items"]))
            await agent.close()
            await citizen.close()
        finally:
            one.stop()
            two.stop()
    finally:
        for key in token_env:
            os.environ.pop(key, None)
        drop()

"""Support for the agent-side tests: the real service (`kommunchatt serve`) in a subprocess, citizens
over the public chat API and WebSocket, and agents over the console WebSocket. No Rasa is needed:
conversations enter the queue through the internal handoff endpoint, as the action server does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import websockets

from kommunchatt.runner import free_port
from tests.harness import ServiceProcess, health_has

ROOT = Path(__file__).resolve().parent.parent
KOMMUNCHATT = str(Path(sys.executable).parent / "kommunchatt")
PASSWORD = "a long password"


class Service:
    """One `kommunchatt serve` process on a data dir; can be stopped, killed and started again."""

    def __init__(
        self,
        data_dir: Path,
        model_path: Path,
        database_url: str | None = None,
        redis_url: str | None = None,
        port: int | None = None,
        grace_s: float = 3.0,
        kb: Path | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "KOMMUNCHATT_DATA_DIR": str(self.data_dir),
            "KOMMUNCHATT_PORT": str(self.port),
            "KOMMUNCHATT_MODEL_PATH": str(model_path),
            "KOMMUNCHATT_AGENT_GRACE_S": str(grace_s),
            "KOMMUNCHATT_AGENT_HEARTBEAT_S": "1",
            "RASA_URL": f"http://127.0.0.1:{free_port()}",
            "ACTIONS_URL": f"http://127.0.0.1:{free_port()}",
        }
        self.env.pop("REDIS_URL", None)
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.process: subprocess.Popen | None = None
        self.admin_token: str | None = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if kb:  # a small knowledge base; its vectors are cached between runs (the cache is keyed by content)
            cache = ROOT / "var" / "test-handoff-index"
            cache.mkdir(parents=True, exist_ok=True)
            (self.data_dir / "index").symlink_to(cache, target_is_directory=True)
            self.cli("kb", "import", str(kb))

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [KOMMUNCHATT, *args],
            env={**self.env, "KOMMUNCHATT_PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    @property
    def token(self) -> str:
        return self.env.get("KOMMUNCHATT_INTERNAL_TOKEN") or (self.data_dir / "internal-token").read_text().strip()

    def start(self, timeout: float = 300) -> Service:
        """Start (again) and wait until the database and the model are up (tests/harness.py)."""
        self.server = ServiceProcess(self.env, self.url, self.data_dir / f"service-{self.port}.log")
        self.server.start(health_has("database", "model"), timeout=timeout)
        self.process = self.server.process
        return self

    def stop(self, kill: bool = False) -> None:
        if getattr(self, "server", None):
            self.server.stop(kill=kill)
        self.process = None

    # --- conveniences -------------------------------------------------------------------------------

    def agent(
        self,
        name: str,
        languages: str = "sv,en",
        municipalities: str = "default",
        max_chats: int = 3,
        role: str = "agent",
    ) -> str:
        """Create a user (with the CLI, or through the admin API once there is an admin); returns a session token."""
        if self.admin_token:
            created = self.staff(self.admin_token).post(
                "/api/v1/admin/users",
                json={
                    "username": name,
                    "password": PASSWORD,
                    "role": role,
                    "languages": languages.split(","),
                    "municipalities": municipalities.split(","),
                    "max_chats": max_chats,
                },
            )
            created.raise_for_status()
        else:
            self.cli(
                "user",
                "add",
                name,
                "--role",
                role,
                "--languages",
                languages,
                "--municipalities",
                municipalities,
                "--max-chats",
                str(max_chats),
            )
        token = self.login(name)
        if role == "admin" and not self.admin_token:
            self.admin_token = token
        return token

    def login(self, name: str) -> str:
        response = httpx.post(f"{self.url}/api/v1/auth/login", json={"username": name, "password": PASSWORD})
        response.raise_for_status()
        return response.json()["token"]

    def citizen(
        self, language: str = "sv", municipality: str = "default", text: str | None = None, reason: str = "requested"
    ) -> str:
        """A chat session handed over to the queue (optionally after a first message)."""
        session = httpx.post(
            f"{self.url}/api/v1/chat/sessions", json={"language": language, "municipality": municipality}
        )
        session.raise_for_status()
        sid = session.json()["session_id"]
        if text:
            self.say(sid, text)
        result = self.handoff(sid, reason)
        assert result["state"] == "queued", result
        return sid

    def handoff(self, sid: str, reason: str = "requested") -> dict:
        response = httpx.post(
            f"{self.url}/api/v1/internal/sessions/{sid}/handoff",
            json={"reason": reason},
            headers={"X-Internal-Token": self.token},
        )
        response.raise_for_status()
        return response.json()

    def say(self, sid: str, text: str, client_id: str | None = None) -> dict:
        response = httpx.post(
            f"{self.url}/api/v1/chat/sessions/{sid}/messages", json={"text": text, "client_id": client_id}, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def transcript(self, sid: str) -> dict:
        return httpx.get(f"{self.url}/api/v1/chat/sessions/{sid}").json()

    def staff(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {token}"}, timeout=30)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


@contextlib.contextmanager
def service(*args, **kwargs):
    svc = Service(*args, **kwargs).start()
    try:
        yield svc
    finally:
        svc.stop()


class Socket:
    """A WebSocket that collects every event, with helpers to wait for one."""

    def __init__(self, ws):
        self.ws = ws
        self.events: list[dict] = []
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def agent(cls, svc: Service, token: str) -> Socket:
        ws = await websockets.connect(
            f"{svc.ws_url}/api/v1/agent/ws", additional_headers={"authorization": f"Bearer {token}"}
        )
        return cls(ws)

    @classmethod
    async def citizen(cls, svc: Service, sid: str, after: int = 0) -> Socket:
        return cls(await websockets.connect(f"{svc.ws_url}/api/v1/chat/sessions/{sid}/ws?after={after}"))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                self.events.append(json.loads(raw))
                self._new.set()

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def wait(self, predicate, timeout: float = 15.0, start: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[start:]:
                if predicate(event):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching event; got {self.events[-10:]}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def wait_count(self, predicate, count: int, timeout: float = 20.0) -> list[dict]:
        """Until `count` events match."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if predicate(e)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} events; last: {self.events[-5:]}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), max(0.01, deadline - time.monotonic()))

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("type") == kind]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def fresh_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path

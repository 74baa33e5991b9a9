"""The service's client of the Rasa server: one citizen message in, the bot's messages out."""

from __future__ import annotations

import asyncio

import httpx

# Behind a balancer, a Rasa replica killed mid-turn shows as a dropped connection ("Server disconnected
# without sending a response") or a 502/503 while the balancer notices; the turn is sent once more, to
# another replica, which takes the conversation over once the dead one's lock expires.
RESEND_AFTER_S = 0.2
GONE = (httpx.RemoteProtocolError, httpx.ConnectError)
GONE_STATUSES = (502, 503)
WEBHOOK = "/webhooks/kommunchatt/webhook"
CONNECTIONS = 8


class RasaUnavailable(RuntimeError):
    pass


class RasaClient:
    def __init__(self, base_url: str, token: str, timeout: float = 10.0):
        self.base_url = base_url
        self.token = token  # Rasa's HTTP API (not the channel) is started with --auth-token
        # A few kept-alive connections: Rasa is one event loop, and httpcore checks every pooled connection
        # (a poll of its socket) on each request, which with one connection per concurrent turn was a fifth of
        # the service's CPU in a direct turn (bench/README.md, issue 18).
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, session_id: str, text: str, metadata: dict) -> list[dict]:
        """Post a message to the custom REST channel; returns Rasa's messages (text/buttons/custom)."""
        body = {"sender": session_id, "message": text, "metadata": metadata}
        try:
            response = await self._first_try(body)
            if response is None:
                await asyncio.sleep(RESEND_AFTER_S)
                response = await self._client.post(WEBHOOK, json=body)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(str(exc)) from exc

    async def _first_try(self, body: dict) -> httpx.Response | None:
        """Rasa's response, or None when the replica was gone (a dropped connection, 502/503 from the balancer)."""
        try:
            response = await self._client.post(WEBHOOK, json=body)
        except GONE:
            return None
        return None if response.status_code in GONE_STATUSES else response

    async def parse(self, text: str, timeout: float) -> dict:
        """Rasa's NLU alone (`/model/parse`: intent and entities, no tracker, no policies, no actions)."""
        try:
            response = await self._client.post(
                "/model/parse", params={"token": self.token}, json={"text": text}, timeout=timeout
            )
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(str(exc)) from exc
        if not isinstance(data, dict):
            raise RasaUnavailable("Rasa's parse is not an object")
        return data

    async def trigger(self, session_id: str, intent: str, entities: dict | None = None) -> list[dict]:
        """Inject an external intent (e.g. the agent handed back); returns the bot's messages."""
        try:
            response = await self._client.post(
                f"/conversations/{session_id}/trigger_intent",
                params={"token": self.token},
                json={"name": intent, "entities": entities or {}},
            )
            response.raise_for_status()
            return response.json().get("messages", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(str(exc)) from exc

    async def resume(self, session_id: str) -> None:
        """Un-pause the Rasa conversation (paused by the handoff): a paused one ignores every message."""
        try:
            response = await self._client.post(
                f"/conversations/{session_id}/tracker/events", params={"token": self.token}, json={"event": "resume"}
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise RasaUnavailable(str(exc)) from exc

    async def healthy(self) -> bool:
        try:
            return (await self._client.get("/", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

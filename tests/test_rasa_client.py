"""The service's Rasa client against a local server that fails the way a killed Rasa replica behind the
balancer does (a fault a user never causes, so it is simulated): the turn is sent once more; a Rasa that
stays gone is RasaUnavailable (the citizen gets the apology and a way to a person)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conversations.rasa_client import RasaClient, RasaUnavailable


class _Dying(BaseHTTPRequestHandler):
    faults: list[str | int] = []  # "drop" (no response at all) or a status, before answering properly
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault == "drop":
            self.close_connection = True
            return
        body = json.dumps([{"recipient_id": "s1", "text": "Hej!"}]).encode()
        self.send_response(fault or 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def rasa() -> Iterator[tuple[type[_Dying], str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dying)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Dying.faults, _Dying.calls = [], 0
    yield _Dying, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def send(url: str) -> list[dict]:
    async def run() -> list[dict]:
        client = RasaClient(url, "t" * 32, timeout=5)
        try:
            return await client.send("s1", "hej", {})
        finally:
            await client.close()

    return asyncio.run(run())


@pytest.mark.parametrize("fault", ["drop", 502, 503])
def test_a_turn_is_sent_again_when_the_replica_is_gone(rasa, fault) -> None:
    server, url = rasa
    server.faults = [fault]
    assert send(url) == [{"recipient_id": "s1", "text": "Hej!"}]
    assert server.calls == 2


def test_a_rasa_that_stays_gone_is_unavailable(rasa) -> None:
    server, url = rasa
    server.faults = ["drop", "drop"]
    with pytest.raises(RasaUnavailable):
        send(url)
    assert server.calls == 2


def test_an_error_of_rasa_itself_is_not_sent_again(rasa) -> None:
    server, url = rasa
    server.faults = [500]
    with pytest.raises(RasaUnavailable):
        send(url)
    assert server.calls == 1

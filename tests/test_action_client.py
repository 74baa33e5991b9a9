"""The actions' HTTP client to the service, against a local server that fails the way a dying replica
behind the balancer does (a fault a user never causes, so it is simulated here): answers are asked
again; a call-back request is not left twice."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from actions import service


class _Flaky(BaseHTTPRequestHandler):
    failures: list[int | str] = []  # statuses (or "drop": no answer at all) before answering properly
    calls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.calls.append(self.path)
        status = self.failures.pop(0) if self.failures else 200
        if status == "drop":  # the balancer closes the connection without an answer
            self.close_connection = True
            return
        body = json.dumps({"decision": "answer", "answers": []} if "answer" in self.path else {"ticket_id": 1})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def flaky(monkeypatch) -> Iterator[type[_Flaky]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SERVICE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    _Flaky.failures, _Flaky.calls = [], []
    yield _Flaky
    server.shutdown()


def test_an_answer_is_asked_again_when_the_balancer_says_the_replica_is_gone(flaky) -> None:
    flaky.failures = [502, 503]
    assert service.answer("hej", "sv", "default", "s1")["decision"] == "answer"
    assert flaky.calls == ["/api/v1/answer"] * 3


def test_an_answer_fails_clearly_when_no_replica_answers(flaky) -> None:
    flaky.failures = [503, 503, 503]
    with pytest.raises(service.ServiceError):
        service.answer("hej", "sv", "default", "s1")
    assert len(flaky.calls) == 3


def test_a_call_back_that_reached_the_service_is_not_sent_twice(flaky) -> None:
    flaky.failures = [502]
    with pytest.raises(service.ServiceError):
        service.callback("s1", {"message": "ring mig", "phone": "[telefon]", "consent": True})
    assert len(flaky.calls) == 1


def test_an_answer_is_asked_again_when_the_connection_closes_without_an_answer(flaky) -> None:
    flaky.failures = ["drop"]
    assert service.answer("hej", "sv", "default", "s1")["decision"] == "answer"
    assert flaky.calls == ["/api/v1/answer"] * 2


def test_a_call_back_is_not_sent_again_after_a_closed_connection(flaky) -> None:
    flaky.failures = ["drop"]
    with pytest.raises(service.ServiceError):
        service.callback("s1", {"message": "ring mig", "phone": "[telefon]", "consent": True})
    assert len(flaky.calls) == 1

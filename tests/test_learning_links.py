"""The link check (issue 19, point 3) against local HTTP servers: good, missing (404), slow (timeout) and
HEAD-refusing (405) pages; only the municipality's own hosts; bounded and polite; a link broken twice in a
row is on its entry owner's list, a good one never; the daily schedule claimed by one process. Each test
runs on SQLite and PostgreSQL (tests/conftest.py `engine`)."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core import errors
from core.config import Settings
from core.municipalities import update_settings
from core.users import UserStore
from knowledge.entries import Entry
from knowledge.store import KnowledgeStore
from learning import api, jobs, links, owners, worklist
from learning.claims import learning_jobs


class _Log:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, str, float]] = []  # method, host header, path, arrival
        self.in_flight = self.max_in_flight = 0
        self.down: set[str] = set()  # paths that answer 503 for now

    def enter(self, method: str, host: str, path: str) -> None:
        with self.lock:
            self.requests.append((method, host, path, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def _handler(log: _Log):
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            log.enter(self.command, self.headers.get("host", ""), self.path)
            try:
                if self.path.startswith("/slow"):
                    time.sleep(1.5)
                if self.path.startswith("/busy"):
                    time.sleep(0.3)
                if self.path.startswith("/nohead") and self.command == "HEAD":
                    code = 405
                elif self.path.startswith("/missing"):
                    code = 404
                elif self.path in log.down:
                    code = 503
                else:
                    code = 200
                self.send_response(code)
                self.send_header("content-length", "2")
                self.end_headers()
                if body:
                    self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                log.leave()

        def do_HEAD(self):  # noqa: N802 - http.server's names
            self._answer(False)

        def do_GET(self):  # noqa: N802
            self._answer(True)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def sites():
    """Three local web servers on 127.0.0.1, .2 and .3 (three hosts), logging every request."""
    log = _Log()
    servers = []
    for address in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        server = ThreadingHTTPServer((address, 0), _handler(log))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield SimpleNamespace(log=log, base=[f"http://{s.server_address[0]}:{s.server_address[1]}" for s in servers])
    for server in servers:
        server.shutdown()
        server.server_close()


def _entry(engine, entry_id: str, url: str | None, answer: str, tags=("avfall",)) -> None:
    KnowledgeStore(engine).upsert(Entry(entry_id, {"sv": answer}, {"sv": [f"{entry_id}?"]}, list(tags), url=url))


def _settings(engine, **values) -> None:
    update_settings(engine, "default", {"link_check": {"per_host_delay_s": 0.05, "timeout_s": 0.5, **values}})


def test_broken_links_are_flagged_after_two_checks_good_ones_and_other_hosts_never(engine, sites):
    own, elsewhere = sites.base[0], sites.base[1].replace("127.0.0.2", "localhost")
    _entry(engine, "sophamtning", f"{own}/ok", f"Se {own}/missing. Eller {own}/nohead, och {elsewhere}/missing!")
    _entry(engine, "slam", None, f"Tömning: {own}/slow (ring oss).", tags=("vatten",))
    vatten = owners.create_department(engine, "default", "Vatten", [])
    owners.set_owner(engine, "default", "topic", "vatten", vatten["id"], "webb")
    _settings(engine)

    first = asyncio.run(links.check_municipality(engine, "default"))
    assert first["checked"] == 4 and first["flagged"] == 0
    assert first["broken"] == sorted([f"{own}/missing", f"{own}/slow"])
    assert first["skipped"] == [f"{elsewhere}/missing"]
    assert worklist.items(engine, "default") == []  # once is not yet broken: a site's bad minute

    second = asyncio.run(links.check_municipality(engine, "default"))
    assert second["flagged"] == 2
    flagged = {i["entry_id"]: i for i in worklist.items(engine, "default", kind="broken_link")}
    assert set(flagged) == {"sophamtning", "slam"}
    assert flagged["sophamtning"]["detail"]["url"] == f"{own}/missing"
    assert flagged["sophamtning"]["detail"]["status"] == 404
    assert flagged["slam"]["detail"]["status"] is None and "Timeout" in flagged["slam"]["detail"]["error"]
    assert flagged["slam"]["department_id"] == vatten["id"]  # the owner of the entry's topic
    assert asyncio.run(links.check_municipality(engine, "default"))["flagged"] == 0  # already on the list

    hosts = {host.split(":")[0] for _m, host, _p, _t in sites.log.requests}
    assert hosts == {"127.0.0.1"}  # localhost (another host) was never asked
    methods = [(m, p) for m, _h, p, _t in sites.log.requests if p == "/nohead"]
    assert methods[:2] == [("HEAD", "/nohead"), ("GET", "/nohead")]  # GET only after HEAD was refused
    assert all(m == "HEAD" for m, _h, p, _t in sites.log.requests if p in ("/ok", "/missing"))
    status = {s["url"]: s for s in links.statuses(engine, "default")}
    assert status[f"{own}/ok"]["failures"] == 0 and status[f"{own}/missing"]["failures"] == 3


def test_a_link_must_fail_twice_in_a_row(engine, sites):
    own = sites.base[0]
    _entry(engine, "a", f"{own}/page", "Svar.")
    _settings(engine)
    flagged = []
    for down in (True, False, True, True):  # broken, fixed, broken, still broken
        sites.log.down = {"/page"} if down else set()
        flagged.append(asyncio.run(links.check_municipality(engine, "default"))["flagged"])
    assert flagged == [0, 0, 0, 1]
    (item,) = worklist.items(engine, "default")
    assert (item["kind"], item["entry_id"], item["detail"]["failures"]) == ("broken_link", "a", 2)


def test_configured_hosts_bound_the_check_and_requests_are_polite_and_bounded(engine, sites):
    a, b, c = sites.base
    urls = [f"{base}/busy{n}" for base in (a, b, c) for n in range(3)]
    _entry(engine, "many", None, " ".join(urls))
    _entry(engine, "own-url-elsewhere", f"{c}/ok", "Svar.")  # its url's host is not in the configured hosts
    _settings(engine, hosts=["127.0.0.1", "127.0.0.2"], concurrency=2, per_host_delay_s=0.2, timeout_s=2)

    report = asyncio.run(links.check_municipality(engine, "default"))
    assert report["checked"] == 6 and report["broken"] == []
    assert {h.split(":")[0] for _m, h, _p, _t in sites.log.requests} == {"127.0.0.1", "127.0.0.2"}
    assert sites.log.max_in_flight == 2  # two hosts at once, never more than the bound
    for host in ("127.0.0.1", "127.0.0.2"):
        times = sorted(t for _m, h, _p, t in sites.log.requests if h.startswith(host))
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        assert len(times) == 3 and min(gaps) >= 0.3 + 0.2 - 0.05  # one at a time (0.3 s each), 0.2 s apart


def _client(engine, tmp_path):
    app = FastAPI()
    errors.install(app)
    app.include_router(api.admin)
    app.state.c = SimpleNamespace(engine=engine, users=UserStore(engine), settings=Settings(data_dir=tmp_path))
    return TestClient(app)


def test_run_the_check_now_over_rest(engine, sites, tmp_path):
    own = sites.base[0]
    _entry(engine, "a", f"{own}/ok", f"Se även {own}/missing")
    _settings(engine)
    UserStore(engine).create("webb", "password-123", role="webmaster", municipalities=["default"], languages=["sv"])
    UserStore(engine).create("agent", "password-123", role="agent", municipalities=["default"], languages=["sv"])
    web = {"authorization": "Bearer " + UserStore(engine).login("webb", "password-123")[0]}
    agent = {"authorization": "Bearer " + UserStore(engine).login("agent", "password-123")[0]}
    with _client(engine, tmp_path) as client:
        assert client.post("/api/v1/admin/links/check?wait=true", headers=agent).status_code == 403
        for _ in range(2):
            report = client.post("/api/v1/admin/links/check?wait=true", headers=web)
            assert report.status_code == 200, report.text
        assert report.json()["flagged"] == 1 and report.json()["broken"] == [f"{own}/missing"]
        started = client.post("/api/v1/admin/links/check", headers=web).json()
        assert started["started"] is True
        statuses = client.get("/api/v1/admin/links", headers=web).json()
        assert {s["url"]: s["status"] for s in statuses} == {f"{own}/ok": 200, f"{own}/missing": 404}
        assert client.post("/api/v1/admin/links/check?wait=true&municipality=nej", headers=web).status_code == 403

        default = client.get("/api/v1/admin/links/settings", headers=web).json()
        assert default["every_hours"] == 24 and default["per_host_delay_s"] == 0.05  # what _settings stored
        bad = client.put("/api/v1/admin/links/settings", json={"per_host_delay_s": 0}, headers=web)
        assert bad.status_code == 422  # no hammering of the municipality's site
        put = client.put(
            "/api/v1/admin/links/settings", json={"hosts": ["WWW.Ekby.se"], "every_hours": 12}, headers=web
        )
        assert put.status_code == 200 and put.json()["hosts"] == ["www.ekby.se"]
        assert client.put("/api/v1/admin/links/settings", json={}, headers=agent).status_code == 403
        deadline = time.monotonic() + 10
        while links.checking("default"):  # the check started above without waiting
            assert time.monotonic() < deadline
            time.sleep(0.05)
        report = client.post("/api/v1/admin/links/check?wait=true", headers=web).json()
        assert report["checked"] == 0 and len(report["skipped"]) == 2  # 127.0.0.1 is no longer the site


def test_the_scheduled_check_runs_once_per_period_across_processes(engine, sites):
    _entry(engine, "a", f"{sites.base[0]}/ok", "Svar.")
    _settings(engine, every_hours=1)
    settings = municipality_settings(engine)
    first = asyncio.run(jobs.link_check_if_due(engine, "default", settings))
    assert first["checked"] == 1
    assert asyncio.run(jobs.link_check_if_due(engine, "default", settings)) is None  # claimed for the hour
    with engine.begin() as conn:  # an hour later
        conn.execute(learning_jobs.update().values(started_at=learning_jobs.c.started_at - 3601))
    assert asyncio.run(jobs.link_check_if_due(engine, "default", settings))["checked"] == 1
    off = {**settings, "link_check": {**settings["link_check"], "enabled": False}}
    with engine.begin() as conn:
        conn.execute(learning_jobs.update().values(started_at=0))
    assert asyncio.run(jobs.link_check_if_due(engine, "default", off)) is None
    assert len([r for r in sites.log.requests if r[2] == "/ok"]) == 2


def municipality_settings(engine) -> dict:
    from core.municipalities import settings

    return settings(engine, "default")

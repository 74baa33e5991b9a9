"""Several replicas on one machine: N service processes, N Rasa servers and N action servers behind
HAProxy, sharing PostgreSQL (data and Rasa's tracker store) and Redis (live events and Rasa's lock
store). What a municipality's operations team runs across machines (deploy/), on one machine, so
the failure of one replica can be tested here (tests/test_replicas.py) and tried (`make replicas`).

    citizens, agents ──> HAProxy :port ──> service 1..N ──> HAProxy :rasa ──> Rasa 1..N
                                             ^    │                               │
                                             │    └── PostgreSQL, Redis ──────────┤ tracker, lock store
                          HAProxy :service <─┴─── action server 1..N <── HAProxy :actions

HAProxy retries a request whose server died before answering, or mid-way through its answer's head
(`retry-on`, `junk-response`: a 502 "invalid or incomplete response" otherwise), on another one: a
citizen's message is safe to resend (its client id makes it idempotent, and a stored message that
was never answered is answered on the resend), and a Rasa turn of a killed replica is taken over by
another once its conversation lock expires (TICKET_LOCK_LIFETIME, 3 s here instead of Rasa's 60 s).
Each replica's processes are supervised (restarted with back-off) like `make run`'s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from kommunchatt.runner import ROOT, StartError, System, free_port, prepare
from kommunchatt.supervisor import Supervisor

LOCK_LIFETIME_S = 3  # a killed Rasa replica's conversation locks block others this long, at most

HAPROXY_CFG = """# Written by kommunchatt/replicas.py for one machine; deploy/haproxy/haproxy.cfg is the deployment's.
global
    maxconn 4096

defaults
    mode http
    option redispatch
    retries 3
    retry-on conn-failure empty-response junk-response response-timeout
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout tunnel 1h
    timeout http-keep-alive 30s
    # A killed replica refuses the check's connection at once (down within a second: fall 2, inter 500ms),
    # however long a check may wait; a busy one may take seconds to answer it. Without `timeout check` the
    # check had to answer within `inter`: the one Rasa left after a kill, serving every turn, missed it
    # and was marked down, and HAProxy answered every turn with 503 (no server available) until it
    # answered a check in time again (69 apologies in tests/test_replicas.py; with 3 s still 22).
    timeout check 10s
    default-server check inter 500ms fall 2 rise 2
    # Even 10 s was not always enough: while a killed Rasa restarts (a minute of CPU on two cores), the one left
    # had 117 turns in flight, missed two checks and was marked down; with no server up, HAProxy answered 503
    # to every turn (38 apologies in tests/test_replicas.py). Each server is therefore listed twice: checked,
    # and as an unchecked backup that is used only when every checked one is down. A dead one among the
    # backups refuses the connection at once and the request is retried on the next (`redispatch`).
    option allbackups

frontend service
    bind 127.0.0.1:{service}
    default_backend service

backend service
    balance leastconn
    option httpchk GET /health/ready
{service_servers}

frontend rasa
    bind 127.0.0.1:{rasa}
    default_backend rasa

backend rasa
    balance roundrobin
    option httpchk GET /
{rasa_servers}

frontend actions
    bind 127.0.0.1:{actions}
    default_backend actions

backend actions
    balance roundrobin
    option httpchk GET /health
{actions_servers}
"""


def haproxy_config(front: dict[str, int], replicas: list[System]) -> str:
    def servers(kind: str, port_of) -> str:
        addresses = [(f"{kind}{i + 1}", f"127.0.0.1:{port_of(r)}") for i, r in enumerate(replicas)]
        checked = [f"    server {name} {address}" for name, address in addresses]
        anyway = [f"    server {name}-anyway {address} backup no-check" for name, address in addresses]
        return "\n".join(checked + anyway)

    return HAPROXY_CFG.format(
        **front,
        service_servers=servers("service", lambda r: r.service_port),
        rasa_servers=servers("rasa", lambda r: r.rasa_port),
        actions_servers=servers("actions", lambda r: r.actions_port),
    )


@dataclass
class ReplicaSet:
    data_dir: Path
    database_url: str
    redis_url: str
    count: int = 2
    port: int = 8000
    front: dict[str, int] = field(default_factory=dict)
    replicas: list[System] = field(default_factory=list)
    balancer: Supervisor | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plan(self) -> None:
        """Ports and environments: every process reaches the others through HAProxy, never directly."""
        if not self.database_url.startswith("postgres") or not self.redis_url:
            raise StartError("Several replicas need PostgreSQL (DATABASE_URL) and Redis (REDIS_URL).")
        self.front = {"service": self.port, "rasa": free_port(), "actions": free_port()}
        redis = urlparse(self.redis_url)
        shared = {
            "RASA_URL": f"http://127.0.0.1:{self.front['rasa']}",
            "ACTIONS_URL": f"http://127.0.0.1:{self.front['actions']}",
            "SERVICE_URL": self.url,
            "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{self.front['actions']}/webhook",
            "RASA_LOCK_REDIS_HOST": redis.hostname or "127.0.0.1",
            "RASA_LOCK_REDIS_PORT": str(redis.port or 6379),
            "TICKET_LOCK_LIFETIME": str(LOCK_LIFETIME_S),
        }
        self.replicas = [
            System(
                data_dir=self.data_dir,
                service_port=free_port(),
                rasa_port=free_port(),
                actions_port=free_port(),
                database_url=self.database_url,
                redis_url=self.redis_url,
                log_dir=self.data_dir / "logs" / f"replica-{i + 1}",
                rasa_endpoints="deploy/rasa/endpoints.yml",
                extra_env=shared,
            )
            for i in range(self.count)
        ]

    def start(self, rasa_model: Path, report=print) -> None:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise StartError("HAProxy is not installed: `make haproxy` (or apt-get install haproxy).")
        self.plan()
        config = self.data_dir / "haproxy.cfg"
        config.write_text(haproxy_config(self.front, self.replicas))
        self.balancer = Supervisor(ROOT, dict(os.environ), report=report)
        self.balancer.add("haproxy", [haproxy, "-db", "-f", str(config)], self.data_dir / "logs" / "haproxy.log")
        self.balancer.start_all()
        for i, replica in enumerate(self.replicas):
            replica.start(rasa_model, report=lambda line, n=i + 1: report(f"replica {n}: {line}"))
            if i == 0:  # the first Rasa creates the tracker tables; two creating them at once collide
                replica.wait_ready(timeout=600)

    def wait_ready(self, timeout: float = 600) -> None:
        """Every replica's own /health (through its own ports), then the balancer's."""
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            replica.wait_ready(timeout=timeout)
            while not all(replica.part_states().values()):  # its own Rasa too, not just any through HAProxy
                if time.monotonic() > deadline:
                    raise StartError(f"a replica was not up after {timeout:.0f} s: {replica.part_states()}")
                time.sleep(0.5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=3).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise StartError(f"HAProxy at {self.url} did not answer healthy; see {self.data_dir / 'logs'}.")

    def supervise_in_background(self) -> None:
        for supervisor in [self.balancer, *(r.supervisor for r in self.replicas)]:
            supervisor.run_in_background(every=0.25)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        if self.balancer:
            self.balancer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="Run several replicas behind HAProxy on this machine.")
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    data_dir = Path(os.environ.get("KOMMUNCHATT_DATA_DIR", "var")).resolve()
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    replica_set = ReplicaSet(
        data_dir, database_url, redis_url, args.replicas, int(os.environ.get("KOMMUNCHATT_PORT", "8000"))
    )
    try:
        model = prepare(data_dir, database_url)
        replica_set.start(model)
        replica_set.wait_ready()
    except (StartError, KeyboardInterrupt) as exc:
        replica_set.stop()
        print(f"error: {exc}" if isinstance(exc, StartError) else "stopped", file=sys.stderr)
        return 1
    print(
        f"\n{args.replicas} replicas are ready behind HAProxy at {replica_set.url} (config: "
        f"{data_dir / 'haproxy.cfg'}). Press Ctrl-C to stop."
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        replica_set.supervise_in_background()
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        replica_set.stop()


if __name__ == "__main__":
    sys.exit(main())

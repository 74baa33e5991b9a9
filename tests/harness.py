"""The one way tests and benches start the real service: in a subprocess, on a free port and a data dir.

- `ServiceProcess`: one `kommunchatt serve`, started and waited for (a readiness check of your choice),
  stopped (SIGTERM) or killed (SIGKILL), started again on the same data dir. Used by `running_service`,
  the agent-side tests' `Service` (tests/test_handoff_support.py) and bench/handoff.py.
- `running_system`: the three processes (service, Rasa, actions) through `kommunchatt.runner.System`, the
  same start-up path as `make run`. Used by the end-to-end tests and bench/dialogue.py.
- `running_service`: the service alone with the seed knowledge base (no Rasa), for API and page tests.
The fast in-process layer (the app in the test's own process) is tests/inprocess.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from kommunchatt.runner import System, free_port, prepare

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("KOMMUNCHATT_DATA_DIR", ROOT / "var"))
# Tests and benches drive many citizens from one address (127.0.0.1): the per-address and per-session rate
# limits (core/ratelimit.py) are lifted for the processes started from here; tests/test_trust_service.py and
# tests/test_security_http.py check the limits themselves with their own settings.
def lift_rate_limits() -> None:
    from core.ratelimit import DEFAULTS

    for name in DEFAULTS:
        os.environ.setdefault(f"KOMMUNCHATT_LIMIT_{name.upper()}", "1000000/minute")


lift_rate_limits()
SHARED_MODEL = SHARED_DATA / "models" / "multilingual-e5-small"

Ready = Callable[[str], bool]


def openapi_answers(url: str) -> bool:
    """Ready when the API answers (health would report Rasa down when the service runs alone)."""
    return httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200


def health_has(*parts: str) -> Ready:
    """Ready when /health reports these parts up (say "database", "model")."""

    def ready(url: str) -> bool:
        health = httpx.get(f"{url}/health", timeout=5).json()
        return all(health.get(part) for part in parts)

    return ready


class ServiceProcess:
    """One `kommunchatt serve` process with `env` (its port, data dir, database ...), logging to `log_path`."""

    def __init__(self, env: dict[str, str], url: str, log_path: Path):
        self.env, self.url, self.log_path = env, url, Path(log_path)
        self.process: subprocess.Popen | None = None

    def start(self, ready: Ready = openapi_answers, timeout: float = 300) -> float:
        """Start and wait until `ready(url)`; returns the seconds it took. A process that exits or never gets
        ready raises with the end of its log (and is never left behind)."""
        began = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "kommunchatt.cli", "serve"], cwd=ROOT,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if ready(self.url):
                    return time.monotonic() - began
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"the service did not get ready in {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown) or SIGKILL (a crash); waits for the process either way."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def prime_data_dir(data_dir: Path) -> None:
    """Share the seed's vector cache (content-addressed, so safe to copy): no test re-encodes the seed."""
    vectors = SHARED_DATA / "index" / "vectors"
    if vectors.exists():
        shutil.copytree(vectors, data_dir / "index" / "vectors", dirs_exist_ok=True)


def _system(data_dir: Path, database_url: str | None, redis_url: str | None, port: int = 0) -> System:
    return System(data_dir=data_dir, service_port=port or free_port(), rasa_port=free_port(),
                  actions_port=free_port(), database_url=database_url, redis_url=redis_url)


@contextlib.contextmanager
def running_system(data_dir: Path, database_url: str | None = None, redis_url: str | None = None) -> Iterator[System]:
    """Start service, Rasa and actions on free ports; models are shared with `make run`."""
    os.environ.setdefault("KOMMUNCHATT_MODEL_PATH", str(SHARED_MODEL))
    os.environ.setdefault("KOMMUNCHATT_RASA_MODELS", str(SHARED_DATA / "rasa-models"))
    prime_data_dir(data_dir)
    model = prepare(data_dir, database_url, log=lambda *_: None)
    system = _system(data_dir, database_url, redis_url)
    system.start(model)
    try:
        system.wait_ready(timeout=240)
        yield system
    finally:
        system.stop()


@contextlib.contextmanager
def running_service(data_dir: Path, database_url: str | None = None, redis_url: str | None = None,
                    port: int = 0) -> Iterator[System]:
    """Only the service process (no Rasa): for API, agent and workshop tests that need no dialogue.

    Its /health reports Rasa as down, so readiness is the OpenAPI document answering.
    """
    from kommunchatt.runner import seed_knowledge

    os.environ.setdefault("KOMMUNCHATT_MODEL_PATH", str(SHARED_MODEL))
    prime_data_dir(data_dir)
    seed_knowledge(data_dir, database_url, log=lambda *_: None)
    system = _system(data_dir, database_url, redis_url, port)
    service = ServiceProcess(system.env(), system.service_url, data_dir / "service.log")
    try:
        service.start(openapi_answers, timeout=300)  # a loaded machine needs minutes to load the model
        system.processes["service"] = service.process
        yield system
    finally:
        system.processes.pop("service", None)
        service.stop()
        system.stop()

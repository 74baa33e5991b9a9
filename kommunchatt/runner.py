"""Starts the whole system: builds what is missing, then the service, Rasa and the action server,
and keeps them running.

Used by `make run` and by the end-to-end tests (with free ports and a temporary data dir), so both
exercise the same start-up path. Every step says what it does and how long it took; the slow ones
(Rasa training, encoding the knowledge base) show their progress. All the work happens before the
processes start (`prepare`), so the health wait only covers loading, never encoding. Once ready, a
crashed process is restarted with back-off while the others keep running (kommunchatt/supervisor.py).
Warnings of the libraries go to `<data dir>/logs/`, not to the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from core.config import database_url, internal_token
from kommunchatt.progress import ProgressEmbedder, Steps, Ticker
from kommunchatt.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent
RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
RASA_INPUTS = ["config.yml", "bot", "data/nlu.yml", "data/rules.yml", "data/stories.yml", "actions"]


class StartError(RuntimeError):
    """A failed step, with one sentence naming the cause and the fix."""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rasa_fingerprint() -> str:
    """A hash of everything Rasa trains from: retrain only when it changes."""
    digest = hashlib.sha256()
    for name in RASA_INPUTS:
        path = ROOT / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.suffix in (".yml", ".yaml"):
                digest.update(str(file.relative_to(ROOT)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def rasa_models_dir(data_dir: Path) -> Path:
    return Path(os.environ.get("KOMMUNCHATT_RASA_MODELS", data_dir / "rasa-models"))


def train_rasa(models_dir: Path, log=print) -> Path:
    """The trained model for the current training data; trains only if none exists for it."""
    fingerprint = rasa_fingerprint()
    model = models_dir / f"kommunchatt-{fingerprint}.tar.gz"
    if model.exists():
        return model
    if not RASA_BIN.exists():
        raise StartError(f"Rasa is not installed in {RASA_BIN.parent.parent}: run `make setup` first.")
    log(f"training the Rasa model (training data changed, fingerprint {fingerprint}; 1.5-3 min) ...")
    started = time.monotonic()
    models_dir.mkdir(parents=True, exist_ok=True)
    train_log = models_dir / f"train-{fingerprint}.log"
    ticker = Ticker("training", lambda: training_phase(train_log)) if log is print else contextlib.nullcontext()
    with open(train_log, "wb") as out, ticker:
        code = subprocess.call(
            [
                str(RASA_BIN),
                "train",
                "--config",
                "config.yml",
                "--domain",
                "bot/domain.yml",
                "--data",
                "data/nlu.yml",
                "data/rules.yml",
                "data/stories.yml",
                "--out",
                str(models_dir),
                "--fixed-model-name",
                f"kommunchatt-{fingerprint}",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if code != 0 or not model.exists():
        tail = "\n".join(train_log.read_text(errors="replace").strip().splitlines()[-15:])
        raise StartError(f"Rasa training failed; fix the training data and run again (log: {train_log}):\n{tail}")
    log(f"trained the Rasa model in {time.monotonic() - started:.0f} s (log: {train_log})")
    return model


def training_phase(train_log: Path) -> str:
    """What Rasa says it is doing, from the end of its log: the component and its epochs."""
    with open(train_log, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
        tail = f.read().decode("utf-8", errors="replace").replace("\r", "\n").splitlines()
    epochs = ""
    for line in reversed(tail):
        if "Epochs:" in line and "/" in line and not epochs:
            parts = line.rsplit("Epochs:", 1)[1].split("|")
            epochs = " epochs " + (parts[2].split("[")[0].strip() if len(parts) > 2 else parts[0].strip())
        elif "Starting to train component" in line:
            return line.rsplit("component", 1)[1].strip(" '.") + epochs
        elif "Finished training component" in line or "Restored component" in line:
            return line.rsplit("component", 1)[1].replace("from cache", "").strip(" '.") + " done"
    return ""


def tracker_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """Rasa's SQL tracker store follows the service's database choice."""
    if database_url.startswith("postgresql"):
        url = urlparse(database_url.replace("+psycopg", ""))
        return {
            "RASA_TRACKER_DIALECT": "postgresql",
            "RASA_TRACKER_DB": url.path.lstrip("/") or "postgres",
            "RASA_TRACKER_HOST": url.hostname or "127.0.0.1",
            "RASA_TRACKER_PORT": str(url.port or 5432),
            "RASA_TRACKER_USER": url.username or "postgres",
            "RASA_TRACKER_PASSWORD": url.password or "",
        }
    return {
        "RASA_TRACKER_DIALECT": "sqlite",
        "RASA_TRACKER_DB": str(data_dir / "rasa-tracker.db"),
        "RASA_TRACKER_HOST": "",
        "RASA_TRACKER_PORT": "",
        "RASA_TRACKER_USER": "",
        "RASA_TRACKER_PASSWORD": "",
    }


@dataclass
class System:
    """The three processes of one install (or one replica set's share of them), supervised."""

    data_dir: Path
    service_port: int = 8000
    rasa_port: int = 5005
    actions_port: int = 5055
    database_url: str | None = None
    redis_url: str | None = None
    log_dir: Path | None = None
    rasa_endpoints: str = "bot/endpoints.yml"
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)  # started outside the supervisor
    supervisor: Supervisor | None = None

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    @property
    def logs(self) -> Path:
        return self.log_dir or self.data_dir / "logs"

    def env(self) -> dict[str, str]:
        """Every process's environment; the internal token travels here, never on a command line."""
        env = {
            **os.environ,
            "KOMMUNCHATT_DATA_DIR": str(self.data_dir),
            "PYTHONPATH": str(ROOT),
            "RASA_TELEMETRY_ENABLED": "false",
        }
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        token = internal_token(self.data_dir)
        env.update(
            KOMMUNCHATT_PORT=str(self.service_port),
            KOMMUNCHATT_INTERNAL_TOKEN=token,
            RASA_URL=f"http://127.0.0.1:{self.rasa_port}",
            ACTIONS_URL=f"http://127.0.0.1:{self.actions_port}",
            ACTIONS_PORT=str(self.actions_port),
            ACTIONS_INTERFACE="127.0.0.1",
            SERVICE_URL=self.service_url,
            ACTION_ENDPOINT_URL=f"http://127.0.0.1:{self.actions_port}/webhook",
            **tracker_env(database_url(self.data_dir, self.database_url), self.data_dir),
        )
        env.update(self.extra_env)
        return env

    def check_ports(self) -> None:
        for name, port in (("service", self.service_port), ("Rasa", self.rasa_port), ("actions", self.actions_port)):
            if not port_free(port):
                raise StartError(
                    f"Port {port} (for the {name}) is in use: stop what runs there (`ss -ltnp | grep {port}`) "
                    f"or choose other ports (KOMMUNCHATT_PORT, RASA_PORT, ACTIONS_PORT)."
                )

    def commands(self, rasa_model: Path) -> dict[str, tuple[list[str], str]]:
        """Each process: its command line (no secrets) and the URL that says it is up."""
        rasa_python = str(RASA_PYTHON)
        return {
            "service": ([sys.executable, "-m", "kommunchatt.cli", "serve"], f"{self.service_url}/health/live"),
            "actions": ([rasa_python, "-m", "bot.action_server"], f"http://127.0.0.1:{self.actions_port}/health"),
            "rasa": (
                [
                    rasa_python,
                    "-m",
                    "bot.server",
                    "--interface",
                    "127.0.0.1",
                    "--port",
                    str(self.rasa_port),
                    "--model",
                    str(rasa_model),
                    "--endpoints",
                    self.rasa_endpoints,
                    "--credentials",
                    "bot/credentials.yml",
                ],
                f"http://127.0.0.1:{self.rasa_port}/",
            ),
        }

    def start(self, rasa_model: Path, report: Callable[[str], None] = print) -> None:
        self.check_ports()
        if not RASA_PYTHON.exists():
            raise StartError(f"Rasa is not installed in {RASA_PYTHON.parent.parent}: run `make setup` first.")
        self.supervisor = Supervisor(ROOT, self.env(), report=report)
        for name, (command, health) in self.commands(rasa_model).items():
            self.supervisor.add(name, command, self.logs / f"{name}.log", health)
        self.supervisor.start_all()

    def children(self) -> dict[str, subprocess.Popen]:
        """The current process of each part (a restart replaces it)."""
        running = {n: c.proc for n, c in self.supervisor.children.items() if c.proc} if self.supervisor else {}
        return {**self.processes, **running}

    def part_states(self) -> dict[str, bool]:
        """Whether each part answers its own health URL (before the service can report on the others)."""
        states = {}
        for name, child in self.supervisor.children.items() if self.supervisor else ():
            try:
                states[name] = httpx.get(child.health_url, timeout=2).status_code == 200
            except httpx.HTTPError:
                states[name] = False
        return states

    def wait_ready(self, timeout: float = 300, show: bool = False) -> dict:
        """Until the service's /health says every part is up. `timeout` covers loading only: the
        encoding and training happened before (`prepare`)."""
        deadline = time.monotonic() + timeout
        last: dict = {}
        states: dict[str, bool] = {}

        def status() -> str:
            return "  ".join(f"{n} {'up' if up else 'starting'}" for n, up in states.items())

        ticker = Ticker("waiting for", status, every=10) if show else contextlib.nullcontext()
        with ticker:
            while time.monotonic() < deadline:
                for name, proc in self.children().items():
                    if proc.poll() is not None:
                        log = self.logs / f"{name}.log"
                        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-15:])
                        raise StartError(f"The {name} process stopped while starting; its log is {log}:\n{tail}")
                states = self.part_states()
                try:
                    response = httpx.get(f"{self.service_url}/health", timeout=3)
                    last = response.json()
                    if response.status_code == 200:
                        return last
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.5)
        raise StartError(
            f"The system was not healthy after {timeout:.0f} s (parts: {status()}; last health: {last}); "
            f"see the logs in {self.logs}."
        )

    def stop(self) -> None:
        if self.supervisor:
            self.supervisor.stop()
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()


def prepare(data_dir: Path, database_url: str | None = None, log=print, steps: Steps | None = None) -> Path:
    """Everything before start: the embedding model, the Rasa model, the seed knowledge base, and the
    vectors of what the database holds (so the service loads them from the cache and never encodes
    while the health wait runs)."""
    from knowledge.embedding import build_model_folder, model_dir

    steps = steps or Steps(quiet=log is not print)
    with steps.run("embedding model"):
        build_model_folder(model_dir(data_dir))
    with steps.run("Rasa model"):
        model = train_rasa(rasa_models_dir(data_dir), log=log)
    with steps.run("knowledge base"):
        seed_knowledge(data_dir, database_url, log=log)
    with steps.run("vector cache"):
        warm_index(data_dir, database_url, log=log)
    return model


def warm_index(data_dir: Path, url: str | None = None, log=print) -> None:
    """Encode every knowledge-base text the database holds that the vector cache lacks (a progress bar
    while it encodes; nothing to show when the cache is complete)."""
    from core.db import make_engine
    from knowledge.embedding import Embedder, model_dir
    from knowledge.retrieval import Retriever, entry_rows
    from knowledge.settings import load_retrieval_settings
    from knowledge.store import KnowledgeStore

    engine = make_engine(database_url(data_dir, url))
    try:
        entries = KnowledgeStore(engine).all()
    finally:
        engine.dispose()
    settings = load_retrieval_settings()
    rows = sum(len(entry_rows(e, settings)) for e in entries)
    embedder = ProgressEmbedder(
        Embedder(model_dir(data_dir), threads=0, fast_queries=False),
        total=rows,
        out=sys.stdout if log is print else None,
    )
    try:
        retriever = Retriever(embedder, cache_dir=data_dir / "index", settings=settings)
        retriever.rebuild(entries)
        retriever.warm_memory()  # the seed's questions and answers as a translation memory (knowledge/bridge.py)
    finally:
        embedder.close()
    log(f"{len(entries)} entries: {embedder.encoded} texts encoded, {max(rows - embedder.encoded, 0)} from the cache")


def seed_knowledge(data_dir: Path, url: str | None = None, log=print) -> None:
    """Load data/knowledge into an empty default municipality (never over a webmaster's edits)."""
    from core.db import make_engine
    from knowledge.kbfile import load_path
    from knowledge.store import KnowledgeStore
    from kommunchatt.schema import init_db

    engine = make_engine(database_url(data_dir, url))
    try:
        init_db(engine)
        store = KnowledgeStore(engine)
        if not store.all("default"):
            entries = load_path(ROOT / "data" / "knowledge")
            store.import_entries("default", entries, actor="seed")
            log(f"loaded the seed knowledge base ({len(entries)} entries)")
    finally:
        engine.dispose()


def _libraries_to_log(log_dir: Path) -> None:
    """The libraries' warnings (deprecations, TensorFlow and torch notices) go to runner.log, not the terminal."""
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" bars of transformers
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices (Rasa's logs stay quieter)
    logging.basicConfig(
        filename=log_dir / "runner.log", level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.captureWarnings(True)


def _print_ready(system: System, steps: Steps) -> None:
    url = system.service_url
    print(f"\nKommunchatt is ready ({steps.total():.1f} s; {steps.summary()}):")
    print(f"  chat API + widget   {url}/            (API docs: {url}/docs)")
    print(f"  agent console       {url}/agent")
    print(f"  webmaster workshop  {url}/admin")
    print(f"  health, metrics     {url}/health   {url}/metrics")
    print(f"  Rasa                http://127.0.0.1:{system.rasa_port}   actions http://127.0.0.1:{system.actions_port}")
    print(f"  logs                {system.logs}")
    print("A process that stops is restarted; the others keep running. Press Ctrl-C to stop.")


def main() -> int:
    parser = argparse.ArgumentParser(description="Start Kommunchatt: service, Rasa and action server.")
    parser.add_argument(
        "--prepare-only", action="store_true", help="build models, seed data and the vector cache, then exit"
    )
    parser.add_argument("--rasa-model", action="store_true", help="print the Rasa model path (trains if needed)")
    args = parser.parse_args()
    data_dir = Path(os.environ.get("KOMMUNCHATT_DATA_DIR", "var")).resolve()
    system = System(
        data_dir=data_dir,
        service_port=int(os.environ.get("KOMMUNCHATT_PORT", "8000")),
        rasa_port=int(os.environ.get("RASA_PORT", "5005")),
        actions_port=int(os.environ.get("ACTIONS_PORT", "5055")),
        database_url=os.environ.get("DATABASE_URL"),
        redis_url=os.environ.get("REDIS_URL"),
    )
    _libraries_to_log(system.logs)
    if args.rasa_model:
        print(train_rasa(rasa_models_dir(data_dir), log=lambda *a: print(*a, file=sys.stderr)))
        return 0
    steps = Steps()
    try:
        if not args.prepare_only:
            system.check_ports()
        model = prepare(data_dir, system.database_url, steps=steps)
        if args.prepare_only:
            print(f"prepared in {steps.total():.1f} s: {steps.summary()}")
            return 0
        with steps.run("start service, Rasa and actions"):
            system.start(model)
            system.wait_ready(show=True)
    except StartError as exc:
        system.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        system.stop()
        return 130
    _print_ready(system, steps)
    try:
        _supervise_until_signalled(system.supervisor)
        print("\nstopping ...", flush=True)
        return 0
    finally:
        system.stop()


def _supervise_until_signalled(supervisor: Supervisor, every: float = 0.5) -> None:
    """Supervise in the foreground until Ctrl-C or SIGTERM. The handlers only note the signal: a
    KeyboardInterrupt raised wherever the main thread happens to be can land just after a lock was taken
    and before the `with` that releases it (an Event's, inside `Event.wait`); stopping then waited for that
    lock forever and the three processes were left running (a test of Ctrl-C saw it once)."""
    signalled: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: signalled.append(signum))
    while not signalled:
        supervisor.check()
        time.sleep(every)


if __name__ == "__main__":
    sys.exit(main())

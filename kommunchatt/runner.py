"""Starts the whole system: builds what is missing, then the service, Rasa and the action server.

Used by `make run` and by the end-to-end tests (with free ports and a temporary data dir), so both
exercise the same start-up path.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from core.config import database_url, internal_token

ROOT = Path(__file__).resolve().parent.parent
RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"
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
    log(f"training the Rasa model (training data changed, fingerprint {fingerprint}) ...")
    started = time.monotonic()
    models_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(RASA_BIN), "train", "--config", "config.yml", "--domain", "bot/domain.yml", "--data", "data/nlu.yml",
         "data/rules.yml", "data/stories.yml", "--out", str(models_dir), "--fixed-model-name",
         f"kommunchatt-{fingerprint}"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false"},
        capture_output=True, text=True,
    )
    if result.returncode != 0 or not model.exists():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise StartError(f"Rasa training failed (see the output above); fix the training data and run again.\n{tail}")
    log(f"trained the Rasa model in {time.monotonic() - started:.0f} s")
    return model


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
    """The three processes of one install."""

    data_dir: Path
    service_port: int = 8000
    rasa_port: int = 5005
    actions_port: int = 5055
    database_url: str | None = None
    redis_url: str | None = None
    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "KOMMUNCHATT_DATA_DIR": str(self.data_dir), "PYTHONPATH": str(ROOT),
               "RASA_TELEMETRY_ENABLED": "false"}
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
            SERVICE_URL=self.service_url,
            ACTION_ENDPOINT_URL=f"http://127.0.0.1:{self.actions_port}/webhook",
            **tracker_env(database_url(self.data_dir, self.database_url), self.data_dir),
        )
        return env

    def check_ports(self) -> None:
        for name, port in (("service", self.service_port), ("Rasa", self.rasa_port), ("actions", self.actions_port)):
            if not port_free(port):
                raise StartError(
                    f"Port {port} (for the {name}) is in use: stop what runs there (`ss -ltnp | grep {port}`) "
                    f"or choose other ports (KOMMUNCHATT_PORT, RASA_PORT, ACTIONS_PORT)."
                )

    def start(self, rasa_model: Path) -> None:
        self.check_ports()
        env = self.env()
        log_dir = self.log_dir or self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        rasa = str(RASA_BIN)
        commands = {
            "service": [sys.executable, "-m", "kommunchatt.cli", "serve"],
            "actions": [rasa, "run", "actions", "--actions", "actions", "--port", str(self.actions_port)],
            "rasa": [rasa, "run", "--enable-api", "--auth-token", env["KOMMUNCHATT_INTERNAL_TOKEN"],
                     "--interface", "127.0.0.1", "--port", str(self.rasa_port), "--model", str(rasa_model),
                     "--endpoints", "bot/endpoints.yml", "--credentials", "bot/credentials.yml"],
        }
        for name, command in commands.items():
            out = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    log = (self.log_dir or self.data_dir / "logs") / f"{name}.log"
                    tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-15:])
                    raise StartError(f"The {name} process stopped while starting; its log is {log}:\n{tail}")
            try:
                response = httpx.get(f"{self.service_url}/health", timeout=3)
                last = response.json()
                if response.status_code == 200:
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise StartError(
            f"The system was not healthy after {timeout:.0f} s (last health: {last}); see {self.data_dir}/logs."
        )

    def stop(self) -> None:
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


def prepare(data_dir: Path, database_url: str | None = None, log=print) -> Path:
    """Everything before start: the embedding model, the Rasa model, the seed knowledge base."""
    from knowledge.embedding import build_model_folder, model_dir

    started = time.monotonic()
    build_model_folder(model_dir(data_dir))
    log(f"embedding model ready ({time.monotonic() - started:.1f} s)")
    model = train_rasa(rasa_models_dir(data_dir), log=log)
    seed_knowledge(data_dir, database_url, log=log)
    return model


def warm_index(data_dir: Path, log=print) -> None:
    """Encode the seed knowledge base into the vector cache, so the service starts without encoding."""
    from knowledge.embedding import Embedder, model_dir
    from knowledge.kbfile import load_path
    from knowledge.retrieval import Retriever

    started = time.monotonic()
    retriever = Retriever(Embedder(model_dir(data_dir)), cache_dir=data_dir / "index")
    retriever.rebuild(load_path(ROOT / "data" / "knowledge"))
    log(f"vector cache ready ({time.monotonic() - started:.1f} s)")


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
    if args.rasa_model:
        print(train_rasa(rasa_models_dir(data_dir), log=lambda *a: print(*a, file=sys.stderr)))
        return 0
    started = time.monotonic()
    try:
        if not args.prepare_only:
            system.check_ports()
        model = prepare(data_dir, system.database_url)
        if args.prepare_only:
            warm_index(data_dir)
            return 0
        system.start(model)
        system.wait_ready()
    except StartError as exc:
        system.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        system.stop()
        return 130
    print(f"\nKommunchatt is ready ({time.monotonic() - started:.1f} s):")
    print(f"  chat API + widget   {system.service_url}/            (API docs: {system.service_url}/docs)")
    print(f"  agent console       {system.service_url}/agent")
    print(f"  webmaster workshop  {system.service_url}/admin")
    print(f"  Rasa                http://127.0.0.1:{system.rasa_port}   actions http://127.0.0.1:{system.actions_port}")
    print(f"  logs                {data_dir / 'logs'}\nPress Ctrl-C to stop.")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while all(p.poll() is None for p in system.processes.values()):
            time.sleep(1)
        dead = [n for n, p in system.processes.items() if p.poll() is not None]
        print(f"error: the {', '.join(dead)} process stopped; see {data_dir / 'logs'}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...")
        return 0
    finally:
        system.stop()


if __name__ == "__main__":
    sys.exit(main())

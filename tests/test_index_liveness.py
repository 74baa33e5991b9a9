"""An import tells when it is live: `kommunchatt kb import` (a real process) waits until the running
service answers with the new entries and no longer with the removed ones; the status says what is
pending meanwhile. Real model, real SQLite and PostgreSQL; the service is in this process with its
background indexing loop, the CLI talks to it only through the database, as in production.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from core.db import make_engine
from knowledge.entries import Entry
from knowledge.service import KnowledgeService
from knowledge.store import KnowledgeStore
from kommunchatt.schema import init_db

KOMMUNCHATT = str(Path(sys.executable).parent / "kommunchatt")
TOPICS = [
    "bygglov",
    "förskola",
    "hemtjänst",
    "parkering",
    "avfall",
    "bibliotek",
    "simhall",
    "färdtjänst",
    "snöröjning",
    "vatten",
    "skolskjuts",
    "bostadsanpassning",
    "ekonomiskt bistånd",
    "föreningsbidrag",
    "eldning",
    "hundar",
    "torghandel",
    "begravning",
    "vigsel",
    "kulturskola",
]


def kb_file(path: Path, prefix: str, topics: list[str]) -> list[dict]:
    """Answer-only entries with long answers, as a municipality's FAQ pages give them."""
    data = [
        {
            "id": f"{prefix}-{i}",
            "answer": {
                "sv": (
                    f"Om {t}: kommunen hjälper dig med {t} under hela året. "
                    f"Du ansöker om {t} i e-tjänsten på webbplatsen. "
                    f"Handläggningstiden för {t} är normalt fyra veckor. "
                    f"Har du frågor om {t} kan du ringa kontaktcenter. "
                    f"Avgiften för {t} beslutas av kommunfullmäktige varje år."
                )
            },
        }
        for i, t in enumerate(topics)
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return data


class Running:
    """The service's knowledge side with its background loop (as `_sync_knowledge` runs it)."""

    def __init__(self, url: str, embedder, index_dir: Path):
        engine = make_engine(url)
        init_db(engine)
        self.service = KnowledgeService(KnowledgeStore(engine), None, index_dir, embedder=embedder)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(0.3):
            self.service.maintain()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=120)
        self.service.close()


def cli(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "KOMMUNCHATT_DATA_DIR": str(data_dir)}
    return subprocess.run([KOMMUNCHATT, *args], env=env, capture_output=True, text=True, timeout=900)


def ids_answering(service: KnowledgeService, text: str) -> set[str]:
    return {c.entry.id for c in service.retriever.search(text, municipality="norr", language="sv", top_k=5)}


def test_cli_import_returns_when_the_service_answers_with_it(database_url, embedder, tmp_path):
    before = cli(database_url, tmp_path, "kb", "import", str(tmp_path / "none.yml"))
    assert before.returncode == 2  # a missing file: nothing imported, a clear error
    kb_file(tmp_path / "first.yml", "first", TOPICS[:10])
    alone = cli(database_url, tmp_path, "kb", "import", "--municipality", "norr", str(tmp_path / "first.yml"))
    assert alone.returncode == 0, alone.stderr
    assert "no service is running" in alone.stdout  # nothing to wait for: indexed when it starts

    running = Running(database_url, embedder, tmp_path / "index")
    try:
        assert ids_answering(running.service, "Om bygglov: kommunen hjälper dig med bygglov") & {"first-0"}
        second = kb_file(tmp_path / "second.yml", "second", TOPICS[10:])
        done = cli(
            database_url, tmp_path, "kb", "import", "--replace", "--municipality", "norr", str(tmp_path / "second.yml")
        )
        assert done.returncode == 0, done.stderr
        assert "live: answerable by the running service (1 worker)" in done.stdout, done.stdout
        assert "indexing" in done.stdout  # progress lines (not a terminal: plain lines)
        # Returned means answerable: every new entry is found by its own text, no removed one is.
        indexed = {e.id for e in running.service.retriever.entries("norr")}
        assert indexed == {e["id"] for e in second}
        for i, topic in enumerate(TOPICS[10:]):
            found = ids_answering(running.service, f"Hur ansöker jag om {topic}?")
            assert f"second-{i}" in found and not any(x.startswith("first") for x in found), (topic, found)
        status = running.service.status(["norr"])
        assert status["live"] and status["municipalities"] == [
            {"municipality": "norr", "entries": 10, "indexed": 10, "pending": 0, "lag_s": 0.0, "live": True}
        ]
    finally:
        running.close()


def test_status_counts_pending_changes_until_indexed(database_url, embedder, tmp_path):
    engine = make_engine(database_url)
    init_db(engine)
    service = KnowledgeService(KnowledgeStore(engine), None, tmp_path / "index", embedder=embedder)
    try:
        other = KnowledgeStore(make_engine(database_url))  # another process
        other.import_entries("norr", [Entry(id=f"e{i}", answer={"sv": f"Svar om {t}."}) for i, t in enumerate(TOPICS)])
        row = service.status(["norr"])["municipalities"][0]
        assert (row["entries"], row["indexed"], row["pending"], row["live"]) == (20, 0, 20, False)
        assert not service.status()["live"]  # the worker has not reached the latest change
        service.sync()
        row = service.status(["norr"])["municipalities"][0]
        assert (row["entries"], row["indexed"], row["pending"], row["live"]) == (20, 20, 0, True)
        assert service.status()["live"] and service.status()["workers"] == 1
    finally:
        service.close()

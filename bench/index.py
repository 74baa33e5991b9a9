"""Import speed: how long until a large FAQ with long answers is answerable after `kb import`.

    .venv/bin/python -m bench.index [--entries 1000]

A fresh database and an empty vector cache (every text is encoded, nothing comes from an earlier
run); the knowledge service runs its background loop (as `kommunchatt serve` does) and the import
is written by another store, as the CLI does. Measured from the import's commit: when the worker
reports every entry answerable ("live", what `kb import` waits for), when the sentence refinement
is done, and whether every entry is then found by its question. Entries are SweFAQ's real answers
(Swedish authorities' FAQ pages) with their questions as headings; to get more than its 219
entries without cache hits, copy k > 0 of an answer tags each sentence with its copy number.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.retrieval import BENCH_DATA, DATA_DIR, read_jsonl
from knowledge.entries import Entry
from knowledge.retrieval import entry_rows, split_sentences


def long_faq(n: int) -> list[Entry]:
    corpus = read_jsonl(BENCH_DATA / "swefaq" / "swefaq_corpus.jsonl")
    questions = {q["answer_id"]: q["question"] for q in read_jsonl(BENCH_DATA / "swefaq" / "swefaq_queries.jsonl")}
    out = []
    for i in range(n):
        doc = corpus[i % len(corpus)]
        copy = i // len(corpus)
        sentences = split_sentences(doc["text"])
        answer = " ".join(s if not copy else f"{s} ({copy})" for s in sentences)
        question = questions.get(doc["id"], doc["categories"][0])
        out.append(Entry(id=f"faq-{i}", answer={"sv": answer},
                         questions={"sv": [question if not copy else f"{question} ({copy})"]}))
    return out


def measure(n: int) -> dict:
    from core.db import make_engine
    from knowledge.embedding import Embedder, build_model_folder, model_dir
    from knowledge.index_status import IndexWorkers, live_state
    from knowledge.service import KnowledgeService
    from knowledge.store import KnowledgeStore
    from kommunchatt.schema import init_db

    entries = long_faq(n)
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    url = f"sqlite:///{work / 'kb.db'}"
    engine = make_engine(url)
    init_db(engine)
    embedder = Embedder(build_model_folder(model_dir(DATA_DIR)))
    service = KnowledgeService(KnowledgeStore(engine), None, work / "index", embedder=embedder)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.5):
            service.maintain()

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    texts = sum(len(entry_rows(e, service.settings)) for e in entries)
    tokens = sum(len(embedder.tokenizer(r.text)["input_ids"]) for e in entries for r in entry_rows(e, service.settings))
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    store = KnowledgeStore(make_engine(url))  # the CLI's own connection
    store.import_entries("bench", entries, actor="bench")
    stored = time.perf_counter() - t0
    target = store.last_audit_id()
    workers = IndexWorkers(engine)
    live = None
    while True:
        state = live_state(workers.alive(), target)
        if state["live"] and live is None:
            live = time.perf_counter() - t0
        if live is not None and not service.status(["bench"])["municipalities"][0]["pending"] and \
                not service._batch[1] and service._lock.acquire(blocking=False):
            service._lock.release()
            break
        time.sleep(0.2)
    refined = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stop.set()
    worker.join()
    found = sum(any(c.entry.id == e.id for c in service.retriever.search(e.questions["sv"][0], municipality="bench",
                                                                          language="sv", top_k=5)) for e in entries)
    service.close()
    return {"entries": n, "texts": texts, "tokens": tokens, "stored_s": stored, "live_s": live, "refined_s": refined,
            "cpu_s": cpu, "found": found}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1000)
    args = ap.parse_args(argv)
    if not (BENCH_DATA / "swefaq").exists():
        print(f"skipped: no SweFAQ data at {BENCH_DATA}")
        return 0
    r = measure(args.entries)
    load = os.getloadavg()[0]
    print(f"import of {r['entries']} long-answer entries ({r['texts']} texts, {r['tokens']} tokens to encode), "
          f"{os.cpu_count()} cores, load average {load:.1f} at the end")
    print(f"{'stored s':>9s} {'live s':>7s} {'refined s':>9s} {'entries/s live':>14s} {'CPU s':>6s} "
          f"{'found by question (top 5)':>26s}")
    print(f"{r['stored_s']:9.1f} {r['live_s']:7.1f} {r['refined_s']:9.1f} {r['entries'] / r['live_s']:14.1f} "
          f"{r['cpu_s']:6.0f} {r['found']:>20d} of {r['entries']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

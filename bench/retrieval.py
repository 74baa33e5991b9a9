"""Retrieval benchmarks: SweFAQ (clean and misspelt), the multilingual dev set, and speed.

    .venv/bin/python -m bench.retrieval [--quick] [--only swefaq,typos,multilingual,speed]

Data: SweFAQ and DaLAJ from `../shared/benchmarks` (env `KOMMUNCHATT_BENCH_DATA`), the seed
knowledge base `data/knowledge/*.yml` and `bench/data/multilingual_dev.jsonl`. Vectors are cached
under `$KOMMUNCHATT_DATA_DIR/bench-cache` (SweFAQ in its own folder: a rebuild compacts its cache
to the texts it indexed) so a second run encodes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from knowledge.decision import decide
from knowledge.entries import Entry
from knowledge.lexical import reads_as_words
from knowledge.retrieval import Retriever, entry_rows
from knowledge.settings import load_retrieval_settings

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATA = Path(os.environ.get("KOMMUNCHATT_BENCH_DATA", ROOT.parent / "shared" / "benchmarks"))
DATA_DIR = Path(os.environ.get("KOMMUNCHATT_DATA_DIR", ROOT / "var"))
CACHE = DATA_DIR / "bench-cache"
NOISE_SEEDS = 20  # random draws of misspellings per noise level (one draw moves top-1 by +-4 points)


def load_embedder():
    from knowledge.embedding import Embedder, build_model_folder, model_dir

    return Embedder(build_model_folder(model_dir(DATA_DIR)))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ----------------------------------------------------------------------------- SweFAQ


def swefaq_data() -> tuple[list[Entry], list[dict]]:
    base = BENCH_DATA / "swefaq"
    corpus = read_jsonl(base / "swefaq_corpus.jsonl")
    queries = read_jsonl(base / "swefaq_queries.jsonl")
    # Answers only: the FAQ titles are the queries, indexing them would make the task trivial.
    return [Entry(id=c["id"], answer={"sv": c["text"]}) for c in corpus], queries


def rank_metrics(retriever: Retriever, questions: list[tuple[str, str]]) -> dict:
    top1 = mrr = 0.0
    for text, gold in questions:
        ids = [c.entry.id for c in retriever.search(text, language="sv", top_k=10)]
        if ids and ids[0] == gold:
            top1 += 1
        if gold in ids:
            mrr += 1.0 / (ids.index(gold) + 1)
    n = max(len(questions), 1)
    return {"n": len(questions), "top1": top1 / n, "mrr10": mrr / n}


# ----------------------------------------------------------------------------- misspellings

_ROWS = ["qwertyuiopå", "asdfghjklöä", "zxcvbnm"]
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        near = [_row[j] for j in (_c - 1, _c + 1) if 0 <= j < len(_row)]
        for _dr in (-1, 1):
            if 0 <= _r + _dr < len(_ROWS):
                other = _ROWS[_r + _dr]
                near += [other[j] for j in (_c - 1, _c, _c + 1) if 0 <= j < len(other)]
        _NEIGHBOURS[_ch] = "".join(near)


def keyboard_noise(text: str, rate: float, rng: random.Random) -> str:
    """Typos at `rate` of the letters: neighbour-key substitution, deletion, insertion, swap."""
    chars = list(text)
    letters = [i for i, ch in enumerate(chars) if ch.isalpha()]
    n = max(1, round(rate * len(letters))) if rate > 0 and letters else 0
    for i in sorted(rng.sample(letters, min(n, len(letters))), reverse=True):
        ch = chars[i]
        near = _NEIGHBOURS.get(ch.lower(), ch)
        op = rng.choice(("sub", "sub", "del", "ins", "swap"))
        if op == "sub":
            chars[i] = rng.choice(near)
        elif op == "del":
            del chars[i]
        elif op == "ins":
            chars.insert(i, rng.choice(near))
        elif i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def dalaj_pairs() -> dict[str, list[tuple[str, int]]]:
    """correct word -> [(misspelling, count)], only pairs that differ beyond letter case."""
    out: dict[str, list[tuple[str, int]]] = {}
    lines = (BENCH_DATA / "dalaj_spelling" / "dalaj_spelling_wordpairs.tsv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        wrong, right, count = line.split("\t")
        if wrong.lower() != right.lower() and " " not in right:
            out.setdefault(right.lower(), []).append((wrong.lower(), int(count)))
    return out


def learner_misspell(text: str, pairs: dict, rng: random.Random) -> tuple[str, int]:
    """Replace every word a learner was seen misspelling by one of the seen misspellings."""
    import re

    changed = 0

    def swap(m: re.Match) -> str:
        nonlocal changed
        options = pairs.get(m.group(0).lower())
        if not options:
            return m.group(0)
        changed += 1
        word = rng.choices([w for w, _ in options], weights=[c for _, c in options])[0]
        return word.capitalize() if m.group(0)[0].isupper() else word

    return re.sub(r"\w+", swap, text), changed


def misspelt_metrics(retriever: Retriever, questions: list[tuple[str, str]], misspell, seeds: range) -> dict:
    """`rank_metrics` of the questions misspelt by `misspell(text, rng)`, averaged over draws."""
    runs = [
        rank_metrics(retriever, [(misspell(q, random.Random(1000 * s + i)), g) for i, (q, g) in enumerate(questions)])
        for s in seeds
    ]
    return {
        "n": len(questions),
        "top1": float(np.mean([r["top1"] for r in runs])),
        "mrr10": float(np.mean([r["mrr10"] for r in runs])),
    }


# ----------------------------------------------------------------------------- multilingual dev


def load_seed() -> list[Entry]:
    from knowledge.kbfile import load_path

    entries: list[Entry] = []
    for path in sorted((ROOT / "data" / "knowledge").glob("*.yml")):
        entries.extend(load_path(path))
    return entries


def searched(retriever: Retriever, messages: list[dict]):
    """(message, detected language, top 5 candidates) for each message, as the service does it."""
    from knowledge.language import detect_language

    for d in messages:
        lang, _ = detect_language(d["text"], vocabulary=retriever.vocabulary)
        yield d, lang, retriever.search(d["text"], language=lang, top_k=5)


def multilingual(retriever: Retriever, dev: list[dict], settings) -> dict:
    answerable = [d for d in dev if d.get("expected")]
    unanswerable = [d for d in dev if not d.get("expected")]
    top1 = wrong_conf = unans_answered = lang_ok = answered_right = clarify_right = 0
    decisions: dict[str, int] = {}
    kinds: dict[str, list[int]] = {}
    for d, lang, cands in searched(retriever, dev):
        lang_ok += lang == d.get("language")
        dec = decide(cands, lang, settings, words=reads_as_words(d["text"], lang, retriever.vocabulary))
        decisions[dec.decision] = decisions.get(dec.decision, 0) + 1
        best = cands[0].entry.id if cands else None
        if d.get("expected"):
            top1 += best == d["expected"]
            kinds.setdefault(d.get("kind", "?"), []).append(int(best == d["expected"]))
            wrong_conf += dec.decision == "answer" and best != d["expected"]
            answered_right += dec.decision == "answer" and best == d["expected"]
            clarify_right += dec.decision == "clarify" and d["expected"] in {c.entry.id for c in dec.candidates}
        else:
            unans_answered += dec.decision == "answer"
            wrong_conf += dec.decision == "answer"
    n_ans = max(len(answerable), 1)
    return {
        "n": len(dev),
        "answerable": len(answerable),
        "top1": top1 / n_ans,
        "confident_wrong": wrong_conf / max(len(dev), 1),
        "unanswerable_answered": unans_answered / max(len(unanswerable), 1),
        "answered_right": answered_right / n_ans,
        "clarify_right": clarify_right / n_ans,
        "by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(kinds.items())},
        "language_acc": lang_ok / max(len(dev), 1),
        "decisions": decisions,
    }


def calibrate(
    retriever: Retriever, dev: list[dict], settings, max_wrong: float = 0.01, max_unanswerable: float = 0.05
) -> dict:
    """Refit the answer rule on the dev set: a logistic regression of "the top entry is right" on
    (score, margin), then the lowest probability threshold that keeps confident wrong answers
    under `max_wrong` of all messages and answered unanswerable ones under `max_unanswerable`
    (the targets are 2 % and 10 %: half of each is left for the gap between dev and test)."""
    from sklearn.linear_model import LogisticRegression

    from knowledge.decision import probability

    rows = []
    for d, _, c in searched(retriever, dev):
        if c:
            right = bool(d.get("expected")) and c[0].entry.id == d["expected"]
            rows.append((c[0].score, c[0].score - (c[1].score if len(c) > 1 else 0.0), right, not d.get("expected")))
    x = np.array([[r[0], r[1]] for r in rows])
    y = np.array([r[2] for r in rows])
    fit = LogisticRegression(C=100.0, max_iter=1000).fit(x, y)
    fitted = settings.replace(
        answer_bias=round(float(fit.intercept_[0]), 2),
        answer_w_score=round(float(fit.coef_[0][0]), 2),
        answer_w_margin=round(float(fit.coef_[0][1]), 2),
    )
    n_unans = max(sum(r[3] for r in rows), 1)
    for threshold in np.arange(0.5, 0.99, 0.005):
        answered = [
            r
            for r in rows
            if probability({"score": r[0], "margin": r[1], "lead": 0.0, "cross_language": 0.0}, fitted, "answer")
            >= threshold
            and r[1] >= settings.answer_min_margin
        ]
        wrong = sum(not r[2] for r in answered) / len(dev)
        unans = sum(r[3] for r in answered) / n_unans
        if wrong <= max_wrong and unans <= max_unanswerable:
            return {
                "answer_bias": fitted.answer_bias,
                "answer_w_score": fitted.answer_w_score,
                "answer_w_margin": fitted.answer_w_margin,
                "answer_probability": round(float(threshold), 3),
            }
    raise SystemExit("calibration: no threshold meets the limits on dev")


# ----------------------------------------------------------------------------- speed


def grow(seed: list[Entry], n: int, rng: random.Random, municipalities: int = 1) -> list[Entry]:
    """`n` entries: the seed plus perturbed copies (some words dropped, a tag appended), entry i in
    municipality `municipality_name(i % municipalities)` when there are several."""
    out = list(seed)
    i = 0
    while len(out) < n:
        base = seed[i % len(seed)]
        i += 1

        def perturb(text: str, tag: int = i) -> str:
            ws = text.split()
            ws = [w for w in ws if rng.random() > 0.15] or ws
            return " ".join(ws) + f" #{tag}"

        out.append(
            Entry(
                id=f"{base.id}-copy{i}",
                questions={k: [perturb(q) for q in v] for k, v in base.questions.items()},
                answer={k: perturb(v) for k, v in base.answer.items()},
            )
        )
    if municipalities > 1:
        out = [dataclasses.replace(e, municipality=municipality_name(i % municipalities)) for i, e in enumerate(out)]
    return out


def municipality_name(i: int) -> str:
    return f"m{i:03d}"


def spread(queries: list[str], municipalities: int) -> list[tuple[str, str]]:
    """(text, municipality) pairs: query i asked of municipality i mod `municipalities`."""
    if municipalities == 1:
        return [(q, "default") for q in queries]
    return [(q, municipality_name(i % municipalities)) for i, q in enumerate(queries)]


class SyntheticRetriever(Retriever):
    """A Retriever whose copies' vectors are the seed entry's vectors plus noise, not encodings.

    Encoding 100k entries (2.6 M texts) would take days on 2 cores; search speed depends on how
    many rows and entries there are, not on what the vectors mean. A copy's text ends in "#i"
    (copy i of seed entry (i - 1) mod len(seed)); its row gets the vector of a seed row of the
    same entry, kind and language, plus Gaussian noise (sd 0.02 per dimension), re-normalised.
    Sentences without the tag get a random seed row's vector.
    """

    def __init__(self, embedder, seed: list[Entry], settings):
        super().__init__(embedder, cache_dir=None, settings=settings)
        real = Retriever(embedder, cache_dir=CACHE, settings=settings)
        self.seed = seed
        self.base: list[dict[tuple[str, str], np.ndarray]] = []
        pool = []
        for e in seed:
            rows = entry_rows(e, settings)
            vecs = real._vectors(rows)
            groups: dict[tuple[str, str], list[np.ndarray]] = {}
            for r, v in zip(rows, vecs, strict=True):
                groups.setdefault((r.kind, r.language), []).append(v)
            self.base.append({k: np.stack(v) for k, v in groups.items()})
            pool.append(vecs)
        self.pool = np.concatenate(pool)
        self.seed_vectors = {
            (real._prompt(r), r.text): v
            for e in seed
            for r, v in zip(entry_rows(e, settings), real._vectors(entry_rows(e, settings)), strict=True)
        }
        self.rng = np.random.default_rng(0)

    def _vectors(self, rows):
        out = np.empty((len(rows), self.pool.shape[1]), dtype=np.float32)
        for i, r in enumerate(rows):
            known = self.seed_vectors.get((self._prompt(r), r.text))
            if known is not None:
                out[i] = known
                continue
            head, _, tag = r.text.rpartition(" #")
            group = None
            if tag.isdigit():
                group = self.base[(int(tag) - 1) % len(self.seed)].get((r.kind, r.language))
            if group is None:
                out[i] = self.pool[hash(r.text) % len(self.pool)]
            else:
                out[i] = group[hash(r.text) % len(group)]
        out += self.rng.normal(0, 0.02, out.shape).astype(np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def show(name: str, m: dict, base: dict) -> None:
    print(
        f"{name:34s} {m['n']:4d} {m['top1']:6.3f} {m['mrr10']:7.3f}  drop top-1 "
        f"{100 * (base['top1'] - m['top1']):+.1f} pt, MRR {100 * (base['mrr10'] - m['mrr10']):+.1f} pt"
    )


def bench_service(retriever: Retriever, settings, workdir: Path):
    """A KnowledgeService over `retriever` (no entry store): the `/api/v1/answer` code path
    itself (language detection, search, decision, the notice check against a real database)."""
    from core.db import make_engine
    from knowledge.notices import NoticeStore
    from knowledge.prefetch import AnswerPrefetch
    from knowledge.service import KnowledgeService
    from kommunchatt.schema import init_db

    engine = make_engine(f"sqlite:///{workdir / 'bench.db'}")
    init_db(engine)
    service = KnowledgeService.__new__(KnowledgeService)
    service.settings, service.embedder, service.retriever = settings, retriever.embedder, retriever
    service.notices = NoticeStore(engine, retriever.embedder, encode_query=retriever.encode_query)
    service.prefetch = AnswerPrefetch(service.answer)  # the route asks it first (none started here)
    return service


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return 1000 * float(np.percentile(seconds, 50)), 1000 * float(np.percentile(seconds, 95))


def http_latency(service, queries: list[tuple[str, str]]) -> list[float]:
    """POST /api/v1/answer over real TCP to a uvicorn server (in a thread of this process, serving
    `service` with the real router) from a client in another process; seconds per request."""
    import socket
    import subprocess
    import tempfile
    import threading
    from types import SimpleNamespace

    import uvicorn
    from fastapi import FastAPI

    from core.config import Settings
    from knowledge.api import router

    app = FastAPI()
    app.include_router(router)
    app.state.c = SimpleNamespace(settings=Settings(), knowledge=service)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(queries, f)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.retrieval",
                "--http-client",
                f"http://127.0.0.1:{port}/api/v1/answer",
                f.name,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return json.loads(out.stdout)
    finally:
        server.should_exit = True
        thread.join(10)
        Path(f.name).unlink(missing_ok=True)


def http_client(url: str, path: str) -> int:
    """The client side of `http_latency`: one keep-alive connection, requests one after another."""
    import httpx

    queries = json.loads(Path(path).read_text(encoding="utf-8"))
    times = []
    with httpx.Client(timeout=30) as client:
        for i, (q, where) in enumerate([*queries[:5], *queries]):
            t = time.perf_counter()
            client.post(url, json={"text": q if i >= 5 else q + " ?", "municipality": where}).raise_for_status()
            if i >= 5:  # the first five warm up
                times.append(time.perf_counter() - t)
    print(json.dumps(times))
    return 0


def speed(
    embedder,
    seed: list[Entry],
    sizes: list[int],
    queries: list[str],
    settings,
    replicas: bool = True,
    keep: Path | None = None,
    municipalities: tuple[int, ...] = (1,),
) -> list[dict]:
    """`/api/v1/answer` latency in process (KnowledgeService.answer) and over HTTP, each query new
    to the query-vector LRU (every one is encoded), at each knowledge-base size. Memory: the
    process's resident growth after the build (`index_mb`) and after the in-process queries
    (`served_mb`, with what searching builds lazily). With `replicas`, the index is then saved as
    the service saves it and fresh workers start from it (`replica_figures`). With `keep`, each
    size's work folder (database, saved index, queries) is kept under `keep/<size>` (`<size>x<m>`
    for m municipalities), for `--reuse-workers` to start workers from it again without building.
    With several `municipalities`, the entries are spread over them and query i asks municipality
    i mod m (`spread`)."""
    import contextlib
    import gc
    import tempfile

    results = []
    texts = queries
    for n, m in [(n, m) for n in sizes for m in municipalities]:
        queries = spread(texts, m)
        name = str(n) if m == 1 else f"{n}x{m}"
        gc.collect()
        rss0 = current_rss_mb()
        retriever = SyntheticRetriever(embedder, seed, settings)
        grown = grow(seed, n, random.Random(n), municipalities=m)
        t0 = time.perf_counter()
        retriever.rebuild(grown)
        build = time.perf_counter() - t0
        del grown
        gc.collect()
        rss = current_rss_mb() - rss0
        if keep is not None:
            shutil.rmtree(keep / name, ignore_errors=True)
            (keep / name).mkdir(parents=True)
        folder = contextlib.nullcontext(str(keep / name)) if keep is not None else tempfile.TemporaryDirectory()
        with folder as workdir:
            service = bench_service(retriever, settings, Path(workdir))
            for q, where in queries[:5]:  # warm-up
                service.answer(q + " ?", municipality=where)
            full, encode = [], []
            for q, where in queries:
                retriever._queries.clear()  # every query is encoded: no help from the LRU
                t = time.perf_counter()
                service.answer(q, municipality=where)
                full.append(time.perf_counter() - t)
                retriever._queries.clear()
                t = time.perf_counter()
                retriever.encode_query(retriever.query_text(q, "sv"))
                encode.append(time.perf_counter() - t)
            served = current_rss_mb() - rss0  # what searching built lazily (inverted views) included
            retriever.settings = settings.replace(query_cache_size=0)  # over HTTP too, every query is encoded
            http = http_latency(service, queries)
            retriever.settings = settings
            replica = replica_figures(retriever, queries, Path(workdir)) if replicas else {}
        index_only = np.maximum(np.array(full) - np.array(encode), 0)
        t = time.perf_counter()
        retriever.upsert(dataclasses.replace(seed[0], municipality=queries[0][1]))
        upsert = time.perf_counter() - t
        rows = sum(s.n for s in retriever._shards.values())
        (p50, p95), (h50, h95) = percentiles(full), percentiles(http)
        results.append(
            {
                "entries": n,
                "municipalities": m,
                "rows": rows,
                "build_s": build,
                "upsert_s": upsert,
                "p50_ms": p50,
                "p95_ms": p95,
                "http_p50_ms": h50,
                "http_p95_ms": h95,
                "encode_p50_ms": 1000 * float(np.median(encode)),
                "rest_p95_ms": 1000 * float(np.percentile(index_only, 95)),
                "index_mb": rss,
                "served_mb": served,
                **replica,
            }
        )
        del retriever, service
    return results


def replica_figures(retriever: Retriever, queries: list[tuple[str, str]], workdir: Path) -> dict:
    """Workers starting from the saved index, as `kommunchatt serve` workers do: a database holding
    the index's entries, the index saved with their versions (`Retriever.save`, what
    `KnowledgeService` saves after a build), then one fresh process (`--replica`), then two at once.
    Each loads the model, starts a KnowledgeService (which adopts the saved index, syncs and
    reconciles with the database) and answers the queries; figures: seconds from process start to
    ready, p50/p95 of `KnowledgeService.answer`, and memory after the queries (the whole process:
    resident, anonymous, file-backed, and proportional set size, which splits shared pages
    between the processes mapping them)."""
    from core.db import make_engine
    from knowledge.store import KnowledgeStore
    from kommunchatt.schema import init_db

    url = f"sqlite:///{workdir / 'replica.db'}"
    engine = make_engine(url)
    init_db(engine)
    store = KnowledgeStore(engine)
    for municipality in list(retriever._shards):
        store.import_entries(municipality, list(retriever.entries(municipality)), actor="bench")
    t = time.perf_counter()
    seen = store.last_audit_id()
    retriever.save(
        workdir / "index" / "snapshot",
        extra={"id": "bench", "versions": store.versions(), "audit_seen": seen},
        meta={"id": "bench", "audit_seen": seen},
    )
    save_s = time.perf_counter() - t
    (workdir / "queries.json").write_text(json.dumps(queries), encoding="utf-8")
    return {"save_s": save_s, **worker_figures(workdir)}


def worker_figures(workdir: Path) -> dict:
    """One fresh worker (`--replica`) on the index saved in `workdir`, then two at once."""
    import subprocess

    def start(n: int) -> list[dict]:
        for f in workdir.glob("barrier-*"):
            f.unlink()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.retrieval", "--replica", str(workdir), str(n), repr(time.time())],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env={**os.environ, "KOMMUNCHATT_MODEL_IDLE_S": os.environ.get("KOMMUNCHATT_MODEL_IDLE_S", "60")},
            )
            for _ in range(n)
        ]
        return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]

    one, two = start(1)[0], start(2)
    return {
        "ready_s": one["ready_s"],
        "model_s": one["model_s"],
        "replica_p50_ms": one["p50_ms"],
        "replica_p95_ms": one["p95_ms"],
        "replica_mem": one["memory"],
        "replica_mapped": one.get("mapped", {}),
        "two_pss_mb": sum(r["memory"]["Pss"] for r in two),
        "two_rss_mb": [r["memory"]["VmRSS"] for r in two],
        "two_ready_s": [r["ready_s"] for r in two],
        "adopted": one["adopted"] and all(r["adopted"] for r in two),
    }


def memory_mb() -> dict[str, float]:
    """This process's resident memory (VmRSS = RssAnon + RssFile + RssShmem) and its proportional set
    size (Pss: a page shared by k processes counts 1/k), MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Pss", "Pss_Anon", "Pss_File"):
            out[key] = int(value.split()[0]) / 1024
    return out


def mapped_files_mb(top: int = 12) -> dict[str, float]:
    """Resident MB per memory-mapped file of this process (the largest `top`): which of the saved
    index's arrays (arrays/<n>.npy, named in the snapshot's pickle order) and libraries the queries
    brought in."""
    sizes: dict[str, float] = {}
    name = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            name = head[5] if len(head) >= 6 and head[5].startswith("/") else None
        elif name and line.startswith("Rss:"):
            sizes[name] = sizes.get(name, 0.0) + int(head[1]) / 1024
    best = sorted(sizes.items(), key=lambda kv: -kv[1])[:top]
    return {path: round(mb, 1) for path, mb in best}


def replica(workdir: str, workers: int, started: float) -> int:
    """One worker of `replica_figures` (a separate process)."""
    from core.db import make_engine
    from knowledge.service import KnowledgeService
    from knowledge.store import KnowledgeStore

    work = Path(workdir)
    embedder = load_embedder()
    model = time.time() - started  # Python, torch and the model (the int8 query encoder built)
    service = KnowledgeService(
        KnowledgeStore(make_engine(f"sqlite:///{work / 'replica.db'}")), None, work / "index", embedder=embedder
    )
    ready = time.time() - started
    queries = json.loads((work / "queries.json").read_text(encoding="utf-8"))
    for q, where in queries[:5]:
        service.answer(q + " ?", municipality=where)
    times = []
    for q, where in queries:
        service.retriever._queries.clear()
        t = time.perf_counter()
        service.answer(q, municipality=where)
        times.append(time.perf_counter() - t)
    (work / f"barrier-{os.getpid()}").touch()
    while len(list(work.glob("barrier-*"))) < workers:  # all workers up: their shared pages are split
        time.sleep(0.2)
    time.sleep(0.5)
    memory = memory_mb()
    mapped = mapped_files_mb()
    (work / f"barrier-{os.getpid()}-done").touch()
    while len(list(work.glob("barrier-*-done"))) < workers:  # none leaves before all have measured
        time.sleep(0.1)
    p50, p95 = percentiles(times)
    service.close()
    out = {
        "ready_s": ready,
        "model_s": model,
        "p50_ms": p50,
        "p95_ms": p95,
        "memory": memory,
        "mapped": mapped,
        "adopted": service._snapshot_seen == "bench",
    }
    print(json.dumps(out))
    return 0


def current_rss_mb() -> float:
    """Resident memory now (Linux), MB."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a fast subset (fewer questions, smaller sizes)")
    ap.add_argument("--only", default="swefaq,typos,multilingual,speed")
    ap.add_argument("--sizes", help="speed: knowledge-base sizes, comma-separated (default 100,10000,100000)")
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="refit the answer rule on the multilingual dev set and print the settings",
    )
    ap.add_argument(
        "--municipalities",
        default="1",
        help="speed: the entries spread over this many municipalities, comma-separated counts (default 1)",
    )
    ap.add_argument("--no-replicas", action="store_true", help="speed: skip the workers started from the saved index")
    ap.add_argument("--keep", type=Path, help="speed: keep each size's work folder (saved index) under this folder")
    ap.add_argument(
        "--reuse-workers",
        type=Path,
        metavar="FOLDER",
        help="speed: only start the workers on the index a --keep run saved in FOLDER (e.g. KEEP/100000)",
    )
    ap.add_argument("--http-client", nargs=2, metavar=("URL", "QUERIES"), help=argparse.SUPPRESS)
    ap.add_argument("--replica", nargs=3, metavar=("WORKDIR", "WORKERS", "STARTED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.http_client:
        return http_client(*args.http_client)
    if args.replica:
        return replica(args.replica[0], int(args.replica[1]), float(args.replica[2]))
    parts = set(args.only.split(","))
    settings = load_retrieval_settings()
    embedder = load_embedder()
    if args.reuse_workers:
        return reuse_workers(args.reuse_workers, embedder, settings)
    print(f"settings: {settings}\n")
    if args.calibrate:
        retriever = Retriever(embedder, cache_dir=CACHE, settings=settings)
        retriever.rebuild(load_seed())
        fitted = calibrate(retriever, read_jsonl(ROOT / "bench" / "data" / "multilingual_dev.jsonl"), settings)
        print("fitted on the multilingual dev set (put these in knowledge/settings.py or a settings file):")
        print("\n".join(f"  {k}: {v}" for k, v in fitted.items()))
        return 0

    if parts & {"swefaq", "typos"}:
        if not (BENCH_DATA / "swefaq").exists():
            print(f"SweFAQ: skipped, no data at {BENCH_DATA}")
        else:
            entries, queries = swefaq_data()
            retriever = Retriever(embedder, cache_dir=CACHE / "swefaq", settings=settings)
            t = time.perf_counter()
            retriever.rebuild(entries)
            print(f"SweFAQ index: {len(entries)} answers, {time.perf_counter() - t:.1f} s")
            if args.quick:
                queries = [q for i, q in enumerate(queries) if i % 3 == 0]
            split = {
                sp: [(q["question"], q["answer_id"]) for q in queries if q["split"] == sp] for sp in ("dev", "test")
            }
            print(f"{'SweFAQ (answers only)':34s} {'n':>4s} {'top-1':>6s} {'MRR@10':>7s}")
            clean = {}
            if "swefaq" in parts:
                for sp, qs in split.items():
                    clean[sp] = m = rank_metrics(retriever, qs)
                    print(f"{'clean ' + sp:34s} {m['n']:4d} {m['top1']:6.3f} {m['mrr10']:7.3f}")
            if "typos" in parts:
                pairs = dalaj_pairs()
                seeds = range(2 if args.quick else NOISE_SEEDS)
                for sp in ("dev", "test"):  # dev is where the speller was tuned; test is the figure
                    qs = split[sp]
                    base = clean.get(sp) or rank_metrics(retriever, qs)
                    changed = sum(1 for q, _ in qs if learner_misspell(q, pairs, random.Random(0))[1])
                    m = misspelt_metrics(retriever, qs, lambda q, rng: learner_misspell(q, pairs, rng)[0], seeds)
                    show(f"{sp}, DaLAJ misspellings ({changed} q)", m, base)
                    for rate in (0.05, 0.10, 0.20):
                        m = misspelt_metrics(
                            retriever, qs, lambda q, rng, rate=rate: keyboard_noise(q, rate, rng), seeds
                        )
                        show(f"{sp}, keyboard noise {int(rate * 100)} %", m, base)
                print(f"(misspelt questions: mean of {len(seeds)} random draws)")
            print()

    seed = load_seed()
    if "multilingual" in parts:
        paths = [ROOT / "bench" / "data" / f"multilingual_{name}.jsonl" for name in ("dev", "test")]
        if not seed or not paths[0].exists():
            print(f"multilingual: skipped (seed entries: {len(seed)}, dev set present: {paths[0].exists()})\n")
        else:
            retriever = Retriever(embedder, cache_dir=CACHE, settings=settings)
            retriever.rebuild(seed)
            for path in paths:
                if not path.exists():
                    continue
                m = multilingual(retriever, read_jsonl(path), settings)
                print(
                    f"multilingual {path.stem.split('_')[1]} vs seed KB ({len(seed)} entries): n={m['n']} "
                    f"answerable={m['answerable']}"
                )
                print(f"  top-1 on answerable {m['top1']:.3f} (target >= 0.92); by kind {m['by_kind']}")
                print(f"  confident wrong answers {100 * m['confident_wrong']:.1f} % of all (target <= 2 %)")
                print(f"  unanswerable answered {100 * m['unanswerable_answered']:.1f} % (target <= 10 %)")
                print(
                    f"  answered and right {100 * m['answered_right']:.1f} % of answerable; right entry among the "
                    f"clarify buttons {100 * m['clarify_right']:.1f} %"
                )
                print(f"  language detection accuracy {m['language_acc']:.3f}; decisions {m['decisions']}\n")

    if "speed" in parts:
        base = seed or swefaq_data()[0]
        queries = [q for e in base for qs in e.questions.values() for q in qs][:200]
        if len(queries) < 50:
            queries = [q["question"] for q in swefaq_data()[1]][:200]
        sizes = [100, 10_000] if args.quick else [100, 10_000, 100_000]
        if args.sizes:
            sizes = [int(n) for n in args.sizes.split(",")]
        print(
            f"speed: /api/v1/answer in process and over HTTP, {len(queries)} queries, every one encoded; "
            f"seed {'KB' if seed else 'SweFAQ answers'} grown with perturbed copies (noisy copies of vectors)"
        )
        print(
            f"{'entries':>8s} {'munic':>5s} {'rows':>8s} {'build s':>8s} {'upsert s':>8s} "
            f"{'p50 ms':>7s} {'p95 ms':>7s} "
            f"{'HTTP p50':>8s} {'HTTP p95':>8s} {'encode ms':>9s} {'rest p95':>8s} {'index MB':>8s} {'served MB':>9s}"
        )
        counts = tuple(int(m) for m in args.municipalities.split(","))
        results = speed(
            embedder,
            base,
            sizes,
            queries,
            settings,
            replicas=not args.no_replicas,
            keep=args.keep,
            municipalities=counts,
        )
        for r in results:
            print(
                f"{r['entries']:8d} {r['municipalities']:5d} {r['rows']:8d} {r['build_s']:8.1f} {r['upsert_s']:8.3f} "
                f"{r['p50_ms']:7.1f} "
                f"{r['p95_ms']:7.1f} {r['http_p50_ms']:8.1f} {r['http_p95_ms']:8.1f} {r['encode_p50_ms']:9.1f} "
                f"{r['rest_p95_ms']:8.1f} {r['index_mb']:8.0f} {r['served_mb']:9.0f}"
            )
        print(f"load average {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores")
        if not args.no_replicas:
            print(
                "\nworkers started from the saved index (whole processes: model, torch, index; memory after the "
                "queries, MB):"
            )
            print(WORKER_HEADER)
            for r in results:
                print_workers(r)
    return 0


WORKER_HEADER = (
    f"{'entries':>8s} {'munic':>5s} {'save s':>7s} {'model s':>7s} {'ready s':>8s} {'p50 ms':>7s} {'p95 ms':>7s} "
    f"{'RSS':>6s} {'anon':>6s} {'file':>6s} {'PSS':>6s} {'2 workers: PSS sum':>19s} {'RSS each':>12s} "
    f"{'ready s':>10s}"
)


def print_workers(r: dict) -> None:
    m = r["replica_mem"]
    print(
        f"{r['entries']:8d} {r.get('municipalities', 1):5d} {r['save_s']:7.1f} {r['model_s']:7.1f} {r['ready_s']:8.1f} "
        f"{r['replica_p50_ms']:7.1f} {r['replica_p95_ms']:7.1f} {m['VmRSS']:6.0f} {m['RssAnon']:6.0f} "
        f"{m['RssFile']:6.0f} "
        f"{m['Pss']:6.0f} {r['two_pss_mb']:19.0f} {'/'.join(f'{x:.0f}' for x in r['two_rss_mb']):>12s} "
        f"{'/'.join(f'{x:.1f}' for x in r['two_ready_s']):>10s}"
        + ("" if r["adopted"] else "  (did NOT start from the saved index)")
    )


def reuse_workers(folder: Path, embedder, settings) -> int:
    """`--reuse-workers`: the workers of `replica_figures` on an index a `--keep` run saved, without
    building it again (the code under test is this tree's; the index must still load: same model,
    settings and snapshot format, else a worker would rebuild 100k entries with the real model)."""
    probe = Retriever(embedder, cache_dir=None, settings=settings)
    if probe.load(folder / "index" / "snapshot") is None:
        print(f"{folder}: the saved index does not load with this model, settings and format; build it again")
        return 1
    entries = sum(len(s.entries) for s in probe._shards.values())
    r = {"entries": entries, "municipalities": len(probe._shards), "save_s": float("nan")}
    del probe
    r.update(worker_figures(folder))
    print(f"workers started from the index saved in {folder} (memory after the queries, MB):")
    print(WORKER_HEADER)
    print_workers(r)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())

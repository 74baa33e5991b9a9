"""Generalisation: what a NEW municipality gets from its own, much smaller knowledge base (issue 13).

    .venv/bin/python -m bench.generalisation [--only seed-q1,seed-answers,swefaq,norrvik] [--no-e5]

The seed knowledge base has ~21 question variants per entry in seven languages; a municipality
starts with far less. Each protocol indexes a knowledge base that looks like what one brings and
asks citizen messages through language detection, search and the decision, as `/api/v1/answer` does:

- `seed-q1`: the seed knowledge base reduced to Swedish only, the first Swedish question per entry;
- `seed-answers`: the seed's Swedish answers only (no questions);
  both asked with `bench/data/multilingual_{dev,test}.jsonl`;
- `swefaq`: the 219 SweFAQ answers as an answers-only knowledge base, asked with the FAQ pages' own
  headings (dev and test questions; the topic is the FAQ category);
- `norrvik`: `bench/data/norrvik_kb.yml`, a second fictional municipality in the style of real
  municipal FAQ pages (headings as questions, long answers), with its own dev and test messages.
  Never used to tune anything on the seed.
- `seed-halves` (two folds): the seed split in halves by entry, one half's first Swedish questions
  the knowledge base, the other half the translation memory (`knowledge/bridge.py`): what the
  memory costs where it lacks the municipality's intents; compare with
  `KOMMUNCHATT_RETRIEVAL_BRIDGE=false` (the memory off).

The municipal adapter (knowledge/adaptation.py) is learned from the seed, so the seed's reduced
protocols run without it and each seed half with an adapter trained without its entries (trained
once, kept in the bench cache); `--plain` runs every protocol without it.

Per protocol and split: ranking top-1 (answerable messages), MRR@10, top-1 on the right topic
(same tag/category), top-1 of messages in other languages than Swedish, and the citizen's outcome:
answered right, answered on topic, the right entry among the clarify buttons, handed off (all of
answerable), confident wrong (of all messages) and unanswerable answered. The `e5` row beside each
is plain multilingual-e5-small: the raw message against every question ("query: ") and whole answer
("passage: "), an entry's best row, no fusion, no spelling, no language projection.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.retrieval import BENCH_DATA, CACHE, ROOT, load_embedder, load_seed, read_jsonl
from knowledge.decision import SIGNALS, decide, probability, signals
from knowledge.entries import Entry
from knowledge.language import detect_language
from knowledge.lexical import reads_as_words
from knowledge.retrieval import Retriever, entry_rows
from knowledge.settings import RetrievalSettings, load_retrieval_settings

DATA = ROOT / "bench" / "data"


@dataclass
class Protocol:
    name: str
    entries: list[Entry]
    splits: dict[str, list[dict]] = field(default_factory=dict)  # split -> messages (text, language, expected, kind)
    memory_lacks: frozenset[str] = frozenset()  # seed entries left out of the translation memory
    # The municipal adapter (knowledge/adaptation.py) is learned from the seed: "shipped" (the
    # repository's), "plain" (none: the seed's own reduced protocols), or trained here without the
    # `memory_lacks` entries (the seed halves: intents it never saw).
    model: str = "shipped"


# ----------------------------------------------------------------------------- knowledge bases


def first_swedish_question(entries: list[Entry]) -> list[Entry]:
    """Swedish only, the first Swedish question per entry: what a municipality starts with."""
    return [
        Entry(id=e.id, answer={"sv": e.answer["sv"]}, questions={"sv": e.questions["sv"][:1]}, tags=e.tags, url=e.url)
        for e in entries
        if "sv" in e.answer and e.questions.get("sv")
    ]


def seed_first_question() -> list[Entry]:
    return first_swedish_question(load_seed())


def seed_answers_only() -> list[Entry]:
    return [
        Entry(id=e.id, answer={"sv": e.answer["sv"]}, tags=e.tags, url=e.url) for e in load_seed() if "sv" in e.answer
    ]


def multilingual_messages() -> dict[str, list[dict]]:
    return {sp: read_jsonl(DATA / f"multilingual_{sp}.jsonl") for sp in ("dev", "test")}


def swefaq_protocol() -> Protocol:
    base = BENCH_DATA / "swefaq"
    corpus = read_jsonl(base / "swefaq_corpus.jsonl")
    entries = [
        Entry(id=c["id"], answer={"sv": c["text"]}, tags=[str(t) for t in c["category_ids"]], url=c["link"])
        for c in corpus
    ]
    splits = {
        sp: [
            {"text": q["question"], "language": "sv", "expected": q["answer_id"], "kind": "heading"}
            for q in read_jsonl(base / "swefaq_queries.jsonl")
            if q["split"] == sp
        ]
        for sp in ("dev", "test")
    }
    return Protocol("swefaq", entries, splits)


def norrvik_protocol() -> Protocol:
    from knowledge.kbfile import load_path

    return Protocol(
        "norrvik",
        load_path(DATA / "norrvik_kb.yml"),
        {sp: read_jsonl(DATA / f"norrvik_{sp}.jsonl") for sp in ("dev", "test")},
    )


def seed_halves() -> list[Protocol]:
    """The seed split in halves by entry: one half's first Swedish questions the knowledge base, the
    other half the translation memory; the messages of the first half's entries and the
    unanswerable ones. Every entry has a neighbouring intent in the memory and never its own: what
    the memory costs where it does not know a municipality's questions."""
    kb, messages = seed_first_question(), multilingual_messages()
    out = []
    for fold in (0, 1):
        half = frozenset(e.id for i, e in enumerate(sorted(kb, key=lambda e: e.id)) if i % 2 == fold)
        splits = {sp: [d for d in ms if not d.get("expected") or d["expected"] in half] for sp, ms in messages.items()}
        out.append(
            Protocol(f"seed-halves-{fold}", [e for e in kb if e.id in half], splits, memory_lacks=half, model="fold")
        )
    return out


def protocols(only: set[str]) -> list[Protocol]:
    out = []
    if "seed" in only:  # the full seed, as bench/retrieval.py asks it (its cache folder too)
        out.append(Protocol("seed", load_seed(), multilingual_messages()))
    if "seed-q1" in only:
        out.append(Protocol("seed-q1", seed_first_question(), multilingual_messages(), model="plain"))
    if "seed-answers" in only:
        out.append(Protocol("seed-answers", seed_answers_only(), multilingual_messages(), model="plain"))
    if "swefaq" in only and (BENCH_DATA / "swefaq").exists():
        out.append(swefaq_protocol())
    if "norrvik" in only and (DATA / "norrvik_kb.yml").exists():
        out.append(norrvik_protocol())
    if "seed-halves" in only:
        out.extend(seed_halves())
    return out


def cache_dir(name: str) -> Path:
    if name.startswith("seed-halves"):
        name = "seed-q1"  # the same texts
    return CACHE if name == "seed" else CACHE / "generalisation" / name


def indexed(p: Protocol, embedder, settings: RetrievalSettings) -> Retriever:
    """A retriever with `p`'s knowledge base (and, for the seed halves, a memory lacking its intents)."""
    retriever = Retriever(embedder, cache_dir=cache_dir(p.name), settings=protocol_settings(p.name, settings))
    retriever.rebuild(p.entries)
    if p.memory_lacks and retriever.translation_memory() is not None:
        retriever.use_memory(retriever.translation_memory().without(p.memory_lacks))
    return retriever


SEED_PROTOCOLS = ("seed-q1", "seed-answers")


def protocol_settings(name: str, settings: RetrievalSettings) -> RetrievalSettings:
    """The reduced seed's protocols run without the translation memory (knowledge/bridge.py): it IS
    the seed, so it would hand them back the question variants the reduction took away. The full
    seed runs with it, as a service serving the seed does (there the memory adds nothing the
    knowledge base lacks)."""
    return settings.replace(bridge=False) if name in SEED_PROTOCOLS else settings


# ----------------------------------------------------------------------------- measuring


def on_topic(entries: dict[str, Entry], got: str | None, expected: str) -> bool:
    return got is not None and (got == expected or bool(set(entries[got].tags) & set(entries[expected].tags)))


def outcome(retriever: Retriever, entries: list[Entry], messages: list[dict], settings: RetrievalSettings) -> dict:
    """Ranking and decision figures of `messages` against the indexed `entries` (see module doc)."""
    by_id = {e.id: e for e in entries}
    c = dict.fromkeys(
        (
            "top1",
            "mrr",
            "topic",
            "other",
            "other_n",
            "right",
            "answered_topic",
            "clarify",
            "handoff",
            "wrong",
            "unans_answered",
        ),
        0.0,
    )
    n_ans = n_unans = 0
    for d in messages:
        lang, _ = detect_language(d["text"], vocabulary=retriever.vocabulary)
        cands = retriever.search(d["text"], language=lang, top_k=10)
        dec = decide(cands, lang, settings, words=reads_as_words(d["text"], lang, retriever.vocabulary))
        ids = [x.entry.id for x in cands]
        best = ids[0] if ids else None
        gold = d.get("expected")
        answered = dec.decision == "answer"
        if not gold:
            n_unans += 1
            c["unans_answered"] += answered
            c["wrong"] += answered
            continue
        n_ans += 1
        c["top1"] += best == gold
        c["mrr"] += 1.0 / (ids.index(gold) + 1) if gold in ids else 0.0
        c["topic"] += on_topic(by_id, best, gold)
        if d.get("language", "sv") != "sv":
            c["other_n"] += 1
            c["other"] += best == gold
        c["right"] += answered and best == gold
        c["answered_topic"] += answered and on_topic(by_id, best, gold)
        c["wrong"] += answered and best != gold
        c["clarify"] += dec.decision == "clarify" and gold in {x.entry.id for x in dec.candidates}
        c["handoff"] += dec.decision == "handoff"
    a = max(n_ans, 1)
    return {
        "n": len(messages),
        "answerable": n_ans,
        "top1": c["top1"] / a,
        "mrr10": c["mrr"] / a,
        "topic": c["topic"] / a,
        "other": c["other"] / max(c["other_n"], 1),
        "other_n": int(c["other_n"]),
        "right": c["right"] / a,
        "answered_topic": c["answered_topic"] / a,
        "clarify": c["clarify"] / a,
        "handoff": c["handoff"] / a,
        "wrong": c["wrong"] / max(len(messages), 1),
        "unans_answered": c["unans_answered"] / max(n_unans, 1),
        "unanswerable": n_unans,
    }


def plain_e5(retriever: Retriever, entries: list[Entry], messages: list[dict]) -> dict:
    """Ranking of plain multilingual-e5-small: raw message vs every question and whole answer."""
    rows, owner = [], []
    for i, e in enumerate(entries):
        for r in entry_rows(e, retriever.settings):
            if r.kind != "c":
                rows.append(r)
                owner.append(i)
    vecs = retriever._vectors(rows)  # cached: "query: " for questions, "passage: " for answers
    owner_a = np.array(owner)
    answerable = [d for d in messages if d.get("expected")]
    q = np.asarray(retriever.embedder.encode_queries([d["text"] for d in answerable]), dtype=np.float32)
    sims = q @ vecs.T
    by_id = {e.id: e for e in entries}
    top1 = mrr = topic = 0.0
    for d, s in zip(answerable, sims, strict=True):
        best = np.full(len(entries), -2.0)
        np.maximum.at(best, owner_a, s)
        ids = [entries[j].id for j in np.argsort(-best)[:10]]
        top1 += ids[0] == d["expected"]
        mrr += 1.0 / (ids.index(d["expected"]) + 1) if d["expected"] in ids else 0.0
        topic += on_topic(by_id, ids[0], d["expected"])
    a = max(len(answerable), 1)
    return {"top1": top1 / a, "mrr10": mrr / a, "topic": topic / a}


HEADER = (
    f"{'protocol':13s} {'split':5s} {'n':>4s} {'ans':>4s} {'top-1':>6s} {'MRR10':>6s} {'topic':>6s} "
    f"{'other':>6s} | {'right':>6s} {'r+clar':>6s} {'ans.top':>7s} {'clarify':>7s} {'handoff':>7s} "
    f"{'wrong':>6s} {'unans':>6s}"
)


def row(name: str, split: str, m: dict) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:5.1f}%"

    return (
        f"{name:13s} {split:5s} {m['n']:4d} {m['answerable']:4d} {m['top1']:6.3f} {m['mrr10']:6.3f} "
        f"{m['topic']:6.3f} {m['other']:6.3f} | {pct(m['right']):>6s} {pct(m['right'] + m['clarify']):>6s} "
        f"{pct(m['answered_topic']):>7s} {pct(m['clarify']):>7s} {pct(m['handoff']):>7s} {pct(m['wrong']):>6s} "
        f"{pct(m['unans_answered']):>6s}"
    )


def e5_row(m: dict) -> str:
    return f"{'  plain e5':19s} {'':9s} {m['top1']:6.3f} {m['mrr10']:6.3f} {m['topic']:6.3f}"


def adapter_for(p: Protocol) -> Path | None:
    """The adapter `p` runs with; a fold's is trained once (~5 minutes) and kept in the cache."""
    from knowledge import adaptation
    from knowledge.adaptation import ADAPTER, seed_entries, train
    from knowledge.embedding import build_model_folder

    if p.model == "plain":
        return None
    if p.model == "shipped":
        return ADAPTER
    # A new recipe trains them anew (what trains, not the module's prose).
    parts = (adaptation.train, adaptation._batches, adaptation._positive, adaptation._attach, adaptation._lora_class)
    recipe = repr((adaptation.RANK, adaptation.ALPHA, adaptation.TARGETS)) + "".join(map(inspect.getsource, parts))
    recipe = recipe.encode()
    tag = hashlib.sha1("\n".join(sorted(p.memory_lacks)).encode() + recipe).hexdigest()[:12]
    path = CACHE / "adapters" / f"without-{tag}.npz"
    if not path.exists():
        print(f"  training an adapter without {p.name}'s {len(p.memory_lacks)} entries ...", flush=True)
        base = build_model_folder(CACHE / "adapters" / "plain-model", adapter=None)
        train(base, [e for e in seed_entries() if e.id not in p.memory_lacks], path, log=lambda m: None)
    return path


def embedder_for(p: Protocol, cache: dict):
    """One embedder per adapter (a model folder each, under the bench cache)."""
    from knowledge.embedding import Embedder, build_model_folder

    adapter = adapter_for(p)
    key = str(adapter)
    if key not in cache:
        if p.model == "shipped":
            cache[key] = load_embedder()
        else:
            folder = CACHE / "adapters" / (adapter.stem if adapter else "plain-model")
            cache[key] = Embedder(build_model_folder(folder, adapter=adapter))
    return cache[key]


def run(
    only: set[str], splits: set[str], settings: RetrievalSettings, with_e5: bool = True, plain: bool = False
) -> list[tuple]:
    embedders: dict = {}
    results = []
    print(HEADER)
    for p in protocols(only):
        if plain:
            p.model = "plain"
        ps = protocol_settings(p.name, settings)
        embedder = embedder_for(p, embedders)
        t = time.perf_counter()
        retriever = indexed(p, embedder, settings)
        build = time.perf_counter() - t
        for split, messages in p.splits.items():
            if split not in splits:
                continue
            m = outcome(retriever, p.entries, messages, ps)
            print(row(p.name, split, m), flush=True)
            e5 = plain_e5(retriever, p.entries, messages) if with_e5 else None
            if e5:
                print(e5_row(e5), flush=True)
            results.append((p.name, split, m, e5))
        print(f"  ({len(p.entries)} entries, index built in {build:.1f} s)")
    return results


# ----------------------------------------------------------------------------- fitting the decision

# Small knowledge bases; the seed has its own fit. The seed halves (each with an adapter that never
# saw its entries) stand for the reduced seed: the shipped adapter has seen every seed entry's wordings.
FIT_PROTOCOLS = "seed-halves,swefaq,norrvik"


def labelled(searched: list[tuple[dict, str, list]]) -> list[tuple[dict, bool, bool, bool]]:
    """(signals, best is right, right among the best three, unanswerable) per (message, language,
    candidates) that found any: what `fit_decision` takes."""
    out = []
    for d, lang, cands in searched:
        if cands:
            ids, gold = [c.entry.id for c in cands], d.get("expected")
            out.append((signals(cands, lang), bool(gold) and ids[0] == gold, bool(gold) and gold in ids[:3], not gold))
    return out


def decision_rows(retriever: Retriever, messages: list[dict]) -> list[tuple[dict, bool, bool, bool]]:
    """`labelled` rows of `messages`, searched as `/api/v1/answer` searches them."""
    searched = []
    for d in messages:
        lang, _ = detect_language(d["text"], vocabulary=retriever.vocabulary)
        searched.append((d, lang, retriever.search(d["text"], language=lang, top_k=10)))
    return labelled(searched)


def fit_decision(by_kb: dict[str, list[tuple]], max_wrong: float, max_unanswered: float) -> dict:
    """Two logistic regressions over `SIGNALS` (each knowledge base weighs the same): "standout"
    (the best entry is right) and "offer" (the right one is among the best three). Then the lowest
    standout threshold that keeps confident wrong answers under `max_wrong` of all messages and
    answered unanswerable ones under `max_unanswered` on EVERY knowledge base (with the seed's
    score rule beside it, as `decide` does). The offer threshold is left as it is: on these sets
    the unanswerable messages are near-misses as plausible as the answerable ones, so it trades
    offered-right for nothing; `offer_min_lead` keeps nonsense out."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[r[0][k] for k in SIGNALS] for rows in by_kb.values() for r in rows])
    weight = np.concatenate([np.full(len(rows), len(x) / (len(by_kb) * len(rows))) for rows in by_kb.values()])
    fitted: dict = {}
    for prefix, label in (("standout", 1), ("offer", 2)):
        y = np.array([r[label] for rows in by_kb.values() for r in rows])
        model = LogisticRegression(C=10.0, max_iter=5000).fit(x, y, sample_weight=weight)
        fitted[f"{prefix}_bias"] = round(float(model.intercept_[0]), 3)
        fitted.update({f"{prefix}_w_{k}": round(float(w), 3) for k, w in zip(SIGNALS, model.coef_[0], strict=True)})
    settings = load_retrieval_settings().replace(**fitted)
    for t in np.round(np.arange(0.5, 0.996, 0.01), 3):
        ok = True
        for rows in by_kb.values():
            answered = np.array(
                [
                    (
                        probability(r[0], settings, "standout") >= t
                        or probability(r[0], settings, "answer") >= settings.answer_probability
                    )
                    and r[0]["margin"] >= settings.answer_min_margin
                    for r in rows
                ]
            )
            right, unans = np.array([r[1] for r in rows]), np.array([r[3] for r in rows])
            ok &= (answered & ~right).sum() <= max_wrong * len(rows)
            ok &= (answered & unans).sum() <= max_unanswered * max(unans.sum(), 1)
        if ok:
            fitted["standout_probability"] = float(t)
            break
    return fitted


def fit(args) -> int:
    embedders: dict = {}
    settings = load_retrieval_settings()
    by_kb = {}
    for p in protocols(set(FIT_PROTOCOLS.split(","))):
        retriever = indexed(p, embedder_for(p, embedders), settings)
        by_kb[p.name] = decision_rows(retriever, p.splits["dev"])
        print(f"{p.name}: {len(by_kb[p.name])} dev messages", flush=True)
    fitted = fit_decision(by_kb, args.max_wrong, args.max_unanswered)
    print("fitted on the dev splits (put these in knowledge/settings.py or a settings file):")
    print("\n".join(f"  {k}: {v}" for k, v in fitted.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="seed,seed-q1,seed-answers,swefaq,norrvik,seed-halves")
    ap.add_argument("--splits", default="dev,test")
    ap.add_argument("--no-e5", action="store_true", help="leave out the plain e5 reference rows")
    ap.add_argument("--plain", action="store_true", help="every protocol without the municipal adapter (before it)")
    ap.add_argument("--fit", action="store_true", help="refit the decision on the dev splits and print the settings")
    ap.add_argument("--max-wrong", type=float, default=0.015, help="--fit: confident wrong, of all (each KB)")
    ap.add_argument("--max-unanswered", type=float, default=0.07, help="--fit: unanswerable answered (each KB)")
    args = ap.parse_args(argv)
    if args.fit:
        return fit(args)
    print(
        "columns: top-1 / MRR@10 / top-1 on the right topic / top-1 of non-Swedish messages (answerable);"
        " answered right, answered or offered right, answered on topic, right among clarify buttons,"
        " handed off (of answerable); confident wrong (of all); unanswerable answered (of unanswerable)"
    )
    run(set(args.only.split(",")), set(args.splits.split(",")), load_retrieval_settings(), not args.no_e5, args.plain)
    return 0


if __name__ == "__main__":
    sys.exit(main())

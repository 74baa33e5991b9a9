"""The answer decision across knowledge bases: what each rule answers, offers and gets wrong.

    .venv/bin/python -m bench.decision [--refresh] [--fit] [--max-wrong 0.015]

Every protocol of `bench/generalisation.py` (seed, seed-q1, seed-answers, SweFAQ, Norrvik) is searched
once per split, as `/api/v1/answer` does, and the candidate lists are kept in the bench cache
(`--refresh` searches again). Then the decision in `knowledge/decision.py` is replayed on them with
the configured settings, and with `--fit` refitted as `bench/generalisation.py --fit` does, on the
small knowledge bases' dev splits only, and both are reported on dev and test. Replaying takes
seconds, so rules can be compared without searching again.
"""

from __future__ import annotations

import argparse
import pickle
import sys

from bench.generalisation import FIT_PROTOCOLS, fit_decision, indexed, labelled, protocols
from bench.retrieval import CACHE, load_embedder
from knowledge.decision import decide
from knowledge.language import detect_language
from knowledge.lexical import reads_as_words
from knowledge.settings import RetrievalSettings, load_retrieval_settings

ROWS = CACHE / "decision-rows.pkl"
ALL = "seed," + FIT_PROTOCOLS


def collect(only: str, refresh: bool) -> dict:
    """{(protocol, split): [(message, language, reads as words, candidates)]}, searched once and kept
    (`refresh`: the protocols in `only` searched again)."""
    cached = pickle.loads(ROWS.read_bytes()) if ROWS.exists() else {}
    wanted = set(only.split(","))
    missing = [p for p in wanted if refresh or not any(k[0] == p for k in cached)]
    if missing:
        embedder = load_embedder()
        settings = load_retrieval_settings()
        for p in protocols(set(missing)):
            retriever = indexed(p, embedder, settings)
            for split, messages in p.splits.items():
                rows = []
                for d in messages:
                    lang, _ = detect_language(d["text"], vocabulary=retriever.vocabulary)
                    cands = retriever.search(d["text"], language=lang, top_k=10)
                    rows.append((d, lang, reads_as_words(d["text"], lang, retriever.vocabulary), cands))
                cached[(p.name, split)] = rows
                print(f"searched {p.name} {split}: {len(rows)} messages", flush=True)
        ROWS.parent.mkdir(parents=True, exist_ok=True)
        ROWS.write_bytes(pickle.dumps(cached))
    return {k: v for k, v in cached.items() if k[0] in wanted}


def replay(rows: list, settings: RetrievalSettings) -> dict:
    """The citizen's outcomes of `rows` under `settings` (as bench/generalisation.py counts them)."""
    n_ans = n_unans = right = offered = handoff = wrong = unans = 0
    for d, lang, words, cands in rows:
        dec = decide(cands, lang, settings, words=words)
        gold = d.get("expected")
        best = cands[0].entry.id if cands else None
        answered = dec.decision == "answer"
        if not gold:
            n_unans += 1
            unans += answered
            wrong += answered
            continue
        n_ans += 1
        right += answered and best == gold
        wrong += answered and best != gold
        offered += dec.decision == "clarify" and gold in {c.entry.id for c in dec.candidates}
        handoff += dec.decision == "handoff"
    a = max(n_ans, 1)
    return {
        "n": len(rows),
        "right": right / a,
        "offered": (right + offered) / a,
        "handoff": handoff / a,
        "wrong": wrong / max(len(rows), 1),
        "unans": unans / max(n_unans, 1),
    }


def table(data: dict, settings: RetrievalSettings, title: str) -> None:
    print(f"\n{title}")
    columns = f"{'right':>6s} {'r+offer':>7s} {'handoff':>7s} {'wrong':>6s} {'unans':>6s}"
    print(f"{'protocol':13s} {'split':5s} {'n':>4s} | {columns}")
    for (name, split), rows in sorted(data.items()):
        m = replay(rows, settings)
        print(
            f"{name:13s} {split:5s} {m['n']:4d} | {100 * m['right']:5.1f}% {100 * m['offered']:6.1f}% "
            f"{100 * m['handoff']:6.1f}% {100 * m['wrong']:5.1f}% {100 * m['unans']:5.1f}%"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=ALL)
    ap.add_argument("--refresh", action="store_true", help="search again instead of the kept candidate lists")
    ap.add_argument("--fit", action="store_true", help="refit the decision on the dev splits (bench/generalisation.py)")
    ap.add_argument("--max-wrong", type=float, default=0.015, help="--fit: confident wrong, of all (each KB)")
    ap.add_argument("--max-unanswered", type=float, default=0.07, help="--fit: unanswerable answered (each KB)")
    args = ap.parse_args(argv)
    data = collect(args.only, args.refresh)
    settings = load_retrieval_settings()
    table(data, settings, "configured settings")
    if args.fit:
        by_kb = {
            name: labelled([(d, lang, cands) for d, lang, _, cands in rows])
            for (name, split), rows in data.items()
            if split == "dev" and name != "seed"
        }
        fitted = fit_decision(by_kb, args.max_wrong, args.max_unanswered)
        print(f"\nrefitted on the dev splits of {', '.join(by_kb)}:")
        print("\n".join(f"  {k}: {v}" for k, v in fitted.items()))
        table(data, settings.replace(**fitted), "refitted")
    return 0


if __name__ == "__main__":
    sys.exit(main())

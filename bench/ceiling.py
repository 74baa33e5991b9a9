"""How many answers right any answer rule over the decision's signals could give (issue 13's ceiling).

    .venv/bin/python -m bench.ceiling [--only norrvik,seed-halves,swefaq] [--max-wrong 0.015,0.02]

Issue 13 asks for ≥ 70 % of answerable messages answered right with confident wrong ≤ 2 % of all
messages. The decision answers when its estimate that the best entry is right clears a threshold, so
for a given ranking the most it can answer right is bounded by how well that estimate orders the
messages. Per knowledge base and split this prints the committed decision's answered right and
confident wrong, then the most answered right that ANY threshold reaches with confident wrong within
the limit, the threshold chosen on the very messages it is measured on (an oracle), for three orderings:

- `P`: the committed decision's P(right) (the larger of its score and standout models);
- `lr4`: a logistic model over the decision's four signals, fitted on the other knowledge bases of
  the list (same split, each weighing the same): what a refit could do;
- `lr17`: the same over 17 signals of the candidates: the dense, lexical and centroid margins, whether
  each ranker alone puts the best entry first, the matched row's kind, cosine and coverage, the
  pivot's and the borrowed wordings' scores, the message's length.

A ceiling below the target means no decision over these signals reaches it on this ranking.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.generalisation import FIT_PROTOCOLS, embedder_for, indexed, protocols
from knowledge.decision import SIGNALS, decide, signals
from knowledge.language import detect_language
from knowledge.lexical import reads_as_words
from knowledge.retrieval import QUESTION, Candidate
from knowledge.settings import load_retrieval_settings

WIDE = (*SIGNALS, "dense_margin", "lexical", "lexical_margin", "centroid_margin", "dense_first", "lexical_first",
        "centroid_first", "question_row", "cos", "coverage", "pivot", "borrowed", "words")


def features(text: str, language: str, cands: list[Candidate]) -> dict[str, float]:
    """The decision's signals and more of the candidates' (see the module doc)."""
    top, rest = cands[0], cands[1:]

    def margin(value) -> float:
        return value(top) - max((value(c) for c in rest), default=0.0)

    def first(value) -> float:
        return float(all(value(top) >= value(c) for c in rest))

    centroid = lambda c: c.raw.get("centroid", 0.0)  # noqa: E731
    return {
        **signals(cands, language),
        "dense_margin": margin(lambda c: c.dense), "lexical": top.lexical,
        "lexical_margin": margin(lambda c: c.lexical),
        "centroid_margin": margin(centroid), "dense_first": first(lambda c: c.dense),
        "lexical_first": first(lambda c: c.lexical), "centroid_first": first(centroid),
        "question_row": float(top.matched_kind == QUESTION), "cos": top.raw.get("cos", 0.0),
        "coverage": top.raw.get("coverage", 0.0), "pivot": top.raw.get("paraphrase", top.raw.get("bridge", 0.0)),
        "borrowed": top.raw.get("borrowed", 0.0), "words": min(len(text.split()), 20) / 20,
    }


def searched(retriever, messages: list[dict], settings) -> list[dict]:
    """Per message: whether it is answerable, whether the best entry is right, the committed decision's
    answer and P(right), and the features (None where nothing is found or no word is known)."""
    out = []
    for d in messages:
        lang, _ = detect_language(d["text"], vocabulary=retriever.vocabulary)
        cands = retriever.search(d["text"], language=lang, top_k=10)
        words = reads_as_words(d["text"], lang, retriever.vocabulary)
        gold = d.get("expected")
        decision = decide(cands, lang, settings, words=words)
        row = {"answerable": bool(gold), "right": bool(gold and cands and cands[0].entry.id == gold),
               "answered": decision.decision == "answer", "x": None, "p": decision.explain.get("probability", 0.0)}
        if cands and words:
            row["x"] = features(d["text"], lang, cands)
        out.append(row)
    return out


def ceiling(rows: list[dict], score: np.ndarray, max_wrong: float) -> float:
    """The most answered right (of answerable) any threshold on `score` reaches with confident wrong
    ≤ max_wrong of all messages; messages without features are never answered."""
    usable = [i for i, r in enumerate(rows) if r["x"] is not None]
    order = [usable[i] for i in np.argsort(-score[usable], kind="stable")]
    right = np.cumsum([rows[i]["right"] for i in order])
    wrong = np.cumsum([not rows[i]["right"] for i in order])
    ok = wrong <= max_wrong * len(rows)
    return float(right[ok].max()) / max(sum(r["answerable"] for r in rows), 1) if ok.any() else 0.0


def held_out_scores(by_kb: dict[str, list[dict]], held: str, columns: tuple[str, ...]) -> np.ndarray:
    """P(best is right) for `held`'s messages from a logistic model fitted on the other knowledge bases."""
    from sklearn.linear_model import LogisticRegression

    train = {kb: [r for r in rows if r["x"] is not None] for kb, rows in by_kb.items() if kb != held}
    x = np.array([[r["x"][k] for k in columns] for rows in train.values() for r in rows])
    y = np.array([r["right"] for rows in train.values() for r in rows])
    weight = np.concatenate([np.full(len(rows), len(x) / (len(train) * len(rows))) for rows in train.values()])
    model = LogisticRegression(C=1.0, max_iter=5000).fit(x, y, sample_weight=weight)
    rows = by_kb[held]
    scores = np.zeros(len(rows))
    usable = [i for i, r in enumerate(rows) if r["x"] is not None]
    scores[usable] = model.predict_proba(np.array([[rows[i]["x"][k] for k in columns] for i in usable]))[:, 1]
    return scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=FIT_PROTOCOLS)
    ap.add_argument("--splits", default="dev,test")
    ap.add_argument("--max-wrong", default="0.015,0.02", help="confident wrong limits, of all messages")
    args = ap.parse_args(argv)
    settings, embedders = load_retrieval_settings(), {}
    limits = [float(x) for x in args.max_wrong.split(",")]
    found: dict[str, dict[str, list[dict]]] = {split: {} for split in args.splits.split(",")}
    for p in protocols(set(args.only.split(","))):
        retriever = indexed(p, embedder_for(p, embedders), settings)
        for split, by_kb in found.items():
            by_kb[p.name] = searched(retriever, p.splits[split], retriever.settings)
        print(f"{p.name}: searched", file=sys.stderr, flush=True)
    heads = " ".join(f"{o}≤{m:.1%}".rjust(11) for m in limits for o in ("P", "lr4", "lr17"))
    print(f"{'knowledge base':16s} {'split':5s} {'n':>4s} {'top-1':>6s} {'right':>6s} {'wrong':>6s} {heads}")
    for split, by_kb in found.items():
        for kb, rows in by_kb.items():
            answerable = max(sum(r["answerable"] for r in rows), 1)
            right = sum(r["answered"] and r["right"] for r in rows) / answerable
            wrong = sum(r["answered"] and not r["right"] for r in rows) / len(rows)
            top1 = sum(r["right"] for r in rows) / answerable
            orderings = {"P": np.array([r["p"] for r in rows])}
            if len(by_kb) > 1:
                orderings["lr4"] = held_out_scores(by_kb, kb, SIGNALS)
                orderings["lr17"] = held_out_scores(by_kb, kb, WIDE)
            cells = " ".join(
                (f"{ceiling(rows, orderings[o], m):.1%}" if o in orderings else "–").rjust(11)
                for m in limits for o in ("P", "lr4", "lr17")
            )
            print(f"{kb:16s} {split:5s} {len(rows):4d} {top1:6.3f} {right:6.1%} {wrong:6.1%} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

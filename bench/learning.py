"""A first month of traffic, learnt from (issue 19): does accepting the suggestions make the bot answer more?

    .venv/bin/python -m bench.learning [--only seed-q1,norrvik] [--helpful 0.5] [--seed 19] [--refit]

Per protocol, a knowledge base with ONE Swedish question per entry (bench/generalisation.py's `seed-q1`:
the seed reduced so; `norrvik`: its knowledge base reduced the same way) is indexed, and:

1. before: the TEST messages are asked through language detection, search and the decision, exactly as
   bench/generalisation.py `outcome` asks them;
2. the month: every DEV message is asked the same way and its conversation is written into a temporary
   SQLite database as the live system stores it (the citizen's message masked; the bot's outputs as the
   Rasa actions give them: answer with thumbs then its data, "did you mean" buttons then the clarify data,
   "no match" then its data, the handoff; feedback as the internal endpoint stores it; the agent's
   messages as the console's). The citizen: on "did you mean" picks the right entry if it is offered,
   else presses "none of these" and takes the person offered; on an answer says "yes, that helped" with
   probability --helpful if it is right and "no" with the same probability if it is wrong; on "no match"
   asks for a person. The agent answers with the right entry's answer (the console's suggestion), or, for
   a message the knowledge base cannot answer, with a reply of their own;
3. learning/suggestions.py mines the month; a webmaster reads each proposal and accepts a variant whose
   question belongs to its target entry (the dev message's gold entry), ticking the evidence's other
   wordings that belong to it too, and dismisses every other proposal (including new entries: the agents'
   replies here are no content to publish); the index is rebuilt;
4. after: the same TEST messages again. The test messages are used for nothing else.
5. ceiling: every answerable dev message added to its right entry (what a perfect miner and webmaster
   could learn from this month), then the test messages: how much of the possible gain was had.

Columns (of answerable test messages unless said): ranking top-1, answered right, right among the clarify buttons
("offered"), handed off, confident wrong (of all test messages), unanswerable answered (of those).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.generalisation import (
    DATA,
    cache_dir,
    decision_rows,
    first_swedish_question,
    fit_decision,
    outcome,
    protocol_settings,
    seed_first_question,
)
from bench.retrieval import load_embedder, read_jsonl
from conversations.store import ConversationStore
from conversations.tables import conversations
from core.db import make_engine
from core.privacy import mask
from knowledge.decision import decide
from knowledge.entries import Entry
from knowledge.kbfile import load_path
from knowledge.language import detect_language
from knowledge.lexical import reads_as_words
from knowledge.retrieval import Retriever
from knowledge.settings import load_retrieval_settings
from knowledge.store import KnowledgeStore
from learning import suggestions
from learning.meaning import conversation_rows

MUNICIPALITY = "default"
HELPED, NOT_HELPED = '/affirm{"feedback":"yes"}', '/deny{"feedback":"no"}'
MAX_CANDIDATES = 3  # actions/common.py: the "did you mean" buttons
OWN_REPLY = "Det har vi tyvärr ingen information om här. Ring kommunens kontaktcenter så hjälper de dig vidare."


def copied(entries: list[Entry]) -> dict[str, Entry]:
    """The entries by id, with question lists of their own to add a month's wordings to."""
    return {
        e.id: Entry(
            id=e.id,
            answer=dict(e.answer),
            questions={k: list(v) for k, v in e.questions.items()},
            tags=e.tags,
            url=e.url,
        )
        for e in entries
    }


def protocols(only: set[str]) -> list[tuple[str, list[Entry], list[dict], list[dict]]]:
    out = []
    if "seed-q1" in only:
        dev, test = (read_jsonl(DATA / f"multilingual_{sp}.jsonl") for sp in ("dev", "test"))
        out.append(("seed-q1", seed_first_question(), dev, test))
    if "norrvik" in only:
        dev, test = (read_jsonl(DATA / f"norrvik_{sp}.jsonl") for sp in ("dev", "test"))
        out.append(("norrvik", first_swedish_question(load_path(DATA / "norrvik_kb.yml")), dev, test))
    return out


class BenchKnowledge:
    """What the miner and `accept` use of the knowledge service: the store, the embedder, language detection
    with the index's vocabulary; `upsert` writes the store (the bench rebuilds the index after the month)."""

    def __init__(self, store: KnowledgeStore, retriever: Retriever):
        self.store = store
        self.retriever = retriever
        self.embedder = retriever.embedder

    def detect_language(self, text: str, prior: str | None = None) -> tuple[str, float]:
        return detect_language(text, prior=prior, vocabulary=self.retriever.vocabulary)

    def upsert(self, entry: Entry, actor: str | None = None) -> str:
        return self.store.upsert(entry, actor)


# ----------------------------------------------------------------------------- the month, as stored


def _buttons(*payloads: str) -> list[dict]:
    return [{"title": p, "payload": p} for p in payloads]


class Month:
    """Writes each conversation of the month as the chat service, the actions and the console store it."""

    def __init__(self, engine, retriever: Retriever, entries: list[Entry], rng: random.Random, helpful: float):
        self.store = ConversationStore(engine)
        self.engine = engine
        self.retriever = retriever
        self.by_id = {e.id: e for e in entries}
        self.rng = rng
        self.helpful = helpful
        self.counts: Counter = Counter()

    def bot(self, cid: str, *outputs: dict) -> None:
        for out in outputs:  # conversations.service.store_bot_outputs
            data = {k: out[k] for k in ("buttons", "custom") if out.get(k)}
            self.store.add_message(cid, "bot", out.get("text") or "", data)

    def citizen(self, cid: str, text: str) -> None:
        self.store.add_message(cid, "citizen", mask(text))  # what staff and the miner see is masked

    def answer(self, cid: str, entry_id: str, decision: str, lang: str, gold: str | None) -> None:
        self.bot(
            cid,
            {"text": self.by_id[entry_id].answer["sv"], "buttons": _buttons(HELPED, NOT_HELPED)},
            {
                "custom": {
                    "kind": "answer",
                    "entry_id": entry_id,
                    "decision": decision,
                    "answer_language": "sv",
                    "language": lang,
                }
            },
        )
        if self.rng.random() >= self.helpful:
            return  # most citizens press nothing
        helped = entry_id == gold
        self.citizen(cid, HELPED if helped else NOT_HELPED)
        self.store.add_message(
            cid, "system", "feedback", {"custom": {"kind": "feedback", "entry_id": entry_id, "helpful": helped}}
        )
        self.counts["feedback_yes" if helped else "feedback_no"] += 1
        self.bot(cid, {"text": "Vad bra!" if helped else "Vill du prata med en person?"})

    def handoff(self, cid: str, gold: str | None) -> None:
        self.citizen(cid, "/request_human")
        self.bot(
            cid,
            {"text": "Du är nummer 1 i kön."},
            {"custom": {"kind": "handoff", "state": "queued", "position": 1, "reason": "requested"}},
        )
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                conversations.update()
                .where(conversations.c.id == cid)
                .values(state="agent", queued_at=now, assigned_at=now, handoff_reason="requested")
            )
        self.store.add_message(
            cid, "system", "Agnes har anslutit", {"custom": {"kind": "agent_joined", "agent": "Agnes"}}
        )
        reply = self.by_id[gold].answer["sv"] if gold else OWN_REPLY
        for text in ("Hej! Jag heter Agnes, jag tittar på din fråga.", reply):
            self.store.add_message(cid, "agent", text, {"author": "Agnes", "user_id": 1})
        self.counts["handed_off"] += 1

    def converse(self, message: dict) -> None:
        text, gold = message["text"], message.get("expected")
        conv = self.store.create(MUNICIPALITY, message.get("language", "sv"))
        cid = conv["id"]
        self.citizen(cid, text)
        lang, _ = detect_language(text, vocabulary=self.retriever.vocabulary)
        cands = self.retriever.search(text, language=lang, top_k=10)
        dec = decide(
            cands, lang, load_retrieval_settings(), words=reads_as_words(text, lang, self.retriever.vocabulary)
        )
        offered = [c.entry.id for c in dec.candidates[:MAX_CANDIDATES]]
        kind = "answer" if dec.decision == "clarify" and len(offered) == 1 else dec.decision  # as ActionAnswer does
        if kind == "answer" and offered:
            self.answer(cid, offered[0], "answer", lang, gold)
        elif kind == "clarify":
            buttons = [
                {
                    "title": self.by_id[i].first_question(lang),
                    "payload": "/choose_entry" + json.dumps({"entry_id": i}, separators=(",", ":")),
                }
                for i in offered
            ]
            self.bot(
                cid,
                {"text": "Menade du något av detta?", "buttons": [*buttons, *_buttons("/none_of_these")]},
                {"custom": {"kind": "clarify", "decision": "clarify", "entry_ids": offered}},
            )
            if gold in offered:
                self.counts["clarify_choice"] += 1
                self.citizen(cid, "/choose_entry" + json.dumps({"entry_id": gold}, separators=(",", ":")))
                self.answer(cid, gold, "clarify_choice", lang, gold)
            else:
                self.citizen(cid, "/none_of_these")
                self.bot(cid, {"text": "Vill du prata med en person?", "buttons": _buttons("/affirm", "/deny")})
                self.handoff(cid, gold)
        else:
            self.bot(
                cid,
                {"text": "Det vet jag tyvärr inte.", "buttons": _buttons("/request_human")},
                {"custom": {"kind": "decision", "decision": "no_match", "topics": []}},
            )
            self.handoff(cid, gold)


# ----------------------------------------------------------------------------- the webmaster


def _gold(gold: dict[str, Counter], text: str) -> str | None:
    found = gold.get(text, Counter()).most_common(1)
    return found[0][0] if found else None


def webmaster(knowledge: BenchKnowledge, engine, dev: list[dict]) -> Counter:
    """Accept a variant whose question belongs to its target (the gold entry of the dev message it came
    from, as a webmaster reading it would know); dismiss the rest."""
    gold: dict[str, Counter] = {}
    for d in dev:
        gold.setdefault(mask(d["text"]), Counter())[d.get("expected")] += 1
    decided: Counter = Counter()
    proposals = suggestions.refresh(knowledge, engine, MUNICIPALITY, days=3650)
    for p in proposals:
        right = p["kind"] == suggestions.VARIANT and _gold(gold, p["question"]) == p["entry_id"]
        if right:  # and ticks the other wordings in the evidence that belong to the entry too
            also = [e["text"] for e in p["evidence"] if _gold(gold, e["text"]) == p["entry_id"]]
            suggestions.accept(knowledge, engine, MUNICIPALITY, p["id"], "webmaster-bench", wordings=also)
        else:
            suggestions.dismiss(engine, MUNICIPALITY, p["id"], "webmaster-bench")
        decided[f"{p['kind']} {'accepted' if right else 'dismissed'}"] += 1
        decided[f"wordings {'accepted' if right else 'dismissed'}"] += p["count"]
    return decided


# ----------------------------------------------------------------------------- the run


HEADER = (
    f"{'protocol':9s} {'when':7s} {'n':>4s} {'ans':>4s} {'top-1':>6s} | {'right':>6s} {'offered':>7s} {'handoff':>7s} "
    f"{'wrong':>6s} {'unans':>6s}"
)


def row(name: str, when: str, m: dict) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:5.1f}%"

    return (
        f"{name:9s} {when:7s} {m['n']:4d} {m['answerable']:4d} {m['top1']:6.3f} | {pct(m['right']):>6s} "
        f"{pct(m['clarify']):>7s} {pct(m['handoff']):>7s} {pct(m['wrong']):>6s} {pct(m['unans_answered']):>6s}"
    )


def run_protocol(name: str, entries: list[Entry], dev: list[dict], test: list[dict], embedder, args) -> dict:
    settings = protocol_settings(name, load_retrieval_settings())  # seed-q1: no translation memory
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'month.db'}")
        from kommunchatt.schema import init_db

        init_db(engine)
        store = KnowledgeStore(engine)
        store.import_entries(MUNICIPALITY, entries, actor="bench")
        retriever = Retriever(
            embedder, cache_dir=cache_dir("seed-q1" if name == "seed-q1" else name), settings=settings
        )
        retriever.rebuild(store.all(MUNICIPALITY))
        before = outcome(retriever, entries, test, settings)
        print(row(name, "before", before), flush=True)

        started = time.perf_counter()
        month = Month(engine, retriever, entries, random.Random(args.seed), args.helpful)
        for message in dev:
            month.converse(message)
        replayed = time.perf_counter() - started
        started = time.perf_counter()
        knowledge = BenchKnowledge(store, retriever)
        mined = suggestions.mine(knowledge, engine, MUNICIPALITY)
        mining = time.perf_counter() - started
        decided = webmaster(knowledge, engine, dev)
        learnt = store.all(MUNICIPALITY)
        retriever.rebuild(learnt)
        after = outcome(retriever, learnt, test, settings)
        print(row(name, "after", after), flush=True)
        if args.refit:
            refitted = refit(knowledge, entries, month_labels(knowledge, engine), settings)
            retriever.rebuild(learnt)
            print(row(name, "+refit", outcome(retriever, learnt, test, refitted)), flush=True)
        added = sum(len(qs) for e in learnt for qs in e.questions.values()) - sum(
            len(qs) for e in entries for qs in e.questions.values()
        )
        print(
            f"  month: {len(dev)} dev conversations in {replayed:.1f} s ({dict(sorted(month.counts.items()))});"
            f" {len(mined)} proposals mined in {mining:.1f} s; webmaster: {dict(sorted(decided.items()))};"
            f" {added} question variants added to {len(entries)} entries",
            flush=True,
        )
        engine.dispose()
    ceiling = oracle(retriever, entries, dev, test, settings)
    print(row(name, "ceiling", ceiling), flush=True)
    return {"before": before, "after": after, "ceiling": ceiling}


def month_labels(knowledge: BenchKnowledge, engine) -> list[tuple[str, str | None]]:
    """(citizen's message, the entry their behaviour points at) from the stored month, no gold: the entry
    chosen, marked helpful or sent by the agent; None for a question an agent answered with their own reply."""
    entries = knowledge.store.all(MUNICIPALITY)
    convs, by_conv = conversation_rows(engine, MUNICIPALITY, 0.0)
    labels: dict[int, tuple[str, str | None]] = {}
    for item in suggestions.harvest(convs, by_conv, suggestions.answer_texts(entries)):
        labels.setdefault(item.message_id, (item.text, item.entry_id or None))
    return [labels[k] for k in sorted(labels)]


def refit(knowledge: BenchKnowledge, entries: list[Entry], labelled: list[tuple[str, str | None]], settings):
    """The decision refitted on the month's own labelled messages (bench/generalisation.py `fit_decision`),
    cross-fitted: each half's signals come from the knowledge base plus the OTHER half's labelled wordings,
    so no message is scored against itself. Returns the refitted settings."""
    retriever = knowledge.retriever
    halves = [labelled[0::2], labelled[1::2]]
    by_kb = {}
    for i, half in enumerate(halves):
        kb = copied(entries)
        for text, label in halves[1 - i]:
            if label in kb:
                kb[label].questions.setdefault(knowledge.detect_language(text)[0], []).append(text)
        retriever.rebuild(list(kb.values()))
        by_kb[f"half {i}"] = decision_rows(retriever, [{"text": t, "expected": label} for t, label in half])
    return settings.replace(**fit_decision(by_kb, max_wrong=0.015, max_unanswered=0.07))


def oracle(retriever: Retriever, entries: list[Entry], dev: list[dict], test: list[dict], settings) -> dict:
    """The ceiling of learning from this month: EVERY answerable dev message added to its right entry in
    its detected language (no miner, no webmaster), then the test messages asked."""
    by_id = copied(entries)
    retriever.rebuild(entries)
    for d in dev:
        if d.get("expected") in by_id:
            lang, _ = detect_language(d["text"], vocabulary=retriever.vocabulary)
            by_id[d["expected"]].questions.setdefault(lang, []).append(d["text"])
    learnt = list(by_id.values())
    retriever.rebuild(learnt)
    return outcome(retriever, learnt, test, settings)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="seed-q1,norrvik")
    ap.add_argument("--helpful", type=float, default=0.5, help="probability that a citizen presses a thumb")
    ap.add_argument("--seed", type=int, default=19, help="the citizens' random choices")
    ap.add_argument("--refit", action="store_true", help="also: the decision refitted on the month's labelled traffic")
    args = ap.parse_args(argv)
    embedder = load_embedder()
    print(
        "columns (test messages): top-1, answered right, right among the clarify buttons, handed off (of answerable);"
    )
    print("confident wrong (of all); unanswerable answered (of unanswerable)")
    print(HEADER)
    for name, entries, dev, test in protocols(set(args.only.split(","))):
        run_protocol(name, entries, dev, test, embedder, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

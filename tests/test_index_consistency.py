"""The search index never answers with an entry the database no longer has, or an old version of one.

A randomised sequence of changes (hypothesis stateful testing) goes through every write path: the
service's own edits, another process's writes (a separate engine, as `kommunchatt kb import` does),
replace-imports, two imports at once, writes racing a sync, and restarts. After each sync, each of
two workers (two services on the same database, as `serve --workers 2` runs) is compared with a
brute-force search: a retriever built from scratch from what the database holds. Every candidate
must be the database's current version, with the brute force's ids and scores.
Real model, real SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core.db import make_engine
from core.errors import Invalid
from knowledge.entries import Entry
from knowledge.retrieval import Retriever
from knowledge.service import KnowledgeService
from knowledge.store import KnowledgeStore
from kommunchatt.schema import init_db

IDS = [f"e{i}" for i in range(8)]
QUESTIONS = [
    "Hur ansöker jag om bygglov?",
    "När töms soptunnan?",
    "Var parkerar jag med tillstånd?",
    "Hur får jag plats i förskolan?",
    "Vad kostar hemtjänst?",
    "När har biblioteket öppet?",
    "Hur söker jag ekonomiskt bistånd?",
    "Vem plogar min gata?",
]
ANSWERS = [
    "Ansök om bygglov i e-tjänsten innan du börjar bygga.",
    "Soptunnan töms varannan vecka, schemat finns på Mina sidor.",
    "Med parkeringstillstånd får du stå på gatuparkering utan avgift.",
    "Ansök om förskoleplats fyra månader innan du behöver den.",
    "Hemtjänsten kostar efter inkomst, högst enligt maxtaxan.",
    "Biblioteket har öppet vardagar 10-19. Lördagar 11-15.",
    "Du ansöker om ekonomiskt bistånd hos socialtjänsten.",
    "Kommunen plogar gator när det har snöat mer än fem centimeter.",
]

entries = st.builds(
    lambda i, q, a, with_q: Entry(
        id=IDS[i], answer={"sv": ANSWERS[a]}, questions={"sv": [QUESTIONS[q]]} if with_q else {}
    ),
    st.integers(0, len(IDS) - 1),
    st.integers(0, len(QUESTIONS) - 1),
    st.integers(0, len(ANSWERS) - 1),
    st.booleans(),
)


class Shared:
    """What every example reuses: the model, the vector cache, the database and two workers."""

    def __init__(self, url: str, embedder, index_dir):
        self.url, self.embedder, self.index_dir = url, embedder, index_dir
        engine = make_engine(url)
        init_db(engine)
        self.workers = [self.start() for _ in range(2)]
        self.other = KnowledgeStore(make_engine(url))  # another process's writes: its own engine
        self.third = KnowledgeStore(make_engine(url))
        self.brute = Retriever(embedder, cache_dir=index_dir, settings=self.workers[0].settings)

    def start(self) -> KnowledgeService:
        worker = KnowledgeService(KnowledgeStore(make_engine(self.url)), None, self.index_dir, embedder=self.embedder)
        # Spelling correction maps a query onto the words a retriever has seen, which differ by
        # history; what is compared here is the index, so both sides take the query as written.
        worker.settings = worker.retriever.settings = worker.settings.replace(spell_correct=False)
        return worker


def check_against_brute_force(shared: Shared, worker: KnowledgeService, municipality: str) -> None:
    stored = {e.id: e.to_dict() for e in worker.store.all(municipality)}
    indexed = {e.id: e.to_dict() for e in worker.retriever.entries(municipality)}
    assert indexed == stored, "the index holds other entries or versions than the database"
    shared.brute.rebuild(worker.store.all(municipality))
    for text in {
        *QUESTIONS[:4],
        *ANSWERS[:3],
        *(q for d in stored.values() for qs in d.get("questions", {}).values() for q in qs),
    }:
        got = worker.retriever.search(text, municipality=municipality, language="sv", top_k=len(IDS))
        want = shared.brute.search(text, municipality=municipality, language="sv", top_k=len(IDS))
        for c in got:
            assert c.entry.to_dict() == stored.get(c.entry.id), f"{c.entry.id} answered but not so in the database"
        # Same entries, same scores up to the lexical index's row norms, which an incremental
        # index weighs with the n-gram frequencies of when a row was added (drift ~0.001).
        assert {c.entry.id for c in got} == {c.entry.id for c in want}, text
        scores = {c.entry.id: c.score for c in want}
        assert all(abs(c.score - scores[c.entry.id]) < 0.01 for c in got), (text, got, want)


class IndexMachine(RuleBasedStateMachine):
    shared: Shared

    @initialize()
    def fresh_municipality(self):
        self.m = f"m{uuid.uuid4().hex[:8]}"  # each example works in its own municipality

    @property
    def a(self) -> KnowledgeService:
        return self.shared.workers[0]

    @rule(entry=entries)
    def edit_in_service(self, entry):
        self.a.upsert(Entry(**{**entry.__dict__, "municipality": self.m}), actor="t")

    @rule(entry=entries)
    def edit_elsewhere(self, entry):
        self.shared.other.upsert(Entry(**{**entry.__dict__, "municipality": self.m}), actor="t")

    @rule(i=st.integers(0, len(IDS) - 1), here=st.booleans())
    def delete(self, i, here):
        (self.a if here else self.shared.other).delete(self.m, IDS[i], actor="t")

    @rule(batch=st.lists(entries, max_size=6, unique_by=lambda e: e.id), replace=st.booleans(), here=st.booleans())
    def import_file(self, batch, replace, here):
        if replace and not batch:  # would empty the knowledge base: refused, nothing changes
            with pytest.raises(Invalid):
                self.shared.other.import_entries(self.m, batch, replace=True)
            return
        if here:
            self.a.import_entries(self.m, batch, replace=replace, actor="t", wait=False)
        else:
            self.shared.other.import_entries(self.m, batch, replace=replace, actor="cli")

    @rule(
        first=st.lists(entries, max_size=5, unique_by=lambda e: e.id),
        second=st.lists(entries, max_size=5, unique_by=lambda e: e.id),
        replace=st.booleans(),
    )
    def two_imports_at_once(self, first, second, replace):
        threads = [
            threading.Thread(target=store.import_entries, args=(self.m, batch), kwargs={"replace": replace})
            for store, batch in ((self.shared.other, first), (self.shared.third, second))
            if batch  # an empty replacing import is refused (see import_file)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    @rule(entry=entries, worker=st.integers(0, 1))
    def write_during_sync(self, entry, worker):
        syncing = threading.Thread(target=self.shared.workers[worker].sync)
        syncing.start()
        self.shared.other.upsert(Entry(**{**entry.__dict__, "municipality": self.m}))
        syncing.join()

    @rule(worker=st.integers(0, 1))
    def restart(self, worker):
        old = self.shared.workers[worker]
        old.close()
        old.store.engine.dispose()
        self.shared.workers[worker] = self.shared.start()

    @rule(worker=st.integers(0, 1))
    def sync_and_check(self, worker):
        w = self.shared.workers[worker]
        w.sync()
        check_against_brute_force(self.shared, w, self.m)

    @precondition(lambda self: hasattr(self, "m"))
    @invariant()
    def what_status_calls_live_is_the_database(self):
        for w in self.shared.workers:
            rows = [r for r in w.status([self.m])["municipalities"] if r["municipality"] == self.m]
            if rows and rows[0]["live"]:
                stored = {e.id: e.to_dict() for e in w.store.all(self.m)}
                assert {e.id: e.to_dict() for e in w.retriever.entries(self.m)} == stored

    def teardown(self):
        if hasattr(self, "m"):
            for w in self.shared.workers:
                w.sync()
                check_against_brute_force(self.shared, w, self.m)


def test_index_follows_the_database_through_any_sequence_of_changes(database_url, embedder, tmp_path):
    IndexMachine.shared = Shared(database_url, embedder, tmp_path / "index")
    try:
        run_state_machine_as_test(
            IndexMachine,
            settings=settings(
                max_examples=8,
                stateful_step_count=15,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )
    finally:
        for w in IndexMachine.shared.workers:
            w.close()

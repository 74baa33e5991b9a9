"""A large shard's compact index (issue 18): int8 arena, inverted lists, no Row objects.

A toy embedder (hashed character trigrams) keeps this fast; the same entries are indexed once as a
small shard (float32 arena, exact scan) and once as a "large" one (`ivf_min_rows` lowered), and the
large one must find what the small one finds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import numpy as np
import pytest

from knowledge.entries import Entry
from knowledge.retrieval import Retriever
from knowledge.settings import load_retrieval_settings

TOPICS = (
    "avfall soptunna bygglov förskola skola hemtjänst parkering bibliotek simhall vatten avlopp snöröjning "
    "faktura taxa ansökan tillstånd servering buller träd gata cykel buss färdtjänst bostad hyra bidrag "
    "äldreboende fritids lov kultur idrott val röstkort brandvarnare eldning skatt flytt adress"
)
WORDS = TOPICS.split(" ")


class TrigramEmbedder:
    """Deterministic 384-dim vectors: hashed character trigrams, normalised."""

    dim = 384

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            padded = f"  {text.lower()} "
            for j in range(len(padded) - 2):
                h = int.from_bytes(hashlib.blake2b(padded[j : j + 3].encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0 if h & 1 << 20 else -1.0
            out[i, 0] += 3.0  # a common direction, as real sentence embeddings have
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    encode_queries = encode_passages = _encode


def make_entries(n: int, seed: int = 0) -> list[Entry]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = rng.sample(WORDS, 4)
        questions = [f"hur gör jag med {' '.join(rng.sample(topic, 3))} nummer {i}" for _ in range(3)]
        answer = f"Om {topic[0]} och {topic[1]} gäller regel {i}. Kontakta {topic[2]} om {topic[3]}."
        if i % 5 == 0:  # answer-only entries: their sentences are rows too
            out.append(Entry(id=f"e{i}", answer={"sv": answer}))
        else:
            out.append(Entry(id=f"e{i}", questions={"sv": questions}, answer={"sv": answer}))
    return out


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return make_entries(400)


def build(entries: list[Entry], large: bool) -> Retriever:
    settings = load_retrieval_settings(env={}).replace(spell_correct=False, ivf_min_rows=500 if large else 10**9)
    r = Retriever(TrigramEmbedder(), settings=settings)
    r.rebuild(entries)
    return r


@pytest.fixture(scope="module")
def small(entries) -> Retriever:
    return build(entries, large=False)


@pytest.fixture(scope="module")
def large(entries) -> Retriever:
    return build(entries, large=True)


def shard(r: Retriever):
    return next(iter(r._shards.values()))


def queries(entries: list[Entry]) -> list[tuple[str, str]]:
    out = []
    for e in entries[::7]:
        text = e.questions["sv"][1] if e.questions else e.answer["sv"].split(". ")[1]
        out.append((text, e.id))
    return out


def assert_removed_are_gone(r: Retriever, entries: list[Entry], removed: set[str]) -> None:
    """No removed entry is found any more; every other asked entry still comes first."""
    for text, gold in queries(entries):
        found = [c.entry.id for c in r.search(text, language="sv", top_k=5)]
        assert not removed & set(found)
        if gold not in removed:
            assert found[0] == gold


def test_large_shard_is_quantized_with_inverted_lists(small, large):
    big, plain = shard(large), shard(small)
    assert big.quantized and big.ivf is not None and big._vecs.a.dtype == np.int8
    assert not plain.quantized and plain.ivf is None and plain._vecs.a.dtype == np.float32
    assert big._cent.quantized and not plain._cent.quantized
    assert big.n == plain.n > 500
    # No spare capacity left over from growing, and no per-row Python objects.
    assert len(big._vecs.a) <= big.n * 9 // 8 and len(plain._vecs.a) <= plain.n * 9 // 8
    assert not hasattr(big, "rows")
    # Entries are kept packed and read back whole.
    assert all(isinstance(b, bytes) for b in big.stored)
    assert [e.to_dict() for e in large.entries()] == [e.to_dict() for e in small.entries()]
    assert len(large.entries()) == 400 and large.entries()[7].id == "e7"
    listed = np.concatenate(big.ivf.lists)
    assert sorted(listed.tolist()) == list(range(big.n))


def test_large_shard_finds_what_the_exact_scan_finds(entries, small, large):
    asked = queries(entries)
    same = 0
    for text, gold in asked:
        a = small.search(text, language="sv", top_k=5)
        b = large.search(text, language="sv", top_k=5)
        assert a[0].entry.id == gold
        same += a[0].entry.id == b[0].entry.id
        if a[0].entry.id == b[0].entry.id:
            # int8 codes: scores within a few thousandths; matched rows rebuilt from the entry.
            assert abs(a[0].score - b[0].score) < 0.005
            assert (a[0].matched, a[0].matched_kind, a[0].matched_language) == (
                b[0].matched,
                b[0].matched_kind,
                b[0].matched_language,
            )
    assert same == len(asked)


def test_compact_shard_without_lists_finds_what_the_exact_scan_finds(entries, small):
    """A mid-size shard (`compact_min_rows`, no inverted lists: one of a shared contact centre's
    many municipalities) ranks every row by its codes and scores a shortlist exactly."""
    settings = small.settings.replace(compact_min_rows=500, ivf_min_rows=10**9)
    mid = Retriever(TrigramEmbedder(), settings=settings)
    mid.rebuild(entries)
    s = shard(mid)
    assert s.quantized and s.pq is not None and s.ivf is None and s._cent.quantized
    for text, gold in queries(entries):
        a, b = small.search(text, language="sv", top_k=5), mid.search(text, language="sv", top_k=5)
        assert b[0].entry.id == a[0].entry.id == gold and abs(a[0].score - b[0].score) < 0.005
    question = "var lämnar jag grovsopor och gamla möbler"
    mid.upsert(Entry(id="ny", questions={"sv": [question]}, answer={"sv": "På återvinningscentralen."}))
    assert mid.search(question, language="sv")[0].entry.id == "ny"


def test_municipalities_share_one_codebook(entries, tmp_path, monkeypatch):
    """Product codebooks are trained once a rebuild and shared by every compact shard, also when
    saved and loaded; each municipality still answers from its own entries only."""
    import dataclasses

    from knowledge import retrieval

    monkeypatch.setattr(retrieval, "_MAPPED_BYTES", 1 << 12)  # this toy shard's arrays are small

    settings = load_retrieval_settings(env={}).replace(spell_correct=False, compact_min_rows=300, ivf_min_rows=10**9)
    r = Retriever(TrigramEmbedder(), settings=settings)
    r.rebuild([dataclasses.replace(e, municipality=f"m{i % 2}") for i, e in enumerate(entries)])
    a, b = r._shards["m0"], r._shards["m1"]
    assert a.pq is not None and a.pq is b.pq and a._mean is not b._mean
    r.save(tmp_path / "snapshot")
    a, b = r._shards["m0"], r._shards["m1"]
    assert a.pq is b.pq and a._file is not None and b._file is not None
    for text, gold in queries(entries):
        own = f"m{int(gold[1:]) % 2}"
        assert r.search(text, municipality=own, language="sv")[0].entry.id == gold
        assert gold not in {c.entry.id for c in r.search(text, municipality=f"m{1 - int(own[1])}", language="sv")}


def test_matched_row_is_the_entry_text(small):
    e = make_entries(400)[3]
    c = small.search(e.questions["sv"][2], language="sv", top_k=1)[0]
    assert (c.entry.id, c.matched, c.matched_kind, c.matched_language) == ("e3", e.questions["sv"][2], "q", "sv")
    only = make_entries(400)[10]  # answer-only: a sentence row matches
    sentence = only.answer["sv"].split(". ")[1]
    c = small.search(sentence, language="sv", top_k=1)[0]
    assert c.entry.id == "e10" and c.matched_kind in ("a", "c") and sentence.rstrip(".") in c.matched


def test_large_shard_upsert_remove_and_compaction(entries):
    r = build(entries, large=True)
    question = "var lämnar jag grovsopor och gamla möbler"
    new = Entry(id="ny", questions={"sv": [question]}, answer={"sv": "På återvinningscentralen."})
    r.upsert(new)
    assert r.search(question, language="sv")[0].entry.id == "ny"
    before = shard(r).n
    removed = [e.id for e in entries[: len(entries) // 3]]  # more than a quarter: compaction
    for entry_id in removed:
        r.remove("default", entry_id)
    s = shard(r)
    assert s.quantized and s.ivf is not None and s.n < before
    assert s._cent._sq.ntotal == s.n_ent == len(s.stored)
    assert sorted(np.concatenate(s.ivf.lists).tolist()) == list(range(s.n))
    assert_removed_are_gone(r, entries, set(removed))
    assert r.search(question, language="sv")[0].entry.id == "ny"


def test_saved_index_is_mapped_and_answers_the_same(entries, large, tmp_path, monkeypatch):
    """A worker starting from a saved index maps its arrays (shared pages, nothing encoded) and
    answers as the index it was saved from, also after edits."""
    from knowledge import retrieval

    monkeypatch.setattr(retrieval, "_MAPPED_BYTES", 1 << 14)  # this toy shard's arrays are small
    large.save(tmp_path / "snapshot", extra={"n": 1}, adopt=False)
    r = Retriever(TrigramEmbedder(), settings=large.settings)
    assert r.load(tmp_path / "snapshot") == {"n": 1}
    s = shard(r)
    assert isinstance(s._vecs.a.base, np.memmap) and s._vecs.a.dtype == np.int8 and len(s._vecs.a) > s.n
    assert isinstance(s.stored._blob.base, np.memmap)  # the packed entries too
    # The int8 arena is read from its file by position, not through the mapping (`ArenaFile`);
    # the inverted lists' scan reads the rows' product codes, mapped too.
    assert s._file is not None and s._file.rows == s.n
    assert isinstance(s._codes.a.base, np.memmap) and s._codes.a.shape[1] == s.pq.width
    picked = np.array([s.n - 1, 3, 4, 5, 0, 17, 3])
    assert np.array_equal(s._file.read(picked), s._vecs.a[picked])
    assert [e.to_dict() for e in r.entries()] == [e.to_dict() for e in large.entries()]
    for text, _ in queries(entries):
        a = [(c.entry.id, round(c.score, 6), c.matched) for c in large.search(text, language="sv", top_k=5)]
        b = [(c.entry.id, round(c.score, 6), c.matched) for c in r.search(text, language="sv", top_k=5)]
        assert a == b
    question = "var lämnar jag grovsopor och gamla möbler"
    r.upsert(Entry(id="ny", questions={"sv": [question]}, answer={"sv": "På återvinningscentralen."}))
    r.remove("default", "e1")
    assert isinstance(shard(r)._vecs.a.base, np.memmap)  # appended into the spare rows, not copied
    s = shard(r)
    assert s.n > s._file.rows  # the new rows are read from memory, the saved ones from the file
    both = np.array([0, s.n - 1, s._file.rows - 1, s._file.rows])
    assert np.array_equal(s._stored_rows(both), s._vecs.a[both])
    assert r.search(question, language="sv")[0].entry.id == "ny"
    assert "e1" not in {c.entry.id for c in r.search(entries[1].questions["sv"][1], language="sv", top_k=10)}
    assert len(r.entries()) == 400 and r.entries()[-1].id == "ny" and "e1" not in {e.id for e in r.entries()}
    r.save(tmp_path / "again")  # saved again with the edits folded in, and running on that
    assert shard(r)._file.rows == shard(r).n
    assert [e.id for e in r.entries()][-2:] == ["e399", "ny"] and len(shard(r).stored._changed) == 1
    other = load_retrieval_settings(env={}).replace(spell_correct=False, ivf_min_rows=123)
    assert Retriever(TrigramEmbedder(), settings=other).load(tmp_path / "snapshot") is None  # other settings


def test_vector_cache_stays_on_disk_merges_and_compacts(tmp_path):
    from knowledge.retrieval import VectorCache

    cache = VectorCache(tmp_path, "m")
    rng = np.random.default_rng(0)
    keys = [cache.key("query", f"text {i}") for i in range(40 * 17)]
    vecs = rng.normal(size=(len(keys), 8)).astype(np.float32)
    for a in range(0, len(keys), 40):  # 17 puts of 40: the 16 of one size class are merged
        cache.put(keys[a : a + 40], vecs[a : a + 40])
    assert len(list((tmp_path / "vectors").glob("*.npy"))) == 2
    again = VectorCache(tmp_path, "m")
    found, got = again.lookup([keys[5], b"x" * 20, keys[-1]])
    assert found.tolist() == [True, False, True] and np.array_equal(got, vecs[[5, -1]])
    assert isinstance(again._chunks[0].vecs, np.memmap)
    again.compact(np.array(keys[:100], dtype="S20"))
    assert len(list((tmp_path / "vectors").glob("*.npy"))) == 1 and len(VectorCache(tmp_path, "m")) == 100
    # The older format (keys as JSON, in write order) is read too.
    legacy = tmp_path / "old"
    (legacy / "vectors").mkdir(parents=True)
    np.save(legacy / "vectors" / "000000-1-abc.npy", vecs[:3])
    (legacy / "vectors" / "000000-1-abc.json").write_text(json.dumps([k.hex() for k in keys[:3]]))
    found, got = VectorCache(legacy, "m").lookup([keys[2], keys[0]])
    assert found.all() and np.array_equal(got, vecs[[2, 0]])


def test_service_starts_from_the_saved_index_in_the_database_state(tmp_path):
    """A worker starts from the index another saved, with the changes made since applied before it
    answers: a deleted entry is not found, an edited one is found in its new version."""
    from core.db import make_engine
    from knowledge.service import KnowledgeService
    from knowledge.store import KnowledgeStore
    from kommunchatt.schema import init_db

    url = f"sqlite:///{tmp_path / 'kb.db'}"
    init_db(make_engine(url))
    KnowledgeStore(make_engine(url)).import_entries("default", make_entries(60), actor="test")
    first = KnowledgeService(KnowledgeStore(make_engine(url)), None, tmp_path / "index", embedder=TrigramEmbedder())
    assert (tmp_path / "index" / "snapshot" / "meta.json").exists() and first._snapshot_seen
    first.close()
    other = KnowledgeStore(make_engine(url))  # another process, after the save
    other.delete("default", "e1", actor="test")
    other.upsert(Entry(id="e2", questions={"sv": ["var lämnar jag grovsopor"]}, answer={"sv": "ÅVC."}), actor="test")
    second = KnowledgeService(KnowledgeStore(make_engine(url)), None, tmp_path / "index", embedder=TrigramEmbedder())
    assert second._snapshot_seen == first._snapshot_seen  # started from the saved index
    indexed = {e.id: e for e in second.retriever.entries()}
    assert "e1" not in indexed and indexed["e2"].answer == {"sv": "ÅVC."} and len(indexed) == 59
    assert second.retriever.search("var lämnar jag grovsopor", language="sv")[0].entry.id == "e2"
    old = make_entries(60)[1].questions["sv"][0]
    assert "e1" not in {c.entry.id for c in second.retriever.search(old, language="sv", top_k=10)}
    second.close()


def test_product_codes_rank_rows_as_their_vectors_do():
    """The inverted lists' scan ranks rows by 48-byte product codes; a shortlist `SHORTLIST` times as
    long as what is kept, scored exactly, must hold the rows the exact scan keeps. (These rows are
    harder than real ones: on the seed's e5 rows 99 % of the exact best 64 are in the best 512.)"""
    from knowledge.rowcodes import SHORTLIST, ProductCodes

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 384)).astype(np.float32)
    rows = centres[rng.integers(0, 40, 5000)] + 0.6 * rng.normal(size=(5000, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    mean = rows.mean(axis=0)
    pq = ProductCodes.train(rows - mean)
    codes = pq.encode(rows - mean)
    assert codes.shape == (5000, 48) and codes.dtype == np.uint8
    decoded = pq.codebooks[np.arange(48), codes].reshape(5000, 384) + mean
    found = []
    for q in rows[rng.integers(0, 5000, 20)]:
        exact = rows @ q
        approx = pq.scores(codes, pq.table(q))
        assert np.allclose(approx + mean @ q, decoded @ q, atol=1e-4)
        best = set(np.argsort(-exact)[:16].tolist())
        short = set(np.argsort(-approx)[: 16 * SHORTLIST].tolist())
        found.append(len(best & short) / 16)
    assert np.mean(found) >= 0.97 and min(found) >= 0.85


def test_arena_file_reads_runs_and_survives_the_snapshot_being_replaced(tmp_path):
    from knowledge.rowcodes import ArenaFile

    arena = np.arange(1000 * 8, dtype=np.int16).reshape(1000, 8).astype(np.int8)
    np.save(tmp_path / "a.npy", arena)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    f = ArenaFile(str(tmp_path / "a.npy"), int(mapped.offset), rows=1000, width=8, dtype=np.int8)
    del mapped
    (tmp_path / "a.npy").unlink()  # a worker keeps reading a snapshot another one replaced
    pos = np.array([999, 10, 11, 12, 11, 0, 500, 501])
    assert np.array_equal(f.read(pos), arena[pos])
    assert f.read(np.zeros(0, dtype=np.int64)).shape == (0, 8)


def test_hashed_features_are_scikit_learns():
    """The lexical index hashes n-grams itself (a serving worker does not import scikit-learn); its
    features must stay those of HashingVectorizer, which saved indexes were built with."""
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.utils import murmurhash3_32

    from knowledge.lexical import N_FEATURES, Featurizer, _analyzer
    from knowledge.lexical import murmurhash3_32 as ours

    rng = random.Random(3)
    alphabet = "abcdefghijklmnopqrstuvwxyzåäöé ي ك 中 "
    keys = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 13))) for _ in range(5000)]
    assert all(ours(k.encode()) == murmurhash3_32(k.encode(), seed=0) for k in keys)
    texts = [" ".join(rng.sample(keys, 6)) for _ in range(300)] + ["", "Hur ansöker jag om förskoleplats?"]
    theirs = HashingVectorizer(
        analyzer=_analyzer(3, 5), n_features=N_FEATURES, alternate_sign=False, norm=None, dtype=np.float32
    ).transform(texts)
    mine = Featurizer(3, 5)._vec.transform(texts)
    assert mine.dtype == np.float32 and mine.shape == theirs.shape and (mine != theirs).nnz == 0


def test_compaction_after_loading_reads_from_memory(entries, large, tmp_path, monkeypatch):
    """A loaded shard that compacts (positions move) stops reading the saved file, and answers right."""
    from knowledge import retrieval

    monkeypatch.setattr(retrieval, "_MAPPED_BYTES", 1 << 12)
    large.save(tmp_path / "snapshot", adopt=False)
    r = Retriever(TrigramEmbedder(), settings=large.settings)
    r.load(tmp_path / "snapshot")
    assert shard(r)._file is not None
    removed = {e.id for e in entries[1::3]} | {e.id for e in entries[2::3][:20]}  # over a quarter: compaction
    for entry_id in removed:
        r.remove("default", entry_id)
    s = shard(r)
    assert s._file is None and s.n < shard(large).n
    assert_removed_are_gone(r, entries, removed)
    r.save(tmp_path / "again")
    assert shard(r)._file is not None and shard(r)._file.rows == shard(r).n


def test_only_recently_searched_municipalities_keep_their_index_pages(entries, tmp_path, monkeypatch):
    """Over many municipalities a worker keeps the mapped pages of the ones searched last
    (`residency.HotShards`) and gives the others' back; answers are the same, and a municipality
    edited since the load keeps its edit when it goes cold (its changed mapping is kept)."""
    from knowledge import retrieval
    from knowledge.residency import HotShards, releaser, resident_pages

    monkeypatch.setattr(retrieval, "_MAPPED_BYTES", 1 << 12)
    towns = ("norrby", "söderby", "västby")
    built = build([], large=False)
    built.rebuild([dataclasses.replace(e, municipality=t) for t in towns for e in entries[:150]])
    built.save(tmp_path / "snapshot", adopt=False)
    r = Retriever(TrigramEmbedder(), settings=built.settings)
    r.load(tmp_path / "snapshot")
    r._hot = HotShards(budget=1)  # only the municipality searched last stays resident
    asked = queries(entries[:150])
    for town in towns:
        for text, _ in asked:
            want = [(c.entry.id, round(c.score, 6)) for c in built.search(text, municipality=town, language="sv")]
            assert [(c.entry.id, round(c.score, 6)) for c in r.search(text, municipality=town, language="sv")] == want
        releaser().submit(lambda: None).result()  # the pages are given back by a thread of their own
        mapped = {t: r._shards[t].mapped()[0] for t in towns}
        assert mapped[town] and resident_pages(mapped[town]) > 0
        assert all(resident_pages(mapped[t]) == 0 for t in towns if t != town), "cold pages kept"
    question = "var lämnar jag grovsopor och gamla möbler"
    r.upsert(Entry(id="ny", municipality="norrby", questions={"sv": [question]}, answer={"sv": "På ÅVC."}))
    r.search(asked[0][0], municipality="söderby", language="sv")  # norrby goes cold, with its edit
    assert r.search(question, municipality="norrby", language="sv")[0].entry.id == "ny"
    assert len(r.entries("norrby")) == 151


def test_an_import_is_encoded_in_batches_of_alike_lengths(entries):
    """A batch is encoded padded to its longest text: an import's batches go from short to long
    entries (within a municipality), and each entry is in exactly one of them."""
    r = build([], large=False)
    mixed = [dataclasses.replace(e, answer={"sv": e.answer["sv"] * (1 + i % 7)}) for i, e in enumerate(entries)]
    batches = list(r._batches(mixed, 64, sentences=False))
    longest = [max(len(row.text) for rows in rows_ for row in rows) for _, rows_ in batches]
    assert longest == sorted(longest) and longest[0] < longest[-1] / 3
    assert sorted(e.id for part, _ in batches for e in part) == sorted(e.id for e in mixed)
    assert all(sum(map(len, rows_)) < 64 + 10 for _, rows_ in batches)

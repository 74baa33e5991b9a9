"""The lexical index's bounded candidate search (issue 18: a large shard's lexical candidates)."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge.lexical import N_FEATURES, FeatureCounts, Featurizer, LexicalIndex

COMMON = [
    "hur",
    "gör",
    "jag",
    "när",
    "man",
    "kan",
    "ska",
    "om",
    "för",
    "att",
    "till",
    "det",
    "en",
    "ett",
    "på",
    "med",
    "är",
    "av",
]
TOPICS = ["bygglov", "sophämtning", "förskola", "parkering", "bibliotek", "hemtjänst", "vatten", "skola", "bostad"]


def _index(n: int = 3000, seed: int = 0) -> tuple[LexicalIndex, list[str]]:
    rng = random.Random(seed)
    texts = [
        " ".join(rng.sample(COMMON, 5) + [rng.choice(TOPICS), f"ärende{i}" if i % 97 == 0 else rng.choice(COMMON)])
        for i in range(n)
    ]
    texts[1234 % n] = "hur ansöker jag om strandskyddsdispens för bryggan"
    lex = LexicalIndex(Featurizer(3, 5))
    lex.append(texts)
    lex.merge()
    return lex, texts


def test_bounded_search_finds_the_rare_word_first():
    lex, _ = _index()
    alive = np.ones(len(lex), dtype=bool)
    q = lex.query("strandskydsdispens brygga hur gör jag")  # a typo in the rare word
    got = lex.top(q, 8, alive, budget=500)
    assert got[0] == 1234
    assert len(got) <= 8


def test_bounded_search_ranks_by_the_full_cosine():
    """The rows returned are ranked by TF-IDF cosine over all the query's n-grams (`score_rows`),
    and the best is at least as good by it as the best of the search over every row."""
    lex, _ = _index()
    alive = np.ones(len(lex), dtype=bool)
    for text in ("bygglov för ärende97", "parkering skola", "hemtjänst vatten hur", "strandskyd brygga"):
        q = lex.query(text)
        for budget in (10**9,):  # not binding (a binding one may miss rows holding only commoner words)
            got = lex.top(q, 16, alive, budget=budget)
            scores = lex.score_rows(q, got)[0]
            assert np.all(np.diff(scores) <= 1e-6)  # best first
            every_row = lex.score_rows(q, lex.top(q, 16, alive))[0]
            assert scores[0] >= every_row.max() - 1e-6, (text, budget)


def test_bounded_search_skips_dead_rows_and_sees_appended_ones():
    lex, _ = _index()
    alive = np.ones(len(lex), dtype=bool)
    alive[1234] = False
    q = lex.query("strandskyddsdispens bryggan")
    assert 1234 not in lex.top(q, 8, alive, budget=500)
    lex.append(["strandskyddsdispens för en ny brygga"])  # not merged: the tail
    alive = np.ones(len(lex), dtype=bool)
    alive[1234] = False
    assert lex.top(q, 8, alive, budget=500)[0] == len(lex) - 1


def test_small_shards_search_every_row_as_before():
    """Without a budget (shards under `ivf_min_rows`) the search is the unbounded one."""
    lex, _ = _index(500)
    alive = np.ones(len(lex), dtype=bool)
    q = lex.query("bygglov förskola")
    assert list(lex.top(q, 10, alive)) == list(lex.top(q, 10, alive, budget=None))


def test_kept_features_score_exactly_as_rebuilt_ones_and_follow_changes(monkeypatch):
    """A small main part keeps its rows' features (a search picks rows instead of rebuilding them):
    the same scores to the bit, dropped when the main part changes, and none kept beyond the budget."""
    import pickle

    import knowledge.lexical as lexical

    lex, _texts = _index(2000)
    query = lex.query("hur ansöker jag om bygglov för bryggan")
    positions = np.arange(0, 2000, 3)
    kept = lex.score_rows(query, positions)[0]
    assert lex._main_features is not None and lex._main_features is not False
    assert (lex.rows(positions) != lex._features(lex._main[positions])).nnz == 0

    lex.append(["hur ansöker jag om bygglov för en altan"])  # the tail: the kept main rows still serve
    lex.merge()  # the main part changed: its kept features are dropped and rebuilt on the next search
    assert lex._main_features is None
    restored = pickle.loads(pickle.dumps(lex))  # a saved index carries none
    assert restored._main_features is None
    after = lex.score_rows(query, positions)[0]
    assert lex._main_features is not None and lex._main_features is not False
    assert restored.score_rows(query, positions)[0].tolist() == after.tolist()
    lex._forget_kept_features()
    lex._main_features = False  # rebuilt from word counts: the same
    assert lex.score_rows(query, positions)[0].tolist() == after.tolist()
    del lex, restored

    monkeypatch.setattr(lexical, "_feature_cache_free", [0])  # no budget left: rebuilt every time
    fresh, _ = _index(2000)
    assert fresh.score_rows(query, positions)[0].tolist() == kept.tolist()
    assert fresh._main_features is False


@given(
    st.lists(st.tuples(st.lists(st.integers(0, N_FEATURES - 1), max_size=40), st.sampled_from([1, -1])), max_size=25),
    st.integers(0, 3),
)
@settings(max_examples=60, deadline=None)
def test_document_frequencies_count_as_a_dense_array_would(changes, dense_at):
    """Pairs (looked up one by one and many at once), the switch to dense (forced early here) and a
    saved dense array all give the same counts."""
    import knowledge.lexical as lexical

    saved, lexical.DENSE_AT = lexical.DENSE_AT, [10**9, 0, 30, 60][dense_at]
    try:
        counts, dense = FeatureCounts(), np.zeros(N_FEATURES, dtype=np.int32)
        for features, sign in changes:
            counts.add(np.array(features, dtype=np.int32), sign)
            np.add.at(dense, np.array(features, dtype=np.int64), sign)
        probe = np.array(sorted({f for fs, _ in changes for f in fs} | {0, 7, N_FEATURES - 1}))
        assert counts[probe].tolist() == dense[probe].tolist()  # many at once: the scratch table
        assert [int(counts[probe[i : i + 1]][0]) for i in range(len(probe))] == dense[probe].tolist()  # searched
        assert FeatureCounts.from_dense(np.maximum(dense, 0))[probe].tolist() == np.maximum(dense, 0)[probe].tolist()
    finally:
        lexical.DENSE_AT = saved


def test_a_small_shards_document_frequencies_take_kilobytes_not_a_dense_array():
    index, _ = _index(3000)
    df = index.df
    assert df.dense is None and 0 < df.keys.nbytes + df.counts.nbytes < 200_000  # dense: 4 MB
    assert (df[np.array([0, 1, 2])] >= 0).all()


def test_rows_features_are_the_featurizers_own():
    """A row's features rebuilt from its word counts (`rows`: what a search scores) are the n-gram
    frequencies the featurizer gives its text, also for rows with repeated words, shared n-grams
    across words, and no words at all."""
    lex, texts = _index(400)
    texts = [*texts[:50], "", "hus hus husbil bilhus", "om om om"]
    lex.append(texts[-3:])
    positions = np.array([*range(50), 400, 401, 402])
    got = lex.rows(positions)
    want = lex.featurizer.transform(texts)
    assert got.shape == want.shape
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    assert np.allclose(got.data, want.data)


def test_a_large_index_scores_as_a_small_one_and_follows_changes(monkeypatch):
    """From `LARGE_INDEX_ROWS` rows (a large index) every n-gram's idf is kept as one table, rows are
    divided by their saved norms (weighed with the idf of the last merge) and only the query's
    n-grams are expanded: the scores of a small index (each row's n-grams rebuilt, today's idf), up
    to rounding. The table is dropped when an edit changes the frequencies and is never saved; a
    merge weighs the norms again."""
    import pickle

    import knowledge.lexical as lexical

    positions = np.arange(0, 2001, 3)

    def scores(lex: LexicalIndex, large: bool) -> np.ndarray:
        monkeypatch.setattr(lexical, "LARGE_INDEX_ROWS", 1000 if large else 10**9)
        return np.concatenate(lex.score_rows(lex.query("hur ansöker jag om bygglov för bryggan"), positions))

    small, _ = _index(2000)
    large, _ = _index(2000)
    assert np.allclose(scores(large, True), scores(small, False), rtol=1e-5, atol=1e-7)
    assert large._idf_all is not None and large._norms_fresh
    assert pickle.loads(pickle.dumps(large))._idf_all is None
    for lex in (small, large):
        lex.append(["hur ansöker jag om bygglov för en brygga"])
        lex.kill(np.array([7, 8]))
    assert large._idf_all is None  # the frequencies changed: built again on the next search
    # Its norms still weigh with the idf before the edit: 2 of 2,000 rows fewer move it a little.
    assert np.allclose(scores(large, True), scores(small, False), rtol=1e-2, atol=1e-3)
    large.merge()
    assert not large._norms_fresh
    assert np.allclose(scores(large, True), scores(small, False), rtol=1e-5, atol=1e-7)
    assert large._norms_fresh

"""Typo-robust lexical matching: TF-IDF over hashed character n-grams of accent-folded words.

Character n-grams match a misspelt word on the n-grams it still shares ("forskoleplats" ~
"förskoleplats") and a word inside a Swedish compound ("sopor" ~ "sophämtning") without a
dictionary. Hashing keeps the feature space fixed, so rows can be appended and removed without
refitting; document frequencies are maintained incrementally.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import os
import re
import shutil
import struct
import threading
import unicodedata
import weakref
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

import numpy as np
import scipy.sparse as sp

N_FEATURES = 1 << 20
MIN_BOUNDED_FEATURES = 4  # a bounded candidate search uses at least the query's 4 rarest n-grams
RESCORE = 8  # ... and ranks 8 x as many rows as it returns by all the query's n-grams
WORD_BUDGET = 1  # each word's rarest n-gram is used too, in up to the budget's rows again
_SPECIAL = str.maketrans(
    {"ß": "ss", "ø": "o", "æ": "ae", "ı": "i", "ł": "l", "đ": "d", "ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ـ": ""}
)
_WORD = re.compile(r"\w+")


_FOLD: dict[int, str] = {}  # character -> folded form, filled as characters are seen


def _fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", ch.translate(_SPECIAL))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Lower-case, drop diacritics (å/ä/ö -> a/a/o, é -> e) and unify Arabic/Persian letter variants.

    Character by character through a memo table (`str.translate` runs in C): indexing a large
    knowledge base folds millions of words."""
    low = text.lower()
    for ch in set(low):
        if ord(ch) not in _FOLD:
            _FOLD[ord(ch)] = _fold_char(ch)
    return low.translate(_FOLD)


def fold_all(many: list[str]) -> list[str]:
    """`fold` of each of many words (no line breaks in them) in one pass over their joined text: the
    dictionaries fold hundreds of thousands of words at start-up, seconds one by one."""
    return fold("\n".join(many)).split("\n") if many else []


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def _word_grams(word: str, ngram_min: int, ngram_max: int) -> list[str]:
    """The character n-grams of one folded word, padded with a space on each side."""
    padded = f" {word} "
    if len(padded) <= ngram_min:
        return [padded]
    return [padded[i : i + n] for n in range(ngram_min, ngram_max + 1) for i in range(len(padded) - n + 1)]


def _analyzer(ngram_min: int, ngram_max: int):
    def analyze(text: str) -> list[str]:
        grams: list[str] = []
        for word in words(text):
            grams.extend(_word_grams(word, ngram_min, ngram_max))
        return grams

    return analyze


def murmurhash3_32(key: bytes, seed: int = 0) -> int:
    """MurmurHash3 (x86, 32 bits, signed): the hash scikit-learn's HashingVectorizer uses, so that
    saved indexes keep their features. Written out because importing scikit-learn for it cost a
    serving worker ~57 MB (issue 18); tests check it against scikit-learn's."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    body = len(key) - len(key) % 4
    for (k,) in struct.iter_unpack("<I", key[:body]):
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = key[body:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= len(key)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def _column(gram: str) -> int:
    """An n-gram's feature column, as HashingVectorizer(alternate_sign=False) places it."""
    h = murmurhash3_32(gram.encode("utf-8"))
    return (2147483647 - (N_FEATURES - 1)) % N_FEATURES if h == -2147483648 else abs(h) % N_FEATURES


class _Hasher:
    """Texts -> counts of their analyzer's features, hashed into N_FEATURES columns (float32 CSR)."""

    def __init__(self, analyzer) -> None:
        self.analyzer = analyzer

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        indptr, indices = [0], []
        for text in texts:
            indices.extend(_column(g) for g in self.analyzer(text))
            indptr.append(len(indices))
        x = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), np.asarray(indices, dtype=np.int32), np.asarray(indptr)),
            shape=(len(texts), N_FEATURES),
        )
        x.sum_duplicates()
        return x


class Featurizer:
    """Text -> sparse sublinear term frequencies of hashed character n-grams."""

    def __init__(self, ngram_min: int = 3, ngram_max: int = 5):
        self.ngram_min, self.ngram_max = ngram_min, ngram_max
        self._vec = _Hasher(_analyzer(ngram_min, ngram_max))
        self._words = _Hasher(functools.partial(_word_grams, ngram_min=ngram_min, ngram_max=ngram_max))

    def __getstate__(self) -> dict:  # a saved index keeps the n-gram sizes, not the vectorizers' closures
        return {"ngram_min": self.ngram_min, "ngram_max": self.ngram_max}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["ngram_min"], state["ngram_max"])

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        x = self._vec.transform(texts).tocsr()
        x.data = 1.0 + np.log(x.data)
        return x

    def word_counts(self, folded_words: list[str]) -> sp.csr_matrix:
        """Raw n-gram counts of single folded words: a text's counts are the sum over its words."""
        return self._words.transform(folded_words).tocsr()


_SCRATCH = threading.local()


def _scratch_table() -> np.ndarray:
    """This thread's feature-indexed float32 table (4 MB), all zeros between calls: a user fills
    the entries it needs, reads, and zeroes them again before it returns."""
    table = getattr(_SCRATCH, "table", None)
    if table is None:
        table = _SCRATCH.table = np.zeros(N_FEATURES, dtype=np.float32)
    return table


# Rows' n-gram features kept whole for small main parts (`LexicalIndex._kept_features`): a search picks its
# candidates' rows instead of rebuilding them from word counts (over half of an answer's cost on the seed).
# Process-wide budget in non-zeros (8 bytes each): a shared contact centre's many shards take it in turn
# and the rest rebuild as before; a large shard is never kept (it is what the word counts are for).
FEATURE_CACHE_NNZ = 8_000_000
FEATURE_CACHE_MAX_ROWS = 50_000
_feature_cache_free = [FEATURE_CACHE_NNZ]
_feature_cache_lock = threading.Lock()


def _release_features(nnz: int) -> None:
    with _feature_cache_lock:
        _feature_cache_free[0] += nnz


def _owners(rows: sp.csr_matrix) -> np.ndarray:
    """The row of each non-zero."""
    return np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))


def _row_dots(
    rows: sp.csr_matrix, feats: np.ndarray, weights: np.ndarray, owner: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: sum of data * weight, and sum of weight, over the query's features it has.

    Works on the rows' non-zeros only, looking each up in a feature-indexed table that holds the
    query's weights (set before, cleared after); scipy's column selection and sparse products
    allocate arrays as large as the (2^20) feature space on every call.
    """
    table = _scratch_table()
    table[feats] = weights
    try:
        wh = table[rows.indices]
    finally:
        table[feats] = 0.0
    owner = _owners(rows) if owner is None else owner
    dot = np.bincount(owner, weights=rows.data * wh, minlength=rows.shape[0])
    cov = np.bincount(owner, weights=wh, minlength=rows.shape[0])
    return dot.astype(np.float32), cov.astype(np.float32)


def _grouped(rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, n_cols: int) -> tuple[np.ndarray, ...]:
    """(row, column, summed count) of each distinct (row, column) pair, by row: an n-gram that
    several of a row's words have is counted once, with their counts summed (before the logarithm)."""
    key = rows.astype(np.int64) * n_cols + cols
    order = np.argsort(key)
    key = key[order]
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    summed = np.add.reduceat(counts[order], first)
    key = key[first]
    return key // n_cols, key % n_cols, summed


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions of the ranges [start, start + length), one after another: many rows' non-zeros of a
    sparse matrix gathered at once."""
    lengths = lengths.astype(np.int64)
    offsets = starts.astype(np.int64) - (np.cumsum(lengths) - lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(offsets, lengths)


def _widen(x: sp.csr_matrix, cols: int) -> sp.csr_matrix:
    """Rows `x` with `cols` columns (the vocabulary grew since they were counted); no copy."""
    if x.shape[1] == cols:
        return x
    return sp.csr_matrix((x.data, x.indices, x.indptr), shape=(x.shape[0], cols))


# Rows from which an index is large: every n-gram's idf kept as one table (4 MB; `_idf_table`), candidate
# rows scored over the query's n-grams only (`_query_dots`) and divided by saved norms (`_large_norms`).
LARGE_INDEX_ROWS = 100_000
DENSE_AT = N_FEATURES // 2  # n-grams seen above which document frequencies are a dense array


class FeatureCounts:
    """Document frequency per hashed n-gram: `df[features]` and `df.add(features, sign)`.

    Sorted (n-gram, count) pairs of the n-grams seen, and a dense array over all 2^20 only once
    that is smaller (8 bytes a pair, 4 a column). Dense, each shard took 4 MB, 400 MB for 100
    municipalities (issue 18), though a municipality's knowledge base has tens of thousands."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int32)  # ascending n-gram columns
        self.counts = np.zeros(0, dtype=np.int32)
        self.dense: np.ndarray | None = None  # all N_FEATURES counts, once over half of them are seen

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> FeatureCounts:
        """From a saved index's dense array."""
        out = cls()
        keys = np.flatnonzero(dense).astype(np.int32)
        if len(keys) > DENSE_AT:
            out.dense = dense.astype(np.int32)
        else:
            out.keys, out.counts = keys, dense[keys].astype(np.int32)
        return out

    def __getitem__(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features)
        if self.dense is not None:
            return self.dense[features]
        if not len(self.keys):
            return np.zeros(features.shape, dtype=np.int32)
        if 8 * len(features) < len(self.keys):  # a few (a query's): binary search
            at = np.minimum(np.searchsorted(self.keys, features), len(self.keys) - 1)
            return np.where(self.keys[at] == features, self.counts[at], 0).astype(np.int32)
        # Many (the candidate rows' features, ~200k a search on a large knowledge base): spread over
        # the thread's dense scratch table and gathered, 20x faster than searching each.
        table = _scratch_table()
        table[self.keys] = self.counts
        try:
            return table[features].astype(np.int32)
        finally:
            table[self.keys] = 0.0

    def add(self, features: np.ndarray, sign: int) -> None:
        if self.dense is not None:
            np.add.at(self.dense, features, sign)
            return
        seen, times = np.unique(np.asarray(features, dtype=np.int32), return_counts=True)
        at = np.searchsorted(self.keys, seen)
        known = np.zeros(len(seen), dtype=bool)
        inside = at < len(self.keys)
        known[inside] = self.keys[at[inside]] == seen[inside]
        self.counts[at[known]] += sign * times[known].astype(np.int32)
        if not known.all():
            self.keys = np.insert(self.keys, at[~known], seen[~known])
            self.counts = np.insert(self.counts, at[~known], (sign * times[~known]).astype(np.int32))
        if len(self.keys) > DENSE_AT:
            self.dense = np.zeros(N_FEATURES, dtype=np.int32)
            self.dense[self.keys] = self.counts
            self.keys, self.counts = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)


class LexicalQuery(tuple):
    """(features, weights) of a query, with the features of each of its words (`words`)."""

    words: list[np.ndarray]

    def __new__(cls, feats: np.ndarray, weights: np.ndarray, by_word: list[np.ndarray] = ()) -> LexicalQuery:
        out = super().__new__(cls, (feats, weights))
        out.words = list(by_word)
        return out


class LexicalIndex:
    """Rows addressed by position (shared with the dense arena); append, kill and compact.

    Rows are stored as counts of words (ids in a vocabulary of folded words), and each word as its
    n-gram counts: a row's n-gram counts are the sum over its words, so its TF-IDF features are
    rebuilt exactly whenever needed (the candidates of a search, a removed row). Stored as n-grams,
    2.5M rows took 1.6 GB, and twice that with the inverted view; as words, about a tenth.

    Search uses an inverted (column) view of the bulk of the rows (words containing the query's
    n-grams, then rows containing those words) plus a plain scan of the recently appended tail, so
    an upsert never rebuilds the whole index.
    """

    def __init__(
        self, featurizer: Featurizer, max_df_ratio: float = 0.15, tail_limit: int = 4096, max_query_features: int = 64
    ):
        self.featurizer = featurizer
        self.max_df_ratio = max_df_ratio
        self.max_query_features = max_query_features
        self.tail_limit = tail_limit
        self.df = FeatureCounts()
        self.n_alive = 0
        self._vocab: dict[str, int] = {}
        self._grams = sp.csr_matrix((0, N_FEATURES), dtype=np.float32)  # word id -> n-gram counts
        self._new_grams: list[sp.csr_matrix] = []
        self._main = sp.csr_matrix((0, 0), dtype=np.float32)  # row -> word counts
        self._main_cols: sp.csc_matrix | None = None
        # n-gram -> words, for the words of the main rows: only the n-grams they have (`_gram_ids`), not
        # 2^20 columns (whose index alone took 4 MB a shard: 400 MB for 100 municipalities).
        self._main_grams: sp.csc_matrix | None = None
        self._gram_ids = np.zeros(0, dtype=np.int32)
        self._main_features: sp.csr_matrix | bool | None = None  # kept features; False: not kept (budget)
        self._main_features_release: weakref.finalize | None = None
        self._tail_parts: list[sp.csr_matrix] = []  # appended rows as words ...
        self._tail_features: list[sp.csr_matrix] = []  # ... and as n-grams (scanned by `top`)
        self._tail: sp.csr_matrix | None = None
        self._norms = np.zeros(0, dtype=np.float32)
        self._idf_all: np.ndarray | None = None  # `_idf_table`
        self._norms_fresh = False  # `_large_norms`

    def __len__(self) -> int:
        return len(self._norms)

    def idf(self, features: np.ndarray) -> np.ndarray:
        if len(self) >= LARGE_INDEX_ROWS:
            return self._idf_table()[features]
        return self._idf(self.df[features])

    def _idf(self, df: np.ndarray) -> np.ndarray:
        return (np.log((self.n_alive + 1.0) / (df + 1.0)) + 1.0).astype(np.float32)

    def _idf_table(self) -> np.ndarray:
        """Every n-gram's idf, kept until the document frequencies change: a large shard's search
        looks up ~200k of them (its candidate rows' norms), each a binary search or a scatter before."""
        table = getattr(self, "_idf_all", None)
        if table is None:
            table = self._idf_all = self._idf(self.df[np.arange(N_FEATURES)])
        return table

    def _words(self, texts: list[str]) -> sp.csr_matrix:
        """Word counts of `texts`, new words added to the vocabulary."""
        indptr, indices, data, new = [0], [], [], []
        vocab = self._vocab
        for text in texts:
            counts: dict[int, int] = {}
            for w in words(text):
                i = vocab.get(w)
                if i is None:
                    i = vocab[w] = len(vocab)
                    new.append(w)
                counts[i] = counts.get(i, 0) + 1
            indices.extend(counts)
            data.extend(counts.values())
            indptr.append(len(indices))
        if new:
            self._new_grams.append(self.featurizer.word_counts(new))
        return sp.csr_matrix(
            (np.array(data, dtype=np.float32), np.array(indices, dtype=np.int32), np.array(indptr, dtype=np.int32)),
            shape=(len(texts), len(vocab)),
        )

    def _word_grams(self) -> sp.csr_matrix:
        if self._new_grams:
            self._grams = sp.vstack([self._grams, *self._new_grams], format="csr")
            self._new_grams = []
        return self._grams

    def _features(self, row_words: sp.csr_matrix) -> sp.csr_matrix:
        """TF-IDF input of rows given as word counts: sublinear n-gram frequencies, as `Featurizer.transform`.

        The rows' words' n-grams are gathered and summed per row as (row, n-gram) pairs: a sparse
        product would allocate arrays as large as the 2^20 n-gram space on every call."""
        grams = self._word_grams()
        lengths = np.diff(grams.indptr)[row_words.indices]
        total = int(lengths.sum())
        at = _spans(grams.indptr[row_words.indices], lengths)
        # Each row's pairs are already together (its words in order): CSR directly, no COO pass.
        n_rows = row_words.shape[0]
        word_row = np.repeat(np.arange(n_rows), np.diff(row_words.indptr))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(word_row, weights=lengths, minlength=n_rows))])
        indptr = indptr.astype(np.int32 if total < 2**31 else np.int64)
        counts = grams.data[at] * np.repeat(row_words.data, lengths)
        x = sp.csr_matrix((counts, grams.indices[at], indptr), shape=(n_rows, N_FEATURES))
        x.has_sorted_indices = False  # it has duplicates: no pass over them to find out
        x.sum_duplicates()  # sorted indices, as the hashing vectorizer gives them (norms sum in that order)
        x.data = 1.0 + np.log(x.data)
        return x

    def append(self, texts: list[str]) -> None:
        row_words = self._words(texts)
        x = self._features(row_words)
        self._count(x, +1)
        weighted = x.copy()
        weighted.data = weighted.data * self.idf(weighted.indices)
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel()).astype(np.float32)
        self._norms = np.concatenate([self._norms, np.maximum(norms, 1e-6)])
        self._tail_parts.append(row_words)
        self._tail_features.append(x)
        self._tail = None
        if len(self) - self._main.shape[0] > max(self.tail_limit, self._main.shape[0] // 10):
            self._merge()

    def kill(self, positions: np.ndarray) -> None:
        """Forget rows' document frequencies (the caller masks them out of results)."""
        if len(positions):
            self._count(self.rows(np.asarray(positions)), -1)

    def compact(self, keep: np.ndarray) -> None:
        """Keep only rows at `keep` (ascending positions), renumbered from 0."""
        self._merge()
        self._main = self._main[keep]
        self._norms = self._norms[keep]
        self._main_cols = None
        self._forget_kept_features()

    def rows(self, positions: np.ndarray) -> sp.csr_matrix:
        """The TF-IDF input (sublinear n-gram frequencies) of rows at `positions`."""
        n_main = self._main.shape[0]
        if not self._tail_parts or (len(positions) and positions.max() < n_main):
            return self._main_rows(positions)
        tail = self._tail_matrix()
        order = np.argsort(positions, kind="stable")
        srt = positions[order]
        cut = int(np.searchsorted(srt, n_main))
        stacked = sp.vstack([self._main_rows(srt[:cut]), tail[srt[cut:] - n_main]], format="csr")
        return stacked[np.argsort(order)]

    def _main_rows(self, positions: np.ndarray) -> sp.csr_matrix:
        kept = self._kept_features()
        return kept[positions] if kept is not None else self._features(self._main[positions])

    def _kept_features(self) -> sp.csr_matrix | None:
        """The main rows' features, built once while the main part stays as it is, if it is small and the
        process-wide budget (`FEATURE_CACHE_NNZ`) has room; else None."""
        kept = getattr(self, "_main_features", None)
        if kept is None:
            kept = False
            # Not built just to be dropped when the budget cannot hold them (an upper bound: every
            # word's n-grams, before the same n-gram of two words in a row is summed); 100 municipalities'
            # first searches paid ~30 ms each for that.
            if 0 < self._main.shape[0] <= FEATURE_CACHE_MAX_ROWS and self._features_bound() <= _feature_cache_free[0]:
                built = self._features(self._main)
                with _feature_cache_lock:
                    if built.nnz <= _feature_cache_free[0]:
                        _feature_cache_free[0] -= built.nnz
                        kept = built
                if kept is not False:
                    self._main_features_release = weakref.finalize(self, _release_features, built.nnz)
            self._main_features = kept
        return kept if kept is not False else None

    def _features_bound(self) -> int:
        """At most this many non-zeros in the main rows' features."""
        return int(np.diff(self._word_grams().indptr)[self._main.indices].sum())

    def _forget_kept_features(self) -> None:
        release = getattr(self, "_main_features_release", None)
        if release is not None:
            release()  # gives its budget back once
        self._main_features, self._main_features_release = None, None

    def __getstate__(self) -> dict:  # a saved index does not carry the kept features (rebuilt when used)
        state = dict(self.__dict__)
        state["_main_features"] = state["_main_features_release"] = state["_idf_all"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_gram_ids" not in state:  # saved with an inverted view over all 2^20 n-grams: built again
            self._gram_ids, self._main_cols, self._main_grams = np.zeros(0, dtype=np.int32), None, None
        if isinstance(self.df, np.ndarray):  # saved with dense document frequencies
            self.df = FeatureCounts.from_dense(self.df)

    def query(self, text: str) -> LexicalQuery:
        """The query's features and their idf-squared weights, normalised (with each word's features,
        for `top`'s bounded search)."""
        q = self.featurizer.transform([text])
        feats = q.indices.astype(np.int64)
        if not len(feats):
            return LexicalQuery(feats, np.zeros(0, dtype=np.float32))
        idf = self.idf(feats)
        norm = float(np.sqrt(((q.data * idf) ** 2).sum())) or 1.0
        per_word = self.featurizer.word_counts(list(dict.fromkeys(words(text))))
        by_word = [per_word.indices[a:b] for a, b in zip(per_word.indptr[:-1], per_word.indptr[1:], strict=True)]
        return LexicalQuery(feats, (q.data * idf * idf / norm).astype(np.float32), by_word)

    def score_rows(self, query: tuple[np.ndarray, np.ndarray], positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(TF-IDF cosine, coverage) of the rows at `positions`. Coverage is the idf-weighted share
        of the query's n-grams found in the row: a one-word query is fully covered by every entry
        that has the word, however long the entry's text."""
        feats, weights = query
        if not len(feats) or not len(positions):
            zero = np.zeros(len(positions), dtype=np.float32)
            return zero, zero
        if len(self) >= LARGE_INDEX_ROWS:
            dot, covered = self._query_dots(feats, weights, positions)
            return dot / self._large_norms()[positions], covered / max(float(weights.sum()), 1e-9)
        rows = self.rows(positions)
        owner = _owners(rows)
        dot, covered = _row_dots(rows, feats, weights, owner)
        return dot / self._current_norms(rows, owner), covered / max(float(weights.sum()), 1e-9)

    def _query_dots(
        self, feats: np.ndarray, weights: np.ndarray, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`_row_dots` of the rows at `positions` for a large index: a main row's words, then each
        word's counts of the query's n-grams (`_gram_columns`), so that only the query's n-grams are
        expanded, not the rows' hundreds (~250k a search at 100k entries: 6 ms)."""
        n_main = self._main.shape[0]
        dot, covered = np.zeros(len(positions), dtype=np.float32), np.zeros(len(positions), dtype=np.float32)
        main = positions < n_main
        if not main.all():
            dot[~main], covered[~main] = _row_dots(self._tail_matrix()[positions[~main] - n_main], feats, weights)
        if not main.any():
            return dot, covered
        self.prepare()
        per_word = self._gram_columns(feats).tocsr()  # word -> its counts of the query's n-grams
        row_words = self._main[positions[main]]
        lengths = np.diff(per_word.indptr)[row_words.indices]
        if lengths.any():
            at = _spans(per_word.indptr[row_words.indices], lengths)
            owner = np.repeat(_owners(row_words), lengths)
            counts = per_word.data[at] * np.repeat(row_words.data, lengths)
            rows, query_col, summed = _grouped(owner, per_word.indices[at].astype(np.int64), counts, len(feats))
            n = int(main.sum())
            dot[main] = np.bincount(rows, weights=(1.0 + np.log(summed)) * weights[query_col], minlength=n)
            covered[main] = np.bincount(rows, weights=weights[query_col], minlength=n)
        return dot, covered

    def _large_norms(self) -> np.ndarray:
        """A large index's norms as saved: those of its main rows weighed with the idf of its last
        merge (`_refresh_norms`), an appended row's with that of when it was added. At 100k entries
        a few edits move an idf by parts per million; rebuilding every candidate row's n-grams to
        weigh them with today's (`_current_norms`) was a sixth of a search."""
        if not getattr(self, "_norms_fresh", False):
            self._refresh_norms()
        return self._norms

    def _refresh_norms(self, block: int = 65536) -> None:
        """The main rows' norms with today's idf (~4 s at 2.5M rows)."""
        n_main = self._main.shape[0]
        parts = []
        for a in range(0, n_main, block):
            x = self._features(self._main[a : a + block])
            parts.append(self._current_norms(x, _owners(x)))
        self._norms = np.concatenate([*parts, self._norms[n_main:]]).astype(np.float32)
        self._norms_fresh = True

    def _current_norms(self, rows: sp.csr_matrix, owner: np.ndarray) -> np.ndarray:
        """Rows' TF-IDF norms with today's idf: the stored ones were weighed with the n-gram
        frequencies of when each row was added, so a small index's scores would depend on the order
        of edits (a large one divides by its stored norms, weighed again at each merge: `_large_norms`)."""
        weighted = rows.data * self.idf(rows.indices)
        norms = np.sqrt(np.bincount(owner, weights=weighted * weighted, minlength=rows.shape[0]))
        return np.maximum(norms, 1e-6).astype(np.float32)

    def top(
        self, query: tuple[np.ndarray, np.ndarray], k: int, alive: np.ndarray, budget: int | None = None
    ) -> np.ndarray:
        """Positions of up to `k` best rows; very common n-grams are skipped (they only add noise).

        With a `budget` (a large shard), the candidates come from the query's rarest n-grams only,
        as many as are found in at most `budget` rows together (`_bounded_top`): the cost no longer
        grows with the shard, where every row was scored before."""
        feats, weights = query
        if not len(feats) or not len(self):
            return np.zeros(0, dtype=np.int64)
        keep = self.df[feats] <= max(3, self.max_df_ratio * self.n_alive)
        if keep.any():
            feats, weights = feats[keep], weights[keep]
        if len(feats) > self.max_query_features:  # the rarest n-grams find the candidates
            best = np.argpartition(-weights, self.max_query_features - 1)[: self.max_query_features]
            feats, weights = feats[best], weights[best]
        if budget is not None:
            return self._bounded_top(query, feats, weights, k, alive, budget)
        parts = [self._main_dots(feats, weights)]
        if self._tail_parts:
            parts.append(_row_dots(self._tail_matrix(), feats, weights)[0])
        scores = np.concatenate(parts) / self._norms
        scores = np.where(alive[: len(scores)], scores, 0.0)
        k = min(k, int((scores > 0).sum()))
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        best = np.argpartition(-scores, k - 1)[:k]
        return best[np.argsort(-scores[best])]

    def _bounded_top(
        self,
        query: tuple[np.ndarray, np.ndarray],
        feats: np.ndarray,
        weights: np.ndarray,
        k: int,
        alive: np.ndarray,
        budget: int,
    ) -> np.ndarray:
        """`top` over the rows holding the query's rarest n-grams (in ascending document frequency,
        while their rows add up to at most `budget`, and at least `MIN_BOUNDED_FEATURES` of them):
        rows are found through posting lists (n-gram -> words -> rows) and only the rows found are
        touched. The `RESCORE` x `k` best by those n-grams are then ranked by their TF-IDF cosine
        over all the query's n-grams (`score_rows`, with today's idf), and the best `k` returned.

        At 100k entries (2.5M rows, the speed bench's 200 queries, budget 50k, load ~3): ~9 ms
        instead of ~100-120 ms over every row; by TF-IDF cosine the best candidate is at least as
        good in all 200 queries and the 32 are 1.02 x as good on average. A row that shares only
        commoner words with the query may be missed where the search over every row found it."""
        df = self.df[feats]
        order = np.argsort(df, kind="stable")
        take = max(MIN_BOUNDED_FEATURES, int(np.searchsorted(np.cumsum(df[order]), budget, side="right")))
        chosen = order[:take]
        # Each word's rarest n-gram too (within WORD_BUDGET x budget rows more): a word whose n-grams
        # are all commoner than another word's still takes part.
        where = {int(f): i for i, f in enumerate(feats)}
        reps = {
            min(ids, key=lambda i: df[i])
            for w in getattr(query, "words", ())
            if (ids := [where[f] for f in w.tolist() if f in where])
        }
        extra = sorted(reps - set(chosen.tolist()), key=lambda i: df[i])
        spent = np.cumsum(df[extra]) if extra else np.zeros(0)
        chosen = np.concatenate([chosen, np.asarray(extra, dtype=np.int64)[spent <= WORD_BUDGET * budget]])
        feats, weights = feats[chosen], weights[chosen]
        rows, scores = self._main_hits(feats, weights)
        if self._tail_parts:
            n_main = self._main.shape[0]
            tail = _row_dots(self._tail_matrix(), feats, weights)[0]
            found = np.flatnonzero(tail)
            rows, scores = np.concatenate([rows, found + n_main]), np.concatenate([scores, tail[found]])
        live = alive[rows] & (scores > 0)
        rows, scores = rows[live], scores[live] / self._norms[rows[live]]
        if len(rows) > k:  # the best few by the rare n-grams, ranked by all of them
            pool = min(len(rows), RESCORE * k)
            rows = rows[np.argpartition(-scores, pool - 1)[:pool]]
            scores = self.score_rows(query, rows)[0]
        k = min(k, len(rows))
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        best = np.argpartition(-scores, k - 1)[:k]
        return rows[best[np.argsort(-scores[best], kind="stable")]].astype(np.int64)

    def _main_hits(self, feats: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(main rows holding any of `feats`, their sums of sublinear frequency times weight): the
        words holding each n-gram, then each word's rows, gathered as (n-gram, row, count) triples
        and summed per (n-gram, row) before the logarithm, as `_main_dots` does over every row."""
        self.prepare()
        per_word = self._gram_columns(feats).tocoo()  # (word, query n-gram, count in the word)
        cols = self._main_cols
        starts = cols.indptr[per_word.row]
        lengths = cols.indptr[per_word.row + 1] - starts
        if not lengths.any():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        at = _spans(starts, lengths)
        counts = cols.data[at] * np.repeat(per_word.data, lengths)
        query_col = np.repeat(per_word.col.astype(np.int64), lengths)
        rows, query_col, summed = _grouped(cols.indices[at], query_col, counts, len(feats))
        contrib = (1.0 + np.log(summed)) * weights[query_col]
        first = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]]))
        return rows[first], np.add.reduceat(contrib, first).astype(np.float32)

    def prepare(self) -> None:
        """Build the inverted view of the main rows now, and a large index's norms (else the first
        search builds them)."""
        if self._main_cols is None:
            self._main_cols = self._main.tocsc()
            grams = self._word_grams()[: self._main.shape[1]]
            self._gram_ids = np.unique(grams.indices).astype(np.int32)
            self._main_grams = grams[:, self._gram_ids].tocsc()
        if len(self) >= LARGE_INDEX_ROWS:
            self._large_norms()

    def _gram_columns(self, feats: np.ndarray) -> sp.csc_matrix:
        """Words x `feats`: each query n-gram's count in each main word (empty for an n-gram none has)."""
        ids = self._gram_ids
        at = np.minimum(np.searchsorted(ids, feats), max(len(ids) - 1, 0))
        found = ids[at] == feats if len(ids) else np.zeros(len(feats), dtype=bool)
        sub = self._main_grams[:, at[found]]
        lengths = np.zeros(len(feats), dtype=np.int64)
        lengths[found] = np.diff(sub.indptr)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return sp.csc_matrix((sub.data, sub.indices, indptr), shape=(self._main_grams.shape[0], len(feats)))

    def _main_dots(self, feats: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per main row: sum over `feats` of its sublinear frequency times the weight. The words
        holding each n-gram, then the rows holding those words, give each row's n-gram counts."""
        self.prepare()
        per_word = self._gram_columns(feats).tocsr()  # word -> count of each query n-gram
        hit = np.flatnonzero(np.diff(per_word.indptr))
        # (n-gram x word) @ (word x row): loops over the query's n-grams, not over every row.
        counts = per_word[hit].T.tocsr() @ self._main_cols[:, hit].T  # n-gram -> count in each row
        counts.data = 1.0 + np.log(counts.data)
        return np.asarray(counts.T @ weights, dtype=np.float32).ravel()

    def _tail_matrix(self) -> sp.csr_matrix:
        if self._tail is None:
            self._tail = sp.vstack(self._tail_features, format="csr")
        return self._tail

    def _count(self, x: sp.csr_matrix, sign: int) -> None:
        if x.nnz:
            self.df.add(x.indices, sign)
        self.n_alive += sign * x.shape[0]
        self._idf_all = None

    def merge(self) -> None:
        """Move appended rows into the main (inverted) part."""
        self._merge()

    def _merge(self) -> None:
        if not self._tail_parts:
            return
        cols = len(self._vocab)
        parts = [_widen(x, cols) for x in (self._main, *self._tail_parts)]
        self._main = sp.vstack(parts, format="csr")
        self._tail_parts, self._tail_features, self._tail = [], [], None
        self._main_cols = self._main_grams = None
        self._forget_kept_features()
        self._norms_fresh = False  # weighed again before a large index's next search, or its save


# ----------------------------------------------------------------------------- spelling


_TOKEN = re.compile(r"[^\W\d_]+")
# Swedish inflection endings (folded): "hyresvarden" is "hyresvard" + "en", not a misspelling.
_SUFFIXES = ("erna", "arna", "orna", "ens", "ets", "en", "et", "er", "ar", "or", "na", "n", "t", "a", "s", "e")


def tokenizer_lexicon(tokenizer) -> frozenset[str]:
    """Whole words of a subword tokenizer's vocabulary (SentencePiece pieces that start a word,
    folded, at least 4 letters): a cheap many-language list of correctly spelt words."""
    if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
        return frozenset()
    pieces = [p[1:] for p in tokenizer.get_vocab() if p.startswith("\u2581") and len(p) > 4 and "\n" not in p]
    return frozenset(fold_all(pieces))


GENERAL_LANGUAGES = ("sv", "en")  # general dictionaries (wordfreq) for the knowledge base's full languages
GENERAL_WORDS = 150_000  # most frequent words per language
KNOWN_ZIPF = 2.0  # a word at least this frequent (log10 per billion words) is spelt right
SHORT_ZIPF = 4.5  # a 3-4-letter word is only corrected into a very common word ("fpr" -> "för")
KB_BONUS = 2.0  # a knowledge-base word counts as if a hundred times more frequent
COMPOUND_ZIPF = 3.5  # general words this common may be parts of a compound
SHORT_PART_ZIPF = 4.0  # ... and 2-3-letter words this common may start one ("köplats")
RARE_ZIPF = 4.0  # a dictionary word rarer than this ...
RARE_MARGIN = 3.0  # ... is taken for a typo of a word one edit away and this much likelier ("iag" -> "jag")
FIRST_LETTER_BONUS = 0.5  # typos rarely hit the first letter


class GeneralDictionary:
    """A language's most frequent words (wordfreq's corpus statistics): their Zipf frequency by exact
    form and by folded form, and each folded form's commonest exact form (to give diacritics back).

    Sorted UTF-8 byte arrays searched by bisection (a memo keeps the words looked up), saved once under
    the data directory and memory-mapped, so every worker shares one copy in the page cache. As Python
    dicts, Swedish and English took ~116 MB in each worker, and every other language a citizen wrote
    in another 40-70 MB (issue 18)."""

    ARRAYS = ("exact", "exact_zipf", "folded", "folded_zipf", "folded_form")
    MEMO = 100_000

    def __init__(self, ranked: list[tuple[str, float]] = (), arrays: dict[str, np.ndarray] | None = None):
        self.arrays = arrays if arrays is not None else self._build(list(ranked))
        self._exact, self._exact_zipf, self._folded, self._folded_zipf, self._folded_form = (
            self.arrays[name] for name in self.ARRAYS
        )
        self._memo: dict[tuple[bool, str], int] = {}

    @staticmethod
    def _build(ranked: list[tuple[str, float]]) -> dict[str, np.ndarray]:
        """The arrays of (word, Zipf) pairs, most frequent first; a folded form keeps the first."""
        words = [w for w, _ in ranked]
        exact = np.array([w.encode() for w in words], dtype=bytes)
        order = np.argsort(exact, kind="stable")
        rank = np.empty(len(words), dtype=np.int32)
        rank[order] = np.arange(len(words), dtype=np.int32)
        first: dict[str, int] = {}
        for i, f in enumerate(fold_all(words)):
            first.setdefault(f, i)
        folded = np.array([f.encode() for f in first], dtype=bytes)
        at = np.fromiter(first.values(), dtype=np.int32, count=len(first))
        forder = np.argsort(folded, kind="stable")
        zipf = np.array([z for _, z in ranked], dtype=np.float32)
        return {
            "exact": exact[order],
            "exact_zipf": zipf[order],
            "folded": folded[forder],
            "folded_zipf": zipf[at[forder]],
            "folded_form": rank[at[forder]],
        }

    def save(self, folder: Path) -> None:
        """Into `folder` (written beside it and renamed: several workers may build it at once)."""
        tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for name in self.ARRAYS:
            np.save(tmp / f"{name}.npy", self.arrays[name])
        try:
            tmp.rename(folder)
        except OSError:  # another process saved it first
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> GeneralDictionary:
        return cls(arrays={name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in cls.ARRAYS})

    def __bool__(self) -> bool:
        return len(self._exact) > 0

    def _find(self, word: str, folded: bool) -> int:
        """The position of `word` among the folded (or exact) forms, or -1."""
        key = (folded, word)
        hit = self._memo.get(key)
        if hit is None:
            keys = self._folded if folded else self._exact
            raw = word.encode()
            hit = -1
            if 0 < len(raw) <= keys.dtype.itemsize and len(keys):
                at = int(np.searchsorted(keys, raw))
                hit = at if at < len(keys) and keys[at] == raw else -1
            if len(self._memo) >= self.MEMO:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def zipf(self, folded: str) -> float:
        """The Zipf frequency of a folded form's commonest spelling, 0 if unknown."""
        at = self._find(folded, True)
        return float(self._folded_zipf[at]) if at >= 0 else 0.0

    def exact_zipf(self, word: str) -> float:
        """The Zipf frequency of `word` exactly as written (lower case), 0 if unknown."""
        at = self._find(word, False)
        return float(self._exact_zipf[at]) if at >= 0 else 0.0

    def surface(self, folded: str) -> str | None:
        """The commonest spelling of a folded form ("overklagande" -> "överklagande"), or None."""
        at = self._find(folded, True)
        return self._exact[self._folded_form[at]].decode() if at >= 0 else None

    def known(self, min_zipf: float) -> list[str]:
        """The folded forms at least this frequent."""
        return [w.decode() for w in self._folded[self._folded_zipf >= min_zipf].tolist()]


def _dictionaries_dir() -> Path:
    from core.config import Settings

    return Settings().data_dir / "dictionaries"


@functools.cache
def general_dictionary(language: str) -> GeneralDictionary:
    """The general dictionary of `language`; empty when wordfreq does not have it. Built from
    wordfreq once per install (~1-2 s) and memory-mapped by every process after."""
    try:
        import wordfreq
    except ImportError:
        return GeneralDictionary()
    folder = _dictionaries_dir() / f"{language}-wordfreq{version('wordfreq')}-{GENERAL_WORDS}"
    if (folder / f"{GeneralDictionary.ARRAYS[-1]}.npy").exists():
        return GeneralDictionary.load(folder)
    try:
        freqs = wordfreq.get_frequency_dict(language)
    except (LookupError, ValueError):  # ValueError: not a language tag ("G .")
        return GeneralDictionary()
    top = heapq.nlargest(GENERAL_WORDS, ((f, w) for w, f in freqs.items() if w.isalpha()))
    del freqs
    for cached in ("get_frequency_dict", "get_frequency_list"):  # wordfreq keeps whole lists: ~40 MB
        getattr(getattr(wordfreq, cached, None), "cache_clear", lambda: None)()
    built = GeneralDictionary([(w, math.log10(f * 1e9)) for f, w in top])  # Zipf: log10 per billion words
    try:
        built.save(folder)
        return GeneralDictionary.load(folder)
    except OSError:  # a read-only data directory: kept in this process only
        return built


@functools.cache
def _known_words(language: str) -> dict[int, list[str]]:
    """The general dictionary's words spelt right (folded, `KNOWN_ZIPF` and up) by length."""
    pool: dict[int, list[str]] = {}
    for w in general_dictionary(language).known(KNOWN_ZIPF):
        pool.setdefault(len(w), []).append(w)
    return pool


# wordfreq's code where it differs from ours (Norwegian: Bokmål).
WORDFREQ_CODES = {"no": "nb"}


def reads_as_words(text: str, language: str, vocabulary: Mapping[str, set[str]]) -> bool:
    """False for a keyboard mash ("asdkjh qwe zzxq"): a Latin-script message none of whose words the
    knowledge base uses or a dictionary of its detected language, Swedish or English knows. Such a
    message gets no "did you mean": its nearest entries are noise. Languages without a dictionary
    here (Somali, Kurdish, ...) and other scripts are always taken as words."""
    tokens = [w for w in words(text) if w.isalpha()]
    if not tokens or not all(w.isascii() for w in tokens):
        return True
    # The knowledge base's words and the dictionaries spelling already loaded first: the detected
    # language's dictionary is loaded (once) only for a message none of them knows.
    loaded = [general_dictionary(lang) for lang in GENERAL_LANGUAGES]
    if any(any(w in known for known in vocabulary.values()) or any(d.zipf(w) > 0 for d in loaded) for w in tokens):
        return True
    own = general_dictionary(WORDFREQ_CODES.get(language, language))
    return not own or any(own.zipf(w) > 0 for w in tokens)


class SpellCorrector:
    """Maps misspelt query words onto real words before dense encoding.

    The embedding model reads "forskoleplats" or "bygglv" as different tokens from
    "förskoleplats" and "bygglov"; n-grams catch such words lexically, but the dense signal is the
    stronger one, so it should see the intended word. A word is kept when it is in the knowledge
    base's vocabulary or a general dictionary of the language (wordfreq: "gåvor" is right even if
    no entry says it), or too short to correct safely; a rare dictionary word gives way to a far
    likelier one an edit away ("iag" -> "jag", "md" -> "med"). Otherwise it becomes the likeliest
    word within a small edit distance (OSA: a swap of two letters is one edit; 1, 2 or 3 edits by
    length): fewest edits first, then fewest edits as typed (diacritics the citizen typed are meant:
    "vråd" -> "vård"), then frequency, knowledge-base words counting a hundred times more, a shared
    first letter a little. Words of 3-4 letters are only corrected into very common words
    ("kjag" -> "jag"). An inflection or compound of known words ("sopbilen") and a name in
    mid-sentence are only mapped onto knowledge-base words ("kmsorg" -> "omsorg", "Ukrxlna" ->
    "Ukraina"; "Waran" stays). Words known without diacritics get them back ("ansoker" -> "ansöker").
    A compound found nowhere may have its typo in either part ("servcieinsatser"). Capitals are kept.
    """

    def __init__(
        self,
        min_len: int = 5,
        long_len: int = 9,
        very_long_len: int = 12,
        cache_size: int = 20_000,
        lexicon: frozenset[str] = frozenset(),
        general: bool = True,
    ):
        self.min_len, self.long_len, self.very_long_len = min_len, long_len, very_long_len
        self.cache_size = cache_size
        self.lexicon = lexicon  # words known to be spelt right though not in the knowledge base
        self.general = general
        self.surface: dict[str, dict[str, int]] = {}  # folded word -> surface form -> count
        self._own: dict[int, list[str]] | None = None  # the knowledge base's words by length
        self._cache: dict[tuple, str | None] = {}  # looked-up words
        if general:  # loaded now, not on a citizen's first question
            for language in GENERAL_LANGUAGES:
                general_dictionary(language)

    def __getstate__(self) -> dict:
        """What a saved index keeps: the learnt words, not the tokenizer's lexicon (the retriever
        gives it back), the lookup cache or the candidate pools (rebuilt as needed)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("lexicon", "_own", "_cache")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.pop("_pools", None)  # saved by an older version
        self.__dict__.update(state, lexicon=frozenset(), _own=None, _cache={})

    def learn(self, text: str) -> None:
        for tok in _TOKEN.findall(text.lower()):
            folded = tok.translate(_FOLD) if tok.isascii() else fold(tok)
            if folded not in self.surface:
                self.surface[folded] = {}
                if self._own is not None:  # a new word joins the built pool
                    self._own.setdefault(len(folded), []).append(folded)
            forms = self.surface[folded]
            forms[tok] = forms.get(tok, 0) + 1
        self._cache.clear()

    def __len__(self) -> int:
        return len(self.surface)

    def _dictionary(self, language: str | None) -> GeneralDictionary:
        if not self.general or language not in GENERAL_LANGUAGES:
            return GeneralDictionary()
        return general_dictionary(language)

    def _in_vocabulary(self, word: str, general: GeneralDictionary) -> bool:
        return word in self.surface or general.zipf(word) >= KNOWN_ZIPF

    def _well_formed(self, word: str, general: GeneralDictionary) -> bool:
        """An inflection of a known word, or a compound of two (maybe joined by an s)."""
        for suffix in _SUFFIXES:
            stem = word[: -len(suffix)]
            if word.endswith(suffix) and len(stem) >= 3 and self._in_vocabulary(stem, general):
                return True
            if word + suffix in self.surface:
                return True
        return any(
            self._compound_part(word[:i], general, first=True)
            and (
                self._compound_part(word[i:], general)
                or (word[i] == "s" and self._compound_part(word[i + 1 :], general))
            )
            for i in range(2, len(word) - 2)
        )

    def _compound_part(self, part: str, general: GeneralDictionary, first: bool = False) -> bool:
        """A knowledge-base word, or a common general word of 4+ letters: rare short words would
        make most misspellings look like compounds ("verksam" + "eter"). A compound may start
        with a very common short word ("kö" + "plats")."""
        if len(part) >= 3 and part in self.surface:
            return True
        if len(part) >= 4:
            return general.zipf(part) >= COMPOUND_ZIPF
        return first and general.zipf(part) >= SHORT_PART_ZIPF

    def _pools(self, language: str | None, general: GeneralDictionary) -> list[dict[int, list[str]]]:
        """Candidate words by length: the knowledge base's, and the general dictionary's known words
        (one pool per language for every municipality's speller: a copy each took ~1 MB a shard)."""
        if self._own is None:
            self._own = {}
            for w in self.surface:
                self._own.setdefault(len(w), []).append(w)
        return [self._own, _known_words(language)] if general else [self._own]

    def _nearest(
        self, folded: str, language: str | None, max_d: int, kb_only: bool = False, typed: str | None = None
    ) -> tuple[int, float, str] | None:
        """(edits, likelihood, folded word) of the likeliest word near `folded`, or None; `typed`, the
        word as written when it has diacritics, breaks ties in edits."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        general = self._dictionary(language)
        pools = self._pools(language, general)[: 1 if kb_only else None]
        short = len(folded) < self.min_len
        best: tuple[int, int, float, str] | None = None  # (edits, edits as typed, -likelihood, word)
        for n in range(len(folded) - max_d, len(folded) + max_d + 1):
            words_n = list(itertools.chain.from_iterable(pool.get(n, ()) for pool in pools))
            if not words_n:
                continue
            for word, dist, _ in process.extract(folded, words_n, scorer=OSA.distance, score_cutoff=max_d, limit=None):
                if (short and general.zipf(word) < SHORT_ZIPF) or (kb_only and word not in self.surface):
                    continue
                likelihood = self._prior(word, general) + FIRST_LETTER_BONUS * (word[0] == folded[0])
                # Diacritics the citizen typed are likely meant: of words as many edits away (folded),
                # the fewest edits as typed wins over the likeliest ("vråd" -> "vård", not "vad").
                as_typed = OSA.distance(typed, self._surface(word, general).lower()) if typed else 0
                key = (int(dist), as_typed, -likelihood, word)  # the word last: the same answer every run
                if best is None or key < best:
                    best = key
        return (best[0], -best[2], best[3]) if best else None

    def _prior(self, word: str, general: GeneralDictionary) -> float:
        """How likely a word is meant, in Zipf units; knowledge-base words count a hundred times more."""
        zipf = general.zipf(word)
        return max(zipf, 3.0) + KB_BONUS if word in self.surface else zipf

    def _surface(self, folded: str, general: GeneralDictionary) -> str:
        """How a known folded word is written: the knowledge base's form likeliest in the query's
        language, then its commonest (a Swedish "fö" means "för", though the English answers say
        "for" more often); else the general dictionary's commonest form ("overklagande" -> "över-")."""
        forms = self.surface.get(folded)
        if forms:
            return max(forms, key=lambda form: (general.exact_zipf(form), forms[form]))
        return general.surface(folded)

    def _lookup(self, folded: str, language: str | None, max_d: int, kb_only: bool, typed: str | None) -> str | None:
        """The word (surface form) a folded unknown word most likely meant, or None."""
        best = self._nearest(folded, language, max_d, kb_only, typed)
        if best:
            return self._surface(best[2], self._dictionary(language))
        return None if kb_only else self._compound_fix(folded, language)

    def _compound_fix(self, folded: str, language: str | None) -> str | None:
        """A compound with one typo in one part, the other part known as written, maybe joined by
        an s: "tolkhjlp" -> "tolkhjälp", "servcieinsatser" -> "serviceinsatser". Knowledge bases
        rarely hold every compound a citizen forms, so the whole word is often nowhere to be found.
        Words of 8+ letters, parts of 4+ (a known head may be shorter); the likeliest fixed part wins."""
        if len(folded) < 8:
            return None
        general = self._dictionary(language)
        best: tuple[float, str] | None = None
        for i in range(3, len(folded) - 3):
            head = folded[:i]
            head_known = self._compound_part(head, general, first=True)
            for link in ("", "s"):
                tail = folded[i + len(link) :]
                if (link and folded[i] != "s") or len(tail) < 4:
                    continue
                if head_known == self._compound_part(tail, general):
                    continue  # a well-formed compound, or two unknown parts
                broken, first = (tail, False) if head_known else (head, True)
                fix = self._nearest(broken, language, self._max_edits(broken)) if len(broken) >= 4 else None
                if fix is None or len(fix[2]) < 4 or not self._compound_part(fix[2], general, first=first):
                    continue
                parts = (head, fix[2]) if head_known else (fix[2], tail)
                if best is None or fix[1] > best[0]:
                    best = (fix[1], self._surface(parts[0], general) + link + self._surface(parts[1], general))
        return best[1] if best else None

    def _likelier(self, folded: str, zipf: float, language: str | None, typed: str | None) -> str | None:
        """A word one edit from a rare dictionary word and far likelier ("iag" -> "jag"), or None."""
        if zipf >= RARE_ZIPF or len(folded) < 2 or not folded.isascii():
            return None
        general = self._dictionary(language)
        near = self._nearest(folded, language, 1, typed=typed)
        if near is None or self._prior(near[2], general) < zipf + RARE_MARGIN:
            return None
        return self._surface(near[2], general)

    def correct_word(self, word: str, language: str | None = None, name: bool = False) -> str | None:
        """The replacement for `word`, or None to keep it. A `name` (capitalised in mid-sentence)
        is only mapped onto a knowledge-base word ("Ukrxlna" -> "Ukraina", never "Waran" -> "varan")."""
        low = word.lower()
        folded = fold(low)
        general = self._dictionary(language)
        if folded in self.surface:
            if low in self.surface[folded] or low != folded:
                return None  # a known form, or the citizen typed diacritics: keep it
            return self._surface(folded, general)
        typed = low if low != folded else None  # the diacritics the citizen typed
        exact = general.exact_zipf(low)
        if exact >= KNOWN_ZIPF:  # a word as written ("sot" is soot, not "söt"), unless rare
            return None if name else self._cached(self._likelier, folded, exact, language, typed)
        if general.zipf(folded) >= KNOWN_ZIPF:
            return self._surface(folded, general) if low == folded else None  # "overklagande" -> "överklagande"
        min_len = 3 if general else self.min_len
        # The tokenizer's words count only where no general dictionary does: they hold too many
        # stray pieces of other languages ("vsem" is Czech, and a typo of "vem").
        if len(folded) < min_len or not folded.isascii() or (not general and folded in self.lexicon):
            return None
        # Names, and words that look well formed ("kmsorg": "km" + "sorg") but may be one typo from a
        # knowledge-base word, are only mapped onto knowledge-base words.
        formed = not name and self._well_formed(folded, general)
        max_d = 1 if formed else self._max_edits(folded)
        return self._cached(self._lookup, folded, language if general else None, max_d, name or formed, typed)

    def _max_edits(self, folded: str) -> int:
        return 1 + (len(folded) >= self.long_len) + (len(folded) >= self.very_long_len)

    def _cached(self, lookup, *args) -> str | None:
        """`lookup(*args)`, remembered: a citizen's misspelling tends to come back."""
        key = (lookup.__name__, *args)
        if key not in self._cache:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[key] = lookup(*args)
        return self._cache[key]

    def correct(self, text: str, language: str | None = None) -> tuple[str, list[tuple[str, str]]]:
        """(corrected text, [(word, replacement)]); `language` picks the general dictionary."""
        if not self.surface:
            return text, []
        changes: list[tuple[str, str]] = []

        def swap(m: re.Match) -> str:
            word = m.group(0)
            name = m.start() > 0 and word[0].isupper() and text[: m.start()].rstrip()[-1:] not in ".!?"
            new = self.correct_word(word, language, name=name)
            if new is None:
                return word
            if word.isupper() and len(word) > 1:
                new = new.upper()
            elif word[0].isupper():  # the encoder is cased: "Ansoker" -> "Ansöker", not "ansöker"
                new = new[:1].upper() + new[1:]
            changes.append((word, new))
            return new

        return _TOKEN.sub(swap, text), changes

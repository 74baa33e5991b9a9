"""Typo-robust lexical matching: TF-IDF over hashed character n-grams of accent-folded words.

Character n-grams match a misspelt word on the n-grams it still shares ("forskoleplats" ~
"förskoleplats") and a word inside a Swedish compound ("sopor" ~ "sophämtning") without a
dictionary. Hashing keeps the feature space fixed, so rows can be appended and removed without
refitting; document frequencies are maintained incrementally.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

N_FEATURES = 1 << 20
_SPECIAL = str.maketrans({"ß": "ss", "ø": "o", "æ": "ae", "ı": "i", "ł": "l", "đ": "d", "ي": "ی", "ى": "ی",
                          "ك": "ک", "ة": "ه", "ـ": ""})
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


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def _analyzer(ngram_min: int, ngram_max: int):
    def analyze(text: str) -> list[str]:
        grams: list[str] = []
        for word in words(text):
            padded = f" {word} "
            if len(padded) <= ngram_min:
                grams.append(padded)
                continue
            for n in range(ngram_min, ngram_max + 1):
                grams.extend(padded[i:i + n] for i in range(len(padded) - n + 1))
        return grams

    return analyze


class Featurizer:
    """Text -> sparse sublinear term frequencies of hashed character n-grams."""

    def __init__(self, ngram_min: int = 3, ngram_max: int = 5):
        self._vec = HashingVectorizer(analyzer=_analyzer(ngram_min, ngram_max), n_features=N_FEATURES,
                                      alternate_sign=False, norm=None, dtype=np.float32)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        x = self._vec.transform(texts).tocsr()
        x.data = 1.0 + np.log(x.data)
        return x


def _row_dots(rows: sp.csr_matrix, feats: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: sum of data * weight, and sum of weight, over the query's features it has.

    Works on the rows' non-zeros only; scipy's column selection and sparse products allocate
    arrays as large as the (2^20) feature space on every call.
    """
    order = np.argsort(feats)
    f, w = feats[order], weights[order]
    at = np.minimum(np.searchsorted(f, rows.indices), len(f) - 1)
    hit = f[at] == rows.indices
    owner = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    wh = np.where(hit, w[at], 0.0)
    dot = np.bincount(owner, weights=rows.data * wh, minlength=rows.shape[0])
    cov = np.bincount(owner, weights=wh, minlength=rows.shape[0])
    return dot.astype(np.float32), cov.astype(np.float32)


class LexicalIndex:
    """Rows addressed by position (shared with the dense arena); append, kill and compact.

    Search uses an inverted (column) view of the bulk of the rows plus a plain scan of the
    recently appended tail, so an upsert never rebuilds the whole index.
    """

    def __init__(self, featurizer: Featurizer, max_df_ratio: float = 0.15, tail_limit: int = 4096):
        self.featurizer = featurizer
        self.max_df_ratio = max_df_ratio
        self.tail_limit = tail_limit
        self.df = np.zeros(N_FEATURES, dtype=np.int32)
        self.n_alive = 0
        self._main = sp.csr_matrix((0, N_FEATURES), dtype=np.float32)
        self._main_cols: sp.csc_matrix | None = None
        self._tail_parts: list[sp.csr_matrix] = []
        self._tail: sp.csr_matrix | None = None
        self._norms = np.zeros(0, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._norms)

    def idf(self, features: np.ndarray) -> np.ndarray:
        return (np.log((self.n_alive + 1.0) / (self.df[features] + 1.0)) + 1.0).astype(np.float32)

    def append(self, texts: list[str]) -> None:
        self.append_features(self.featurizer.transform(texts))

    def append_features(self, x: sp.csr_matrix) -> None:
        self._count(x, +1)
        weighted = x.copy()
        weighted.data = weighted.data * self.idf(weighted.indices)
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel()).astype(np.float32)
        self._norms = np.concatenate([self._norms, np.maximum(norms, 1e-6)])
        self._tail_parts.append(x)
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

    def rows(self, positions: np.ndarray) -> sp.csr_matrix:
        n_main = self._main.shape[0]
        if not self._tail_parts or (len(positions) and positions.max() < n_main):
            return self._main[positions]
        tail = self._tail_matrix()
        order = np.argsort(positions, kind="stable")
        srt = positions[order]
        cut = int(np.searchsorted(srt, n_main))
        stacked = sp.vstack([self._main[srt[:cut]], tail[srt[cut:] - n_main]], format="csr")
        return stacked[np.argsort(order)]

    def query(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The query's features and their idf-squared weights, normalised."""
        q = self.featurizer.transform([text])
        feats = q.indices.astype(np.int64)
        if not len(feats):
            return feats, np.zeros(0, dtype=np.float32)
        idf = self.idf(feats)
        norm = float(np.sqrt(((q.data * idf) ** 2).sum())) or 1.0
        return feats, (q.data * idf * idf / norm).astype(np.float32)

    def score_rows(self, query: tuple[np.ndarray, np.ndarray], positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(TF-IDF cosine, coverage) of the rows at `positions`. Coverage is the idf-weighted share
        of the query's n-grams found in the row: a one-word query is fully covered by every entry
        that has the word, however long the entry's text."""
        feats, weights = query
        if not len(feats) or not len(positions):
            zero = np.zeros(len(positions), dtype=np.float32)
            return zero, zero
        dot, covered = _row_dots(self.rows(positions), feats, weights)
        return dot / self._norms[positions], covered / max(float(weights.sum()), 1e-9)

    def top(self, query: tuple[np.ndarray, np.ndarray], k: int, alive: np.ndarray) -> np.ndarray:
        """Positions of up to `k` best rows; very common n-grams are skipped (they only add noise)."""
        feats, weights = query
        if not len(feats) or not len(self):
            return np.zeros(0, dtype=np.int64)
        keep = self.df[feats] <= max(3, self.max_df_ratio * self.n_alive)
        if keep.any():
            feats, weights = feats[keep], weights[keep]
        if self._main_cols is None:
            self._main_cols = self._main.tocsc()
        parts = [np.asarray(self._main_cols[:, feats] @ weights).ravel()]
        if self._tail_parts:
            parts.append(_row_dots(self._tail_matrix(), feats, weights)[0])
        scores = np.concatenate(parts) / self._norms
        scores = np.where(alive[: len(scores)], scores, 0.0)
        k = min(k, int((scores > 0).sum()))
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        best = np.argpartition(-scores, k - 1)[:k]
        return best[np.argsort(-scores[best])]

    def _tail_matrix(self) -> sp.csr_matrix:
        if self._tail is None:
            self._tail = sp.vstack(self._tail_parts, format="csr")
        return self._tail

    def _count(self, x: sp.csr_matrix, sign: int) -> None:
        if x.nnz:
            np.add.at(self.df, x.indices, sign)
        self.n_alive += sign * x.shape[0]

    def merge(self) -> None:
        """Move appended rows into the main (inverted) part."""
        self._merge()

    def _merge(self) -> None:
        if not self._tail_parts:
            return
        self._main = sp.vstack([self._main, self._tail_matrix()], format="csr")
        self._tail_parts, self._tail = [], None
        self._main_cols = None


# ----------------------------------------------------------------------------- spelling


_TOKEN = re.compile(r"[^\W\d_]+")
# Swedish inflection endings (folded): "hyresvarden" is "hyresvard" + "en", not a misspelling.
_SUFFIXES = ("erna", "arna", "orna", "ens", "ets", "en", "et", "er", "ar", "or", "na", "n", "t", "a", "s", "e")


def tokenizer_lexicon(tokenizer) -> frozenset[str]:
    """Whole words of a subword tokenizer's vocabulary (SentencePiece pieces that start a word,
    folded, at least 4 letters): a cheap many-language list of correctly spelt words."""
    if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
        return frozenset()
    out = set()
    for piece in tokenizer.get_vocab():
        if piece.startswith("\u2581") and len(piece) > 4:
            out.add(fold(piece[1:]))
    return frozenset(out)


class SpellCorrector:
    """Maps misspelt query words onto the knowledge base's own words before dense encoding.

    The embedding model reads "forskoleplats" or "bygglv" as different tokens from
    "förskoleplats" and "bygglov"; n-grams catch such words lexically, but the dense signal is the
    stronger one, so it should see the intended word. A word is kept when it is in the vocabulary,
    too short to correct safely, or a compound of two known words ("sopbilen"); otherwise it is
    replaced by the most frequent vocabulary word within a small edit distance (OSA: a swap of
    two letters is one edit). Words known without diacritics get them back ("ansoker" -> "ansöker").
    """

    def __init__(self, min_len: int = 5, long_len: int = 9, cache_size: int = 20_000,
                 lexicon: frozenset[str] = frozenset()):
        self.min_len, self.long_len, self.cache_size = min_len, long_len, cache_size
        self.lexicon = lexicon  # words known to be spelt right though not in the knowledge base
        self.surface: dict[str, dict[str, int]] = {}  # folded word -> surface form -> count
        self._by_len: dict[int, list[str]] | None = None
        self._cache: dict[str, str | None] = {}

    def learn(self, text: str) -> None:
        for tok in _TOKEN.findall(text.lower()):
            forms = self.surface.setdefault(tok.translate(_FOLD) if tok.isascii() else fold(tok), {})
            forms[tok] = forms.get(tok, 0) + 1
        self._by_len = None
        self._cache.clear()

    def __len__(self) -> int:
        return len(self.surface)

    def _best_form(self, folded: str) -> str:
        forms = self.surface[folded]
        return max(forms, key=forms.get)

    def _known(self, word: str) -> bool:
        """A real word: in the lexicon, an inflection of a knowledge-base word, or a compound of two."""
        if word in self.lexicon:
            return True
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and word[: -len(suffix)] in self.surface and len(word) - len(suffix) >= 3:
                return True
            if word + suffix in self.surface:
                return True
        return any(word[:i] in self.surface and (word[i:] in self.surface or word[i + 1:] in self.surface)
                   for i in range(3, len(word) - 2))

    def _lookup(self, folded: str) -> str | None:
        """The vocabulary word (surface form) a folded unknown word most likely meant, or None."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        if self._by_len is None:
            by_len: dict[int, list[str]] = {}
            for w in self.surface:
                by_len.setdefault(len(w), []).append(w)
            self._by_len = by_len
        max_d = 1 if len(folded) < self.long_len else 2
        best: tuple[int, int, str] | None = None
        for n in range(len(folded) - max_d, len(folded) + max_d + 1):
            pool = self._by_len.get(n)
            if not pool:
                continue
            for word, dist, _ in process.extract(folded, pool, scorer=OSA.distance, score_cutoff=max_d, limit=5):
                freq = sum(self.surface[word].values())
                if best is None or (dist, -freq) < (best[0], -best[1]):
                    best = (int(dist), freq, word)
        return self._best_form(best[2]) if best else None

    def correct_word(self, word: str) -> str | None:
        """The replacement for `word` (lower-case), or None to keep it."""
        low = word.lower()
        folded = fold(low)
        if folded in self.surface:
            if low in self.surface[folded] or low != folded:
                return None  # a known form, or the citizen typed diacritics: keep it
            return self._best_form(folded)
        if len(folded) < self.min_len or not folded.isascii() or self._known(folded):
            return None
        if folded not in self._cache:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[folded] = self._lookup(folded)
        return self._cache[folded]

    def correct(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        """(corrected text, [(word, replacement)])."""
        if not self.surface:
            return text, []
        changes: list[tuple[str, str]] = []

        def swap(m: re.Match) -> str:
            new = self.correct_word(m.group(0))
            if new is None:
                return m.group(0)
            changes.append((m.group(0), new))
            return new

        return _TOKEN.sub(swap, text), changes

"""Hybrid retrieval over the knowledge base: dense e5 vectors, language-neutralised, plus n-grams.

Each entry becomes rows: its question variants in every language (encoded as queries: question to
question is a symmetric match) and its whole answers (passages); answer sentences are encoded too
but only feed the entry's centroid. An entry's score combines three signals:

- dense max-sim: the best row's cosine (a question variant, or an answer a little discounted);
- centroid: the cosine to the mean of all the entry's vectors (every language, every sentence),
  which rewards entries that match as a whole and is far less noisy than one row;
- lexical: TF-IDF and coverage of character n-grams (typos, Swedish compounds).

e5 vectors carry the language a text is written in: a Somali question matches Somali question
variants of the wrong entry better than the Swedish ones of the right one. The directions along
which translations of the same entry differ (estimated from the knowledge base's own multilingual
entries by SVD) are projected out of every vector, query and rows alike.

Before encoding, misspelt words are mapped onto the knowledge base's vocabulary
(`lexical.SpellCorrector`), so the dense model sees "förskoleplats" for "forskoleplats".

When the knowledge base has no text in the message's language, its entries are also scored by a
Swedish pivot of the message, made from a translation memory of the product's seed questions
(`knowledge/bridge.py`): within one language e5's cosines are reliable, across two they are not.
When it has, and few wordings per entry, by a paraphrase: the memory's own wordings, in the
message's language, of the municipal question nearest it.

Storage per municipality (a shard): a growable arena of projected row vectors (float32; int8
codes with per-row scales once a shard is large, when inverted lists over the arena generate row
candidates), an arena of entry centroids, row kinds (texts are rebuilt from the entry for the
few rows a search shows), the lexical index on the row positions, and alive masks. An upsert appends and kills;
compaction happens when a quarter of the rows are dead. Vectors are cached on disk by content
(unprojected), so a restart with an unchanged knowledge base encodes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import pickle
import re
import shutil
import threading
import time
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from knowledge import bridge
from knowledge.entries import DEFAULT_MUNICIPALITY, Entry
from knowledge.lexical import Featurizer, LexicalIndex, SpellCorrector, tokenizer_lexicon, words
from knowledge.residency import HotShards, Region, regions, release, releaser
from knowledge.rowcodes import SHORTLIST, ArenaFile, ProductCodes
from knowledge.settings import RetrievalSettings, load_retrieval_settings

QUESTION, ANSWER, CHUNK = "q", "a", "c"  # chunk: a sentence of an answer
_SENTENCE = re.compile(r"(?<=[.!?。؟])\s+|\n+")
_KIND_CODE = {QUESTION: 0, ANSWER: 1, CHUNK: 2}
_KIND_NAME = {code: kind for kind, code in _KIND_CODE.items()}


class EmbedderLike(Protocol):
    """What the retriever needs; an optional `encode_query(text)` serves live queries faster."""

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...
    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class Candidate:
    entry: Entry
    score: float
    dense: float
    lexical: float
    matched: str
    matched_kind: str
    matched_language: str
    raw: dict = field(default_factory=dict)
    query: str | None = None  # the text that was encoded, when spelling correction changed it

    def signals(self) -> dict:
        return {
            "id": self.entry.id,
            "score": round(self.score, 4),
            "dense": round(self.dense, 4),
            "lexical": round(self.lexical, 4),
            "matched": self.matched,
            "matched_kind": self.matched_kind,
            "matched_language": self.matched_language,
            **{k: round(v, 4) for k, v in self.raw.items()},
        }


@dataclass(frozen=True)
class Row:
    text: str
    kind: str
    language: str


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 1]


def entry_rows(entry: Entry, settings: RetrievalSettings) -> list[Row]:
    """The texts an entry is found by (deduplicated): questions, answers, then answer sentences."""
    rows: dict[tuple[str, str], Row] = {}
    for lang, questions in entry.questions.items():
        for q in questions:
            if q.strip():
                rows.setdefault((QUESTION, q.strip()), Row(q.strip(), QUESTION, lang))
    chunks: list[Row] = []
    for lang, answer in entry.answer.items():
        if not answer.strip():
            continue
        rows.setdefault((ANSWER, answer.strip()), Row(answer.strip(), ANSWER, lang))
        if settings.answer_chunks:
            sents = split_sentences(answer)
            size = max(1, settings.chunk_sentences)
            if len(sents) > size:
                for i in range(0, len(sents) - size + 1):
                    chunks.append(Row(" ".join(sents[i : i + size]), CHUNK, lang))
    for c in chunks:
        if (ANSWER, c.text) not in rows:
            rows.setdefault((CHUNK, c.text), c)
    return list(rows.values())


BORROW_CACHE = 50_000  # entries whose lending memory entry is kept (`Retriever._lender`)
LEXICAL_BUDGET = 50_000  # rows a large shard's lexical candidate search may touch (`LexicalIndex.top`)
_KEY = np.dtype("S20")  # a text's key: the SHA-1 digest of model, prompt and text


@dataclass
class _Chunk:
    """One file of the vector cache: its keys sorted, the row of each key's vector (None: the same
    order), the vectors (memory-mapped from `path`, or in memory without a directory)."""

    keys: np.ndarray
    rows: np.ndarray | None
    vecs: np.ndarray
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which of `keys` are here, their rows in `vecs`)."""
        if not len(self.keys) or not len(keys):
            return np.zeros(len(keys), dtype=bool), np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[at] == keys
        rows = at[hit]
        return hit, rows if self.rows is None else self.rows[rows]


class VectorCache:
    """Content-addressed vectors on disk: append-only chunk files of sorted keys and vectors.

    The vectors stay in their files, memory-mapped, and are read when asked for: held as a dict of
    float32 arrays, the cache of 100k entries (3.6M texts with the answers' sentences) took about
    6 GB in every worker. A chunk's keys are sorted 20-byte digests, so a batch is one binary search
    per chunk; chunks of one size class (×16) are merged into one file once there are 16 of them, so
    an import written 64 texts at a time leaves a few dozen files, not thousands. Files of the older
    format (keys as JSON) are read too. Without a directory (tests), chunks stay in memory.
    """

    MERGE = 16

    def __init__(self, directory: Path | None, model_id: str):
        self.dir = Path(directory) / "vectors" if directory else None
        self.model_id = model_id
        self._chunks: list[_Chunk] | None = None  # opened on first use: a start from a snapshot needs none
        self._lock = threading.Lock()

    def key(self, prompt: str, text: str) -> bytes:
        return hashlib.sha1(f"{self.model_id}\n{prompt}\n{text}".encode()).digest()

    def __len__(self) -> int:
        return sum(map(len, self._open()))

    def _open(self) -> list[_Chunk]:
        if self._chunks is None:
            with self._lock:
                if self._chunks is None:
                    chunks = []
                    if self.dir and self.dir.exists():
                        for npy in sorted(self.dir.glob("*.npy")):
                            chunk = self._read(npy)
                            if chunk is not None:
                                chunks.append(chunk)
                    self._chunks = chunks
        return self._chunks

    @staticmethod
    def _read(npy: Path) -> _Chunk | None:
        """A chunk file, or None when it is incomplete (written by a process that died)."""
        keys_file, legacy = npy.with_suffix(".keys"), npy.with_suffix(".json")
        try:
            vecs = np.load(npy, mmap_mode="r")
            if keys_file.exists():
                size = keys_file.stat().st_size
                keys = np.memmap(keys_file, dtype=_KEY, mode="r") if size else np.zeros(0, _KEY)
                rows = None
            elif legacy.exists():
                digests = np.array([bytes.fromhex(k) for k in json.loads(legacy.read_text())], dtype=_KEY)
                rows = np.argsort(digests, kind="stable")
                keys = digests[rows]
            else:
                return None
        except (OSError, ValueError):
            return None
        return _Chunk(keys, rows, vecs, npy) if len(keys) == len(vecs) else None

    def lookup(self, keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(which of `keys` are cached, their vectors in that order)."""
        chunks = self._open()
        want = np.array(keys, dtype=_KEY)
        found = np.zeros(len(want), dtype=bool)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for chunk in reversed(chunks):
            todo = np.flatnonzero(~found)
            if not len(todo):
                break
            hit, rows = chunk.find(want[todo])
            if len(rows):
                order = np.argsort(rows, kind="stable")  # read the file in order
                vecs = np.empty((len(rows), chunk.vecs.shape[1]), dtype=np.float32)
                vecs[order] = chunk.vecs[rows[order]]
                parts.append((todo[hit], vecs))
                found[todo[hit]] = True
        if not parts:
            return found, np.zeros((0, 0), dtype=np.float32)
        where = np.concatenate([p[0] for p in parts])
        vecs = np.concatenate([p[1] for p in parts])
        return found, vecs[np.argsort(where, kind="stable")]

    def get(self, key: bytes) -> np.ndarray | None:
        found, vecs = self.lookup([key])
        return vecs[0] if found[0] else None

    def put(self, keys: list[bytes], vecs: np.ndarray) -> None:
        if not keys:
            return
        self._open()
        digests = np.array(keys, dtype=_KEY)
        order = np.argsort(digests, kind="stable")
        chunk = self._write(digests[order], np.asarray(vecs, dtype=np.float32)[order], keys[0])
        with self._lock:
            self._chunks.append(chunk)
            self._merge_small()

    def _write(self, keys: np.ndarray, vecs: np.ndarray, tag: bytes) -> _Chunk:
        """A new chunk (a file pair when there is a directory; the keys file last, it marks the pair
        complete)."""
        if not self.dir:
            return _Chunk(keys, None, vecs)
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{tag.hex()[:8]}"
        npy, keys_file = self.dir / f"{name}.npy", self.dir / f"{name}.keys"
        for path, write in ((npy, lambda f: np.save(f, vecs)), (keys_file, lambda f: f.write(keys.tobytes()))):
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as f:
                write(f)
            os.replace(tmp, path)
        return _Chunk(keys, None, np.load(npy, mmap_mode="r"), npy)

    def _merge_small(self) -> None:
        """Merge the chunks of a size class (16^k rows) into one once there are MERGE of them."""
        while True:
            classes: dict[int, list[_Chunk]] = defaultdict(list)
            for chunk in self._chunks:
                classes[int(np.log(max(len(chunk), 1)) / np.log(self.MERGE))].append(chunk)
            full = next((group for group in classes.values() if len(group) >= self.MERGE), None)
            if full is None:
                return
            self._replace(full, self._gather(full, [np.ones(len(c), dtype=bool) for c in full]))

    def _gather(self, chunks: list[_Chunk], keep: list[np.ndarray], block: int = 65536) -> _Chunk:
        """One chunk of the `keep`-masked keys of `chunks`, sorted; vectors copied a block at a time."""
        keys = np.concatenate([c.keys[k] for c, k in zip(chunks, keep, strict=True)])
        source = np.concatenate([np.full(int(k.sum()), i, dtype=np.int32) for i, k in enumerate(keep)])
        rows = np.concatenate(
            [(np.flatnonzero(k) if c.rows is None else c.rows[k]) for c, k in zip(chunks, keep, strict=True)]
        )
        order = np.argsort(keys, kind="stable")
        keys, source, rows = keys[order], source[order], rows[order]
        first = np.concatenate([[True], keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=bool)
        keys, source, rows = keys[first], source[first], rows[first]  # a text cached twice: once
        dim = next((c.vecs.shape[1] for c in chunks if c.vecs.ndim == 2), 0)
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}-merged"
            npy = self.dir / f"{name}.npy"
            tmp = npy.with_name(npy.name + ".tmp")
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(keys), dim))
        else:
            out = np.empty((len(keys), dim), dtype=np.float32)
        for a in range(0, len(keys), block):
            b = min(a + block, len(keys))
            for i in np.unique(source[a:b]):
                sel = np.flatnonzero(source[a:b] == i)
                out[a + sel] = chunks[i].vecs[rows[a:b][sel]]
        if not self.dir:
            return _Chunk(keys, None, out)
        out.flush()
        del out
        os.replace(tmp, npy)
        keys_file = npy.with_suffix(".keys")
        keys_file.with_name(keys_file.name + ".tmp").write_bytes(keys.tobytes())
        os.replace(keys_file.with_name(keys_file.name + ".tmp"), keys_file)
        return _Chunk(
            np.memmap(keys_file, dtype=_KEY, mode="r") if len(keys) else keys, None, np.load(npy, mmap_mode="r"), npy
        )

    def _replace(self, old: list[_Chunk], new: _Chunk) -> None:
        gone = {id(c) for c in old}
        self._chunks = [c for c in self._chunks if id(c) not in gone] + [new]
        for c in old:
            if c.path is not None:  # another worker may still read it: its mapping stays valid
                for suffix in (".npy", ".keys", ".json"):
                    c.path.with_suffix(suffix).unlink(missing_ok=True)

    def compact(self, keep: np.ndarray) -> None:
        """Rewrite the cache as one file holding only the keys `keep` (called after a full rebuild)."""
        if not self.dir:
            return
        chunks = self._open()
        with self._lock:
            total = sum(map(len, chunks))
            if len(chunks) <= 8 and total <= 2 * max(len(keep), 1):
                return
            keep = np.unique(np.asarray(keep, dtype=_KEY))
            masks = [np.isin(c.keys, keep) for c in chunks]
            self._replace(chunks, self._gather(chunks, masks))


def share_cached(source: VectorCache, into: VectorCache, keys: list[bytes]) -> int:
    """Copy into `into` the vectors of `keys` it lacks and `source` holds; returns how many. On a first
    start the seed's questions were just encoded for the knowledge base, and the translation memory
    (knowledge/bridge.py) is the same texts under the same content-addressed keys: they are copied,
    not encoded a second time."""
    have, _ = into.lookup(keys)
    missing = [k for k, h in zip(keys, have, strict=True) if not h]
    found, vecs = source.lookup(missing) if missing else (np.zeros(0, dtype=bool), None)
    if found.any():
        into.put([k for k, f in zip(missing, found, strict=True) if f], vecs)
    return int(found.sum())


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-9)).astype(np.float32)


def language_directions(
    vecs: np.ndarray, rows: list[Row], entry_of_row: np.ndarray, k: int, min_entries: int, max_entries: int = 2000
) -> np.ndarray | None:
    """The top `k` directions along which the same entry differs between languages, or None.

    Per entry with at least three languages: the mean vector of each language minus the entry's
    mean over languages. What is left after removing the topic is mostly "which language".
    """
    if k <= 0:
        return None
    langs = np.array([r.language for r in rows])
    groups: dict[int, list[int]] = defaultdict(list)
    for i, e in enumerate(entry_of_row):
        groups[int(e)].append(i)
    devs = []
    for idx in groups.values():
        idx = np.asarray(idx)
        present = sorted(set(langs[idx]))
        if len(present) < 3:
            continue
        means = np.stack([vecs[idx[langs[idx] == lang]].mean(0) for lang in present])
        devs.append(means - means.mean(0))
        if len(devs) >= max_entries:
            break
    if len(devs) < min_entries:
        return None
    _, _, vt = np.linalg.svd(np.concatenate(devs), full_matrices=False)
    return np.ascontiguousarray(vt[:k], dtype=np.float32)


def project(x: np.ndarray, directions: np.ndarray | None) -> np.ndarray:
    """Remove the language directions and re-normalise (rows of `x`, or one vector)."""
    if directions is None:
        return _normalize(x)
    return _normalize(x - (x @ directions.T) @ directions)


class _Grow:
    """A growable array along axis 0.

    It grows by half, not by doubling: a doubled 2.5M-row arena would reserve room for 1.5M rows
    it never holds (and copy it all once more); `fit` gives back what a finished build left over."""

    def __init__(self, shape: tuple[int, ...], dtype, capacity: int = 256) -> None:
        self.a = np.zeros((capacity, *shape), dtype=dtype)

    def __getstate__(self) -> dict:  # pickled inline: the array only, never a saved file's `source`
        return {"a": self.a}

    def ensure(self, n: int) -> None:
        if n > len(self.a):
            size = max(n, len(self.a) + len(self.a) // 2)
            grown = np.zeros((size, *self.a.shape[1:]), dtype=self.a.dtype)
            grown[: len(self.a)] = self.a
            self.a = grown

    def fit(self, n: int) -> None:
        """Shrink to `n` rows (at least 256) when more than an eighth of the capacity is unused."""
        size = max(n, 256)
        if len(self.a) > size + size // 8:
            self.a = np.ascontiguousarray(self.a[:size])


def _longest_text(entry: Entry) -> int:
    """Characters of the entry's longest question or answer (its rows' sentences are shorter)."""
    texts = [*(q for qs in entry.questions.values() for q in qs), *entry.answer.values()]
    return max(map(len, texts), default=0)


def _quantize(x: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and per-row scales of `x - mean` (x ~ mean + scale * codes)."""
    r = x - mean
    scale = np.maximum(np.abs(r).max(axis=1), 1e-12).astype(np.float32) / 127.0
    return np.rint(r / scale[:, None]).astype(np.int8), scale


def arena_rows(entry: Entry, settings: RetrievalSettings, sentences: bool) -> list[Row]:
    """The rows an entry has in its shard, in order: `entry_rows` with the answer sentences only if
    they were added as rows (`chunk_rows`, and not in an import's first pass). The shard keeps row
    kinds, not rows: 2.5M Row objects would take hundreds of MB, and only the few entries a search
    returns need their matched text."""
    return [r for r in entry_rows(entry, settings) if sentences or r.kind != CHUNK]


class _IVF:
    """Inverted lists over a shard's arena: a large shard's row candidates come from the rows of the
    `nprobe` coarse centroids nearest the query instead of a scan of every row.

    The lists hold arena positions only; vectors are scored from the arena (a FAISS IVF index would
    hold a second copy of every row). They are one array sorted by list (`_order`, `_bounds`), saved
    and mapped like the arena, plus what was added since (`_added`, folded in when saved). Removed
    rows stay listed until compaction rebuilds the lists, and are masked at search."""

    def __init__(self, centroids: np.ndarray, nprobe: int) -> None:
        import faiss

        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.nprobe = nprobe
        self._quantizer = faiss.IndexFlatIP(centroids.shape[1])
        self._quantizer.add(self.centroids)
        self._order = np.zeros(0, dtype=np.int32)
        self._bounds = np.zeros(len(centroids) + 1, dtype=np.int64)
        self._added: dict[int, np.ndarray] = {}

    @property
    def lists(self) -> list[np.ndarray]:
        """Each list's positions."""
        return [self._list(i) for i in range(len(self.centroids))]

    def _list(self, i: int) -> np.ndarray:
        own = self._order[self._bounds[i] : self._bounds[i + 1]]
        added = self._added.get(i)
        return own if added is None else np.concatenate([own, added])

    def __getstate__(self) -> dict:  # saved without the FAISS quantizer, rebuilt from the centroids
        lists = self.lists
        bounds = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
        order = np.concatenate(lists).astype(np.int32) if lists else np.zeros(0, dtype=np.int32)
        return {"centroids": self.centroids, "nprobe": self.nprobe, "order": order, "bounds": bounds}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["centroids"], state["nprobe"])
        self._order, self._bounds = state["order"], state["bounds"]

    @classmethod
    def train(cls, sample: np.ndarray, nlist: int, nprobe: int) -> _IVF:
        """Coarse centroids by k-means on inner product (what FAISS's IVF training does)."""
        import faiss

        clustering = faiss.Clustering(sample.shape[1], nlist)
        clustering.niter = 10
        index = faiss.IndexFlatIP(sample.shape[1])
        clustering.train(np.ascontiguousarray(sample, dtype=np.float32), index)
        return cls(faiss.vector_to_array(clustering.centroids).reshape(nlist, sample.shape[1]), nprobe)

    def add(self, positions: np.ndarray, vecs: np.ndarray) -> None:
        """List rows at `positions` under their nearest centroid."""
        if not len(positions):
            return
        _, nearest = self._quantizer.search(np.ascontiguousarray(vecs, dtype=np.float32), 1)
        nearest = nearest[:, 0]
        order = np.argsort(nearest, kind="stable")
        bounds = np.searchsorted(nearest[order], np.arange(len(self.centroids) + 1))
        pos = np.asarray(positions, dtype=np.int32)[order]
        for i in np.flatnonzero(np.diff(bounds)).tolist():
            part = pos[bounds[i] : bounds[i + 1]]
            added = self._added.get(i)
            self._added[i] = part if added is None else np.concatenate([added, part])

    def probe(self, qv: np.ndarray) -> np.ndarray:
        """Positions listed under the `nprobe` centroids nearest `qv`."""
        sims = self.centroids @ qv
        k = min(self.nprobe, len(sims))
        best = np.argpartition(-sims, k - 1)[:k]
        return np.concatenate([self._list(i) for i in best.tolist()])


class _Centroids:
    """Entry centroids: a float32 arena, or for a large shard a FAISS flat index of 8-bit codes (a
    quarter of the memory, scanned as fast); exact scoring decodes the few candidate slots."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._f32: _Grow | None = _Grow((dim,), np.float32)
        self._sq = None

    @property
    def quantized(self) -> bool:
        return self._sq is not None

    def __getstate__(self) -> dict:  # the FAISS index is saved as its serialized bytes
        import faiss

        sq = faiss.serialize_index(self._sq) if self._sq is not None else None
        return {"dim": self.dim, "_f32": self._f32, "_sq": sq}

    def __setstate__(self, state: dict) -> None:
        import faiss

        self.__dict__.update(state)
        if state["_sq"] is not None:
            self._sq = faiss.deserialize_index(np.ascontiguousarray(state["_sq"]))

    def put(self, slot0: int, cents: np.ndarray) -> None:
        if self._sq is not None:
            if self._sq.ntotal != slot0:
                raise RuntimeError(f"centroid codes out of step: {self._sq.ntotal} stored, slot {slot0}")
            self._sq.add(np.ascontiguousarray(cents, dtype=np.float32))
        else:
            self._f32.ensure(slot0 + len(cents))
            self._f32.a[slot0 : slot0 + len(cents)] = cents

    def quantize(self, n: int, alive: np.ndarray) -> None:
        import faiss

        data = np.ascontiguousarray(self._f32.a[:n])
        index = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        index.train(data[alive] if alive.any() else data)
        index.add(data)
        self._sq, self._f32 = index, None

    def scores(self, slots: np.ndarray, qv: np.ndarray) -> np.ndarray:
        if self._sq is None:
            return self._f32.a[slots] @ qv
        if not len(slots):
            return np.zeros(0, dtype=np.float32)
        return self._sq.reconstruct_batch(np.asarray(slots, dtype=np.int64)) @ qv

    def best(self, qv: np.ndarray, k: int, alive: np.ndarray) -> np.ndarray:
        """Slots of the (up to) `k` live centroids nearest `qv`."""
        n = len(alive)
        k = min(k, n)
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        if self._sq is None:
            cent = self._f32.a[:n] @ qv
            cent[~alive] = -2.0
            best = np.argpartition(-cent, k - 1)[:k]
            return best[cent[best] > -2.0]
        import faiss

        bitmap = np.packbits(alive, bitorder="little")
        params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap)))
        _, ids = self._sq.search(np.ascontiguousarray(qv[None, :], dtype=np.float32), k, params=params)
        return ids[0][ids[0] >= 0]

    def keep(self, keep_ent: np.ndarray, n_ent: int) -> None:
        """Keep only the slots `keep_ent` (ascending), renumbered from 0."""
        if self._sq is None:
            self._f32.a = np.ascontiguousarray(self._f32.a[keep_ent])
            self._f32.ensure(256)
            return
        dead = np.setdiff1d(np.arange(n_ent), keep_ent)
        if len(dead):
            self._sq.remove_ids(dead.astype(np.int64))  # later codes move up, in order

    def fit(self, n: int) -> None:
        if self._f32 is not None:
            self._f32.fit(n)


class _Shard:
    """One municipality's rows (arena) and entries (centroids).

    The arena holds float32 vectors; a compact shard (`RetrievalSettings.compact_min_rows`) holds
    int8 codes with a per-row scale around the shard's mean vector instead (a quarter of the memory:
    2.5M rows of 384 dimensions are 3.8 GB in float32) and each row's product codes, which rank rows
    for a search; only the candidate rows are read and decoded for exact scoring."""

    def __init__(self, dim: int, settings: RetrievalSettings, directions: np.ndarray | None):
        self.settings = settings
        self.directions = directions
        self._vecs = _Grow((dim,), np.float32)
        self._scale: _Grow | None = None  # per-row scales once the arena is quantized
        self._mean: np.ndarray | None = None
        self._alive = _Grow((), bool)
        self._entry = _Grow((), np.int32)  # entry slot of each row
        self._kind = _Grow((), np.int8)
        self.n = 0
        self._cent = _Centroids(dim)
        self._ent_alive = _Grow((), bool)
        self.n_ent = 0
        self.stored: list[bytes | None] | _Packed = []  # each slot's entry, packed (None: removed)
        self.languages: list[frozenset[str]] = []  # each slot's languages (shared sets)
        self._language_sets: dict[frozenset[str], frozenset[str]] = {}
        self.entries: dict[str, int] = {}  # id -> slot
        # An entry's rows are contiguous (appended together; compaction keeps the order).
        self._first = _Grow((), np.int64)  # first row position of each slot
        self._count = _Grow((), np.int32)  # number of rows of each slot
        self.lex = LexicalIndex(Featurizer(settings.ngram_min, settings.ngram_max))
        self.ivf: _IVF | None = None
        # With the inverted lists: each row's product codes for their scan (`rowcodes`), and once
        # loaded from a snapshot, the saved arena read from its file.
        self.pq: ProductCodes | None = None
        self._codes: _Grow | None = None
        self._file: ArenaFile | None = None

    @property
    def quantized(self) -> bool:
        return self._scale is not None

    def __getstate__(self) -> dict:  # saved with its packed entries as one blob (`_Packed`)
        stored = self.stored if isinstance(self.stored, _Packed) else _Packed.of(self.stored)
        state = {**self.__dict__, "stored": stored, "_file": None}
        state.pop("_mapped", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        source = getattr(self._vecs, "source", None)  # set by `_SnapshotUnpickler` for a mapped arena
        if self.pq is not None and source is not None:
            self._file = ArenaFile(*source, rows=self.n, width=self._vecs.a.shape[1], dtype=self._vecs.a.dtype)

    def mapped(self) -> tuple[list[Region], int]:
        """(The saved index files this shard's arrays are mapped from, but an arena read by position,
        whose pages a search does not map; their bytes.) Found once: edits make new arrays in memory."""
        if getattr(self, "_mapped", None) is None:
            by_position = {r.address for r in regions(self._vecs)} if self._file is not None else set()
            found = [r for r in regions(self) if r.address not in by_position]
            self._mapped = (found, sum(r.length for r in found))
        return self._mapped

    @property
    def vecs(self) -> np.ndarray:
        """The arena's rows as float32 (decoded in full when quantized: for building, not searching)."""
        return self.decode(np.arange(self.n)) if self.quantized else self._vecs.a[: self.n]

    @property
    def alive(self) -> np.ndarray:
        return self._alive.a[: self.n]

    def _row_arrays(self) -> list[_Grow]:
        optional = [g for g in (self._scale, self._codes) if g is not None]
        return [self._vecs, self._alive, self._entry, self._kind, *optional]

    def _slot_arrays(self) -> list[_Grow]:
        return [self._ent_alive, self._first, self._count]

    def positions(self, slot: int) -> np.ndarray:
        """Row positions of the entry at `slot`."""
        first = int(self._first.a[slot])
        return np.arange(first, first + int(self._count.a[slot]))

    def _stored_rows(self, pos: np.ndarray) -> np.ndarray:
        """The arena's rows at `pos` as stored: from the saved file where it is read (rows saved),
        else from memory."""
        if self._file is None:
            return self._vecs.a[pos]
        pos = np.asarray(pos)
        saved = pos < self._file.rows
        if saved.all():
            return self._file.read(pos)
        out = np.empty((len(pos), self._vecs.a.shape[1]), dtype=self._vecs.a.dtype)
        out[saved] = self._file.read(pos[saved])
        out[~saved] = self._vecs.a[pos[~saved]]
        return out

    def decode(self, pos: np.ndarray) -> np.ndarray:
        """The float32 vectors of rows at `pos`."""
        if not self.quantized:
            return self._vecs.a[pos]
        return self._mean + self._stored_rows(pos).astype(np.float32) * self._scale.a[pos, None]

    def dense(self, pos: np.ndarray, qv: np.ndarray) -> np.ndarray:
        """Inner products of the rows at `pos` with `qv` (one vector, or a column each: (dim, k))."""
        if not self.quantized:
            return self._vecs.a[pos] @ qv
        scale = self._scale.a[pos] if qv.ndim == 1 else self._scale.a[pos, None]
        return self._mean @ qv + (self._stored_rows(pos).astype(np.float32) @ qv) * scale

    def quantize(self, block: int = 65536) -> None:
        """Store the arena as int8 codes around its mean (see the class docstring)."""
        if self.quantized or not self.n:
            return
        floats = self._vecs.a
        self._mean = floats[: self.n].mean(axis=0).astype(np.float32)
        self._vecs = _Grow(floats.shape[1:], np.int8, capacity=len(floats))
        self._scale = _Grow((), np.float32, capacity=len(floats))
        for a in range(0, self.n, block):
            b = min(a + block, self.n)
            self._vecs.a[a:b], self._scale.a[a:b] = _quantize(floats[a:b], self._mean)

    def _put(self, start: int, vecs: np.ndarray) -> None:
        if self.quantized:
            self._vecs.a[start : start + len(vecs)], self._scale.a[start : start + len(vecs)] = _quantize(
                vecs, self._mean
            )
        else:
            self._vecs.a[start : start + len(vecs)] = vecs

    def fit(self) -> None:
        """Give back the capacity a build left unused."""
        for g in self._row_arrays():
            g.fit(self.n)
        for g in self._slot_arrays():
            g.fit(self.n_ent)
        self._cent.fit(self.n_ent)

    def add_batch(
        self, entries: list[Entry], rows: list[list[Row]], vecs: list[np.ndarray], centroids: np.ndarray
    ) -> None:
        """Add entries (replacing any with the same id); `vecs` are projected arena rows."""
        for e in entries:
            self.remove(e.id, compact=False)
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        total = int(counts.sum())
        start, slot0 = self.n, self.n_ent
        for g in self._row_arrays():
            g.ensure(start + total)
        for g in self._slot_arrays():
            g.ensure(slot0 + len(entries))
        flat_vecs = np.concatenate(vecs) if total else None
        if total:
            self._put(start, flat_vecs)
            self._alive.a[start : start + total] = True
            self._entry.a[start : start + total] = np.repeat(np.arange(slot0, slot0 + len(entries)), counts)
            self._kind.a[start : start + total] = [_KIND_CODE[r.kind] for rs in rows for r in rs]
        self._cent.put(slot0, centroids)
        self._ent_alive.a[slot0 : slot0 + len(entries)] = True
        self.n += total
        self.n_ent += len(entries)
        self.stored.extend(_pack(e) for e in entries)
        for e in entries:
            langs = frozenset(e.answer) | frozenset(e.questions)
            self.languages.append(self._language_sets.setdefault(langs, langs))
        offsets = np.concatenate([[0], np.cumsum(counts)]) + start
        self._first.a[slot0 : slot0 + len(entries)] = offsets[:-1]
        self._count.a[slot0 : slot0 + len(entries)] = counts
        for i, e in enumerate(entries):
            self.entries[e.id] = slot0 + i
        # Lexical rows: question variants; answers only of entries that have no questions (typos
        # in a question are matched against questions; long answers would dominate the index).
        has_q = [any(r.kind == QUESTION for r in rs) for rs in rows]
        self.lex.append(
            [r.text if r.kind == QUESTION or not q else "" for rs, q in zip(rows, has_q, strict=True) for r in rs]
        )
        if self.pq is not None and total:
            if self.ivf is not None:
                self.ivf.add(np.arange(start, start + total), flat_vecs)
            self._codes.a[start : start + total] = self.pq.encode(flat_vecs - self._mean)

    def remove(self, entry_id: str, compact: bool = True) -> bool:
        slot = self.entries.pop(entry_id, None)
        if slot is None:
            return False
        pos = self.positions(slot)
        self._alive.a[pos] = False
        self._ent_alive.a[slot] = False
        self.stored[slot] = None
        self.lex.kill(pos)
        if compact and self.n > 1024 and (self.n - int(self.alive.sum())) > self.n // 4:
            self.compact()
        return True

    def compact(self) -> None:
        keep = np.flatnonzero(self.alive)
        keep_ent = np.flatnonzero(self._ent_alive.a[: self.n_ent])
        ent_remap = np.full(max(self.n_ent, 1), -1, dtype=np.int32)
        ent_remap[keep_ent] = np.arange(len(keep_ent))
        for g in self._row_arrays():
            g.a = np.ascontiguousarray(g.a[keep])
            g.ensure(256)
        self._entry.a[: len(keep)] = ent_remap[self._entry.a[: len(keep)]]
        for g in self._slot_arrays():
            g.a = np.ascontiguousarray(g.a[keep_ent])
            g.ensure(256)
        self._cent.keep(keep_ent, self.n_ent)
        counts = self._count.a[: len(keep_ent)]
        self._first.a[: len(keep_ent)] = np.cumsum(counts) - counts
        self.n, self.n_ent = len(keep), len(keep_ent)
        self.stored = [self.stored[i] for i in keep_ent]
        self.languages = [self.languages[i] for i in keep_ent]
        self.lex.compact(keep)
        self.entries = {eid: int(ent_remap[s]) for eid, s in self.entries.items()}
        self._file = None  # positions moved: the saved file no longer matches
        if self.pq is not None:
            self.build_codes(self.pq)
        _release_freed_memory()

    def build_codes(self, codebooks: ProductCodes | None = None, block: int = 65536) -> None:
        """A compact shard's row codes, and from `ivf_min_rows` live rows its inverted lists (see
        `RetrievalSettings.compact_min_rows`); the arena is quantized first. `codebooks`: product
        codebooks to encode with (another municipality's: rows around their shard's mean are alike
        across municipalities, and training them takes ~3 s a shard), else trained here."""
        self.quantize()
        live = np.flatnonzero(self.alive)
        nlist = int(min(4096, max(16, 2 * np.sqrt(len(live)))))
        sample = np.sort(np.random.default_rng(0).choice(len(live), min(len(live), 40 * nlist), replace=False))
        train = self.decode(live[sample])
        ivf = _IVF.train(train, nlist, self.settings.ivf_nprobe) if len(live) >= self.settings.ivf_min_rows else None
        pq = codebooks or ProductCodes.train(train - self._mean)
        codes = _Grow((pq.width,), np.uint8, capacity=len(self._vecs.a))
        for a in range(0, len(live), block):
            part = self.decode(live[a : a + block])
            if ivf is not None:
                ivf.add(live[a : a + block], part)
            codes.a[live[a : a + block]] = pq.encode(part - self._mean)
        self.ivf, self.pq, self._codes = ivf, pq, codes
        if not self._cent.quantized:
            self._cent.quantize(self.n_ent, self._ent_alive.a[: self.n_ent])

    def _dense_candidates(self, qv: np.ndarray, k: int) -> np.ndarray:
        """Positions of the (up to) `k` live rows nearest `qv`: inverted lists (rows ranked by their
        product codes, a shortlist by exact scores), every row by its codes, or a scan."""
        if self.pq is not None:
            pos = self.ivf.probe(qv) if self.ivf is not None else np.arange(self.n)
            pos = pos[self._alive.a[pos]]
            short = min(k * SHORTLIST, len(pos))
            if short < len(pos):
                approx = self.pq.scores(self._codes.a[pos], self.pq.table(qv))
                pos = pos[np.argpartition(-approx, short - 1)[:short]]
            scores = self.dense(pos, qv)
        else:
            pos = np.flatnonzero(self.alive) if self.quantized else np.arange(self.n)
            scores = self.dense(pos, qv) if self.quantized else self.vecs @ qv
            if not self.quantized:
                scores[~self.alive] = -2.0
        k = min(k, len(pos))
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        best = np.argpartition(-scores, k - 1)[:k]
        return pos[best[scores[best] > -2.0]]

    def questions_per_entry(self) -> float:
        """Question rows per live entry: how many wordings the knowledge base already has (kept
        until rows are added; a removal changes it little)."""
        key = (self.n, self.n_ent)
        if getattr(self, "_qpe", (None, 0.0))[0] != key:
            alive = self.alive
            questions = int(np.count_nonzero(self._kind.a[: self.n][alive] == _KIND_CODE[QUESTION]))
            self._qpe = (key, questions / max(int(np.count_nonzero(self._ent_alive.a[: self.n_ent])), 1))
        return self._qpe[1]

    def candidate_slots(self, qv: np.ndarray, lex_query, s: RetrievalSettings) -> np.ndarray:
        """Entry slots worth scoring exactly: best rows (dense, lexical) and best centroids
        (`lex_query` None: dense and centroids only, for a second vector of the same message)."""
        if self.n_ent == 0:
            return np.zeros(0, dtype=np.int64)
        parts = []
        if self.n:
            parts.append(self._entry.a[self._dense_candidates(qv, s.dense_candidates)])
            if s.lexical_candidates and lex_query is not None:
                # A large shard's lexical candidates come from its rarest n-grams' rows only.
                budget = LEXICAL_BUDGET if self.n >= s.ivf_min_rows else None
                parts.append(self._entry.a[self.lex.top(lex_query, s.lexical_candidates, self.alive, budget)])
        parts.append(self._cent.best(qv, s.centroid_candidates, self._ent_alive.a[: self.n_ent]))
        slots = np.unique(np.concatenate(parts))
        return slots[self._ent_alive.a[slots]]


def _pack(entry: Entry) -> bytes:
    """An entry as a shard keeps it: pickled and compressed, a third of its size as Python objects
    (100k entries: 450 MB). Only the few entries a search returns are unpacked."""
    return zlib.compress(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL), 1)


def _unpack(stored: bytes) -> Entry:
    return pickle.loads(zlib.decompress(stored))  # noqa: S301 (packed by this process)


class _Entries(Sequence[Entry]):
    """Packed entries read as a sequence: unpacked one by one as they are read."""

    def __init__(self, stored: Sequence[bytes | None], slots: Sequence[int] | None = None) -> None:
        self._stored = stored
        self._slots = range(len(stored)) if slots is None else slots

    def __len__(self) -> int:
        return len(self._slots)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [_unpack(self._stored[j]) for j in self._slots[i]]
        return _unpack(self._stored[self._slots[i]])


class _Packed(Sequence):
    """A shard's packed entries by slot (None: removed), saved as one blob with offsets.

    `Retriever.load` maps the blob (100k entries: 184 MB that each worker held as bytes objects;
    a search reads only the few entries it returns). Slots changed or added since live beside it."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self._blob, self._offsets = blob, offsets
        self._base = len(offsets) - 1
        self._changed: dict[int, bytes | None] = {}
        self._tail: list[bytes | None] = []

    @classmethod
    def of(cls, items: Iterable[bytes | None]) -> _Packed:
        items = list(items)
        sizes = np.array([len(b) if b is not None else -1 for b in items], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(np.maximum(sizes, 0))]).astype(np.int64)
        packed = cls(np.frombuffer(b"".join(b for b in items if b is not None), dtype=np.uint8), offsets)
        packed._changed = {i: None for i in np.flatnonzero(sizes < 0).tolist()}  # removed: no bytes
        return packed

    def __len__(self) -> int:
        return self._base + len(self._tail)

    def __getitem__(self, i: int) -> bytes | None:
        if i < 0:
            i += len(self)
        if i >= self._base:
            return self._tail[i - self._base]
        if i in self._changed:
            return self._changed[i]
        return self._blob[self._offsets[i] : self._offsets[i + 1]].tobytes()

    def __setitem__(self, i: int, value: bytes | None) -> None:
        if i >= self._base:
            self._tail[i - self._base] = value
        else:
            self._changed[i] = value

    def extend(self, items: Iterable[bytes | None]) -> None:
        self._tail.extend(items)

    def __getstate__(self) -> dict:  # saved again as one blob: what changed is folded in
        merged = _Packed.of(self) if self._changed or self._tail else self
        return {"blob": merged._blob, "offsets": merged._offsets, "changed": merged._changed}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["blob"], state["offsets"])
        self._changed = dict(state["changed"])


def _release_freed_memory() -> None:
    """Give the heap a build freed back to the OS: glibc keeps it (at 10k entries, 200 MB of a
    build's temporary arrays and objects stayed resident in the process)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _row(entry: Entry, settings: RetrievalSettings, kinds: np.ndarray, i: int) -> Row:
    """The `i`-th of an entry's rows in its shard, whose kinds are `kinds` (rebuilt from the entry)."""
    rows = arena_rows(entry, settings, sentences=bool((kinds == _KIND_CODE[CHUNK]).any()))
    return rows[i] if i < len(rows) else Row("", _KIND_NAME[int(kinds[i])], "")  # settings changed since


def _sentence_blend(d: np.ndarray, is_sentence: np.ndarray, starts: np.ndarray, blend: float) -> np.ndarray:
    """Per entry: its best question or whole-answer row, moved `blend` of the way towards its best
    sentence row when that is higher (1: plain max-sim over all rows; 0: sentences ignored).

    A question that one sentence of a long answer answers needs the sentence; a sentence that
    merely shares a phrase with the question is noise, which the whole answer does not have.
    """
    whole = np.maximum.reduceat(np.where(is_sentence, -2.0, d), starts)
    best = np.maximum.reduceat(d, starts)
    whole = np.where(whole <= -2.0, best, whole)
    return whole + blend * (best - whole)


def _entry_dense(
    d: np.ndarray, kind: np.ndarray, starts: np.ndarray, has_rows: np.ndarray, cent: np.ndarray, blend: float
) -> np.ndarray:
    """Per entry its dense signal (`_sentence_blend` of its rows' cosines `d`; the centroid's
    cosine for an entry with no rows)."""
    d_max = np.full(len(has_rows), -1.0)
    if len(d):
        d_max[has_rows] = _sentence_blend(d, kind == _KIND_CODE[CHUNK], starts[has_rows], blend)
    return np.where(has_rows, d_max, cent)


LEAD_FIELD = 20  # the runners-up a score is compared with


def _lead(ranked: np.ndarray) -> np.ndarray | None:
    """Scores (best first) in standard deviations above the mean of the runners-up (ranks 2-20).

    Every cosine runs lower across languages, against answers only or with one question per entry;
    how far the best stands out from the field does not (None when there are fewer than 3 entries).
    """
    field = ranked[1:LEAD_FIELD]
    if len(field) < 2:
        return None
    return (ranked - field.mean()) / max(float(field.std()), 1e-3)


def model_id(embedder) -> str:
    """Identifies the model in cache keys: its build stamp when there is one, else its path/type."""
    explicit = getattr(embedder, "model_id", None)
    if explicit:
        return str(explicit)
    path = getattr(embedder, "path", None)
    if path is not None:
        for name in ("kommunchatt-build.json", "config.json"):
            f = Path(path) / name
            if f.exists():
                return f"{Path(path).name}:{hashlib.sha1(f.read_bytes()).hexdigest()[:16]}"
        return str(path)
    return type(embedder).__name__


SNAPSHOT_FORMAT = 2  # 2: a compact shard's product codes, inverted lists as one array
# Arrays from this size are saved as files of their own and memory-mapped: a shared contact centre's
# 100 municipalities had ~4.6 MB of smaller arrays each in the pickle, copied into every worker.
_MAPPED_BYTES = 1 << 16


class _SnapshotPickler(pickle.Pickler):
    """Pickles an index with its large arrays as .npy files beside it (see `Retriever.save`)."""

    def __init__(self, file, arrays: Path) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.arrays = arrays
        self.count = 0

    def persistent_id(self, obj):
        if isinstance(obj, _Grow) and obj.a.nbytes >= _MAPPED_BYTES:
            # Room for a sixteenth more rows (zeros, sparse in the file): an edit appends into private
            # copies of the pages it touches instead of copying the whole arena.
            return ("grow", self._save(obj.a, spare=max(256, len(obj.a) // 16)))
        if isinstance(obj, np.ndarray) and obj.ndim and obj.nbytes >= _MAPPED_BYTES and obj.dtype != object:
            return ("array", self._save(obj))
        return None

    def _save(self, a: np.ndarray, spare: int = 0) -> str:
        name = f"{self.count}.npy"
        self.count += 1
        shape = (len(a) + spare, *a.shape[1:])
        out = np.lib.format.open_memmap(self.arrays / name, mode="w+", dtype=a.dtype, shape=shape)
        out[: len(a)] = a
        out.flush()
        del out
        return name


class _SnapshotUnpickler(pickle.Unpickler):
    def __init__(self, file, arrays: Path) -> None:
        super().__init__(file)
        self.arrays = arrays

    def persistent_load(self, pid):
        kind, name = pid
        # Copy-on-write: pages are shared with every process that maps the file until one writes.
        # A plain ndarray over the mapping: np.memmap's Python-level indexing cost ~30 us a call,
        # ~5 ms a search at 100k entries.
        mapped = np.load(self.arrays / name, mmap_mode="c")
        a = mapped.view(np.ndarray)
        if kind == "grow":
            grow = _Grow.__new__(_Grow)
            grow.a = a
            grow.source = (str(mapped.filename), int(mapped.offset))  # for `ArenaFile`
            return grow
        return a


class Retriever:
    """Search entries of one municipality by meaning and by spelling."""

    def __init__(
        self, embedder: EmbedderLike, cache_dir: Path | None = None, settings: RetrievalSettings | None = None
    ):
        self.embedder = embedder
        self.settings = settings or load_retrieval_settings()
        self.cache = VectorCache(cache_dir, model_id(embedder))
        self.dim: int | None = None
        self.directions: np.ndarray | None = None
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.RLock()
        self.vocabulary: dict[str, set[str]] = defaultdict(set)
        # The lightest tokenizer the embedder has (its live-query one, not the transformers one).
        tokenizer = getattr(embedder, "vocabulary_tokenizer", None) or getattr(embedder, "tokenizer", None)
        self.lexicon = tokenizer_lexicon(tokenizer)
        self.speller = self._new_speller()
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_lock = threading.Lock()
        self._memory: tuple[bridge.TranslationMemory | None] | None = None  # resolved once
        self._lenders: OrderedDict[tuple[int, bytes], tuple[int, float]] = OrderedDict()  # `_lender`
        self._hot = HotShards.from_env()  # whose mapped index pages stay resident (`residency`)

    # -- building -------------------------------------------------------------------------------

    def _vectors(self, rows: list[Row]) -> np.ndarray:
        """Row vectors (unprojected) from the cache, encoding only the missing ones."""
        if not rows:
            return np.zeros((0, self.dim or 384), dtype=np.float32)
        keys = [self.cache.key(self._prompt(r), r.text) for r in rows]
        found, cached = self.cache.lookup(keys)
        parts: list[tuple[np.ndarray, np.ndarray]] = [(np.flatnonzero(found), cached)] if found.any() else []
        for prompt in ("query", "passage"):
            todo = [i for i, r in enumerate(rows) if not found[i] and self._prompt(r) == prompt]
            if not todo:
                continue
            texts = [rows[i].text for i in todo]
            enc = self.embedder.encode_queries if prompt == "query" else self.embedder.encode_passages
            vecs = np.asarray(enc(texts), dtype=np.float32)
            parts.append((np.asarray(todo), vecs))
            self.cache.put([keys[i] for i in todo], vecs)
        mat = np.empty((len(rows), parts[0][1].shape[1]), dtype=np.float32)
        for where, vecs in parts:
            mat[where] = vecs
        self.dim = mat.shape[1]
        return mat

    def _new_speller(self) -> SpellCorrector:
        s = self.settings
        return SpellCorrector(s.spell_min_len, s.spell_long_len, s.spell_very_long_len, lexicon=self.lexicon)

    def _prompt(self, row: Row) -> str:
        return self.settings.question_prompt if row.kind == QUESTION else "passage"

    def _learn(self, entry: Entry, vocabulary: dict[str, set[str]], speller: SpellCorrector) -> None:
        for lang, qs in entry.questions.items():
            for q in qs:
                vocabulary[lang].update(words(q))
                speller.learn(q)
        for lang, text in entry.answer.items():
            vocabulary[lang].update(words(text))
            speller.learn(text)

    def _prepare(self, entries: list[Entry], all_rows: list[list[Row]], vecs: np.ndarray):
        """Per entry: the arena rows, their projected vectors, and the entry centroid."""
        proj = project(vecs, self.directions) if len(vecs) else vecs
        arena_rows, arena_vecs, cents = [], [], np.zeros((len(entries), proj.shape[1]), dtype=np.float32)
        start = 0
        for i, rows in enumerate(all_rows):
            block = proj[start : start + len(rows)]
            start += len(rows)
            mode = self.settings.chunk_rows
            chunks = mode == "always" or (mode == "answer-only" and not entries[i].questions)
            keep = [j for j, r in enumerate(rows) if r.kind != CHUNK or chunks]
            arena_rows.append([rows[j] for j in keep])
            arena_vecs.append(block[keep])
            if len(block):
                cents[i] = block.mean(0)
        return arena_rows, arena_vecs, _normalize(cents)

    def _directions(self, entries: list[Entry]) -> np.ndarray | None:
        """Language directions from (up to 2000 of) the entries that have three or more languages."""
        s = self.settings
        if s.language_directions <= 0:
            return None
        multi = [e for e in entries if len(set(e.questions) | set(e.answer)) >= 3][:2000]
        if len(multi) < s.language_min_entries:
            return None
        all_rows = [entry_rows(e, s) for e in multi]
        flat = [r for rows in all_rows for r in rows]
        owner = np.repeat(np.arange(len(multi)), [len(r) for r in all_rows])
        return language_directions(self._vectors(flat), flat, owner, s.language_directions, s.language_min_entries)

    def rebuild(self, entries: Iterable[Entry], batch: int = 4096) -> None:
        """Replace the whole index (vectors come from the cache when the texts are unchanged).

        Entries are added in batches so a large knowledge base never holds every sentence vector
        at once (only question and answer rows stay in the arena).
        """
        s = self.settings
        compact_from = min(s.compact_min_rows, s.ivf_min_rows)
        entries = list(entries)
        self.directions = directions = self._directions(entries)
        vocabulary: dict[str, set[str]] = defaultdict(set)
        speller = self._new_speller()
        by_shard: dict[str, list[Entry]] = defaultdict(list)
        for e in entries:
            self._learn(e, vocabulary, speller)
            by_shard[e.municipality].append(e)
        shards: dict[str, _Shard] = {}
        codebooks = None  # trained for the first compact shard, shared by the rest (`build_codes`)
        keys: list[np.ndarray] = []  # the texts indexed, for compacting the cache
        for municipality, ents in by_shard.items():
            shard = None
            for a in range(0, len(ents), batch):
                part = ents[a : a + batch]
                all_rows = [entry_rows(e, s) for e in part]
                flat = [r for rows in all_rows for r in rows]
                vecs = self._vectors(flat)
                if self.cache.dir:
                    keys.append(np.array([self.cache.key(self._prompt(r), r.text) for r in flat], dtype=_KEY))
                if shard is None:
                    shard = shards[municipality] = _Shard(vecs.shape[1], s, directions)
                shard.add_batch(part, *self._prepare(part, all_rows, vecs))
                if shard.n >= compact_from:
                    shard.quantize()  # the rest of the rows arrive as int8 codes
            if shard is not None:
                shard.lex.merge()  # all rows into the inverted view: no tail to scan
                if shard.n >= compact_from:
                    shard.build_codes(codebooks)
                    codebooks = shard.pq
                shard.fit()
        with self._lock:
            self._shards = shards
            self.vocabulary = vocabulary
            self.speller = speller
        if self.cache.dir:
            self.cache.compact(np.concatenate(keys) if keys else np.zeros(0, dtype=_KEY))
        _release_freed_memory()

    # -- saving and loading -------------------------------------------------------------------

    def _fingerprint(self) -> dict:
        return {"format": SNAPSHOT_FORMAT, "model": self.cache.model_id, "settings": repr(self.settings)}

    def save(self, directory: Path, extra: dict | None = None, meta: dict | None = None, adopt: bool = True) -> None:
        """Write the index to `directory` (replacing what is there) so a worker can start from it.

        The large arrays (int8 arena, the lexical index's matrices, row and slot arrays) are .npy
        files beside a pickle of the rest; `load` memory-maps them copy-on-write, so every worker
        on the machine shares one copy of their pages and a start reads no vectors. With `adopt`,
        this index then runs on the mapped files too (its own copies are freed). `extra` is saved
        with it (the service's versions and audit watermark). Call with no index change running
        (the service holds its lock); searches may go on.
        """
        directory = Path(directory)
        for stale in [
            *directory.parent.glob(f"{directory.name}.tmp-*"),
            *directory.parent.glob(f"{directory.name}.old-*"),
        ]:
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:  # left by a worker killed while saving
                    shutil.rmtree(stale, ignore_errors=True)
        tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}-{time.time_ns()}")
        (tmp / "arrays").mkdir(parents=True)
        with self._lock:
            shards = dict(self._shards)
            for shard in shards.values():
                shard.lex.merge()
                shard.lex.prepare()  # the inverted view is saved too: a search builds nothing
        state = {
            **self._fingerprint(),
            "dim": self.dim,
            "directions": self.directions,
            "shards": shards,
            "vocabulary": self.vocabulary,
            "speller": self.speller,
            "extra": extra or {},
        }
        try:
            with open(tmp / "index.pickle", "wb") as f:
                _SnapshotPickler(f, tmp / "arrays").dump(state)
            (tmp / "meta.json").write_text(json.dumps(meta or {}))
            old = directory.with_name(f"{directory.name}.old-{os.getpid()}-{time.time_ns()}")
            if directory.exists():
                os.replace(directory, old)  # a worker that mapped it keeps reading its files
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if adopt:
            self.load(directory)

    def load(self, directory: Path) -> dict | None:
        """Replace the index with the one saved in `directory`; its `extra`, or None (and the index
        unchanged) when there is none or it was saved by another model, settings or format."""
        path = Path(directory) / "index.pickle"
        try:
            with open(path, "rb") as f:
                state = _SnapshotUnpickler(f, path.parent / "arrays").load()
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError, ImportError):
            return None
        if {k: state.get(k) for k in self._fingerprint()} != self._fingerprint():
            return None
        state["speller"].lexicon = self.lexicon
        for shard in state["shards"].values():
            shard.settings = self.settings
        with self._lock:
            self.dim, self.directions = state["dim"], state["directions"]
            self._shards = state["shards"]
            self.vocabulary, self.speller = state["vocabulary"], state["speller"]
        _release_freed_memory()
        return state["extra"]

    def sibling(self) -> Retriever:
        """An empty retriever with this one's embedder, settings, vector cache and lexicon: to load
        or build an index aside, then `adopt` it."""
        other = Retriever.__new__(Retriever)
        other.__dict__.update(self.__dict__)
        other._shards, other.vocabulary = {}, defaultdict(set)
        other._lock, other._query_lock, other._queries = threading.RLock(), threading.Lock(), OrderedDict()
        other._hot = HotShards(self._hot.budget)
        return other

    def adopt(self, other: Retriever) -> None:
        """Take over `other`'s index: searches switch to it at once."""
        with self._lock:
            self.dim, self.directions, self._shards = other.dim, other.directions, other._shards
            self.vocabulary, self.speller = other.vocabulary, other.speller
        _release_freed_memory()

    def upsert(self, entry: Entry) -> None:
        """Add or replace one entry; only its own texts are encoded."""
        self.apply([entry], [])

    def apply(
        self,
        upserts: list[Entry],
        removes: Iterable[tuple[str, str]] = (),
        progress: Callable[[list[Entry]], None] | None = None,
        answerable: Callable[[], None] | None = None,
        batch_texts: int = 64,
        two_pass_from: int = 17,
    ) -> None:
        """Remove entries (municipality, id), then add or replace `upserts`, encoded in batches.

        Removals come first and take effect at once: a deleted entry never waits behind minutes of
        encoding. Upserts are encoded about `batch_texts` texts at a time outside the index lock
        (queries keep being answered; unchanged texts come from the vector cache); each batch is
        answerable as soon as it is encoded and `progress(part)` is told which entries just became
        live. A large change (from `two_pass_from` entries: an import) goes in two passes: questions
        and whole answers first, which makes every entry answerable in about half the time, then
        the answers' sentences (centroid, and rows of answer-only entries), which refine it;
        `answerable()` is called between the two.
        """
        with self._lock:
            for municipality, entry_id in removes:
                shard = self._shards.get(municipality)
                if shard is not None:
                    shard.remove(entry_id)
        if not upserts:
            if answerable:
                answerable()
            return
        two_pass = len(upserts) >= two_pass_from
        bulk = getattr(self.embedder, "bulk", None)
        with bulk() if bulk and two_pass else contextlib.nullcontext():
            for part, rows in self._batches(upserts, batch_texts, sentences=not two_pass):
                self._add(part, rows)
                if progress:
                    progress(part)
            if answerable:
                answerable()
            if two_pass:
                for part, rows in self._batches(upserts, batch_texts, sentences=True):
                    if any(r.kind == CHUNK for rs in rows for r in rs):
                        self._add(part, rows, learn=False)

    def _batches(self, entries: list[Entry], batch_texts: int, sentences: bool):
        """(entries of one municipality, their rows) in groups of about `batch_texts` rows.

        Entries go by the length of their longest text: a batch is encoded padded to its longest
        text, and 32 answers of an FAQ page taken as they come (30 to 300 tokens) were three times
        the tokens of the answers themselves (1,000 SweFAQ answers: 293k against 99k)."""
        part: list[Entry] = []
        rows: list[list[Row]] = []
        for e in sorted(entries, key=lambda e: (e.municipality, _longest_text(e))):
            if part and (e.municipality != part[0].municipality or sum(map(len, rows)) >= batch_texts):
                yield part, rows
                part, rows = [], []
            part.append(e)
            rows.append([r for r in entry_rows(e, self.settings) if sentences or r.kind != CHUNK])
        if part:
            yield part, rows

    def _add(self, part: list[Entry], all_rows: list[list[Row]], learn: bool = True) -> None:
        """Encode and add entries of one municipality (replacing older versions); `learn` their
        words for spelling correction (once per version)."""
        vecs = self._vectors([r for rows in all_rows for r in rows])
        arena_rows, arena_vecs, cents = self._prepare(part, all_rows, vecs)
        municipality = part[0].municipality
        with self._lock:
            shard = self._shards.get(municipality)
            if shard is None:
                shard = self._shards[municipality] = _Shard(vecs.shape[1], self.settings, self.directions)
            shard.add_batch(part, arena_rows, arena_vecs, cents)
            for e in part if learn else ():
                self._learn(e, self.vocabulary, self.speller)

    def remove(self, municipality: str, entry_id: str) -> bool:
        with self._lock:
            shard = self._shards.get(municipality)
            return bool(shard and shard.remove(entry_id))

    def __len__(self) -> int:
        return sum(len(s.entries) for s in self._shards.values())

    def entries(self, municipality: str = DEFAULT_MUNICIPALITY) -> Sequence[Entry]:
        """The indexed entries (unpacked as they are read: counting them is free)."""
        shard = self._shards.get(municipality)
        return _Entries(shard.stored, sorted(shard.entries.values())) if shard else _Entries([])

    # -- searching ------------------------------------------------------------------------------

    def query_text(self, text: str, language: str | None = None) -> str:
        """The text to encode: misspelt words mapped onto the knowledge base's vocabulary."""
        s = self.settings
        if not s.spell_correct or (language is not None and language not in self.vocabulary):
            return text
        return self.speller.correct(text, language or "sv")[0]

    def encode_query(self, text: str) -> np.ndarray:
        """The query's (unprojected) vector; recent queries are kept (buttons, repeated questions)."""
        with self._query_lock:
            hit = self._queries.get(text)
            if hit is not None:
                self._queries.move_to_end(text)
                return hit
        one = getattr(self.embedder, "encode_query", None)
        vec = np.asarray(one(text) if one else self.embedder.encode_queries([text])[0], dtype=np.float32)
        with self._query_lock:
            self._queries[text] = vec
            while len(self._queries) > self.settings.query_cache_size:
                self._queries.popitem(last=False)
        return vec

    def translation_memory(self) -> bridge.TranslationMemory | None:
        """The process's translation memory (`knowledge/bridge.py`), or None when the bridge is off."""
        if not self.settings.bridge:
            return None
        if self._memory is None:

            def encode(texts: list[tuple[str, str]]) -> np.ndarray:
                return self._memory_vectors([Row(text, QUESTION, lang) for lang, text in texts])

            self._memory = (bridge.shared(self.cache.model_id, encode),)
        return self._memory[0]

    def _memory_vectors(self, rows: list[Row]) -> np.ndarray:
        """Vectors of the memory's texts, from the vector cache beside the model folder."""
        where = bridge.cache_location(self.embedder, self.cache.dir.parent if self.cache.dir else None)
        encoder = Retriever(self.embedder, cache_dir=where, settings=self.settings)  # its vector cache
        share_cached(self.cache, encoder.cache, [self.cache.key(self._prompt(r), r.text) for r in rows])
        return encoder._vectors(rows)

    def _memory_answers(self, memory: bridge.TranslationMemory) -> np.ndarray:
        """Unit vectors of the memory entries' answers in bridge_language (zero: none), kept on the memory."""
        if memory.answer_vectors is None:
            lang = self.settings.bridge_language
            texts = [a.get(lang, "").strip() for a in memory.answers]
            vecs = np.zeros((len(texts), self.dim or 384), dtype=np.float32)
            have = [i for i, t in enumerate(texts) if t]
            if have:
                vecs[have] = _normalize(self._memory_vectors([Row(texts[i], ANSWER, lang) for i in have]))
            memory.answer_vectors = vecs
        return memory.answer_vectors

    def _lender(self, blob: bytes, memory: bridge.TranslationMemory) -> tuple[int, float]:
        """(the memory entry closest to the entry `blob`, how close: `borrow_*`), or (-1, -2.0);
        kept per entry text, since an entry's own vectors never change."""
        key = (id(memory), hashlib.sha1(blob).digest())
        hit = self._lenders.get(key)
        if hit is not None:
            return hit
        s, entry = self.settings, _unpack(blob)
        lang = s.bridge_language
        questions = [q.strip() for q in entry.questions.get(lang, []) if q.strip()]
        answer = entry.answer.get(lang, "").strip()
        rows = memory.rows.get(lang)
        found = (-1, -2.0)
        if questions and answer and rows is not None:
            vecs = _normalize(self._vectors([Row(q, QUESTION, lang) for q in questions] + [Row(answer, ANSWER, lang)]))
            q = np.max([memory.nearest(v, lang) for v in vecs[:-1]], axis=0)
            answers = self._memory_answers(memory)
            both = (q > -2.0) & answers.any(1)
            w = s.borrow_answer_weight
            close = np.where(both, (1 - w) * q + w * (answers @ vecs[-1]), -2.0)
            best = int(np.argmax(close))
            found = (best, float(close[best])) if both.any() else found
        self._lenders[key] = found
        while len(self._lenders) > BORROW_CACHE:
            self._lenders.popitem(last=False)
        return found

    def _borrowed(
        self, raw_qv: np.ndarray, language: str | None, shard: _Shard, slots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Per slot: the cosine of the message to the questions it borrows (in the message's
        language, where the memory has it) and to their centroid, NaN for none; and the lending
        memory entry (-1). None when nothing is borrowed (see the `borrow_*` settings)."""
        s = self.settings
        if not (s.bridge and s.borrow) or not len(slots) or shard.questions_per_entry() >= s.paraphrase_max_questions:
            return None
        memory = self.translation_memory()
        if memory is None:
            return None
        near = memory.nearest(raw_qv, language)
        floor = -2.0
        if s.borrow_neighbours:  # only the memory entries nearest the message lend, and only when
            ranked = np.sort(near)  # they stand out from the rest (not a word that several intents share)
            if ranked[-s.borrow_neighbours] - ranked[-s.borrow_neighbours - 1] < s.borrow_gap:
                return None  # decided by the message alone: no entry's lender is looked up
            floor = ranked[-s.borrow_neighbours]
        lent = np.array([self._lender(shard.stored[i], memory) for i in slots], dtype=np.float64).reshape(-1, 2)
        lender, closeness = lent[:, 0].astype(np.int64), lent[:, 1]
        ok = (lender >= 0) & (closeness >= s.borrow_min_similarity) & (near[np.maximum(lender, 0)] >= floor)
        for m in np.unique(lender[ok]):  # a memory entry lends to the closest entry only
            rivals = np.flatnonzero(ok & (lender == m))
            ok[rivals[rivals != rivals[np.argmax(closeness[rivals])]]] = False
        if not ok.any():
            return None
        lender = np.where(ok, lender, -1)
        lang = language if language in memory.centroids else s.bridge_language
        cents = memory.centroids[lang][0] @ _normalize(np.asarray(raw_qv, dtype=np.float32)[None])[0]
        dense = np.where(ok, near[np.maximum(lender, 0)], np.nan)
        cent = np.where(ok, cents[np.maximum(lender, 0)], np.nan)
        return dense, cent, lender

    def warm_memory(self) -> None:
        """Build the translation memory and, when entries borrow from it, its answers' vectors now
        (seconds on a first start) rather than at a citizen's first message."""
        memory = self.translation_memory()
        if memory is not None and self.settings.borrow:
            self._memory_answers(memory)

    def use_memory(self, memory: bridge.TranslationMemory | None) -> None:
        """Serve with `memory` instead of the product's (benches: a memory lacking some intents)."""
        self._memory = (memory,)

    def _pivot(
        self, raw_qv: np.ndarray, language: str | None, shard: _Shard, slots: np.ndarray
    ) -> tuple[bridge.Pivot, bool] | None:
        """(the message's pivot, whether it is a paraphrase) or None.

        Where the knowledge base has no text in the message's language, the pivot carries it over
        to `bridge_language` when some candidate entry has text in that (a bridge; where the
        knowledge base has text in the message's language, pivot scores of the other entries, on a
        same-language scale, would crowd out the entries written in it). Where it has, the pivot is
        a paraphrase in the message's own language (`paraphrase`): a citizen's wording and the
        municipality's differ, and the memory knows the usual wordings of a municipal question; a
        knowledge base with many wordings per entry has them already, and the memory's would only
        lend its unanswerable neighbours their confidence."""
        s = self.settings
        if not s.bridge or language is None:
            return None
        if any(language in langs for langs in shard._language_sets):
            if not s.paraphrase or shard.questions_per_entry() >= s.paraphrase_max_questions:
                return None
            target, min_similarity = language, s.paraphrase_min_similarity
        elif language == s.bridge_language or not any(s.bridge_language in shard.languages[i] for i in slots):
            return None
        else:
            target, min_similarity = s.bridge_language, s.bridge_min_similarity
        memory = self.translation_memory()  # only here: a search that needs none never builds it
        pivot = None if memory is None else memory.pivot(raw_qv, language, s, target, min_similarity)
        return None if pivot is None else (pivot, target == language)

    def _keep_resident(self, municipality: str, shard: _Shard) -> None:
        """Count `shard` as searched; the mapped pages of shards that fell out of the hot set
        (`residency.HotShards`) are given back by a thread of their own, beside the next query's
        encoding rather than in this answer's time (~2.6 ms a 10k-entry shard)."""
        found, size = shard.mapped()
        if found and (cold := self._hot.touch(municipality, shard, size)):
            releaser().submit(self._release, cold)

    def _release(self, cold: list[tuple[str, _Shard]]) -> None:
        with self._lock:  # no edit writes a mapping meanwhile
            for municipality, shard in cold:
                if not self._hot.holds(municipality, shard):  # not searched again since
                    release(shard.mapped()[0])

    def search(
        self, text: str, municipality: str = DEFAULT_MUNICIPALITY, language: str | None = None, top_k: int = 5
    ) -> list[Candidate]:
        """Best entries for `text`, best first, with fused score and the signals behind it."""
        s = self.settings
        query = self.query_text(text, language)
        raw_qv = self.encode_query(query)
        with self._lock:
            shard = self._shards.get(municipality)
            if shard is None or not shard.entries:
                return []
            self._keep_resident(municipality, shard)
            qv = project(raw_qv, shard.directions)
            lq = shard.lex.query(query)
            slots = shard.candidate_slots(qv, lq, s)
            pivot = self._pivot(raw_qv, language, shard, slots)
            if pivot is not None:  # the message's pivot is scored too
                pv = project(pivot[0].vector, shard.directions)
                slots = np.union1d(slots, shard.candidate_slots(pv, None, s))  # its words are the message's
            if not len(slots):
                return []
            stored = [shard.stored[i] for i in slots]
            languages = [shard.languages[i] for i in slots]
            positions = [shard.positions(i) for i in slots]
            counts = np.array([len(p) for p in positions])
            pos = np.concatenate(positions) if counts.sum() else np.zeros(0, dtype=np.int64)
            if pivot is None:
                dense = shard.dense(pos, qv)
            else:  # the rows are read once for both
                dense, pivot_dense = shard.dense(pos, np.stack([qv, pv], axis=1)).T
            kind = shard._kind.a[pos]
            # Answer sentences' lexical scores are never used (`_score`): only the other rows are scored.
            lex_cos, lex_cov = np.zeros(len(pos), dtype=np.float32), np.zeros(len(pos), dtype=np.float32)
            scored = kind != _KIND_CODE[CHUNK]
            lex_cos[scored], lex_cov[scored] = shard.lex.score_rows(lq, pos[scored])
            cent = shard._cent.scores(slots, qv)
            bridged = None if pivot is None else (pivot_dense, shard._cent.scores(slots, pv), pivot[1])
            borrowed = self._borrowed(raw_qv, language, shard, slots)
            wordings = shard.questions_per_entry()
        out = self._score(
            stored,
            languages,
            counts,
            kind,
            dense,
            lex_cos,
            lex_cov,
            cent,
            query if query != text else None,
            top_k,
            language=language,
            bridged=bridged,
            borrowed=borrowed,
        )
        for c in out:  # the decision weighs a knowledge base of many wordings per entry otherwise
            c.raw["wordings"] = wordings
        return out

    def _score(
        self,
        stored: list[bytes],
        languages: list[frozenset[str]],
        counts: np.ndarray,
        kind: np.ndarray,
        dense: np.ndarray,
        lex_cos: np.ndarray,
        lex_cov: np.ndarray,
        cent: np.ndarray,
        query: str | None,
        top_k: int,
        language: str | None = None,
        bridged: tuple[np.ndarray, np.ndarray, bool] | None = None,
        borrowed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> list[Candidate]:
        """Every row's lexical and dense signals blended into one score per entry, best `top_k` kept.

        Long because it is one vectorised pass over the rows' arrays (blend, per-entry maxima, centroid
        weighting, ranking); split into steps it would hand a dozen arrays from one to the next.
        `bridged`: the rows' and centroids' cosines to the message's pivot, and whether it is a
        paraphrase (`_bridge`)."""
        s = self.settings
        is_q = kind == _KIND_CODE[QUESTION]
        # Coverage only on question rows: any long answer covers a short query's n-grams.
        # Question rows: TF-IDF and coverage, weighted lexical_weight; whole answers: TF-IDF only,
        # weighted answer_lexical_weight (a sentence shares too few n-grams to count).
        q_lex = np.minimum(1.0, ((1 - s.lexical_coverage) * lex_cos + s.lexical_coverage * lex_cov) / s.question_lex_hi)
        a_lex = np.minimum(1.0, lex_cos / s.answer_lex_hi)
        lex = np.where(
            is_q, s.lexical_weight * q_lex, np.where(kind == _KIND_CODE[ANSWER], s.answer_lexical_weight * a_lex, 0.0)
        )
        d = np.where(is_q, dense, dense - s.passage_offset)
        n = len(stored)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        has_rows = counts > 0
        d_max = _entry_dense(d, kind, starts, has_rows, cent, s.sentence_blend)
        if borrowed is not None:  # moved borrow_weight of the way towards the borrowed questions (`_borrowed`)
            lent = ~np.isnan(borrowed[0])
            w = s.borrow_weight
            d_max = np.where(lent, d_max + w * (np.fmax(d_max, borrowed[0]) - d_max), d_max)
            cent = np.where(lent, cent + w * (np.fmax(cent, borrowed[1]) - cent), cent)
        l_max = np.zeros(n)
        if len(d):
            l_max[has_rows] = np.maximum.reduceat(lex, starts[has_rows])
        has_q = np.zeros(n, dtype=bool)
        if len(d):
            has_q[has_rows] = np.maximum.reduceat(is_q, starts[has_rows])
        # The centroid of an entry with question variants pools many phrasings and languages; that
        # of an answer-only entry is just its sentences, a weaker signal.
        cw = np.where(has_q, s.centroid_weight, s.answer_centroid_weight)
        if language is not None:
            # Across languages one row's cosine is noisy; the entry as a whole (its centroid) is not.
            foreign = np.array([language not in langs for langs in languages])
            cw = np.where(foreign, np.maximum(cw, s.cross_language_centroid_weight), cw)
        score = (d_max + cw * cent + l_max) / (1.0 + cw + max(s.lexical_weight, s.answer_lexical_weight))
        pivot_score = None
        if bridged is not None and language is not None:
            score, pivot_score = self._bridge(score, bridged, language, languages, kind, starts, has_rows, has_q, l_max)
        order = np.argsort(-score, kind="stable")
        lead = _lead(score[order])
        out: list[Candidate] = []
        for rank, i in enumerate(order[:top_k]):
            entry = _unpack(stored[i])
            if counts[i]:
                seg = slice(starts[i], starts[i] + counts[i])
                best = starts[i] + int(np.argmax(d[seg]))
                row = _row(entry, s, kind[seg], best - starts[i])
                cov = float(np.max(np.where(is_q[seg], lex_cov[seg], 0.0)))
                matched, mkind, mlang, cos = row.text, row.kind, row.language, float(dense[best])
            else:
                matched, mkind, mlang, cos, cov = "", "", "", float(cent[i]), 0.0
            out.append(
                Candidate(
                    entry,
                    float(score[i]),
                    float(d_max[i]),
                    float(l_max[i]),
                    matched,
                    mkind,
                    mlang,
                    raw={
                        "cos": cos,
                        "centroid": float(cent[i]),
                        "coverage": cov,
                        **({"lead": float(lead[rank])} if lead is not None else {}),
                    },
                    query=query,
                )
            )
        if borrowed is not None:
            for c, i in zip(out, order[:top_k], strict=False):
                if borrowed[2][i] >= 0:
                    c.raw["borrowed"] = float(borrowed[0][i])
        if pivot_score is not None:  # the pivot's own score of the entries it was fused into (explain)
            key = "paraphrase" if bridged[2] else "bridge"
            for c, i in zip(out, order[:top_k], strict=False):
                if not np.isnan(pivot_score[i]):
                    c.raw[key] = float(pivot_score[i])
        return out

    def _bridge(
        self,
        score: np.ndarray,
        bridged: tuple[np.ndarray, np.ndarray, bool],
        language: str,
        languages: list[frozenset[str]],
        kind: np.ndarray,
        starts: np.ndarray,
        has_rows: np.ndarray,
        has_q: np.ndarray,
        l_max: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(fused scores, the pivot's scores or NaN): the pivot is scored as a message in the pivot
        language would be. A bridge is fused (`bridge_fusion`) into the entries that lack the
        message's language and have the pivot's, the others keeping their score; a paraphrase is
        blended into every entry, weighing `paraphrase_weight`."""
        s = self.settings
        dense, cent, paraphrase = bridged
        d = np.where(kind == _KIND_CODE[QUESTION], dense, dense - s.passage_offset)
        cw = np.where(has_q, s.centroid_weight, s.answer_centroid_weight)
        pivot = (_entry_dense(d, kind, starts, has_rows, cent, s.sentence_blend) + cw * cent + l_max) / (
            1.0 + cw + max(s.lexical_weight, s.answer_lexical_weight)
        )
        if paraphrase:
            return (1.0 - s.paraphrase_weight) * score + s.paraphrase_weight * pivot, pivot
        applies = np.array([language not in langs and s.bridge_language in langs for langs in languages])
        if s.bridge_fusion == "sum":
            fused = (1.0 - s.bridge_weight) * score + s.bridge_weight * pivot
        else:
            fused = np.maximum(score, pivot)
        return np.where(applies, fused, score), np.where(applies, pivot, np.nan)

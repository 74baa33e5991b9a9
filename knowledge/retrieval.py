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

Storage per municipality (a shard): a growable float32 arena of projected row vectors (exact
inner product; a FAISS IVF index generates candidates once a shard is large), an arena of entry
centroids, the lexical index on the row positions, and alive masks. An upsert appends and kills;
compaction happens when a quarter of the rows are dead. Vectors are cached on disk by content
(unprojected), so a restart with an unchanged knowledge base encodes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from knowledge.entries import DEFAULT_MUNICIPALITY, Entry
from knowledge.lexical import Featurizer, LexicalIndex, SpellCorrector, tokenizer_lexicon, words
from knowledge.settings import RetrievalSettings, load_retrieval_settings

QUESTION, ANSWER, CHUNK = "q", "a", "c"  # chunk: a sentence of an answer
_SENTENCE = re.compile(r"(?<=[.!?。؟])\s+|\n+")
_KIND_CODE = {QUESTION: 0, ANSWER: 1, CHUNK: 2}


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


class VectorCache:
    """Content-addressed vectors on disk: append-only chunk files of (keys.json, vectors.npy)."""

    def __init__(self, directory: Path | None, model_id: str):
        self.dir = Path(directory) / "vectors" if directory else None
        self.model_id = model_id
        self._mem: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        if self.dir and self.dir.exists():
            for keys_file in sorted(self.dir.glob("*.json")):
                npy = keys_file.with_suffix(".npy")
                if not npy.exists():
                    continue
                keys = json.loads(keys_file.read_text())
                vecs = np.load(npy)
                if len(keys) == len(vecs):
                    self._mem.update(zip(keys, vecs, strict=True))

    def key(self, prompt: str, text: str) -> str:
        return hashlib.sha1(f"{self.model_id}\n{prompt}\n{text}".encode()).hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        return self._mem.get(key)

    def put(self, keys: list[str], vecs: np.ndarray) -> None:
        with self._lock:
            self._mem.update(zip(keys, vecs, strict=True))
            if not self.dir or not keys:
                return
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"{len(list(self.dir.glob('*.json'))):06d}-{os.getpid()}-{keys[0][:8]}"
            np.save(self.dir / f"{name}.npy.tmp.npy", np.asarray(vecs, dtype=np.float32))
            os.replace(self.dir / f"{name}.npy.tmp.npy", self.dir / f"{name}.npy")
            (self.dir / f"{name}.json").write_text(json.dumps(keys))

    def compact(self, keep: set[str]) -> None:
        """Rewrite the cache as one file holding only `keep` (called after a full rebuild)."""
        if not self.dir:
            return
        with self._lock:
            files = sorted(self.dir.glob("*.json"))
            if len(files) <= 8 and len(self._mem) <= 2 * max(len(keep), 1):
                return
            keys = [k for k in self._mem if k in keep]
            vecs = np.stack([self._mem[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)
            tmp = self.dir / "compact.tmp"
            tmp.mkdir(exist_ok=True)
            np.save(tmp / "000000-all.npy", vecs)
            (tmp / "000000-all.json").write_text(json.dumps(keys))
            for f in files:
                f.unlink(missing_ok=True)
                f.with_suffix(".npy").unlink(missing_ok=True)
            for f in tmp.iterdir():
                os.replace(f, self.dir / f.name)
            tmp.rmdir()
            self._mem = {k: self._mem[k] for k in keys}


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
    """A growable array along axis 0."""

    def __init__(self, shape: tuple[int, ...], dtype) -> None:
        self.a = np.zeros((256, *shape), dtype=dtype)

    def ensure(self, n: int) -> None:
        if n > len(self.a):
            size = max(n, 2 * len(self.a))
            grown = np.zeros((size, *self.a.shape[1:]), dtype=self.a.dtype)
            grown[: len(self.a)] = self.a
            self.a = grown


class _Shard:
    """One municipality's rows (arena) and entries (centroids)."""

    def __init__(self, dim: int, settings: RetrievalSettings, directions: np.ndarray | None):
        self.settings = settings
        self.directions = directions
        self._vecs = _Grow((dim,), np.float32)
        self._alive = _Grow((), bool)
        self._entry = _Grow((), np.int64)  # entry slot of each row
        self._kind = _Grow((), np.int8)
        self.n = 0
        self.rows: list[Row] = []
        self._cent = _Grow((dim,), np.float32)
        self._ent_alive = _Grow((), bool)
        self.n_ent = 0
        self.slot_entry: list[Entry | None] = []
        self.entries: dict[str, tuple[int, np.ndarray]] = {}  # id -> (slot, row positions)
        self.lex = LexicalIndex(Featurizer(settings.ngram_min, settings.ngram_max))
        self.ivf = None

    @property
    def vecs(self) -> np.ndarray:
        return self._vecs.a[: self.n]

    @property
    def alive(self) -> np.ndarray:
        return self._alive.a[: self.n]

    def add_batch(
        self, entries: list[Entry], rows: list[list[Row]], vecs: list[np.ndarray], centroids: np.ndarray
    ) -> None:
        """Add entries (replacing any with the same id); `vecs` are projected arena rows."""
        for e in entries:
            self.remove(e.id, compact=False)
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        total = int(counts.sum())
        start, slot0 = self.n, self.n_ent
        for g in (self._vecs, self._alive, self._entry, self._kind):
            g.ensure(start + total)
        for g in (self._cent, self._ent_alive):
            g.ensure(slot0 + len(entries))
        if total:
            self._vecs.a[start : start + total] = np.concatenate(vecs)
            self._alive.a[start : start + total] = True
            self._entry.a[start : start + total] = np.repeat(np.arange(slot0, slot0 + len(entries)), counts)
            self._kind.a[start : start + total] = [_KIND_CODE[r.kind] for rs in rows for r in rs]
        self._cent.a[slot0 : slot0 + len(entries)] = centroids
        self._ent_alive.a[slot0 : slot0 + len(entries)] = True
        flat = [r for rs in rows for r in rs]
        self.rows.extend(flat)
        self.n += total
        self.n_ent += len(entries)
        self.slot_entry.extend(entries)
        offsets = np.concatenate([[0], np.cumsum(counts)]) + start
        for i, e in enumerate(entries):
            self.entries[e.id] = (slot0 + i, np.arange(offsets[i], offsets[i + 1]))
        # Lexical rows: question variants; answers only of entries that have no questions (typos
        # in a question are matched against questions; long answers would dominate the index).
        has_q = [any(r.kind == QUESTION for r in rs) for rs in rows]
        self.lex.append(
            [r.text if r.kind == QUESTION or not q else "" for rs, q in zip(rows, has_q, strict=True) for r in rs]
        )
        if self.ivf is not None and total:
            self.ivf.add_with_ids(self._vecs.a[start : start + total], np.arange(start, start + total, dtype=np.int64))

    def remove(self, entry_id: str, compact: bool = True) -> bool:
        old = self.entries.pop(entry_id, None)
        if old is None:
            return False
        slot, pos = old
        self._alive.a[pos] = False
        self._ent_alive.a[slot] = False
        self.slot_entry[slot] = None
        self.lex.kill(pos)
        if self.ivf is not None:
            self.ivf.remove_ids(pos.astype(np.int64))
        if compact and self.n > 1024 and (self.n - int(self.alive.sum())) > self.n // 4:
            self.compact()
        return True

    def compact(self) -> None:
        keep = np.flatnonzero(self.alive)
        keep_ent = np.flatnonzero(self._ent_alive.a[: self.n_ent])
        remap = np.full(self.n, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        ent_remap = np.full(max(self.n_ent, 1), -1, dtype=np.int64)
        ent_remap[keep_ent] = np.arange(len(keep_ent))
        for g in (self._vecs, self._alive, self._entry, self._kind):
            g.a = np.ascontiguousarray(g.a[keep])
            g.ensure(256)
        self._entry.a[: len(keep)] = ent_remap[self._entry.a[: len(keep)]]
        for g in (self._cent, self._ent_alive):
            g.a = np.ascontiguousarray(g.a[keep_ent])
            g.ensure(256)
        self.n, self.n_ent = len(keep), len(keep_ent)
        self.rows = [self.rows[i] for i in keep]
        self.slot_entry = [self.slot_entry[i] for i in keep_ent]
        self.lex.compact(keep)
        self.entries = {eid: (int(ent_remap[s]), remap[p]) for eid, (s, p) in self.entries.items()}
        if self.ivf is not None:
            self.build_ivf()

    def build_ivf(self) -> None:
        """Approximate row candidates for large shards (8-bit codes; exact scoring uses the arena)."""
        import faiss

        live = np.flatnonzero(self.alive)
        data = np.ascontiguousarray(self.vecs[live])
        nlist = int(min(4096, max(16, 2 * np.sqrt(len(live)))))
        quantizer = faiss.IndexFlatIP(data.shape[1])
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, data.shape[1], nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sample = data[np.random.default_rng(0).choice(len(data), min(len(data), 40 * nlist), replace=False)]
        ivf.train(sample)
        ivf.add_with_ids(data, live.astype(np.int64))
        ivf.nprobe = self.settings.ivf_nprobe
        self.ivf = ivf

    def candidate_slots(self, qv: np.ndarray, lex_query, s: RetrievalSettings) -> np.ndarray:
        """Entry slots worth scoring exactly: best rows (dense, lexical) and best centroids."""
        if self.n_ent == 0:
            return np.zeros(0, dtype=np.int64)
        parts = []
        if self.n:
            if self.ivf is not None:
                _, ids = self.ivf.search(qv[None, :], s.dense_candidates)
                pos = ids[0][ids[0] >= 0]
            else:
                scores = self.vecs @ qv
                scores[~self.alive] = -2.0
                k = min(s.dense_candidates, self.n)
                pos = np.argpartition(-scores, k - 1)[:k]
                pos = pos[scores[pos] > -2.0]
            parts.append(self._entry.a[pos])
            if s.lexical_candidates:
                parts.append(self._entry.a[self.lex.top(lex_query, s.lexical_candidates, self.alive)])
        cent = self._cent.a[: self.n_ent] @ qv
        cent[~self._ent_alive.a[: self.n_ent]] = -2.0
        k = min(s.centroid_candidates, self.n_ent)
        best = np.argpartition(-cent, k - 1)[:k]
        parts.append(best[cent[best] > -2.0])
        slots = np.unique(np.concatenate(parts))
        return slots[self._ent_alive.a[slots]]


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
        self.lexicon = tokenizer_lexicon(getattr(embedder, "tokenizer", None))
        self.speller = self._new_speller()
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_lock = threading.Lock()

    # -- building -------------------------------------------------------------------------------

    def _vectors(self, rows: list[Row]) -> np.ndarray:
        """Row vectors (unprojected) from the cache, encoding only the missing ones."""
        keys = [self.cache.key(self._prompt(r), r.text) for r in rows]
        out: list[np.ndarray | None] = [self.cache.get(k) for k in keys]
        for prompt in ("query", "passage"):
            todo = [i for i, r in enumerate(rows) if out[i] is None and self._prompt(r) == prompt]
            if not todo:
                continue
            texts = [rows[i].text for i in todo]
            enc = self.embedder.encode_queries if prompt == "query" else self.embedder.encode_passages
            vecs = np.asarray(enc(texts), dtype=np.float32)
            for i, v in zip(todo, vecs, strict=True):
                out[i] = v
            self.cache.put([keys[i] for i in todo], vecs)
        if not rows:
            return np.zeros((0, self.dim or 384), dtype=np.float32)
        mat = np.stack(out).astype(np.float32)
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
        entries = list(entries)
        self.directions = directions = self._directions(entries)
        vocabulary: dict[str, set[str]] = defaultdict(set)
        speller = self._new_speller()
        by_shard: dict[str, list[Entry]] = defaultdict(list)
        for e in entries:
            self._learn(e, vocabulary, speller)
            by_shard[e.municipality].append(e)
        shards: dict[str, _Shard] = {}
        keys: set[str] = set()
        for municipality, ents in by_shard.items():
            shard = None
            for a in range(0, len(ents), batch):
                part = ents[a : a + batch]
                all_rows = [entry_rows(e, s) for e in part]
                flat = [r for rows in all_rows for r in rows]
                vecs = self._vectors(flat)
                if self.cache.dir:
                    keys.update(self.cache.key(self._prompt(r), r.text) for r in flat)
                if shard is None:
                    shard = shards[municipality] = _Shard(vecs.shape[1], s, directions)
                shard.add_batch(part, *self._prepare(part, all_rows, vecs))
            if shard is not None:
                shard.lex.merge()  # all rows into the inverted view: no tail to scan
                if shard.n >= s.ivf_min_rows:
                    shard.build_ivf()
        with self._lock:
            self._shards = shards
            self.vocabulary = vocabulary
            self.speller = speller
        if self.cache.dir:
            self.cache.compact(keys)

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
        """(entries of one municipality, their rows) in groups of about `batch_texts` rows."""
        part: list[Entry] = []
        rows: list[list[Row]] = []
        for e in sorted(entries, key=lambda e: e.municipality):
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

    def entries(self, municipality: str = DEFAULT_MUNICIPALITY) -> list[Entry]:
        shard = self._shards.get(municipality)
        return [e for e in shard.slot_entry if e is not None] if shard else []

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
            qv = project(raw_qv, shard.directions)
            lq = shard.lex.query(query)
            slots = shard.candidate_slots(qv, lq, s)
            if not len(slots):
                return []
            ents = [shard.slot_entry[i] for i in slots]
            positions = [shard.entries[e.id][1] for e in ents]
            counts = np.array([len(p) for p in positions])
            pos = np.concatenate(positions) if counts.sum() else np.zeros(0, dtype=np.int64)
            dense = shard.vecs[pos] @ qv
            lex_cos, lex_cov = shard.lex.score_rows(lq, pos)
            kind = shard._kind.a[pos]
            cent = shard._cent.a[slots] @ qv
            rows = [shard.rows[p] for p in pos]
        return self._score(
            ents, counts, rows, kind, dense, lex_cos, lex_cov, cent, query if query != text else None, top_k,
            language=language,
        )

    def _score(
        self,
        ents: list[Entry],
        counts: np.ndarray,
        rows: list[Row],
        kind: np.ndarray,
        dense: np.ndarray,
        lex_cos: np.ndarray,
        lex_cov: np.ndarray,
        cent: np.ndarray,
        query: str | None,
        top_k: int,
        language: str | None = None,
    ) -> list[Candidate]:
        """Every row's lexical and dense signals blended into one score per entry, best `top_k` kept.

        Long because it is one vectorised pass over the rows' arrays (blend, per-entry maxima, centroid
        weighting, ranking); split into steps it would hand a dozen arrays from one to the next."""
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
        n = len(ents)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        has_rows = counts > 0
        d_max = np.full(n, -1.0)
        l_max = np.zeros(n)
        if len(d):
            d_max[has_rows] = _sentence_blend(d, kind == _KIND_CODE[CHUNK], starts[has_rows], s.sentence_blend)
            l_max[has_rows] = np.maximum.reduceat(lex, starts[has_rows])
        d_max = np.where(has_rows, d_max, cent)
        has_q = np.zeros(n, dtype=bool)
        if len(d):
            has_q[has_rows] = np.maximum.reduceat(is_q, starts[has_rows])
        # The centroid of an entry with question variants pools many phrasings and languages; that
        # of an answer-only entry is just its sentences, a weaker signal.
        cw = np.where(has_q, s.centroid_weight, s.answer_centroid_weight)
        if language is not None:
            # Across languages one row's cosine is noisy; the entry as a whole (its centroid) is not.
            foreign = np.array([language not in e.answer and language not in e.questions for e in ents])
            cw = np.where(foreign, np.maximum(cw, s.cross_language_centroid_weight), cw)
        score = (d_max + cw * cent + l_max) / (1.0 + cw + max(s.lexical_weight, s.answer_lexical_weight))
        order = np.argsort(-score, kind="stable")
        lead = _lead(score[order])
        out: list[Candidate] = []
        for rank, i in enumerate(order[:top_k]):
            if counts[i]:
                seg = slice(starts[i], starts[i] + counts[i])
                best = starts[i] + int(np.argmax(d[seg]))
                row = rows[best]
                cov = float(np.max(np.where(is_q[seg], lex_cov[seg], 0.0)))
                matched, mkind, mlang, cos = row.text, row.kind, row.language, float(dense[best])
            else:
                matched, mkind, mlang, cos, cov = "", "", "", float(cent[i]), 0.0
            out.append(
                Candidate(
                    ents[i],
                    float(score[i]),
                    float(d_max[i]),
                    float(l_max[i]),
                    matched,
                    mkind,
                    mlang,
                    raw={"cos": cos, "centroid": float(cent[i]), "coverage": cov,
                         **({"lead": float(lead[rank])} if lead is not None else {})},
                    query=query,
                )
            )
        return out

"""Hybrid retrieval over the knowledge base: dense e5 vectors fused with character n-gram TF-IDF.

Each entry becomes rows: its question variants in every language (encoded as queries: question to
question is a symmetric match) and its answers, whole and sentence by sentence (passages). A query
is scored against all rows of a candidate entry and the entry keeps its best row (max-pooling), so
a long answer is found by the one sentence that answers the question.

Storage per municipality (a shard): a growable float32 arena of row vectors (exact inner product;
a FAISS IVF index is added once a shard is large), the lexical index on the same row positions, and
an alive mask. An upsert appends rows and kills the old ones; a remove kills rows; compaction
happens when a quarter of the rows are dead. Vectors are cached on disk by content, so a restart
with an unchanged knowledge base encodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from knowledge.entries import DEFAULT_MUNICIPALITY, Entry
from knowledge.lexical import Featurizer, LexicalIndex, words
from knowledge.settings import RetrievalSettings, load_retrieval_settings

QUESTION, ANSWER, CHUNK = "q", "a", "c"  # chunk: a sentence window of an answer
_SENTENCE = re.compile(r"(?<=[.!?。؟])\s+|\n+")


class EmbedderLike(Protocol):
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

    def signals(self) -> dict:
        return {"id": self.entry.id, "score": round(self.score, 4), "dense": round(self.dense, 4),
                "lexical": round(self.lexical, 4), "matched": self.matched, "matched_kind": self.matched_kind,
                "matched_language": self.matched_language, **{k: round(v, 4) for k, v in self.raw.items()}}


@dataclass(frozen=True)
class Row:
    text: str
    kind: str
    language: str


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 1]


def entry_rows(entry: Entry, settings: RetrievalSettings) -> list[Row]:
    """The texts an entry is found by (deduplicated)."""
    rows: dict[tuple[str, str], Row] = {}
    for lang, questions in entry.questions.items():
        for q in questions:
            if q.strip():
                rows.setdefault((QUESTION, q.strip()), Row(q.strip(), QUESTION, lang))
    for lang, answer in entry.answer.items():
        if not answer.strip():
            continue
        rows.setdefault((ANSWER, answer.strip()), Row(answer.strip(), ANSWER, lang))
        if settings.answer_chunks:
            sents = split_sentences(answer)
            size = max(1, settings.chunk_sentences)
            if len(sents) > size:
                for i in range(0, len(sents) - size + 1):
                    chunk = " ".join(sents[i:i + size])
                    if (ANSWER, chunk) not in rows:
                        rows.setdefault((CHUNK, chunk), Row(chunk, CHUNK, lang))
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


class _Shard:
    """One municipality's rows."""

    def __init__(self, dim: int, settings: RetrievalSettings):
        self.settings = settings
        self.vecs = np.zeros((256, dim), dtype=np.float32)
        self.alive = np.zeros(256, dtype=bool)
        self.n = 0
        self.row_entry: list[str] = []
        self.rows: list[Row] = []
        self.entries: dict[str, tuple[Entry, np.ndarray]] = {}
        self.lex = LexicalIndex(Featurizer(settings.ngram_min, settings.ngram_max))
        self.ivf = None

    def add(self, entry: Entry, rows: list[Row], vecs: np.ndarray, lex_features=None) -> None:
        self.remove(entry.id)
        k = len(rows)
        while self.n + k > len(self.vecs):
            self.vecs = np.concatenate([self.vecs, np.zeros_like(self.vecs)])
            self.alive = np.concatenate([self.alive, np.zeros(len(self.alive), dtype=bool)])
        pos = np.arange(self.n, self.n + k)
        self.vecs[pos] = vecs
        self.alive[pos] = True
        self.n += k
        self.row_entry.extend([entry.id] * k)
        self.rows.extend(rows)
        if lex_features is None:
            self.lex.append([r.text for r in rows])
        else:
            self.lex.append_features(lex_features)
        self.entries[entry.id] = (entry, pos)
        if self.ivf is not None:
            self.ivf.add_with_ids(vecs.astype(np.float32), pos.astype(np.int64))

    def remove(self, entry_id: str) -> bool:
        old = self.entries.pop(entry_id, None)
        if old is None:
            return False
        pos = old[1]
        self.alive[pos] = False
        self.lex.kill(pos)
        if self.ivf is not None:
            self.ivf.remove_ids(pos.astype(np.int64))
        if self.n > 1024 and (self.n - int(self.alive[: self.n].sum())) > self.n // 4:
            self.compact()
        return True

    def compact(self) -> None:
        keep = np.flatnonzero(self.alive[: self.n])
        remap = np.full(self.n, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        self.vecs = np.ascontiguousarray(self.vecs[keep])
        if len(self.vecs) == 0:
            self.vecs = np.zeros((256, self.vecs.shape[1]), dtype=np.float32)
        self.alive = np.ones(len(self.vecs), dtype=bool)
        self.alive[len(keep):] = False
        self.n = len(keep)
        self.row_entry = [self.row_entry[i] for i in keep]
        self.rows = [self.rows[i] for i in keep]
        self.lex.compact(keep)
        self.entries = {eid: (e, remap[p]) for eid, (e, p) in self.entries.items()}
        if self.ivf is not None:
            self.build_ivf()

    def build_ivf(self) -> None:
        """Approximate candidate search for large shards (exact scoring still uses the arena)."""
        import faiss

        live = np.flatnonzero(self.alive[: self.n])
        data = np.ascontiguousarray(self.vecs[live])
        nlist = int(max(16, 4 * np.sqrt(len(live))))
        quantizer = faiss.IndexFlatIP(data.shape[1])
        ivf = faiss.IndexIVFFlat(quantizer, data.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        sample = data[np.random.default_rng(0).choice(len(data), min(len(data), 40 * nlist), replace=False)]
        ivf.train(sample)
        ivf.add_with_ids(data, live.astype(np.int64))
        ivf.nprobe = self.settings.ivf_nprobe
        self.ivf = ivf

    def dense_top(self, qv: np.ndarray, k: int) -> np.ndarray:
        if self.n == 0:
            return np.zeros(0, dtype=np.int64)
        if self.ivf is not None:
            _, ids = self.ivf.search(qv[None, :].astype(np.float32), k)
            return ids[0][ids[0] >= 0]
        scores = self.vecs[: self.n] @ qv
        scores[~self.alive[: self.n]] = -2.0
        k = min(k, self.n)
        best = np.argpartition(-scores, k - 1)[:k]
        return best[scores[best] > -2.0]


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


def _calibrate(x: np.ndarray | float, lo: float, hi: float):
    return np.clip((np.asarray(x) - lo) / (hi - lo), 0.0, 1.0)


class Retriever:
    """Search entries of one municipality by meaning and by spelling."""

    def __init__(self, embedder: EmbedderLike, cache_dir: Path | None = None,
                 settings: RetrievalSettings | None = None):
        self.embedder = embedder
        self.settings = settings or load_retrieval_settings()
        self.cache = VectorCache(cache_dir, model_id(embedder))
        self.dim: int | None = None
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.RLock()
        self.vocabulary: dict[str, set[str]] = defaultdict(set)

    # -- building -------------------------------------------------------------------------------

    def _vectors(self, rows: list[Row]) -> np.ndarray:
        """Row vectors from the cache, encoding only the missing ones."""
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

    def _prompt(self, row: Row) -> str:
        return self.settings.question_prompt if row.kind == QUESTION else "passage"

    def _learn_vocabulary(self, entry: Entry) -> None:
        for lang, qs in entry.questions.items():
            for q in qs:
                self.vocabulary[lang].update(words(q))
        for lang, text in entry.answer.items():
            self.vocabulary[lang].update(words(text))

    def rebuild(self, entries: Iterable[Entry]) -> None:
        """Replace the whole index (vectors come from the cache when the texts are unchanged)."""
        entries = list(entries)
        all_rows = [entry_rows(e, self.settings) for e in entries]
        flat = [r for rows in all_rows for r in rows]
        vecs = self._vectors(flat)
        shards: dict[str, _Shard] = {}
        vocabulary: dict[str, set[str]] = defaultdict(set)
        start = 0
        for entry, rows in zip(entries, all_rows, strict=True):
            shard = shards.get(entry.municipality)
            if shard is None:
                shard = shards[entry.municipality] = _Shard(vecs.shape[1], self.settings)
            shard.add(entry, rows, vecs[start:start + len(rows)])
            start += len(rows)
        for shard in shards.values():
            if shard.n >= self.settings.ivf_min_rows:
                shard.build_ivf()
        with self._lock:
            self._shards = shards
            self.vocabulary = vocabulary
            for e in entries:
                self._learn_vocabulary(e)
        self.cache.compact({self.cache.key(self._prompt(r), r.text) for r in flat})

    def upsert(self, entry: Entry) -> None:
        """Add or replace one entry; only its own texts are encoded."""
        rows = entry_rows(entry, self.settings)
        vecs = self._vectors(rows)
        with self._lock:
            shard = self._shards.get(entry.municipality)
            if shard is None:
                shard = self._shards[entry.municipality] = _Shard(vecs.shape[1], self.settings)
            shard.add(entry, rows, vecs)
            self._learn_vocabulary(entry)

    def remove(self, municipality: str, entry_id: str) -> bool:
        with self._lock:
            shard = self._shards.get(municipality)
            return bool(shard and shard.remove(entry_id))

    def __len__(self) -> int:
        return sum(len(s.entries) for s in self._shards.values())

    def entries(self, municipality: str = DEFAULT_MUNICIPALITY) -> list[Entry]:
        shard = self._shards.get(municipality)
        return [e for e, _ in shard.entries.values()] if shard else []

    # -- searching ------------------------------------------------------------------------------

    def search(self, text: str, municipality: str = DEFAULT_MUNICIPALITY, language: str | None = None,
               top_k: int = 5) -> list[Candidate]:
        """Best entries for `text`, best first, with fused score and the signals behind it."""
        s = self.settings
        qv = np.asarray(self.embedder.encode_queries([text]), dtype=np.float32)[0]
        with self._lock:
            shard = self._shards.get(municipality)
            if shard is None or not shard.entries:
                return []
            lq = shard.lex.query(text)
            pos = np.concatenate([shard.dense_top(qv, s.dense_candidates),
                                  shard.lex.top(lq, s.lexical_candidates, shard.alive)])
            cand_ids = list(dict.fromkeys(shard.row_entry[p] for p in pos))
            cand = [shard.entries[i] for i in cand_ids if i in shard.entries]
            if not cand:
                return []
            all_pos = np.concatenate([p for _, p in cand])
            dense = shard.vecs[all_pos] @ qv
            lex_cos, lex_cov = shard.lex.score_rows(lq, all_pos)
            rows = [shard.rows[p] for p in all_pos]
        return self._score(cand, rows, dense, lex_cos, lex_cov, language)[:top_k]

    def _score(self, cand, rows: list[Row], dense: np.ndarray, lex_cos: np.ndarray, lex_cov: np.ndarray,
               language: str | None):
        s = self.settings
        is_q = np.array([r.kind == QUESTION for r in rows])
        # Coverage only on question rows: any long answer covers a short query's n-grams.
        lex = np.where(is_q, (1 - s.lexical_coverage) * lex_cos + s.lexical_coverage * lex_cov, lex_cos)
        d_cal = np.where(is_q, _calibrate(dense, s.question_cos_lo, s.question_cos_hi),
                         _calibrate(dense, s.answer_cos_lo, s.answer_cos_hi))
        if not s.lexical_chunks:  # a sentence shares few n-grams: its TF-IDF cosine is noise
            lex = np.where(np.array([r.kind == CHUNK for r in rows]), 0.0, lex)
        l_cal = np.where(is_q, np.minimum(1.0, lex / s.question_lex_hi), np.minimum(1.0, lex / s.answer_lex_hi))
        same = np.array([language is not None and r.language == language for r in rows])
        d_cal = d_cal + np.where(same & is_q, s.same_language_bonus, 0.0)
        out: list[Candidate] = []
        start = 0
        for entry, pos in cand:
            sl = slice(start, start + len(pos))
            start += len(pos)
            di, li = d_cal[sl], l_cal[sl]
            best_d, best_l = int(np.argmax(di)), int(np.argmax(li))
            d, lx = float(min(di[best_d], 1.0)), float(li[best_l])
            score = s.dense_weight * d + s.lexical_weight * lx
            row = rows[sl][best_d]
            out.append(Candidate(entry, score, d, lx, row.text, row.kind, row.language,
                                 raw={"cos": float(dense[sl][best_d]), "tfidf": float(lex[sl][best_l])}))
        out.sort(key=lambda c: -c.score)
        return out

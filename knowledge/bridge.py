"""A translation memory that bridges languages the knowledge base has no text in (issue 13).

multilingual-e5-small compares texts of one language reliably and texts of two languages noisily:
an Arabic message against a Swedish-only knowledge base ranks the right entry first far less often
than a Swedish one. The seed knowledge base shipped with the product (`data/knowledge`) holds about
21 question variants per entry in seven languages: a parallel corpus of municipal questions. The
message is matched against the memory's questions *in its own language* (a reliable cosine); the
Swedish variants of the nearest memory entries, weighted by how close they came, give a Swedish
"pivot" of the message, which the retriever scores too when the knowledge base has no text in the
message's language (`Retriever.search`, settings `bridge_*`). Only the product's own seed is used here, never
the knowledge base being served.

One memory per process and model (`shared`), its vectors in a vector cache beside the model folder,
so every process (service workers, tests, benches) encodes them at most once per machine.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knowledge.entries import Entry
from knowledge.settings import RetrievalSettings

SEED = Path(__file__).resolve().parent.parent / "data" / "knowledge"
log = logging.getLogger(__name__)

# (language, question) -> unit vectors, encoded as the knowledge base's questions are.
Encode = Callable[[list[tuple[str, str]]], np.ndarray]


@dataclass(frozen=True)
class Pivot:
    vector: np.ndarray  # unit vector in the pivot language (unprojected)
    similarity: float  # cosine of the message to the nearest memory question in its language
    entries: tuple[str, ...]  # the memory entries it was made of


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)).astype(np.float32)


class TranslationMemory:
    """Question variants of parallel entries: their vectors, and per language each entry's centroid."""

    def __init__(self, entries: list[Entry], encode: Encode) -> None:
        pairs = [(i, lang, q.strip()) for i, e in enumerate(entries) for lang, qs in e.questions.items() for q in qs]
        texts = [(lang, q) for _, lang, q in pairs if q]
        vectors = _unit(np.asarray(encode(texts), dtype=np.float32)) if texts else np.zeros((0, 0), np.float32)
        owner = np.asarray([i for i, _, q in pairs if q], dtype=np.int64)
        self.answers = [e.answer for e in entries]  # what each memory entry answers (`borrowed`)
        self._index([e.id for e in entries], owner, np.array([lang for lang, _ in texts]), vectors)

    def _index(self, ids: list[str], owner: np.ndarray, langs: np.ndarray, vectors: np.ndarray) -> None:
        self.ids, self.owner, self.langs, self.vectors = ids, owner, langs, vectors
        self.answer_vectors: np.ndarray | None = None  # set by the retriever that needs them
        self.rows = {lang: np.flatnonzero(langs == lang) for lang in sorted(set(langs))}
        self.languages = frozenset(self.rows)
        self.centroids: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # language -> (centroids, has questions)
        for lang, rows in self.rows.items():
            sums = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
            np.add.at(sums, owner[rows], vectors[rows])
            self.centroids[lang] = (_unit(sums), np.bincount(owner[rows], minlength=len(ids)) > 0)

    def without(self, ids: set[str]) -> TranslationMemory:
        """The memory without the entries `ids` (their questions unknown to it): how it serves a
        knowledge base whose intents it lacks (`bench/generalisation.py`'s seed-halves)."""
        keep = np.array([self.ids[o] not in ids for o in self.owner], dtype=bool)
        memory = TranslationMemory.__new__(TranslationMemory)
        memory.answers = [{} if i in ids else a for i, a in zip(self.ids, self.answers, strict=True)]
        memory._index(self.ids, self.owner[keep], self.langs[keep], self.vectors[keep])
        return memory

    def __len__(self) -> int:
        return len(self.vectors)

    def nearest(self, qv: np.ndarray, language: str | None = None) -> np.ndarray:
        """Per memory entry, the best cosine of `qv` to its questions in `language` (all its
        questions when the memory has none in it; -2: an entry with no such question)."""
        rows = self.rows.get(language) if language is not None else None
        rows = np.arange(len(self.vectors)) if rows is None else rows
        best = np.full(len(self.ids), -2.0, dtype=np.float32)
        np.maximum.at(best, self.owner[rows], self.vectors[rows] @ _unit(np.asarray(qv, dtype=np.float32)))
        return best

    def pivot(
        self, qv: np.ndarray, language: str, s: RetrievalSettings, target: str, min_similarity: float
    ) -> Pivot | None:
        """The message `qv` (in `language`) carried over to `target`: the similarity-weighted
        centroid of the `target` questions of the (up to) `bridge_neighbours` memory entries whose
        questions in the message's language come closest (within `bridge_window` of the nearest);
        None when the memory has no text in either language or nothing comes within
        `min_similarity`. With `target` the message's own language it is a paraphrase: the
        memory's usual wordings of what the message asks."""
        rows = self.rows.get(language)
        if rows is None or target not in self.centroids:
            return None
        centroids, present = self.centroids[target]
        best = self.nearest(qv, language)
        best[~present] = -2.0
        order = np.argsort(-best)[: max(1, s.bridge_neighbours)]
        top = float(best[order[0]])
        if top < min_similarity:
            return None
        keep = order[best[order] >= top - s.bridge_window]
        weights = np.exp((best[keep] - top) / max(s.bridge_temperature, 1e-6))
        return Pivot(_unit((weights[:, None] * centroids[keep]).sum(0)), top, tuple(self.ids[i] for i in keep))


_SHARED: dict[tuple[str, str], TranslationMemory | None] = {}
_LOCK = threading.Lock()


def shared(model: str, encode: Encode, source: Path = SEED) -> TranslationMemory | None:
    """The process's memory for `model` from `source` (built on first use), or None when the
    source is missing or unreadable (then the retriever searches without a bridge)."""
    key = (model, str(source))
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = _load(source, encode)
        return _SHARED[key]


def _load(source: Path, encode: Encode) -> TranslationMemory | None:
    from knowledge.kbfile import KbFileError, load_path

    if not source.exists():
        return None
    try:
        entries = load_path(source)
    except (KbFileError, OSError) as exc:
        log.warning("translation memory %s not loaded: %s", source, exc)
        return None
    return TranslationMemory(entries, encode)


def cache_location(embedder, cache_dir: Path | None) -> Path | None:
    """Where the memory's vectors are cached: beside the model folder when it is writable (they
    belong to the model and the shipped seed, not to one index), else under the index's cache."""
    model = getattr(embedder, "path", None)
    if model is not None:
        parent = Path(model).resolve().parent
        if parent.is_dir() and _writable(parent):
            return parent / "translation-memory"
    return Path(cache_dir) / "translation-memory" if cache_dir else None


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)

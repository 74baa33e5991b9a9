"""The knowledge service: the store, the retrieval index and the answer decision, kept in step.

Every change goes to the database first and then to the in-memory index, so a change is answerable
as soon as the call returns; other processes pick it up through `refresh`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from knowledge.decision import decide
from knowledge.embedding import Embedder
from knowledge.entries import Entry
from knowledge.language import detect_language
from knowledge.notices import NoticeStore
from knowledge.retrieval import Retriever
from knowledge.settings import load_retrieval_settings
from knowledge.store import KnowledgeStore


class KnowledgeService:
    def __init__(self, store: KnowledgeStore, model_path: Path, index_dir: Path):
        self.store = store
        self.settings = load_retrieval_settings()
        self.embedder = Embedder(model_path)
        self.retriever = Retriever(self.embedder, cache_dir=index_dir, settings=self.settings)
        self._lock = threading.Lock()
        # Disruption notices are answered first; they share the retriever's cached query vectors.
        self.notices = NoticeStore(store.engine, self.embedder, encode_query=self.retriever.encode_query)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the index from the database (vectors come from the cache: fast)."""
        with self._lock:
            self._audit_seen = self.store.last_audit_id()
            self.retriever.rebuild(self.store.all())

    def sync(self) -> int:
        """Apply changes other processes made (CLI imports, other workers); returns how many entries changed.

        The audit trail is the change log: cheap to poll, and the same for SQLite and PostgreSQL.
        """
        changed = self.store.changed_since(self._audit_seen)
        if not changed:
            return 0
        with self._lock:
            for audit_id, municipality, entry_id in changed:
                entry = self.store.get(municipality, entry_id)
                if entry:
                    self.retriever.upsert(entry)
                else:
                    self.retriever.remove(municipality, entry_id)
                self._audit_seen = max(self._audit_seen, audit_id)
        return len(changed)

    def detect_language(self, text: str, prior: str | None = None) -> tuple[str, float]:
        return detect_language(text, prior=prior, vocabulary=self.retriever.vocabulary)

    def answer(
        self,
        text: str,
        language: str | None = None,
        municipality: str = "default",
        top_k: int = 5,
        explain: bool = False,
        prior: str | None = None,
    ) -> dict:
        """The `/api/v1/answer` result: decision, language, confidence and ranked answers."""
        detected, lang_conf = self.detect_language(text, prior=prior or language)
        lang = language or detected
        candidates = self.retriever.search(text, municipality=municipality, language=lang, top_k=max(top_k, 5))
        decision = decide(candidates, lang, self.settings)
        result = decision.to_dict(top_k=top_k, explain=explain)
        result["language"] = lang
        result["language_confidence"] = 1.0 if language else lang_conf
        return self.notices.apply(result, text, municipality, lang, explain=explain)

    def upsert(self, entry: Entry, actor: str | None = None) -> str:
        action = self.store.upsert(entry, actor)
        self.sync()
        return action

    def delete(self, municipality: str, entry_id: str, actor: str | None = None) -> bool:
        found = self.store.delete(municipality, entry_id, actor)
        self.sync()
        return found

    def import_entries(self, municipality: str, entries: list[Entry], replace: bool = False, actor: str | None = None):
        counts = self.store.import_entries(municipality, entries, replace=replace, actor=actor)
        self.sync()
        return counts

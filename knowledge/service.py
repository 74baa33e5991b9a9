"""The knowledge service: the store, the retrieval index and the answer decision, kept in step.

The database is the truth; the index is derived from it and must never answer with an entry the
database no longer has, or with an old version of one. Two mechanisms keep it so:

- `sync` applies the audit log in id order (writers keep ids in commit order, see
  `KnowledgeStore._serialize_writers`), re-reading each changed entry's current state; the
  watermark moves only after a whole batch is applied, so a failure retries instead of skipping.
- `reconcile` compares the index's version of every entry (its `updated_at`) with the database's,
  at start and every minute, and repairs any difference whatever its cause.

The index is saved under `index_dir/snapshot` (`Retriever.save`) after a full build and once a
twentieth of the entries changed, with the versions and audit watermark it holds. A worker starts
from it (memory-mapped: the workers of a machine share its pages, and a start encodes and reads no
vectors), then syncs and reconciles before it answers anyone; a running worker moves onto a newer
snapshot another worker saved when it is at least as far in the audit log, so all keep sharing.

A change through this service (`upsert`, `delete`) is answerable when the call returns; imports
are indexed in the background (`maintain`), in batches, and every worker publishes how far it is
(`knowledge.index_status`), so a CLI import and the workshop can tell when the entries are live.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from knowledge.decision import decide
from knowledge.embedding import Embedder
from knowledge.entries import Entry
from knowledge.index_status import HEARTBEAT_S, IndexWorkers, live_state
from knowledge.language import detect_language
from knowledge.lexical import reads_as_words
from knowledge.notices import NoticeStore
from knowledge.prefetch import AnswerPrefetch
from knowledge.retrieval import Retriever
from knowledge.settings import load_retrieval_settings
from knowledge.store import KnowledgeStore

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (municipality, entry id)
RECONCILE_S = 60.0
SAVE_EVERY = 0.05  # save the index once this share of the entries (at least SAVE_MIN) changed since
SAVE_MIN = 1000


class KnowledgeService:
    def __init__(self, store: KnowledgeStore, model_path: Path, index_dir: Path, embedder=None):
        self.store = store
        self.settings = load_retrieval_settings()
        self.embedder = embedder or Embedder(model_path)
        self.retriever = Retriever(self.embedder, cache_dir=index_dir, settings=self.settings)
        self._lock = threading.Lock()  # one index change at a time (sync, reconcile, refresh)
        self._versions: dict[Key, float] = {}  # what the index holds: entry -> updated_at
        self._pending: dict[Key, float] = {}  # changed, not yet answerable: entry -> time of the change
        self._batch = [0, 0]  # entries of the current batch made answerable, of how many
        self._batch_last = 0  # highest audit id of the batch being applied
        self._audit_seen = 0
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started = time.time()
        self.workers = IndexWorkers(store.engine)
        self._published: tuple | None = None
        self._published_at = 0.0
        self._reconciled_at = 0.0
        self._publish_lock = threading.Lock()
        self._closed = threading.Event()
        self.snapshot_dir = Path(index_dir) / "snapshot" if index_dir else None
        self._snapshot_seen: int | None = None  # the snapshot this worker runs on (its meta file's mtime)
        self._changed_since_save = 0
        # Disruption notices are answered first; they share the retriever's cached query vectors.
        self.notices = NoticeStore(store.engine, self.embedder, encode_query=self.retriever.encode_query)
        self.prefetch = AnswerPrefetch(self.answer)  # answers started while Rasa reads the message
        self.refresh()
        # The heartbeat has its own thread: encoding one batch of an import may take longer than a
        # heartbeat period, and a worker busy indexing must not look gone to those waiting for it.
        threading.Thread(target=self._beat, name="index-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        while not self._closed.wait(HEARTBEAT_S / 2):
            self.publish()

    # -- keeping the index equal to the database ----------------------------------------------------

    def refresh(self) -> None:
        """Start from the saved index when there is one, brought to the database's state (changes
        since it was saved, then every entry's version) before this returns; else rebuild it from
        the database (vectors come from the cache) and save it. The translation memory is built
        after it (its vectors are copied from the index's cache), not by a citizen's first message
        (seconds: a fresh replica's first answers timed out into apologies)."""
        self._refresh_index()
        self.retriever.warm_memory()

    def _refresh_index(self) -> None:
        if self._adopt_snapshot(at_least=None):
            return
        with self._lock:
            seen = self.store.last_audit_id()  # before reading: later changes are replayed by sync
            rows = self.store.all_versioned()
            self.retriever.rebuild(e for e, _ in rows)
            self._versions = {(e.municipality, e.id): t for e, t in rows}
            self._audit_seen = self._batch_last = seen
            self._reconciled_at = time.time()
            self._save_snapshot()
        self.publish(force=True)

    def _snapshot_meta(self) -> dict:
        try:
            return json.loads((self.snapshot_dir / "meta.json").read_text())
        except (OSError, ValueError, TypeError):
            return {}

    def _adopt_snapshot(self, at_least: int | None) -> bool:
        """Run on the saved index if this worker does not run on it yet and (with `at_least`) it has
        seen that much of the audit log. It is loaded aside and brought to the database's state
        before searches switch to it, so no search sees an older state. False if none was adopted."""
        meta = self._snapshot_meta() if self.snapshot_dir else {}
        if not meta or meta.get("id") == self._snapshot_seen:
            return False
        if at_least is not None and (meta.get("audit_seen", -1) < at_least or self._pending):
            return False
        with self._lock:
            fresh = self.retriever.sibling()
            extra = fresh.load(self.snapshot_dir)
            if extra is None:
                self._snapshot_seen = meta.get("id")  # not for this model or settings: not again
                return False
            versions = dict(extra["versions"])
            seen, changed = self._catch_up(fresh, versions, extra["audit_seen"])
            self.retriever.adopt(fresh)
            self._versions = versions
            self._audit_seen = self._batch_last = seen
            self._reconciled_at = time.time()
            self._snapshot_seen = extra["id"]
            self._changed_since_save = changed
        self.publish(force=True)
        return True

    def _catch_up(self, retriever: Retriever, versions: dict[Key, float], seen: int) -> tuple[int, int]:
        """Bring a loaded index that holds `versions` and has seen the audit log up to `seen` to the
        database's state: every entry changed since, and every entry whose version differs (what
        `reconcile` checks). Returns the audit id reached and how many entries changed."""
        changes = self.store.changed_since(seen)
        stored = self.store.versions()
        keys = {(m, entry_id) for _, m, entry_id, _ in changes}
        keys |= {k for k, t in stored.items() if versions.get(k) != t}
        keys |= {k for k in versions if k not in stored}
        current = self.store.get_many(list(keys))
        removes = [k for k in keys if k not in current]
        retriever.apply([current[k][0] for k in keys if k in current], removes)
        for k in removes:
            versions.pop(k, None)
        versions.update({k: t for k, (_, t) in current.items()})
        return (changes[-1][0] if changes else seen), len(keys)

    def _save_snapshot(self) -> None:
        """Save the index with the versions and audit watermark it holds (call with the lock held)."""
        if not self.snapshot_dir or self._pending:
            return
        sid = uuid.uuid4().hex
        try:
            self.retriever.save(
                self.snapshot_dir,
                extra={"id": sid, "versions": dict(self._versions), "audit_seen": self._audit_seen},
                meta={"id": sid, "audit_seen": self._audit_seen},
            )
        except OSError:
            log.exception("saving the index failed; workers start by rebuilding it")
            return
        self._snapshot_seen, self._changed_since_save = sid, 0

    def sync(self) -> int:
        """Apply every change made since the last sync (by this or any other process); returns how
        many entries changed. The audit trail is the change log: cheap to poll on SQLite and PostgreSQL."""
        with self._lock:
            changes = self.store.changed_since(self._audit_seen)
            if not changes:
                return 0
            for _, municipality, entry_id, at in changes:
                self._pending.setdefault((municipality, entry_id), at)
            self._batch_last = changes[-1][0]
            keys = list(self._pending)
            last = self._batch_last

            def answerable() -> None:  # every entry answerable; refinement (sentences) may follow
                self._audit_seen = last
                self.publish(force=True)

            self._apply(keys, answerable)
            self._audit_seen = last
        self.publish(force=True)
        return len(keys)

    def reconcile(self) -> int:
        """Repair any difference between the index and the database (entries the index should not
        have, lacks, or holds in another version); returns how many were repaired."""
        with self._lock:
            stored = self.store.versions()
            stale = [k for k, t in stored.items() if self._versions.get(k) != t]
            stale += [k for k in self._versions if k not in stored]
            if stale:
                self._apply(stale)
            self._reconciled_at = time.time()
        return len(stale)

    def maintain(self) -> int:
        """One round of the background loop: sync, reconcile when due, and a heartbeat."""
        changed = self.sync()
        if time.time() - self._reconciled_at >= RECONCILE_S:
            changed += self.reconcile()
        self._changed_since_save += changed
        if not self._adopt_snapshot(at_least=self._audit_seen) and self._changed_since_save >= max(
            SAVE_MIN, SAVE_EVERY * len(self._versions)
        ):
            with self._lock:
                self._save_snapshot()
        self.publish()
        return changed

    def _apply(self, keys: list[Key], answerable: Callable[[], None] | None = None) -> None:
        """Bring `keys` to their current database state: removals at once, then upserts in batches
        (each batch answerable as soon as it is encoded; `answerable()` once all are). Call with the
        lock held."""
        current = self.store.get_many(keys)
        removes = [k for k in keys if k not in current]
        self.retriever.apply([], removes)
        for k in removes:
            self._versions.pop(k, None)
            self._pending.pop(k, None)
        upserts = [current[k][0] for k in keys if k in current]
        self._batch = [0, len(upserts)]
        self.publish(force=True)  # those waiting see the batch's size at once

        def progress(part: list[Entry]) -> None:
            for e in part:
                key = (e.municipality, e.id)
                self._versions[key] = current[key][1]
                self._pending.pop(key, None)
            self._batch[0] += len(part)
            self.publish()

        self.retriever.apply(upserts, progress=progress, answerable=answerable)
        self._batch = [0, 0]

    # -- telling others how far the index is ----------------------------------------------------

    def publish(self, force: bool = False) -> None:
        """This worker's index state into the database (on change, at most twice a second, and
        every few seconds as a heartbeat)."""
        pending = dict(self._pending)
        state = {
            "audit_seen": self._audit_seen,
            "pending": len(pending),
            "done": self._batch[0],
            "total": self._batch[1],
            "oldest_pending_at": min(pending.values(), default=None),
        }
        now = time.time()
        key = tuple(state.values())
        changed = key != self._published
        if not force and not (changed and now - self._published_at >= 0.5) and now - self._published_at < HEARTBEAT_S:
            return
        with self._publish_lock:
            if self._closed.is_set():
                return
            try:
                self.workers.publish(self.worker_id, state, self.started)
            except Exception:  # noqa: BLE001 - status is advisory; indexing goes on without it
                return
            self._published, self._published_at = key, now

    def close(self) -> None:
        """Leave the list of live workers (a stopped worker must not hold imports waiting)."""
        with self._publish_lock:
            self._closed.set()
            with contextlib.suppress(Exception):  # else the row expires by itself
                self.workers.forget(self.worker_id)

    def status(self, municipalities: list[str] | None = None) -> dict:
        """Per municipality: entries stored, entries this worker answers from, changes pending and
        how old the oldest is; and every live worker's progress."""
        now = time.time()
        latest = self.store.last_audit_id()
        pending = dict(self._pending)
        for _, municipality, entry_id, at in self.store.changed_since(self._batch_last):
            pending.setdefault((municipality, entry_id), at)
        counts = self.store.counts()
        names = set(counts) | {m for m, _ in pending}
        rows = []
        for m in sorted(names):
            if municipalities is not None and m not in municipalities:
                continue
            mine = [t for (pm, _), t in pending.items() if pm == m]
            rows.append(
                {
                    "municipality": m,
                    "entries": counts.get(m, 0),
                    "indexed": len(self.retriever.entries(m)),
                    "pending": len(mine),
                    "lag_s": round(now - min(mine), 1) if mine else 0.0,
                    "live": not mine,
                }
            )
        workers = self.workers.alive(now)
        return {
            "audit_id": latest,
            "municipalities": rows,
            **live_state(workers, latest),
            "worker_list": [
                {
                    "worker": w["worker"],
                    "audit_seen": w["audit_seen"],
                    "pending": w["pending"],
                    "done": w["done"],
                    "total": w["total"],
                    "lag_s": round(now - w["oldest_pending_at"], 1) if w["oldest_pending_at"] else 0.0,
                    "heartbeat_age_s": round(now - w["heartbeat"], 1),
                }
                for w in workers
            ],
        }

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
        if language:  # given (the action server passes the conversation's): detecting it again was wasted
            lang, lang_conf = language, 1.0
        else:
            lang, lang_conf = self.detect_language(text, prior=prior)
        candidates = self.retriever.search(text, municipality=municipality, language=lang, top_k=max(top_k, 5))
        words = reads_as_words(text, lang, self.retriever.vocabulary)
        decision = decide(candidates, lang, self.settings, words=words)
        result = decision.to_dict(top_k=top_k, explain=explain)
        result["language"] = lang
        result["language_confidence"] = lang_conf
        return self.notices.apply(result, text, municipality, lang, explain=explain)

    def upsert(self, entry: Entry, actor: str | None = None) -> str:
        """Create or replace an entry; answerable when this returns."""
        action = self.store.upsert(entry, actor)
        self.sync()
        return action

    def undo(self, municipality: str, since_id: int, actor: str | None = None) -> dict[str, int]:
        """Undo the audit's changes from `since_id` on (KnowledgeStore.undo); answerable when this returns."""
        counts = self.store.undo(municipality, since_id, actor)
        self.sync()
        return counts

    def delete(self, municipality: str, entry_id: str, actor: str | None = None) -> bool:
        """Delete an entry; no longer answerable when this returns."""
        found = self.store.delete(municipality, entry_id, actor)
        self.sync()
        return found

    def import_entries(
        self,
        municipality: str,
        entries: list[Entry],
        replace: bool = False,
        actor: str | None = None,
        wait: bool = True,
    ) -> dict[str, int]:
        """Import into the database; with `wait`, return once this worker answers with the result
        (otherwise the background loop indexes it and `status` tells when it is live)."""
        counts = self.store.import_entries(municipality, entries, replace=replace, actor=actor)
        if wait:
            self.sync()
        return counts

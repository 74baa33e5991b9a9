"""Which municipalities' saved index pages a worker keeps mapped (issue 18: 100 municipalities).

A worker maps the saved index's arrays (`Retriever.load`); every page a search reads stays in the
worker's resident memory for as long as the mapping lives, so after a few hundred questions spread
over 100 municipalities a worker held ~700 MB of index pages, though any one question reads one
municipality's few MB. `HotShards` keeps the pages of the municipalities searched most recently (up
to a budget of mapped bytes) and gives the others' back to the kernel (`MADV_DONTNEED`): the pages
stay in the page cache, shared by every worker, and the next search of that municipality maps them
again (minor faults, no disk read while the machine has memory to spare): ~3 ms more for a
municipality of 10k entries, ~1 ms for one of 1k. A thread of its own gives the pages back (`releaser`),
beside the next question's encoding rather than in an answer's time.

Only clean pages are given back. The arrays are mapped copy-on-write, and a page a worker changed
(an edit since the index was loaded) is its own anonymous copy that dropping would lose: such a
mapping is kept whole (`_unchanged`, from /proc/self/pagemap, read once a release).
"""

from __future__ import annotations

import functools
import mmap
import os
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

HOT_MB_ENV = "KOMMUNCHATT_INDEX_HOT_MB"
DEFAULT_HOT_MB = 256
_PAGE = mmap.PAGESIZE
_PRESENT, _SWAPPED, _FILE_PAGE = np.uint64(1 << 63), np.uint64(1 << 62), np.uint64(1 << 61)


@dataclass(frozen=True)
class Region:
    """One mapped file of the saved index: its mapping (weakly: an edit that replaces the array
    lets it go) and where it lies in this process."""

    mm: weakref.ref
    address: int
    length: int


def regions(root: object) -> list[Region]:
    """The mapped files that `root`'s arrays (found through its attributes, containers, sparse
    matrices and array bases) are views of."""
    found: dict[int, Region] = {}
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool, frozenset)):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base, np.ndarray) and not isinstance(base, np.memmap) and base.base is not None:
                base = base.base
            mm = getattr(base, "_mmap", None)
            if isinstance(base, np.memmap) and isinstance(mm, mmap.mmap) and id(mm) not in found:
                # np.memmap maps from the allocation boundary below the array's offset in the file.
                found[id(mm)] = Region(
                    weakref.ref(mm), base.ctypes.data - base.offset % mmap.ALLOCATIONGRANULARITY, len(mm)
                )
        elif isinstance(obj, (dict, list, tuple)):
            items = list(obj.values()) if isinstance(obj, dict) else obj
            if items and isinstance(items[0], (str, bytes, int, float, frozenset)):
                continue  # ids, words, languages: no arrays among them
            stack.extend(items)
        elif hasattr(obj, "__dict__") and type(obj).__module__.split(".")[0] in ("knowledge", "scipy"):
            stack.extend(vars(obj).values())
    return list(found.values())


def _page_flags(region: Region, pagemap: int) -> np.ndarray:
    """The kernel's flags for each page of the mapping (/proc/self/pagemap, opened as `pagemap`)."""
    first, count = region.address // _PAGE, -(-region.length // _PAGE)
    return np.frombuffer(os.pread(pagemap, 8 * count, 8 * first), dtype=np.uint64)


def _unchanged(flags: np.ndarray) -> bool:
    """No page of the mapping is this process's own copy: present but not a page of the file, or
    swapped out (only anonymous pages are)."""
    own = (((flags & _PRESENT) != 0) & ((flags & _FILE_PAGE) == 0)) | ((flags & _SWAPPED) != 0)
    return not bool(np.any(own))


def resident_pages(found: list[Region]) -> int:
    """Pages of the mappings among `found` present in this process."""
    pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        return sum(int(np.count_nonzero(_page_flags(r, pagemap) & _PRESENT)) for r in found)
    finally:
        os.close(pagemap)


def release(found: list[Region]) -> int:
    """Give back the pages of the unchanged mappings among `found`; the bytes they span."""
    try:
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return 0  # /proc not readable: keep every mapping as it is
    released = 0
    try:
        for region in found:
            mm = region.mm()
            try:
                if mm is not None and not mm.closed and _unchanged(_page_flags(region, pagemap)):
                    mm.madvise(mmap.MADV_DONTNEED)
                    released += region.length
            except (OSError, ValueError):
                continue  # the mapping went away: keep it as it is
    finally:
        os.close(pagemap)
    return released


class HotShards:
    """The most recently searched shards whose mapped bytes fit `budget` (the latest always stays);
    `touch` returns the shards that fell out, whose pages the caller gives back."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._hot: OrderedDict[str, tuple[weakref.ref, int]] = OrderedDict()
        self._total = 0

    @classmethod
    def from_env(cls) -> HotShards:
        return cls(int(float(os.environ.get(HOT_MB_ENV) or DEFAULT_HOT_MB) * 2**20))

    def touch(self, key: str, shard: object, size: int) -> list[tuple[str, object]]:
        old = self._hot.pop(key, None)
        if old is not None:
            self._total -= old[1]
        self._hot[key] = (weakref.ref(shard), size)
        self._total += size
        cold = []
        while self._total > self.budget and len(self._hot) > 1:
            gone_key, (ref, freed) = self._hot.popitem(last=False)
            self._total -= freed
            if (gone := ref()) is not None:
                cold.append((gone_key, gone))
        return cold

    def holds(self, key: str, shard: object) -> bool:
        return key in self._hot and self._hot[key][0]() is shard


@functools.cache
def releaser() -> ThreadPoolExecutor:
    """The one thread that gives pages back, for every index of the process."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-pages")

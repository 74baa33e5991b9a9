"""What a compact shard's search reads besides its int8 arena (issue 18: memory at 100k entries).

- `ProductCodes`: 48 bytes a row (product quantization) to rank rows: every row of a mid-size
  shard, or the ~20k scattered rows of a large shard's probed inverted lists. Through the int8
  arena (384 bytes a row) a few hundred queries made every page of it resident. Only a shortlist is
  then scored exactly.
- `ArenaFile`: the saved int8 arena read by position (`os.preadv`) instead of through its mapping.
  The rows a search scores exactly come from the kernel's page cache, shared by every worker and
  given back under memory pressure, rather than mapped into each worker: the kernel maps 64 kB
  around every page a search faults in, so a mapped arena became resident in every worker.
"""

from __future__ import annotations

import os

import numpy as np

CODE_BYTES = 48  # sub-vectors a row is split into, one byte (256 centroids) each
# Rows scored exactly for each row a scan keeps: on the seed's e5 rows, 99 % of the exact best 64 are
# among the codes' best 512 (95 % among the best 256).
SHORTLIST = 8


class ProductCodes:
    """Product quantization of rows around the shard's mean: `codebooks[m]` holds 256 centroids of
    the m-th slice of the dimensions. Approximate inner products of many rows with one query are a
    table lookup per byte."""

    def __init__(self, codebooks: np.ndarray) -> None:
        self.codebooks = np.ascontiguousarray(codebooks, dtype=np.float32)  # (M, 256, d / M)
        self._faiss = None  # FAISS's quantizer with these codebooks, made when rows are encoded

    @property
    def width(self) -> int:
        return len(self.codebooks)

    @classmethod
    def train(cls, sample: np.ndarray, width: int = CODE_BYTES) -> ProductCodes:
        """Codebooks by k-means on at most 32 rows a centroid, 10 rounds (FAISS's 25 rounds on 150
        rows a centroid took 15 s under load); the exact shortlist forgives the rest (on the seed's
        rows the best 64 were found as often: 0.991 against 0.992)."""
        import faiss

        dim = sample.shape[1]
        if len(sample) > 32 * 256:
            sample = sample[np.random.default_rng(0).choice(len(sample), 32 * 256, replace=False)]
        pq = faiss.ProductQuantizer(dim, width, 8)
        pq.cp.niter = 10
        pq.cp.min_points_per_centroid = 16  # FAISS warns below 39 a centroid (once a slice)
        pq.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(faiss.vector_to_array(pq.centroids).reshape(width, 256, dim // width))

    def __getstate__(self) -> dict:  # saved as its codebooks; FAISS's quantizer is made again
        return {"codebooks": self.codebooks}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["codebooks"])

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Each row's nearest centroid per slice (uint8, one column a slice), by FAISS."""
        if self._faiss is None:
            import faiss

            m, k, sub = self.codebooks.shape
            self._faiss = faiss.ProductQuantizer(m * sub, m, 8)
            faiss.copy_array_to_vector(self.codebooks.ravel(), self._faiss.centroids)
        return self._faiss.compute_codes(np.ascontiguousarray(x, dtype=np.float32))

    def table(self, qv: np.ndarray) -> np.ndarray:
        """The query's inner product with every centroid of every slice, flattened (M * 256)."""
        m, _, sub = self.codebooks.shape
        return np.einsum("mkd,md->mk", self.codebooks, qv.reshape(m, sub)).ravel()

    def scores(self, codes: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Approximate inner products (around the mean) of the coded rows with the table's query.

        A slice at a time from its own 256 entries: indexing the flat table with `codes + offsets`
        built a 20k x 48 array of indices first (3.7 against 2.0 ms a search at 100k entries)."""
        by_slice = np.ascontiguousarray(codes.T)
        per_slice = table.reshape(len(by_slice), -1)
        out = per_slice[0].take(by_slice[0])
        for m in range(1, len(by_slice)):
            out += per_slice[m].take(by_slice[m])
        return out


class ArenaFile:
    """Rows `[0, rows)` of a saved arena, read from its .npy file (see the module docstring). Rows
    from `rows` on were appended after the save and live in memory; `Shard` reads those there.
    The file descriptor is opened at once, so a snapshot replaced and deleted later stays readable."""

    def __init__(self, path: str, offset: int, rows: int, width: int, dtype: np.dtype) -> None:
        self.path, self.offset, self.rows, self.width = path, offset, rows, width
        self.dtype = np.dtype(dtype)
        self._row_bytes = width * self.dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY)

    def __getstate__(self) -> dict:
        raise TypeError("an ArenaFile is not saved: the snapshot's loader opens it")

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def read(self, pos: np.ndarray) -> np.ndarray:
        """Rows at `pos` (all below `rows`), one read per run of consecutive positions."""
        out = np.empty((len(pos), self.width), dtype=self.dtype)
        if not len(pos):
            return out
        order = np.argsort(pos, kind="stable")
        ordered = np.asarray(pos)[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(ordered)]])
        buf = np.empty_like(out)
        view = memoryview(buf).cast("B")
        rb = self._row_bytes
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            want = (b - a) * rb
            got = os.preadv(self._fd, [view[a * rb : b * rb]], self.offset + int(ordered[a]) * rb)
            if got != want:
                raise OSError(f"short read from {self.path}: {got} of {want} bytes")
        out[order] = buf
        return out

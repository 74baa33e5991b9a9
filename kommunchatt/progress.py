"""What the runner shows while it works: each step's name, its progress, and how long it took.

A step longer than a few seconds must never look like a hang: `Steps.run` prints the step and its
time, `Ticker` keeps one status line alive (elapsed seconds and what the work says it is doing),
and `ProgressEmbedder` gives the vector-cache encoding a progress bar. On a terminal the status line
is redrawn in place; in a log (CI) a line is printed every `every` seconds instead.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np


@dataclass
class Steps:
    """The runner's steps and their times, for the summary at the end."""

    quiet: bool = False
    times: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def run(self, name: str) -> Iterator[None]:
        self._say(f"- {name} ...")
        started = time.monotonic()
        yield
        took = time.monotonic() - started
        self.times.append((name, took))
        self._say(f"  {name}: done in {_duration(took)}")

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    def total(self) -> float:
        return sum(took for _, took in self.times)

    def summary(self) -> str:
        return ", ".join(f"{name} {_duration(took)}" for name, took in self.times)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


class Ticker:
    """A status line with the elapsed time and `status()`'s text, until stopped (a background thread)."""

    FRAMES = "|/-\\"

    def __init__(
        self, label: str, status: Callable[[], str] = lambda: "", out: TextIO | None = None, every: float = 15.0
    ):
        self.label = label
        self.status = status
        self.out = out or sys.stdout
        self.every = every
        self.tty = self.out.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ticker", daemon=True)
        self.started = time.monotonic()

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.tty:
            self.out.write("\r\033[K")
            self.out.flush()

    def _loop(self) -> None:
        frame = 0
        last_line = time.monotonic()
        while not self._stop.wait(0.25 if self.tty else 1.0):
            elapsed = time.monotonic() - self.started
            text = f"  {self.label} {self.FRAMES[frame % 4]} {elapsed:.0f} s  {_safe(self.status)}"
            frame += 1
            if self.tty:
                self.out.write("\r\033[K" + text[:118])
                self.out.flush()
            elif time.monotonic() - last_line >= self.every:
                print(text, file=self.out, flush=True)
                last_line = time.monotonic()


def _safe(status: Callable[[], str]) -> str:
    try:
        return status()
    except Exception:  # noqa: BLE001 - a status line must never stop the work it shows
        return ""


class ProgressEmbedder:
    """An embedder that encodes in small batches and advances a tqdm bar, so encoding shows progress.

    Delegates everything else (tokenizer, model id, dim) to the wrapped embedder.
    """

    def __init__(self, inner: Any, total: int, batch: int = 64, out: TextIO | None = None):
        self._inner = inner
        self._batch = batch
        self._total = total
        self._out = out  # None: count, show nothing
        self.bar = None  # made on the first text to encode: a complete cache shows no bar
        self.encoded = 0

    def _advance(self, n: int) -> None:
        self.encoded += n
        if self._out is None:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self._total,
                desc="  encoding",
                unit=" texts",
                file=self._out,
                mininterval=0.5 if self._out.isatty() else 15.0,
                dynamic_ncols=True,
            )
        self.bar.update(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _in_batches(self, encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), self._batch):
            part = texts[start : start + self._batch]
            parts.append(np.asarray(encode(part), dtype=np.float32))
            self._advance(len(part))
        return np.concatenate(parts) if parts else np.zeros((0, self._inner.dim), dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._in_batches(self._inner.encode_queries, list(texts))

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._in_batches(self._inner.encode_passages, list(texts))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.total = self.bar.n  # the total counted cached texts too: end the bar at 100 %
            self.bar.refresh()
            self.bar.close()

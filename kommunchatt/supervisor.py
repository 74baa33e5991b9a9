"""Keeps the processes of one install running: a crashed one is restarted with back-off, the others
keep running.

Back-off: a process that crashes again soon after a restart waits longer before the next one
(1, 2, 4, ... up to 30 s), so a process that cannot start does not spin; once it has stayed up for
`stable_after` seconds, the next crash is treated as the first again. Each restart is reported
with the time until the process answered its health URL again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass
class Child:
    """One supervised process: how to start it, and its state."""

    name: str
    command: list[str]
    log_path: Path
    health_url: str | None = None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_failures: int = 0
    restart_at: float | None = None  # when the pending restart is due
    down_since: float | None = None  # when the crash was noticed; cleared once healthy again
    recoveries: list[float] = field(default_factory=list)  # seconds from crash to healthy, per restart

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        report: Callable[[str], None] = print,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
        stable_after: float = 60.0,
    ):
        self.cwd = cwd
        self.env = env
        self.report = report
        self.backoff = backoff
        self.stable_after = stable_after
        self.children: dict[str, Child] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, name: str, command: list[str], log_path: Path, health_url: str | None = None) -> None:
        self.children[name] = Child(name, command, log_path, health_url)

    def start_all(self) -> None:
        for child in self.children.values():
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(child.log_path, "ab") as out:  # the child has its own copy of the descriptor
            child.proc = subprocess.Popen(
                child.command, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        child.started_at = time.monotonic()
        child.restart_at = None

    def check(self) -> None:
        """One pass: notice crashes, start the restarts that are due, notice recoveries."""
        now = time.monotonic()
        with self._lock:
            if self._stop.is_set():
                return
            for child in self.children.values():
                if child.restart_at is None and child.proc is not None and child.proc.poll() is not None:
                    self._crashed(child, now)
                elif child.restart_at is not None and now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                elif child.down_since is not None and child.running and self._healthy(child):
                    took = now - child.down_since
                    child.recoveries.append(took)
                    child.down_since = None
                    self.report(f"{child.name} is back: healthy {took:.1f} s after it stopped")

    def _crashed(self, child: Child, now: float) -> None:
        _signal_group(child.proc, signal.SIGKILL)  # what it started may still hold its port
        up_for = now - child.started_at
        child.quick_failures = child.quick_failures + 1 if up_for < self.stable_after else 1
        delay = self.backoff[min(child.quick_failures, len(self.backoff)) - 1]
        child.restart_at = now + delay
        if child.down_since is None:
            child.down_since = now
        code = child.proc.returncode if child.proc else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.report(
            f"{child.name} stopped ({how}) after {up_for:.0f} s; restarting in {delay:.0f} s (log: {child.log_path})"
        )

    @staticmethod
    def _healthy(child: Child) -> bool:
        if not child.health_url:
            return True
        try:
            return httpx.get(child.health_url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def run(self, every: float = 0.5) -> None:
        """Supervise until stop() (the runner's foreground loop, or a thread in tests)."""
        while not self._stop.wait(every):
            self.check()

    def run_in_background(self, every: float = 0.5) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, args=(every,), name="supervisor", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, grace: float = 15.0) -> None:
        """Stop supervising, then every process: SIGTERM to its process group, SIGKILL after `grace`."""
        self._stop.set()
        with self._lock:
            procs = [c.proc for c in self.children.values() if c.proc is not None]
            for proc in procs:
                if proc.poll() is None:
                    _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)

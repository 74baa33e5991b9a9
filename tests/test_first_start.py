"""`make run` on a fresh machine: the runner's main with an empty data dir (no vector cache) is ready
on the first try, says how long each step took, keeps library noise out of the terminal, and answers.

It reuses the built embedding model folder and the trained Rasa model through the variables the
other end-to-end tests use (building those is `make setup`'s and Rasa's business, timed elsewhere).
The seed knowledge base is loaded from nothing; its vector cache starts with one text in 25
missing (`partial_vector_cache`), so the runner still encodes what the cache lacks, with its progress
bar, before the health wait (what failed before) without spending CI's minutes on all 4,800 texts,
which the README's "first start" figure times on a really empty data dir.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from knowledge.kbfile import load_path
from knowledge.retrieval import VectorCache
from kommunchatt.runner import free_port
from tests.conftest import ROOT, SHARED_DATA
from tests.e2e import Citizen, bot_texts

pytestmark = pytest.mark.e2e


def partial_vector_cache(index_dir: Path, missing_every: int = 25) -> int:
    """Copy the shared vector cache (content-addressed, so valid for any data dir) into `index_dir`
    without every `missing_every`-th text; returns how many are left out."""
    shared = VectorCache(SHARED_DATA / "index", model_id="")
    keys = np.concatenate([c.keys for c in shared._open()])
    vecs = np.concatenate([c.vecs if c.rows is None else c.vecs[c.rows] for c in shared._open()])
    keep = np.arange(len(keys)) % missing_every != 0
    VectorCache(index_dir, model_id="").put(list(keys[keep]), vecs[keep])
    return int((~keep).sum())


def test_first_start_from_a_clean_data_dir_is_ready_and_answers(tmp_path):
    data_dir = tmp_path / "fresh"
    assert partial_vector_cache(data_dir / "index") > 50
    env = {
        **os.environ,
        "KOMMUNCHATT_DATA_DIR": str(data_dir),
        "KOMMUNCHATT_MODEL_PATH": str(SHARED_DATA / "models" / "multilingual-e5-small"),
        "KOMMUNCHATT_RASA_MODELS": str(SHARED_DATA / "rasa-models"),
        "KOMMUNCHATT_PORT": str(free_port()),
        "RASA_PORT": str(free_port()),
        "ACTIONS_PORT": str(free_port()),
    }
    for name in ("DATABASE_URL", "REDIS_URL", "KOMMUNCHATT_INTERNAL_TOKEN"):
        env.pop(name, None)
    runner = subprocess.Popen(
        [sys.executable, "-m", "kommunchatt.runner"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(runner.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 1500
        while not any("Kommunchatt is ready" in line for line in lines):
            assert runner.poll() is None, "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "".join(lines)[-4000:]
            time.sleep(1)
        output = "".join(lines)
        print(output)  # the step times, for the record
        assert "vector cache: done in" in output and "start service, Rasa and actions: done in" in output
        assert "encoding" in output  # the progress bar of the seed's encoding
        assert re.search(r"entries: [1-9][0-9]* texts encoded, [1-9][0-9]* from the cache", output), output
        for noise in ("DeprecationWarning", "FutureWarning", "UserWarning"):
            assert noise not in output
        url = f"http://127.0.0.1:{env['KOMMUNCHATT_PORT']}"
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
        entry = next(e for e in load_path(ROOT / "data" / "knowledge") if e.id == "waste-collection-schedule")
        reply = Citizen(url).say("När hämtas soporna?")
        assert entry.answer["sv"] in bot_texts(reply), reply
    finally:
        runner.send_signal(signal.SIGINT)  # Ctrl-C: the runner stops what it started
        try:
            code = runner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            raise
    assert code == 0
    for name in ("service", "rasa", "actions"):  # nothing left listening
        port = {"service": "KOMMUNCHATT_PORT", "rasa": "RASA_PORT", "actions": "ACTIONS_PORT"}[name]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{env[port]}/", timeout=2)

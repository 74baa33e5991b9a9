"""The municipal adapter's file and training batches (knowledge/adaptation.py); the merged model is
checked against LoRA layers in tests/test_embedding.py."""

from __future__ import annotations

import random

import numpy as np

from knowledge import adaptation
from knowledge.entries import Entry


def test_merge_adds_the_scaled_low_rank_delta(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5)).astype(np.float16), rng.normal(size=(3, 2)).astype(np.float16)
    path = tmp_path / "adapter.npz"
    name = "encoder.layer.0.intermediate.dense"
    np.savez(path, scale=np.float32(2.0), **{f"{name}.A": a, f"{name}.B": b})
    weight = rng.normal(size=(3, 5)).astype(np.float32)
    state = {"encoder.layer.0.intermediate.dense.weight": weight.copy(), "other.weight": weight.copy()}
    adaptation.merge(state, path)
    expected = weight + 2.0 * b.astype(np.float32) @ a.astype(np.float32)
    np.testing.assert_allclose(state["encoder.layer.0.intermediate.dense.weight"], expected, rtol=1e-6)
    np.testing.assert_array_equal(state["other.weight"], weight)


def test_batches_hold_no_entry_twice_and_every_wording_at_most_once():
    entries = [
        Entry(id=f"e{i}", answer={"sv": f"svar {i}"}, questions={"sv": [f"fråga {i} {j}" for j in range(i % 5 + 1)]})
        for i in range(40)
    ]
    batches = adaptation._batches(entries, 8, random.Random(1))
    assert batches and all(4 <= len(b) <= 8 for b in batches)
    for batch in batches:
        assert len({e.id for e, _ in batch}) == len(batch)
    used = [q for batch in batches for _, q in batch]
    assert len(used) == len(set(used))
    assert len(used) >= 0.8 * sum(len(e.questions["sv"]) for e in entries)


def test_the_shipped_adapter_covers_every_layer_at_its_rank():
    with np.load(adaptation.ADAPTER) as f:
        names = {k.rsplit(".", 1)[0] for k in f.files if k.endswith((".A", ".B"))}
        assert names == {f"encoder.layer.{i}.{t}" for i in range(12) for t in adaptation.TARGETS}
        assert int(f["rank"]) == adaptation.RANK
        assert all(f[f"{n}.A"].shape[0] == adaptation.RANK and f[f"{n}.B"].shape[1] == adaptation.RANK for n in names)
        assert all(np.isfinite(f[k]).all() for k in f.files)

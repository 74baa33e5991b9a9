"""The municipal adapter: low-rank changes to multilingual-e5-small learned from how citizens word
municipal questions, merged into the model folder when it is built.

Why: e5 compares two wordings of one question noisily when they share few words ("kan man få ett sms
innan dom tömmer tunnan" against the heading "Hämtdagar för hushållsavfall") and more noisily across
languages, and a municipality's FAQ brings one wording per entry. The seed knowledge base has ~21
wordings per entry in seven languages: trained to pull the wordings of one entry (and its answer)
together and apart from other entries', the model ranks intents it never saw better too (seed
halves: trained on one half of the entries, measured on the other; bench/README.md, "The municipal
adapter").

The adapter is LoRA (rank `RANK`) on every linear layer of the 12 transformer layers, 2.7 MB of
float16 in the repository (`ADAPTER`), made by `python -m knowledge.adaptation` from the seed
(seeded, with a fixed thread count; ~10 minutes on 2 cores for the whole seed). The word embeddings are
left alone (the int8 query encoder's table stays the base model's). The model folder's stamp carries the
adapter's hash (`knowledge.embedding.source_stamp`), so a new adapter rebuilds the folder and every
vector cache keyed by it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from knowledge.entries import Entry

ADAPTER = Path(__file__).with_name("municipal_adapter.npz")
RANK = 16
ALPHA = 32.0
# The linear layers of a BertLayer that get an adapter (Hugging Face names).
TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


def merge(state: dict[str, np.ndarray], path: Path) -> None:
    """Add the adapter's deltas (scale · B·A) to the weights of `state` in place."""
    with np.load(path) as f:
        scale = float(f["scale"])
        for key in f.files:
            if key.endswith(".A"):
                name = key[: -len(".A")]
                delta = f[f"{name}.B"].astype(np.float32) @ f[key].astype(np.float32)
                state[f"{name}.weight"] = state[f"{name}.weight"] + scale * delta


# ----------------------------------------------------------------------------- training


def _lora_class():
    import torch

    class LoRA(torch.nn.Module):
        """`base(x) + scale · x Aᵀ Bᵀ`, the base frozen; B starts at zero (the base model)."""

        def __init__(self, base, rank: int, alpha: float, gen) -> None:
            super().__init__()
            self.base = base
            self.A = torch.nn.Parameter(torch.randn(rank, base.in_features, generator=gen) / base.in_features**0.5)
            self.B = torch.nn.Parameter(torch.zeros(base.out_features, rank))
            self.scale = alpha / rank

        def forward(self, x):
            return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale

    return LoRA


def _attach(bert, rank: int, alpha: float, gen) -> dict[str, object]:
    """Wrap every target layer of `bert` in a LoRA module; returns them by parameter name."""
    lora = _lora_class()
    for p in bert.parameters():
        p.requires_grad = False
    out = {}
    for i, layer in enumerate(bert.encoder.layer):
        for target in TARGETS:
            *path, leaf = target.split(".")
            parent = layer
            for part in path:
                parent = getattr(parent, part)
            wrapped = lora(getattr(parent, leaf), rank, alpha, gen)
            setattr(parent, leaf, wrapped)
            out[f"encoder.layer.{i}.{target}"] = wrapped
    return out


def _batches(entries: list[Entry], size: int, rng: random.Random) -> list[list[tuple[Entry, str]]]:
    """Every question wording at most once as an anchor, shuffled; no entry twice in a batch (its
    other wordings would be counted as wrong)."""
    anchors = [(e, q) for e in entries for qs in e.questions.values() for q in qs]
    rng.shuffle(anchors)
    batches: list[list[tuple[Entry, str]]] = []
    pending = anchors
    while pending:
        batch, seen, rest = [], set(), []
        for a in pending:
            if a[0].id in seen or len(batch) == size:
                rest.append(a)
            else:
                batch.append(a)
                seen.add(a[0].id)
        if len(batch) < size // 2:  # the last few entries' leftover wordings: too few negatives
            break
        batches.append(batch)
        pending = rest
    return batches


def _positive(entry: Entry, question: str, rng: random.Random, p_answer: float) -> str:
    """Another wording of the same entry, or (with probability `p_answer`) its Swedish answer."""
    others = [q for qs in entry.questions.values() for q in qs if q != question]
    if not others or rng.random() < p_answer:
        return "passage: " + entry.answer.get("sv", next(iter(entry.answer.values())))
    return "query: " + rng.choice(others)


def train(
    model_folder: Path,
    entries: list[Entry],
    out: Path,
    *,
    rank: int = RANK,
    alpha: float = ALPHA,
    lr: float = 1.5e-4,
    batch_size: int = 32,
    temperature: float = 0.02,
    p_answer: float = 0.8,
    seed: int = 13,
    log=print,
) -> Path:
    """Learn an adapter on `entries` (those with questions) for the base model at `model_folder`
    and write it to `out`: one pass, in-batch negatives both ways (a wording finds its entry's
    other wording or answer among the batch's, and back)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    torch.set_num_threads(2)  # the same sums in the same order on every machine
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SentenceTransformer(str(model_folder), device="cpu")
    model.max_seq_length = 192
    layers = _attach(model[0].auto_model, rank, alpha, gen)
    params = [p for m in layers.values() for p in (m.A, m.B)]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    batches = _batches([e for e in entries if e.questions], batch_size, rng)
    cross_entropy = torch.nn.functional.cross_entropy
    model.train()
    started = time.monotonic()
    for step, batch in enumerate(batches):
        anchors = ["query: " + q for _, q in batch]
        positives = [_positive(e, q, rng, p_answer) for e, q in batch]
        a = torch.nn.functional.normalize(model(model.tokenize(anchors))["sentence_embedding"], dim=-1)
        p = torch.nn.functional.normalize(model(model.tokenize(positives))["sentence_embedding"], dim=-1)
        logits = a @ p.T / temperature
        labels = torch.arange(len(batch))
        loss = (cross_entropy(logits, labels) + cross_entropy(logits.T, labels)) / 2
        for group in optimiser.param_groups:  # a short warm-up, then linear decay
            group["lr"] = lr * min(1.0, (step + 1) / 10) * (1 - step / len(batches))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if (step + 1) % 10 == 0 or step + 1 == len(batches):
            log(f"step {step + 1}/{len(batches)}  loss {loss.item():.3f}  {time.monotonic() - started:.0f} s")
    arrays: dict[str, np.ndarray] = {"scale": np.float32(alpha / rank), "rank": np.int32(rank)}
    for name, m in layers.items():
        arrays[f"{name}.A"] = m.A.detach().numpy().astype(np.float16)
        arrays[f"{name}.B"] = m.B.detach().numpy().astype(np.float16)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    return out


def seed_entries() -> list[Entry]:
    """The seed knowledge base shipped in data/knowledge (what the adapter is learned from)."""
    from knowledge.bridge import SEED
    from knowledge.kbfile import load_path

    return load_path(SEED)


def main(argv: list[str] | None = None) -> int:
    """Learn the adapter from the seed and write it to `ADAPTER` (or `--out`)."""
    from knowledge.embedding import build_model_folder

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ADAPTER)
    ap.add_argument("--base", type=Path, required=True, help="where to build (or find) the base model folder")
    args = ap.parse_args(argv)
    base = build_model_folder(args.base, adapter=None)
    train(base, seed_entries(), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

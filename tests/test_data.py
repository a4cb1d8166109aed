"""Corpora, tokenizers, the deterministic data order and the data errors."""

import numpy as np
import pytest

from bsz_lr.config import DataConfig
from bsz_lr.data import (DataError, batch_at, corpus_text, load_corpus, sequence_windows, tokenize,
                         val_batches)
from bsz_lr.schedules import BatchSchedule

T = 32
VAL = 4096


@pytest.fixture(scope="module")
def austen():
    return load_corpus(DataConfig(corpus="austen", seq_len=T, val_tokens=VAL), 256)


@pytest.fixture(scope="module")
def austen_text():
    return corpus_text("austen")


def _rows(train, windows, T):
    return np.stack([np.asarray(train[w * T: w * T + T + 1], np.int32) for w in windows])


# ---------------------------------------------------------------------------
# The embedded corpus and the split.

def test_austen_loads_as_bytes(austen, austen_text):
    assert 3_500_000 < len(austen_text) < 5_000_000
    assert b"Jane Austen" in austen_text[:1000]
    assert austen.vocab_size == 256 and austen.name == "austen"
    assert austen.train.dtype == np.uint8 and austen.train.ndim == 1
    assert austen.train[:2000].tobytes() == austen_text[:2000]


def test_val_is_end_of_corpus_and_disjoint(austen, austen_text):
    assert austen.val.size == VAL
    assert austen.val.tobytes() == austen_text[-VAL:]
    assert austen.train.tobytes() == austen_text[:-VAL]
    assert austen.train.size + austen.val.size == len(austen_text)


def test_kjv_loads_and_differs(austen_text):
    kjv = corpus_text("kjv")
    assert 3_500_000 < len(kjv) < 5_000_000
    assert kjv.startswith(b"In the beginning God created the heaven and the earth")
    head = kjv[:100_000].decode("utf-8")
    assert sum(ch.isascii() for ch in head) / len(head) > 0.99     # English prose
    assert head.count(" the ") > 500 and head.count(" and ") > 500
    assert kjv[:10_000] != austen_text[:10_000]
    c = load_corpus(DataConfig(corpus="kjv", seq_len=T, val_tokens=VAL), 256)
    assert c.val.tobytes() == kjv[-VAL:]


# ---------------------------------------------------------------------------
# Deterministic order.

def test_batch_at_shape_dtype_and_determinism(austen):
    bs = BatchSchedule(((0, 8),), T)
    a = batch_at(austen.train, 0, 3, bs)
    assert a.shape == (8, T + 1) and a.dtype == np.int32
    np.testing.assert_array_equal(a, batch_at(austen.train, 0, 3, bs))
    assert not np.array_equal(a, batch_at(austen.train, 1, 3, bs))       # seed matters
    assert not np.array_equal(a, batch_at(austen.train, 0, 4, bs))       # step matters


def test_windows_are_real_text(austen):
    bs = BatchSchedule(((0, 8),), T)
    n_windows = (austen.train.size - 1) // T
    w = sequence_windows(5, 3 * 8, 8, n_windows)
    b = batch_at(austen.train, 5, 3, bs)
    np.testing.assert_array_equal(b, _rows(austen.train, w, T))
    # the targets are the inputs shifted by one
    np.testing.assert_array_equal(b[:, 1:], _rows(austen.train, w, T)[:, 1:])
    assert b.min() >= 0 and b.max() < 256


def test_batch_order_across_batch_size_change(austen):
    # batch 4 until 1000 tokens (switch at step 8: 8*4*32 = 1024), then 8
    bs = BatchSchedule(((0, 4), (1000, 8)), T)
    steps = 14
    batches = [batch_at(austen.train, 7, s, bs) for s in range(steps)]
    assert [b.shape[0] for b in batches] == [4] * 8 + [8] * 6
    n_windows = (austen.train.size - 1) // T
    total = sum(b.shape[0] for b in batches)
    w = sequence_windows(7, 0, total, n_windows)
    np.testing.assert_array_equal(np.concatenate(batches), _rows(austen.train, w, T))
    # a pure function of the step: recomputing step 10 alone gives the same batch
    np.testing.assert_array_equal(batch_at(austen.train, 7, 10, bs), batches[10])


def test_epochs_are_permutations():
    n = 10
    w = sequence_windows(3, 0, 3 * n, n)
    for e in range(3):
        assert sorted(w[e * n:(e + 1) * n]) == list(range(n))
    assert not np.array_equal(w[:n], w[n:2 * n])   # reshuffled every epoch
    # a window range that straddles epochs is a slice of the full order
    for start, count in [(0, 4), (7, 6), (9, 12), (20, 10), (25, 5)]:
        np.testing.assert_array_equal(sequence_windows(3, start, count, n), w[start:start + count])


def test_large_epoch_is_permutation(austen):
    n_windows = (austen.train.size - 1) // T
    w = sequence_windows(0, 0, n_windows, n_windows)
    assert np.unique(w).size == n_windows and w.min() == 0 and w.max() == n_windows - 1
    assert not np.array_equal(w[:100], np.arange(100))   # actually shuffled


def test_batches_wrap_epochs_on_small_corpus():
    train = (np.arange(10 * 8 + 1) % 251).astype(np.uint8)    # exactly 10 windows of T=8
    bs = BatchSchedule(((0, 4),), 8)
    rows = np.concatenate([batch_at(train, 1, s, bs) for s in range(5)])   # 20 sequences = 2 epochs
    starts = rows[:, 0].astype(int)   # token value == position (mod 251) identifies the window
    assert sorted(starts[:10]) == list(range(0, 80, 8)) and sorted(starts[10:]) == list(range(0, 80, 8))
    np.testing.assert_array_equal(rows[:, 1:], rows[:, :-1] + 1)


def test_val_batches_fixed_and_equal(austen):
    vb = val_batches(austen.val, T, eval_tokens=2048, batch=10)
    # 2048 // 32 = 64 windows, trimmed to 60 for equal batches of 10
    assert len(vb) == 6 and all(b.shape == (10, T + 1) and b.dtype == np.int32 for b in vb)
    allw = np.concatenate(vb)
    np.testing.assert_array_equal(allw, _rows(austen.val, np.arange(60), T))
    again = val_batches(austen.val, T, eval_tokens=2048, batch=10)
    assert all(np.array_equal(a, b) for a, b in zip(vb, again))
    # limited by the size of the val split
    vb = val_batches(austen.val, T, eval_tokens=10 ** 9, batch=16)
    assert len(vb) == ((VAL - 1) // T) // 16 and all(b.shape == (16, T + 1) for b in vb)


# ---------------------------------------------------------------------------
# User data.

def test_text_file(tmp_path):
    p = tmp_path / "a.txt"
    data = ("hello world, " * 100).encode()
    p.write_bytes(data)
    c = load_corpus(DataConfig(corpus=str(p), seq_len=8, val_tokens=100), 256)
    assert c.train.tobytes() == data[:-100] and c.val.tobytes() == data[-100:]


def test_text_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_bytes(b"B" * 300)
    (tmp_path / "a.txt").write_bytes(b"A" * 300)
    (tmp_path / "sub" / "c.txt").write_bytes(b"C" * 300)
    (tmp_path / "notes.md").write_bytes(b"M" * 300)
    want = b"A" * 300 + b"\n\n" + b"B" * 300 + b"\n\n" + b"C" * 300
    assert corpus_text(str(tmp_path)) == want
    c = load_corpus(DataConfig(corpus=str(tmp_path), seq_len=8, val_tokens=50), 256)
    assert c.train.tobytes() + c.val.tobytes() == want


def test_bin_uint16_memmapped(tmp_path):
    ids = (np.arange(3000) * 7 % 1000).astype(np.uint16)
    p = tmp_path / "tok.bin"
    ids.tofile(p)
    c = load_corpus(DataConfig(corpus=str(p), seq_len=16, val_tokens=500), 1024)
    assert isinstance(c.train, np.memmap)
    np.testing.assert_array_equal(c.train, ids[:-500])
    np.testing.assert_array_equal(c.val, ids[-500:])
    b = batch_at(c.train, 0, 0, BatchSchedule(((0, 4),), 16))
    assert b.shape == (4, 17) and b.dtype == np.int32 and b.max() < 1000


def test_npy(tmp_path):
    ids = (np.arange(3000) % 300).astype(np.int32)
    p = tmp_path / "tok.npy"
    np.save(p, ids)
    c = load_corpus(DataConfig(corpus=str(p), seq_len=16, val_tokens=500), 300)
    assert isinstance(c.train, np.memmap)
    np.testing.assert_array_equal(np.concatenate([c.train, c.val]), ids)


def test_bpe_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("BSZ_LR_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "then", "sleeps",
             "under", "a", "tree", "while", "rain", "falls", "softly", "on", "leaves"]
    lines = [" ".join(rng.choice(words, size=12)) + "." for _ in range(600)]
    text = "\n".join(lines) + "\n"
    p = tmp_path / "small.txt"
    p.write_text(text)
    cfg = DataConfig(corpus=str(p), tokenizer="bpe", bpe_vocab=300, seq_len=16, val_tokens=500)
    c = load_corpus(cfg, 300)
    ids = np.concatenate([c.train, c.val])
    assert ids.max() < 300 and ids.min() >= 0
    assert ids.size < len(text.encode()) * 0.7        # BPE merges compress the text
    cached = list((tmp_path / "cache").glob("bpe-*.npy"))
    assert len(cached) == 1
    np.testing.assert_array_equal(tokenize(cfg), ids)   # second call: from the cache
    # the saved tokenizer decodes the ids back to the text
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(cached[0].with_suffix(".json")))
    assert tok.decode([int(i) for i in ids]) == text


# ---------------------------------------------------------------------------
# Errors: one-line DataError naming the problem.

def _data_error(cfg, vocab=256, match=None):
    with pytest.raises(DataError) as e:
        load_corpus(cfg, vocab)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("data"), msg
    if match:
        assert match in msg, msg
    return msg


def test_missing_path(tmp_path):
    for name in ("nope.txt", "nope.npy", "nope.bin", "nope"):
        msg = _data_error(DataConfig(corpus=str(tmp_path / name)), match="not a known corpus")
        assert name in msg


def test_empty_text_file(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"")
    _data_error(DataConfig(corpus=str(tmp_path / "e.txt")), match="empty")


def test_empty_npy(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros(0, np.int32))
    _data_error(DataConfig(corpus=str(tmp_path / "e.npy")), match="empty")


def test_directory_without_txt(tmp_path):
    (tmp_path / "x.md").write_text("hi")
    _data_error(DataConfig(corpus=str(tmp_path)), match="no .txt files")


def test_token_id_too_large(tmp_path):
    ids = np.arange(2000, dtype=np.int32) % 200
    ids[123] = 1000
    np.save(tmp_path / "big.npy", ids)
    msg = _data_error(DataConfig(corpus=str(tmp_path / "big.npy"), seq_len=8, val_tokens=100),
                      match="vocab_size=256")
    assert "1000" in msg


def test_negative_token_id(tmp_path):
    ids = np.arange(2000, dtype=np.int32) % 200
    ids[5] = -3
    np.save(tmp_path / "neg.npy", ids)
    _data_error(DataConfig(corpus=str(tmp_path / "neg.npy"), seq_len=8, val_tokens=100), match="negative")


def test_seq_len_too_long_for_data(tmp_path):
    (tmp_path / "s.txt").write_bytes(b"x" * 200)
    msg = _data_error(DataConfig(corpus=str(tmp_path / "s.txt"), seq_len=128, val_tokens=100),
                      match="data.seq_len")
    assert "200" in msg
    # the val split alone too short also fails
    (tmp_path / "l.txt").write_bytes(b"x" * 5000)
    _data_error(DataConfig(corpus=str(tmp_path / "l.txt"), seq_len=128, val_tokens=64), match="data.seq_len")


@pytest.mark.parametrize("name, payload", [
    ("x.npy", b"\x00garbage bytes that are not an npy file\xff" * 10),
    ("x.bin", b"\x01\x02\x03"),        # odd byte count: not uint16
])
def test_corrupt_token_file(tmp_path, name, payload):
    (tmp_path / name).write_bytes(payload)
    _data_error(DataConfig(corpus=str(tmp_path / name)), match="cannot read token array")


@pytest.mark.parametrize("arr", [np.zeros((10, 10), np.int32), np.linspace(0, 1, 100)])
def test_token_array_must_be_1d_int(tmp_path, arr):
    np.save(tmp_path / "t.npy", arr)
    _data_error(DataConfig(corpus=str(tmp_path / "t.npy")), match="1-D integers")


def test_unknown_named_corpus():
    _data_error(DataConfig(corpus="shakespeare_does_not_exist"), match="not a known corpus")

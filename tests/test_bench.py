"""The benchmark's arithmetic and a one-chunk run (not a timing test)."""

import jax

from bsz_lr.bench import flops_per_token, measure_model
from bsz_lr.config import apply_overrides
from bsz_lr.data import load_corpus
from bsz_lr.model import init_params, param_counts


def test_flops_per_token_follows_the_palm_convention(tiny_cfg):
    m = tiny_cfg.model
    counts = param_counts(jax.eval_shape(lambda: init_params(m, jax.random.key(0))), m)
    n_matmul = counts["total"] - m.vocab_size * m.d_model          # embedding lookup is free
    want = 6 * n_matmul + 12 * m.n_layers * tiny_cfg.data.seq_len * m.d_model
    assert flops_per_token(counts, tiny_cfg) == want
    moe = apply_overrides(tiny_cfg, {"model.ffn": "moe", "model.n_experts": 4, "model.top_k": 1})
    mc = param_counts(jax.eval_shape(lambda: init_params(moe.model, jax.random.key(0))), moe.model)
    assert flops_per_token(mc, moe) < 6 * (mc["total"] - 256 * 16) + 12 * 32 * 16   # active params only


def test_measure_model_runs_one_chunk(tiny_cfg):
    r = measure_model(tiny_cfg, load_corpus(tiny_cfg.data, 256), scan_steps=10, chunks=1)
    assert r["tokens_per_s"] > 0 and r["gflops"] > 0 and r["params"] == 11568

import pytest
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


def test_torch_peer_is_the_same_model(tiny_cfg):
    """Same weights and batch: equal parameter count, first-step loss and gradient norm (needs torch)."""
    import pytest
    pytest.importorskip("torch")
    from bsz_lr import bench_torch
    from bsz_lr.data import batch_at
    from bsz_lr.schedules import BatchSchedule
    b = batch_at(load_corpus(tiny_cfg.data, 256).train, 0, 0, BatchSchedule.from_config(tiny_cfg))
    p = bench_torch.parity(tiny_cfg, init_params(tiny_cfg.model, jax.random.key(0)), b)
    assert p["jax_params"] == p["torch_params"]
    assert abs(p["jax_loss"] - p["torch_loss"]) < 1e-5 * p["jax_loss"]
    assert abs(p["jax_grad_norm"] - p["torch_grad_norm"]) < 1e-4 * p["jax_grad_norm"]


def test_bench_without_torch_says_how_to_get_it(monkeypatch, capsys):
    from bsz_lr import bench, bench_torch
    monkeypatch.setattr(bench_torch, "torch", None)
    assert bench.main(peer_only=True) == 1
    assert "pip install -e '.[bench]'" in capsys.readouterr().out


def test_time_breakdown_reports_every_part(tiny_cfg):
    from bsz_lr.bench import time_breakdown
    b = time_breakdown(tiny_cfg, load_corpus(tiny_cfg.data, 256))
    parts = ["step (scan 10)", "step (1 per call)", "fwd+bwd", "forward", "optimizer", "attention",
             "linear layers", "head + CE", "rest of fwd+bwd"]
    assert list(b) == parts and all(b[k] > 0 for k in parts[:-1])
    assert abs(b["fwd+bwd"] - b["attention"] - b["linear layers"] - b["head + CE"] - b["rest of fwd+bwd"]) < 1e-9


def test_profile_attributes_kernel_time_to_model_operations(tiny_cfg):
    from bsz_lr.bench import profile_step
    rows = profile_step(tiny_cfg, top=500)
    assert rows and all(0 < r["share"] <= 1 and r["ms_per_step"] > 0 for r in rows)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    ops = " ".join(r["op"] for r in rows)
    assert "transpose(jvp(Transformer))" in ops and "block_*" in ops     # backward pass, layers merged

"""`make bench`: training throughput and achieved FLOP/s beside the machine's matmul ceiling.

FLOPs per token follow the PaLM convention: 6 N + 12 L T d, with N the parameters
that take part in matmuls (everything but the embedding table; the untied head
counts) and 12 L T d the attention scores and weighted sum, forward and backward,
without the causal halving.  The ceiling is the best plain jitted f32 matmul
measured in the same process, so the ratio is like-for-like on this machine.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from .config import Config, apply_overrides
from .data import batch_at, load_corpus
from .model import param_counts
from .schedules import BatchSchedule
from .train import enable_compilation_cache, step_fns

__all__ = ["matmul_ceiling", "measure_model", "main"]

# (name, overrides): ~0.1M, ~1M and ~5M parameters.
BENCH_MODELS = [
    ("tiny", ["model.size=tiny", "data.seq_len=128", "data.batch_size=32"]),
    ("small", ["model.size=small", "data.seq_len=128", "data.batch_size=32"]),
    ("medium", ["model.size=medium", "data.seq_len=256", "data.batch_size=32"]),
]


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best


def matmul_ceiling(sizes=(512, 1024, 2048), repeats: int = 5) -> dict:
    """Best GFLOP/s of a jitted f32 square matmul (chained 4x per call to hide dispatch)."""
    best = {}
    for n in sizes:
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32) / n ** 0.5
        f = jax.jit(lambda a, b: (((a @ b) @ b) @ b) @ b)
        jax.block_until_ready(f(a, b))
        best[n] = 4 * 2 * n ** 3 / _best_time(lambda: f(a, b), repeats) / 1e9
    return {"gflops": max(best.values()), "by_size": best}


def flops_per_token(counts: dict, cfg: Config) -> float:
    m = cfg.model
    n_matmul = counts["active"] - m.vocab_size * m.d_model   # drop the embedding lookup table
    return 6 * n_matmul + 12 * m.n_layers * cfg.data.seq_len * m.d_model


def measure_model(cfg: Config, corpus, scan_steps: int, chunks: int = 0, seconds: float = 0.0) -> dict:
    """Steady-state tokens/s of the real jitted train chunk (compile excluded), over `chunks`
    calls or, if `seconds` is given, as many calls as fit in that time."""
    init_state, train_chunk, _, _ = step_fns(cfg)
    state = init_state(0)
    sched = BatchSchedule.from_config(cfg)
    batches = np.stack([batch_at(corpus.train, 0, s, sched) for s in range(scan_steps)])
    lrs = np.full(scan_steps, 1e-3, np.float32)
    state, m = train_chunk(state, batches, lrs)          # compile + warm up
    jax.block_until_ready(m)
    t, done, prev = time.perf_counter(), 0, None
    while done < chunks or (seconds and time.perf_counter() - t < seconds):
        state, m = train_chunk(state, batches, lrs)
        if prev is not None:
            jax.block_until_ready(prev)      # one chunk in flight, as in the trainer
        prev, done = m, done + 1
    jax.block_until_ready(m)
    dt = time.perf_counter() - t
    tokens = done * scan_steps * cfg.data.batch_size * cfg.data.seq_len
    counts = param_counts(state.params, cfg.model)
    return {"params": counts["total"], "tokens_per_s": tokens / dt,
            "gflops": tokens * flops_per_token(counts, cfg) / dt / 1e9}


# ---------------------------------------------------------------------------
# Sweep throughput: R runs of one shape, one after another vs pinned worker processes vs vmap.

def _sweep_cfg() -> Config:
    return apply_overrides(Config(), BENCH_MODELS[0][1])


def _run_sequential(cfg, corpus, lrs, k, chunks) -> float:
    f = step_fns(cfg)
    sched = BatchSchedule.from_config(cfg)
    batches = np.stack([batch_at(corpus.train, 0, s, sched) for s in range(k)])
    jax.block_until_ready(f.train_chunk(f.init_state(0), batches, np.full(k, 1e-3, np.float32)))  # compile
    t = time.perf_counter()
    for lr in lrs:
        state = f.init_state(0)
        for _ in range(chunks):
            state, m = f.train_chunk(state, batches, np.full(k, lr, np.float32))
        jax.block_until_ready(m)
    return time.perf_counter() - t


def _run_vmap(cfg, corpus, lrs, k, chunks) -> float:
    f = step_fns(cfg, replicas=True)
    sched = BatchSchedule.from_config(cfg)
    batches = np.stack([batch_at(corpus.train, 0, s, sched) for s in range(k)])
    lr_RxK = np.repeat(np.asarray(lrs, np.float32)[:, None], k, axis=1)
    jax.block_until_ready(f.train_chunk(f.init_state([0] * len(lrs)), batches, lr_RxK))        # compile
    t = time.perf_counter()
    state = f.init_state([0] * len(lrs))
    for _ in range(chunks):
        state, m = f.train_chunk(state, batches, lr_RxK)
    jax.block_until_ready(m)
    return time.perf_counter() - t


def _worker(core, lrs, k, chunks, barrier, out):
    os.sched_setaffinity(0, {core})
    enable_compilation_cache()
    cfg = _sweep_cfg()
    corpus = load_corpus(cfg.data, cfg.model.vocab_size)
    _run_sequential(cfg, corpus, lrs[:1], k, 1)      # compile and warm up before the clock starts
    barrier.wait()
    out.put(_run_sequential(cfg, corpus, lrs, k, chunks))


def _run_workers(lrs, k, chunks, n_workers) -> float:
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(n_workers), ctx.Queue()
    cores = sorted(os.sched_getaffinity(0))
    parts = [lrs[i::n_workers] for i in range(n_workers)]
    procs = [ctx.Process(target=_worker, args=(cores[i % len(cores)], parts[i], k, chunks, barrier, out))
             for i in range(n_workers)]
    for p in procs:
        p.start()
    times = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return max(times)


def sweep_throughput(quick: bool) -> list[dict]:
    cfg = _sweep_cfg()
    corpus = load_corpus(cfg.data, cfg.model.vocab_size)
    lrs, k = [1e-3, 2e-3, 3e-3, 4e-3], 10
    chunks = 2 if quick else 15
    tokens = len(lrs) * chunks * k * cfg.data.batch_size * cfg.data.seq_len
    n_workers = len(os.sched_getaffinity(0))
    rows = []
    for name, fn in [("one after another (1 process)", lambda: _run_sequential(cfg, corpus, lrs, k, chunks)),
                     (f"{n_workers} pinned worker processes", lambda: _run_workers(lrs, k, chunks, n_workers)),
                     (f"jax.vmap over {len(lrs)} LRs (1 program)", lambda: _run_vmap(cfg, corpus, lrs, k, chunks))]:
        dt = fn()
        rows.append({"mode": name, "tokens_per_s": tokens / dt})
    base = rows[0]["tokens_per_s"]
    for r in rows:
        r["speedup"] = r["tokens_per_s"] / base
    return rows


def main(quick: bool = False) -> int:
    enable_compilation_cache()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} x{jax.device_count()} "
          f"({jax.default_backend()})")
    ceiling = matmul_ceiling(repeats=2 if quick else 5)
    print(f"f32 matmul ceiling: {ceiling['gflops']:.1f} GFLOP/s "
          f"({', '.join(f'{n}: {g:.0f}' for n, g in ceiling['by_size'].items())})")
    corpus = load_corpus(Config().data, 256)
    rows = []
    # The machine is shared: the ceiling is also re-measured right before each row ("adjacent"),
    # so each ratio compares like with like; "% run ceiling" uses the best ceiling of the run.
    print(f"{'model':8} {'params':>9} {'T':>4} {'B':>3} {'scan':>4} {'tokens/s':>10} {'GFLOP/s':>8} "
          f"{'% run ceiling':>13} {'adjacent ceiling':>16} {'% adjacent':>10}")
    for name, ov in BENCH_MODELS:
        cfg = apply_overrides(Config(), ov)
        for k in ((10,) if quick else (1, 10)):
            near = matmul_ceiling(sizes=(1024,), repeats=3)["gflops"]
            r = measure_model(cfg, corpus, k, chunks=2, seconds=1.0 if quick else 15.0)
            r.update(model=name, T=cfg.data.seq_len, B=cfg.data.batch_size, scan=k,
                     pct_ceiling=100 * r["gflops"] / ceiling["gflops"], adjacent_ceiling=near,
                     pct_adjacent=100 * r["gflops"] / near)
            rows.append(r)
            print(f"{name:8} {r['params']:>9,} {r['T']:>4} {r['B']:>3} {k:>4} {r['tokens_per_s']:>10,.0f} "
                  f"{r['gflops']:>8.1f} {r['pct_ceiling']:>12.1f}% {near:>16.1f} {r['pct_adjacent']:>9.1f}%",
                  flush=True)
    print("\nsweep of 4 LRs, model tiny (T=128, B=32, scan 10), steady state:")
    sweep = sweep_throughput(quick)
    for r in sweep:
        print(f"  {r['mode']:40} {r['tokens_per_s']:>10,.0f} tokens/s  {r['speedup']:.2f}x", flush=True)
    print(json.dumps({"ceiling_gflops": ceiling["gflops"], "rows": rows, "sweep": sweep}))
    return 0

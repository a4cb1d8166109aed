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
# The PyTorch peer table adds the ~10M model of the issue that asked for it.
PEER_MODELS = BENCH_MODELS + [("base", ["model.size=base", "data.seq_len=256", "data.batch_size=16"])]


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
    f = step_fns(cfg)
    init_state, train_chunk = f.init_state, f.train_chunk
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


# ---------------------------------------------------------------------------
# The PyTorch peer: the same model, shapes and AdamW, timed alternately with bsz_lr's step.

def torch_peer(quick: bool, models=None, rounds: int = 0, seconds: float = 0.0) -> list[dict]:
    """Per model: parity (same weights, one step) and tokens/s of bsz_lr's step (1 and 10 steps per
    call), PyTorch eager and torch.compile, measured in alternation for `rounds` rounds."""
    from . import bench_torch as bt
    from .model import init_params
    rounds = rounds or (1 if quick else 3)
    seconds = seconds or (1.0 if quick else 5.0)
    rows = []
    for name, ov in models or PEER_MODELS:
        cfg = apply_overrides(Config(), ov)
        corpus = load_corpus(cfg.data, cfg.model.vocab_size)
        sched = BatchSchedule.from_config(cfg)
        batches = [batch_at(corpus.train, 0, s, sched) for s in range(10)]
        params = init_params(cfg.model, jax.random.key(0))
        par = bt.parity(cfg, params, batches[0])
        peers = {"torch eager": bt.TorchPeer(params, cfg), "torch compile": bt.TorchPeer(params, cfg, compile=True)}
        peers["torch compile"].tokens_per_s(batches, 0.0)            # compile before the clock starts
        runs: dict[str, list[float]] = {k: [] for k in ("bsz_lr step", "bsz_lr scan 10", *peers)}
        for _ in range(rounds):
            runs["bsz_lr step"].append(measure_model(cfg, corpus, 1, chunks=2, seconds=seconds)["tokens_per_s"])
            runs["bsz_lr scan 10"].append(measure_model(cfg, corpus, 10, chunks=2, seconds=seconds)["tokens_per_s"])
            for k, peer in peers.items():
                runs[k].append(peer.tokens_per_s(batches, seconds))
        paired = [max(a, b) / max(c, d) for a, b, c, d in zip(runs["bsz_lr step"], runs["bsz_lr scan 10"],
                                                           runs["torch eager"], runs["torch compile"])]
        rows.append({"model": name, "T": cfg.data.seq_len, "B": cfg.data.batch_size, "parity": par,
                     "tokens_per_s": {k: {"min": min(v), "median": float(np.median(v))} for k, v in runs.items()},
                     "ratio_best": {"median": float(np.median(paired)), "min": min(paired), "max": max(paired)}})
    return rows


def _print_peer(rows: list[dict]) -> None:
    modes = ("bsz_lr step", "bsz_lr scan 10", "torch eager", "torch compile")
    print("model    T   B   " + "  ".join(f"{m:>20}" for m in modes) + "   bsz_lr best / torch best (per round)")
    for r in rows:
        t = r["tokens_per_s"]
        cells = "  ".join(f"{t[m]['median']:>10,.0f} ({t[m]['min']:>7,.0f})" for m in modes)
        q = r["ratio_best"]
        print(f"{r['model']:8} {r['T']:>3} {r['B']:>3} {cells}   {q['median']:.2f}x ({q['min']:.2f}-{q['max']:.2f})")
    for r in rows:
        p = r["parity"]
        print(f"  parity {r['model']}: params {p['jax_params']:,} / {p['torch_params']:,}, first-step loss "
              f"{p['jax_loss']:.6f} / {p['torch_loss']:.6f}, grad norm {p['jax_grad_norm']:.6f} / "
              f"{p['torch_grad_norm']:.6f}")


# ---------------------------------------------------------------------------
# Where the time of a step goes: each part jitted and timed alone (ms per training step).

def _ms(fn, *args, repeats: int = 7) -> float:
    """Median milliseconds of fn(*args) after a warm-up call (JAX results are waited for; other
    values, e.g. a torch call that returns None, are synchronous already)."""
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def time_breakdown(cfg: Config, corpus) -> dict:
    """Milliseconds per training step of the whole step and of its parts, each timed alone.

    step (scan 10) and step (1 per call): the trainer's compiled chunk; fwd+bwd: loss and
    gradients; forward: loss only; optimizer: clip + Adam + WD + apply; attention: the causal
    attention core (scores, mask, softmax, weighted sum), forward and backward, x layers; linear
    layers: every projection matmul (q k v o, gate up down), forward and both backward matmuls,
    x layers; head + CE: the output matmul and cross-entropy, forward and backward; the rest of
    fwd+bwd (norms, RoPE, SwiGLU product, embedding, residuals, copies) is what is left."""
    import functools
    import optax
    from .model import Transformer, causal_attention, init_params
    from .train import loss_fn
    from .optim import build_optimizer
    m, B, T = cfg.model, cfg.data.batch_size, cfg.data.seq_len
    H, K, D, Fw, L, V = m.n_heads, m.d_head, m.d_model, m.ffn_width, m.n_layers, m.vocab_size
    sched = BatchSchedule.from_config(cfg)
    out = {}
    for k in (10, 1):
        r = measure_model(cfg, corpus, k, chunks=3 if k == 10 else 20)
        out[f"step (scan {k})" if k == 10 else "step (1 per call)"] = 1e3 * B * T / r["tokens_per_s"]
    model = Transformer(m)
    params = init_params(m, jax.random.key(0))
    batch = jnp.asarray(batch_at(corpus.train, 0, 0, sched))
    loss = functools.partial(loss_fn, model)
    out["fwd+bwd"] = _ms(jax.jit(jax.value_and_grad(loss, has_aux=True)), params, batch)
    out["forward"] = _ms(jax.jit(loss), params, batch)
    opt = build_optimizer(cfg.optim, params, m)
    grads = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), params)
    upd = jax.jit(lambda g, s, p: optax.apply_updates(p, opt.update(g, s, p)[0]))
    out["optimizer"] = _ms(upd, grads, opt.init(params), params)
    rng = np.random.default_rng(0)
    x = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
    q, kk, v, w = x(B, T, H, K), x(B, T, H, K), x(B, T, H, K), x(B, T, H, K)
    att = jax.jit(jax.grad(lambda q, k, v: jnp.sum(causal_attention(q, k, v, K ** -0.5) * w), argnums=(0, 1, 2)))
    out["attention"] = L * _ms(att, q, kk, v)
    lin = jax.jit(jax.grad(lambda a, b, g: jnp.sum((a @ b) * g), argnums=(0, 1)))
    per_layer = sum(n * _ms(lin, x(B * T, i), x(i, o), x(B * T, o)) for n, i, o in [(4, D, D), (2, D, Fw), (1, Fw, D)])
    out["linear layers"] = L * per_layer
    labels = jnp.asarray(rng.integers(0, V, (B * T,)))
    ce = jax.jit(jax.grad(lambda h, wh: optax.softmax_cross_entropy_with_integer_labels(h @ wh, labels).mean(),
                          argnums=(0, 1)))
    out["head + CE"] = _ms(ce, x(B * T, D), x(D, V))
    out["rest of fwd+bwd"] = out["fwd+bwd"] - out["attention"] - out["linear layers"] - out["head + CE"]
    return out


def _peer_breakdown(cfg: Config) -> dict:
    """The PyTorch side of the same parts, where it has them as separate calls."""
    from . import bench_torch as bt
    if not bt.available():
        return {}
    torch, F = bt.torch, bt.F
    m, B, T = cfg.model, cfg.data.batch_size, cfg.data.seq_len
    H, K, D, Fw, L = m.n_heads, m.d_head, m.d_model, m.ffn_width, m.n_layers

    q, k, v = (torch.randn(B, H, T, K, requires_grad=True) for _ in range(3))
    w = torch.randn(B, H, T, K)
    out = {"attention": L * _ms(lambda: (F.scaled_dot_product_attention(q, k, v, is_causal=True) * w).sum().backward())}
    tot = 0.0
    for n, i, o in [(4, D, D), (2, D, Fw), (1, Fw, D)]:
        a, b, g = torch.randn(B * T, i, requires_grad=True), torch.randn(i, o, requires_grad=True), torch.randn(B * T, o)
        tot += n * _ms(lambda: ((a @ b) * g).sum().backward())
    out["linear layers"] = L * tot
    # The whole forward + backward of the eager model from bsz_lr's initial weights, and its head +
    # cross-entropy, so that "the rest" is the same subtraction on both sides.
    from .model import init_params
    peer = bt.TorchPeer(init_params(m, jax.random.key(0)), cfg)
    tokens = torch.randint(0, m.vocab_size, (B, T + 1))

    def fwd_bwd():
        logits = peer.model(tokens[:, :-1])
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).backward()
    out["fwd+bwd"] = _ms(fwd_bwd)
    h, wh = torch.randn(B * T, D, requires_grad=True), torch.randn(D, m.vocab_size, requires_grad=True)
    labels = torch.randint(0, m.vocab_size, (B * T,))
    out["head + CE"] = _ms(lambda: F.cross_entropy(h @ wh, labels).backward())
    out["rest of fwd+bwd"] = out["fwd+bwd"] - out["attention"] - out["linear layers"] - out["head + CE"]
    return out


def _print_breakdown() -> list[dict]:
    rows = []
    print("ms per training step, each part timed alone (jax; torch for the parts it has as calls):")
    for name, ov in PEER_MODELS:
        cfg = apply_overrides(Config(), ov)
        b = time_breakdown(cfg, load_corpus(cfg.data, cfg.model.vocab_size))
        t = _peer_breakdown(cfg)
        print(f"  {name} (T={cfg.data.seq_len}, B={cfg.data.batch_size}): " + ", ".join(
            f"{k} {v:.1f}" + (f" [torch {t[k]:.1f}]" if k in t else "") for k, v in b.items()), flush=True)
        rows.append({"model": name, "jax_ms": b, "torch_ms": t})
    return rows


def kernel_ab(models=("tiny", "medium")) -> list[dict]:
    """Each piece of one layer alone, forward + backward, in XLA and in torch (eager and compiled),
    from the same weights: the minimal A/Bs behind the peer gap.  ms per call, medians of 7."""
    from . import bench_torch as bt
    from .model import Block, RMSNorm, causal_attention, init_params, rope
    torch, F = bt.torch, bt.F
    rows = []
    for name in models:
        cfg = apply_overrides(Config(), dict(PEER_MODELS)[name])
        m, B, T = cfg.model, cfg.data.batch_size, cfg.data.seq_len
        H, K, D = m.n_heads, m.d_head, m.d_model
        p = init_params(m, jax.random.key(0))["block_0"]
        rng = np.random.default_rng(0)
        x = lambda *shape: rng.normal(size=shape).astype(np.float32)
        x_BxTxD, q4 = x(B, T, D), [x(B, T, H, K) for _ in range(4)]
        blk_t = bt._Block(bt.jax_to_numpy(p), H, m.rope_base)
        mlp = lambda h: blk_t.down(F.silu(blk_t.gate(h)) * blk_t.up(h))
        jx = {   # loss = sum(piece(inputs) * w): a fixed cotangent
            "attention core": (lambda q, k, v, w: jnp.sum(causal_attention(q, k, v, K ** -0.5) * w), q4),
            "RoPE": (lambda q, w: jnp.sum(rope(q, m.rope_base) * w), [q4[0], q4[3]]),
            "RMSNorm": (lambda h, w: jnp.sum(RMSNorm().apply({"params": p["norm_attn"]}, h) * w),
                        [x_BxTxD, x_BxTxD]),
            "SwiGLU MLP": (lambda h, w: jnp.sum(_jax_mlp(p["mlp"], h) * w), [x_BxTxD, x_BxTxD]),
            "whole block": (lambda h, w: jnp.sum(Block(m).apply({"params": p}, h)[0] * w), [x_BxTxD, x_BxTxD]),
        }
        tq = lambda a: torch.tensor(a).transpose(1, 2).contiguous()      # B x T x H x K -> B x H x T x K
        tt = {
            "attention core": (lambda q, k, v, w: (F.scaled_dot_product_attention(q, k, v, is_causal=True) * w).sum(),
                               [tq(a) for a in q4]),
            "RoPE": (lambda q, w: (blk_t.rope(q) * w).sum(), [tq(q4[0]), tq(q4[3])]),
            "RMSNorm": (lambda h, w: (blk_t.norm_attn(h) * w).sum(), [torch.tensor(x_BxTxD)] * 2),
            "SwiGLU MLP": (lambda h, w: (mlp(h) * w).sum(), [torch.tensor(x_BxTxD)] * 2),
            "whole block": (lambda h, w: (blk_t(h) * w).sum(), [torch.tensor(x_BxTxD)] * 2),
        }
        for piece, (f, args) in jx.items():
            g = jax.jit(jax.grad(f, argnums=0))
            args = [jnp.asarray(a) for a in args]
            row = {"model": name, "piece": piece, "xla_ms": _ms(g, *args)}
            ft, targs = tt[piece]
            targs = [a.clone().requires_grad_(i == 0) for i, a in enumerate(targs)]
            for mode, fn in (("torch_eager_ms", ft), ("torch_compile_ms", torch.compile(ft))):
                row[mode] = _ms(lambda: fn(*targs).backward())
            row["xla_over_torch_best"] = row["xla_ms"] / min(row["torch_eager_ms"], row["torch_compile_ms"])
            rows.append(row)
            print(f"  {name:7} {piece:15} xla {row['xla_ms']:8.2f}  torch eager {row['torch_eager_ms']:8.2f}  "
                  f"compile {row['torch_compile_ms']:8.2f}  xla / torch best {row['xla_over_torch_best']:.2f}x",
                  flush=True)
    return rows


def _jax_mlp(p, h_BxTxD):
    g, u = h_BxTxD @ p["gate"]["kernel"], h_BxTxD @ p["up"]["kernel"]
    return (jax.nn.silu(g) * u) @ p["down"]["kernel"]


def profile_step(cfg: Config, top: int = 25, label: str = "") -> list[dict]:
    """XLA's own profile of one compiled chunk (10 steps): each executed kernel's time, summed by the
    model operation it came from (the op_name XLA keeps from the JAX trace, layers merged)."""
    import collections
    import gzip
    import glob
    import re
    import tempfile
    corpus = load_corpus(cfg.data, cfg.model.vocab_size)
    f = step_fns(cfg)
    init_state, train_chunk = f.init_state, f.train_chunk
    state, K = init_state(0), 10
    sched = BatchSchedule.from_config(cfg)
    batches = np.stack([batch_at(corpus.train, 0, s, sched) for s in range(K)])
    lrs = np.full(K, 1e-3, np.float32)
    hlo = train_chunk.lower(state, batches, lrs).compile().as_text()
    op_of = {mm.group(1): mm.group(2) for mm in re.finditer(
        r'^\s*(?:ROOT )?%(\S+) = .*?metadata=\{op_name="([^"]+)"', hlo, re.M)}
    state, m = train_chunk(state, batches, lrs)
    jax.block_until_ready(m)
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            jax.block_until_ready(train_chunk(state, batches, lrs)[1])
        events = json.load(gzip.open(glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]))
    events = events["traceEvents"] if isinstance(events, dict) else events
    by_op = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("dur") and e["name"] in op_of:
            op = re.sub(r"^jit\(chunk\)/while/body/(closed_call/)?", "", op_of[e["name"]])
            by_op[re.sub(r"block_\d+", "block_*", op)] += e["dur"] / 1e3 / K
    total = sum(by_op.values())
    print(f"  {label}: {total:.1f} ms per step in XLA kernels (under the profiler); by operation "
          "(transpose(jvp(...)) = backward pass):")
    rows = []
    for op, ms in by_op.most_common(top):
        rows.append({"op": op, "ms_per_step": ms, "share": ms / total})
        print(f"  {ms:8.2f} ms {100 * ms / total:5.1f}%  {op}")
    return rows


def batch_throughput(quick: bool = False, sizes=("micro", "tiny"), batches=(4, 16, 64, 256),
                     seq_len: int = 64) -> list[dict]:
    """Tokens/s per batch size at the batch-size sweep's shapes (T = 64), one pinned core as a
    sweep worker has, with 1 and 10 steps per jitted call and 2 micro-batches: where the small
    batches' fixed per-step cost goes."""
    corpus = load_corpus(Config().data, 256)
    rows = []
    for size in sizes:
        for b in batches:
            for k, mb in ((1, 1), (10, 1), (10, 2)):
                cfg = apply_overrides(Config(), {"model.size": size, "data.seq_len": seq_len, "data.batch_size": b,
                                                 "train.microbatches": mb, "train.scan_steps": k})
                r = measure_model(cfg, corpus, k, chunks=2, seconds=0.5 if quick else 4.0)
                rows.append({"model": size, "B": b, "scan": k, "microbatches": mb, **r})
                print(f"  {size:6} B={b:>4} x {seq_len} scan {k:>2} micro {mb}: {r['tokens_per_s']:>9,.0f} tokens/s",
                      flush=True)
    return rows


def moe_throughput(quick: bool = False, sizes=("micro", "tiny", "small"), experts=(4, 8)) -> list[dict]:
    """Tokens/s of MoE models (top-2, active FFN width ~ the dense one) with the experts as sorted
    tokens + lax.ragged_dot ("ragged") or every expert on every token ("dense"), against the dense
    model of the same size (T = 64, B = 32, 10 steps per call, one core like a sweep worker)."""
    corpus = load_corpus(Config().data, 256)
    rows = []
    for size in sizes:
        base = {"model.size": size, "data.seq_len": 64, "data.batch_size": 32}
        dense = measure_model(apply_overrides(Config(), base), corpus, 10, chunks=2,
                              seconds=0.5 if quick else 4.0)["tokens_per_s"]
        for e in experts:
            for impl in ("ragged", "dense"):
                cfg = apply_overrides(Config(), {**base, "model.ffn": "moe", "model.n_experts": e,
                                                 "model.top_k": 2, "model.moe_impl": impl})
                r = measure_model(cfg, corpus, 10, chunks=2, seconds=0.5 if quick else 4.0)
                rows.append({"model": size, "experts": e, "impl": impl, "dense_tokens_per_s": dense, **r})
                print(f"  {size:6} E={e} top-2 {impl:6}: {r['tokens_per_s']:>9,.0f} tokens/s "
                      f"({r['tokens_per_s'] / dense:.2f}x the dense FFN model)", flush=True)
    return rows


OPTIM_ARMS = (("AdamW", {"optim.name": "adamw"}), ("Muon", {"optim.name": "muon"}),
              ("Mousse", {"optim.name": "mousse"}),
              ("Muon, f32 Newton-Schulz", {"optim.name": "muon", "optim.ns_dtype": "float32"}),
              ("Mousse, f32 Newton-Schulz", {"optim.name": "mousse", "optim.ns_dtype": "float32"}))


def optim_throughput(quick: bool = False, sizes=("micro", "tiny", "small"), rounds: int = 3) -> list[dict]:
    """Time per training step of AdamW, Muon and Mousse (Newton-Schulz in bf16, the default, and
    f32) at the Mousse experiments' shape (T = 64, B = 16, 10 steps per call, one core), the
    optimizers timed alternately over `rounds` rounds (median): Mousse's overhead over Muon."""
    corpus = load_corpus(Config().data, 256)
    rows = []
    for size in sizes:
        cfgs = [(label, apply_overrides(Config(), {"model.size": size, "data.seq_len": 64, "data.batch_size": 16,
                                                   **ov})) for label, ov in OPTIM_ARMS]
        times = {label: [] for label, _ in cfgs}
        for _ in range(1 if quick else rounds):
            for label, cfg in cfgs:
                r = measure_model(cfg, corpus, 10, chunks=2, seconds=0.5 if quick else 3.0)
                times[label].append(1e3 * cfg.data.batch_size * cfg.data.seq_len / r["tokens_per_s"])
        muon = float(np.median(times["Muon"]))
        for label, _ in cfgs:
            ms = float(np.median(times[label]))
            rows.append({"model": size, "optimizer": label, "ms_per_step": ms, "vs_muon": ms / muon,
                         "rounds": len(times[label])})
            print(f"  {size:6} {label:26} {ms:7.2f} ms/step  ({ms / muon:.3f}x Muon)", flush=True)
    return rows


def _on_one_core(fn, *a):
    """Run fn in this process restricted to one core (as a sweep worker), restoring the affinity."""
    if not hasattr(os, "sched_setaffinity"):
        return fn(*a)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        return fn(*a)
    finally:
        os.sched_setaffinity(0, before)


def main(quick: bool = False, peer_only: bool = False, where: bool = False, batches: bool = False,
         moe: bool = False, optim: bool = False, kernels: bool = False, profile: str | None = None) -> int:
    enable_compilation_cache()
    from . import bench_torch
    if profile:
        if profile not in dict(PEER_MODELS):
            raise ValueError(f"bench --profile: unknown model {profile!r}; one of {', '.join(dict(PEER_MODELS))}")
        cfg = apply_overrides(Config(), dict(PEER_MODELS)[profile])
        print(json.dumps({"profile": profile_step(cfg, label=profile)}))
        return 0
    if kernels:
        if not bench_torch.available():
            print(bench_torch.INSTALL_HINT)
            return 1
        print("one layer's pieces alone, forward + backward, ms per call (medians of 7):")
        print(json.dumps({"kernels": kernel_ab()}))
        return 0
    if optim:
        print("optimizers, ms per step (process on one core, like a pinned sweep worker):")
        print(json.dumps({"optim": _on_one_core(optim_throughput, quick)}))
        return 0
    if moe:
        print("MoE experts on CPU, tokens/s (process on one core, like a pinned sweep worker):")
        print(json.dumps({"moe": _on_one_core(moe_throughput, quick)}))
        return 0
    if batches:
        print("batch-size sweep shapes, tokens/s (process on one core, like a pinned sweep worker):")
        print(json.dumps({"batches": _on_one_core(batch_throughput, quick)}))
        return 0
    if where:
        print(json.dumps({"breakdown": _print_breakdown()}))
        return 0
    if peer_only:
        if not bench_torch.available():
            print(bench_torch.INSTALL_HINT)
            return 1
        _print_peer(peer := torch_peer(quick))
        print(json.dumps({"torch_peer": peer}))
        return 0
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
    print("\nbatch-size sweep shapes, tokens/s (one core, like a pinned sweep worker):")
    by_batch = _on_one_core(batch_throughput, quick)
    print("\nMoE experts, ragged vs dense (one core):")
    moe_rows = _on_one_core(moe_throughput, quick)
    print("\nAdamW / Muon / Mousse, ms per step (one core):")
    optim_rows = _on_one_core(optim_throughput, quick)
    peer = None
    if bench_torch.available():
        print(f"\nPyTorch peer (torch {bench_torch.torch.__version__}, {bench_torch.torch.get_num_threads()} threads), "
              "tokens/s median (min) over alternating rounds:")
        _print_peer(peer := torch_peer(quick))
    else:
        print("\n" + bench_torch.INSTALL_HINT)
    print(json.dumps({"ceiling_gflops": ceiling["gflops"], "rows": rows, "sweep": sweep, "batches": by_batch,
                      "moe": moe_rows, "optim": optim_rows, "torch_peer": peer}))
    return 0

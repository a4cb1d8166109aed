"""Optimizers as optax transforms, with per-parameter LR and weight-decay multipliers.

The learning rate is an injected hyperparameter: the train step sets it every
step from a host-computed schedule (`set_lr`), so the peak LR, the schedule and
the run length are data, not compile-time constants, and an LR sweep reuses one
compiled step.  Multipliers come from `parametrization` (all 1 under SP; muP
changes them per role).

optim.name = "muon" | "mousse": the matrix roles (MATRIX_OPT_ROLES: attention and FFN / expert
matrices, expert stacks batched over their leading axis) take heavy-ball momentum + Muon's
Newton-Schulz (`muon`) or `mousse.scale_by_mousse`, then sqrt(fan_out / fan_in) and decoupled
weight decay; embeddings, head, router and norm gains take AdamW at lr * adam_lr_ratio.  Where
our Muon differs from `optax.contrib.muon`: Nesterov off by default (the heavy-ball momentum
Mousse's reference uses; `optim.nesterov`), the shape factor sqrt(fan_out / fan_in) unclipped
(optax: sqrt(max(1, fan_out / fan_in))), Newton-Schulz in `optim.ns_dtype` (bf16 by default, as
in the reference; optax: the input's dtype), and the routing by parameter role, not by ndim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from . import parametrization as pz
from .config import ModelConfig, OptimConfig
from .model import param_roles
from .mousse import newton_schulz, scale_by_fan_ratio, scale_by_mousse

__all__ = ["build_optimizer", "set_lr", "get_lr", "scale_by_tree", "add_decayed_weights_tree", "MATRIX_OPT_ROLES"]

MATRIX_OPT_ROLES = ("hidden", "out_proj", "expert", "expert_out")   # what Muon / Mousse update


def scale_by_tree(mults) -> optax.GradientTransformation:
    """Multiply each update leaf by the matching leaf of `mults` (a pytree of floats)."""
    def update(updates, state, params=None):
        return jax.tree.map(lambda u, m: u * m, updates, mults), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def add_decayed_weights_tree(wd) -> optax.GradientTransformation:
    """updates + wd * params, with a per-leaf decay coefficient (0 switches it off)."""
    def update(updates, state, params):
        return jax.tree.map(lambda u, p, w: u + w * p if w else u, updates, params, wd), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def build_optimizer(cfg: OptimConfig, params, model_cfg: ModelConfig) -> optax.GradientTransformation:
    """AdamW: clip -> Adam moments -> [decoupled WD] -> per-param LR mults -> [WD] -> -lr.

    The decay acts on the roles in `cfg.decay_roles`, with the parameterization's per-role WD
    multipliers.  wd_mode "coupled" adds it before the LR multipliers (they scale it too, as in
    torch's AdamW); "independent" adds it after them, so the decay step is lr * wd * param for
    every role whatever its LR multiplier (muP keeps eta * lambda per module fixed).
    """
    roles = param_roles(params)
    lr_mult = pz.lr_multipliers(roles, model_cfg)
    decays = set(cfg.decay_roles)
    wd = jax.tree.map(lambda r, m: cfg.weight_decay * m if r in decays else 0.0,
                      roles, pz.wd_multipliers(roles, model_cfg, cfg.wd_mode))
    decay, mult = add_decayed_weights_tree(wd), scale_by_tree(lr_mult)
    if cfg.name != "adamw":
        return _matrix_optimizer(cfg, roles, wd, mult)

    def chain(learning_rate):
        return optax.chain(
            optax.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm > 0 else optax.identity(),
            optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps),
            *((decay, mult) if cfg.wd_mode == "coupled" else (mult, decay)),
            optax.scale_by_learning_rate(learning_rate),
        )
    return optax.inject_hyperparams(chain)(learning_rate=cfg.lr)


def _orthogonalize(cfg: OptimConfig, dtype) -> optax.GradientTransformation:
    def update(updates, state, params=None):
        return jax.tree.map(lambda u: newton_schulz(u, cfg.ns_steps, dtype=dtype), updates), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _matrix_direction(cfg: OptimConfig) -> optax.GradientTransformation:
    dtype = jnp.bfloat16 if cfg.ns_dtype == "bfloat16" else jnp.float32
    if cfg.name == "mousse":
        return scale_by_mousse(beta=cfg.momentum, factor_beta=cfg.mousse_beta, alpha=cfg.mousse_alpha,
                               refresh_every=cfg.mousse_refresh, eps=cfg.mousse_eps, ns_steps=cfg.ns_steps,
                               ns_dtype=dtype, trace_normalize=cfg.mousse_trace_norm, graft=cfg.mousse_graft,
                               sides=cfg.mousse_sides)
    # Muon: heavy-ball momentum (optax.trace: M <- mu M + G, Mousse's step 1) and Newton-Schulz in
    # ns_dtype (mousse.newton_schulz, tested equal to optax.contrib.scale_by_muon in float32; that
    # transform itself keeps an EMA, the same direction after Newton-Schulz, and runs Newton-Schulz
    # in the momentum's dtype, so it cannot do bf16 iterations on f32 momentum).
    return optax.chain(optax.trace(decay=cfg.momentum, nesterov=cfg.nesterov), _orthogonalize(cfg, dtype))


def _matrix_optimizer(cfg: OptimConfig, roles, wd, mult) -> optax.GradientTransformation:
    """Muon / Mousse on the matrix roles, AdamW on the rest (see the module docstring)."""
    labels = jax.tree.map(lambda r: "matrix" if r in MATRIX_OPT_ROLES else "adam", roles)
    decays = set(cfg.decay_roles)
    mwd = jax.tree.map(lambda r: cfg.matrix_weight_decay if r in decays else 0.0, roles)

    def chain(learning_rate):
        return optax.chain(
            optax.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm > 0 else optax.identity(),
            optax.partition({
                "matrix": optax.chain(_matrix_direction(cfg), scale_by_fan_ratio()),
                "adam": optax.chain(optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps),
                                    optax.scale(cfg.adam_lr_ratio)),
            }, labels),
            # decoupled decay, scaled like the update of its group: lr * wd (matrices), lr * ratio * wd
            add_decayed_weights_tree(jax.tree.map(lambda r, a, m: m if r in MATRIX_OPT_ROLES else a * cfg.adam_lr_ratio,
                                                  roles, wd, mwd)),
            mult,
            optax.scale_by_learning_rate(learning_rate),
        )
    return optax.inject_hyperparams(chain)(learning_rate=cfg.lr)


def set_lr(opt_state, lr):
    """Return opt_state with the injected learning rate replaced (traceable)."""
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = lr
    return opt_state._replace(hyperparams=hp)


def get_lr(opt_state):
    return opt_state.hyperparams["learning_rate"]

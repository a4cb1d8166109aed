"""Optimizers as optax transforms, with per-parameter LR and weight-decay multipliers.

The learning rate is an injected hyperparameter: the train step sets it every
step from a host-computed schedule (`set_lr`), so the peak LR, the schedule and
the run length are data, not compile-time constants, and an LR sweep reuses one
compiled step.  Multipliers come from `parametrization` (all 1 under SP; muP
changes them per role).  Muon / Mousse will be further builders here.
"""

from __future__ import annotations

import jax
import optax

from . import parametrization as pz
from .config import ModelConfig, OptimConfig
from .model import param_roles

__all__ = ["build_optimizer", "set_lr", "get_lr", "scale_by_tree", "add_decayed_weights_tree"]


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
                      roles, pz.wd_multipliers(roles, model_cfg))
    decay, mult = add_decayed_weights_tree(wd), scale_by_tree(lr_mult)

    def chain(learning_rate):
        return optax.chain(
            optax.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm > 0 else optax.identity(),
            optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps),
            *((decay, mult) if cfg.wd_mode == "coupled" else (mult, decay)),
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

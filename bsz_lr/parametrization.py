"""Parameterization: init scales, per-parameter LR / weight-decay multipliers by role, and the few
forward multipliers muP needs.  The model and the optimizer stay unchanged; they ask here.

Roles are named by the model (`model.param_roles`): embedding, head, hidden, out_proj
(attention / FFN output matrices, which GPT-2-style init shrinks with depth), router, expert,
expert_out, vector (norm gains).

model.parametrization = "sp" (standard) or "mup" (Adam muP in width; Yang et al. 2022, Tensor
Programs V), with width multiplier m = d_model / model.base_d_model (m = 1 at the base width,
where muP and SP coincide exactly):

    role                          init std              Adam LR     forward
    hidden, out_proj,             sigma / sqrt(m)       eta / m     -
      expert, expert_out            (variance ~ 1/fan_in)
    embedding, vector             sigma (unchanged)     eta         -
    head, router (readouts)       mup_readout = "mult": sigma, eta; logits x 1/m   (microsoft/mup's MuReadout)
                                  mup_readout = "zero": 0, eta / m; no multiplier
    attention                     scores x 1/d_head instead of 1/sqrt(d_head), equal at the base
                                  head dim: sqrt(K_base) / K, K_base = model.base_d_head (0: this
                                  model's d_head, so a ladder that keeps d_head fixed and grows
                                  the heads keeps 1/sqrt(d_head))

Depth (any parametrization), with depth multiplier r = n_layers / model.base_n_layers and
alpha = model.depth_alpha (0: off; 1/2: Depth-muP; 1: CompleteP): every residual branch is
multiplied by r^-alpha and the hidden-matrix Adam LR by r^(alpha - 1); the output projections
keep the base depth's GPT-2 init 1/sqrt(2 L_base) (the branch multiplier replaces it).
(CompleteP's Adam-eps correction is left to optim.eps.)

Weight decay (optim.wd_mode): "coupled" decays by lr x lr_mult x wd x wd_mult, so muP multiplies
the hidden matrices' wd by m (as microsoft/mup does) to keep eta x lambda per module fixed
(model.mup_scale_wd=false: plain wd, the product then shrinks as 1/m); "independent" decays by
lr x wd x wd_mult, already fixed, so wd_mult = 1.

Token horizon: `horizon_lr(eta_proxy, D_proxy, D_target, beta)` = eta_proxy (D_target /
D_proxy)^-beta, with beta fitted on the proxy (laws.lr.fit_lr_law's D exponent at fixed N).
"""

from __future__ import annotations

import math

import jax

from .config import ModelConfig

__all__ = ["width_mult", "depth_mult", "init_std", "lr_multipliers", "wd_multipliers", "attn_scale",
           "logit_mult", "router_mult", "branch_mult", "horizon_lr", "HIDDEN_ROLES", "READOUT_ROLES"]

HIDDEN_ROLES = ("hidden", "out_proj", "expert", "expert_out")
READOUT_ROLES = ("head", "router")


def width_mult(cfg: ModelConfig) -> float:
    """m = d_model / base_d_model under muP (1 under SP or without a base width)."""
    if cfg.parametrization != "mup" or not cfg.base_d_model:
        return 1.0
    return cfg.d_model / cfg.base_d_model


def depth_mult(cfg: ModelConfig) -> float:
    """r = n_layers / base_n_layers (1 without a base depth)."""
    return cfg.n_layers / cfg.base_n_layers if cfg.base_n_layers else 1.0


def init_std(cfg: ModelConfig, role: str) -> float:
    """Standard deviation of the normal init for a parameter of `role` (0: zero init)."""
    m = width_mult(cfg)
    std = cfg.init_std
    if role in ("out_proj", "expert_out"):
        # GPT-2's 1/sqrt(2L); with depth scaling the branch multiplier does that job, so the init
        # stays the base depth's
        L = cfg.base_n_layers if (cfg.depth_alpha and cfg.base_n_layers) else cfg.n_layers
        std = std / math.sqrt(2 * L)
    if role in HIDDEN_ROLES:
        return std / math.sqrt(m)
    if role in READOUT_ROLES and cfg.parametrization == "mup" and cfg.mup_readout == "zero":
        return 0.0
    return std


def _lr_mult(cfg: ModelConfig, role: str) -> float:
    m, r = width_mult(cfg), depth_mult(cfg)
    if role in HIDDEN_ROLES:
        return (1.0 / m) * (r ** (cfg.depth_alpha - 1.0) if cfg.depth_alpha else 1.0)
    if role in READOUT_ROLES and cfg.parametrization == "mup" and cfg.mup_readout == "zero":
        return 1.0 / m
    return 1.0


def lr_multipliers(roles, cfg: ModelConfig):
    """Per-parameter learning-rate multipliers (a pytree like params; SP at one depth: all 1)."""
    return jax.tree.map(lambda r: _lr_mult(cfg, r), roles)


def wd_multipliers(roles, cfg: ModelConfig, wd_mode: str = "coupled"):
    """Per-parameter weight-decay multipliers (which roles decay is optim.decay_roles)."""
    m = width_mult(cfg) if cfg.mup_scale_wd else 1.0
    return jax.tree.map(lambda r: m if (wd_mode == "coupled" and r in HIDDEN_ROLES) else 1.0, roles)


def attn_scale(cfg: ModelConfig) -> float:
    """The factor on q.k: 1/sqrt(d_head) (SP), sqrt(K_base)/d_head (muP)."""
    K = cfg.d_head
    if cfg.parametrization != "mup" or not cfg.base_d_head or cfg.base_d_head == K:
        return 1.0 / math.sqrt(K)
    return math.sqrt(cfg.base_d_head) / K


def logit_mult(cfg: ModelConfig) -> float:
    """The factor on the output logits (muP readout "mult": 1/m)."""
    return 1.0 / width_mult(cfg) if cfg.parametrization == "mup" and cfg.mup_readout == "mult" else 1.0


def router_mult(cfg: ModelConfig) -> float:
    """The factor on the router logits (the router is a readout: E experts are a finite dimension)."""
    return logit_mult(cfg)


def branch_mult(cfg: ModelConfig) -> float:
    """The factor on every residual branch: (n_layers / base_n_layers)^-depth_alpha."""
    return depth_mult(cfg) ** -cfg.depth_alpha if cfg.depth_alpha else 1.0


def horizon_lr(eta_proxy: float, tokens_proxy: float, tokens_target: float, beta: float) -> float:
    """The token-horizon rule: the proxy's optimal LR moved to a longer run, eta (D_T / D_p)^-beta."""
    if not (eta_proxy > 0 and tokens_proxy > 0 and tokens_target > 0):
        raise ValueError(f"horizon_lr: LR and token counts must be positive, got {eta_proxy}, "
                         f"{tokens_proxy}, {tokens_target}")
    return eta_proxy * (tokens_target / tokens_proxy) ** -beta

"""What a run logs: every metric's name, where it is computed and how a log line reduces it.

One registry read by the jitted step (which values to compute), the trainer (how to
reduce the steps between two log lines, which fields a line holds), the store
(`curve(run, name)`) and the figures.  A new diagnostic is one `@step_metric`
function here; nothing else changes.

Kinds:
  step  computed inside the jitted train step from `StepOutputs`, every step, and reduced
        over the steps since the previous log line (`reduce`: mean, max, min, last, sum);
  eval  computed at evaluations (`train.eval_every`, the first and the last step): the held-out
        loss, and `compute(params, params_at_init)` metrics (the initial parameters are
        regenerated from the run's seed, so resumed runs and decay branches log the same values);
  host  bookkeeping the trainer writes on every line (step, tokens, LR, batch, timing).
A metric may apply to some configs only (`applies`, e.g. MoE losses); it is then neither
computed nor written for the others.  Knows nothing of JAX beyond the functions it stores.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = ["Metric", "StepOutputs", "METRICS", "step_metric", "step_metrics", "eval_metrics", "reduce_window",
           "HOST_FIELDS"]

REDUCTIONS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": np.mean, "max": np.max, "min": np.min, "sum": np.sum, "last": lambda v: v[-1],
}


class StepOutputs(NamedTuple):
    """What a step metric may look at (all inside jit)."""
    loss: Any            # mean cross-entropy of the batch (nats/token)
    aux: dict            # the model's auxiliary outputs (MoE: lb_loss, z_loss, load)
    grads: Any           # gradients of the total loss, before clipping
    updates: Any         # the optimizer's parameter updates (params_after - params_before)
    params: Any          # parameters before the update
    lr: Any              # the step's learning rate
    micro_sq: Any = None  # train.microbatches > 1: mean over micro-batches of |g_micro|^2
    clip_norm: float = 0.0  # optim.clip_norm (0: no clipping)


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str                                        # key in metrics.jsonl and in curve()
    kind: str                                        # step | eval | host
    doc: str
    reduce: str = "mean"
    compute: Callable[[StepOutputs], Any] | None = None
    applies: Callable[[Any], bool] = lambda cfg: True   # cfg: the run's Config
    probe: bool = False          # needs the forward pass's activation scalars (aux["act"])

    def __post_init__(self):
        assert self.kind in ("step", "eval", "host") and self.reduce in REDUCTIONS, self


METRICS: dict[str, Metric] = {}


def _register(m: Metric) -> Metric:
    if m.name in METRICS:
        raise ValueError(f"metric {m.name!r} is registered twice")
    METRICS[m.name] = m
    return m


def step_metric(name: str, doc: str, reduce: str = "mean", applies=lambda cfg: True, probe: bool = False):
    """Register `fn(StepOutputs) -> scalar` as a per-step metric logged as `name`."""
    def register(fn):
        _register(Metric(name, "step", doc, reduce, fn, applies, probe))
        return fn
    return register


for _name, _doc in [("step", "optimizer steps done"), ("tokens", "training tokens consumed"),
                    ("lr", "learning rate of the line's last step"),
                    ("batch_size", "batch (sequences) of the line's last step"),
                    ("wall_time", "seconds of training so far (compile included)"),
                    ("tokens_per_s", "throughput between the two latest flushes")]:
    _register(Metric(_name, "host", _doc, "last"))
HOST_FIELDS = tuple(n for n, m in METRICS.items() if m.kind == "host")

_register(Metric("val_loss", "eval", "held-out cross-entropy (nats/token) on train.eval_tokens", "last"))


def _is_moe(cfg) -> bool:
    return cfg.model.ffn == "moe"


@step_metric("train_loss", "training cross-entropy (nats/token), without auxiliary losses")
def _train_loss(o: StepOutputs):
    return o.loss


@step_metric("grad_norm", "global L2 norm of the gradient before clipping")
def _grad_norm(o: StepOutputs):
    import optax
    return optax.tree.norm(o.grads)


@step_metric("lb_loss", "MoE load-balance loss E * sum_e f_e P_e (1 when balanced)", applies=_is_moe)
def _lb_loss(o: StepOutputs):
    return o.aux["lb_loss"]


def _accumulates(cfg) -> bool:
    return cfg.train.microbatches > 1


@step_metric("grad_sq_micro", "mean over the step's micro-batches of |g_micro|^2 (batch B / microbatches)",
             applies=_accumulates)
def _grad_sq_micro(o: StepOutputs):
    return o.micro_sq


@step_metric("grad_sq", "|g|^2 of the full batch's (accumulated) gradient; with grad_sq_micro: the "
             "two-batch noise scale (laws.b_simple)", applies=_accumulates)
def _grad_sq(o: StepOutputs):
    import optax
    return optax.tree.norm(o.grads, squared=True)


# --- train.analysis: stability and feature-learning diagnostics (LR paper, spec section 3) -------------
# Per parameter role (config.ROLES: the module groups muP treats alike) and of the forward pass.

def _analysis(cfg) -> bool:
    return bool(getattr(cfg.train, "analysis", False))


def _role_present(role):
    moe_only = role in ("router", "expert", "expert_out")
    return lambda cfg: _analysis(cfg) and (cfg.model.ffn == "moe" or not moe_only)


def _role_norm(tree_of, role):
    def fn(o: StepOutputs):
        import jax
        import jax.numpy as jnp

        from .model import param_roles
        leaves = [x for x, r in zip(jax.tree.leaves(tree_of(o)), jax.tree.leaves(param_roles(o.params))) if r == role]
        return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))
    return fn


def _register_role_metrics():
    from .config import ROLES
    for role in ROLES:
        w, g, u = _role_norm(lambda o: o.params, role), _role_norm(lambda o: o.grads, role), \
            _role_norm(lambda o: o.updates, role)
        _register(Metric(f"w_norm.{role}", "step", f"L2 norm of the {role} parameters (train.analysis)", "last",
                         w, _role_present(role)))
        _register(Metric(f"grad_norm.{role}", "step", f"L2 norm of the {role} gradients, before clipping "
                         "(train.analysis)", "mean", g, _role_present(role)))
        _register(Metric(f"update_rel.{role}", "step", f"relative update ||dW|| / ||W|| of the {role} "
                         "parameters (train.analysis)", "mean",
                         lambda o, u=u, w=w: u(o) / (w(o) + 1e-30), _role_present(role)))


_register_role_metrics()

for _key, _doc in [("attn_out", "RMS of the attention outputs, mean over layers"),
                   ("ffn_out", "RMS of the FFN / MoE outputs, mean over layers"),
                   ("residual", "RMS of the last block's residual stream"),
                   ("logits", "RMS of the output logits"), ("logz", "mean log-partition log Z of the logits")]:
    _register(Metric(f"act.{_key}", "step", _doc + " (train.analysis)", "mean",
                     lambda o, k=_key: o.aux["act"][k], _analysis, True))


_register(Metric("act.attn_logit_max", "step", "largest pre-softmax attention logit over layers, heads and "
                 "positions (train.analysis)", "max", lambda o: o.aux["act"]["attn_logit_max"], _analysis, True))


@step_metric("train_loss_max", "largest single-step training loss since the previous line; against "
             "train_loss (the mean) it marks loss spikes (laws.loss_spikes; train.analysis)", "max", _analysis)
def _train_loss_max(o: StepOutputs):
    return o.loss


def _role_delta(role):
    """||W_t - W_0|| / ||W_0|| over the parameters of one role: how far training moved them."""
    def fn(params, params0):
        import jax
        import jax.numpy as jnp

        from .model import param_roles
        pairs = [(w, w0) for w, w0, r in zip(jax.tree.leaves(params), jax.tree.leaves(params0),
                                             jax.tree.leaves(param_roles(params))) if r == role]
        sq = lambda xs: sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in xs)
        return jnp.sqrt(sq([w - w0 for w, w0 in pairs]) / (sq([w0 for _, w0 in pairs]) + 1e-30))
    return fn


def _register_delta_metrics():
    from .config import ROLES
    for role in ROLES:
        _register(Metric(f"delta_init.{role}", "eval", f"cumulative change ||W_t - W_0|| / ||W_0|| of the {role} "
                         "parameters since initialisation, at evaluations (train.analysis)", "last",
                         _role_delta(role), _role_present(role)))


_register_delta_metrics()


def eval_metrics(cfg) -> tuple[Metric, ...]:
    """The computed eval metrics (fn(params, params_at_init) -> scalar) a run of `cfg` logs."""
    return tuple(m for m in METRICS.values() if m.kind == "eval" and m.compute and m.applies(cfg))


@step_metric("router_entropy", "mean router entropy (nats) over tokens and layers (train.analysis)",
             applies=lambda cfg: _analysis(cfg) and cfg.model.ffn == "moe", probe=True)
def _router_entropy(o: StepOutputs):
    return o.aux["act"]["router_entropy"]


@step_metric("expert_load_cv", "coefficient of variation of the per-expert token load, mean over layers "
             "(train.analysis)", applies=lambda cfg: _analysis(cfg) and cfg.model.ffn == "moe")
def _expert_load_cv(o: StepOutputs):
    import jax.numpy as jnp
    load = o.aux["load"].astype(jnp.float32)                  # [layers, experts]
    return jnp.mean(jnp.std(load, axis=-1) / jnp.maximum(jnp.mean(load, axis=-1), 1e-30))


@step_metric("clip_frac", "fraction of the line's steps whose gradient norm exceeded optim.clip_norm "
             "(train.analysis)", applies=_analysis)
def _clip_frac(o: StepOutputs):
    import jax.numpy as jnp
    import optax
    return jnp.where(o.clip_norm > 0, (optax.tree.norm(o.grads) > o.clip_norm).astype(jnp.float32), 0.0)


def step_metrics(cfg) -> tuple[Metric, ...]:
    """The step metrics a run of `cfg` computes and logs, in registry order."""
    return tuple(m for m in METRICS.values() if m.kind == "step" and m.applies(cfg))


def reduce_window(metric: Metric, values) -> float:
    """One log line's value from the per-step values since the previous line."""
    return float(REDUCTIONS[metric.reduce](np.asarray(values, np.float64)))

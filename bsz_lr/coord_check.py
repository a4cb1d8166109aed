"""Coordinate check (muP, Yang et al. 2022): the RMS of every module's output over the first steps of
training, across widths.  Under muP the curves stay flat in width; under SP they drift (logits and
hidden outputs grow with width once the optimizer moves the weights).

    >>> rms = coord_check(cfg, steps=4)      # {"block_0/attn_out": [RMS at step 0, 1, ..., 4], ...}

The model sows its module outputs into the "intermediates" collection (model.Block, Transformer);
this function probes them on one fixed batch after each of `steps` optimizer steps at the peak LR
(no warmup: the check is about the first updates).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .config import Config
from .data import batch_at, load_corpus
from .model import Transformer, init_params
from .optim import build_optimizer
from .schedules import BatchSchedule
from .train import loss_fn

__all__ = ["coord_check", "module_rms"]


def module_rms(model: Transformer, params, batch_BxT1) -> dict[str, jax.Array]:
    """RMS of every sown module output ("block_i/attn_out", "embed_out", "logits", ...) on a batch."""
    _, state = model.apply({"params": params}, batch_BxT1[:, :-1], mutable=["intermediates"])
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]:
        names = [p.key for p in path if hasattr(p, "key")]        # drop sow's tuple index
        out["/".join(names)] = jnp.sqrt(jnp.mean(leaf.astype(jnp.float32) ** 2))
    return out


def coord_check(cfg: Config, steps: int = 4, seed: int = 0, corpus=None) -> dict[str, np.ndarray]:
    """{module: RMS after 0, 1, ..., steps optimizer steps} for one config (a fixed probe batch)."""
    model = Transformer(cfg.model)
    params = init_params(cfg.model, jax.random.key(seed))
    opt = build_optimizer(cfg.optim, params, cfg.model)
    state = opt.init(params)
    corpus = corpus or load_corpus(cfg.data, cfg.model.vocab_size)
    sched = BatchSchedule.from_config(cfg)
    probe = jnp.asarray(batch_at(corpus.val, seed, 0, sched))

    @jax.jit
    def step(p, s, batch):
        g = jax.grad(lambda p: loss_fn(model, p, batch)[0])(p)     # the trainer's objective (CE + MoE aux)
        u, s = opt.update(g, s, p)
        return jax.tree.map(lambda a, b: a + b, p, u), s

    probe_fn = jax.jit(lambda p: module_rms(model, p, probe))
    rows = [probe_fn(params)]
    for t in range(steps):
        params, state = step(params, state, jnp.asarray(batch_at(corpus.train, seed, t, sched)))
        rows.append(probe_fn(params))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}

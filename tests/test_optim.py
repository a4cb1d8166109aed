"""AdamW (clip -> Adam -> decoupled WD on matrices -> -lr) against a numpy reference; roles."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bsz_lr import parametrization as pz
from bsz_lr.config import OptimConfig, model_size
from bsz_lr.model import Transformer, param_roles
from bsz_lr.optim import build_optimizer, get_lr, set_lr

NANO = model_size("nano")
MOE = model_size("nano", ffn="moe", n_experts=4, top_k=2, shared_expert=True, qk_norm=True)


def _shapes(cfg):
    return jax.eval_shape(lambda k: Transformer(cfg).init(k, jnp.zeros((1, 8), jnp.int32))["params"],
                          jax.random.PRNGKey(0))


def _random_tree(shapes, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) * scale, jnp.float32), shapes)


def _with_global_norm(tree, norm):
    g = math.sqrt(sum(float(np.sum(np.asarray(x, np.float64) ** 2)) for x in jax.tree.leaves(tree)))
    return jax.tree.map(lambda x: x * (norm / g), tree)


@functools.lru_cache(maxsize=None)
def _opt(cfg: OptimConfig):
    params = _random_tree(_shapes(NANO), 0, 0.1)
    opt = build_optimizer(cfg, params, NANO)
    return params, opt, jax.jit(opt.update)


class RefAdamW:
    """Independent float64 AdamW with global-norm clipping and decoupled WD on ndim >= 2 leaves."""

    def __init__(self, cfg: OptimConfig, params):
        self.cfg = cfg
        self.m = [np.zeros(p.shape) for p in params]
        self.v = [np.zeros(p.shape) for p in params]
        self.t = 0

    def step(self, params, grads, lr):
        c = self.cfg
        g = [np.asarray(x, np.float64) for x in grads]
        gn = math.sqrt(sum(float(np.sum(x * x)) for x in g))
        if c.clip_norm > 0 and gn > c.clip_norm:
            g = [x * (c.clip_norm / gn) for x in g]
        self.t += 1
        out = []
        for i, (p, gi) in enumerate(zip(params, g)):
            self.m[i] = c.b1 * self.m[i] + (1 - c.b1) * gi
            self.v[i] = c.b2 * self.v[i] + (1 - c.b2) * gi * gi
            mhat = self.m[i] / (1 - c.b1 ** self.t)
            vhat = self.v[i] / (1 - c.b2 ** self.t)
            u = mhat / (np.sqrt(vhat) + c.eps)
            if p.ndim >= 2:
                u = u + c.weight_decay * np.asarray(p, np.float64)
            out.append(-lr * u)
        return out


@pytest.mark.parametrize("cfg", [
    OptimConfig(lr=1e-2, weight_decay=0.1, clip_norm=1.0),
    OptimConfig(lr=3e-3, b1=0.8, b2=0.99, weight_decay=0.0, clip_norm=0.0),
], ids=["clip+wd", "plain"])
def test_matches_reference_adamw(cfg):
    params, opt, update = _opt(cfg)
    shapes = _shapes(NANO)
    g1 = _with_global_norm(_random_tree(shapes, 1), 5.0)      # clipped (norm 5 > 1)
    g2 = _with_global_norm(_random_tree(shapes, 2), 0.5)      # not clipped
    state = opt.init(params)
    ref = RefAdamW(cfg, jax.tree.leaves(params))
    p = params
    p_ref = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    for g in (g1, g2, g1):
        upd, state = update(g, state, p)
        want = ref.step(p_ref, jax.tree.leaves(g), cfg.lr)
        for (path, u), w in zip(jax.tree.leaves_with_path(upd), want):
            np.testing.assert_allclose(np.asarray(u), w, rtol=1e-4, atol=1e-6 * cfg.lr,
                                       err_msg=jax.tree_util.keystr(path))
        p = optax.apply_updates(p, upd)
        p_ref = [a + b for a, b in zip(p_ref, want)]
    assert int(state.inner_state[1].count) == 3


def test_reference_is_sensitive_to_clipping_and_bias_correction():
    """Guards the test above: its inputs distinguish the clipped from the unclipped run."""
    cfg = OptimConfig(lr=1e-2, weight_decay=0.0, clip_norm=1.0)
    shapes = _shapes(NANO)
    params = [np.zeros(s.shape) for s in jax.tree.leaves(shapes)]
    g1 = jax.tree.leaves(_with_global_norm(_random_tree(shapes, 1), 5.0))
    g2 = jax.tree.leaves(_with_global_norm(_random_tree(shapes, 2), 0.5))
    a, b = RefAdamW(cfg, params), RefAdamW(dataclasses.replace(cfg, clip_norm=0.0), params)
    a.step(params, g1, 1.0), b.step(params, g1, 1.0)
    ua, ub = a.step(params, g2, 1.0), b.step(params, g2, 1.0)
    assert max(np.abs(x - y).max() for x, y in zip(ua, ub)) > 1e-2


def test_set_lr_scales_update_exactly():
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1, clip_norm=1.0)
    params, opt, update = _opt(cfg)
    g = _with_global_norm(_random_tree(_shapes(NANO), 3), 2.0)
    state = opt.init(params)
    assert float(get_lr(state)) == pytest.approx(cfg.lr)
    _, state = update(g, state, params)                           # one step so that moments are non-trivial
    s2 = set_lr(state, jnp.asarray(2 * cfg.lr, jnp.float32))
    assert float(get_lr(s2)) == pytest.approx(2 * cfg.lr) and float(get_lr(state)) == pytest.approx(cfg.lr)
    u1, n1 = update(g, state, params)
    u2, n2 = update(g, s2, params)
    for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
        np.testing.assert_allclose(np.asarray(b), 2 * np.asarray(a), rtol=1e-6, atol=0)
    # the moments do not depend on the learning rate
    for a, b in zip(jax.tree.leaves(n1.inner_state), jax.tree.leaves(n2.inner_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # set_lr is traceable
    s3 = jax.jit(set_lr)(state, jnp.float32(0.5))
    assert float(get_lr(s3)) == 0.5


def test_weight_decay_only_on_matrices():
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1, clip_norm=1.0)
    params, opt, update = _opt(cfg)
    zeros = jax.tree.map(jnp.zeros_like, params)
    upd, _ = update(zeros, opt.init(params), params)       # zero gradient: the update is pure WD
    roles = param_roles(params)
    seen = set()
    for (path, u), p, r in zip(jax.tree.leaves_with_path(upd), jax.tree.leaves(params), jax.tree.leaves(roles)):
        seen.add(r)
        if r == "vector":
            assert p.ndim == 1
            np.testing.assert_array_equal(np.asarray(u), 0.0, err_msg=jax.tree_util.keystr(path))
        else:
            assert p.ndim >= 2
            np.testing.assert_allclose(np.asarray(u), -cfg.lr * cfg.weight_decay * np.asarray(p), rtol=1e-6,
                                       err_msg=jax.tree_util.keystr(path))
    assert {"vector", "embedding", "head", "hidden", "out_proj"} <= seen


LR_MULT = {"embedding": 4.0, "head": 0.25, "hidden": 0.5, "out_proj": 0.5, "vector": 2.0}
WD_MULT = {"embedding": 0.0, "head": 1.0, "hidden": 3.0, "out_proj": 1.0, "vector": 1.0}


def _patched(monkeypatch, cfg: OptimConfig):
    """The optimizer under a parametrization whose LR / WD multipliers are not 1 (as muP's are not)."""
    monkeypatch.setattr(pz, "lr_multipliers", lambda roles, c: jax.tree.map(LR_MULT.get, roles))
    monkeypatch.setattr(pz, "wd_multipliers", lambda roles, c, mode="coupled": jax.tree.map(WD_MULT.get, roles))
    params = _random_tree(_shapes(NANO), 0, 0.1)
    return params, build_optimizer(cfg, params, NANO), param_roles(params)


@pytest.mark.parametrize("mode", ["coupled", "independent"])
def test_weight_decay_with_multipliers_other_than_one(monkeypatch, mode):
    """coupled: lr * lr_mult * (adam + wd * wd_mult * p); independent: lr * (lr_mult * adam + wd * wd_mult * p)."""
    lr, wd = 1e-2, 0.1
    cfg = OptimConfig(lr=lr, weight_decay=wd, wd_mode=mode)
    params, opt, roles = _patched(monkeypatch, cfg)
    _, adam_only, _ = _patched(monkeypatch, dataclasses.replace(cfg, weight_decay=0.0))
    g = _with_global_norm(_random_tree(_shapes(NANO), 4), 0.5)
    upd, _ = opt.update(g, opt.init(params), params)
    ada, _ = adam_only.update(g, adam_only.init(params), params)    # -lr * lr_mult * adam
    for u, a, p, r in zip(*(jax.tree.leaves(t) for t in (upd, ada, params, roles))):
        decay = wd * WD_MULT[r] * (r != "vector") * np.asarray(p, np.float64)
        scale = LR_MULT[r] if mode == "coupled" else 1.0
        np.testing.assert_allclose(np.asarray(u), np.asarray(a) - lr * scale * decay, rtol=2e-5, atol=1e-9,
                                   err_msg=r)
    # the two modes really differ where lr_mult != 1 and the role decays
    other, _ = _patched(monkeypatch, dataclasses.replace(
        cfg, wd_mode="independent" if mode == "coupled" else "coupled"))[1].update(g, opt.init(params), params)
    hidden = [i for i, r in enumerate(jax.tree.leaves(roles)) if r == "hidden"]
    assert all(not np.allclose(jax.tree.leaves(upd)[i], jax.tree.leaves(other)[i]) for i in hidden)


def test_decay_roles_choose_what_decays():
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1, decay_roles=("hidden", "vector"))
    params, opt, update = _opt(cfg)
    upd, _ = update(jax.tree.map(jnp.zeros_like, params), opt.init(params), params)   # pure decay
    for u, p, r in zip(jax.tree.leaves(upd), jax.tree.leaves(params), jax.tree.leaves(param_roles(params))):
        want = -cfg.lr * cfg.weight_decay * np.asarray(p) if r in cfg.decay_roles else 0.0
        np.testing.assert_allclose(np.asarray(u), want, rtol=1e-6, atol=0, err_msg=r)


# ---------------------------------------------------------------------------
# Roles and the parametrization.

def _roles_by_path(cfg):
    roles = param_roles(_shapes(cfg))
    return {jax.tree_util.keystr(p, simple=True, separator="/"): r
            for p, r in jax.tree.leaves_with_path(roles)}


def test_param_roles_dense():
    assert _roles_by_path(NANO) == {
        "embed/embedding": "embedding", "head/kernel": "head", "norm_f/scale": "vector",
        "block_0/norm_attn/scale": "vector", "block_0/norm_ffn/scale": "vector",
        "block_0/attn/q/kernel": "hidden", "block_0/attn/k/kernel": "hidden",
        "block_0/attn/v/kernel": "hidden", "block_0/attn/o/kernel": "out_proj",
        "block_0/mlp/gate/kernel": "hidden", "block_0/mlp/up/kernel": "hidden",
        "block_0/mlp/down/kernel": "out_proj",
    }


def test_param_roles_moe_shared_qknorm():
    assert _roles_by_path(MOE) == {
        "embed/embedding": "embedding", "head/kernel": "head", "norm_f/scale": "vector",
        "block_0/norm_attn/scale": "vector", "block_0/norm_ffn/scale": "vector",
        "block_0/attn/q/kernel": "hidden", "block_0/attn/k/kernel": "hidden",
        "block_0/attn/v/kernel": "hidden", "block_0/attn/o/kernel": "out_proj",
        "block_0/attn/q_norm/scale": "vector", "block_0/attn/k_norm/scale": "vector",
        "block_0/moe/router/kernel": "router",
        "block_0/moe/w_gate": "expert", "block_0/moe/w_up": "expert", "block_0/moe/w_down": "expert_out",
        "block_0/moe/shared/gate/kernel": "hidden", "block_0/moe/shared/up/kernel": "hidden",
        "block_0/moe/shared/down/kernel": "out_proj",
    }


def test_parametrization_sp():
    cfg = model_size("small", init_std=0.02)          # 4 layers
    assert pz.init_std(cfg, "hidden") == 0.02 and pz.init_std(cfg, "embedding") == 0.02
    assert pz.init_std(cfg, "out_proj") == pytest.approx(0.02 / math.sqrt(8))
    assert pz.init_std(cfg, "expert_out") == pytest.approx(0.02 / math.sqrt(8))
    roles = {"a": "vector", "b": "hidden", "c": "router", "d": "embedding"}
    assert pz.wd_multipliers(roles, cfg) == {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}
    assert pz.lr_multipliers(roles, cfg) == {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}


# --- Muon / Mousse routing (optim.name): matrices orthogonalised, everything else AdamW --------------

@pytest.mark.parametrize("name", ["muon", "mousse"])
def test_matrix_optimizers_route_by_role(name):
    from bsz_lr.mousse import newton_schulz
    shapes = _shapes(MOE)
    params = _random_tree(shapes, 0, 0.1)
    g = _with_global_norm(_random_tree(shapes, 3), 0.5)            # below the clip: raw gradient
    roles = param_roles(params)
    ratio = 0.25
    cfg = OptimConfig(name=name, lr=2e-2, adam_lr_ratio=ratio, weight_decay=0.1, matrix_weight_decay=0.01,
                      ns_dtype="float32", mousse_alpha=0.0)        # alpha 0: Mousse's direction is Muon's
    adam = OptimConfig(lr=2e-2, weight_decay=0.1)
    opt, ref = build_optimizer(cfg, params, MOE), build_optimizer(adam, params, MOE)
    u, state = jax.jit(opt.update)(g, opt.init(params), params)
    ua, _ = jax.jit(ref.update)(g, ref.init(params), params)
    seen = set()
    for (path, r), x, y, gi, p in zip(jax.tree_util.tree_flatten_with_path(roles)[0], jax.tree.leaves(u),
                                      jax.tree.leaves(ua), jax.tree.leaves(g), jax.tree.leaves(params)):
        seen.add(r)
        if r in ("hidden", "out_proj", "expert", "expert_out"):
            fan = (gi.shape[-1] / gi.shape[-2]) ** 0.5
            want = -2e-2 * (fan * np.asarray(newton_schulz(gi, dtype=jnp.float32)) + 0.01 * np.asarray(p))
            np.testing.assert_allclose(np.asarray(x), want, atol=2e-6, err_msg=str(path))
        else:                                                       # AdamW at lr * ratio
            np.testing.assert_allclose(np.asarray(x), ratio * np.asarray(y), rtol=1e-5, atol=1e-9,
                                       err_msg=str(path))
    assert {"expert", "router", "embedding", "head", "vector", "hidden"} <= seen
    s2 = set_lr(state, jnp.float32(1e-3))                          # the trainer's LR injection works
    assert float(get_lr(s2)) == pytest.approx(1e-3)


def test_matrix_optimizer_options_are_validated():
    from bsz_lr.config import ConfigError
    for kw, msg in [({"name": "sgd"}, "optim.name: must be one of"), ({"mousse_sides": "up"}, "mousse_sides"),
                    ({"mousse_refresh": 0}, "mousse_refresh"), ({"ns_dtype": "fp8"}, "ns_dtype"),
                    ({"adam_lr_ratio": 0.0}, "adam_lr_ratio"), ({"momentum": 1.0}, "optim.momentum")]:
        with pytest.raises(ConfigError, match=msg):
            OptimConfig(**kw)

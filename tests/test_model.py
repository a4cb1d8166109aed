"""The transformer: shapes, causality, RoPE, parameter counts and the MoE layer vs numpy references."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bsz_lr.config import ConfigError, ModelConfig, model_size
from bsz_lr.model import MoE, Transformer, init_params, param_counts, rope

B, T = 2, 16                      # one token shape for every model test
V, D, FF = 256, 16, 48            # nano: d_model=16, SwiGLU width 8*ceil(16*8/3/8) = 48
E, K = 4, 2                       # MoE: 4 experts, top-2, expert width 48 // 2 = 24
F = 24

DENSE = model_size("nano")
MOE = model_size("nano", ffn="moe", n_experts=E, top_k=K)
MOE_DENSE_IMPL = dataclasses.replace(MOE, moe_impl="dense")


@functools.lru_cache(maxsize=None)
def _apply(cfg: ModelConfig):
    return jax.jit(Transformer(cfg).apply)


def forward(cfg, params, tokens):
    return _apply(cfg)({"params": params}, jnp.asarray(tokens))


@functools.lru_cache(maxsize=None)
def _params(cfg: ModelConfig, seed: int = 0):
    return init_params(cfg, jax.random.PRNGKey(seed))


def _shapes(cfg: ModelConfig):
    """Parameter shapes without compiling an init."""
    return jax.eval_shape(lambda k: Transformer(cfg).init(k, jnp.zeros((1, 8), jnp.int32))["params"],
                          jax.random.PRNGKey(0))


def _tokens(seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(B, T)).astype(np.int32)


def _scaled(params, factor=10.0):
    """Bigger weights so that every dependency shows up clearly in float32."""
    return jax.tree.map(lambda p: p * factor if p.ndim >= 2 else p, params)


def _n(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# ---------------------------------------------------------------------------

def test_config_shapes():
    assert (DENSE.d_model, DENSE.n_layers, DENSE.n_heads, DENSE.ffn_width) == (D, 1, 2, FF)
    assert MOE.expert_width == F


@pytest.mark.parametrize("cfg", [DENSE, MOE], ids=["dense", "moe"])
def test_logits_shape_and_aux(cfg):
    logits, aux = forward(cfg, _params(cfg), _tokens())
    assert logits.shape == (B, T, V) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
    assert set(aux) >= {"lb_loss", "z_loss"}
    if cfg.ffn == "dense":
        assert float(aux["lb_loss"]) == 0.0 and float(aux["z_loss"]) == 0.0


@pytest.mark.parametrize("cfg", [DENSE, MOE], ids=["dense", "moe"])
@pytest.mark.parametrize("j", [0, 5, T - 1])
def test_causality(cfg, j):
    params = _scaled(_params(cfg))
    toks = _tokens()
    toks2 = toks.copy()
    toks2[0, j] = (toks2[0, j] + 17) % V
    a, _ = forward(cfg, params, toks)
    b, _ = forward(cfg, params, toks2)
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(b[0, :j], a[0, :j], atol=1e-6, rtol=0)      # the past is unchanged
    np.testing.assert_allclose(b[1], a[1], atol=1e-6, rtol=0)              # other sequences unchanged
    diff = np.abs(b[0, j:] - a[0, j:]).max(axis=-1)
    assert np.all(diff > 1e-4), diff                                       # the future does change


# ---------------------------------------------------------------------------
# RoPE.

def _rope_ref(x, base):
    """Independent reference: complex rotation of (x_i, x_{i+K/2}) by pos * base**(-2i/K)."""
    x = np.asarray(x, np.float64)
    Tn, Kd = x.shape[1], x.shape[-1]
    h = Kd // 2
    z = x[..., :h] + 1j * x[..., h:]
    ang = np.arange(Tn)[:, None] * base ** (-2.0 * np.arange(h) / Kd)
    z = z * np.exp(1j * ang)[None, :, None, :]
    return np.concatenate([z.real, z.imag], axis=-1)


def test_rope_matches_reference_and_preserves_pair_norms():
    x = np.random.default_rng(0).normal(size=(2, 12, 3, 8)).astype(np.float32)
    y = np.asarray(rope(jnp.asarray(x), 10000.0))
    np.testing.assert_allclose(y, _rope_ref(x, 10000.0), atol=1e-5)
    h = 4
    np.testing.assert_allclose(np.hypot(y[..., :h], y[..., h:]), np.hypot(x[..., :h], x[..., h:]), rtol=1e-5)
    np.testing.assert_allclose(y[:, 0], x[:, 0])          # position 0 is not rotated
    assert not np.allclose(y[:, 1:], x[:, 1:], atol=1e-3)  # later positions are


def test_rope_relative_position():
    rng = np.random.default_rng(1)
    Tn = 10
    q = np.tile(rng.normal(size=8), (1, Tn, 1, 1)).astype(np.float32)   # same vector at every position
    k = np.tile(rng.normal(size=8), (1, Tn, 1, 1)).astype(np.float32)
    rq, rk = np.asarray(rope(jnp.asarray(q), 100.0))[0, :, 0], np.asarray(rope(jnp.asarray(k), 100.0))[0, :, 0]
    M = rq @ rk.T                                                      # M[i, j] = <rope(q)_i, rope(k)_j>
    np.testing.assert_allclose(M[1:, 1:], M[:-1, :-1], atol=1e-4)      # depends only on i - j
    assert np.ptp(M[:, 0]) > 1e-2                                      # ... and does depend on it


# ---------------------------------------------------------------------------
# Parameters.

def test_param_counts_dense_by_hand():
    p = _params(DENSE)
    attn = 4 * D * D
    mlp = 3 * D * FF
    norms = 2 * D
    total = V * D + D * V + (attn + mlp + norms) + D
    c = param_counts(p, DENSE)
    assert c == {"total": total, "non_embedding": total - 2 * V * D, "active": total}
    assert c["total"] == _n(p) == 11568


def test_param_counts_moe_by_hand():
    p = _params(MOE)
    experts = 3 * E * D * F
    total = 2 * V * D + 4 * D * D + 2 * D + D * E + experts + D
    c = param_counts(p, MOE)
    assert c["total"] == total == _n(p)
    assert c["non_embedding"] == total - 2 * V * D
    assert c["active"] == total - experts * (E - K) // E
    assert p["block_0"]["moe"]["w_gate"].shape == (E, D, F)
    assert p["block_0"]["moe"]["w_down"].shape == (E, F, D)


def test_qk_norm_adds_params_and_changes_output():
    cfg = dataclasses.replace(DENSE, qk_norm=True)
    p = _params(cfg)
    attn = p["block_0"]["attn"]
    assert attn["q_norm"]["scale"].shape == (D // 2,) and attn["k_norm"]["scale"].shape == (D // 2,)
    assert _n(p) - _n(_shapes(DENSE)) == 2 * DENSE.n_layers * DENSE.d_head
    p = _scaled(p)
    attn = p["block_0"]["attn"]
    plain = {**p, "block_0": {**p["block_0"], "attn": {k: v for k, v in attn.items() if "norm" not in k}}}
    a, _ = forward(cfg, p, _tokens())
    b, _ = forward(DENSE, plain, _tokens())
    assert np.all(np.isfinite(a))
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4


def test_top_k_above_n_experts_is_config_error():
    with pytest.raises(ConfigError, match=r"^model\.top_k"):
        model_size("nano", ffn="moe", n_experts=2, top_k=3)


# ---------------------------------------------------------------------------
# The MoE layer against numpy.

def _silu(a):
    return a / (1.0 + np.exp(-a))


def _swiglu(x, wg, wu, wd):
    return (_silu(x @ wg) * (x @ wu)) @ wd


def _moe_ref(p, x_NxD, k):
    x = np.asarray(x_NxD, np.float64)
    logits = x @ np.asarray(p["router"]["kernel"], np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    idx = np.argsort(-probs, axis=-1)[:, :k]
    srt = np.sort(probs, axis=-1)[:, ::-1]
    assert np.min(srt[:, k - 1] - srt[:, k]) > 1e-4, "near-tie in routing: reference ambiguous"
    top = np.take_along_axis(probs, idx, -1)
    gates = top if k == 1 else top / top.sum(-1, keepdims=True)     # Switch: the raw top-1 probability
    wg, wu, wd = (np.asarray(p[n], np.float64) for n in ("w_gate", "w_up", "w_down"))
    y = np.zeros_like(x)
    for n in range(x.shape[0]):
        for j in range(k):
            e = idx[n, j]
            y[n] += gates[n, j] * _swiglu(x[n], wg[e], wu[e], wd[e])
    Ne, En = probs.shape
    load = np.bincount(idx.reshape(-1), minlength=En)
    lb = En * np.sum(load / (Ne * k) * probs.mean(0))
    lse = np.log(np.exp(logits).sum(-1))
    return y, load, lb, np.mean(lse ** 2)


@functools.lru_cache(maxsize=None)
def _moe_apply(cfg):
    return jax.jit(MoE(cfg).apply)


X = np.random.default_rng(5).normal(size=(B, 8, D)).astype(np.float32)


def _moe_params(cfg):
    """Random O(1) parameters of the MoE layer (shapes from the module) and a decisive router."""
    shapes = jax.eval_shape(MoE(cfg).init, jax.random.PRNGKey(0), X)["params"]
    rng = np.random.default_rng(6)
    p = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) * 0.4, jnp.float32), shapes)
    p["router"]["kernel"] = jnp.asarray(np.random.default_rng(6).normal(size=(D, E)), jnp.float32)
    return p


MOE_SHARED = dataclasses.replace(MOE, shared_expert=True)
MOE_TOP1 = dataclasses.replace(MOE, top_k=1)


@pytest.mark.parametrize("cfg", [MOE, MOE_DENSE_IMPL, MOE_SHARED, MOE_TOP1], ids=["ragged", "dense", "shared", "top1"])
def test_moe_layer_matches_numpy(cfg):
    p = _moe_params(cfg)
    assert ("shared" in p) == cfg.shared_expert
    y, aux = _moe_apply(cfg)({"params": p}, jnp.asarray(X))
    x = X.reshape(-1, D)
    y_ref, load, lb, z = _moe_ref(p, x, cfg.top_k)
    if cfg.shared_expert:
        s = {k: np.asarray(v["kernel"], np.float64) for k, v in p["shared"].items()}
        shared = _swiglu(x.astype(np.float64), s["gate"], s["up"], s["down"])
        assert np.abs(shared).max() > 1e-2
        y_ref = y_ref + shared
    np.testing.assert_allclose(np.asarray(y).reshape(-1, D), y_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(aux["load"]), load)
    assert int(np.sum(aux["load"])) == B * 8 * cfg.top_k
    assert float(aux["lb_loss"]) == pytest.approx(lb, rel=1e-5)
    assert float(aux["z_loss"]) == pytest.approx(z, rel=1e-5)


def test_shared_expert_param_count():
    shapes = jax.eval_shape(MoE(MOE_SHARED).init, jax.random.PRNGKey(0), X)["params"]
    assert _n(shapes["shared"]) == 3 * D * F
    assert _n(shapes) - _n(jax.eval_shape(MoE(MOE).init, jax.random.PRNGKey(0), X)["params"]) == 3 * D * F
    c_sh = param_counts(_shapes(MOE_SHARED), MOE_SHARED)
    c = param_counts(_shapes(MOE), MOE)
    assert c_sh["total"] - c["total"] == 3 * D * F
    assert c_sh["active"] - c["active"] == 3 * D * F       # the shared expert is always active


def test_model_load_counts_every_token_k_times():
    _, aux = forward(MOE, _params(MOE), _tokens())
    load = np.asarray(aux["load"])
    assert load.shape == (MOE.n_layers, E)
    np.testing.assert_array_equal(load.sum(-1), B * T * K)
    assert np.isfinite(float(aux["lb_loss"])) and float(aux["lb_loss"]) > 0
    assert np.isfinite(float(aux["z_loss"])) and float(aux["z_loss"]) > 0


def _loss(cfg, params, toks):
    logits, aux = Transformer(cfg).apply({"params": params}, toks[:, :-1])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, toks[:, 1:]).mean()
    return ce + 0.1 * aux["lb_loss"] + 0.01 * aux["z_loss"], logits


def test_ragged_and_dense_impl_agree():
    params = _scaled(_params(MOE), 5.0)
    toks = jnp.asarray(np.random.default_rng(7).integers(0, V, size=(B, T + 1)).astype(np.int32))
    (_, la), ga = jax.jit(jax.value_and_grad(functools.partial(_loss, MOE), has_aux=True))(params, toks)
    (_, lb), gb = jax.jit(jax.value_and_grad(functools.partial(_loss, MOE_DENSE_IMPL), has_aux=True))(params, toks)
    np.testing.assert_allclose(np.asarray(la), np.asarray(lb), rtol=1e-5, atol=1e-5)
    flat_a, flat_b = jax.tree.leaves_with_path(ga), jax.tree.leaves(gb)
    assert len(flat_a) == len(flat_b)
    for (path, a), b in zip(flat_a, flat_b):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6,
                                   err_msg=jax.tree_util.keystr(path))
    # the experts and the router do receive gradient
    assert np.abs(np.asarray(ga["block_0"]["moe"]["w_down"])).max() > 0
    assert np.abs(np.asarray(ga["block_0"]["moe"]["router"]["kernel"])).max() > 0


@pytest.mark.parametrize("k", [1, 2])
def test_router_gets_a_gradient_from_the_loss_alone(k):
    """No auxiliary losses: the router learns only through the gates (k = 1 used to get ~1e-11)."""
    cfg = dataclasses.replace(MOE, top_k=k, moe_aux_coef=0.0, moe_z_coef=0.0)
    params = _scaled(_params(cfg), 5.0)
    toks = jnp.asarray(np.random.default_rng(7).integers(0, V, size=(B, T + 1)).astype(np.int32))

    def ce(p):
        logits, _ = Transformer(cfg).apply({"params": p}, toks[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, toks[:, 1:]).mean()
    g = jax.jit(jax.grad(ce))(params)
    router = np.abs(np.asarray(g["block_0"]["moe"]["router"]["kernel"])).max()
    experts = np.abs(np.asarray(g["block_0"]["moe"]["w_down"])).max()
    assert router > 1e-3 * experts, (router, experts)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_fused_attention_path_matches_einsum_on_cpu(qk_norm):
    """The accelerator branch (jax.nn.dot_product_attention) run on CPU against the CPU einsums."""
    from bsz_lr.model import causal_attention
    rng = np.random.default_rng(3)
    q, k, v = (jnp.asarray(rng.normal(size=(B, T, 2, 8)), jnp.float32) for _ in range(3))

    def loss(impl, q, k, v):
        return jnp.sum(causal_attention(q, k, v, 0.35, impl) ** 2)
    for a, b in zip(jax.value_and_grad(functools.partial(loss, "einsum"), argnums=(0, 1, 2))(q, k, v),
                    jax.value_and_grad(functools.partial(loss, "fused"), argnums=(0, 1, 2))(q, k, v)):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5, atol=2e-5)
    out = causal_attention(q, k, v, 0.35, "fused")
    # causal: the first position attends to itself only
    np.testing.assert_allclose(np.asarray(out[:, 0]), np.asarray(v[:, 0]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("T, block", [(24, 8), (20, 8), (16, 16), (8, 64)],
                         ids=["3-blocks", "ragged-last-block", "one-block", "shorter-than-block"])
def test_blocked_attention_matches_einsum(T, block):
    """The CPU default skips the masked blocks; outputs and gradients equal the full-mask einsums."""
    from bsz_lr.model import causal_attention
    rng = np.random.default_rng(4)
    q, k, v = (jnp.asarray(rng.normal(size=(2, T, 2, 8)), jnp.float32) for _ in range(3))
    w = jnp.asarray(rng.normal(size=(2, T, 2, 8)), jnp.float32)

    def loss(impl, q, k, v):
        return jnp.sum(causal_attention(q, k, v, 0.35, impl, block) * w)
    ref = jax.value_and_grad(functools.partial(loss, "einsum"), argnums=(0, 1, 2))(q, k, v)
    got = jax.value_and_grad(functools.partial(loss, "blocked"), argnums=(0, 1, 2))(q, k, v)
    for x, y in zip(jax.tree.leaves(ref), jax.tree.leaves(got)):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown impl"):
        causal_attention(q, k, v, 0.35, "nope", block)


def test_init_params_compiles_once_per_config():
    from bsz_lr.train import compile_counts
    cfg = model_size("nano", d_model=24, n_heads=2)            # a shape no other test uses
    init_params(cfg, jax.random.key(0))
    before = compile_counts()
    for seed in (1, 2, 3):
        init_params(cfg, jax.random.key(seed))
    assert compile_counts() == before


def test_scanned_layers_match_the_unrolled_model():
    """model.scan_layers: the same parameter tree, the same logits, MoE aux, sown intermediates and
    gradients as the unrolled blocks (to float rounding), under remat (the scan body is the
    same code with and without it; one compile-heavy case keeps the suite short)."""
    base = ModelConfig(d_model=16, n_layers=2, n_heads=2, ffn="moe", n_experts=4, top_k=2, moe_impl="dense",
                       remat=True)
    scan = dataclasses.replace(base, scan_layers=True)
    params = init_params(base, jax.random.key(0))
    assert jax.tree.structure(params) == jax.tree.structure(init_params(scan, jax.random.key(0)))
    tokens = jax.random.randint(jax.random.key(1), (2, 12), 0, base.vocab_size)

    def run(cfg):
        def loss(p):
            (logits, aux), st = Transformer(cfg).apply({"params": p}, tokens, mutable=["intermediates"])
            return jnp.mean(logits ** 2) + aux["lb_loss"], (logits, aux, st["intermediates"])
        return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    (l0, (lg0, aux0, st0)), g0 = run(base)
    (l1, (lg1, aux1, st1)), g1 = run(scan)
    close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
    close(l0, l1)
    close(lg0, lg1)
    jax.tree.map(close, aux0, aux1)
    assert jax.tree.structure(st0) == jax.tree.structure(st1)        # metrics read the same names
    jax.tree.map(close, st0, st1)
    jax.tree.map(close, g0, g1)

"""Mousse and Muon (bsz_lr.mousse, optim.name = muon | mousse) against their known special cases."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax.contrib import scale_by_muon

from bsz_lr.mousse import newton_schulz, scale_by_mousse

F32 = jnp.float32


def grads(n_steps, shape=(12, 20), seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    # anisotropic gradients: row and column scales that whitening can see
    rows = np.geomspace(0.1, 3.0, shape[-2])[:, None]
    cols = np.geomspace(2.0, 0.2, shape[-1])[None, :]
    return [jnp.asarray(scale * rows * cols * rng.normal(size=shape), F32) for _ in range(n_steps)]


def run(tx, gs):
    p = jnp.zeros_like(gs[0])
    state = tx.init(p)
    out, states = [], []
    for g in gs:
        u, state = tx.update(g, state, p)
        out.append(np.asarray(u))
        states.append(state)
    return out, states


def test_alpha_zero_is_muon_after_grafting():
    gs = grads(13)
    mine, _ = run(scale_by_mousse(alpha=0.0, ns_dtype=F32), gs)
    ref, _ = run(scale_by_muon(beta=0.95, nesterov=False), gs)   # optax's own Muon direction
    for a, b in zip(mine, ref):
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_newton_schulz_matches_optax_and_orthogonalises():
    x = grads(1, (16, 40))[0]
    o = np.asarray(newton_schulz(x, dtype=F32))
    ref, _ = run(scale_by_muon(beta=0.0, nesterov=False), [x])
    np.testing.assert_allclose(o, ref[0], atol=2e-5)
    s = np.linalg.svd(o, compute_uv=False)
    assert 0.6 < s.min() and s.max() < 1.25           # the quintic's band around 1
    assert np.asarray(newton_schulz(x, 0)) is not None and np.array_equal(newton_schulz(x, 0), x)


def test_update_is_invariant_to_scaling_the_gradient():
    a, _ = run(scale_by_mousse(ns_dtype=F32), grads(12))
    b, _ = run(scale_by_mousse(ns_dtype=F32), grads(12, scale=1e3))
    for x, y in zip(a, b):
        # float32 eigh rounding, amplified in the right factor's null space (rank 12 of 20) by eps^-alpha
        assert np.linalg.norm(x - y) < 1e-3 * np.linalg.norm(x)
    # without trace normalisation the eps floor is not scale-free: the updates differ
    c, _ = run(scale_by_mousse(ns_dtype=F32, trace_normalize=False, eps=1e-2), grads(3, scale=1e-2))
    d, _ = run(scale_by_mousse(ns_dtype=F32, trace_normalize=False, eps=1e-2), grads(3, scale=1e2))
    assert np.abs(c[-1] - d[-1]).max() > 1e-3


def test_identity_statistics_give_muon():
    g = grads(1)[0]
    tx = scale_by_mousse(factor_beta=1.0, ns_dtype=F32)          # the factors stay what they are
    p = jnp.zeros_like(g)
    st = tx.init(p)
    st = st._replace(L=jnp.eye(12, dtype=F32), R=jnp.eye(20, dtype=F32))
    u, _ = tx.update(g, st, p)
    np.testing.assert_allclose(np.asarray(u), np.asarray(newton_schulz(g, dtype=F32)), atol=2e-5)


def _power(F, eps, power):
    m = F.shape[0]
    Fb = m * F / np.trace(F) + eps * np.eye(m)
    d, Q = np.linalg.eigh(Fb)
    return Q @ np.diag(np.maximum(d, eps) ** power) @ Q.T


def test_without_newton_schulz_it_is_shampoo_up_to_grafting():
    gs = [np.asarray(g, np.float64) for g in grads(4)]
    out, states = run(scale_by_mousse(alpha=0.125, ns_steps=0, refresh_every=1, ns_dtype=F32), [jnp.asarray(g) for g in gs])
    b = 0.95
    L = sum((1 - b) * b ** (len(gs) - 1 - i) * g @ g.T for i, g in enumerate(gs))
    R = sum((1 - b) * b ** (len(gs) - 1 - i) * g.T @ g for i, g in enumerate(gs))
    M = sum(0.95 ** (len(gs) - 1 - i) * g for i, g in enumerate(gs))
    ref = _power(L, 1e-5, -0.25) @ M @ _power(R, 1e-5, -0.25)
    u = out[-1]
    cos = np.sum(u * ref) / np.linalg.norm(u) / np.linalg.norm(ref)
    assert cos == pytest.approx(1.0, abs=1e-5)
    # grafting: the Frobenius norm of the whitened input (here O = X), not of D
    X = _power(L, 1e-5, -0.125) @ M @ _power(R, 1e-5, -0.125)
    assert np.linalg.norm(u) == pytest.approx(np.linalg.norm(X), rel=1e-4)
    # one-sided: only the left factor
    out, _ = run(scale_by_mousse(alpha=0.125, ns_steps=0, refresh_every=1, ns_dtype=F32, sides="left"),
                 [jnp.asarray(g) for g in gs])
    ref = _power(L, 1e-5, -0.25) @ M
    cos = np.sum(out[-1] * ref) / np.linalg.norm(out[-1]) / np.linalg.norm(ref)
    assert cos == pytest.approx(1.0, abs=1e-5)


def test_refresh_happens_exactly_at_steps_1_and_every_T_after_in_one_program():
    tx = scale_by_mousse(refresh_every=10, ns_dtype=F32)
    p = jnp.zeros((12, 20), F32)
    state = tx.init(p)
    update = jax.jit(tx.update)
    changed, prev = [], np.asarray(state.QL)
    for t, g in enumerate(grads(25), start=1):
        _, state = update(g, state, p)
        if not np.array_equal(np.asarray(state.QL), prev):
            changed.append(t)
        prev = np.asarray(state.QL)
    assert changed == [1, 11, 21]
    assert update._cache_size() == 1                  # one compiled program for every step


def test_expert_stacks_are_batched_per_matrix():
    stack = jnp.stack([g for g in grads(3, (12, 20), seed=5)])          # (E=3, 12, 20)
    both, _ = run(scale_by_mousse(ns_dtype=F32), [stack, 0.5 * stack])
    for e in range(3):
        one, _ = run(scale_by_mousse(ns_dtype=F32), [stack[e], 0.5 * stack[e]])
        np.testing.assert_allclose(both[-1][e], one[-1], atol=2e-5)


def test_bad_leaves_and_options_are_refused():
    with pytest.raises(ValueError, match="every leaf must be a matrix"):
        scale_by_mousse().init({"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)})
    with pytest.raises(ValueError, match="sides must be one of"):
        scale_by_mousse(sides="up")
    with pytest.raises(ValueError, match="refresh_every"):
        scale_by_mousse(refresh_every=0)


def test_it_composes_with_plain_optax():
    tx = optax.chain(scale_by_mousse(), optax.add_decayed_weights(0.01), optax.scale_by_learning_rate(0.02))
    w = jnp.ones((6, 10), F32)
    u, _ = tx.update(grads(1, (6, 10))[0], tx.init(w), w)
    assert u.shape == w.shape and np.isfinite(np.asarray(u)).all()

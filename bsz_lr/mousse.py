"""Mousse (Zhang et al. 2026, "Rectifying the Geometry of Muon with Curvature-Aware Preconditioning")
as an optax GradientTransformation, usable with plain optax outside bsz_lr.

For a matrix leaf W (..., m, n) (flax kernels are (fan_in, fan_out); leading axes, such as an MoE
expert stack, are batched) with gradient G, step t = 1, 2, ...:

1. M <- mu M + G                                   heavy-ball sum (no Nesterov)
2. L <- b L + (1 - b) G G^T,  R <- b R + (1 - b) G^T G      Shampoo factors of the raw gradient
3. at t = 1, 1 + T, 1 + 2T, ...: Lb = m L / Tr L, Rb = n R / Tr R (trace normalisation),
   eigendecompositions of Lb + eps I and Rb + eps I, eigenvalues floored at eps; in between
   the last ones are reused.  The refresh is a lax.cond on the step count: no Python branch,
   one compiled program.
4. X = Lb^-alpha M Rb^-alpha                       tempered whitening (alpha = 1/8)
5. O = NS5(X), gamma = ||O||_F                     Muon's quintic Newton-Schulz polynomial
6. D = Lb^-alpha O Rb^-alpha, U = gamma D / ||D||_F       unwhitening, Frobenius grafting
7. the update is sqrt(fan_out / fan_in) U          (weight decay and -lr follow in the chain)

Steps 4-6 run in the factors' eigenbases (Newton-Schulz commutes with rotations, and Frobenius
norms are rotation-invariant), so the powers are elementwise scalings there.  Variants:
`sides="left"` / `"right"` (one-sided: the other factor is the identity), `trace_normalize=False`,
`graft=False`, `ns_steps=0` (no orthogonalisation: with alpha = 1/8 this is Shampoo's
L^-1/4 M R^-1/4 direction).  alpha = 0 is Muon with heavy-ball momentum.

    >>> tx = optax.chain(scale_by_mousse(), optax.add_decayed_weights(0.01), optax.scale_by_learning_rate(0.02))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["ScaleByMousseState", "scale_by_mousse", "scale_by_fan_ratio", "newton_schulz", "NS_COEFFS"]

NS_COEFFS = (3.4445, -4.775, 2.0315)     # Muon's quintic (Jordan 2024), optax.contrib's default
SIDES = ("both", "left", "right")


class ScaleByMousseState(NamedTuple):
    count: jax.Array          # steps taken (int32)
    mu: optax.Updates         # momentum M
    L: optax.Updates          # (..., m, m) left factor (a 1-element placeholder when unused)
    R: optax.Updates          # (..., n, n) right factor
    QL: optax.Updates         # eigenvectors of the normalised left factor at the last refresh
    dL: optax.Updates         # its eigenvalues (floored at eps)
    QR: optax.Updates
    dR: optax.Updates


def newton_schulz(x, ns_steps: int = 5, coeffs=NS_COEFFS, dtype=jnp.bfloat16, eps: float = 1e-8):
    """msign(x) over the last two axes (leading axes batched) by Muon's quintic Newton-Schulz
    iteration, computed in `dtype` and returned in x's dtype; ns_steps = 0 returns x unchanged.
    The same polynomial and Frobenius pre-scaling as optax.contrib's (whose function is private;
    tests check this one against optax.contrib.scale_by_muon)."""
    if ns_steps == 0:
        return x
    a, b, c = coeffs
    tall = x.shape[-2] > x.shape[-1]
    X = (jnp.swapaxes(x, -1, -2) if tall else x).astype(dtype)
    X = X / (jnp.sqrt(jnp.sum(X.astype(jnp.float32) ** 2, axis=(-2, -1), keepdims=True)) + eps).astype(dtype)
    for _ in range(ns_steps):
        A = X @ jnp.swapaxes(X, -1, -2)
        X = a * X + (b * A + c * A @ A) @ X
    return (jnp.swapaxes(X, -1, -2) if tall else X).astype(x.dtype)


def scale_by_fan_ratio() -> optax.GradientTransformation:
    """Multiply each matrix update (..., fan_in, fan_out) by sqrt(fan_out / fan_in), as Mousse's
    reference code does (optax.contrib.muon uses sqrt(max(1, fan_out / fan_in)) instead)."""
    def update(updates, state, params=None):
        return jax.tree.map(lambda u: u * (u.shape[-1] / u.shape[-2]) ** 0.5, updates), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


# An unused side's factor, basis and eigenvalues: one element (checkpointers refuse zero-size arrays).
_UNUSED = (1,)


def _eye(x, dim: int, use: bool):
    if not use:
        return jnp.zeros(_UNUSED, jnp.float32)
    return jnp.broadcast_to(jnp.eye(dim, dtype=jnp.float32), x.shape[:-2] + (dim, dim))


def _eig(F, eps: float, trace_normalize: bool):
    dim = F.shape[-1]
    if trace_normalize:
        tr = jnp.trace(F, axis1=-2, axis2=-1)[..., None, None]
        F = dim * F / jnp.maximum(tr, 1e-30)
    eye = jnp.eye(dim, dtype=F.dtype).reshape((1,) * (F.ndim - 2) + (dim, dim))
    d, Q = jnp.linalg.eigh(F + eps * eye)
    return Q, jnp.maximum(d, eps)


def scale_by_mousse(beta: float = 0.95, factor_beta: float = 0.95, alpha: float = 0.125,
                    refresh_every: int = 10, eps: float = 1e-5, ns_steps: int = 5, ns_coeffs=NS_COEFFS,
                    ns_dtype=jnp.bfloat16, trace_normalize: bool = True, graft: bool = True,
                    sides: str = "both") -> optax.GradientTransformation:
    """Mousse's direction for every leaf (each must have ndim >= 2; see the module docstring).
    Route embeddings, head and vectors elsewhere (optax.partition / multi_transform)."""
    if sides not in SIDES:
        raise ValueError(f"mousse: sides must be one of {SIDES}, got {sides!r}")
    if refresh_every < 1:
        raise ValueError(f"mousse: refresh_every must be >= 1, got {refresh_every}")
    left, right = sides in ("both", "left"), sides in ("both", "right")

    def init(params):
        for p in jax.tree.leaves(params):
            if p.ndim < 2:
                raise ValueError(f"mousse: every leaf must be a matrix (ndim >= 2), got shape {p.shape}")
        z = lambda f: jax.tree.map(f, params)
        zeros = lambda p, dim, use: jnp.zeros_like(_eye(p, dim, use))
        return ScaleByMousseState(
            count=jnp.zeros([], jnp.int32), mu=z(lambda p: jnp.zeros(p.shape, jnp.float32)),
            L=z(lambda p: zeros(p, p.shape[-2], left)), R=z(lambda p: zeros(p, p.shape[-1], right)),
            QL=z(lambda p: _eye(p, p.shape[-2], left)),
            dL=z(lambda p: jnp.ones(p.shape[:-1] if left else _UNUSED, jnp.float32)),
            QR=z(lambda p: _eye(p, p.shape[-1], right)),
            dR=z(lambda p: jnp.ones(p.shape[:-2] + p.shape[-1:] if right else _UNUSED, jnp.float32)))

    def leaf(g, m, L, R, QL, dL, QR, dR, refresh):
        g = g.astype(jnp.float32)
        m = beta * m + g
        if left:
            L = factor_beta * L + (1 - factor_beta) * jnp.einsum("...ij,...kj->...ik", g, g)
            QL, dL = jax.lax.cond(refresh, lambda: _eig(L, eps, trace_normalize), lambda: (QL, dL))
        if right:
            R = factor_beta * R + (1 - factor_beta) * jnp.einsum("...ji,...jk->...ik", g, g)
            QR, dR = jax.lax.cond(refresh, lambda: _eig(R, eps, trace_normalize), lambda: (QR, dR))
        x = m
        if left:
            x = jnp.einsum("...ji,...jk->...ik", QL, x)            # QL^T M
        if right:
            x = x @ QR                                            # (QL^T M) QR
        sl = dL[..., :, None] ** -alpha if left else 1.0
        sr = dR[..., None, :] ** -alpha if right else 1.0
        o = newton_schulz(x * sl * sr, ns_steps, ns_coeffs, ns_dtype)
        d = o * sl * sr
        if graft:
            norm = lambda a: jnp.sqrt(jnp.sum(a * a, axis=(-2, -1), keepdims=True))
            d = d * (norm(o) / jnp.maximum(norm(d), 1e-30))
        if left:
            d = QL @ d
        if right:
            d = jnp.einsum("...ij,...kj->...ik", d, QR)           # D QR^T
        return d, m, L, R, QL, dL, QR, dR

    def update(updates, state, params=None):
        del params
        refresh = state.count % refresh_every == 0                 # steps 1, 1 + T, ...
        out = jax.tree.map(lambda *a: leaf(*a, refresh), updates, state.mu, state.L, state.R,
                           state.QL, state.dL, state.QR, state.dR)
        pick = lambda i: jax.tree.map(lambda g, o: o[i], updates, out)
        new = ScaleByMousseState(optax.safe_increment(state.count), *(pick(i) for i in range(1, 8)))
        return jax.tree.map(lambda g, d: d.astype(g.dtype), updates, pick(0)), new

    return optax.GradientTransformation(init, update)

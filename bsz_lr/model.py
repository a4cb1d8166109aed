"""Decoder-only transformer in Flax Linen (pure functional: `init` / `apply` on param dicts).

Pre-norm RMSNorm, RoPE, causal attention with optional QK-norm, SwiGLU MLP or a
mixture of SwiGLU experts (top-k softmax router; gates renormalised over the k
chosen experts for k >= 2, the raw top-1 probability for k = 1 (Switch), so the
router always gets a gradient from the loss;
load-balance and optional z-loss, optional shared expert, no token dropping),
untied embedding and head.  `apply` returns (logits_BxTxV, aux) where aux holds
the MoE losses and per-layer expert loads.

Linen rather than NNX: parameters are plain nested dicts, which keeps the jitted
train step, lax.scan, orbax checkpoints and per-parameter optimizer multipliers
(muP) trivially functional.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from . import parametrization as pz
from .config import ModelConfig

__all__ = ["Transformer", "init_params", "param_roles", "param_counts", "counts_of", "compute_params", "rope", "activation_summary"]


def _normal(cfg: ModelConfig, role: str):
    return nn.initializers.normal(stddev=pz.init_std(cfg, role))


class RMSNorm(nn.Module):
    eps: float = 1e-6

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * scale.reshape((1,) * (x.ndim - 1) + (-1,))).astype(x.dtype)


def rope(x_BxTxHxK, base: float):
    """Rotary position embedding over the last axis (split-half convention)."""
    T, K = x_BxTxHxK.shape[1], x_BxTxHxK.shape[-1]
    half = K // 2
    freq_F = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    ang_TxF = jnp.arange(T, dtype=jnp.float32)[:, None] * freq_F[None, :]
    sin, cos = jnp.sin(ang_TxF)[None, :, None, :], jnp.cos(ang_TxF)[None, :, None, :]
    x1, x2 = x_BxTxHxK[..., :half], x_BxTxHxK[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x_BxTxHxK.dtype)


# The attention used on CPU by impl="auto" (see causal_attention); `make bench` A/Bs the choices.
CPU_ATTENTION = {"impl": "blocked", "block": 64}


def _attend(q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, scale: float, offset: int):
    """Softmax attention of T queries at positions offset .. offset+T-1 over keys 0 .. S-1, causal."""
    T, S = q_BxTxHxK.shape[1], k_BxSxHxK.shape[1]
    s_BxHxTxS = jnp.einsum("bthk,bshk->bhts", q_BxTxHxK, k_BxSxHxK) * scale
    causal_1x1xTxS = (jnp.arange(S)[None, :] <= jnp.arange(T)[:, None] + offset)[None, None]
    p_BxHxTxS = jax.nn.softmax(jnp.where(causal_1x1xTxS, s_BxHxTxS.astype(jnp.float32), -1e30), axis=-1)
    return jnp.einsum("bhts,bshk->bthk", p_BxHxTxS.astype(v_BxSxHxK.dtype), v_BxSxHxK)


def causal_attention(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, scale: float, impl: str = "auto", block: int = 64):
    """Softmax attention with a causal mask.

    impl "fused": jax.nn.dot_product_attention (cuDNN flash attention where available);
    "einsum": two einsums over the full T x T scores;
    "blocked": the queries in blocks of `block` tokens, each attending only to the keys up to its
    end, so the masked upper triangle is mostly skipped (T / block blocks: 1/2 + block / 2T of the
    score FLOPs and memory); the same numbers as "einsum" up to float rounding;
    "auto": fused on accelerators, CPU_ATTENTION on CPU (measured fastest there, see README).
    """
    if impl == "auto":
        if jax.default_backend() != "cpu":
            impl = "fused"
        else:
            impl, block = CPU_ATTENTION["impl"], CPU_ATTENTION.get("block", block)
    if impl == "fused":
        return jax.nn.dot_product_attention(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, is_causal=True, scale=scale)
    if impl not in ("einsum", "blocked"):
        raise ValueError(f"causal_attention: unknown impl {impl!r}")
    T = q_BxTxHxK.shape[1]
    if impl == "einsum" or T <= block:
        return _attend(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, scale, 0)
    starts = list(range(0, T, block))
    return jnp.concatenate([
        _attend(q_BxTxHxK[:, t0:t0 + block], k_BxTxHxK[:, :t0 + block], v_BxTxHxK[:, :t0 + block], scale, t0)
        for t0 in starts], axis=1)


class Attention(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_BxTxD):
        c = self.cfg
        B, T, _ = x_BxTxD.shape
        H, K = c.n_heads, c.d_head
        dense = lambda name, role: nn.Dense(c.d_model, use_bias=False, kernel_init=_normal(c, role), name=name)
        q_BxTxHxK = dense("q", "hidden")(x_BxTxD).reshape(B, T, H, K)
        k_BxTxHxK = dense("k", "hidden")(x_BxTxD).reshape(B, T, H, K)
        v_BxTxHxK = dense("v", "hidden")(x_BxTxD).reshape(B, T, H, K)
        if c.qk_norm:
            q_BxTxHxK = RMSNorm(name="q_norm")(q_BxTxHxK)
            k_BxTxHxK = RMSNorm(name="k_norm")(k_BxTxHxK)
        q_BxTxHxK, k_BxTxHxK = rope(q_BxTxHxK, c.rope_base), rope(k_BxTxHxK, c.rope_base)
        y_BxTxHxK = causal_attention(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, pz.attn_scale(c))
        if self.is_mutable_collection("intermediates"):   # train.analysis: the largest pre-softmax logit
            s_BxHxTxT = jnp.einsum("bthk,bshk->bhts", *jax.lax.stop_gradient((q_BxTxHxK, k_BxTxHxK)))
            causal_TxT = jnp.arange(T)[None, :] <= jnp.arange(T)[:, None]
            self.sow("intermediates", "attn_logit_max",
                     jnp.max(jnp.where(causal_TxT, s_BxHxTxT.astype(jnp.float32) * pz.attn_scale(c), -jnp.inf)))
        return dense("o", "out_proj")(y_BxTxHxK.reshape(B, T, c.d_model))


class SwiGLU(nn.Module):
    cfg: ModelConfig
    width: int

    @nn.compact
    def __call__(self, x_BxTxD):
        c = self.cfg
        gate = nn.Dense(self.width, use_bias=False, kernel_init=_normal(c, "hidden"), name="gate")(x_BxTxD)
        up = nn.Dense(self.width, use_bias=False, kernel_init=_normal(c, "hidden"), name="up")(x_BxTxD)
        return nn.Dense(c.d_model, use_bias=False, kernel_init=_normal(c, "out_proj"),
                        name="down")(nn.silu(gate) * up)


class MoE(nn.Module):
    """Top-k mixture of SwiGLU experts; every token goes to exactly k experts (no capacity, no drops)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_BxTxD):
        c = self.cfg
        B, T, D = x_BxTxD.shape
        E, k, F = c.n_experts, c.top_k, c.expert_width
        x_NxD = x_BxTxD.reshape(B * T, D)
        N = x_NxD.shape[0]
        logits_NxE = nn.Dense(E, use_bias=False, kernel_init=_normal(c, "router"),
                              name="router")(x_NxD).astype(jnp.float32)
        if pz.router_mult(c) != 1.0:
            logits_NxE = logits_NxE * pz.router_mult(c)
        probs_NxE = jax.nn.softmax(logits_NxE, axis=-1)
        self.sow("intermediates", "router_entropy",
                 -jnp.mean(jnp.sum(probs_NxE * jnp.log(jnp.maximum(probs_NxE, 1e-30)), axis=-1)))
        top_NxK, idx_NxK = jax.lax.top_k(probs_NxE, k)
        # k = 1: renormalising would make every gate 1 and cut the router off from the loss.
        gates_NxK = top_NxK if k == 1 else top_NxK / jnp.sum(top_NxK, axis=-1, keepdims=True)
        w_gate = self.param("w_gate", _normal(c, "expert"), (E, D, F))
        w_up = self.param("w_up", _normal(c, "expert"), (E, D, F))
        w_down = self.param("w_down", _normal(c, "expert_out"), (E, F, D))

        if c.moe_impl == "ragged":
            # Sort the N*k (token, expert) assignments by expert, run grouped matmuls, scatter back.
            e_A = idx_NxK.reshape(-1)
            order_A = jnp.argsort(e_A, stable=True)
            tok_A = order_A // k
            sizes_E = jnp.bincount(e_A, length=E).astype(jnp.int32)
            xs_AxD = x_NxD[tok_A]
            h_AxF = (nn.silu(jax.lax.ragged_dot(xs_AxD, w_gate, sizes_E))
                     * jax.lax.ragged_dot(xs_AxD, w_up, sizes_E))
            ys_AxD = jax.lax.ragged_dot(h_AxF, w_down, sizes_E)
            ys_AxD = ys_AxD * gates_NxK.reshape(-1)[order_A][:, None].astype(ys_AxD.dtype)
            y_NxD = jnp.zeros_like(x_NxD).at[tok_A].add(ys_AxD)
        else:
            # Every expert on every token, combined with the (sparse) gate matrix: simple, E/k x the FLOPs.
            h_NxExF = nn.silu(jnp.einsum("nd,edf->nef", x_NxD, w_gate)) * jnp.einsum("nd,edf->nef", x_NxD, w_up)
            y_NxExD = jnp.einsum("nef,efd->ned", h_NxExF, w_down)
            combine_NxE = jnp.sum(jax.nn.one_hot(idx_NxK, E) * gates_NxK[..., None], axis=1)
            y_NxD = jnp.einsum("ne,ned->nd", combine_NxE.astype(y_NxExD.dtype), y_NxExD)

        if c.shared_expert:
            y_NxD = y_NxD + SwiGLU(c, F, name="shared")(x_NxD)
        load_E = jnp.bincount(idx_NxK.reshape(-1), length=E)
        frac_E = load_E / (N * k)
        aux = {
            "lb_loss": E * jnp.sum(frac_E * jnp.mean(probs_NxE, axis=0)),   # 1.0 when perfectly balanced
            "z_loss": jnp.mean(jax.nn.logsumexp(logits_NxE, axis=-1) ** 2),
            "load": load_E,
        }
        return y_NxD.reshape(B, T, D), aux


class Block(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_BxTxD):
        c = self.cfg
        mult = pz.branch_mult(c)
        a_BxTxD = Attention(c, name="attn")(RMSNorm(name="norm_attn")(x_BxTxD))
        self.sow("intermediates", "attn_out", a_BxTxD)
        x_BxTxD = x_BxTxD + (a_BxTxD * mult if mult != 1.0 else a_BxTxD)
        h_BxTxD = RMSNorm(name="norm_ffn")(x_BxTxD)
        if c.ffn == "moe":
            y_BxTxD, aux = MoE(c, name="moe")(h_BxTxD)
        else:
            y_BxTxD, aux = SwiGLU(c, c.ffn_width, name="mlp")(h_BxTxD), None
        self.sow("intermediates", "ffn_out", y_BxTxD)
        out_BxTxD = x_BxTxD + (y_BxTxD * mult if mult != 1.0 else y_BxTxD)
        self.sow("intermediates", "residual", out_BxTxD)
        return out_BxTxD, aux


class Transformer(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, tokens_BxT):
        c = self.cfg
        x_BxTxD = nn.Embed(c.vocab_size, c.d_model, embedding_init=_normal(c, "embedding"),
                           name="embed")(tokens_BxT)
        self.sow("intermediates", "embed_out", x_BxTxD)
        if c.scan_layers and not self.is_initializing():
            x_BxTxD, auxes = self._scan_blocks(x_BxTxD)
        else:
            auxes = []
            block = nn.remat(Block) if c.remat else Block    # remat: keep only each block's input
            for i in range(c.n_layers):
                x_BxTxD, aux = block(c, name=f"block_{i}")(x_BxTxD)
                auxes.append(aux)
        x_BxTxD = RMSNorm(name="norm_f")(x_BxTxD)
        logits_BxTxV = nn.Dense(c.vocab_size, use_bias=False, kernel_init=_normal(c, "head"),
                                name="head")(x_BxTxD).astype(jnp.float32)
        if pz.logit_mult(c) != 1.0:
            logits_BxTxV = logits_BxTxV * pz.logit_mult(c)
        self.sow("intermediates", "logits", logits_BxTxV)
        if c.ffn == "moe":
            aux = {"lb_loss": jnp.mean(jnp.stack([a["lb_loss"] for a in auxes])),
                   "z_loss": jnp.mean(jnp.stack([a["z_loss"] for a in auxes])),
                   "load": jnp.stack([a["load"] for a in auxes])}
        else:
            aux = {"lb_loss": jnp.zeros(()), "z_loss": jnp.zeros(())}
        return logits_BxTxV, aux


    def _scan_blocks(self, x_BxTxD):
        """model.scan_layers: the blocks as one jax.lax.scan over their parameters stacked on a
        leading layer axis, so a deep model compiles one block instead of n_layers.  The stored
        parameters keep their per-block names (block_0, block_1, ...: init, checkpoints, muP
        roles and optimizers see the same tree; the stack is a copy made in the step), and the
        sown intermediates are put back per block, so every metric reads the same names."""
        c = self.cfg
        n = c.n_layers
        params = self.variables["params"]
        stacked_L = jax.tree.map(lambda *xs: jnp.stack(xs), *[params[f"block_{i}"] for i in range(n)])
        sow = self.is_mutable_collection("intermediates")
        block = Block(c, parent=None)

        def body(x, p):
            if sow:
                (y, aux), st = block.apply({"params": p}, x, mutable=["intermediates"])
                return y, (aux, st["intermediates"])
            y, aux = block.apply({"params": p}, x)
            return y, (aux, None)

        x_BxTxD, (aux_L, inter_L) = jax.lax.scan(jax.checkpoint(body) if c.remat else body, x_BxTxD, stacked_L)
        at = lambda tree, i: jax.tree.map(lambda a: a[i], tree)
        if sow:
            for i in range(n):
                self.put_variable("intermediates", f"block_{i}", at(inter_L, i))
        return x_BxTxD, [at(aux_L, i) if aux_L is not None else None for i in range(n)]


@functools.lru_cache(maxsize=16)
def _jitted_init(cfg: ModelConfig):
    model = Transformer(cfg)
    return jax.jit(lambda k: model.init(k, jnp.zeros((1, 8), jnp.int32))["params"])


def init_params(cfg: ModelConfig, key) -> dict:
    """Parameters for `cfg` from PRNG `key` (jitted once per config: eager init compiles op by op)."""
    return _jitted_init(cfg)(key)


def activation_summary(intermediates) -> dict:
    """Scalars of the sown module outputs (train.analysis): RMS of the attention and FFN outputs
    (mean over layers) and of the last residual stream, logit RMS and mean log Z, the largest
    pre-softmax attention logit (max over layers, heads and positions), and for MoE the router
    entropy (mean over layers)."""
    rms = lambda x: jnp.sqrt(jnp.mean(jnp.square(x.astype(jnp.float32))))
    blocks = sorted(k for k in intermediates if k.startswith("block_"))
    layer = lambda name: [intermediates[b][name][0] for b in blocks if name in intermediates[b]]
    logits = intermediates["logits"][0]
    out = {"attn_out": jnp.mean(jnp.stack([rms(x) for x in layer("attn_out")])),
           "ffn_out": jnp.mean(jnp.stack([rms(x) for x in layer("ffn_out")])),
           "residual": rms(intermediates[blocks[-1]]["residual"][0]),
           "logits": rms(logits), "logz": jnp.mean(jax.nn.logsumexp(logits, axis=-1))}
    out["attn_logit_max"] = jnp.max(jnp.stack([intermediates[b]["attn"]["attn_logit_max"][0] for b in blocks]))
    ent = [intermediates[b]["moe"]["router_entropy"][0] for b in blocks if "moe" in intermediates[b]]
    if ent:
        out["router_entropy"] = jnp.mean(jnp.stack(ent))
    return out


def compute_params(params, cfg: ModelConfig):
    """The parameters in the config's compute dtype (model.compute_dtype): the float32 masters
    cast for the forward pass; the gradient flows back through the cast in float32.  Norms,
    softmax and logits are computed in float32 whatever the compute dtype (RMSNorm, _attend,
    Transformer), and so is the loss."""
    if cfg.compute_dtype == "float32":
        return params
    return jax.tree.map(lambda p: p.astype(jnp.dtype(cfg.compute_dtype)), params)


def param_roles(params) -> dict:
    """A pytree like params naming each parameter's role (see parametrization.py)."""
    def role(path, leaf):
        names = [getattr(p, "key", str(p)) for p in path]
        if names[0] == "embed":
            return "embedding"
        if names[0] == "head":
            return "head"
        if leaf.ndim < 2:
            return "vector"
        if "router" in names:
            return "router"
        if names[-1] in ("w_gate", "w_up"):
            return "expert"
        if names[-1] == "w_down":
            return "expert_out"
        if names[-2] in ("o", "down"):
            return "out_proj"
        return "hidden"
    return jax.tree_util.tree_map_with_path(role, params)


def counts_of(cfg: ModelConfig) -> dict[str, int]:
    """param_counts of a config without making its parameters (shapes only)."""
    return param_counts(jax.eval_shape(lambda: init_params(cfg, jax.random.key(0))), cfg)


def param_counts(params, cfg: ModelConfig) -> dict[str, int]:
    """total, non_embedding (total minus embedding and head) and active (MoE: k of E experts)."""
    roles = jax.tree.leaves(param_roles(params))
    sizes = [int(np.prod(x.shape)) for x in jax.tree.leaves(params)]
    total = sum(sizes)
    emb = sum(s for r, s in zip(roles, sizes) if r in ("embedding", "head"))
    expert = sum(s for r, s in zip(roles, sizes) if r in ("expert", "expert_out"))
    inactive = expert * (cfg.n_experts - cfg.top_k) // cfg.n_experts if cfg.ffn == "moe" else 0
    return {"total": total, "non_embedding": total - emb, "active": total - inactive}

"""The PyTorch peer of `make bench`: the same model, data shapes and AdamW, written as a user would.

nanoGPT style: `F.scaled_dot_product_attention(is_causal=True)`, fused AdamW with decoupled weight
decay on matrices only, global-norm clipping, the default intra-op threads.  Weights are copied
from a bsz_lr parameter dict, so both sides start from the same point and `parity` can check that
one step gives the same loss and gradient norm.  torch is an optional extra (`bsz_lr[bench]`);
nothing else in the package imports this module.
"""

from __future__ import annotations

import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:          # pragma: no cover - reported by bench.main
    torch = None

__all__ = ["available", "INSTALL_HINT", "TorchPeer", "parity"]

INSTALL_HINT = ("PyTorch peer skipped: torch is not installed. Install the CPU build with\n"
                "  .venv/bin/pip install -e '.[bench]' --extra-index-url https://download.pytorch.org/whl/cpu")


def available() -> bool:
    return torch is not None


def _t(x) -> "torch.Tensor":
    return torch.tensor(np.asarray(x, dtype=np.float32))


if torch is not None:
    class _RMSNorm(torch.nn.Module):
        def __init__(self, scale, eps=1e-6):
            super().__init__()
            self.scale, self.eps = torch.nn.Parameter(_t(scale)), eps

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.scale

    def _linear(kernel_in_out) -> "torch.nn.Linear":
        d_in, d_out = np.shape(kernel_in_out)
        lin = torch.nn.Linear(d_in, d_out, bias=False)
        lin.weight.data = _t(np.asarray(kernel_in_out).T).contiguous()
        return lin

    class _Block(torch.nn.Module):
        def __init__(self, p, n_heads, rope_base):
            super().__init__()
            a, m = p["attn"], p["mlp"]
            self.norm_attn, self.norm_ffn = _RMSNorm(p["norm_attn"]["scale"]), _RMSNorm(p["norm_ffn"]["scale"])
            self.q, self.k, self.v, self.o = (_linear(a[n]["kernel"]) for n in "qkvo")
            self.gate, self.up, self.down = (_linear(m[n]["kernel"]) for n in ("gate", "up", "down"))
            self.h, self.rope_base = n_heads, rope_base

        def rope(self, x_BxHxTxK):
            T, K = x_BxHxTxK.shape[-2:]
            half = K // 2
            freq = self.rope_base ** (-torch.arange(half, dtype=torch.float32) / half)
            ang = torch.arange(T, dtype=torch.float32)[:, None] * freq[None]
            sin, cos = ang.sin(), ang.cos()
            x1, x2 = x_BxHxTxK[..., :half], x_BxHxTxK[..., half:]
            return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)

        def forward(self, x_BxTxD):
            B, T, D = x_BxTxD.shape
            h = self.norm_attn(x_BxTxD)
            q, k, v = (f(h).view(B, T, self.h, D // self.h).transpose(1, 2) for f in (self.q, self.k, self.v))
            y = F.scaled_dot_product_attention(self.rope(q), self.rope(k), v, is_causal=True)
            x_BxTxD = x_BxTxD + self.o(y.transpose(1, 2).reshape(B, T, D))
            h = self.norm_ffn(x_BxTxD)
            return x_BxTxD + self.down(F.silu(self.gate(h)) * self.up(h))

    class TorchModel(torch.nn.Module):
        """bsz_lr's dense Transformer (model.py) with weights taken from its parameter dict."""

        def __init__(self, params, cfg):
            super().__init__()
            self.embed = torch.nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.embed.weight.data = _t(params["embed"]["embedding"])
            self.blocks = torch.nn.ModuleList(_Block(params[f"block_{i}"], cfg.n_heads, cfg.rope_base)
                                              for i in range(cfg.n_layers))
            self.norm_f = _RMSNorm(params["norm_f"]["scale"])
            self.head = _linear(params["head"]["kernel"])

        def forward(self, tokens_BxT):
            x = self.embed(tokens_BxT)
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.norm_f(x))


class TorchPeer:
    """One training step of the PyTorch model: forward, cross-entropy, backward, clip, fused AdamW."""

    def __init__(self, params, cfg, lr: float = 1e-3, compile: bool = False):
        if cfg.model.ffn != "dense":
            raise ValueError("the PyTorch peer implements the dense model only")
        self.cfg = cfg
        self.model = TorchModel(jax_to_numpy(params), cfg.model)
        o = cfg.optim
        decay = [p for p in self.model.parameters() if p.ndim >= 2]      # matrices (embedding, head incl.)
        rest = [p for p in self.model.parameters() if p.ndim < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                      {"params": rest, "weight_decay": 0.0}],
                                     lr=lr, betas=(o.b1, o.b2), eps=o.eps, fused=True)
        self.forward = torch.compile(self.model) if compile else self.model

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def step(self, batch_BxT1) -> tuple[float, float]:
        b = torch.as_tensor(np.asarray(batch_BxT1, dtype=np.int64))
        logits = self.forward(b[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), b[:, 1:].reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_norm)
        self.opt.step()
        return loss.detach(), gnorm

    def tokens_per_s(self, batches, seconds: float, warmup: int = 3) -> float:
        for i in range(warmup):
            self.step(batches[i % len(batches)])
        n, t = 0, time.perf_counter()
        while n < len(batches) or time.perf_counter() - t < seconds:
            loss, _ = self.step(batches[n % len(batches)])
            n += 1
        float(loss)
        dt = time.perf_counter() - t
        B, T1 = np.shape(batches[0])
        return n * B * (T1 - 1) / dt


def jax_to_numpy(params) -> dict:
    import jax
    return jax.tree.map(lambda x: np.asarray(x, dtype=np.float32), params)


def parity(cfg, params, batch_BxT1) -> dict:
    """Loss and gradient norm of one step on both sides, from the same weights and batch."""
    import jax
    import optax
    from .model import Transformer, param_counts
    from .train import loss_fn

    model = Transformer(cfg.model)
    (_, (ce, _)), grads = jax.value_and_grad(lambda p: loss_fn(model, p, batch_BxT1), has_aux=True)(params)
    peer = TorchPeer(params, cfg)
    loss, gnorm = peer.step(batch_BxT1)
    return {"jax_loss": float(ce), "torch_loss": float(loss), "jax_grad_norm": float(optax.tree.norm(grads)),
            "torch_grad_norm": float(gnorm), "jax_params": param_counts(params, cfg.model)["total"],
            "torch_params": peer.n_params()}

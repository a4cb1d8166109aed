"""LR paper, Transfer paradigm (spec section 2): does the optimal LR stay put across width, SP vs muP?

Widths 32 / 64 / 128 at depth 2, head dim 16 (the heads grow with the width, so attention keeps
1/sqrt(d_head)), dense; each under SP and under muP with base width 32 (equal to SP there:
hidden init / sqrt(m), hidden Adam LR / m, logits x 1/m), 6 peak LRs x2 apart.  WSD over 262k
tokens (warmup 20,480 tokens, 1-sqrt decay over the last 20%), batch 16 x 64, Adam eps 1e-10 for
both (muP needs a small eps).  The final held-out loss per (width, LR) is Fig. `mup_width`.
"""

from bsz_lr.config import GPU_BASE

NAME = "mup_width"
BASE = {
    "data.corpus": "austen",
    "data.seq_len": 64,
    "data.batch_size": 16,
    "model.n_layers": 2,
    "optim.eps": 1e-10,
    "schedule.kind": "wsd",
    "schedule.warmup_tokens": 20_480,
    "schedule.decay_fraction": 0.2,
    "schedule.decay_shape": "1-sqrt",
    "train.tokens": 262_144,
    "train.eval_every": 0,
    "train.eval_tokens": 32_768,
    "train.checkpoint_every": 0,
}
WIDTHS = [(32, 2), (64, 4), (128, 8)]
LRS = [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2]
SIZE_KEYS = ("model.d_model", "model.n_heads")
GRID = [{"model.parametrization": ["sp"], SIZE_KEYS: WIDTHS, "optim.lr": LRS},
        {"model.parametrization": ["mup"], "model.base_d_model": [32], SIZE_KEYS: WIDTHS, "optim.lr": LRS}]
PROFILES = {
    "smoke": {"data.seq_len": 32, "data.batch_size": 4, "train.tokens": 2_048, "train.eval_tokens": 1024,
              "schedule.warmup_tokens": 256, "train.scan_steps": 4,
              "grid": [{"model.parametrization": ["sp", "mup"], "model.base_d_model": [16],
                        SIZE_KEYS: [(16, 1), (32, 2)], "optim.lr": [3e-3, 1e-2]}]},
    "cpu": {},
}
# gpu: widths 256 / 512 / 1024 at depth 8, head dim 64, base width 256 (bf16, T = 1024, 128
# sequences), 524M tokens (4,000 steps; warmup 320 steps), the same 6 LRs x2 apart shifted for the
# size; micro-batches so each pass fits 80 GB (tested against sharding.memory_estimate).  Not run.
GPU_WIDTHS = [(256, 4, 1), (512, 8, 1), (1024, 16, 2)]           # (d_model, heads, micro-batches)
GPU_LRS = [5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2]
GPU_KEYS = SIZE_KEYS + ("train.microbatches",)
PROFILES["gpu"] = {**GPU_BASE, "model.n_layers": 8, "train.tokens": 524_288_000,
                   "schedule.warmup_tokens": 41_943_040,
                   "grid": [{"model.parametrization": ["sp"], GPU_KEYS: GPU_WIDTHS, "optim.lr": GPU_LRS},
                            {"model.parametrization": ["mup"], "model.base_d_model": [256], GPU_KEYS: GPU_WIDTHS,
                             "optim.lr": GPU_LRS}]}
FIGURES = ["mup_width"]

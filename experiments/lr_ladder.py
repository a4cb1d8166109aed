"""LR paper, Fitting paradigm (spec section 1): peak-LR ladders with WSD decay branches, dense and MoE.

Four sizes at depth 2, widths 32 / 48 / 72 / 104 (head dim 16-26): 25k, 55k, 124k and 262k
non-embedding parameters (10.4x), each as a dense SwiGLU model and as a top-2 MoE with 4 experts
of half the dense FFN width (same active width; 1.6x the total non-embedding parameters) computed
densely (the fast formulation on CPU, `bench --moe`).  Per size 6 peak LRs x2 apart: a per-size
list, set where the optimum lies (see the README for how the lists were extended).  Per
(size, LR) one warmup + constant-LR run to 655k tokens keeps checkpoints at 82k / 164k / 328k /
655k tokens (x2 apart, C_D = 4); from each a 1-sqrt decay over 20% of the branch length gives the
post-decay held-out loss at D = 102k / 205k / 410k / 819k tokens.  Batch 16 x 64 tokens
(fastest per token on one core at these widths), warmup 20,480 tokens.

The fits (laws.lr_analysis) read these runs: Eq. 4 per (N, LR), Eq. 2 per (N, D), Eq. 6 and the
near-optimal band over every (N, D); `lr_heldout.py` trains the largest size at the eta* the
three smaller sizes predict.
"""

from bsz_lr.config import GPU_BASE, GPU_LADDER, SIZES

NAME = "lr_ladder"
BASE = {
    "data.corpus": "austen",
    "data.seq_len": 64,
    "data.batch_size": 16,
    "model.n_layers": 2,
    "model.n_experts": 4,                  # used when model.ffn = moe
    "model.top_k": 2,
    "model.moe_impl": "dense",
    "schedule.kind": "constant",           # the stable phase; branches add the decay
    "schedule.warmup_tokens": 20_480,
    "train.tokens": 655_360,
    "train.eval_every": 0,
    "train.eval_points": 8,
    "train.eval_tokens": 32_768,
    "train.checkpoint_every": 0,
}
SIZE_KEYS = ("model.d_model", "model.n_heads")
FFNS = ["dense", "moe"]
# (d_model, heads) -> peak LRs, x2 apart
LADDER = [((32, 2), [2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2, 6.4e-2]),
          ((48, 3), [2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2, 6.4e-2]),
          ((72, 4), [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2]),
          ((104, 4), [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2])]
GRID = [{SIZE_KEYS: [size], "optim.lr": lrs, "model.ffn": FFNS} for size, lrs in LADDER]
BRANCHES = {"at_tokens": [81_920, 163_840, 327_680, 655_360], "fraction": 0.2, "shape": "1-sqrt"}
PROFILES = {
    "smoke": {"data.seq_len": 32, "data.batch_size": 4, "train.tokens": 4_096, "train.eval_points": 3,
              "train.eval_tokens": 1024, "schedule.warmup_tokens": 512, "train.scan_steps": 4,
              "grid": [{SIZE_KEYS: [size], "optim.lr": [2e-3, 8e-3, 3.2e-2], "model.ffn": ["dense"]}
                       for size in [(16, 2), (32, 2)]],
              "branches": {"at_tokens": [1_024, 2_048, 4_096], "fraction": 0.2, "shape": "1-sqrt"}},
    "cpu": {},
    "cpu-long": {"train.tokens": 2_621_440,
                 "grid": GRID + [{SIZE_KEYS: [(160, 8)], "optim.lr": [5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2],
                                  "model.ffn": FFNS}],
                 "branches": {"at_tokens": [163_840, 327_680, 655_360, 1_310_720, 2_621_440],
                              "fraction": 0.2, "shape": "1-sqrt"}},
    # The 100M-1B ladder of config.GPU_LADDER (bf16, T = 1024, 131k tokens per step), D = 0.5-4B
    # tokens, dense and MoE (ragged experts): not run yet (no GPU has been lent); `sweep --dry-run`
    # prints each run's FLOPs.
    "gpu": {**GPU_BASE, "train.tokens": 3_276_800_000, "schedule.warmup_tokens": 52_428_800,
            # MoE (top-2 of 4 experts) keeps twice the FFN activations: twice the micro-batches
            "grid": [{("model.d_model", "model.n_layers", "model.n_heads", "train.microbatches"):
                      [(SIZES[n]["d_model"], SIZES[n]["n_layers"], SIZES[n]["n_heads"],
                        o["train.microbatches"] * (2 if ffn == "moe" else 1)) for n, o in GPU_LADDER.items()],
                      "optim.lr": [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3], "model.ffn": [ffn]} for ffn in FFNS],
            "branches": {"at_tokens": [409_600_000, 819_200_000, 1_638_400_000, 3_276_800_000],
                         "fraction": 0.2, "shape": "1-sqrt"}},
}
FIGURES = ["lr_fig1", "lr_law", "lr_search_cost"]

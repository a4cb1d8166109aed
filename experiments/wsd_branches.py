"""Decay branches off one stable (constant-LR) run: post-decay loss at several data sizes.

One warmup + constant-LR run keeps checkpoints at D_j; from each, a WSD branch decays the LR
(1-sqrt, over 20% of the branch) and records the post-decay held-out loss.  This is the
measurement both papers build on (LR paper Eq. 4: L(D) = L_0 + A D^-gamma over C_D sizes).
"""

from bsz_lr.config import GPU_BASE, GPU_LADDER

NAME = "wsd_branches"
BASE = {
    "model.size": "tiny",
    "data.seq_len": 128,
    "data.batch_size": 32,
    "optim.lr": 3e-3,
    "schedule.kind": "constant",          # the stable phase; branches add the decay
    "schedule.warmup_tokens": 100_000,
}
GRID = {}
BRANCHES = {"at_tokens": [250_000, 500_000, 1_000_000, 2_000_000], "fraction": 0.2, "shape": "1-sqrt"}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "data.batch_size": 8, "train.tokens": 10_240,
              "train.eval_every": 10, "train.checkpoint_every": 20, "train.eval_tokens": 2048,
              "schedule.warmup_tokens": 1024,
              "branches": {"at_tokens": [2_560, 5_120, 10_240], "fraction": 0.25, "shape": "1-sqrt"}},
    "cpu": {"train.tokens": 2_000_000, "train.eval_every": 50, "train.checkpoint_every": 200},
    "gpu": {**GPU_BASE, **GPU_LADDER["gpu-100m"],
            "train.tokens": 2_000_000_000, "train.eval_every": 500, "train.checkpoint_every": 1000,
            "schedule.warmup_tokens": 20_000_000,
            "branches": {"at_tokens": [250_000_000, 500_000_000, 1_000_000_000, 2_000_000_000],
                         "fraction": 0.2, "shape": "1-sqrt"}},
}
FIGURES = ["wsd_branches"]

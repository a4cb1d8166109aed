"""Batch-size paper, step 0: the one peak LR of each size's batch sweep (spec section 4).

The paper sweeps batch size at a fixed peak LR; we pick, per model size, the best of a few LRs
x2 apart for a middle batch (B = 32 sequences of 64 tokens) in the same stable-phase setting
(warmup in tokens, then constant LR), by held-out loss at the end.  `bsz_sweep.py` uses the LRs
chosen here (written there by hand, with the numbers, in its comment: the sweep does not read
this experiment's results, so editing the probe never silently changes the sweep).
"""

from bsz_lr.config import GPU_BASE, gpu_rung

NAME = "bsz_lr_probe"
BASE = {
    "data.corpus": "austen",
    "data.seq_len": 64,
    "data.batch_size": 32,
    "schedule.kind": "constant",           # the WSD stable phase: no decay
    "schedule.warmup_tokens": 65_536,
    "train.eval_every": 0,
    "train.eval_points": 30,
    "train.eval_tokens": 16_384,
    "train.checkpoint_every": 0,
}
GRID = [{"model.size": ["micro"], "optim.lr": [3e-3, 6e-3, 1.2e-2]},
        {"model.size": ["tiny"], "optim.lr": [1.5e-3, 3e-3, 6e-3]}]
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "data.batch_size": 8, "train.tokens": 5_120,
              "train.eval_points": 5, "train.eval_tokens": 2048, "schedule.warmup_tokens": 1024,
              "grid": {"optim.lr": [3e-3, 1e-2]}},
    "cpu": {"train.tokens": 1_000_000},
    "cpu-long": {"train.tokens": 2_000_000,
                 "grid": [{"model.size": ["micro"], "optim.lr": [3e-3, 6e-3, 1.2e-2]},
                          {"model.size": ["tiny"], "optim.lr": [1.5e-3, 3e-3, 6e-3]},
                          {"model.size": ["small"], "optim.lr": [1e-3, 2e-3, 4e-3]}]},
}
# The gpu ladder's two smallest rungs (config.GPU_LADDER: bf16, T = 1024, 128 sequences per step),
# 1B tokens, warmup 20M tokens (160 steps): the LRs for the gpu batch sweep.  Not run yet.
PROFILES["gpu"] = {**GPU_BASE, "train.tokens": 1_000_000_000, "schedule.warmup_tokens": 20_971_520,
                   "train.eval_tokens": 1_048_576,
                   "grid": [{**{k: [v] for k, v in gpu_rung("gpu-100m").items()}, "optim.lr": [5e-4, 1e-3, 2e-3]},
                            {**{k: [v] for k, v in gpu_rung("gpu-300m").items()}, "optim.lr": [2.5e-4, 5e-4, 1e-3]}]}
FIGURES = []

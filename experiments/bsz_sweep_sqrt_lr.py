"""Batch-size paper, ablation: the micro model's batch sweep with the peak LR scaled as sqrt(B).

The same runs as `bsz_sweep.py` (micro size) except the LR: 6e-3 x sqrt(B / 32), equal to the
main sweep's LR at B = 32 (spec section 4 [R]: the same LR for every batch is primary, sqrt(B)
scaling the ablation).  Compared with the main sweep in the bsz_sqrt_lr figure and the README.
"""

import math
from pathlib import Path

from bsz_lr.sweep import load_experiment

# The main sweep's settings, read from its file, so this experiment cannot drift from it.
MAIN = load_experiment(str(Path(__file__).with_name("bsz_sweep.py")))
BATCH_KEYS = ("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens")
BATCHES = MAIN.grid[BATCH_KEYS]

NAME = "bsz_sweep_sqrt_lr"
LR_32 = 6e-3
BASE = {**MAIN.base, "model.size": "micro"}
GRID = {BATCH_KEYS + ("optim.lr",): [(*x, LR_32 * math.sqrt(x[0] / 32)) for x in BATCHES]}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "train.tokens": 8_192, "train.eval_points": 8,
              "train.eval_tokens": 2048, "schedule.warmup_tokens": 1024,
              "grid": {("data.batch_size", "train.microbatches", "train.scan_steps", "optim.lr"):
                       [(b, m, 2, 1e-2 * math.sqrt(b / 8)) for b, m in [(2, 1), (4, 2), (8, 2), (16, 2), (32, 2), (64, 2)]]}},
    "cpu": {},
}
# gpu: the gpu sweep's 100M rung with LR 1e-3 x sqrt(B / 128).
PROFILES["gpu"] = {**{k: v for k, v in MAIN.profiles["gpu"].items() if k != "grid"}, "model.size": "gpu-100m",
                   "grid": {BATCH_KEYS + ("optim.lr",): [(*x, 1e-3 * math.sqrt(x[0] / 128))
                                                         for x in MAIN.profiles["gpu"]["grid"][0][BATCH_KEYS]]}}
FIGURES = ["bsz_sqrt_lr"]

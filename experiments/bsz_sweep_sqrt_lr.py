"""Batch-size paper, ablation: the micro model's batch sweep with the peak LR scaled as sqrt(B).

The same runs as `bsz_sweep.py` (micro size) except the LR: 6e-3 x sqrt(B / 32), equal to the
main sweep's LR at B = 32 (spec section 4 [R]: the same LR for every batch is primary, sqrt(B)
scaling the ablation).  Compared in the bsz_ess_fits / bsz_bmin_bopt figures' notes and the README.
"""

import math

NAME = "bsz_sweep_sqrt_lr"
LR_32 = 6e-3
BATCHES = [(4, 1, 10, 2_000_000), (8, 1, 10, 2_000_000), (16, 2, 10, 2_000_000), (32, 2, 10, 2_000_000),
           (64, 2, 5, 2_800_000), (128, 2, 2, 4_000_000), (256, 2, 2, 5_600_000)]
BASE = {
    "model.size": "micro",
    "data.corpus": "austen",
    "data.seq_len": 64,
    "schedule.kind": "constant",
    "schedule.warmup_tokens": 65_536,
    "train.eval_every": 0,
    "train.eval_points": 40,
    "train.eval_tokens": 16_384,
    "train.checkpoint_every": 0,
}
GRID = {("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens", "optim.lr"):
        [(b, m, k, t, LR_32 * math.sqrt(b / 32)) for b, m, k, t in BATCHES]}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "train.tokens": 8_192, "train.eval_points": 8,
              "train.eval_tokens": 2048, "schedule.warmup_tokens": 1024,
              "grid": {("data.batch_size", "train.microbatches", "train.scan_steps", "optim.lr"):
                       [(b, m, 2, 1e-2 * math.sqrt(b / 8)) for b, m in [(2, 1), (4, 2), (8, 2), (16, 2), (32, 2), (64, 2)]]}},
    "cpu": {},
}
FIGURES = ["bsz_sqrt_lr"]

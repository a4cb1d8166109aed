"""Batch-size paper, ablation (spec Fig. 6): warmup fixed in STEPS instead of tokens.

The micro model's batch sweep of `bsz_sweep.py` with a warmup of 32 steps for every batch (= the
main sweep's 65,536 tokens at B = 32 sequences of 64), so small batches warm up on fewer tokens
and large ones on many more (256 sequences: 524k tokens).  Spec section 4 [R] fixes warmup in
tokens "so small batches are not under-warmed"; this measures what that choice changes.
"""

from pathlib import Path

from bsz_lr.sweep import load_experiment

# The main sweep's settings, read from its file, so this experiment cannot drift from it.
MAIN = load_experiment(str(Path(__file__).with_name("bsz_sweep.py")))
BATCH_KEYS = ("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens")
BATCHES = MAIN.grid[BATCH_KEYS]

NAME = "bsz_sweep_warmup_steps"
BASE = {**{k: v for k, v in MAIN.base.items() if k != "schedule.warmup_tokens"},
        "model.size": "micro", "optim.lr": 6e-3, "schedule.warmup_steps": 32}
GRID = {BATCH_KEYS: BATCHES}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "train.eval_points": 8, "train.eval_tokens": 2048,
              "schedule.warmup_steps": 4,
              "grid": {BATCH_KEYS: [(2, 1, 4, 8_192), (4, 2, 4, 8_192), (8, 2, 2, 8_192), (16, 2, 2, 8_192),
                        (32, 2, 2, 12_288), (64, 2, 2, 16_384)]}},
    "cpu": {},
}
# gpu: the gpu sweep's 100M rung with warmup in steps (160: 20M tokens at 128 sequences).
PROFILES["gpu"] = {**{k: v for k, v in MAIN.profiles["gpu"].items() if k not in ("grid", "schedule.warmup_tokens")},
                   "model.size": "gpu-100m", "schedule.warmup_steps": 160,
                   "grid": {BATCH_KEYS: MAIN.profiles["gpu"]["grid"][0][BATCH_KEYS]}}
FIGURES = ["bsz_warmup"]

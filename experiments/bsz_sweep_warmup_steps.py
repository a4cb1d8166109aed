"""Batch-size paper, ablation (spec Fig. 6): warmup fixed in STEPS instead of tokens.

The micro model's batch sweep of `bsz_sweep.py` with a warmup of 32 steps for every batch (= the
main sweep's 65,536 tokens at B = 32 sequences of 64), so small batches warm up on fewer tokens
and large ones on many more (256 sequences: 524k tokens).  Spec section 4 [R] fixes warmup in
tokens "so small batches are not under-warmed"; this measures what that choice changes.
"""

NAME = "bsz_sweep_warmup_steps"
BATCHES = [(4, 1, 10, 2_000_000), (8, 1, 10, 2_000_000), (16, 2, 10, 2_000_000), (32, 2, 10, 2_000_000),
           (64, 2, 5, 2_800_000), (128, 2, 2, 4_000_000), (256, 2, 2, 5_600_000)]
BASE = {
    "model.size": "micro",
    "optim.lr": 6e-3,
    "data.corpus": "austen",
    "data.seq_len": 64,
    "schedule.kind": "constant",
    "schedule.warmup_steps": 32,
    "train.eval_every": 0,
    "train.eval_points": 40,
    "train.eval_tokens": 16_384,
    "train.checkpoint_every": 0,
}
GRID = {("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens"): BATCHES}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "train.eval_points": 8, "train.eval_tokens": 2048,
              "schedule.warmup_steps": 4,
              "grid": {("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens"):
                       [(2, 1, 4, 8_192), (4, 2, 4, 8_192), (8, 2, 2, 8_192), (16, 2, 2, 8_192),
                        (32, 2, 2, 12_288), (64, 2, 2, 16_384)]}},
    "cpu": {},
}
FIGURES = ["bsz_warmup"]

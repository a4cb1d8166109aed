"""Batch-size paper: seed noise of the steps-to-target reading (spec 4: "seeds where the noise needs them").

Two more seeds (init and data order) of three of `bsz_sweep.py`'s micro runs (8, 32 and 128
sequences of 64 tokens), identical otherwise; with the main sweep's seed 0 they give the spread of
S (and so of E = B S) at each target, the error bar against which the E(S) fits and their
leave-one-out errors are read (README; scripts/bsz_report.py).
"""

NAME = "bsz_sweep_seeds"
BASE = {
    "model.size": "micro",
    "optim.lr": 6e-3,
    "data.corpus": "austen",
    "data.seq_len": 64,
    "schedule.kind": "constant",
    "schedule.warmup_tokens": 65_536,
    "train.eval_every": 0,
    "train.eval_points": 40,
    "train.eval_tokens": 16_384,
    "train.checkpoint_every": 0,
}
GRID = {("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens"):
        [(8, 1, 10, 2_000_000), (32, 2, 10, 2_000_000), (128, 2, 2, 4_000_000)],
        ("train.seed", "data.seed"): [(1, 1), (2, 2)]}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "train.eval_points": 8, "train.eval_tokens": 2048,
              "schedule.warmup_tokens": 1024,
              "grid": {("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens"):
                       [(4, 2, 4, 8_192), (16, 2, 2, 8_192)], ("train.seed", "data.seed"): [(1, 1)]}},
    "cpu": {},
}
FIGURES = []

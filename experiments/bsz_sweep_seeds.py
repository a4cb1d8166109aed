"""Batch-size paper: seed noise of the steps-to-target reading (spec 4: "seeds where the noise needs them").

Two more seeds (init and data order) of three of `bsz_sweep.py`'s micro runs (8, 32 and 128
sequences of 64 tokens), identical otherwise; with the main sweep's seed 0 they give the spread of
S (and so of E = B S) at each target, the error bar against which the E(S) fits and their
leave-one-out errors are read (README; scripts/bsz_report.py).
"""

from pathlib import Path

from bsz_lr.sweep import load_experiment

# The main sweep's settings, read from its file, so this experiment cannot drift from it.
MAIN = load_experiment(str(Path(__file__).with_name("bsz_sweep.py")))
BATCH_KEYS = ("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens")
BATCHES = MAIN.grid[BATCH_KEYS]

NAME = "bsz_sweep_seeds"
BASE = {**MAIN.base, "model.size": "micro", "optim.lr": 6e-3}
GRID = {BATCH_KEYS: [x for x in BATCHES if x[0] in (8, 32, 128)], ("train.seed", "data.seed"): [(1, 1), (2, 2)]}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "train.eval_points": 8, "train.eval_tokens": 2048,
              "schedule.warmup_tokens": 1024,
              "grid": {BATCH_KEYS: [(4, 2, 4, 8_192), (16, 2, 2, 8_192)], ("train.seed", "data.seed"): [(1, 1)]}},
    "cpu": {},
}
# gpu: seeds 1 and 2 of the gpu sweep's 100M rung at 32 / 128 / 512 sequences.
PROFILES["gpu"] = {**{k: v for k, v in MAIN.profiles["gpu"].items() if k != "grid"}, "model.size": "gpu-100m",
                   "optim.lr": 1e-3,
                   "grid": {BATCH_KEYS: [x for x in MAIN.profiles["gpu"]["grid"][0][BATCH_KEYS] if x[0] in (32, 128, 512)],
                            ("train.seed", "data.seed"): [(1, 1), (2, 2)]}}
FIGURES = []

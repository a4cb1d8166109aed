"""Batch-size paper: stable-phase batch sweep at two model sizes (spec sections 4 and 6, Figs. 1-4).

Per size, 7 constant batch sizes x2 apart (4 .. 256 sequences of 64 tokens: 256 .. 16,384 tokens
per step, 64x), warmup fixed in tokens, then constant LR, no decay.  2M tokens per run, and
x sqrt(B / 2048 tokens) more above 2048 tokens per step (up to 5.6M at 16k), so that the large
batches, which need many tokens, are not cut off by the budget at the lower target losses
(a run that never reaches a target is kept as censored, but a budget cut is no evidence of B_min).  One peak LR per size for
every batch, the best of `bsz_lr_probe` for B = 32 (micro: 6e-3 of 3e-3 / 6e-3 / 1.2e-2 -> 1.765 /
1.807 / 1.896 nats at 1M tokens; tiny: 3e-3 of 1.5e-3 / 3e-3 / 6e-3 -> 1.682 / 1.658 / 1.734).
Held-out loss at 40 log-spaced token counts per run (train.eval_points), so steps-to-target are
read within a few percent at every batch.  Batches >= 16 accumulate 2 micro-batches, which logs
the two-batch gradient-noise scale at no extra FLOPs; large batches take fewer steps per jitted
call so that their few steps are still evaluated densely.  The sqrt(B) LR ablation is
`bsz_sweep_sqrt_lr.py`; the batch scheduler built from these results is `bsz_schedule.py`.
"""

from bsz_lr.config import GPU_BASE, gpu_rung

NAME = "bsz_sweep"
BASE = {
    "data.corpus": "austen",
    "data.seq_len": 64,
    "schedule.kind": "constant",           # the WSD stable phase
    "schedule.warmup_tokens": 65_536,      # in tokens: small batches are not under-warmed
    "train.eval_every": 0,
    "train.eval_points": 40,
    "train.eval_tokens": 16_384,
    "train.checkpoint_every": 0,
}
# (batch, micro-batches, steps per jitted call): zipped; x (size, LR): zipped; the product of the two.
BATCHES = [(4, 1, 10, 2_000_000), (8, 1, 10, 2_000_000), (16, 2, 10, 2_000_000), (32, 2, 10, 2_000_000),
           (64, 2, 5, 2_800_000), (128, 2, 2, 4_000_000), (256, 2, 2, 5_600_000)]
BATCH_KEYS = ("data.batch_size", "train.microbatches", "train.scan_steps", "train.tokens")
GRID = {("model.size", "optim.lr"): [("micro", 6e-3), ("tiny", 3e-3)], BATCH_KEYS: BATCHES}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "train.tokens": 8_192, "train.eval_points": 8,
              "train.eval_tokens": 2048, "schedule.warmup_tokens": 1024,
              "grid": {"optim.lr": [1e-2], BATCH_KEYS: [(2, 1, 4, 8_192), (4, 2, 4, 8_192), (8, 2, 2, 8_192),
                                                         (16, 2, 2, 8_192), (32, 2, 2, 12_288), (64, 2, 2, 16_384)]}},
    "cpu": {},
    "cpu-long": {"grid": {("model.size", "optim.lr"): [("micro", 6e-3), ("tiny", 3e-3), ("small", 2e-3)],
                          BATCH_KEYS: [(b, m, k, 2 * t) for b, m, k, t in BATCHES] + [(512, 2, 2, 16_000_000)]}},
}
# gpu: the gpu ladder's 100M and 300M rungs (bf16, T = 1024), 7 batches of 16 .. 1,024 sequences
# (16k .. 1M tokens per step, 64x), 2B tokens up to 128 sequences and more above (as on the CPU),
# warmup 20M tokens, micro-batches per rung so one pass fits 80 GB (config.gpu_rung).  Not run yet.
GPU_BATCHES = [(16, 2_000_000_000), (32, 2_000_000_000), (64, 2_000_000_000), (128, 2_000_000_000),
               (256, 2_800_000_000), (512, 4_000_000_000), (1024, 5_600_000_000)]
GPU_SIZES = [("gpu-100m", 1e-3), ("gpu-300m", 5e-4)]


def gpu_batches(size: str) -> list[tuple]:
    """BATCH_KEYS values of the gpu sweep for one rung."""
    return [(b, gpu_rung(size, b)["train.microbatches"], 10, t) for b, t in GPU_BATCHES]


PROFILES["gpu"] = {**GPU_BASE, "schedule.warmup_tokens": 20_971_520,
                   "grid": [{("model.size", "optim.lr"): [(size, lr)], BATCH_KEYS: gpu_batches(size)}
                            for size, lr in GPU_SIZES]}
FIGURES = ["bsz_crossing", "bsz_ess_schematic", "bsz_ess_fits", "bsz_bmin_bopt"]

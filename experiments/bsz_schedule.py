"""Batch-size paper: the dynamic batch-size schedule against constant and doubling batches (spec 5).

DERIVED FROM STORED RESULTS: the batch schedule is computed from `bsz_sweep`'s runs (same store,
same profile) when this experiment is expanded: B(D) = B_opt(L_hat(D)), with B_opt(L) the power
law fitted to the revised-E(S) optima of the tiny model and L_hat(D) the sweep's lower envelope of
held-out loss, at the middle of 4 equal stages of the stable phase, rounded to the sweep's batch
sizes (laws.analysis.schedule_arms).  If bsz_sweep's results change, the schedule (and so the
config hashes) change and these runs are trained afresh.

Arms, at equal tokens and the same WSD schedule (warmup in tokens, 1-sqrt decay over the last
20%), 3 seeds each: constant smallest and largest batch of the dynamic schedule, the sweep's best
constant batch at this token count, doubling (x2 per stage, LR x sqrt 2: Merrill et al. 2025),
dynamic with the LR unchanged (the paper) and dynamic with sqrt(B_new / B_old) LR rescaling.
"""

from bsz_lr.config import GPU_BASE, GPU_MICRO_SEQS
from bsz_lr.laws.analysis import schedule_arms
from bsz_lr.sweep import Derived

NAME = "bsz_schedule"
TOKENS = 750_000
ARMS = Derived("bsz_sweep", lambda runs: schedule_arms(runs, d_model=64, tokens=TOKENS))
BASE = {
    "model.size": "tiny",
    "optim.lr": 3e-3,                       # the sweep's LR for this size
    "data.corpus": "austen",
    "data.seq_len": 64,
    "schedule.kind": "wsd",
    "schedule.warmup_tokens": 65_536,
    "schedule.decay_fraction": 0.2,
    "schedule.decay_shape": "1-sqrt",
    "train.tokens": TOKENS,
    "train.eval_every": 0,
    "train.eval_points": 25,
    "train.eval_tokens": 16_384,
    "train.checkpoint_every": 0,
}
ARM_KEYS = ("data.batch_size", "data.batch_stages", "schedule.batch_lr_scaling")
GRID = {("train.seed", "data.seed"): [(0, 0), (1, 1), (2, 2)], ARM_KEYS: ARMS}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "train.tokens": 8_192, "train.eval_points": 5,
              "train.eval_tokens": 2048, "schedule.warmup_tokens": 1024, "train.scan_steps": 2,
              # smoke shapes are too short for E(S) fits: fixed arms exercise the runner (stages, sqrt LR)
              "grid": {("train.seed", "data.seed"): [(0, 0)],
                       ARM_KEYS: [(4, (), "none"), (4, ((2_048, 8), (4_096, 16)), "none"),
                                  (4, ((2_048, 8), (4_096, 16)), "sqrt")]}},
    "cpu": {},
}
# gpu: the gpu sweep's 100M rung at 2B tokens (LR 1e-3), arms derived from bsz_sweep's gpu runs;
# micro-batches so the largest batch of an arm fits (a power of 2 that divides each of its batches).
GPU_TOKENS = 2_000_000_000


def _with_micro(arms):
    return [(b0, st, sc, max(1, max([b0] + [b for _, b in st]) // GPU_MICRO_SEQS["gpu-100m"])) for b0, st, sc in arms]


PROFILES["gpu"] = {**GPU_BASE, "model.size": "gpu-100m", "optim.lr": 1e-3, "train.tokens": GPU_TOKENS,
                   "schedule.warmup_tokens": 20_971_520,
                   "grid": {("train.seed", "data.seed"): [(0, 0), (1, 1), (2, 2)],
                            ARM_KEYS + ("train.microbatches",): Derived("bsz_sweep", lambda runs: _with_micro(
                                schedule_arms(runs, d_model=768, tokens=GPU_TOKENS)))}}
FIGURES = ["bsz_schedule"]

"""LR paper, Fitting paradigm: the held-out check (spec section 1 [R]).

DERIVED FROM STORED RESULTS: Eq. 6 is fitted on `lr_ladder`'s Eq. 2 optima of the three smaller
sizes only (laws.lr_analysis.heldout_lrs); its eta* predicted for the largest size at the
largest D is trained here from scratch as a full WSD run (warmup, constant, 1-sqrt decay over the
last 20%: the same schedule as the ladder's last decay branch, which a branch reproduces exactly),
and at x0.5 and x2.  Measured optimum and losses come from the ladder's own runs of that size
(Eq. 2 through its 6 LRs), so the figure shows predicted vs measured eta* and the loss gap.
"""

from pathlib import Path

from bsz_lr.config import GPU_LADDER
from bsz_lr.laws.lr_analysis import heldout_lrs
from bsz_lr.sweep import Derived, load_experiment

LADDER = load_experiment(str(Path(__file__).with_name("lr_ladder.py")))
FFNS = LADDER.grid[0]["model.ffn"]

NAME = "lr_heldout"
D_MODEL, HEADS = LADDER.grid[-1][("model.d_model", "model.n_heads")][0]     # the largest size
BASE = {**LADDER.base, "model.d_model": D_MODEL, "model.n_heads": HEADS,
        "schedule.kind": "wsd", "schedule.decay_fraction": LADDER.branches["fraction"],
        "schedule.decay_shape": LADDER.branches["shape"],
        "train.tokens": round(LADDER.branches["at_tokens"][-1] / (1 - LADDER.branches["fraction"]))}
GRID = {("model.ffn", "optim.lr"): Derived("lr_ladder", lambda runs: heldout_lrs(runs, FFNS))}


def gpu_arms(arms):
    """(ffn, LR) arms with the 1B rung's micro-batches (x2 for MoE)."""
    return [(ffn, lr, GPU_LADDER["gpu-1b"]["train.microbatches"] * (2 if ffn == "moe" else 1)) for ffn, lr in arms]


PROFILES = {
    "smoke": {**LADDER.profiles["smoke"], "model.d_model": 32, "model.n_heads": 2, "train.tokens": 5_120,
              "grid": {("model.ffn", "optim.lr"): Derived("lr_ladder", lambda runs: [("dense", 1e-2)])}},
    "cpu": {},
    # gpu: the gpu ladder's largest rung (1B) from scratch to the last branch's D (3.3B + decay),
    # at Eq. 6's prediction from the 3 smaller rungs of lr_ladder's gpu runs, x0.5 / x1 / x2.
    "gpu": {**{k: v for k, v in LADDER.profiles["gpu"].items() if k not in ("grid", "branches")},
            **GPU_LADDER["gpu-1b"],
            "train.tokens": round(LADDER.profiles["gpu"]["branches"]["at_tokens"][-1] / (1 - LADDER.branches["fraction"])),
            # MoE keeps twice the FFN activations: twice the micro-batches (as in lr_ladder's gpu grid)
            "grid": {("model.ffn", "optim.lr", "train.microbatches"):
                     Derived("lr_ladder", lambda runs: gpu_arms(heldout_lrs(runs, FFNS)))}},
}
PROFILES["smoke"].pop("branches")
FIGURES = ["lr_heldout"]

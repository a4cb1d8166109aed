"""Mousse paper, ablations (spec "Ablations"), on the micro model at Mousse's tuned LR, 3 seeds.

DERIVED FROM STORED RESULTS: the peak LR is Mousse's best for micro in `mousse_lr`.  Arms: the
whitening exponent alpha 0.25 (vs 0.125), trace normalisation off, Frobenius grafting off,
one-sided (left factor only, right factor only), eigendecomposition refresh every T = 1 and 50
steps (vs 10).  The default Mousse and Muon are `mousse_lr` (seed 0) + `mousse_compare` (seeds 1, 2).
"""

from pathlib import Path

from bsz_lr.config import GPU_LADDER
from bsz_lr.laws.compare import tuned_arms
from bsz_lr.sweep import Derived, load_experiment

TUNE = load_experiment(str(Path(__file__).with_name("mousse_lr.py")))
NAME = "mousse_ablations"
KEYS = ("model.size", "optim.name", "optim.lr", "optim.adam_lr_ratio")
ARMS = [("optim.mousse_alpha", 0.25), ("optim.mousse_trace_norm", False), ("optim.mousse_graft", False),
        ("optim.mousse_sides", "left"), ("optim.mousse_sides", "right"),
        ("optim.mousse_refresh", 1), ("optim.mousse_refresh", 50)]


def _mousse(size):
    return Derived("mousse_lr", lambda runs: tuned_arms(runs, [size], optimizers=("mousse",)))


BASE = dict(TUNE.base)
GRID = [{KEYS: _mousse("micro"), ("train.seed", "data.seed"): [(0, 0), (1, 1), (2, 2)], k: [v]} for k, v in ARMS]
PROFILES = {
    "smoke": {**{k: v for k, v in TUNE.profiles["smoke"].items() if k != "grid"},
              "grid": [{KEYS: _mousse("nano"), ("train.seed", "data.seed"): [(0, 0)], k: [v]} for k, v in ARMS[:2]]},
    "cpu": {},
    # gpu: the same arms on the 100M rung at its tuned Mousse LR (mousse_lr's gpu runs).
    "gpu": {**{k: v for k, v in TUNE.profiles["gpu"].items() if k != "grid"}, **GPU_LADDER["gpu-100m"],
            "grid": [{KEYS: _mousse("gpu-100m"), ("train.seed", "data.seed"): [(0, 0), (1, 1), (2, 2)], k: [v]}
                     for k, v in ARMS]},
}
FIGURES = ["mousse_ablations"]

"""Mousse paper: AdamW vs Muon vs Mousse at their tuned LRs, 3 seeds (spec "Experiments").

DERIVED FROM STORED RESULTS: each (size, optimizer)'s peak LR is the best of `mousse_lr`
(laws.compare.tuned_arms: seed 0, lowest final held-out loss); this experiment trains seeds 1
and 2 there (seed 0 is the `mousse_lr` run itself, which the figures and the report join in).
Same shapes and schedule.
"""

from pathlib import Path

from bsz_lr.config import gpu_rung
from bsz_lr.laws.compare import tuned_arms
from bsz_lr.sweep import Derived, load_experiment

TUNE = load_experiment(str(Path(__file__).with_name("mousse_lr.py")))
NAME = "mousse_compare"
KEYS = ("model.size", "optim.name", "optim.lr", "optim.adam_lr_ratio")
BASE = dict(TUNE.base)
GRID = {KEYS: Derived("mousse_lr", lambda runs: tuned_arms(runs, ["micro", "tiny"])),
        ("train.seed", "data.seed"): [(1, 1), (2, 2)]}
PROFILES = {
    "smoke": {**{k: v for k, v in TUNE.profiles["smoke"].items() if k != "grid"},
              "grid": {KEYS: Derived("mousse_lr", lambda runs: tuned_arms(runs, ["nano"])),
                       ("train.seed", "data.seed"): [(1, 1)]}},
    "cpu": {},
    # gpu: seeds 1 and 2 at the gpu tuning runs' best LRs, each rung with its micro-batches.
    "gpu": {**{k: v for k, v in TUNE.profiles["gpu"].items() if k != "grid"},
            "grid": {KEYS + ("train.microbatches",): Derived("mousse_lr", lambda runs: [
                (*a, gpu_rung(a[0])["train.microbatches"]) for a in tuned_arms(runs, ["gpu-100m", "gpu-300m"])]),
                     ("train.seed", "data.seed"): [(1, 1), (2, 2)]}},
}
FIGURES = ["mousse_curves"]

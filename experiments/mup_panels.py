"""LR paper, Transfer paradigm: stability and feature-learning panels, SP vs muP (spec sections 3-4, Fig. 5).

`mup_width`'s setting with train.analysis on (per-role relative update, change from init, gradient
norms, clip fraction, activation / logit RMS, log Z, max attention logit, largest step loss per
line for loss spikes), a line every 4 steps and 8 log-spaced evaluations on 8k held-out tokens.
The base width d = 32 and d = 128 under SP and muP (base 32), at the base width's optimum region
(4e-3) and at 4x it (1.6e-2), where SP's wide model is past its own optimum.  Fig. `mup_panels`.
"""

from pathlib import Path

from bsz_lr.sweep import load_experiment

WIDTH = load_experiment(str(Path(__file__).with_name("mup_width.py")))

NAME = "mup_panels"
BASE = {**WIDTH.base, "train.analysis": True, "train.log_every": 4, "train.eval_points": 8,
        "train.eval_tokens": 8_192, "train.scan_steps": 8}   # 8 divides the 256 steps: one compiled length
SIZE_KEYS = ("model.d_model", "model.n_heads")
LRS = [4e-3, 1.6e-2]
GRID = [{"model.parametrization": ["sp"], SIZE_KEYS: [(32, 2), (128, 8)], "optim.lr": LRS},
        {"model.parametrization": ["mup"], "model.base_d_model": [32], SIZE_KEYS: [(128, 8)], "optim.lr": LRS}]
PROFILES = {
    "smoke": {**{k: v for k, v in WIDTH.profiles["smoke"].items() if k != "grid"}, "train.eval_points": 2,
              "grid": [{"model.parametrization": ["sp", "mup"], "model.base_d_model": [16],
                        SIZE_KEYS: [(32, 2)], "optim.lr": [1e-2]}]},
    "cpu": {},
    # gpu: d = 256 and 1024 (mup_width's gpu setting), SP / muP (base 256), at 2e-3 and 4x it.
    "gpu": {**{k: v for k, v in WIDTH.profiles["gpu"].items() if k != "grid"}, "train.analysis": True,
            "train.log_every": 16, "train.eval_points": 8,
            "grid": [{"model.parametrization": ["sp"], SIZE_KEYS + ("train.microbatches",): [(256, 4, 1), (1024, 16, 2)],
                      "optim.lr": [2e-3, 8e-3]},
                     {"model.parametrization": ["mup"], "model.base_d_model": [256],
                      SIZE_KEYS + ("train.microbatches",): [(1024, 16, 2)], "optim.lr": [2e-3, 8e-3]}]},
}
FIGURES = ["mup_panels"]

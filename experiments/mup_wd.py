"""LR paper, Transfer paradigm (spec section 2): does the optimal weight decay transfer across width?

muP with base width 32 at widths 32 / 64 / 128 (the `mup_width` setting), peak LR 4e-3 (muP's best
grid LR there at d = 32 and 64), AdamW's decoupled weight decay in {0.1, 0.3, 1, 3} (coupled mode),
with the muP rule (hidden matrices' wd x m, so lr x wd per module stays fixed) and without it
(plain wd: the product shrinks as 1/m; at d = 32, m = 1, the two are the same runs, trained once).
Fig. `mup_wd`.

cpu-long only (20 runs, ~140 s): it does not fit the Transfer issue's 10-minute share of `make
reproduce`, and its result is not decided at this scale; `make reproduce-full` runs it and its
results are committed.
"""

from pathlib import Path

from bsz_lr.sweep import load_experiment

WIDTH = load_experiment(str(Path(__file__).with_name("mup_width.py")))
NAME = "mup_wd"
SIZE_KEYS = ("model.d_model", "model.n_heads")
WDS = [0.1, 0.3, 1.0, 3.0]
GPU_WIDTHS = WIDTH.profiles["gpu"]["grid"][0][SIZE_KEYS + ("train.microbatches",)]
BASE = {**WIDTH.base, "model.parametrization": "mup", "model.base_d_model": 32, "optim.lr": 4e-3}
GRID = [{SIZE_KEYS: [(32, 2), (64, 4), (128, 8)], "optim.weight_decay": WDS},
        {"model.mup_scale_wd": [False], SIZE_KEYS: [(64, 4), (128, 8)], "optim.weight_decay": WDS}]
PROFILES = {
    "smoke": {**{k: v for k, v in WIDTH.profiles["smoke"].items() if k != "grid"}, "model.base_d_model": 16,
              "grid": [{"model.mup_scale_wd": [True, False], SIZE_KEYS: [(32, 2)], "optim.weight_decay": [0.1, 1.0]}]},
    "cpu-long": {},
    # gpu: mup_width's gpu widths under muP (base 256) at 2e-3.
    "gpu": {**{k: v for k, v in WIDTH.profiles["gpu"].items() if k != "grid"}, "model.base_d_model": 256,
            "optim.lr": 2e-3,
            "grid": [{SIZE_KEYS + ("train.microbatches",): GPU_WIDTHS, "optim.weight_decay": WDS},
                     {"model.mup_scale_wd": [False], SIZE_KEYS + ("train.microbatches",): GPU_WIDTHS[1:],
                      "optim.weight_decay": WDS}]},
}
FIGURES = ["mup_wd"]

"""LR paper, Transfer paradigm (spec section 2): does the optimal LR stay put across depth?

Depths 2 / 4 / 8 at width 32 (2 heads), dense: plain SP (GPT-2's 1/sqrt(2L) output-projection
init, nothing else), and Depth-muP with base depth 2 (every residual branch x (L / 2)^-1/2,
hidden Adam LR x (L / 2)^-1/2, output projections at the base depth's init).  6 peak LRs x2 apart,
the same WSD, batch, tokens and eps as `mup_width.py`.  Fig. `mup_depth`.

cpu-long only (36 runs, 138-219 s): with `mup_wd` it does not fit the Transfer issue's 10-minute
share of `make reproduce` (measured from a cold compile cache); `make reproduce-full` runs it and
its results are committed.
"""

from pathlib import Path

from bsz_lr.sweep import load_experiment

WIDTH = load_experiment(str(Path(__file__).with_name("mup_width.py")))
NAME = "mup_depth"
BASE = {**WIDTH.base, "model.d_model": 32, "model.n_heads": 2}
DEPTHS = [2, 4, 8]
LRS = [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2]
GRID = [{"model.n_layers": DEPTHS, "optim.lr": LRS},
        {"model.depth_alpha": [0.5], "model.base_n_layers": [2], "model.n_layers": DEPTHS, "optim.lr": LRS}]
PROFILES = {
    "smoke": {**{k: v for k, v in WIDTH.profiles["smoke"].items() if k != "grid"}, "model.d_model": 16,
              "model.n_heads": 1,
              "grid": [{"model.depth_alpha": [0.0, 0.5], "model.base_n_layers": [1], "model.n_layers": [1, 2],
                        "optim.lr": [3e-3, 1e-2]}]},
    "cpu-long": {},
    # gpu: depths 4 / 8 / 16 at width 512 (8 heads), Depth-muP base depth 4, mup_width's gpu setting.
    "gpu": {**{k: v for k, v in WIDTH.profiles["gpu"].items() if k != "grid"}, "model.d_model": 512,
            "model.n_heads": 8,
            "grid": [{("model.n_layers", "train.microbatches"): [(4, 1), (8, 1), (16, 2)],
                      "optim.lr": WIDTH.profiles["gpu"]["grid"][0]["optim.lr"]},
                     {"model.depth_alpha": [0.5], "model.base_n_layers": [4],
                      ("model.n_layers", "train.microbatches"): [(4, 1), (8, 1), (16, 2)],
                      "optim.lr": WIDTH.profiles["gpu"]["grid"][0]["optim.lr"]}]},
}
FIGURES = ["mup_depth"]

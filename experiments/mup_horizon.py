"""LR paper, Transfer paradigm: the token-horizon rule on the muP proxy (spec section 2).

The proxy is `mup_width`'s base width (d = 32, head dim 16; muP there is SP exactly) with its
schedule and batch, swept over the same 6 peak LRs at two horizons shorter than the sweep's
262k tokens: 65,536 and 131,072.  `laws.transfer.proxy_horizon` fits beta (eta* ~ D^-beta) on
these optima and predicts the optimum at 262k, which `mup_width` measured (Fig. `mup_horizon`);
`lr_fit_vs_transfer` uses the same fit to carry the proxy's LR to its target.
"""

from pathlib import Path

from bsz_lr.sweep import load_experiment

WIDTH = load_experiment(str(Path(__file__).with_name("mup_width.py")))

NAME = "mup_horizon"
BASE = {**WIDTH.base, "model.parametrization": "mup", "model.base_d_model": 32,
        "model.d_model": 32, "model.n_heads": 2}
HORIZONS = [65_536, 131_072]
GRID = {"train.tokens": HORIZONS, "optim.lr": WIDTH.grid[0]["optim.lr"]}
PROFILES = {
    "smoke": {**{k: v for k, v in WIDTH.profiles["smoke"].items() if k != "grid"},
              "model.base_d_model": 16, "model.d_model": 16, "model.n_heads": 1,
              "grid": {"train.tokens": [512, 1_024], "optim.lr": [3e-3, 1e-2, 3e-2]}},
    "cpu": {},
    # gpu: the gpu proxy (d = 256) at 131M and 262M tokens, below the gpu target's 524M.
    "gpu": {**{k: v for k, v in WIDTH.profiles["gpu"].items() if k != "grid"}, "model.base_d_model": 256,
            "model.d_model": 256, "model.n_heads": 4,
            "grid": {"train.tokens": [131_072_000, 262_144_000], "optim.lr": WIDTH.profiles["gpu"]["grid"][0]["optim.lr"]}},
}
FIGURES = ["mup_horizon"]

"""LR paper: Fitting vs Transfer at a target size beyond the ladders (spec sections 1-2, Fig. 4).

DERIVED FROM STORED RESULTS.  Target: d = 128 (8 heads of 16), depth 2, 394k non-embedding
parameters (1.5x the largest `lr_ladder` size), trained like `mup_width` (WSD over 262k tokens,
batch 16 x 64, Adam eps 1e-10).  Four arms (laws.transfer.ARMS), 3 init seeds each:
  fitting           SP at Eq. 6 fitted on `lr_ladder`'s dense optima (all 4 sizes, all 4 D)
  transfer          muP (base 32) at the proxy's optimum at 131k tokens (`mup_horizon`)
  transfer+horizon  the same x (262k / 131k)^-beta, beta fitted on the proxy at 65k and 131k
  direct            SP at the Eq. 2 optimum of `mup_width`'s SP sweep at d = 128
Fig. `lr_fit_vs_transfer`: final losses per arm with their spread, on the direct sweep's curve.
"""

from pathlib import Path

from bsz_lr.config import Config, apply_overrides
from bsz_lr.laws.transfer import direct_lr, fitting_lr, proxy_horizon
from bsz_lr.model import counts_of
from bsz_lr.sweep import Derived, load_experiment

WIDTH = load_experiment(str(Path(__file__).with_name("mup_width.py")))

NAME = "lr_fit_vs_transfer"
TARGET = {"model.d_model": 128, "model.n_heads": 8}
BASE = {**WIDTH.base, **TARGET}
D_TARGET = BASE["train.tokens"]
N_TARGET = counts_of(apply_overrides(Config(), BASE).model)["non_embedding"]
SEEDS = [0, 1, 2]
ARM = ("model.parametrization", "optim.lr")
lr4 = lambda x: float(f"{x:.4g}")          # LRs to 4 digits: run names do not move with float noise


def transfer_lrs(runs):
    h = proxy_horizon(runs, D_TARGET)
    return [("mup", lr4(h.eta_uncorrected)), ("mup", lr4(h.eta_corrected))]


GRID = [{ARM: Derived("lr_ladder", lambda runs: [("sp", lr4(fitting_lr(runs, N_TARGET, D_TARGET)))]),
         "train.seed": SEEDS},
        {ARM: Derived("mup_horizon", transfer_lrs), "model.base_d_model": [32], "train.seed": SEEDS},
        {ARM: Derived("mup_width", lambda runs: [("sp", lr4(direct_lr(runs, "sp", TARGET["model.d_model"])))]),
         "train.seed": SEEDS}]
PROFILES = {
    "smoke": {**{k: v for k, v in WIDTH.profiles["smoke"].items() if k != "grid"}, "model.d_model": 32,
              "model.n_heads": 2, "grid": [{ARM: [("sp", 3e-3), ("mup", 3e-3)], "model.base_d_model": [16],
                                            "train.seed": [0, 1]}]},
    "cpu": {},
}
FIGURES = ["lr_fit_vs_transfer"]

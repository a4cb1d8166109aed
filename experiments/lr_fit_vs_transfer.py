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


def arms(target: dict, n_target: int, d_target: int, base_d: int) -> list[dict]:
    """The four arms' grid for a target shape (target: d_model, n_heads), derived from the stored
    lr_ladder, mup_horizon and mup_width runs of the same profile."""
    def transfer_lrs(runs):
        h = proxy_horizon(runs, d_target)
        return [("mup", lr4(h.eta_uncorrected)), ("mup", lr4(h.eta_corrected))]
    return [{ARM: Derived("lr_ladder", lambda runs: [("sp", lr4(fitting_lr(runs, n_target, d_target)))]),
             "train.seed": SEEDS},
            {ARM: Derived("mup_horizon", transfer_lrs), "model.base_d_model": [base_d], "train.seed": SEEDS},
            {ARM: Derived("mup_width", lambda runs: [("sp", lr4(direct_lr(runs, "sp", target["model.d_model"])))]),
             "train.seed": SEEDS}]


GRID = arms(TARGET, N_TARGET, D_TARGET, 32)
# gpu: the widest model of mup_width's gpu profile (d = 1024, depth 8, ~100M non-embedding) at its
# 524M tokens, from the gpu runs of lr_ladder (100M-1B: here the target is at the ladder's low end,
# not beyond it), mup_horizon (proxy d = 256) and mup_width.  Not run yet.
GPU_PROFILE = {k: v for k, v in WIDTH.profiles["gpu"].items() if k != "grid"}
GPU_TARGET = {"model.d_model": 1024, "model.n_heads": 16, "train.microbatches": 2}
_gpu_cfg = apply_overrides(Config(), {**WIDTH.base, **GPU_PROFILE, **GPU_TARGET})
PROFILES = {
    "smoke": {**{k: v for k, v in WIDTH.profiles["smoke"].items() if k != "grid"}, "model.d_model": 32,
              "model.n_heads": 2, "grid": [{ARM: [("sp", 3e-3), ("mup", 3e-3)], "model.base_d_model": [16],
                                            "train.seed": [0, 1]}]},
    "cpu": {},
    "gpu": {**GPU_PROFILE, **GPU_TARGET,
            "grid": arms(GPU_TARGET, counts_of(_gpu_cfg.model)["non_embedding"], _gpu_cfg.train.tokens, 256)},
}
FIGURES = ["lr_fit_vs_transfer"]

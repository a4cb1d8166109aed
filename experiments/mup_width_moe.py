"""LR paper, Transfer paradigm: width transfer of the peak LR for MoE, SP vs muP (spec section 2).

`mup_width` with a top-2 MoE of 4 experts (each half the dense FFN width, computed densely: the
fast formulation on CPU) in place of the dense FFN: widths 32 / 64 / 128, SP vs muP (base 32;
expert matrices as hidden, the router as a readout), 4 peak LRs x2 apart around the dense
optima, over half the tokens (131k; 8 steps per compiled call, which divides the run).
Fig. `mup_width_moe`.  Only a `cpu-long` profile (with `smoke`): it does not fit the Transfer
issue's share of `make reproduce`; `make reproduce-full` runs it, and its results are committed.
"""

from pathlib import Path

from bsz_lr.sweep import load_experiment

WIDTH = load_experiment(str(Path(__file__).with_name("mup_width.py")))

NAME = "mup_width_moe"
BASE = {**WIDTH.base, "model.ffn": "moe", "model.n_experts": 4, "model.top_k": 2, "model.moe_impl": "dense",
        "train.tokens": 131_072, "train.scan_steps": 8}
SIZE_KEYS = ("model.d_model", "model.n_heads")
WIDTHS = [(32, 2), (64, 4), (128, 8)]
LRS = [2e-3, 4e-3, 8e-3, 1.6e-2]
GRID = [{"model.parametrization": ["sp"], SIZE_KEYS: WIDTHS, "optim.lr": LRS},
        {"model.parametrization": ["mup"], "model.base_d_model": [32], SIZE_KEYS: WIDTHS, "optim.lr": LRS}]
PROFILES = {
    "smoke": {**{k: v for k, v in WIDTH.profiles["smoke"].items() if k != "grid"}, "train.scan_steps": 4,
              "grid": [{"model.parametrization": ["sp", "mup"], "model.base_d_model": [16],
                        SIZE_KEYS: [(16, 1), (32, 2)], "optim.lr": [3e-3, 1e-2]}]},
    "cpu-long": {},
    # gpu: mup_width's gpu widths with 8 experts top-2 (ragged), 262M tokens, 4 LRs.
    "gpu": {**{k: v for k, v in WIDTH.profiles["gpu"].items() if k != "grid"}, "model.n_experts": 8,
            "model.moe_impl": "ragged", "train.tokens": 262_144_000,
            "grid": [{"model.parametrization": ["sp"], SIZE_KEYS + ("train.microbatches",): WIDTH.profiles["gpu"]["grid"][0][
                          SIZE_KEYS + ("train.microbatches",)], "optim.lr": [1e-3, 2e-3, 4e-3, 8e-3]},
                     {"model.parametrization": ["mup"], "model.base_d_model": [256],
                      SIZE_KEYS + ("train.microbatches",): WIDTH.profiles["gpu"]["grid"][0][SIZE_KEYS + ("train.microbatches",)],
                      "optim.lr": [1e-3, 2e-3, 4e-3, 8e-3]}]},     # 200 s on 2 cores: past this share of `make reproduce`; `make reproduce-full`
}
FIGURES = ["mup_width_moe"]

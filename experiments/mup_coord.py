"""LR paper, Transfer paradigm: the coordinate check from stored runs (spec section 2, Fig. 3).

Widths 32 / 64 / 128 / 256 at depth 2 (head dim 16), SP vs muP with base width 32, dense and MoE
(4 experts, top-2, computed densely), 20 steps of AdamW at a constant LR 1e-2 (no warmup: the
check is about the first updates), batch 16 x 64, with train.analysis on and a metrics line every
step: activation RMS per module kind and relative update size per parameter role.  Under muP they
should stay flat across width, under SP drift.  Fig. `mup_coord`; `tests/test_parametrization.py`
checks the same on tiny widths.
"""

from bsz_lr.config import GPU_BASE

NAME = "mup_coord"
BASE = {
    "data.corpus": "austen",
    "data.seq_len": 64,
    "data.batch_size": 16,
    "model.n_layers": 2,
    "model.n_experts": 4,
    "model.top_k": 2,
    "model.moe_impl": "dense",
    "optim.lr": 1e-2,
    "optim.eps": 1e-10,
    "schedule.kind": "constant",
    "train.steps": 20,
    "train.scan_steps": 1,
    "train.log_every": 1,
    "train.eval_every": 0,
    "train.eval_tokens": 16_384,
    "train.checkpoint_every": 0,
    "train.analysis": True,
}
SIZE_KEYS = ("model.d_model", "model.n_heads")
WIDTHS = [(32, 2), (64, 4), (128, 8), (256, 16)]
GRID = [{"model.parametrization": ["sp"], SIZE_KEYS: WIDTHS, "model.ffn": ["dense", "moe"]},
        {"model.parametrization": ["mup"], "model.base_d_model": [32], SIZE_KEYS: WIDTHS, "model.ffn": ["dense", "moe"]}]
PROFILES = {
    "smoke": {"data.seq_len": 32, "data.batch_size": 4, "train.steps": 4, "train.eval_tokens": 1024,
              "grid": [{"model.parametrization": ["sp", "mup"], "model.base_d_model": [16],
                        SIZE_KEYS: [(16, 1), (32, 2)], "model.ffn": ["dense"]}]},
    "cpu": {},
    # gpu: widths 256-2048 (head dim 64), base 256, 8 experts top-2 (ragged), bf16, 16 x 1024 tokens.
    "gpu": {**{k: v for k, v in GPU_BASE.items() if k != "data.batch_size"}, "data.batch_size": 16,
            "model.n_experts": 8, "optim.lr": 4e-3,
            "grid": [{"model.parametrization": ["sp"], SIZE_KEYS: [(256, 4), (512, 8), (1024, 16), (2048, 32)],
                      "model.ffn": ["dense", "moe"]},
                     {"model.parametrization": ["mup"], "model.base_d_model": [256],
                      SIZE_KEYS: [(256, 4), (512, 8), (1024, 16), (2048, 32)], "model.ffn": ["dense", "moe"]}]},
}
FIGURES = ["mup_coord"]

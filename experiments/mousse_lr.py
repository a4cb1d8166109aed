"""Mousse paper, step 1: each optimizer's peak LR at each size (spec "Experiments": LR-tuned baselines).

AdamW, Muon and Mousse at two sizes (micro: d=32, 25k non-embedding parameters; tiny: d=64, 101k),
3 peak LRs x2 apart each, seed 0, 1M tokens (batch 16 x 64), 10% warmup then cosine to 0 as in the
paper.  Muon and Mousse update the hidden and expert matrices; embeddings, head and norm gains take
AdamW at 0.25 x their LR (optim.adam_lr_ratio).  `mousse_compare.py` trains seeds 1 and 2 at each
(size, optimizer)'s best LR here and `mousse_ablations.py` varies Mousse around its best LR.
"""

from bsz_lr.config import GPU_BASE, gpu_rung

NAME = "mousse_lr"
TOKENS = 1_048_576                     # 1,024 steps
BASE = {
    "data.corpus": "austen",
    "data.seq_len": 64,
    "data.batch_size": 16,
    "schedule.kind": "cosine",
    "schedule.warmup_tokens": 102_400,  # 100 steps, ~10%
    "schedule.final_lr_fraction": 0.0,
    "train.tokens": TOKENS,
    "train.eval_every": 60,            # 17 evaluations, evenly spaced: steps-to-target near the end
    "train.eval_tokens": 32_768,
    "train.checkpoint_every": 0,
}
MATRIX = {"optim.adam_lr_ratio": [0.25]}
# Peak LRs x2 apart per (size, optimizer); each list was extended until its best LR was interior.
LRS = {("micro", "adamw"): [3e-3, 6e-3, 1.2e-2, 2.4e-2, 4.8e-2], ("micro", "muon"): [1e-2, 2e-2, 4e-2],
       ("micro", "mousse"): [1e-2, 2e-2, 4e-2, 8e-2],
       ("tiny", "adamw"): [2e-3, 4e-3, 8e-3, 1.6e-2], ("tiny", "muon"): [1e-2, 2e-2, 4e-2],
       ("tiny", "mousse"): [1e-2, 2e-2, 4e-2, 8e-2]}
GRID = [{"model.size": [size], "optim.name": [name], "optim.lr": lrs, **(MATRIX if name != "adamw" else {})}
        for (size, name), lrs in LRS.items()]
PROFILES = {
    "smoke": {"data.seq_len": 32, "data.batch_size": 4, "train.tokens": 4_096, "train.eval_every": 4,
              "train.eval_tokens": 1024, "schedule.warmup_tokens": 512, "train.scan_steps": 4,
              "grid": [{"model.size": ["nano"], "optim.name": ["adamw"], "optim.lr": [3e-3, 1e-2]},
                       {"model.size": ["nano"], "optim.name": ["muon", "mousse"], "optim.lr": [1e-2, 3e-2], **MATRIX}]},
    "cpu": {},
}
# gpu: the gpu ladder's 100M and 300M rungs (bf16, T = 1024, 128 sequences), 1B tokens (7,630
# steps), 10% warmup + cosine, 17 evaluations; LRs x2 apart around the usual values at that size.
# Not run yet.
LRS_GPU = {("gpu-100m", "adamw"): [5e-4, 1e-3, 2e-3, 4e-3], ("gpu-100m", "muon"): [5e-3, 1e-2, 2e-2, 4e-2],
           ("gpu-100m", "mousse"): [5e-3, 1e-2, 2e-2, 4e-2],
           ("gpu-300m", "adamw"): [2.5e-4, 5e-4, 1e-3, 2e-3], ("gpu-300m", "muon"): [2.5e-3, 5e-3, 1e-2, 2e-2],
           ("gpu-300m", "mousse"): [2.5e-3, 5e-3, 1e-2, 2e-2]}
PROFILES["gpu"] = {**GPU_BASE, "train.tokens": 1_000_000_000, "schedule.warmup_tokens": 100_000_000,
                   "train.eval_every": 450,
                   "grid": [{**{k: [v] for k, v in gpu_rung(size).items()}, "optim.name": [name], "optim.lr": lrs,
                             **(MATRIX if name != "adamw" else {})} for (size, name), lrs in LRS_GPU.items()]}
FIGURES = []

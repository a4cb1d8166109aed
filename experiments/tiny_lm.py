"""The default tiny model on the embedded Austen corpus: does the loss fall?

Until the paper experiments land this is what `make reproduce` trains.
"""

from bsz_lr.config import GPU_BASE, GPU_LADDER

NAME = "tiny_lm"
BASE = {
    "model.size": "tiny",            # d=64, L=2, 4 heads, ~0.13M params, byte vocab
    "data.corpus": "austen",
    "data.seq_len": 128,
    "data.batch_size": 32,
    "optim.lr": 3e-3,
    "schedule.kind": "wsd",
    "schedule.warmup_tokens": 100_000,
    "schedule.decay_fraction": 0.2,
    "schedule.decay_shape": "1-sqrt",
}
GRID = {}
PROFILES = {
    "smoke": {"model.size": "nano", "data.seq_len": 32, "data.batch_size": 8, "train.steps": 40,
              "train.eval_every": 20, "train.checkpoint_every": 20, "train.eval_tokens": 2048,
              "schedule.warmup_tokens": 1024},
    "cpu": {"train.tokens": 3_000_000, "train.eval_every": 50, "train.checkpoint_every": 200},
    "gpu": {**GPU_BASE, **GPU_LADDER["gpu-100m"],
            "train.tokens": 300_000_000, "train.eval_every": 500, "train.checkpoint_every": 1000,
            "schedule.warmup_tokens": 10_000_000},
}
FIGURES = ["tiny_lm_loss"]

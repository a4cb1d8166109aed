"""A synthetic batch sweep with a known mechanism, as store.load_runs would return it (tests only).

Loss after S steps at batch b tokens: L = L0 + sigma / b + A (S b / (1 + b / Bc))^-alpha: a noise
floor that falls with the batch (small batches plateau) and a progress per step that saturates
above Bc tokens (large batches waste tokens).  So E(S) is U-shaped and both B_min and B_opt grow
as the target loss falls, as the batch-size paper claims."""

import numpy as np


def synth_runs(batches=(4, 8, 16, 32, 64, 128, 256), T=64, d_model=64, noise=0.0, seed=0,
               L0=1.2, sigma=200.0, A=40.0, alpha=0.3, Bc=2048.0):
    rng = np.random.default_rng(seed)
    runs = []
    for B in batches:
        bt = B * T
        tokens = 2e6 * max(1.0, np.sqrt(bt / 2048))
        steps = np.unique(np.geomspace(10, tokens / bt, 40).round())
        L = L0 + sigma / bt + A * (steps * bt / (1 + bt / Bc)) ** -alpha
        L = L * np.exp(rng.normal(0, noise, L.size))
        rows = [{"step": 0, "tokens": 0, "val_loss": 5.5}] + [
            {"step": int(s), "tokens": int(s * bt), "val_loss": float(v)} for s, v in zip(steps, L)]
        cfg = {"model": {"d_model": d_model, "n_layers": 2, "ffn": "dense", "n_experts": 0},
               "data": {"seq_len": T, "batch_size": B, "batch_stages": []},
               "schedule": {"warmup_tokens": 0, "warmup_steps": 0}, "optim": {"lr": 3e-3},
               "train": {"seed": 0, "microbatches": 1}}
        runs.append({"hash": f"h{d_model}-{B}-{seed}", "config": cfg, "state": "completed", "metrics": rows,
                     # the store's checksum of the metrics: analyses are cached by (hash, checksum)
                     "status": {"params": {"non_embedding": 1000 * d_model},
                                "metrics_sha256": repr((noise, seed, L0, sigma, A, alpha, Bc, T))}})
    return runs

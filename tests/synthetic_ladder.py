"""A synthetic LR ladder with decay branches and a known law, as store.load_runs returns it (tests only).

Post-decay loss L(N, eta, D) = E + A N^-0.3 + B D^-0.4 + C (ln eta - ln eta*(N, D))^2 with
eta*(N, D) = c N^a D^b: Eq. 2 holds exactly in log eta, Eq. 4 in D at fixed (N, eta) only
approximately (the optimum moves with D), and Eq. 6 exactly."""

import numpy as np

VOCAB = 256


def synth_ladder(widths=(32, 48, 72, 104), lr_factors=(1 / 8, 1 / 4, 1 / 2, 1, 2, 4), Ds=(102_400, 204_800, 409_600, 819_200),
                 a=-0.25, b=-0.35, c=20.0, C=0.02, noise=0.0, seed=0, ffn="dense", diverge_above=None):
    rng = np.random.default_rng(seed)
    runs = []
    for d in widths:
        N = 24 * d * d                     # 2 layers x 12 d^2
        centre = c * N ** a * Ds[len(Ds) // 2] ** b
        for f in lr_factors:
            lr = float(f"{centre * f:.3g}")
            parent = f"p{ffn}{d}-{lr:g}"
            diverged = diverge_above is not None and lr > diverge_above
            params = {"non_embedding": N, "total": N + 2 * VOCAB * d, "active": N + 2 * VOCAB * d}
            base = {"model": {"d_model": d, "n_layers": 2, "ffn": ffn, "vocab_size": VOCAB},
                    "schedule": {"decay_fraction": 0.2}, "optim": {"lr": lr}}
            runs.append({"hash": parent, "state": "diverged" if diverged else "completed", "metrics": [],
                         "config": {**base, "train": {"init_from": "", "init_tokens": 0, "tokens": int(0.8 * Ds[-1]),
                                                      "save_at_tokens": [int(0.8 * D) for D in Ds]}},
                         "status": {"status": "diverged" if diverged else "completed", "params": params,
                                    "final_val_loss": float("nan") if diverged else 2.0}})
            if diverged:
                continue                  # its branches never start
            for D in Ds:
                eta = c * N ** a * D ** b
                L = 1.0 + 5 * N ** -0.3 + 40 * D ** -0.4 + C * np.log(lr / eta) ** 2
                L += rng.normal(0, noise)
                runs.append({"hash": f"{parent}-{D}", "state": "completed", "metrics": [],
                             "config": {**base, "train": {"init_from": parent, "init_tokens": int(0.8 * D),
                                                          "tokens": D, "save_at_tokens": []}},
                             "status": {"status": "completed", "params": params, "final_val_loss": float(L),
                                        "metrics_sha256": f"{noise}-{seed}"}})
    return runs

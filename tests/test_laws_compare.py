"""laws.compare: best LR per arm, seeds, steps to reach another arm's final loss (synthetic runs)."""

import math

import numpy as np
import pytest

from bsz_lr.laws import FitError
from bsz_lr.laws.compare import (arm, arm_label, best_lrs, reach_ratios, seed_summary, steps_to_reach, tuned_arms,
                                 tuned_runs)


def run(name, lr, seed=0, d=32, final=1.5, rate=1.0, status="completed", **optim):
    steps = np.arange(60, 1021, 60)
    losses = 3.0 / (1 + rate * steps / 100)
    losses = losses - losses[-1] + final                  # falls to `final`, faster with `rate`
    return {"hash": f"{name}-{lr}-{seed}-{sorted(optim.items())}", "status": {"status": status, "final_val_loss": final},
            "config": {"model": {"d_model": d}, "optim": {"name": name, "lr": lr, **optim}, "train": {"seed": seed}},
            "metrics": [{"step": 0, "val_loss": 5.5}] + [{"step": int(s), "val_loss": float(v)} for s, v in zip(steps, losses)]}


def test_best_lr_per_arm_flags_edges_and_counts_divergence_as_worst():
    runs = [run("adamw", 1e-3, final=1.7), run("adamw", 2e-3, final=1.6), run("adamw", 4e-3, final=1.65),
            run("muon", 1e-2, final=1.6), run("muon", 2e-2, final=1.5), run("muon", 4e-2, final=math.nan, status="diverged"),
            run("muon", 2e-2, seed=1, final=1.0)]                   # other seeds do not vote
    best = best_lrs(runs)
    assert best[(32, "adamw")].lr == 2e-3 and not best[(32, "adamw")].edge
    assert best[(32, "muon")].lr == 2e-2 and not best[(32, "muon")].edge    # the diverged 4e-2 bounds it
    edge = best_lrs([run("adamw", 1e-3, final=1.7), run("adamw", 2e-3, final=1.6)])
    assert edge[(32, "adamw")].edge


def test_ablation_fields_make_their_own_arms_and_labels():
    a = arm(run("mousse", 1e-2, mousse_alpha=0.25, mousse_graft=False)["config"])
    assert a == (32, "mousse", ("mousse_alpha", 0.25), ("mousse_graft", False))
    assert arm_label(a) == "Mousse (alpha 0.25, grafting off)"
    assert arm(run("mousse", 1e-2, mousse_alpha=0.125)["config"]) == (32, "mousse")   # the default is no ablation
    assert arm(run("adamw", 1e-2, mousse_alpha=0.25)["config"]) == (32, "adamw")     # not an AdamW field


def test_tuned_arms_and_seed_summary():
    from bsz_lr.config import SIZES
    d = SIZES["micro"]["d_model"]
    runs = [run(n, lr, d=d, final=f) for n, lr, f in
            [("adamw", 1e-3, 1.7), ("adamw", 2e-3, 1.6), ("muon", 1e-2, 1.55), ("mousse", 2e-2, 1.5)]]
    assert tuned_arms(runs, ["micro"]) == [("micro", "adamw", 2e-3, 1.0), ("micro", "muon", 1e-2, 0.25),
                                          ("micro", "mousse", 2e-2, 0.25)]
    with pytest.raises(FitError, match="no adamw runs of size tiny"):
        tuned_arms(runs, ["tiny"])
    seeds = [run("muon", 1e-2, seed=s, d=d, final=1.5 + 0.01 * s) for s in (0, 1, 2)]
    s = seed_summary(seeds)[(d, "muon")]
    assert s.seeds == (0, 1, 2) and s.mean == pytest.approx(1.51) and s.std == pytest.approx(0.01)
    with pytest.raises(FitError, match="several LRs"):
        seed_summary(seeds + [run("muon", 2e-2, seed=3, d=d)])
    by = tuned_runs(runs, seeds[1:])
    assert sorted(by[(d, "muon")]) == [0, 1, 2]


def test_steps_to_reach_interpolates_in_log_steps_and_reach_ratio():
    steps = np.array([100.0, 200.0, 400.0])
    assert steps_to_reach(steps, [3.0, 2.0, 1.0], 1.5) == pytest.approx(np.sqrt(200 * 400))
    assert math.isnan(steps_to_reach(steps, [3.0, 2.0, 1.0], 0.5))
    fast = {0: run("mousse", 1e-2, final=1.4, rate=3.0)}
    slow = {0: run("muon", 1e-2, final=1.5)}
    (seed, ratio), = reach_ratios(fast, slow)
    assert seed == 0 and 0 < ratio < 1
    (_, never), = reach_ratios(slow, fast)              # the slower one never gets to 1.4
    assert math.isnan(never)

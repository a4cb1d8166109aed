"""The batch-sweep analysis and the dynamic batch schedule on a synthetic sweep with a known mechanism."""

import numpy as np
import pytest

from bsz_lr.laws import FitError, RevisedFit
from bsz_lr.laws.analysis import analyse_batch_sweep, arm_label, dynamic_stages, envelope, schedule_arms

from .synthetic_sweep import synth_runs


def test_analysis_finds_u_shapes_rising_optima_and_censored_small_batches():
    a = analyse_batch_sweep(synth_runs())["d64 L2"]
    assert len(a.targets) == 8 and np.all(np.diff(a.targets) < 0)
    good = [f for f in a.fits if isinstance(f.revised, RevisedFit)]
    assert len(good) >= 3
    assert all(f.revised.B_opt > f.revised.B_min for f in good)
    assert a.bopt_law.k > 0 and a.bmin_law.k > 0               # both grow as the loss falls
    # the smallest batch plateaus above the lowest targets: censored there, never dropped
    assert 256 in a.fits[-1].censored
    assert all(np.isnan(c.steps[-1]) == c.censored[-1] for c in a.crossings if not c.early[-1])
    loo = [f.loo for f in good if f.loo["revised"]]
    assert loo and all(x["revised"]["rmse_log"] < x["classical"]["rmse_log"] for x in loo)
    reasons = [f.revised for f in a.fits if isinstance(f.revised, str)]
    assert all("need >=" in r or "no interior minimum" in r for r in reasons)


def test_dynamic_schedule_grows_the_batch_and_arms_are_distinct():
    runs = synth_runs()
    a = analyse_batch_sweep(runs)["d64 L2"]
    dyn = dynamic_stages(a, 750_000)
    seq = [dyn["batch_size"]] + [b for _, b in dyn["batch_stages"]]
    assert seq == sorted(seq) and len(seq) >= 2
    assert all(t < 0.8 * 750_000 for t, _ in dyn["batch_stages"])       # switches before the decay
    assert dyn["L_hat"] == sorted(dyn["L_hat"], reverse=True)
    arms = schedule_arms(runs, d_model=64, tokens=750_000)
    assert len(arms) == len(set(arms)) >= 4
    labels = {arm_label({"data": {"batch_size": b, "batch_stages": [list(s) for s in st]},
                         "schedule": {"batch_lr_scaling": sc}}) for b, st, sc in arms}
    assert any(x.startswith("doubling") and x.endswith("sqrt LR") for x in labels)
    assert any(x.startswith("dynamic") and not x.endswith("sqrt LR") for x in labels)
    env = envelope(a.curves, [1e5, 1e6])
    assert env[1] < env[0]


def test_degenerate_sweeps_give_reasons():
    one = synth_runs(batches=(16,))
    assert "need >= 2 runs" in analyse_batch_sweep(one)["d64 L2"]
    with pytest.raises(FitError, match="no analysed model with d_model=32"):
        schedule_arms(synth_runs(), d_model=32, tokens=750_000)
    flat = synth_runs(sigma=0.0, Bc=100.0)       # no noise floor, saturated steps: E grows with B
    a = analyse_batch_sweep(flat)["d64 L2"]
    assert all("no interior minimum" in f.revised or "need >=" in f.revised for f in a.fits)
    with pytest.raises(FitError, match="no B_opt"):
        dynamic_stages(a, 750_000)

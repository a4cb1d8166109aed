"""laws.lr_analysis on synthetic ladders with known exponents (tests/synthetic_ladder.py)."""

import math

import numpy as np
import pytest

from bsz_lr.laws import FitError, LRLaw, LRParabola, fit_lr_parabola
from bsz_lr.laws.lr_analysis import analyse_lr_ladder, heldout_lrs, ladder_points

from .synthetic_ladder import synth_ladder


def test_exact_ladder_recovers_the_joint_law_and_the_heldout_optimum():
    a = analyse_lr_ladder(synth_ladder(), n_boot=200)["dense"]
    assert len(a.sizes) == 4 and len(a.Ds) == 4 and all(len(v) == 6 for v in a.lrs.values())
    assert all(isinstance(f, LRParabola) for f in a.eq2.values())      # every optimum interior
    assert a.law.a == pytest.approx(-0.25, abs=1e-6) and a.law.b == pytest.approx(-0.35, abs=1e-6)
    assert a.law.r2 == pytest.approx(1.0, abs=1e-9)
    h = a.heldout
    assert isinstance(h.law, LRLaw) and h.law.n == 12                 # 3 sizes x 4 D
    assert h.eta_pred == pytest.approx(20.0 * h.N ** -0.25 * h.D ** -0.35, rel=1e-6)
    assert h.eta_measured.eta_star == pytest.approx(h.eta_pred, rel=1e-6)
    arms = heldout_lrs(synth_ladder(), ("dense",))
    assert [f for f, _ in arms] == ["dense"] * 3
    lrs = [lr for _, lr in arms]
    assert lrs[1] == pytest.approx(h.eta_pred, rel=1e-3) and lrs[0] * 2 == pytest.approx(lrs[1], rel=1e-3)
    assert lrs[2] == pytest.approx(2 * lrs[1], rel=1e-3)


def test_noisy_ladder_recovers_the_exponents_within_their_intervals():
    a = analyse_lr_ladder(synth_ladder(noise=0.002, seed=3), n_boot=500)["dense"]
    assert a.law.a == pytest.approx(-0.25, abs=0.12) and a.law.b == pytest.approx(-0.35, abs=0.12)
    assert a.law.a_ci[0] <= a.law.a <= a.law.a_ci[1] and a.law.b_ci[0] <= a.law.b <= a.law.b_ci[1]
    assert isinstance(a.band_law, LRLaw) and a.band_law.b < 0 and a.band_law.a < 0


def test_eq4_is_fitted_per_size_and_lr_and_checked_on_the_largest_data_size():
    a = analyse_lr_ladder(synth_ladder(), n_boot=0)["dense"]
    assert len(a.eq4) == 24 and len(a.eq4_check) == 24
    for (n, lr), (pred, meas) in a.eq4_check.items():
        assert meas == a.loss(n, lr, a.Ds[-1])
        assert abs(pred - meas) < 0.05      # the law is approximate here: the optimum moves with D


def test_search_cost_counts_runs_and_flops_of_each_strategy():
    a = analyse_lr_ladder(synth_ladder(), n_boot=0)["dense"]
    full, eq2, eq24, ran = a.cost
    assert (full["runs"], eq2["runs"], eq24["runs"], ran["runs"]) == (4 * 6 * 4, 4 * 4 * 3, 4 * 3 * 4, 4 * 6 * 5)
    assert eq24["flops"] < eq2["flops"] < full["flops"] and eq2["flops"] == pytest.approx(full["flops"] / 2)
    n_compute = {p.N: p.n_compute for p in a.points}
    assert full["flops"] == pytest.approx(sum(6 * n_compute[n] * 6 * sum(a.Ds) for n in a.sizes))
    # exact parabolas: the Eq. 2 shortcut lands on the optimum, i.e. within the grid's x2 of the best LR
    assert eq2["failed"] == 0 and eq2["err_max"] <= 0.5 + 1e-9


def test_diverged_runs_bound_the_optimum_but_are_not_fitted():
    runs = synth_ladder(diverge_above=0.01)
    pts = ladder_points(runs)
    inf = [p for p in pts if math.isinf(p.loss)]
    assert inf and all(p.lr > 0.01 for p in inf)
    assert len({(p.N, p.lr) for p in inf}) * 4 == len(inf)     # every D of a diverged parent
    # a branch still training, or failed (an error, not a result), is no point at all
    branches = [r for r in runs if r["config"]["train"]["init_from"]]
    branches[0]["status"] = {"status": "running"}
    branches[1]["status"] = {"status": "failed", "reason": "disk full"}
    assert len(ladder_points(runs)) == len(pts) - 2
    # a best LR with a diverged larger neighbour is not an edge optimum
    p = fit_lr_parabola([1e-3, 2e-3, 4e-3, 8e-3], [1.3, 1.2, 1.25, math.inf])
    assert isinstance(p, LRParabola) and 2e-3 < p.eta_star < 4e-3 and p.n == 3
    with pytest.raises(FitError, match="grid edge"):
        fit_lr_parabola([1e-3, 2e-3, 4e-3, 8e-3], [1.3, 1.2, 1.1, float("nan")])


def test_degenerate_ladders_give_reasons():
    one_size = synth_ladder(widths=(32,))
    a = analyse_lr_ladder(one_size, n_boot=0)["dense"]
    assert isinstance(a.law, str) and "distinct model sizes" in a.law
    with pytest.raises(FitError, match="held-out check"):
        heldout_lrs(one_size, ("dense",))
    with pytest.raises(FitError, match="no moe branch runs"):
        heldout_lrs(synth_ladder(), ("dense", "moe"))
    # a size whose LRs all sit below the optimum: edge optima, so no Eq. 2 point and a stated reason
    low = synth_ladder(lr_factors=(1 / 64, 1 / 32, 1 / 16))
    b = analyse_lr_ladder(low, n_boot=0)["dense"]
    assert all(isinstance(f, str) and "grid edge" in f for f in b.eq2.values())
    assert isinstance(b.law, str) and "no (N, D) group" in b.law
    assert np.isnan(b.heldout.eta_pred)


def test_the_lr_figures_build_from_a_synthetic_ladder():
    import matplotlib.pyplot as plt

    from bsz_lr.figures_lr import lr_fig1, lr_heldout, lr_law, lr_search_cost
    runs = synth_ladder() + synth_ladder(ffn="moe")
    a = analyse_lr_ladder(runs, n_boot=0)["moe"]
    held = [{"hash": f"h{f}", "config": {"model": {"ffn": "moe", "d_model": 104}, "optim": {"lr": a.heldout.eta_pred * f}},
             "status": {"final_val_loss": 1.5}} for f in (0.5, 1, 2)]
    for fig in (lr_fig1(runs), lr_law(runs), lr_search_cost(runs), lr_heldout(held, {"lr_ladder": runs})):
        assert len(fig.axes) >= 2
        plt.close(fig)

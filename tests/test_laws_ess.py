"""E(S) laws, crossings and batch laws against known answers (synthetic points from each law)."""

import numpy as np
import pytest

from bsz_lr.laws import (FitError, RevisedFit, b_simple, bootstrap, c1_pieces, classical_E, crossings,
                         fit_classical, fit_loss_power_law, fit_revised, loo_error, target_levels)

TRUE = dict(S_min=50.0, S_1=120.0, S_opt=300.0, S_2=900.0, C=0.5, E_min=4e5)


def revised_true() -> RevisedFit:
    return RevisedFit(**TRUE, **c1_pieces(**TRUE), form="c1", rmse_log=0.0, n=0)


def test_c1_pieces_are_continuous_in_value_and_slope():
    f, eps = revised_true(), 1e-6
    for knot in (TRUE["S_1"], TRUE["S_2"]):
        lo, hi = f(np.array([knot - eps]))[0], f(np.array([knot + eps]))[0]
        assert lo == pytest.approx(hi, abs=1e-2)          # 2 eps x slope apart
        d_lo = (f(np.array([knot - eps]))[0] - f(np.array([knot - 2 * eps]))[0]) / eps
        d_hi = (f(np.array([knot + 2 * eps]))[0] - f(np.array([knot + eps]))[0]) / eps
        assert d_lo == pytest.approx(d_hi, rel=1e-3, abs=1e-3)
    assert f.B_min == pytest.approx(2 * 0.5 * (900 - 300))
    assert f.B_opt == pytest.approx(4e5 / 300)


def test_classical_recovers_known_parameters():
    S = np.geomspace(60, 6000, 7)
    E = classical_E(S, 40.0, 1e5) * np.exp(np.random.default_rng(0).normal(0, 0.01, S.size))
    fit = fit_classical(S, E)
    assert fit.S_min == pytest.approx(40.0, rel=0.1)
    assert fit.E_min == pytest.approx(1e5, rel=0.05)
    assert fit.B_crit == pytest.approx(1e5 / 40, rel=0.15)


def test_revised_c1_recovers_b_min_b_opt_and_beats_classical():
    S = np.geomspace(70, 5000, 8)
    E = revised_true()(S) * np.exp(np.random.default_rng(1).normal(0, 0.01, S.size))
    fit = fit_revised(S, E)
    assert fit.B_min == pytest.approx(600, rel=0.1)
    assert fit.B_opt == pytest.approx(4e5 / 300, rel=0.2)
    assert fit.rmse_log < 0.02
    assert fit_classical(S, E).rmse_log > 5 * fit.rmse_log
    assert fit.S_min < fit.S_1 < fit.S_opt < fit.S_2
    ci = bootstrap(fit_revised, S, E, n=40)
    assert ci["n_ok"] >= 30 and ci["B_min"][0] < fit.B_min * 1.05 and ci["B_min"][1] > fit.B_min * 0.95
    rev, cla = loo_error(fit_revised, S, E), loo_error(fit_classical, S, E)
    assert rev["rmse_log"] < cla["rmse_log"] and rev["n"] == S.size


def test_revised_free_form_and_its_minimum_points():
    S = np.geomspace(70, 5000, 9)
    E = revised_true()(S)
    free = fit_revised(S, E, form="free")
    assert free.form == "free" and free.B_min == pytest.approx(600, rel=0.02)
    assert free.rmse_log < 0.02
    with pytest.raises(FitError, match="need >= 5"):
        fit_revised(S[:4], E[:4], form="free")


def test_degenerate_inputs_give_reasons():
    S = np.geomspace(70, 5000, 8)
    E = revised_true()(S)
    with pytest.raises(FitError, match="no interior minimum"):
        fit_revised(S, np.geomspace(1e5, 1e6, 8))
    with pytest.raises(FitError, match="need >= 6"):
        fit_revised(S[:5], E[:5])
    with pytest.raises(FitError, match="censored or non-finite"):
        fit_revised(np.r_[S[:4], np.nan, np.nan], np.r_[E[:4], np.inf, 1.0])
    with pytest.raises(FitError, match="need >= 3"):
        fit_classical([np.nan] * 4, [1.0] * 4)
    with pytest.raises(ValueError, match="form"):
        fit_revised(S, E, form="cubic")


def test_crossings_interpolate_and_censor():
    steps = np.array([10, 20, 40, 80, 160, 320.0])
    loss = np.array([4.0, 3.0, 2.5, 2.2, 2.1, 2.05])
    c = crossings(steps, loss, [3.5, 2.75, 2.2, 1.0], batch_tokens=100, window=1)
    assert c.steps[0] == pytest.approx(np.exp(np.log(10) + 0.5 * np.log(2)))   # halfway in log step
    assert c.steps[1] == pytest.approx(np.exp(np.log(20) + 0.5 * np.log(2)))
    assert c.steps[2] == pytest.approx(80)
    assert c.tokens[2] == pytest.approx(8000)
    assert c.censored.tolist() == [False, False, False, True] and np.isnan(c.steps[3])
    assert c.min_loss == pytest.approx(2.05)
    early = crossings(steps, loss, [3.5, 5.0], batch_tokens=100, warmup_steps=20, window=1)
    assert early.early.tolist() == [True, True]
    with pytest.raises(FitError, match=">= 2 evaluations"):
        crossings([0, 10], [5.0, 4.0], [4.5], 1)


def test_target_levels_span_the_best_curve():
    s = np.geomspace(10, 1000, 30)
    curves = [(s, 2 + 3 * s ** -0.5), (s, 2.3 + 3 * s ** -0.5)]
    t = target_levels(curves, n=5)
    assert len(t) == 5 and np.all(np.diff(t) < 0)
    assert t[-1] > 2 + 3 * 1000 ** -0.5
    with pytest.raises(FitError):
        target_levels([(s, np.ones_like(s))])


def test_loss_power_law_recovers_exponent():
    L = np.linspace(1.6, 2.6, 6)
    B = 3000 * (L / 2.0) ** -2.5 * np.exp(np.random.default_rng(2).normal(0, 0.01, L.size))
    fit = fit_loss_power_law(L, B)
    assert fit.k == pytest.approx(2.5, abs=0.15)
    assert fit.k_ci[0] < 2.5 < fit.k_ci[1] and fit.r2 > 0.99
    with pytest.raises(FitError, match="need >= 3"):
        fit_loss_power_law([2.0, np.nan], [1.0, 2.0])


def test_b_simple_two_batch_estimator_is_exact_for_exact_norms():
    G2, trS = 4.0, 200.0          # |G|^2 and tr(Sigma): E|g_B|^2 = |G|^2 + tr(Sigma)/B
    gs, gb = G2 + trS / 8, G2 + trS / 32
    assert b_simple(gs, gb, 8, 32) == pytest.approx(trS / G2)
    assert np.isnan(b_simple(1.0, 5.0, 8, 32))
    with pytest.raises(ValueError):
        b_simple(1.0, 1.0, 8, 8)

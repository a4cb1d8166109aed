"""LR paper's Eq. 2 (parabola in log LR) and Eq. 6 (joint power law) against known answers."""

import itertools

import numpy as np
import pytest

from bsz_lr.laws import FitError
from bsz_lr.laws.lr import band_points, fit_lr_law, fit_lr_parabola

A, B, C0 = -0.2219, -0.3509, 38.4588          # the paper's law, as a known answer to recover


def true_eta(N, D):
    return C0 * N ** A * D ** B


def losses_at(N, D, lrs, noise=0.0, rng=None):
    m = np.log(true_eta(N, D))
    L = 2.0 + 0.08 * (np.log(lrs) - m) ** 2
    return L + (rng.normal(0, noise, L.shape) if rng is not None else 0)


def test_parabola_recovers_the_optimum_and_curvature():
    lrs = true_eta(1e7, 1e9) * 2.0 ** np.arange(-3, 4)
    p = fit_lr_parabola(lrs, losses_at(1e7, 1e9, lrs))
    assert p.eta_star == pytest.approx(true_eta(1e7, 1e9), rel=1e-6)
    assert p.C == pytest.approx(0.08, rel=1e-6) and p.L_min == pytest.approx(2.0)
    assert p.n == 3                      # only the points within 3x of the best LR (2x apart: 3 of them)
    assert fit_lr_parabola(lrs, losses_at(1e7, 1e9, lrs), band=8.0).n == 7


def test_parabola_refuses_edges_and_degenerate_input():
    lrs = np.geomspace(1e-4, 1e-3, 5)
    with pytest.raises(FitError, match="grid edge .*smallest"):
        fit_lr_parabola(lrs, [1.0, 1.1, 1.2, 1.3, 1.4])
    with pytest.raises(FitError, match="grid edge .*largest"):
        fit_lr_parabola(lrs, [1.4, 1.3, 1.2, 1.1, 1.0])
    with pytest.raises(FitError, match="need >= 3 finite"):
        fit_lr_parabola([1e-3, 2e-3, np.nan], [1.0, 0.9, 1.0])
    with pytest.raises(FitError, match="not convex"):
        fit_lr_parabola(1e-3 * 2.0 ** np.arange(5), [0.9, 0.1, 1.0, 1.0, 0.2], band=100)
    with pytest.raises(FitError, match="within 3x"):
        fit_lr_parabola([1e-4, 1e-3, 1e-2], [1.2, 1.0, 1.3])


def test_joint_law_recovers_the_exponents_with_noise():
    rng = np.random.default_rng(0)
    Ns, Ds = [1e6, 3e6, 1e7, 3e7], [1e8, 2e8, 4e8, 8e8]
    N, D, eta = [], [], []
    for n, d in itertools.product(Ns, Ds):
        lrs = true_eta(n, d) * 2.0 ** np.arange(-3, 4) * np.exp(rng.normal(0, 0.05))
        p = fit_lr_parabola(lrs, losses_at(n, d, lrs, noise=1e-3, rng=rng), band=5.0)
        N.append(n), D.append(d), eta.append(p.eta_star)
    law = fit_lr_law(N, D, eta)
    assert law.a == pytest.approx(A, abs=0.05) and law.b == pytest.approx(B, abs=0.05)
    assert law.a_ci[0] < A < law.a_ci[1] and law.b_ci[0] < B < law.b_ci[1]
    assert law.r2 > 0.95
    assert law(3e7, 8e8) == pytest.approx(true_eta(3e7, 8e8), rel=0.15)


def test_band_estimator_is_a_second_estimate_of_the_same_law():
    Ns, Ds = [1e6, 1e7, 1e8], [1e8, 1e9]
    rows = [(n, d, lr, losses_at(n, d, np.array([lr]))[0]) for n, d in itertools.product(Ns, Ds)
            for lr in true_eta(n, d) * 2.0 ** np.arange(-3, 4, 0.5)]
    N, D, lr, L = map(np.array, zip(*rows))
    bn, bd, blr = band_points(N, D, lr, L, rel=0.003)
    assert 6 <= bn.size < N.size                     # the best of each group and its near neighbours
    law = fit_lr_law(bn, bd, blr)
    assert law.a == pytest.approx(A, abs=0.03) and law.b == pytest.approx(B, abs=0.03)


def test_joint_law_degenerate_input():
    with pytest.raises(FitError, match="need >= 4"):
        fit_lr_law([1, 2, 3], [1, 2, 3], [1, 2, 3])
    with pytest.raises(FitError, match="distinct model sizes"):
        fit_lr_law([1e6] * 4, [1, 2, 3, 4], [1, 2, 3, 4])
    with pytest.raises(FitError, match="distinct data sizes"):
        fit_lr_law([1, 2, 3, 4], [1e9] * 4, [1, 2, 3, 4])
    with pytest.raises(FitError, match="no finite runs"):
        band_points([1], [1], [1e-3], [np.nan])


def test_horizon_exponent_and_rule():
    from bsz_lr.laws import fit_horizon
    from bsz_lr.parametrization import horizon_lr
    D = np.array([1e5, 2e5, 4e5, 8e5])
    h = fit_horizon(D, 3e-2 * D ** -0.35, n_boot=100)
    assert h.beta == pytest.approx(0.35) and h.r2 == pytest.approx(1.0) and h.n == 4
    assert h(1.6e6) == pytest.approx(horizon_lr(h(8e5), 8e5, 1.6e6, h.beta))
    rng = np.random.default_rng(0)
    noisy = fit_horizon(D, 3e-2 * D ** -0.35 * np.exp(rng.normal(0, 0.05, 4)), n_boot=500)
    assert noisy.beta_ci[0] <= noisy.beta <= noisy.beta_ci[1]
    with pytest.raises(FitError, match="2 distinct token counts"):
        fit_horizon([1e5, 1e5], [1e-3, 2e-3])

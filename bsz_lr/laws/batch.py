"""Batch-size laws over target losses: B_min(L), B_opt(L) as power laws, and the noise scale.

* `fit_loss_power_law(L, B)`: B(L) = B_* (L / L_ref)^(-k), least squares in log B over log L
  (k > 0 means the batch grows as the loss falls); bootstrap over points for an interval on k.
* `b_simple(g_small_sq, g_big_sq, b_small, b_big)`: McCandlish et al.'s two-batch estimator of
  the simple noise scale B_simple = tr(Sigma) / |G|^2 from squared gradient norms measured at two
  batch sizes (related-work.md): |G|^2 ~ (b_big |g_big|^2 - b_small |g_small|^2) / (b_big - b_small),
  tr(Sigma) ~ (|g_small|^2 - |g_big|^2) / (1/b_small - 1/b_big).  Average both over steps before
  dividing (the ratio of noisy means, as the paper does).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .loglinear import ols_with_intervals
from .power import FitError

__all__ = ["LossPowerLaw", "fit_loss_power_law", "b_simple"]


@dataclasses.dataclass(frozen=True)
class LossPowerLaw:
    B_ref: float        # B at L_ref
    k: float            # exponent: B ~ L^-k
    L_ref: float
    r2: float
    n: int
    k_ci: tuple = (np.nan, np.nan)

    def __call__(self, L):
        return self.B_ref * (np.asarray(L, float) / self.L_ref) ** (-self.k)


def fit_loss_power_law(L, B, n_boot: int = 500, seed: int = 0, level: float = 0.9) -> LossPowerLaw:
    L, B = np.asarray(L, float).ravel(), np.asarray(B, float).ravel()
    ok = np.isfinite(L) & np.isfinite(B) & (L > 0) & (B > 0)
    if ok.sum() < 3:
        raise FitError(f"B(L) power law: need >= 3 finite positive (L, B) points, got {int(ok.sum())}")
    L, B = L[ok], B[ok]
    if np.ptp(np.log(L)) < 1e-9:
        raise FitError("B(L) power law: all target losses are equal")
    L_ref = float(np.exp(np.mean(np.log(L))))
    x = np.log(L / L_ref)
    coef, r2, ci = ols_with_intervals(np.stack([np.ones_like(x), x], 1), np.log(B), n_boot, seed, level)
    c, k = coef[0], -coef[1]
    ci = (-ci[1][1], -ci[1][0])
    return LossPowerLaw(float(np.exp(c)), float(k), L_ref, r2, int(x.size), ci)


def b_simple(g_small_sq, g_big_sq, b_small: float, b_big: float) -> float:
    """Two-batch estimate of B_simple (units of b_small / b_big); NaN when an estimate is <= 0."""
    gs, gb = float(np.mean(g_small_sq)), float(np.mean(g_big_sq))
    if not b_big > b_small > 0:
        raise ValueError(f"b_simple: need b_big > b_small > 0, got {b_small}, {b_big}")
    G2 = (b_big * gb - b_small * gs) / (b_big - b_small)
    trS = (gs - gb) / (1 / b_small - 1 / b_big)
    return trS / G2 if G2 > 0 and trS > 0 else float("nan")

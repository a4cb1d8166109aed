"""Saturating power law in data: L(D) = L_0 + A * D^(-gamma)  (LR paper, Eq. 4)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit


class FitError(ValueError):
    """The points cannot determine the law (too few, non-finite, or the optimiser failed)."""


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    L0: float
    A: float
    gamma: float
    rmse: float

    def __call__(self, D):
        return self.L0 + self.A * np.asarray(D, float) ** (-self.gamma)


def _model(logD, L0, logA, gamma):
    return L0 + np.exp(logA - gamma * logD)


def fit_power_law(D, L) -> PowerLawFit:
    """Least squares in L over (L_0, log A, gamma) with L_0 in [0, min L), gamma in (0, 3]."""
    D, L = np.asarray(D, float), np.asarray(L, float)
    ok = np.isfinite(D) & np.isfinite(L) & (D > 0)
    D, L = D[ok], L[ok]
    if D.size < 3:
        raise FitError(f"power law: need >= 3 finite points, got {D.size}")
    logD = np.log(D)
    best = None
    for g0 in (0.1, 0.3, 0.6, 1.0):
        L00 = 0.9 * L.min()
        p0 = (L00, np.log(max(L.max() - L00, 1e-6)) + g0 * logD.min(), g0)
        try:
            with warnings.catch_warnings():   # covariance is undefined for exactly-determined fits
                warnings.simplefilter("ignore", OptimizeWarning)
                p, _ = curve_fit(_model, logD, L, p0=p0, bounds=([0, -50, 1e-4], [L.min(), 50, 3.0]),
                                 maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        rmse = float(np.sqrt(np.mean((_model(logD, *p) - L) ** 2)))
        if best is None or rmse < best[1]:
            best = (p, rmse)
    if best is None:
        raise FitError("power law: the optimiser did not converge from any start")
    (L0, logA, gamma), rmse = best
    return PowerLawFit(float(L0), float(np.exp(logA)), float(gamma), rmse)

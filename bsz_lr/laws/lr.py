"""Learning-rate laws of the LR paper's Fitting paradigm (spec section 1): Eq. 2 and Eq. 6.

* Eq. 2, `fit_lr_parabola(lrs, losses)`: at fixed (N, D), L(eta) = L_min + C (log eta - m)^2 over
  the near-optimal points only (within `band` x of the best measured LR), eta* = exp(m).  An
  optimum at the edge of the LR grid (the best measured LR is the smallest or largest tried, or
  the fitted vertex lies outside the points used) is a FitError saying so: it is never
  extrapolated.  A loss of +inf (a diverged run) bounds the optimum on its side, so a best LR
  next to a diverged larger one is not at the edge, but it is never part of the parabola.
* Eq. 6, `fit_lr_law(N, D, eta)`: log eta* = log c + a log N + b log D by least squares, R^2, and
  bootstrap intervals on both exponents (paper: a = -0.2219, b = -0.3509).
* The near-optimal-band estimator (DeepSeek 2024, Step Law 2025), `band_points(...)`: every run
  within `rel` (default 0.25%) of its (N, D) group's lowest loss is a point of the same log-linear
  law, so `fit_lr_law(*band_points(...))` is a second estimate that needs no parabola.

    >>> p = fit_lr_parabola([1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2], losses)   # p.eta_star, p.C
    >>> law = fit_lr_law(N, D, eta_star); law.a, law.b, law.r2, law(N_new, D_new)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .loglinear import ols_with_intervals
from .power import FitError

__all__ = ["LRParabola", "fit_lr_parabola", "LRLaw", "fit_lr_law", "band_points", "HorizonFit", "fit_horizon"]


@dataclasses.dataclass(frozen=True)
class LRParabola:
    eta_star: float
    L_min: float
    C: float              # curvature in (log eta)^2
    n: int                # points used (the near-optimal ones)
    rmse: float

    def __call__(self, eta):
        return self.L_min + self.C * (np.log(np.asarray(eta, float)) - np.log(self.eta_star)) ** 2


def fit_lr_parabola(lrs, losses, band: float = 3.0) -> LRParabola:
    """Eq. 2 through the points within `band` x (in LR) of the best measured LR."""
    lr, L = np.asarray(lrs, float).ravel(), np.asarray(losses, float).ravel()
    if lr.shape != L.shape:
        raise FitError(f"Eq. 2: {lr.size} LRs but {L.size} losses")
    # +inf (a diverged run) bounds the optimum from its side but is never fitted; NaN is no point.
    ok = np.isfinite(lr) & (lr > 0) & ~np.isnan(L) & (L > -np.inf)
    lr, L = lr[ok], L[ok]
    if np.isfinite(L).sum() < 3:
        raise FitError(f"Eq. 2: need >= 3 finite points (LR > 0), got {int(np.isfinite(L).sum())}")
    i = int(np.argmin(L))
    if lr[i] in (lr.min(), lr.max()):
        side = "smallest" if lr[i] == lr.min() else "largest"
        raise FitError(f"Eq. 2: optimum at the grid edge (the {side} LR, {lr[i]:.3g}, has the lowest loss): "
                       "extend the LR grid past it; not extrapolated")
    near = (np.abs(np.log(lr / lr[i])) <= np.log(band) + 1e-9) & np.isfinite(L)
    x, y = np.log(lr[near]), L[near]
    if x.size < 3:
        raise FitError(f"Eq. 2: need >= 3 points within {band:g}x of the best LR, got {x.size}")
    c2, c1, c0 = np.polyfit(x, y, 2)
    if not c2 > 0:
        raise FitError("Eq. 2: the near-optimal points are not convex in log LR (no parabola minimum)")
    m = -c1 / (2 * c2)
    if not x.min() <= m <= x.max():
        raise FitError(f"Eq. 2: the parabola's vertex (LR {np.exp(m):.3g}) lies outside the points used "
                       f"[{np.exp(x.min()):.3g}, {np.exp(x.max()):.3g}]: not extrapolated")
    L_min = c0 - c1 ** 2 / (4 * c2)
    pred = L_min + c2 * (x - m) ** 2
    return LRParabola(float(np.exp(m)), float(L_min), float(c2), int(x.size),
                      float(np.sqrt(np.mean((pred - y) ** 2))))


@dataclasses.dataclass(frozen=True)
class LRLaw:
    c: float
    a: float              # exponent of N
    b: float              # exponent of D
    r2: float
    n: int
    a_ci: tuple = (np.nan, np.nan)
    b_ci: tuple = (np.nan, np.nan)

    def __call__(self, N, D):
        return self.c * np.asarray(N, float) ** self.a * np.asarray(D, float) ** self.b


def fit_lr_law(N, D, eta, n_boot: int = 1000, seed: int = 0, level: float = 0.9) -> LRLaw:
    """Eq. 6: eta* = c N^a D^b, least squares in log space, with bootstrap intervals over points."""
    N, D, eta = (np.asarray(v, float).ravel() for v in (N, D, eta))
    if not N.shape == D.shape == eta.shape:
        raise FitError(f"Eq. 6: N, D and eta have different lengths ({N.size}, {D.size}, {eta.size})")
    ok = np.isfinite(N) & np.isfinite(D) & np.isfinite(eta) & (N > 0) & (D > 0) & (eta > 0)
    N, D, eta = N[ok], D[ok], eta[ok]
    if N.size < 4:
        raise FitError(f"Eq. 6: need >= 4 finite positive (N, D, eta*) points, got {N.size}")
    if np.unique(N).size < 2 or np.unique(D).size < 2:
        what = "model sizes N" if np.unique(N).size < 2 else "data sizes D"
        raise FitError(f"Eq. 6: need >= 2 distinct {what} to fit both exponents")
    X = np.stack([np.ones_like(N), np.log(N), np.log(D)], 1)
    coef, r2, ci = ols_with_intervals(X, np.log(eta), n_boot, seed, level)
    return LRLaw(float(np.exp(coef[0])), float(coef[1]), float(coef[2]), r2, int(N.size), ci[1], ci[2])


def band_points(N, D, lrs, losses, rel: float = 0.0025):
    """(N, D, eta) of every run within `rel` of its (N, D) group's lowest loss (non-finite losses
    are left out): the near-optimal-band estimator's points for fit_lr_law."""
    N, D, lr, L = (np.asarray(v, float).ravel() for v in (N, D, lrs, losses))
    ok = np.isfinite(L) & np.isfinite(lr) & (lr > 0)
    keep = np.zeros(L.shape, bool)
    for n, d in {(n, d) for n, d in zip(N[ok], D[ok])}:
        g = ok & (N == n) & (D == d)
        keep |= g & (L <= L[g].min() * (1 + rel))
    if not keep.any():
        raise FitError("band estimator: no finite runs")
    return N[keep], D[keep], lr[keep]


@dataclasses.dataclass(frozen=True)
class HorizonFit:
    beta: float           # eta* ~ D^-beta at a fixed model (the token-horizon exponent)
    c: float
    r2: float
    n: int
    beta_ci: tuple = (np.nan, np.nan)

    def __call__(self, D):
        return self.c * np.asarray(D, float) ** -self.beta


def fit_horizon(D, eta, n_boot: int = 1000, seed: int = 0, level: float = 0.9) -> HorizonFit:
    """The horizon rule's exponent on a proxy: log eta* = log c - beta log D by least squares over
    one model's optima at several token counts (parametrization.horizon_lr applies it)."""
    D, eta = (np.asarray(v, float).ravel() for v in (D, eta))
    if D.shape != eta.shape:
        raise FitError(f"horizon: {D.size} token counts but {eta.size} optima")
    ok = np.isfinite(D) & np.isfinite(eta) & (D > 0) & (eta > 0)
    D, eta = D[ok], eta[ok]
    if np.unique(D).size < 2:
        raise FitError(f"horizon: need optima at >= 2 distinct token counts, got {np.unique(D).size}")
    X = np.stack([np.ones_like(D), np.log(D)], 1)
    coef, r2, ci = ols_with_intervals(X, np.log(eta), n_boot, seed, level)
    return HorizonFit(float(-coef[1]), float(np.exp(coef[0])), r2, int(D.size), (-ci[1][1], -ci[1][0]))

"""Least squares of y on the columns of X with R^2 and pairs-bootstrap intervals (shared by the
log-log laws: B(L) in batch.py, eta*(N, D) in lr.py)."""

from __future__ import annotations

import numpy as np

__all__ = ["ols_with_intervals"]


def ols_with_intervals(X, y, n_boot: int = 1000, seed: int = 0, level: float = 0.9):
    """(coef, r2, ci): ci[j] = (lo, hi) percentile interval of coef[j] over bootstrap resamples of
    the rows (resamples that lose the rank of X are skipped; NaN with fewer than 10 left)."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum((y - X @ coef) ** 2)) / ss if ss > 0 else 1.0
    rng, draws = np.random.default_rng(seed), []
    for _ in range(n_boot):
        i = rng.integers(0, y.size, y.size)
        if np.linalg.matrix_rank(X[i]) == X.shape[1]:
            draws.append(np.linalg.lstsq(X[i], y[i], rcond=None)[0])
    q = [(1 - level) * 50, (1 + level) * 50]
    if len(draws) >= 10:
        d = np.array(draws)
        ci = [tuple(float(v) for v in np.percentile(d[:, j], q)) for j in range(X.shape[1])]
    else:
        ci = [(np.nan, np.nan)] * X.shape[1]
    return coef, r2, ci

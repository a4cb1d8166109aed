"""E(S) laws for one (model, target loss): tokens E against optimizer steps S over batch sizes.

Batch-size paper, sections 1 and 3.  A run with constant batch B (tokens per step) reaches
the target after S steps and E = B * S tokens; one point per batch size.

* classical (McCandlish et al. 2018): (S/S_min - 1)(E/E_min - 1) = 1, i.e.
  E(S) = E_min + E_min S_min / (S - S_min); B_crit = E_min / S_min.
* revised (WSD stable phase): inverse-linear for S_min < S < S_1 (large batches), quadratic
  C (S - S_opt)^2 + E_min for S_1 < S < S_2, linear A_1 S + A_0 for S > S_2 (small batches).
  B_min = A_1 (asymptotic slope: a smaller batch never reaches the target) and
  B_opt = E_min / S_opt (fewest tokens).
  - form "c1": value and slope continuous at both knots (our reconstruction, 6 free
    parameters S_min < S_1 < S_opt < S_2, C > 0, E_min > 0; A_1, A_0, B_-1, B_0 follow);
  - form "free": the three pieces fitted independently on the points between knots chosen
    from the data (the paper's text, no continuity): needs >= 3 points on the quadratic,
    >= 2 on the linear piece and 0 or >= 3 on the inverse-linear piece.

All fits are least squares in log E with bounds and several restarts.  Bad input (too few
points, non-finite values, no interior minimum) raises FitError with the reason; nothing
here returns a fit it could not make.

    >>> S = np.array([...]); E = np.array([...])          # one target loss, one point per batch
    >>> fit = fit_revised(S, E)                            # RevisedFit
    >>> fit.B_min, fit.B_opt, fit(S)
    >>> ci = bootstrap(fit_revised, S, E, n=200)           # {'B_min': (lo, hi), 'B_opt': (lo, hi)}
    >>> loo_error(fit_revised, S, E)                       # held-out RMSE of log E, leave one out
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from typing import Callable

import numpy as np
from scipy.optimize import least_squares

from .power import FitError

__all__ = ["ClassicalFit", "RevisedFit", "classical_E", "fit_classical", "fit_revised", "c1_pieces",
           "bootstrap", "loo_error", "check_points"]


def check_points(S, E, need: int, law: str) -> tuple[np.ndarray, np.ndarray]:
    """Finite, positive points sorted by S; FitError naming what is wrong otherwise."""
    S, E = np.asarray(S, float).ravel(), np.asarray(E, float).ravel()
    if S.shape != E.shape:
        raise FitError(f"{law}: S and E have different lengths ({S.size}, {E.size})")
    ok = np.isfinite(S) & np.isfinite(E) & (S > 0) & (E > 0)
    if ok.sum() < need:
        bad = (~ok).sum()
        raise FitError(f"{law}: need >= {need} finite positive points, got {int(ok.sum())}"
                       + (f" ({bad} censored or non-finite left out)" if bad else ""))
    order = np.argsort(S[ok])
    return S[ok][order], E[ok][order]


def _rmse_log(pred, E) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.log(np.maximum(pred, 1e-300)) - np.log(E)
    return float(np.sqrt(np.mean(r ** 2)))


# ---------------------------------------------------------------------------
# Classical hyperbola.

def classical_E(S, S_min: float, E_min: float):
    S = np.asarray(S, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(S > S_min, E_min + E_min * S_min / (S - S_min), np.inf)


@dataclasses.dataclass(frozen=True)
class ClassicalFit:
    S_min: float
    E_min: float
    rmse_log: float
    n: int

    @property
    def B_crit(self) -> float:
        return self.E_min / self.S_min

    def __call__(self, S):
        return classical_E(S, self.S_min, self.E_min)

    def params(self) -> dict:
        return {"S_min": self.S_min, "E_min": self.E_min, "B_crit": self.B_crit}


def fit_classical(S, E) -> ClassicalFit:
    """(S/S_min - 1)(E/E_min - 1) = 1 through the points: S_min in (0, min S), E_min in (0, min E]."""
    S, E = check_points(S, E, 3, "classical E(S)")
    best = None
    for f_s, f_e in itertools.product((0.1, 0.5, 0.9), (0.3, 0.7, 0.95)):
        x0 = [np.log(f_s * S[0]), np.log(f_e * E.min())]

        def resid(x):
            return np.log(classical_E(S, np.exp(x[0]), np.exp(x[1]))) - np.log(E)
        try:
            r = least_squares(resid, x0, bounds=([-50, -50], [np.log(S[0]) - 1e-9, np.log(E.min()) + 1e-9]))
        except ValueError:
            continue
        if np.all(np.isfinite(r.fun)) and (best is None or r.cost < best.cost):
            best = r
    if best is None:
        raise FitError("classical E(S): the optimiser found no finite fit from any start")
    S_min, E_min = np.exp(best.x)
    return ClassicalFit(float(S_min), float(E_min), _rmse_log(classical_E(S, S_min, E_min), E), S.size)


# ---------------------------------------------------------------------------
# Revised piecewise law.

@dataclasses.dataclass(frozen=True)
class RevisedFit:
    """The piecewise E(S) with all of its parameters (knots S_1 < S_2)."""
    S_min: float
    B_m1: float       # B_{-1}
    B_0: float
    C: float
    S_opt: float
    E_min: float
    A_1: float
    A_0: float
    S_1: float
    S_2: float
    form: str
    rmse_log: float
    n: int

    @property
    def B_min(self) -> float:
        return self.A_1

    @property
    def B_opt(self) -> float:
        return self.E_min / self.S_opt

    def __call__(self, S):
        return _piecewise(np.asarray(S, float), self.S_min, self.B_m1, self.B_0, self.C, self.S_opt, self.E_min,
                          self.A_1, self.A_0, self.S_1, self.S_2)

    def params(self) -> dict:
        d = {k: getattr(self, k) for k in ("S_min", "B_m1", "B_0", "C", "S_opt", "E_min", "A_1", "A_0", "S_1", "S_2")}
        return {**d, "B_min": self.B_min, "B_opt": self.B_opt}


def c1_pieces(S_min, S_1, S_opt, S_2, C, E_min) -> dict:
    """The dependent parameters of the C0 + C1 continuous form (spec section 3)."""
    S_min, S_1, S_opt, S_2, C, E_min = (np.float64(v) for v in (S_min, S_1, S_opt, S_2, C, E_min))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _c1_pieces_raw(S_min, S_1, S_opt, S_2, C, E_min)


def _c1_pieces_raw(S_min, S_1, S_opt, S_2, C, E_min) -> dict:
    A_1 = 2 * C * (S_2 - S_opt)
    A_0 = C * (S_2 - S_opt) ** 2 + E_min - A_1 * S_2
    B_m1 = -2 * C * (S_1 - S_opt) * (S_1 - S_min) ** 2
    B_0 = C * (S_1 - S_opt) ** 2 + E_min - B_m1 / (S_1 - S_min)
    return dict(A_1=A_1, A_0=A_0, B_m1=B_m1, B_0=B_0)


def _piecewise(S, S_min, B_m1, B_0, C, S_opt, E_min, A_1, A_0, S_1, S_2):
    """The revised law's value at S (no dataclass: the fits call this thousands of times)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = np.where(S > S_min, B_m1 / (S - S_min) + B_0, np.inf)
        return np.where(S < S_1, inv, np.where(S <= S_2, C * (S - S_opt) ** 2 + E_min, A_1 * S + A_0))


def _c1_from_x(x, S_lo):
    """Unconstrained x -> ordered knots: S_min = S_lo * sigmoid, then positive log-gaps."""
    S_min = S_lo / (1 + np.exp(-x[0]))
    S_1 = S_min + np.exp(x[1])
    S_opt = S_1 + np.exp(x[2])
    S_2 = S_opt + np.exp(x[3])
    C, E_min = np.exp(x[4]), np.exp(x[5])
    return S_min, S_1, S_opt, S_2, C, E_min


def _c1_fit(S_min, S_1, S_opt, S_2, C, E_min, rmse, n) -> RevisedFit:
    p = c1_pieces(S_min, S_1, S_opt, S_2, C, E_min)
    return RevisedFit(S_min=S_min, S_1=S_1, S_opt=S_opt, S_2=S_2, C=C, E_min=E_min, form="c1",
                      rmse_log=rmse, n=n, **p)


def _interior_minimum(S, E, law: str) -> None:
    i = int(np.argmin(E))
    if i == 0 or i == S.size - 1:
        raise FitError(f"{law}: no interior minimum (fewest tokens at the {'largest' if i == 0 else 'smallest'} "
                       "batch of the points): the U shape is not sampled, widen the batch grid")


def fit_revised(S, E, form: str = "c1", restarts: int = 12, seed: int = 0, x0=None,
                max_nfev: int = 3000) -> RevisedFit:
    """Fit the revised E(S) to points of one target loss.

    form "c1": the 6-parameter continuous form; "ql": its quadratic + linear part alone (4
    parameters S_opt < S_2, C, E_min, C1 at S_2), >= 5 points; "auto": c1, and ql where the best
    c1 fit is degenerate (its inverse-linear piece shrinks to nothing, S_1 -> S_min: ql is that
    limit); (a 5-point ql fit alone misplaces B_opt when the points reach the large-batch regime);
    "free": the pieces without continuity.  B_min and B_opt are defined in every form."""
    if form == "free":
        return _fit_free(S, E)
    if form == "ql":
        return _fit_ql(S, E, restarts, seed, x0, max_nfev)
    if form == "auto":
        try:
            return fit_revised(S, E, "c1", restarts, seed, x0, max_nfev)
        except FitError as e:
            if "degenerate" not in str(e):
                raise
        # the best c1 fit shrinks the inverse-linear piece to nothing (S_1 -> S_min): its limit is ql
        return _fit_ql(S, E, restarts, seed, x0 if x0 is not None and len(x0) == 4 else None, max_nfev)
    if form != "c1":
        raise ValueError(f"fit_revised: form must be 'auto', 'c1', 'ql' or 'free', got {form!r}")
    if x0 is not None and len(x0) != 6:
        x0 = None
    S, E = check_points(S, E, 6, "revised E(S) (c1)")
    _interior_minimum(S, E, "revised E(S) (c1)")
    rng = np.random.default_rng(seed)
    S_lo, i = S[0] * (1 - 1e-6), int(np.argmin(E))
    span = S[-1] - S[0]

    logE = np.log(E)

    def resid(x):
        S_min, S_1, S_opt, S_2, C, E_min = _c1_from_x(x, S_lo)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            p = _c1_pieces_raw(S_min, S_1, S_opt, S_2, C, E_min)
            r = np.log(np.maximum(_piecewise(S, S_min, p["B_m1"], p["B_0"], C, S_opt, E_min, p["A_1"], p["A_0"],
                                             S_1, S_2), 1e-300)) - logE
        return np.where(np.isfinite(r), r, 1e3)

    def start(rng):
        S_opt = S[i] * np.exp(rng.normal(0, 0.2))
        S_min = S[0] * rng.uniform(0.05, 0.9)
        S_1 = S_min + (min(S_opt, S[i]) - S_min) * rng.uniform(0.2, 0.9)
        S_2 = max(S_opt, S_1) + span * rng.uniform(0.05, 0.6)
        C = max(E.max() - E.min(), 1e-9 * E.min()) / max(span, 1e-9) ** 2 * rng.uniform(0.3, 3)
        E_min = E.min() * rng.uniform(0.85, 1.0)
        g = lambda a: np.log(max(a, 1e-12 * max(span, 1.0)))
        p = S_min / S_lo
        return np.array([np.log(p / (1 - p)), g(S_1 - S_min), g(max(S_opt, S_1 * 1.01) - S_1),
                         g(S_2 - max(S_opt, S_1 * 1.01)), np.log(C), np.log(E_min)])

    starts = ([np.asarray(x0, float)] if x0 is not None else []) + [start(rng) for _ in range(restarts)]
    best = None
    for x in starts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = least_squares(resid, x, method="trf", max_nfev=max_nfev, x_scale="jac")
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or r.cost < best.cost:
            best = r
    if best is None or not np.isfinite(best.cost) or best.cost >= 1e5:
        raise FitError("revised E(S) (c1): the optimiser found no finite fit from any start")
    knots = _c1_from_x(best.x, S_lo)
    f = _c1_fit(*map(float, knots), 0.0, S.size)
    if not all(np.isfinite(v) for v in (f.A_1, f.A_0, f.B_m1, f.B_0)):
        raise FitError("revised E(S) (c1): the best fit is degenerate (two knots coincide)")
    fit = dataclasses.replace(f, rmse_log=_rmse_log(f(S), E))
    object.__setattr__(fit, "_x", best.x)      # warm start for bootstrap refits
    return fit


def _fit_ql(S, E, restarts: int = 12, seed: int = 0, x0=None, max_nfev: int = 3000) -> RevisedFit:
    law = "revised E(S) (ql)"
    S, E = check_points(S, E, 5, law)
    _interior_minimum(S, E, law)
    rng = np.random.default_rng(seed)
    i, span = int(np.argmin(E)), S[-1] - S[0]

    def unpack(x):
        x = np.clip(x, -700, 700)
        S_opt = np.exp(x[0])
        return S_opt, S_opt + np.exp(x[1]), np.exp(x[2]), np.exp(x[3])

    def make(x, rmse=0.0):
        S_opt, S_2, C, E_min = (np.float64(v) for v in unpack(x))
        A_1 = 2 * C * (S_2 - S_opt)
        return RevisedFit(S_min=0.0, B_m1=np.nan, B_0=np.nan, C=C, S_opt=S_opt, E_min=E_min, A_1=A_1,
                          A_0=C * (S_2 - S_opt) ** 2 + E_min - A_1 * S_2, S_1=0.0, S_2=S_2, form="ql",
                          rmse_log=rmse, n=S.size)

    logE = np.log(E)

    def resid(x):
        S_opt, S_2, C, E_min = unpack(x)
        with np.errstate(all="ignore"):
            A_1 = 2 * C * (S_2 - S_opt)
            pred = np.where(S <= S_2, C * (S - S_opt) ** 2 + E_min, A_1 * (S - S_2) + C * (S_2 - S_opt) ** 2 + E_min)
            r = np.log(np.maximum(pred, 1e-300)) - logE
        return np.where(np.isfinite(r), r, 1e3)

    def start(rng):
        S_opt = S[i] * np.exp(rng.normal(0, 0.2))
        C = max(E.max() - E.min(), 1e-9 * E.min()) / max(span, 1e-9) ** 2 * rng.uniform(0.3, 3)
        return np.array([np.log(S_opt), np.log(span * rng.uniform(0.05, 0.8)), np.log(C),
                         np.log(E.min() * rng.uniform(0.85, 1.0))])

    starts = ([np.asarray(x0, float)] if x0 is not None else []) + [start(rng) for _ in range(restarts)]
    best = None
    for x in starts:
        try:
            r = least_squares(resid, x, method="trf", max_nfev=max_nfev, x_scale="jac")
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or r.cost < best.cost:
            best = r
    if best is None or best.cost >= 1e5:
        raise FitError(f"{law}: the optimiser found no finite fit from any start")
    with np.errstate(all="ignore"):
        f = make(best.x)
    vals = {k: float(getattr(f, k)) for k in ("S_opt", "S_2", "C", "E_min", "A_1", "A_0")}
    if not all(np.isfinite(v) for v in vals.values()):
        raise FitError(f"{law}: the best fit is degenerate (non-finite parameters)")
    f = dataclasses.replace(f, **vals)
    fit = dataclasses.replace(f, rmse_log=_rmse_log(f(S), E))
    object.__setattr__(fit, "_x", best.x)
    return fit


def _fit_free(S, E) -> RevisedFit:
    """Knots between data points; each piece least squares on its own points (no continuity)."""
    S, E = check_points(S, E, 5, "revised E(S) (free)")
    _interior_minimum(S, E, "revised E(S) (free)")
    n, best = S.size, None
    logE = np.log(E)
    for a in [0] + list(range(3, n - 4)):            # points on the inverse-linear piece
        for b in range(3, n - a - 1):                 # ... on the quadratic; the rest (>= 2) linear
            inv, quad, lin = slice(0, a), slice(a, a + b), slice(a + b, n)
            if a and S[inv].size < 3:
                continue
            pieces = _free_pieces(S, E, inv, quad, lin)
            if pieces is None:
                continue
            f = RevisedFit(**pieces, form="free", rmse_log=0.0, n=n)
            pred = f(S)
            if not np.all(np.isfinite(pred)) or np.any(pred <= 0):
                continue
            sse = float(np.sum((np.log(pred) - logE) ** 2))
            if best is None or sse < best[0]:
                best = (sse, f)
    if best is None:
        raise FitError(f"revised E(S) (free): no split of the {n} points gives >= 3 quadratic and >= 2 "
                       "linear points with a convex quadratic and a positive slope")
    f = best[1]
    return dataclasses.replace(f, rmse_log=_rmse_log(f(S), E))


def _free_pieces(S, E, inv, quad, lin):
    Sq, Eq = S[quad], E[quad]
    c2, c1, c0 = np.polyfit(Sq, Eq, 2)
    if c2 <= 0:
        return None
    S_opt = -c1 / (2 * c2)
    E_min = c0 - c1 ** 2 / (4 * c2)
    A_1, A_0 = np.polyfit(S[lin], E[lin], 1)
    if A_1 <= 0 or E_min <= 0:
        return None
    S_2 = 0.5 * (S[quad][-1] + S[lin][0])
    if S[inv].size:
        Si, Ei = S[inv], E[inv]
        best = None
        for f in np.linspace(0.02, 0.98, 25):
            s0 = f * Si[0]
            X = np.stack([1 / (Si - s0), np.ones_like(Si)], 1)
            coef, *_ = np.linalg.lstsq(X, Ei, rcond=None)
            sse = float(np.sum((X @ coef - Ei) ** 2))
            if coef[0] > 0 and (best is None or sse < best[0]):
                best = (sse, s0, *coef)
        if best is None:
            return None
        _, S_min, B_m1, B_0 = best
        S_1 = 0.5 * (Si[-1] + Sq[0])
    else:   # no point in the large-batch regime: the inverse-linear piece is not identified
        S_min, B_m1, B_0, S_1 = 0.0, np.nan, np.nan, S[0] * (1 - 1e-9)
    return dict(S_min=float(S_min), B_m1=float(B_m1), B_0=float(B_0), C=float(c2), S_opt=float(S_opt),
                E_min=float(E_min), A_1=float(A_1), A_0=float(A_0), S_1=float(S_1), S_2=float(S_2))


# ---------------------------------------------------------------------------
# Uncertainty and held-out error.

def bootstrap(fitter: Callable, S, E, n: int = 200, seed: int = 0, keys=("B_min", "B_opt"),
              level: float = 0.9) -> dict:
    """Residual bootstrap in log E: refit on fit(S) * exp(resampled residuals).

    Returns {key: (lo, hi)} percentile intervals at `level`, plus 'n_ok' (refits that worked).
    Resampling points instead would leave out whole regimes of a 7-point curve."""
    S, E = check_points(S, E, 3, "bootstrap")
    fit = fitter(S, E)
    pred = fit(S)
    res = np.log(E) - np.log(pred)
    res = res - res.mean()
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in keys}
    warm = getattr(fit, "_x", None)
    for _ in range(n):
        Eb = pred * np.exp(rng.choice(res, res.size, replace=True))
        try:
            fb = (fitter(S, Eb, restarts=0, x0=warm, max_nfev=400) if warm is not None else fitter(S, Eb))
        except FitError:
            continue
        for k in keys:
            draws[k].append(getattr(fb, k))
    out = {"n_ok": len(draws[keys[0]])}
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    for k in keys:
        v = np.asarray(draws[k], float)
        v = v[np.isfinite(v)]
        out[k] = tuple(float(x) for x in np.percentile(v, q)) if v.size >= 10 else (np.nan, np.nan)
    return out


def loo_error(fitter: Callable, S, E) -> dict:
    """Leave each point (batch size) out, fit the rest, predict its E.

    rmse_log: RMSE of log E over the interior points (an interpolation: the smallest and the
    largest batch are extrapolations, where a law with an asymptote may predict inf);
    rmse_log_all over every point; errors per point (sorted by S); failed: points whose fit
    raised FitError (with the first reason)."""
    S, E = check_points(S, E, 1, "leave-one-out")
    errs, failed, reason = [], 0, ""
    for i in range(S.size):
        keep = np.arange(S.size) != i
        try:
            p = float(fitter(S[keep], E[keep])(S[i:i + 1])[0])
        except FitError as ex:
            failed, reason = failed + 1, reason or str(ex)
            errs.append(np.nan)
            continue
        errs.append(np.log(p) - np.log(E[i]) if np.isfinite(p) and p > 0 else np.inf)
    e = np.asarray(errs, float)
    rms = lambda v: float(np.sqrt(np.mean(v[~np.isnan(v)] ** 2))) if np.any(~np.isnan(v)) else np.nan
    return {"rmse_log": rms(e[1:-1]), "rmse_log_all": rms(e), "errors": e.tolist(),
            "n": int(np.sum(~np.isnan(e))), "failed": failed, "reason": reason}

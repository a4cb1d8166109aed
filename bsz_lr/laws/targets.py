"""Steps and tokens to reach target losses, read from loss curves (batch-size paper, section 4).

S_B(L) is the first step at which the (smoothed) held-out loss of a constant-batch run is
<= L, interpolated in log-step between the two evaluations around the crossing; E = B * S.
A run that never reaches L is *censored*: kept, with the lowest loss it did reach, as evidence
that its batch is below B_min(L) (or that its budget was too short: `slope_end` says whether
the curve was still falling).  Targets reached at or before the end of warmup are excluded.

    >>> c = crossings(steps, losses, targets, batch_tokens=B * T, warmup_steps=w)
    >>> c.steps, c.tokens, c.censored         # arrays over targets (NaN where censored)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .power import FitError

__all__ = ["Crossings", "smooth_curve", "crossings", "target_levels"]


def smooth_curve(loss, window: int = 3) -> np.ndarray:
    """Centered moving average over `window` evaluations (shrinking at the ends); 1 = none."""
    loss = np.asarray(loss, float)
    if window <= 1 or loss.size < 3:
        return loss.copy()
    h = window // 2
    return np.array([loss[max(0, i - h):i + h + 1].mean() for i in range(loss.size)])


@dataclasses.dataclass(frozen=True)
class Crossings:
    targets: np.ndarray        # [n_targets]
    steps: np.ndarray          # S (NaN: censored or excluded)
    tokens: np.ndarray         # E = batch_tokens * S
    censored: np.ndarray       # bool: never reached within the run
    early: np.ndarray          # bool: reached during warmup / at the first evaluation (excluded)
    batch_tokens: float
    min_loss: float            # lowest smoothed loss the run reached
    slope_end: float           # d loss / d log step over the last quarter of the evaluations


def crossings(steps, loss, targets, batch_tokens: float, warmup_steps: float = 0.0,
              window: int = 3) -> Crossings:
    """First crossing of each target by the smoothed curve; see the module docstring."""
    steps, loss = np.asarray(steps, float), np.asarray(loss, float)
    ok = np.isfinite(steps) & np.isfinite(loss) & (steps > 0)
    steps, loss = steps[ok], loss[ok]
    if steps.size < 2:
        raise FitError(f"crossings: need >= 2 evaluations after step 0, got {steps.size}")
    order = np.argsort(steps)
    steps, y = steps[order], smooth_curve(loss[order], window)
    targets = np.asarray(targets, float)
    S = np.full(targets.shape, np.nan)
    cens, early = np.zeros(targets.shape, bool), np.zeros(targets.shape, bool)
    logs = np.log(steps)
    for j, L in enumerate(targets):
        below = np.nonzero(y <= L)[0]
        if below.size == 0:
            cens[j] = True
            continue
        i = int(below[0])
        if i == 0:
            early[j] = True
            continue
        # linear in log step between evaluations i-1 (above L) and i (at or below L)
        w = (y[i - 1] - L) / (y[i - 1] - y[i])
        s = float(np.exp(logs[i - 1] + w * (logs[i] - logs[i - 1])))
        if s <= warmup_steps:
            early[j] = True
            continue
        S[j] = s
    q = max(2, steps.size // 4)
    slope = float(np.polyfit(logs[-q:], y[-q:], 1)[0])
    return Crossings(targets, S, S * batch_tokens, cens, early, float(batch_tokens), float(y.min()), slope)


def target_levels(curves, n: int = 6, frac_budget: float = 0.05, margin: float = 0.02,
                  spacing: str = "geometric") -> np.ndarray:
    """n target losses from the best run's loss at ~`frac_budget` of its budget (hi) down to just
    above (`margin` x (hi - lo)) the lowest loss any run reaches (lo) (spec section 4).

    spacing "geometric": geometric in L; "gap": geometric in the gap L - lo, so the levels crowd
    towards the lowest loss, where the batches separate (small ones plateau) and E(S) bends.
    curves: [(steps, loss)] of the runs of one model; the best run is the one ending lowest."""
    if spacing not in ("geometric", "gap"):
        raise ValueError(f"target_levels: spacing must be 'geometric' or 'gap', got {spacing!r}")
    ends, best = [], None
    for steps, loss in curves:
        steps, loss = np.asarray(steps, float), np.asarray(loss, float)
        m = np.isfinite(loss) & (steps > 0)
        if m.sum() < 2:
            continue
        y = smooth_curve(loss[m])
        ends.append(y.min())
        if best is None or y.min() < best[1].min():
            best = (steps[m], y)
    if best is None:
        raise FitError("target_levels: no run has >= 2 evaluations")
    s, y = best
    hi = float(np.interp(np.log(frac_budget * s[-1]), np.log(s), y))
    floor = float(min(ends))
    lo = floor + margin * (hi - floor)
    if not hi > lo:
        raise FitError(f"target_levels: the loss at {frac_budget:.0%} of the budget ({hi:.4g}) is not above "
                       f"the lowest loss ({lo:.4g})")
    if spacing == "gap":
        return floor + np.geomspace(hi - floor, lo - floor, n)
    return np.geomspace(hi, lo, n)

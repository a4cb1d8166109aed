"""Optimizer comparisons over stored runs (the Mousse paper's protocol): best LR per arm, final
losses over seeds, and the steps one arm needs to reach another's final loss.

An *arm* is everything that identifies a training recipe except the peak LR and the seed:
(d_model, optim.name, and the Mousse / Muon fields that differ from their defaults), so the
ablations are arms of their own.

    >>> best = best_lrs(runs)                     # {arm: BestLR(lr, loss, edge)}
    >>> s = seed_summary(runs)                    # {arm: SeedSummary(mean, std, n, ...)}
    >>> steps_to_reach(curve_of_mousse, target=final_loss_of_muon)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .power import FitError
from .targets import crossings

__all__ = ["ARM_FIELDS", "arm", "arm_label", "BestLR", "best_lrs", "tuned_arms", "SeedSummary", "seed_summary",
           "val_curve", "steps_to_reach", "tuned_runs", "reach_ratios"]

# optim fields that make an ablation arm, with the value under which they are not an ablation
ARM_FIELDS = {"mousse_alpha": 0.125, "mousse_trace_norm": True, "mousse_graft": True, "mousse_sides": "both",
              "mousse_refresh": 10, "ns_dtype": "bfloat16", "nesterov": False}


def arm(cfg: dict) -> tuple:
    o = cfg["optim"]
    extra = tuple(sorted((k, o.get(k, v)) for k, v in ARM_FIELDS.items()
                         if o["name"] != "adamw" and o.get(k, v) != v))
    return (cfg["model"]["d_model"], o["name"]) + extra


def arm_label(a: tuple) -> str:
    names = {"adamw": "AdamW", "muon": "Muon", "mousse": "Mousse"}
    short = {"mousse_alpha": "alpha", "mousse_trace_norm": "trace norm", "mousse_graft": "grafting",
             "mousse_sides": "sides", "mousse_refresh": "T", "ns_dtype": "NS", "nesterov": "Nesterov"}
    extra = ", ".join(f"{short[k]} {'off' if v is False else 'on' if v is True else v}" for k, v in a[2:])
    return names.get(a[1], a[1]) + (f" ({extra})" if extra else "")


def _final(run: dict) -> float:
    st = run["status"]
    L = st.get("final_val_loss")
    return math.inf if st.get("status") == "diverged" or L is None or not np.isfinite(L) else float(L)


@dataclasses.dataclass(frozen=True)
class BestLR:
    lr: float
    loss: float
    lrs: tuple             # every LR tried
    edge: bool             # the best is the smallest or largest LR tried: the grid should extend


def best_lrs(runs: list[dict], seed: int = 0) -> dict[tuple, BestLR]:
    """Per arm, the peak LR with the lowest final held-out loss among the runs with train.seed =
    seed (diverged runs count as +inf)."""
    by = {}
    for r in runs:
        if r["config"]["train"]["seed"] == seed and r["status"].get("status") in ("completed", "diverged"):
            by.setdefault(arm(r["config"]), []).append((r["config"]["optim"]["lr"], _final(r)))
    out = {}
    for a, pts in by.items():
        pts.sort()
        lr, L = min(pts, key=lambda p: p[1])
        lrs = tuple(p[0] for p in pts)
        out[a] = BestLR(lr, L, lrs, len(lrs) > 1 and lr in (lrs[0], lrs[-1]))
    return out


def tuned_arms(runs: list[dict], sizes, optimizers=("adamw", "muon", "mousse"), ratio: float = 0.25) -> list[tuple]:
    """[(model.size, optim.name, best LR, optim.adam_lr_ratio)] for a Derived grid: each named size's
    best LR per optimizer in `runs` (Muon / Mousse with AdamW at `ratio` x their LR on the rest)."""
    from ..config import SIZES
    best = best_lrs(runs)
    out = []
    for size in sizes:
        for name in optimizers:
            b = best.get((SIZES[size]["d_model"], name))
            if b is None:
                raise FitError(f"no {name} runs of size {size} among the tuning runs")
            out.append((size, name, b.lr, 1.0 if name == "adamw" else ratio))
    return out


@dataclasses.dataclass(frozen=True)
class SeedSummary:
    lr: float
    losses: tuple          # final held-out loss per seed (sorted by seed)
    seeds: tuple
    mean: float
    std: float             # sample std (ddof 1); nan with one seed
    hashes: tuple


def seed_summary(runs: list[dict], lrs: dict | None = None) -> dict[tuple, SeedSummary]:
    """Per arm (at lrs[arm] when given, else the arm's only LR), the final losses over seeds."""
    by = {}
    for r in runs:
        if r["status"].get("status") not in ("completed", "diverged"):
            continue
        a = arm(r["config"])
        lr = r["config"]["optim"]["lr"]
        if lrs is not None and (a not in lrs or not math.isclose(lr, lrs[a], rel_tol=1e-9)):
            continue
        by.setdefault(a, []).append((r["config"]["train"]["seed"], _final(r), r["hash"], lr))
    out = {}
    for a, pts in by.items():
        pts.sort()
        if len({p[3] for p in pts}) > 1:
            raise FitError(f"seed summary: arm {arm_label(a)} has several LRs {sorted({p[3] for p in pts})}; "
                           "pass lrs")
        L = np.array([p[1] for p in pts])
        out[a] = SeedSummary(pts[0][3], tuple(L), tuple(p[0] for p in pts), float(np.mean(L)),
                             float(np.std(L, ddof=1)) if L.size > 1 else math.nan, tuple(p[2] for p in pts))
    return out


def val_curve(run: dict) -> tuple[np.ndarray, np.ndarray]:
    """(steps, held-out losses) after step 0."""
    ev = [(x["step"], x["val_loss"]) for x in run["metrics"] if "val_loss" in x and x["step"] > 0]
    return np.array([e[0] for e in ev], float), np.array([e[1] for e in ev], float)


def steps_to_reach(steps, losses, target: float) -> float:
    """The first step at which the held-out curve reaches `target` (linear in log step between
    evaluations, no smoothing); nan if it never does."""
    try:
        c = crossings(steps, losses, [target], batch_tokens=1.0, window=1)
    except FitError:
        return math.nan
    return float(c.steps[0]) if np.isfinite(c.steps[0]) else math.nan


def tuned_runs(tuning: list[dict], *others: list[dict]) -> dict[tuple, dict[int, dict]]:
    """{arm: {seed: run}}: the tuning runs' seed-0 run at each arm's best LR, plus every run of the
    other experiments (their seeds at that LR, and arms of their own such as ablations)."""
    best = best_lrs(tuning)
    out: dict = {}
    for r in tuning:
        a = arm(r["config"])
        if r["config"]["train"]["seed"] == 0 and a in best and math.isclose(r["config"]["optim"]["lr"], best[a].lr):
            out.setdefault(a, {})[0] = r
    for runs in others:
        for r in runs:
            if r["status"].get("status") in ("completed", "diverged"):
                out.setdefault(arm(r["config"]), {})[r["config"]["train"]["seed"]] = r
    return out


def reach_ratios(by_seed_a: dict[int, dict], by_seed_b: dict[int, dict]) -> list[tuple[int, float]]:
    """Per seed present in both: the steps arm a needs to reach arm b's final held-out loss, over
    b's steps (< 1: a gets there first; nan: never)."""
    out = []
    for s in sorted(set(by_seed_a) & set(by_seed_b)):
        sb, Lb = val_curve(by_seed_b[s])
        sa, La = val_curve(by_seed_a[s])
        if not sb.size or not sa.size:
            continue
        out.append((s, steps_to_reach(sa, La, float(Lb[-1])) / float(sb[-1])))
    return out

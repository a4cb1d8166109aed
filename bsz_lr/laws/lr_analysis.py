"""A stored LR ladder end to end (LR paper, Fitting paradigm): Eq. 4, Eq. 2, Eq. 6, the band
estimator, the held-out size and the search-cost accounting.

Input: the runs of an experiment with decay branches (store.load_runs).  Every branch gives one
point (N, eta, D, post-decay held-out loss); a diverged run's points are +inf (they bound the
optimum from one side but are never fitted), and a branch whose parent diverged before it could
start is +inf too.  One `LadderAnalysis` per FFN kind (dense, moe):

* eq4[(N, eta)]      Eq. 4, L(D) = L_0 + A D^-gamma over the C_D branch points, and `eq4_check`:
                     the same law fitted without the largest D, its prediction there against the
                     measured loss (does the law extrapolate?)
* eq2[(N, D)]        Eq. 2 parabola in log eta over the near-optimal points (or the reason none)
* law, law_total     Eq. 6 over the Eq. 2 optima, N = active / total non-embedding parameters
* band_law           Eq. 6 over the near-optimal band (every run within `band_rel` of its group's best)
* heldout            Eq. 6 without the largest N, and its eta* predicted at (largest N, largest D)
* cost               the search-cost table (`search_cost`)

    >>> from bsz_lr.store import load_runs
    >>> a = analyse_lr_ladder(load_runs("results", "lr_ladder", "cpu"))["dense"]
    >>> a.law.a, a.law.b, a.law.r2, a.heldout.eta_pred
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .lr import LRLaw, LRParabola, band_points, fit_lr_law, fit_lr_parabola
from .power import FitError, PowerLawFit, fit_power_law

__all__ = ["LadderPoint", "ladder_points", "LadderAnalysis", "Heldout", "analyse_lr_ladder", "search_cost",
           "heldout_lrs"]


@dataclasses.dataclass(frozen=True)
class LadderPoint:
    ffn: str
    d_model: int
    n_layers: int
    N: int                # non-embedding parameters, active (MoE: top_k of E experts)
    N_total: int          # non-embedding parameters, every expert
    n_compute: int        # parameters in matmuls per token (all active ones but the embedding table)
    lr: float
    D: int                # tokens at the end of the decay branch
    start: int            # tokens at its start (the stable run's checkpoint)
    loss: float           # post-decay held-out loss; +inf: the run (or its parent) diverged
    hash: str


def _n(status: dict, cfg: dict) -> tuple[int, int, int]:
    p, m = status.get("params") or {}, cfg["model"]
    inactive = int(p.get("total", 0)) - int(p.get("active", 0))
    return (int(p.get("non_embedding", 0)) - inactive, int(p.get("non_embedding", 0)),
            int(p.get("active", 0)) - m["vocab_size"] * m["d_model"])


def ladder_points(runs: list[dict]) -> list[LadderPoint]:
    """One point per decay branch (train.init_from set); diverged branches and the branches a
    diverged parent never started are +inf."""
    by_hash = {r["hash"]: r for r in runs}
    out = []
    for r in runs:
        c, st = r["config"], r["status"]
        if not c["train"]["init_from"] or st.get("status") not in ("completed", "diverged"):
            continue                     # stable runs; runs still training or failed (not a result)
        loss = st.get("final_val_loss")
        loss = math.inf if st.get("status") == "diverged" or loss is None or not np.isfinite(loss) else float(loss)
        params = st if st.get("params") else by_hash.get(c["train"]["init_from"], {}).get("status", {})
        out.append(LadderPoint(c["model"]["ffn"], c["model"]["d_model"], c["model"]["n_layers"], *_n(params, c),
                               float(c["optim"]["lr"]), int(c["train"]["tokens"]), int(c["train"]["init_tokens"]), loss,
                               r["hash"]))
    # Parents that diverged before a branch point: those branches can never run.
    for r in runs:
        c, st = r["config"], r["status"]
        if c["train"]["init_from"] or st.get("status") != "diverged" or not st.get("params"):
            continue
        have = {p.D for p in out if by_hash[p.hash]["config"]["train"]["init_from"] == r["hash"]}
        for start in c["train"]["save_at_tokens"]:
            # branches end at start / (1 - fraction); the fraction is read from a sibling if any
            sib = [p for p in out if by_hash[p.hash]["config"]["train"]["init_from"] == r["hash"]]
            f = by_hash[sib[0].hash]["config"]["schedule"]["decay_fraction"] if sib else 0.2
            D = math.ceil(start / (1 - f))
            if D not in have:
                out.append(LadderPoint(c["model"]["ffn"], c["model"]["d_model"], c["model"]["n_layers"],
                                       *_n(st, c), float(c["optim"]["lr"]), D, int(start), math.inf, r["hash"]))
    return sorted(out, key=lambda p: (p.ffn, p.N, p.lr, p.D))


@dataclasses.dataclass
class Heldout:
    N: int                       # the held-out (largest) size
    D: int                       # the largest D
    law: LRLaw | str             # Eq. 6 without it
    eta_pred: float              # its prediction at (N, D) (nan when the law failed)
    eta_measured: LRParabola | str   # Eq. 2 at (N, D) from the ladder itself


@dataclasses.dataclass
class LadderAnalysis:
    ffn: str
    points: list[LadderPoint]
    sizes: list[int]                       # N (active non-embedding), ascending
    totals: dict                           # N -> N_total
    Ds: list[int]
    lrs: dict                              # N -> the LRs tried
    eq4: dict                              # (N, lr) -> PowerLawFit | reason
    eq4_check: dict                        # (N, lr) -> (predicted, measured) at the largest D
    eq2: dict                              # (N, D) -> LRParabola | reason
    law: LRLaw | str
    law_total: LRLaw | str
    band_law: LRLaw | str
    heldout: Heldout
    cost: list[dict]

    def loss(self, N, lr, D) -> float:
        for p in self.points:
            if p.N == N and p.lr == lr and p.D == D:
                return p.loss
        return math.nan

    def optima(self):
        """(N, D, eta*) of every (N, D) with an Eq. 2 optimum."""
        return [(n, d, f.eta_star) for (n, d), f in sorted(self.eq2.items()) if isinstance(f, LRParabola)]


def _try(fn, *a, **k):
    try:
        return fn(*a, **k)
    except FitError as e:
        return str(e)


def _law(opt, use_total: dict | None = None, n_boot: int = 1000):
    if not opt:
        return "Eq. 6: no (N, D) group has an Eq. 2 optimum"
    N = [use_total[n] if use_total else n for n, _, _ in opt]
    return _try(fit_lr_law, N, [d for _, d, _ in opt], [e for _, _, e in opt], n_boot=n_boot)


def analyse_lr_ladder(runs: list[dict], band: float = 3.0, band_rel: float = 0.0025,
                      n_boot: int = 1000, with_eq4: bool = True) -> dict[str, LadderAnalysis]:
    """{ffn: LadderAnalysis} for the ladder's branch runs (see the module docstring).
    with_eq4=False skips Eq. 4 and the search-cost table (they are not needed for eta*)."""
    pts = ladder_points(runs)
    out = {}
    for ffn in sorted({p.ffn for p in pts}):
        P = [p for p in pts if p.ffn == ffn]
        sizes = sorted({p.N for p in P})
        Ds = sorted({p.D for p in P})
        lrs = {n: sorted({p.lr for p in P if p.N == n}) for n in sizes}
        totals = {p.N: p.N_total for p in P}
        eq4, eq4_check, eq2 = {}, {}, {}
        for n in sizes:
            for lr in lrs[n] if with_eq4 else []:
                g = sorted((p.D, p.loss) for p in P if p.N == n and p.lr == lr and np.isfinite(p.loss))
                if len(g) < len(Ds):
                    eq4[(n, lr)] = f"Eq. 4: {len(Ds) - len(g)} of {len(Ds)} data sizes missing or diverged"
                    continue
                eq4[(n, lr)] = _try(fit_power_law, *zip(*g))
                short = _try(fit_power_law, *zip(*g[:-1]))
                eq4_check[(n, lr)] = (short(g[-1][0]) if isinstance(short, PowerLawFit) else math.nan, g[-1][1])
            for d in Ds:
                g = [(p.lr, p.loss) for p in P if p.N == n and p.D == d]
                eq2[(n, d)] = _try(fit_lr_parabola, *zip(*g), band=band) if len(g) >= 3 else \
                    f"Eq. 2: {len(g)} LRs at this (N, D)"
        a = LadderAnalysis(ffn, P, sizes, totals, Ds, lrs, eq4, eq4_check, eq2, "", "", "", None, [])
        opt = a.optima()
        a.law = _law(opt, n_boot=n_boot)
        a.law_total = _law(opt, totals, n_boot=n_boot)
        fin = [p for p in P if np.isfinite(p.loss)]
        try:
            a.band_law = fit_lr_law(*band_points([p.N for p in fin], [p.D for p in fin], [p.lr for p in fin],
                                                 [p.loss for p in fin], rel=band_rel), n_boot=n_boot)
        except FitError as e:
            a.band_law = str(e)
        N_max, D_max = sizes[-1], Ds[-1]
        law = _law([o for o in opt if o[0] != N_max], n_boot=n_boot)
        pred = float(law(N_max, D_max)) if isinstance(law, LRLaw) else math.nan
        a.heldout = Heldout(N_max, D_max, law, pred, eq2.get((N_max, D_max), "not trained"))
        a.cost = search_cost(a) if with_eq4 else []
        out[ffn] = a
    return out


def heldout_lrs(runs: list[dict], ffns=("dense",), factors=(0.5, 1.0, 2.0)) -> list[tuple[str, float]]:
    """The held-out check's (ffn, LR) arms: per FFN kind the Eq. 6 prediction (fitted without the
    largest size) x factors.  A failed fit is a FitError with its reason (the Derived value then
    fails with it)."""
    lad = analyse_lr_ladder(runs, n_boot=0, with_eq4=False)
    out = []
    for ffn in ffns:
        a = lad.get(ffn)
        if a is None:
            raise FitError(f"held-out check: no {ffn} branch runs in the ladder")
        if not isinstance(a.heldout.law, LRLaw):
            raise FitError(f"held-out check ({ffn}): {a.heldout.law}")
        out += [(ffn, float(f"{a.heldout.eta_pred * f:.4g}")) for f in factors]
    return out


def _log2_err(eta, ref) -> float:
    return abs(math.log2(eta / ref)) if np.isfinite(eta) and np.isfinite(ref) and eta > 0 and ref > 0 else math.nan


def search_cost(a: LadderAnalysis, c_eta: int = 3) -> list[dict]:
    """Runs and training FLOPs (6 x matmul parameters x tokens) of the three search strategies
    over this ladder's (N, D) grid, and how far each one's eta* lands from the full grid's.

    full grid, O(n^3)      every (N, eta, D) trained from scratch; eta* = the best measured LR
    Eq. 2, O(n^2 C_eta)    per (N, D) only the C_eta LRs x2 apart around the optimum (from scratch);
                           eta* = the parabola's vertex through them
    Eq. 2 + Eq. 4,         per N the same C_eta LRs, each one stable run with C_D - 1 decay branches
    O(n C_D C_eta)         (the largest D is not trained): Eq. 4 extrapolates each to the largest D,
                           Eq. 2 through the extrapolated losses gives eta* there
    The error column is |log2(eta* / full grid's eta*)| at the largest D, median and max over N
    (the full grid's own resolution is a factor 2, so errors below 0.5 are within its grid step).
    """
    flops = {p.N: 6.0 * p.n_compute for p in a.points}
    Ds, D_max = a.Ds, a.Ds[-1]
    grid_best, eq2_err, eq24_err = {}, [], []
    rows_runs = {"full": 0, "eq2": 0, "eq24": 0, "ran": 0}
    rows_flops = {"full": 0.0, "eq2": 0.0, "eq24": 0.0, "ran": 0.0}
    for n in a.sizes:
        lrs = a.lrs[n]
        rows_runs["full"] += len(lrs) * len(Ds)
        rows_flops["full"] += len(lrs) * sum(flops[n] * d for d in Ds)
        rows_runs["eq2"] += c_eta * len(Ds)
        rows_flops["eq2"] += c_eta * sum(flops[n] * d for d in Ds)
        rows_runs["eq24"] += c_eta * len(Ds)           # one stable run + C_D - 1 branches per LR
        starts = {p.D: p.start for p in a.points if p.N == n}
        stable = starts[Ds[-2]] if len(Ds) > 1 else 0   # the stable run ends at the last branch start
        rows_flops["eq24"] += c_eta * flops[n] * (stable + sum(d - starts[d] for d in Ds[:-1]))
        rows_runs["ran"] += len(lrs) * (1 + len(Ds))
        rows_flops["ran"] += len(lrs) * flops[n] * (starts[D_max] + sum(d - starts[d] for d in Ds))
        L = np.array([a.loss(n, lr, D_max) for lr in lrs])
        if not np.isfinite(L).any():
            continue
        i = int(np.argmin(L))
        grid_best[n] = lrs[i]
        sel = lrs[max(0, min(i - c_eta // 2, len(lrs) - c_eta)):][:c_eta]
        p = _try(fit_lr_parabola, sel, [a.loss(n, lr, D_max) for lr in sel], band=2 ** (c_eta // 2) + 0.01)
        eq2_err.append(_log2_err(p.eta_star, lrs[i]) if isinstance(p, LRParabola) else math.nan)
        ext = []
        for lr in sel:
            g = sorted((d, a.loss(n, lr, d)) for d in Ds[:-1])
            f = _try(fit_power_law, *zip(*g)) if all(np.isfinite(x[1]) for x in g) else "diverged"
            ext.append(float(f(D_max)) if isinstance(f, PowerLawFit) else math.nan)
        p = _try(fit_lr_parabola, sel, ext, band=2 ** (c_eta // 2) + 0.01)
        eq24_err.append(_log2_err(p.eta_star, lrs[i]) if isinstance(p, LRParabola) else math.nan)

    def err(e):
        e = np.array(e, float)
        ok = e[np.isfinite(e)]
        return {"err_median": float(np.median(ok)) if ok.size else math.nan,
                "err_max": float(ok.max()) if ok.size else math.nan, "failed": int((~np.isfinite(e)).sum())}

    n = len(a.sizes)
    return [
        {"strategy": "full grid", "order": "O(n^3)", "runs": rows_runs["full"], "flops": rows_flops["full"],
         "err_median": 0.0, "err_max": 0.0, "failed": 0, "n": n},
        {"strategy": "Eq. 2", "order": "O(n^2 C_eta)", "runs": rows_runs["eq2"], "flops": rows_flops["eq2"],
         **err(eq2_err), "n": n},
        {"strategy": "Eq. 2 + Eq. 4", "order": "O(n C_D C_eta)", "runs": rows_runs["eq24"],
         "flops": rows_flops["eq24"], **err(eq24_err), "n": n},
        {"strategy": "this ladder as run (stable + C_D branches per LR)", "order": "n n_eta (1 + C_D)",
         "runs": rows_runs["ran"], "flops": rows_flops["ran"], "err_median": 0.0, "err_max": 0.0, "failed": 0,
         "n": n},
    ]

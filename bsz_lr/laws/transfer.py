"""The Transfer paradigm read from stored sweeps (LR paper, spec section 2), and the arms of the
Fitting-vs-Transfer comparison at a target size.

transfer_optima   per arm (parametrization, depth rule, ...) and per width / depth: the Eq. 2
                  vertex of loss vs LR (or weight decay), else the best measured value
proxy_horizon     a proxy's optima at several token counts -> the horizon exponent beta and the
                  transferred LR at a longer target horizon, with and without the correction
fit_vs_transfer_lrs  the peak LR of each arm at the target: Eq. 6 (Fitting, SP), muTransfer from the
                  proxy with and without the horizon rule, and the direct sweep's optimum
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .lr import HorizonFit, fit_horizon, fit_lr_parabola
from .power import FitError

__all__ = ["transfer_optima", "final_loss", "ProxyHorizon", "proxy_runs", "proxy_horizon", "fitting_lr",
           "direct_lr", "ARMS", "arms_of"]

# The arms of the comparison at the target (lr_fit_vs_transfer): name -> (parametrization, what sets the LR)
ARMS = {"fitting": ("sp", "Eq. 6 fitted on the SP ladder (lr_ladder), at the target's N and D"),
        "transfer": ("mup", "muP from the base-width proxy's optimum at its longest horizon below the target"),
        "transfer+horizon": ("mup", "the same, x (D_target / D_proxy)^-beta, beta fitted on the proxy"),
        "direct": ("sp", "the Eq. 2 optimum of an SP LR sweep at the target itself")}


def _parametrization(cfg: dict) -> str:
    return cfg["model"]["parametrization"]


def final_loss(run: dict) -> float:
    """A finished run's final held-out loss; +inf for a diverged run (it bounds an optimum, never fits
    one); nan for a run that did not finish."""
    st = run["status"]
    if st.get("status") == "diverged":
        return math.inf
    L = st.get("final_val_loss") if st.get("status") == "completed" else None
    return float(L) if L is not None and np.isfinite(L) else math.nan


def transfer_optima(runs: list[dict], axis: str = "d_model", arm=_parametrization,
                    x: str = "lr", band: float = 3.0) -> dict[str, dict[int, dict]]:
    """{arm: {model.<axis>: {"lrs", "losses", "eta_star", "how"}}} (arm: the parametrization by
    default): per width (or depth) the Eq. 2 vertex through the LRs within 3x of the best
    ("parabola"), else the best measured LR ("best", with the reason).  Diverged runs are +inf.
    x: the optim field swept ("lr", or "weight_decay" for the WD transfer); band: Eq. 2's
    near-optimal range (x3 grids need a little more than 3)."""
    by: dict = {}
    for r in runs:
        L = final_loss(r)
        if math.isnan(L):
            continue
        c = r["config"]
        by.setdefault(arm(c), {}).setdefault(c["model"][axis], []).append((c["optim"][x], L))
    out: dict = {}
    for par, widths in by.items():
        for w, pts in sorted(widths.items()):
            pts.sort()
            lrs, L = [p[0] for p in pts], [p[1] for p in pts]
            try:
                p = fit_lr_parabola(lrs, L, band=band)
                eta, how = p.eta_star, "parabola"
            except FitError as e:
                eta, how = lrs[int(np.argmin(L))], f"best measured ({e})"
            out.setdefault(par, {})[w] = {"lrs": lrs, "losses": L, "eta_star": eta, "how": how}
    return out


@dataclass
class ProxyHorizon:
    optima: dict            # proxy tokens D -> {"eta_star", "how", "lrs", "losses"}
    fit: HorizonFit         # beta fitted on the optima at D < target
    d_proxy: int            # the longest proxy horizon below the target
    d_target: int
    eta_uncorrected: float  # eta*(d_proxy)
    eta_corrected: float    # eta*(d_proxy) x (d_target / d_proxy)^-beta


def proxy_runs(runs: list[dict], width_runs: list[dict]) -> list[dict]:
    """The proxy's sweeps: mup_horizon's runs plus mup_width's base-width muP runs (the target horizon)."""
    base = {r["config"]["model"]["d_model"] for r in runs}
    return runs + [r for r in width_runs if r["config"]["model"]["parametrization"] == "mup"
                   and r["config"]["model"]["d_model"] in base]


def proxy_horizon(runs: list[dict], d_target: int, band: float = 3.0) -> ProxyHorizon:
    """The proxy's LR sweeps at several horizons (runs of one model differing in train.tokens and
    optim.lr): eta*(D) per horizon, beta fitted on the horizons shorter than the target, and the
    LR transferred to d_target with and without the horizon rule (parametrization.horizon_lr)."""
    by_D = transfer_optima(runs, axis="d_model", arm=lambda c: c["train"]["tokens"], band=band)
    if any(len(widths) != 1 for widths in by_D.values()):
        raise FitError("horizon transfer: the proxy runs must be of one width")
    optima = {D: next(iter(widths.values())) for D, widths in sorted(by_D.items())}
    short = {D: o for D, o in optima.items() if D < d_target}
    if len(short) < 2:
        raise FitError(f"horizon transfer: need proxy sweeps at >= 2 horizons below {d_target:,} tokens, "
                       f"got {sorted(short)}")
    fit = fit_horizon(list(short), [o["eta_star"] for o in short.values()], n_boot=0)
    d_proxy = max(short)
    eta = short[d_proxy]["eta_star"]
    return ProxyHorizon(optima, fit, d_proxy, d_target, eta, eta * (d_target / d_proxy) ** -fit.beta)


def fitting_lr(ladder_runs: list[dict], n_target: int, d_target: int, ffn: str = "dense") -> float:
    """The Fitting paradigm's peak LR at the target: Eq. 6 over every (N, D) optimum of the ladder."""
    from .lr import LRLaw
    from .lr_analysis import analyse_lr_ladder
    a = analyse_lr_ladder(ladder_runs, n_boot=0, with_eq4=False).get(ffn)
    if a is None:
        raise FitError(f"Fitting arm: no {ffn} runs in the ladder")
    if not isinstance(a.law, LRLaw):
        raise FitError(f"Fitting arm ({ffn}): {a.law}")
    return float(a.law(n_target, d_target))


def direct_lr(sweep_runs: list[dict], parametrization: str, d_model: int) -> float:
    """The optimum of a direct LR sweep at the target: the Eq. 2 vertex, else the best measured LR."""
    opt = transfer_optima(sweep_runs).get(parametrization, {}).get(d_model)
    if opt is None:
        raise FitError(f"direct arm: no {parametrization} runs at width {d_model} in the sweep")
    return float(opt["eta_star"])


def arms_of(runs: list[dict], sweep_runs: list[dict], proxy: list[dict], d_target: int) -> dict[str, dict]:
    """The comparison's runs by arm: {arm: {"lr", "losses" (one per seed), "mean", "std"}}.

    The arms are told apart by parametrization and LR: the SP run at the direct sweep's optimum is
    "direct" and any other SP LR "fitting"; the muP LRs are matched to the proxy's transfer with and
    without the horizon rule (when both give one LR, the runs count for both arms)."""
    d_model = runs[0]["config"]["model"]["d_model"] if runs else 0
    want = {"direct": ("sp", direct_lr(sweep_runs, "sp", d_model))}
    h = proxy_horizon(proxy, d_target)
    want["transfer"], want["transfer+horizon"] = ("mup", h.eta_uncorrected), ("mup", h.eta_corrected)
    close = lambda a, b: abs(math.log(a / b)) < 1e-3
    out: dict = {}
    for r in runs:
        par, lr, L = r["config"]["model"]["parametrization"], r["config"]["optim"]["lr"], final_loss(r)
        if math.isnan(L):
            continue
        names = [a for a, (p, eta) in want.items() if p == par and close(lr, eta)]
        if not names and par == "sp":
            names = ["fitting"]
        for a in names:
            out.setdefault(a, {"lr": lr, "losses": []})["losses"].append(L)
    for a in out.values():
        L = np.array(a["losses"])
        a["mean"], a["std"] = float(np.mean(L)), float(np.std(L, ddof=1)) if L.size > 1 else math.nan
    return {a: out[a] for a in ARMS if a in out}

"""Figures of the LR paper's Fitting paradigm (spec section 4: Fig. 1, 2 and 6), from stored runs via
laws.lr_analysis only.  Each figure has one row per FFN kind (dense, MoE)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from .figures import _legend, _si, figure
from .laws import LRLaw, LRParabola, PowerLawFit
from .laws.lr_analysis import LadderAnalysis, analyse_lr_ladder

__all__ = ["lr_fig1", "lr_law", "lr_heldout", "lr_search_cost"]

PAPER = {"a": -0.2219, "b": -0.3509}
_CACHE: dict = {}


def _ladders(runs) -> dict[str, LadderAnalysis]:
    key = tuple(sorted((r["hash"], r["status"].get("metrics_sha256", "")) for r in runs))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = analyse_lr_ladder(runs)
    return _CACHE[key]


def _colors(values):
    cmap = plt.get_cmap("viridis")
    v = sorted(set(values))
    return {x: cmap(i / max(1, len(v) - 1)) for i, x in enumerate(v)}


def _kind(ffn: str) -> str:
    return "MoE (4 experts, top-2)" if ffn == "moe" else "dense"


def _logx(ax):
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3)


def _rows(n):
    fig, axes = plt.subplots(n, 2, figsize=(12, 4.2 * n), squeeze=False)
    return fig, axes


@figure("lr_fig1", experiment="lr_ladder")
def lr_fig1(runs: list[dict]):
    """Fig. 1: (a) post-decay loss vs D per LR (largest size) with Eq. 4 fitted on all but the
    largest D and extrapolated to 4x it; (b) loss vs log LR per D with the Eq. 2 parabolas."""
    lad = _ladders(runs)
    fig, axes = _rows(len(lad))
    for (ax, bx), (ffn, a) in zip(axes, lad.items()):
        n = a.sizes[-1]
        col = _colors(a.lrs[n])
        xs = np.geomspace(a.Ds[0] / 1.2, a.Ds[-1] * 4, 100)
        for lr in a.lrs[n]:
            D = np.array(a.Ds)
            L = np.array([a.loss(n, lr, d) for d in a.Ds])
            ok = np.isfinite(L)
            ax.plot(D[ok], L[ok], "o", color=col[lr], ms=5, label=f"LR {lr:g}")
            f = a.eq4.get((n, lr))
            if isinstance(f, PowerLawFit):
                ax.plot(xs, f(xs), "-", color=col[lr], lw=1, alpha=0.7)
            pred, meas = a.eq4_check.get((n, lr), (math.nan, math.nan))
            if np.isfinite(pred):
                ax.plot(a.Ds[-1], pred, "x", color=col[lr], ms=7)
        _logx(ax)
        ax.set_xlabel("tokens D (end of the decay branch)")
        ax.set_ylabel("post-decay held-out loss (nats/byte)")
        ax.set_title(f"(a) {_kind(ffn)}, N = {_si(n)}: Eq. 4 per LR, extrapolated to 4x D\n"
                     "(x: Eq. 4 fitted without the largest D, predicting it)", fontsize=9)
        _legend(ax, fontsize=7, ncol=2)
        dcol = _colors(a.Ds)
        for d in a.Ds:
            lrs = np.array(a.lrs[n])
            L = np.array([a.loss(n, lr, d) for lr in lrs])
            ok = np.isfinite(L)
            bx.plot(lrs[ok], L[ok], "o", color=dcol[d], ms=5, label=f"D = {_si(d)}")
            p = a.eq2.get((n, d))
            if isinstance(p, LRParabola):
                xl = np.geomspace(p.eta_star / 3.2, p.eta_star * 3.2, 80)
                bx.plot(xl, p(xl), "-", color=dcol[d], lw=1.2)
                bx.plot(p.eta_star, p.L_min, "*", color=dcol[d], ms=12, mec="k", mew=0.5)
        _logx(bx)
        best = [min((x for x in (a.loss(n, lr, d) for lr in a.lrs[n]) if np.isfinite(x)), default=np.nan)
                for d in a.Ds]
        best = [x for x in best if np.isfinite(x)]
        if best:                       # every D's valley, not the far walls
            bx.set_ylim(min(best) - 0.03, max(best) + 0.2)
        bx.set_xlabel("peak LR")
        bx.set_ylabel("post-decay held-out loss")
        bx.set_title(f"(b) {_kind(ffn)}, N = {_si(n)}: Eq. 2 parabolas in log LR, minima (stars)", fontsize=9)
        _legend(bx, fontsize=7)
    fig.tight_layout()
    return fig


def _law_text(law, name):
    if not isinstance(law, LRLaw):
        return f"{name}: no fit ({law})"
    return (f"{name}: a = {law.a:.3f} [{law.a_ci[0]:.2f}, {law.a_ci[1]:.2f}], "
            f"b = {law.b:.3f} [{law.b_ci[0]:.2f}, {law.b_ci[1]:.2f}], R$^2$ = {law.r2:.3f}, {law.n} pts")


@figure("lr_law", experiment="lr_ladder")
def lr_law(runs: list[dict]):
    """Fig. 2: log eta* vs log D per N with the Eq. 6 law; predicted vs measured eta* (Eq. 6 and the
    near-optimal band), with the paper's exponents for reference."""
    lad = _ladders(runs)
    fig, axes = _rows(len(lad))
    for (ax, bx), (ffn, a) in zip(axes, lad.items()):
        col = _colors(a.sizes)
        opt = a.optima()
        xs = np.geomspace(a.Ds[0] / 1.2, a.Ds[-1] * 1.2, 50)
        for n in a.sizes:
            pts = [(d, e) for m, d, e in opt if m == n]
            if pts:
                ax.plot(*zip(*pts), "o", color=col[n], ms=6, label=f"N = {_si(n)}")
            if isinstance(a.law, LRLaw):
                ax.plot(xs, a.law(n, xs), "-", color=col[n], lw=1)
            edge = [d for (m, d), f in a.eq2.items() if m == n and not isinstance(f, LRParabola)]
            for d in edge:
                ax.plot(d, a.lrs[n][0], "v", color=col[n], ms=5, alpha=0.5)
        _logx(ax)
        ax.set_yscale("log")
        ax.set_xlabel("tokens D")
        ax.set_ylabel("optimal peak LR eta* (Eq. 2)")
        ax.set_title(f"{_kind(ffn)}: eta*(N, D), lines: Eq. 6 (triangles: no Eq. 2 optimum)\n"
                     + _law_text(a.law, "Eq. 6") + f"\npaper: a = {PAPER['a']}, b = {PAPER['b']}", fontsize=8)
        _legend(ax, fontsize=7)
        lo, hi = [], []
        for law, mk, name in ((a.law, "o", "Eq. 6 (Eq. 2 optima)"), (a.band_law, "s", "near-optimal band")):
            if isinstance(law, LRLaw) and opt:
                meas = np.array([e for _, _, e in opt])
                pred = law(np.array([n for n, _, _ in opt]), np.array([d for _, d, _ in opt]))
                bx.plot(meas, pred, mk, ms=5, alpha=0.8, mfc="none" if mk == "s" else None, label=name)
                lo.append(min(meas.min(), pred.min()))
                hi.append(max(meas.max(), pred.max()))
        h = a.heldout
        if np.isfinite(h.eta_pred) and isinstance(h.eta_measured, LRParabola):
            bx.plot(h.eta_measured.eta_star, h.eta_pred, "*", ms=14, color="C3", mec="k",
                    label=f"held-out N = {_si(h.N)} at D = {_si(h.D)}")
            lo.append(min(h.eta_pred, h.eta_measured.eta_star))
            hi.append(max(h.eta_pred, h.eta_measured.eta_star))
        if lo:
            r = [min(lo) / 1.3, max(hi) * 1.3]
            bx.plot(r, r, "k:", lw=1)
        _logx(bx)
        bx.set_yscale("log")
        bx.set_xlabel("measured eta* (Eq. 2 vertex)")
        bx.set_ylabel("predicted eta*")
        bx.set_title(f"{_kind(ffn)}: predicted vs measured\n" + _law_text(a.band_law, "band"), fontsize=8)
        _legend(bx, fontsize=7)
    fig.tight_layout()
    return fig


@figure("lr_heldout", experiment="lr_heldout", also=("lr_ladder",))
def lr_heldout(runs: list[dict], others: dict):
    """The held-out check: the largest size's loss vs LR at the largest D (ladder runs and Eq. 2),
    and the runs trained at the eta* that Eq. 6 fitted on the smaller sizes predicts (x0.5, x1, x2)."""
    lad = _ladders(others.get("lr_ladder", []))
    fig, axes = plt.subplots(1, max(1, len(lad)), figsize=(6 * max(1, len(lad)), 4.2), squeeze=False)
    for ax, (ffn, a) in zip(axes[0], lad.items()):
        h = a.heldout
        lrs = np.array(a.lrs[h.N])
        L = np.array([a.loss(h.N, lr, h.D) for lr in lrs])
        ok = np.isfinite(L)
        ax.plot(lrs[ok], L[ok], "o", color="0.4", label="ladder (decay branch)")
        if isinstance(h.eta_measured, LRParabola):
            p = h.eta_measured
            xl = np.geomspace(p.eta_star / 3.2, p.eta_star * 3.2, 80)
            ax.plot(xl, p(xl), "-", color="0.4", lw=1)
            ax.axvline(p.eta_star, color="0.4", ls=":", lw=1, label=f"measured eta* {p.eta_star:.3g}")
        mine = sorted((r["config"]["optim"]["lr"], r["status"].get("final_val_loss", math.nan)) for r in runs
                      if r["config"]["model"]["ffn"] == ffn and r["config"]["model"]["d_model"] == a.points[-1].d_model)
        if mine:
            ax.plot(*zip(*mine), "D", color="C3", ms=7, label="trained from scratch at the prediction x0.5, x1, x2")
        if np.isfinite(h.eta_pred):
            ax.axvline(h.eta_pred, color="C3", ls="--", lw=1, label=f"predicted eta* {h.eta_pred:.3g}")
        _logx(ax)
        ax.set_xlabel("peak LR")
        ax.set_ylabel(f"held-out loss at D = {_si(h.D)}")
        ax.set_title(f"{_kind(ffn)}, N = {_si(h.N)} held out of the Eq. 6 fit", fontsize=9)
        _legend(ax, fontsize=7)
    fig.tight_layout()
    return fig


def _fmt_err(r):
    if r["strategy"] == "full grid" or r["strategy"].startswith("this ladder"):
        return "(reference)" if r["strategy"] == "full grid" else "= full grid"
    if not np.isfinite(r["err_median"]):
        return f"no estimate ({r['failed']} sizes failed)"
    s = f"{2 ** r['err_median']:.2f}x / {2 ** r['err_max']:.2f}x"
    return s + (f", {r['failed']} failed" if r["failed"] else "")


@figure("lr_search_cost", experiment="lr_ladder")
def lr_search_cost(runs: list[dict]):
    """Fig. 6: runs and FLOPs of the three search strategies over the ladder, and how far each
    shortcut's eta* lands from the full grid's (median / max ratio over sizes at the largest D)."""
    lad = _ladders(runs)
    fig, axes = plt.subplots(len(lad), 1, figsize=(11, 1.9 * len(lad) + 0.3), squeeze=False)
    for ax, (ffn, a) in zip(axes[:, 0], lad.items()):
        ax.axis("off")
        full = a.cost[0]["flops"]
        cells = [[r["strategy"], r["order"], f"{r['runs']}", f"{r['flops']:.3g}", f"{r['flops'] / full:.2f}",
                  _fmt_err(r)] for r in a.cost]
        t = ax.table(cellText=cells, colLabels=["strategy", "order", "runs", "FLOPs", "vs full", "eta* vs full grid"],
                     loc="center", cellLoc="left")
        t.auto_set_font_size(False)
        t.set_fontsize(8)
        t.auto_set_column_width(list(range(6)))
        ax.set_title(f"{_kind(ffn)}: {len(a.sizes)} sizes x {len(a.lrs[a.sizes[0]])} LRs x {len(a.Ds)} D "
                     f"(C_eta = 3, C_D = {len(a.Ds) - 1} trained + 1 extrapolated)", fontsize=9)
    fig.tight_layout()
    return fig

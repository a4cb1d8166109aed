"""Figures of the LR paper's Transfer paradigm (muP; spec section 4, Fig. 3), from stored runs only."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from .figures import _legend, figure
from .laws import FitError, fit_lr_parabola

__all__ = ["mup_width", "mup_depth", "mup_wd", "mup_coord", "transfer_optima"]


def _parametrization(cfg: dict) -> str:
    return cfg["model"]["parametrization"]


def transfer_optima(runs: list[dict], axis: str = "d_model", arm=_parametrization,
                    x: str = "lr", band: float = 3.0) -> dict[str, dict[int, dict]]:
    """{arm: {model.<axis>: {"lrs", "losses", "eta_star", "how"}}} (arm: the parametrization by
    default): per width (or depth) the Eq. 2 vertex through the LRs within 3x of the best
    ("parabola"), else the best measured LR ("best", with the reason).  Diverged runs are +inf.
    x: the optim field swept ("lr", or "weight_decay" for the WD transfer); band: Eq. 2's
    near-optimal range (x3 grids need a little more than 3)."""
    by: dict = {}
    for r in runs:
        c, st = r["config"], r["status"]
        if st.get("status") not in ("completed", "diverged"):
            continue
        L = st.get("final_val_loss")
        L = math.inf if st.get("status") == "diverged" or L is None or not np.isfinite(L) else float(L)
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


def _depth_arm(cfg: dict) -> str:
    a = cfg["model"].get("depth_alpha", 0.0)
    return f"branches x (L / {cfg['model'].get('base_n_layers', 0)})^-{a:g}" if a else "SP (no depth scaling)"


@figure("mup_width", experiment="mup_width")
def mup_width(runs: list[dict]):
    """Final held-out loss vs peak LR per width, SP and muP side by side, optima starred."""
    return _transfer_figure(transfer_optima(runs), "d", lambda par, w0: (
        f"muP (base width {w0})" if par == "mup" else "SP"))


@figure("mup_depth", experiment="mup_depth")
def mup_depth(runs: list[dict]):
    """Final held-out loss vs peak LR per depth, without and with depth scaling, optima starred."""
    return _transfer_figure(transfer_optima(runs, axis="n_layers", arm=_depth_arm), "L", lambda par, w0: par)


@figure("mup_wd", experiment="mup_wd")
def mup_wd(runs: list[dict]):
    """Final held-out loss vs weight decay per width under muP, with and without the WD rule."""
    def arm(c):
        return "muP, wd x m (eta x lambda fixed)" if c["model"].get("mup_scale_wd", True) else "muP, plain wd"
    opt = transfer_optima(runs, arm=arm, x="weight_decay", band=3.5)     # the grid is ~x3 apart
    rule, plain = opt.get("muP, wd x m (eta x lambda fixed)", {}), opt.get("muP, plain wd", {})
    for w, o in rule.items():              # at the base width the two arms are the same runs
        if w not in plain and w == min(rule):
            plain[w] = o
    return _transfer_figure({k: v for k, v in (("muP, wd x m (eta x lambda fixed)", rule), ("muP, plain wd", plain))
                             if v}, "d", lambda par, w0: par, xlabel="weight decay (coupled)", what="wd*")


def _transfer_figure(opt: dict, sym: str, title, xlabel: str = "peak LR", what: str = "eta*"):
    pars = sorted(opt, key=lambda p: (p not in ("sp", "SP (no depth scaling)"), p))
    fig, axes = plt.subplots(1, max(1, len(pars)), figsize=(6.5 * max(1, len(pars)), 4.3), squeeze=False, sharey=True)
    for ax, par in zip(axes[0], pars):
        widths = sorted(opt[par])
        cmap = plt.get_cmap("viridis")
        for i, w in enumerate(widths):
            o = opt[par][w]
            c = cmap(i / max(1, len(widths) - 1))
            L = np.array(o["losses"])
            ok = np.isfinite(L)
            ax.plot(np.array(o["lrs"])[ok], L[ok], "o-", color=c, label=f"{sym} = {w}: {what} {o['eta_star']:.3g}")
            best = np.nanmin(np.where(ok, L, np.nan))
            ax.plot(o["eta_star"], best, "*", ms=14, color=c, mec="k", mew=0.5)
        e = [opt[par][w]["eta_star"] for w in widths]
        ax.set_title(f"{title(par, widths[0])}: {what} moves x{e[-1] / e[0]:.2f} from {sym} = {widths[0]} "
                     f"to {widths[-1]}", fontsize=9)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("final held-out loss (nats/byte)")
    finite = [x for par in pars for w in opt[par] for x in opt[par][w]["losses"] if np.isfinite(x)]
    if finite:
        axes[0][0].set_ylim(min(finite) - 0.03, min(max(finite), min(finite) + 0.6))
    fig.tight_layout()
    return fig


COORD_KEYS = ("act.attn_out", "act.ffn_out", "act.residual", "act.logits", "update_rel.hidden")


@figure("mup_coord", experiment="mup_coord")
def mup_coord(runs: list[dict]):
    """Coordinate check: each diagnostic vs width at steps 1, 5 and the last, SP vs muP, one row per
    FFN kind (flat lines: the diagnostic does not depend on width)."""
    ffns = sorted({r["config"]["model"]["ffn"] for r in runs})
    fig, axes = plt.subplots(len(ffns), len(COORD_KEYS), figsize=(4 * len(COORD_KEYS), 3.4 * len(ffns)),
                             squeeze=False)
    for row, ffn in zip(axes, ffns):
        for ax, key in zip(row, COORD_KEYS):
            for par, color in (("sp", "C0"), ("mup", "C3")):
                rs = sorted((r for r in runs if r["config"]["model"]["ffn"] == ffn
                             and r["config"]["model"]["parametrization"] == par),
                            key=lambda r: r["config"]["model"]["d_model"])
                if not rs:
                    continue
                lines = [{x["step"]: x[key] for x in r["metrics"] if key in x} for r in rs]
                last = min(max(ln) for ln in lines if ln) if all(lines) else 0
                widths = [r["config"]["model"]["d_model"] for r in rs]
                for step, alpha in ((1, 0.3), (5, 0.6), (last, 1.0)):
                    ys = [ln.get(step, np.nan) for ln in lines]
                    ax.plot(widths, ys, "o-", color=color, alpha=alpha, ms=4,
                            label=f"{'muP' if par == 'mup' else 'SP'}, step {step}" if ffn == ffns[0] else None)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{ffn}: {key}", fontsize=9)
            ax.set_xlabel("width d_model")
            ax.grid(alpha=0.3)
    _legend(axes[0][0], fontsize=6)
    fig.tight_layout()
    return fig

"""Figures of the LR paper's Transfer paradigm (muP; spec section 4, Fig. 3), from stored runs only."""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from .figures import _legend, figure
from .laws import FitError, loss_spikes
from .laws.transfer import arms_of, proxy_horizon, proxy_runs, transfer_optima

__all__ = ["mup_width", "mup_width_moe", "mup_depth", "mup_wd", "mup_coord", "mup_horizon", "lr_fit_vs_transfer", "mup_panels"]


def _depth_arm(cfg: dict) -> str:
    a = cfg["model"].get("depth_alpha", 0.0)
    return f"branches x (L / {cfg['model'].get('base_n_layers', 0)})^-{a:g}" if a else "SP (no depth scaling)"


@figure("mup_width", experiment="mup_width")
def mup_width(runs: list[dict]):
    """Final held-out loss vs peak LR per width, SP and muP side by side, optima starred."""
    return _transfer_figure(transfer_optima(runs), "d", lambda par, w0: (
        f"muP (base width {w0})" if par == "mup" else "SP"))


@figure("mup_width_moe", experiment="mup_width_moe")
def mup_width_moe(runs: list[dict]):
    """The width-transfer figure for the MoE model (top-2 of 4 experts)."""
    return _transfer_figure(transfer_optima(runs), "d", lambda par, w0: (
        f"MoE, muP (base width {w0})" if par == "mup" else "MoE, SP"))


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


@figure("mup_horizon", experiment="mup_horizon", also=("mup_width",))
def mup_horizon(runs: list[dict], others: dict):
    """Loss vs LR of the base-width proxy at three horizons (optima starred), and eta* vs D with the
    horizon law fitted on the two shorter ones, extended to the longest."""
    allr = proxy_runs(runs, others.get("mup_width", []))
    by_D = transfer_optima(allr, arm=lambda c: c["train"]["tokens"])
    Ds = sorted(by_D)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.3))
    cmap = plt.get_cmap("viridis")
    for i, D in enumerate(Ds):
        o = next(iter(by_D[D].values()))
        L, c = np.array(o["losses"]), cmap(i / max(1, len(Ds) - 1))
        ok = np.isfinite(L)
        a1.plot(np.array(o["lrs"])[ok], L[ok], "o-", color=c, label=f"D = {D:,}: eta* {o['eta_star']:.3g} ({o['how'][:8]})")
        a1.plot(o["eta_star"], np.nanmin(np.where(ok, L, np.nan)), "*", ms=14, color=c, mec="k", mew=0.5)
    a1.set_xscale("log")
    a1.set_xlabel("peak LR")
    a1.set_ylabel("final held-out loss (nats/byte)")
    a1.set_title("muP proxy (d = 32) at three horizons", fontsize=9)
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    etas = [next(iter(by_D[D].values()))["eta_star"] for D in Ds]
    a2.plot(Ds, etas, "o", color="k", label="measured eta* (Eq. 2 vertex)")
    if len(Ds) >= 3:
        try:
            h = proxy_horizon(allr, Ds[-1])
            xs = np.geomspace(Ds[0], Ds[-1], 50)
            a2.plot(xs, h.fit.c * xs ** -h.fit.beta, "--", color="C3",
                    label=f"fit on D < {Ds[-1]:,}: beta = {h.fit.beta:.2f}")
            a2.plot(Ds[-1], h.eta_corrected, "s", mfc="none", color="C3", ms=9,
                    label=f"predicted at {Ds[-1]:,}: {h.eta_corrected:.3g} (uncorrected {h.eta_uncorrected:.3g})")
        except FitError as e:
            a2.set_title(f"no horizon fit: {e}", fontsize=8)
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("training tokens D")
    a2.set_ylabel("eta*")
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


@figure("lr_fit_vs_transfer", experiment="lr_fit_vs_transfer", also=("mup_width", "mup_horizon"))
def lr_fit_vs_transfer(runs: list[dict], others: dict):
    """Fitting vs Transfer at the target: each arm's seeds on the target's direct LR sweeps (SP and
    muP, seed 0), and the final losses per arm with their mean and spread."""
    sweep, proxy = others.get("mup_width", []), others.get("mup_horizon", [])
    d = runs[0]["config"]["model"]["d_model"] if runs else 0
    try:
        arms = arms_of(runs, sweep, proxy, runs[0]["config"]["train"]["tokens"]) if runs else {}
    except FitError as e:
        arms = {}
        print(f"lr_fit_vs_transfer: arms not identified: {e}")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.3), gridspec_kw={"width_ratios": [3, 2]})
    opt = transfer_optima([r for r in sweep if r["config"]["model"]["d_model"] == d])
    for par, c in (("sp", "C0"), ("mup", "C3")):
        o = opt.get(par, {}).get(d)
        if o:
            L = np.array(o["losses"])
            ok = np.isfinite(L)
            a1.plot(np.array(o["lrs"])[ok], L[ok], "o-", color=c, alpha=0.5, ms=4,
                    label=f"{'SP' if par == 'sp' else 'muP'} sweep at d = {d} (seed 0)")
    colors = {"fitting": "C2", "transfer": "C1", "transfer+horizon": "C3", "direct": "C4"}
    for i, (name, a) in enumerate(arms.items()):
        c = colors[name]
        a1.plot([a["lr"]] * len(a["losses"]), a["losses"], "D", color=c, ms=6, mec="k", mew=0.4,
                label=f"{name}: LR {a['lr']:.3g}")
        a2.errorbar([i], [a["mean"]], yerr=[a["std"] if np.isfinite(a["std"]) else 0], fmt="o", color=c,
                    capsize=4, ms=7)
        a2.plot([i] * len(a["losses"]), a["losses"], "_", color="k", ms=12)
    a1.set_xscale("log")
    a1.set_xlabel("peak LR")
    a1.set_ylabel("final held-out loss (nats/byte)")
    a1.set_title(f"target d = {d}: where each arm's LR lands", fontsize=9)
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    a2.set_xticks(range(len(arms)), list(arms), fontsize=8)
    a2.set_ylabel("final held-out loss, mean +- std over seeds")
    a2.set_title("final losses (ticks: seeds)", fontsize=9)
    a2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


PANELS = [("train_loss", "train loss (spikes: x)"), ("update_rel.hidden", "relative update, hidden"),
          ("delta_init.hidden", "change from init, hidden"), ("delta_init.head", "change from init, head"),
          ("act.logits", "logit RMS"), ("act.attn_logit_max", "max attention logit"),
          ("grad_norm", "gradient norm")]


@figure("mup_panels", experiment="mup_panels")
def mup_panels(runs: list[dict]):
    """Stability and feature-learning metrics over training, SP vs muP at d = 128 against the base
    width, one row per peak LR."""
    from .store import curve
    lrs = sorted({r["config"]["optim"]["lr"] for r in runs})
    fig, axes = plt.subplots(max(1, len(lrs)), len(PANELS), figsize=(3.3 * len(PANELS), 3.0 * max(1, len(lrs))),
                             squeeze=False)
    for row, lr in zip(axes, lrs):
        rs = sorted((r for r in runs if r["config"]["optim"]["lr"] == lr),
                    key=lambda r: (r["config"]["model"]["d_model"], r["config"]["model"]["parametrization"]))
        for r in rs:
            m = r["config"]["model"]
            base = m["d_model"] == min(x["config"]["model"]["d_model"] for x in rs)
            label = f"d = {m['d_model']} ({'SP = muP' if base else m['parametrization'].replace('mup', 'muP').replace('sp', 'SP')})"
            color = "0.5" if base else ("C3" if m["parametrization"] == "mup" else "C0")
            for ax, (key, title) in zip(row, PANELS):
                xs, ys = curve(r, key)
                if not xs:
                    continue
                ax.plot(xs, ys, "o-" if key.startswith("delta_init") else "-", ms=3, lw=1, color=color, label=label)
                if key == "train_loss":
                    sx, smax = curve(r, "train_loss_max")
                    spikes = set(loss_spikes(sx, ys, smax)) if len(sx) == len(xs) else set()
                    for x, y in zip(xs, ys):
                        if x in spikes:
                            ax.plot(x, y, "x", color=color, ms=7)
                ax.set_title(f"{title}, LR {lr:g}", fontsize=8)
        for ax, (key, _) in zip(row, PANELS):
            ax.set_xscale("log")
            ax.set_xlabel("tokens", fontsize=7)
            if key != "train_loss":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
    _legend(axes[0][0], fontsize=6)
    fig.tight_layout()
    return fig

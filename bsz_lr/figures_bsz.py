"""Figures of the batch-size paper (spec section 6), from stored runs via laws.analysis only."""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from .figures import _si, figure
from .laws import RevisedFit
from .laws.analysis import SizeAnalysis, analyse_batch_sweep, arm_label
from .store import curve

__all__ = ["bsz_crossing", "bsz_ess_schematic", "bsz_ess_fits", "bsz_bmin_bopt", "bsz_schedule", "bsz_sqrt_lr",
           "bsz_warmup"]


def _sizes(runs) -> dict[str, SizeAnalysis]:
    return {k: v for k, v in analyse_batch_sweep(runs).items() if isinstance(v, SizeAnalysis)}


def _largest(runs) -> SizeAnalysis | None:
    s = _sizes(runs)
    return max(s.values(), key=lambda a: a.n_params) if s else None


def _batch_colors(batches):
    cmap = plt.get_cmap("viridis")
    b = sorted(set(batches))
    return {x: cmap(i / max(1, len(b) - 1)) for i, x in enumerate(b)}


def _middle_fit(a: SizeAnalysis):
    good = [f for f in a.fits if isinstance(f.revised, RevisedFit)]
    return good[len(good) // 2] if good else (a.fits[len(a.fits) // 2] if a.fits else None)


def _plot_ess(ax, f, colors=None, legend=True, free=True):
    """Points of one target (colour = batch), revised c1 / free and classical fits, censored batches."""
    if f.S.size:
        xs = np.geomspace(f.S.min() / 1.3, f.S.max() * 1.3, 300)
        for s, e, b in zip(f.S, f.E, f.batch_tokens):
            ax.plot(s, e, "o", color=(colors or {}).get(b, "C0"), ms=5, zorder=3)
        if isinstance(f.revised, RevisedFit):
            ax.plot(xs, f.revised(xs), "-", color="C3", lw=1.5,
                    label=f"revised ({f.revised.form}): B_opt {_si(round(f.revised.B_opt))}, "
                          f"B_min {_si(round(f.revised.B_min))}")
        if free and isinstance(f.free, RevisedFit):
            ax.plot(xs, f.free(xs), ":", color="C1", lw=1.0, alpha=0.6, label="revised (free pieces)")
        if not isinstance(f.classical, str):
            ax.plot(xs, f.classical(xs), "--", color="0.4", lw=1.2,
                    label=f"classical: B_crit {_si(f.classical.B_crit)}")
    note = []
    if f.censored:
        note.append("never reached: B = " + ", ".join(_si(b) for b in f.censored))
    if isinstance(f.revised, str):
        why = f.revised.split(": ", 1)[-1]
        note.append("no revised fit: " + (why[:45] + "..." if len(why) > 48 else why))
    if note:
        ax.text(0.02, 0.02, "\n".join(note), transform=ax.transAxes, fontsize=5.5, va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both")
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper right")


@figure("bsz_crossing", experiment="bsz_sweep")
def bsz_crossing(runs: list[dict]):
    """Fig. 1: (a) held-out loss vs tokens at constant batch sizes (stable phase): the curves cross;
    (b) E(S) at one target loss: the classical hyperbola against the observed points."""
    a = _largest(runs)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    if a is None:
        ax.text(0.5, 0.5, "no analysable model", transform=ax.transAxes)
        return fig
    colors = _batch_colors([c.batch_tokens for c in a.curves])
    for c in a.curves:
        ax.plot(c.tokens, c.val_loss, "-", color=colors[c.batch_tokens], lw=1.4,
                label=f"B = {c.batch} x {c.batch_tokens // c.batch} = {_si(c.batch_tokens)} tokens")
    for L in a.targets:
        ax.axhline(L, color="0.7", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out loss (nats/byte)")
    ax.set_ylim(top=min(4.0, ax.get_ylim()[1]))
    ax.set_title(f"(a) {a.label} ({_si(a.n_params)} non-emb. params), constant LR: curves cross")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    f = _middle_fit(a)
    if f is not None:
        _plot_ess(bx, f, colors, free=False)
        bx.set_title(f"(b) tokens vs steps to reach L = {f.target:.3f}")
    bx.set_xlabel("optimizer steps S")
    bx.set_ylabel("tokens E = B S")
    return fig


@figure("bsz_ess_schematic", experiment="bsz_sweep")
def bsz_ess_schematic(runs: list[dict]):
    """Fig. 2: the revised E(S) law's parts, drawn with a fit to our data (largest model, middle target)."""
    a = _largest(runs)
    fig, ax = plt.subplots(figsize=(7, 5))
    f = _middle_fit(a) if a else None
    if f is None or not isinstance(f.revised, RevisedFit):
        ax.text(0.1, 0.5, "no revised fit to draw: " + (str(f.revised) if f else "no model"), transform=ax.transAxes)
        return fig
    r = f.revised
    xs = np.linspace(r.S_min * 1.02, max(f.S.max(), r.S_2) * 1.4, 600)
    ax.plot(xs, r(xs), color="C3", lw=2, label="revised E(S)")
    ax.plot(f.S, f.E, "o", color="0.3", ms=4, label=f"our points (L = {f.target:.3f})")
    ax.axvline(r.S_min, color="C0", ls="--", lw=1)
    ax.text(r.S_min, ax.get_ylim()[1] * 0.95, r" $S_{min}$ asymptote", color="C0", va="top", fontsize=8)
    ray = np.linspace(0, r.S_opt * 1.6, 50)
    ax.plot(ray, r.B_opt * ray, color="C2", lw=1, ls="-.", label=f"B_opt ray, slope E_min/S_opt = {_si(r.B_opt)}")
    ax.plot([r.S_opt], [r.E_min], "*", color="C2", ms=12)
    ax.annotate(r"$(S_{opt}, E_{min})$", (r.S_opt, r.E_min), textcoords="offset points", xytext=(8, -14), fontsize=8)
    tail = np.linspace(r.S_2, xs.max(), 20)
    ax.plot(tail, r.A_1 * tail + r.A_0 + 0.03 * r.E_min, color="C4", lw=1, ls=":",
            label=f"linear tail, slope B_min = A_1 = {_si(r.B_min)}")
    for k, name in ((r.S_1, "$S_1$"), (r.S_2, "$S_2$")):
        ax.axvline(k, color="0.7", lw=0.7)
        ax.text(k, ax.get_ylim()[0], " " + name, fontsize=8, va="bottom")
    ax.set_xlabel("optimizer steps S")
    ax.set_ylabel("tokens E")
    ax.set_title(f"Revised E(S), WSD stable phase ({a.label}): inverse-linear | quadratic | linear")
    ax.legend(fontsize=7, loc="upper center")
    ax.grid(alpha=0.3)
    return fig


@figure("bsz_ess_fits", experiment="bsz_sweep")
def bsz_ess_fits(runs: list[dict]):
    """Fig. 3: E(S) per model size (rows) and target loss (columns): points, revised and classical fits."""
    sizes = list(_sizes(runs).values())
    n = max((len(a.fits) for a in sizes), default=1)
    fig, axes = plt.subplots(max(1, len(sizes)), n, figsize=(3.3 * n, 3.2 * max(1, len(sizes))), squeeze=False)
    for i, a in enumerate(sizes):
        colors = _batch_colors([c.batch_tokens for c in a.curves])
        for j, f in enumerate(a.fits):
            ax = axes[i, j]
            _plot_ess(ax, f, colors, legend=True)
            loo = f.loo.get("revised") or {}
            lc = f.loo.get("classical") or {}
            extra = ""
            if isinstance(loo, dict) and isinstance(lc, dict) and "rmse_log" in loo and "rmse_log" in lc:
                extra = f"\nLOO log-RMSE rev {loo['rmse_log']:.3f} / cls {lc['rmse_log']:.3f}"
            ax.set_title(f"{a.label}, L = {f.target:.3f}{extra}", fontsize=7)
            ax.tick_params(labelsize=6)
            if ax.get_legend():
                for t in ax.get_legend().get_texts():
                    t.set_fontsize(5.5)
    fig.supxlabel("optimizer steps S")
    fig.supylabel("tokens E")
    fig.tight_layout()
    return fig


def _law_line(ax, law, Ls, color, name):
    if isinstance(law, str):
        return
    xs = np.linspace(min(Ls), max(Ls), 50)
    ax.plot(xs, law(xs), "--", color=color, lw=1,
            label=f"{name} ~ L^-{law.k:.2f} [{law.k_ci[0]:.2f}, {law.k_ci[1]:.2f}], R2 {law.r2:.2f}")


@figure("bsz_bmin_bopt", experiment="bsz_sweep")
def bsz_bmin_bopt(runs: list[dict]):
    """Fig. 4: B_min(L), B_opt(L) per model size with 90% bootstrap intervals and power laws, and
    McCandlish's B_simple from the two-batch estimator logged during training."""
    sizes = list(_sizes(runs).values())
    fig, axes = plt.subplots(1, max(1, len(sizes)), figsize=(6 * max(1, len(sizes)), 4.5), squeeze=False)
    for ax, a in zip(axes[0], sizes):
        good = [f for f in a.fits if isinstance(f.revised, RevisedFit)]
        Ls = [f.target for f in good]
        for key, color, name in (("B_opt", "C2", "B_opt"), ("B_min", "C4", "B_min")):
            v = np.array([getattr(f.revised, key) for f in good])
            lo = np.array([f.ci.get(key, (np.nan, np.nan))[0] for f in good])
            hi = np.array([f.ci.get(key, (np.nan, np.nan))[1] for f in good])
            yerr = np.abs(np.stack([v - np.where(np.isfinite(lo), lo, v), np.where(np.isfinite(hi), hi, v) - v]))
            ax.errorbar(Ls, v, yerr=yerr, fmt="o", color=color, capsize=3, label=f"{name} (revised fit, 90% CI)")
            if Ls:
                _law_line(ax, a.bopt_law if key == "B_opt" else a.bmin_law, Ls, color, name)
        if a.noise:
            nz = np.array(a.noise)
            ax.scatter(nz[:, 0], nz[:, 1], s=8, color="0.5", alpha=0.6, label="B_simple (two-batch estimator)")
        if a.fits:
            ax.set_xlim(min(f.target for f in a.fits) * 0.97, max(f.target for f in a.fits) * 1.05)
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("target loss L (falls to the right)")
        ax.set_ylabel("batch size (tokens)")
        ax.set_title(f"{a.label} ({_si(a.n_params)} non-emb. params)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    return fig


@figure("bsz_schedule", experiment="bsz_schedule")
def bsz_schedule(runs: list[dict]):
    """Fig. 5: held-out loss vs tokens per scheduler arm (mean over seeds) through the decay, and
    the table of final losses (mean +- std) and optimizer steps."""
    arms: dict[str, list] = {}
    for r in runs:
        arms.setdefault(arm_label(r["config"]), []).append(r)
    fig, (ax, zx, tx) = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    rows = []
    for i, (name, rs) in enumerate(sorted(arms.items())):
        xs, ys = zip(*[_val_xy(r) for r in rs])
        n = min(len(x) for x in xs)
        y = np.mean([v[:n] for v in ys], axis=0)
        ax.plot(xs[0][:n], y, lw=1.3, color=f"C{i}", label=name)
        end = xs[0][n - 1]
        keep = xs[0][:n] >= 0.4 * end
        zx.plot(xs[0][:n][keep], y[keep], "o-", ms=2.5, lw=1.3, color=f"C{i}")
        for st in rs[0]["config"]["data"]["batch_stages"]:
            if st[0] >= 0.4 * end:
                zx.axvline(st[0], color=f"C{i}", lw=0.6, ls=":")
        fin = np.array([r["status"]["final_val_loss"] for r in rs], float)
        rows.append((float(fin.mean()), name, fin.std(ddof=1) if fin.size > 1 else np.nan, fin.size,
                     rs[0]["status"].get("step", np.nan)))
    zx.set_xlabel("training tokens (last 60%; dotted: batch switches)")
    zx.set_title("(b) through the decay (last 20%)")
    zx.grid(alpha=0.3)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out loss (nats/byte)")
    ax.set_ylim(top=3.0)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title("(a) batch schedules at equal tokens, same WSD (mean of seeds)")
    tx.axis("off")
    text = [f"{'arm':32} {'final loss':>16} {'steps':>6}"]
    for mean, name, sd, n, steps in sorted(rows):
        text.append(f"{name:32} {mean:.4f} +- {sd:.4f} {int(steps):>6}")
    tx.text(0, 1, "\n".join(text) + f"\n\n(+- : std over {rows[0][3] if rows else 0} seeds)",
            family="monospace", fontsize=7.5, va="top")
    return fig


def _val_xy(r):
    x, y = curve(r, "val_loss", skip_start=True)
    return np.array(x, float), np.array(y, float)


def _ablation(runs, others, title: str):
    """(a) the ablation's loss curves; (b) its B_opt(L), B_min(L) against the main sweep's same size."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    a = _largest(runs)
    if a is None:
        ax.text(0.5, 0.5, "no analysable model", transform=ax.transAxes)
        return fig
    colors = _batch_colors([c.batch_tokens for c in a.curves])
    for c in a.curves:
        ax.plot(c.tokens, c.val_loss, color=colors.get(c.batch_tokens, "k"), lw=1.3,
                label=f"B = {_si(c.batch_tokens)} tok, lr {c.lr:.2g}")
    ax.set_xscale("log")
    ax.set_ylim(top=4.0)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out loss")
    ax.set_title(f"(a) {a.label}: {title}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    main = _sizes(others.get("bsz_sweep", [])).get(a.label)
    for ana, style, name in ((a, "o-", "ablation"), (main, "s--", "main sweep")):
        if ana is None:
            continue
        good = [f for f in ana.fits if isinstance(f.revised, RevisedFit)]
        for key, color in (("B_opt", "C2"), ("B_min", "C4")):
            bx.plot([f.target for f in good], [max(getattr(f.revised, key), 1e-1) for f in good], style,
                    color=color, label=f"{key} ({name})", alpha=1.0 if ana is a else 0.6)
    bx.set_yscale("log")
    bx.invert_xaxis()
    bx.set_xlabel("target loss")
    bx.set_ylabel("batch (tokens)")
    bx.set_title("(b) B_opt, B_min: ablation vs main sweep (same size)")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3, which="both")
    return fig


@figure("bsz_warmup", experiment="bsz_sweep_warmup_steps", also=("bsz_sweep",))
def bsz_warmup(runs: list[dict], others: dict):
    """Ablation (Fig. 6b): warmup of 32 steps for every batch instead of 65,536 tokens."""
    return _ablation(runs, others, "warmup 32 steps (main: 65,536 tokens)")


@figure("bsz_sqrt_lr", experiment="bsz_sweep_sqrt_lr", also=("bsz_sweep",))
def bsz_sqrt_lr(runs: list[dict], others: dict):
    """Ablation: the sqrt(B)-scaled-LR sweep against the main sweep's same size."""
    return _ablation(runs, others, "LR = 6e-3 sqrt(B / 32)")

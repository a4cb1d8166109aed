"""Figures of the Mousse paper (spec "Figures to regenerate"), from stored runs via laws.compare only."""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from .figures import _legend, _si, figure
from .laws.compare import arm, arm_label, best_lrs, reach_ratios, tuned_runs, val_curve

__all__ = ["mousse_curves", "mousse_ablations"]

COLORS = {"adamw": "C0", "muon": "C1", "mousse": "C3"}


def _sizes(arms):
    return sorted({a[0] for a in arms})


@figure("mousse_curves", experiment="mousse_compare", also=("mousse_lr",))
def mousse_curves(runs: list[dict], others: dict):
    """Per size: (a) final loss vs peak LR per optimizer (seed 0), (b) held-out loss vs steps at the
    tuned LRs (mean over seeds, band: min-max), zoomed on the second half, (c) final losses per seed
    and the steps Mousse needs to reach Muon's final loss."""
    tuning = others.get("mousse_lr", [])
    best = best_lrs(tuning)
    by = tuned_runs(tuning, runs)
    main = {a: v for a, v in by.items() if len(a) == 2}
    sizes = _sizes(main)
    fig, axes = plt.subplots(max(1, len(sizes)), 3, figsize=(15, 4.2 * max(1, len(sizes))), squeeze=False)
    for row, d in zip(axes, sizes):
        ax, bx, cx = row
        for name, c in COLORS.items():
            pts = sorted((r["config"]["optim"]["lr"], r["status"].get("final_val_loss", np.nan)) for r in tuning
                         if arm(r["config"]) == (d, name) and r["config"]["train"]["seed"] == 0)
            if pts:
                ax.plot(*zip(*pts), "o-", color=c, label=arm_label((d, name)))
                b = best.get((d, name))
                if b:
                    ax.plot(b.lr, b.loss, "*", ms=14, color=c, mec="k", mew=0.5)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("peak LR (Muon / Mousse: matrices; AdamW part at 0.25x)")
        ax.set_ylabel("final held-out loss (seed 0)")
        ax.set_title(f"(a) d={d}: LR tuning (star: chosen)", fontsize=9)
        _legend(ax, fontsize=7)
        ax.grid(alpha=0.3)
        finals = {}
        for name, c in COLORS.items():
            seeds = main.get((d, name), {})
            curves = [val_curve(r) for _, r in sorted(seeds.items())]
            if not curves:
                continue
            n = min(len(s) for s, _ in curves)
            steps = curves[0][0][:n]
            Y = np.array([L[:n] for _, L in curves])
            lr = next(iter(seeds.values()))["config"]["optim"]["lr"]
            bx.plot(steps, Y.mean(0), "-", color=c, label=f"{arm_label((d, name))}, LR {lr:g}, {len(curves)} seeds")
            bx.fill_between(steps, Y.min(0), Y.max(0), color=c, alpha=0.2)
            finals[name] = Y[:, -1]
            cx.plot(np.full(len(Y), list(COLORS).index(name)), Y[:, -1], "o", color=c, alpha=0.8)
            cx.errorbar(list(COLORS).index(name) + 0.15, Y[:, -1].mean(), yerr=Y[:, -1].std(ddof=1) if len(Y) > 1 else 0,
                        fmt="s", color=c, capsize=4)
        if finals:
            lo = min(v.min() for v in finals.values())
            hi = max(v.max() for v in finals.values())
            bx.set_ylim(lo - 0.05, hi + 0.35)
            if len(steps):
                bx.set_xlim(steps[-1] * 0.4, steps[-1] * 1.02)
        bx.set_xlabel("step")
        bx.set_ylabel("held-out loss (nats/byte)")
        bx.set_title(f"(b) d={d}: tuned LRs, mean over seeds (band: min-max), second half", fontsize=9)
        _legend(bx, fontsize=7)
        bx.grid(alpha=0.3)
        rr = reach_ratios(main.get((d, "mousse"), {}), main.get((d, "muon"), {}))
        ratios = np.array([x for _, x in rr], float)
        ok = ratios[np.isfinite(ratios)]
        txt = (f"Mousse reaches Muon's final loss at {ok.mean():.2f} +- {ok.std(ddof=1) if ok.size > 1 else 0:.2f} "
               f"of the steps ({ok.size} of {ratios.size} seeds)" if ok.size else
               f"Mousse does not reach Muon's final loss ({ratios.size} seeds)")
        cx.set_xticks(range(len(COLORS)), [arm_label((d, n)) for n in COLORS])
        cx.set_ylabel("final held-out loss")
        cx.set_title(f"(c) d={d}: final loss per seed (square: mean +- std)\n{txt}", fontsize=9)
        cx.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


@figure("mousse_ablations", experiment="mousse_ablations", also=("mousse_lr", "mousse_compare"))
def mousse_ablations(runs: list[dict], others: dict):
    """Final held-out loss of each ablation arm (3 seeds, mean +- std) against the default Mousse
    and Muon at the same size and LR."""
    by = tuned_runs(others.get("mousse_lr", []), others.get("mousse_compare", []), runs)
    sizes = _sizes(arm(r["config"]) for r in runs)
    fig, axes = plt.subplots(1, max(1, len(sizes)), figsize=(8 * max(1, len(sizes)), 4.5), squeeze=False)
    for ax, d in zip(axes[0], sizes):
        arms = [(d, "muon"), (d, "mousse")] + sorted({arm(r["config"]) for r in runs if r["config"]["model"]["d_model"] == d},
                                                      key=str)
        ref = None
        for i, a in enumerate(arms):
            L = np.array([r["status"].get("final_val_loss", np.nan) for _, r in sorted(by.get(a, {}).items())], float)
            if not L.size:
                continue
            c = COLORS.get(a[1], "0.4") if len(a) == 2 else "0.4"
            ax.plot(L, np.full(L.size, i), "o", color=c, alpha=0.7)
            ax.errorbar(L.mean(), i + 0.2, xerr=L.std(ddof=1) if L.size > 1 else 0, fmt="s", color=c, capsize=4)
            if a == (d, "mousse"):
                ref = L.mean()
        if ref is not None:
            ax.axvline(ref, color=COLORS["mousse"], ls=":", lw=1)
        ax.set_yticks(range(len(arms)), [arm_label(a) for a in arms], fontsize=8)
        ax.set_xlabel("final held-out loss (dots: seeds; square: mean +- std)")
        ax.set_title(f"d={d}: Mousse ablations at its tuned LR ({_si(len(by.get((d, 'mousse'), {})))} seeds each)", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig

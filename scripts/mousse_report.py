"""Print the Mousse paper's numbers (markdown) from the stored results.

    .venv/bin/python scripts/mousse_report.py [--runs results] [--profile cpu]

The README's Mousse tables are this script's output; it reads only the result store.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bsz_lr.laws.compare import arm, arm_label, best_lrs, reach_ratios, tuned_runs  # noqa: E402
from bsz_lr.sweep import finished_runs  # noqa: E402


def current(root, name, profile):
    return finished_runs(root, name, profile, pending_ok=True)


def finals(by_seed):
    return {s: r["status"].get("final_val_loss", np.nan) for s, r in by_seed.items()}


def ms(x):
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not x.size:
        return "n/a"
    return f"{x.mean():.4f} +- {x.std(ddof=1):.4f}" if x.size > 1 else f"{x[0]:.4f}"


def paired(a, b):
    """mean +- std over the seeds both have of a - b."""
    fa, fb = finals(a), finals(b)
    d = [fa[s] - fb[s] for s in sorted(set(fa) & set(fb))]
    return f"{np.mean(d):+.4f} +- {np.std(d, ddof=1):.4f} ({len(d)} seeds)" if len(d) > 1 else "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="results")
    ap.add_argument("--profile", default="cpu")
    args = ap.parse_args()
    tune = current(args.runs, "mousse_lr", args.profile)
    comp = current(args.runs, "mousse_compare", args.profile)
    abl = current(args.runs, "mousse_ablations", args.profile)
    best = best_lrs(tune)
    by = tuned_runs(tune, comp, abl)
    sizes = sorted({a[0] for a in best})
    print("LR tuning (seed 0, final held-out loss; * best):\n")
    print("| d_model | optimizer | " + " | ".join(["LR: loss"] * 1) + " |")
    print("|---|---|---|")
    for d in sizes:
        for name in ("adamw", "muon", "mousse"):
            b = best.get((d, name))
            if not b:
                continue
            pts = sorted((r["config"]["optim"]["lr"], r["status"].get("final_val_loss", np.nan)) for r in tune
                         if arm(r["config"]) == (d, name) and r["config"]["train"]["seed"] == 0)
            cells = ", ".join(f"{lr:g}: {L:.4f}" + ("*" if lr == b.lr else "") for lr, L in pts)
            print(f"| {d} | {arm_label((d, name))} | {cells}" + (" (best at the grid edge)" if b.edge else "") + " |")
    print("\nAt the tuned LRs (3 seeds):\n")
    print("| d_model | AdamW | Muon | Mousse | Mousse - Muon (paired) | Muon - AdamW | steps for Mousse to reach Muon's final loss | steps for Muon to reach AdamW's |")
    print("|---|---|---|---|---|---|---|---|")
    for d in sizes:
        A, M, S = by.get((d, "adamw"), {}), by.get((d, "muon"), {}), by.get((d, "mousse"), {})
        r1 = [x for _, x in reach_ratios(S, M)]
        r2 = [x for _, x in reach_ratios(M, A)]
        fmt = lambda r: (f"{np.nanmean(r):.3f} +- {np.nanstd(r, ddof=1):.3f}" if np.isfinite(r).sum() > 1 else "n/a") + \
            (f" ({int((~np.isfinite(r)).sum())} never)" if (~np.isfinite(np.asarray(r, float))).any() else "")
        print(f"| {d} | {ms(list(finals(A).values()))} | {ms(list(finals(M).values()))} | {ms(list(finals(S).values()))} | "
              f"{paired(S, M)} | {paired(M, A)} | {fmt(np.asarray(r1, float))} | {fmt(np.asarray(r2, float))} |")
    ab = sorted({arm(r["config"]) for r in abl}, key=str)
    if ab:
        print("\nAblations (final held-out loss, 3 seeds; difference to the default Mousse paired by seed):\n")
        print("| d_model | arm | final loss | - default Mousse |")
        print("|---|---|---|---|")
        for d in sorted({a[0] for a in ab}):
            for a in [(d, "mousse"), (d, "muon")] + [x for x in ab if x[0] == d]:
                print(f"| {d} | {arm_label(a)} | {ms(list(finals(by.get(a, {})).values()))} | "
                      f"{'' if a == (d, 'mousse') else paired(by.get(a, {}), by.get((d, 'mousse'), {}))} |")


if __name__ == "__main__":
    main()

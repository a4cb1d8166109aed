"""Print the LR paper's Fitting-paradigm numbers (markdown) from the stored results.

    .venv/bin/python scripts/lr_report.py [--runs results] [--profile cpu]

The README's LR-ladder tables are this script's output; it reads only the result store.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bsz_lr.laws import FitError, LRLaw, LRParabola, fit_horizon, fit_lr_law, fit_lr_parabola  # noqa: E402
from bsz_lr.parametrization import horizon_lr  # noqa: E402
from bsz_lr.laws.lr_analysis import analyse_lr_ladder  # noqa: E402
from bsz_lr.sweep import finished_runs  # noqa: E402

PAPER = (-0.2219, -0.3509)


def current(root, name, profile):
    return finished_runs(root, name, profile, pending_ok=True)


def law(x):
    if not isinstance(x, LRLaw):
        return f"no fit: {x}"
    return (f"a = **{x.a:.3f}** [{x.a_ci[0]:.3f}, {x.a_ci[1]:.3f}], b = **{x.b:.3f}** [{x.b_ci[0]:.3f}, "
            f"{x.b_ci[1]:.3f}], c = {x.c:.3g}, R^2 = {x.r2:.3f}, {x.n} points")


def short(reason: str) -> str:
    if "grid edge" in reason:
        return "edge (" + ("low" if "smallest" in reason else "high") + ")"
    if "outside the points" in reason:
        return "vertex outside"
    if "not convex" in reason:
        return "not convex"
    return reason.split(": ", 1)[-1][:30]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="results")
    ap.add_argument("--profile", default="cpu")
    args = ap.parse_args()
    ladder = current(args.runs, "lr_ladder", args.profile)
    held = current(args.runs, "lr_heldout", args.profile)
    for ffn, a in analyse_lr_ladder(ladder).items():
        print(f"\n#### {ffn}\n")
        n_div = sum(1 for r in ladder if r["config"]["model"]["ffn"] == ffn and r["status"].get("status") == "diverged")
        print(f"{len(a.sizes)} sizes, {len(a.Ds)} data sizes, {sum(len(v) for v in a.lrs.values())} (N, LR) "
              f"stable runs, {n_div} diverged runs.\n")
        print("| N active (total) | LRs | " + " | ".join(f"eta* at D = {d / 1e3:.0f}k" for d in a.Ds) + " |")
        print("|---|---|" + "---|" * len(a.Ds))
        for n in a.sizes:
            cells = []
            for d in a.Ds:
                f = a.eq2[(n, d)]
                cells.append(f"{f.eta_star:.3g} (L {f.L_min:.3f})" if isinstance(f, LRParabola) else short(f))
            lrs = a.lrs[n]
            print(f"| {n:,} ({a.totals[n]:,}) | {lrs[0]:g} .. {lrs[-1]:g} ({len(lrs)}) | " + " | ".join(cells) + " |")
        rm = [f.rmse for f in a.eq2.values() if isinstance(f, LRParabola)]
        if rm:
            print(f"\nEq. 2 parabola RMSE over its near-optimal points: median {np.median(rm):.4f}, max {max(rm):.4f} "
                  f"nats ({len(rm)} of {len(a.eq2)} (N, D) groups have an interior optimum).")
        # Eq. 2 through 3 points is exact: the shape claim is tested on the 5 points within 4x
        ok = []
        for n in a.sizes:
            for d in a.Ds:
                try:
                    w = fit_lr_parabola(*zip(*[(lr, a.loss(n, lr, d)) for lr in a.lrs[n]]), band=4.01)
                except FitError:
                    continue
                if w.n == 5:
                    ok.append(w)
        if ok:
            rm5 = [w.rmse for w in ok]
            print(f"Parabola through the 5 LRs within 4x of the best (a test of the shape): RMSE median "
                  f"{np.median(rm5):.4f}, max {max(rm5):.4f} nats over {len(ok)} (N, D) groups.")
        asym = []
        for n in a.sizes:
            lrs = a.lrs[n]
            for d in a.Ds:
                L = [a.loss(n, lr, d) for lr in lrs]
                i = int(np.nanargmin(L))
                if 0 < i < len(lrs) - 1:
                    asym.append((L[i + 1] - L[i]) / max(L[i - 1] - L[i], 1e-9))
        if asym:
            print(f"Asymmetry around the best LR, (L(2 eta_best) - L_best) / (L(eta_best / 2) - L_best) (1 for a "
                  f"parabola in log LR): median {np.median(asym):.2f}, range {min(asym):.2f} .. {max(asym):.2f} "
                  f"over {len(asym)} groups.")
        print(f"\n* Eq. 6, N = active non-embedding: {law(a.law)}")
        late = [o for o in a.optima() if o[1] > a.Ds[0]]
        if late:
            print(f"* Eq. 6 without the smallest D ({a.Ds[0]:,} tokens): "
                  f"{law(fit_lr_law(*zip(*late), n_boot=1000))}")
        print(f"* Eq. 6, N = total non-embedding: {law(a.law_total)}")
        print(f"* near-optimal band (0.25%): {law(a.band_law)}")
        print(f"* paper: a = {PAPER[0]}, b = {PAPER[1]}, R^2 = 0.9622")
        errs = [(p - m) for p, m in a.eq4_check.values() if np.isfinite(p)]
        gam = [f.gamma for f in a.eq4.values() if not isinstance(f, str)]
        if errs:
            ae = np.abs(errs)
            print(f"* Eq. 4 fitted on the 3 smaller D, predicting the largest: |error| median {np.median(ae):.4f}, "
                  f"max {ae.max():.4f} nats over {len(ae)} (N, LR) (mean signed {np.mean(errs):+.4f}); "
                  f"gamma over all 4 D: median {np.median(gam):.2f} [{min(gam):.2f}, {max(gam):.2f}]")
        h = a.heldout
        print(f"\nHeld-out size N = {h.N:,} at D = {h.D:,}: Eq. 6 on the other sizes: {law(h.law)}")
        meas = h.eta_measured
        print(f"* predicted eta* {h.eta_pred:.4g}; measured (Eq. 2 over the ladder's LRs) "
              + (f"{meas.eta_star:.4g} (ratio {h.eta_pred / meas.eta_star:.2f}), L_min {meas.L_min:.4f}"
                 if isinstance(meas, LRParabola) else f"none: {meas}"))
        mine = sorted((r["config"]["optim"]["lr"], r["status"].get("final_val_loss", math.nan), r["status"].get("status"))
                      for r in held if r["config"]["model"]["ffn"] == ffn)
        if mine:
            best = min(x for x in (a.loss(h.N, lr, h.D) for lr in a.lrs[h.N]) if np.isfinite(x))
            print("* trained from scratch: " + ", ".join(f"LR {lr:.4g}: {L:.4f}" + ("" if s == "completed" else f" ({s})")
                                                     for lr, L, s in mine)
                  + f"; ladder's best measured {best:.4f}")
            at = [L for lr, L, _ in mine if abs(lr / h.eta_pred - 1) < 0.01]
            if at and isinstance(meas, LRParabola):
                print(f"* loss gap at the predicted eta*: {at[0] - meas.L_min:+.4f} vs the parabola minimum, "
                      f"{at[0] - best:+.4f} vs the best measured ladder run")
        # The token-horizon rule (Transfer paradigm): beta fitted on each size's 3 shorter horizons,
        # the optimum at the longest D predicted from the 3rd; the loss cost read off Eq. 2's valley there.
        print(f"\nHorizon rule (beta on D <= {a.Ds[-2]:,}, predicting eta* at {a.Ds[-1]:,}; loss cost from the Eq. 2 "
              "parabola at the longest D):\n")
        print("| N | beta [90% CI] | eta* at D_3 | predicted | measured | predicted / measured | uncorrected / measured | loss cost predicted / uncorrected |")
        print("|---|---|---|---|---|---|---|---|")
        for n in a.sizes:
            pts = [(d, a.eq2[(n, d)].eta_star) for d in a.Ds[:-1] if isinstance(a.eq2[(n, d)], LRParabola)]
            last = a.eq2[(n, a.Ds[-1])]
            if len(pts) < 2 or not isinstance(last, LRParabola):
                print(f"| {n:,} | no fit | | | | | | |")
                continue
            h = fit_horizon(*zip(*pts))
            d3, e3 = pts[-1]
            pred = horizon_lr(e3, d3, a.Ds[-1], h.beta)
            print(f"| {n:,} | {h.beta:.2f} [{h.beta_ci[0]:.2f}, {h.beta_ci[1]:.2f}] | {e3:.3g} | {pred:.3g} | "
                  f"{last.eta_star:.3g} | {pred / last.eta_star:.2f} | {e3 / last.eta_star:.2f} | "
                  f"{last(pred) - last.L_min:+.4f} / {last(e3) - last.L_min:+.4f} |")
        print("\n| strategy | order | runs | FLOPs | vs full grid | eta* vs full grid's (median / max ratio over sizes, largest D) |")
        print("|---|---|---|---|---|---|")
        full = a.cost[0]["flops"]
        for r in a.cost:
            e = ("reference" if r["strategy"] == "full grid" else "(its eta* is the full grid's)"
                 if r["strategy"].startswith("this") else
                 f"{2 ** r['err_median']:.2f}x / {2 ** r['err_max']:.2f}x" + (f", {r['failed']} failed" if r["failed"] else "")
                 if np.isfinite(r["err_median"]) else f"none ({r['failed']} failed)")
            print(f"| {r['strategy']} | {r['order']} | {r['runs']} | {r['flops']:.3g} | {r['flops'] / full:.2f} | {e} |")


if __name__ == "__main__":
    main()

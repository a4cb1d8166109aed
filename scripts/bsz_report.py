"""Print the batch-size paper's numbers (markdown tables) from the stored results.

    .venv/bin/python scripts/bsz_report.py [--runs results] [--profile cpu]

The README's batch-size tables are this script's output; it reads only the result store.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bsz_lr.laws import LossPowerLaw, RevisedFit  # noqa: E402
from bsz_lr.laws.analysis import analyse_batch_sweep, arm_label, dynamic_stages  # noqa: E402
from bsz_lr.sweep import finished_runs  # noqa: E402


def current(root, name, profile):
    return finished_runs(root, name, profile, states=("completed",))


def fmt_ci(ci):
    return f"[{ci[0]:,.0f}, {ci[1]:,.0f}]" if ci and np.all(np.isfinite(ci)) else "n/a"


def law(x):
    if isinstance(x, LossPowerLaw):
        return f"B ~ L^-k, k = {x.k:.2f}, 90% CI [{x.k_ci[0]:.2f}, {x.k_ci[1]:.2f}], R^2 {x.r2:.2f}, {x.n} targets"
    return f"no fit: {x}"


def sweep_tables(runs, title):
    print(f"\n#### {title}\n")
    for label, a in analyse_batch_sweep(runs).items():
        if isinstance(a, str):
            print(f"{label}: {a}\n")
            continue
        print(f"**{label}** ({a.n_params:,} non-embedding parameters), batches "
              + ", ".join(str(c.batch_tokens) for c in a.curves) + " tokens; lowest held-out loss per batch: "
              + ", ".join(f"{c.min_loss:.3f}" for c in a.crossings) + "\n")
        print("| target L | points | censored (never reached) | form | B_opt (tokens) [90% CI] | B_min [90% CI] "
              "| log-RMSE revised / classical | LOO log-RMSE revised / classical |")
        print("|---|---|---|---|---|---|---|---|")
        for f in a.fits:
            r, c = f.revised, f.classical
            lr, lc = f.loo.get("revised") or {}, f.loo.get("classical") or {}
            num = lambda d: f"{d['rmse_log']:.3f}" if isinstance(d, dict) and np.isfinite(d.get("rmse_log", np.nan)) else "-"
            loo = f"{num(lr)} / {num(lc)}" if num(lr) != "-" or num(lc) != "-" else "n/a"
            cl = f"{c.rmse_log:.3f}" if not isinstance(c, str) else "n/a"
            if isinstance(r, RevisedFit):
                print(f"| {f.target:.3f} | {f.S.size} | {', '.join(map(str, f.censored)) or '-'} | {r.form} "
                      f"| {r.B_opt:,.0f} {fmt_ci(f.ci.get('B_opt'))} | {r.B_min:,.0f} {fmt_ci(f.ci.get('B_min'))} "
                      f"| {r.rmse_log:.3f} / {cl} | {loo} |")
            else:
                why = ("no interior minimum (E grows with B)" if "no interior minimum" in r else
                       "fewer than 6 points reach it" if "need >=" in r else r)
                print(f"| {f.target:.3f} | {f.S.size} | {', '.join(map(str, f.censored)) or '-'} | - "
                      f"| no revised fit: {why} | - | - / {cl} | {loo} |")
        print(f"\nB_opt(L): {law(a.bopt_law)}  \nB_min(L): {law(a.bmin_law)}")
        if a.noise:
            nz = np.array(a.noise)
            print(f"B_simple (two-batch estimator, {len(nz)} points from {len({x[2] for x in a.noise})} runs): "
                  f"{np.median(nz[nz[:, 0] > 2.0][:, 1]) if np.any(nz[:, 0] > 2.0) else np.nan:,.0f} tokens "
                  f"(median) above L = 2.0, {np.median(nz[nz[:, 0] < 1.8][:, 1]) if np.any(nz[:, 0] < 1.8) else np.nan:,.0f} "
                  "below L = 1.8")
        print()


def seed_table(seed_runs, sweep_runs):
    """Spread over seeds of ln S at the main sweep's micro targets, for the batches run with 3 seeds."""
    from bsz_lr.laws import crossings
    from bsz_lr.laws.analysis import run_curves
    a = analyse_batch_sweep(sweep_runs).get("d32 L2")
    if a is None or isinstance(a, str):
        print("(seed spread: no micro analysis)")
        return
    curves = [c for c in run_curves(sweep_runs + seed_runs) if c.label == "d32 L2"]
    batches = sorted({c.batch for c in run_curves(seed_runs)})
    print("\n#### Seed spread of steps-to-target (micro, 3 seeds)\n")
    print("| target L | " + " | ".join(f"B = {b} x 64: S per seed (std of ln S)" for b in batches) + " |")
    print("|---|" + "---|" * len(batches))
    sds = []
    for L in a.targets:
        cells = []
        for b in batches:
            S = [float(crossings(c.steps, c.val_loss, [L], c.batch_tokens, c.warmup_steps).steps[0])
                 for c in curves if c.batch == b]
            S = np.array(S)
            if np.all(np.isfinite(S)) and S.size >= 2:
                sd = float(np.std(np.log(S), ddof=1))
                sds.append(sd)
                cells.append(", ".join(f"{x:,.0f}" for x in S) + f" ({sd:.3f})")
            else:
                cells.append(", ".join("-" if not np.isfinite(x) else f"{x:,.0f}" for x in S) + " (n/a)")
        print(f"| {L:.3f} | " + " | ".join(cells) + " |")
    if sds:
        print(f"\nmedian std of ln S over seeds: {np.median(sds):.3f} (max {np.max(sds):.3f}, {len(sds)} cells)")


def schedule_table(runs, sweep_runs):
    print("\n#### Scheduler comparison\n")
    a = analyse_batch_sweep(sweep_runs).get("d64 L2")
    if a is not None and not isinstance(a, str):
        d = dynamic_stages(a, runs[0]["config"]["train"]["tokens"] if runs else 750_000)
        print("dynamic schedule: stage starts " + ", ".join(f"{x:,.0f}" for x in d["stage_starts"])
              + " tokens; L_hat " + ", ".join(f"{x:.3f}" for x in d["L_hat"]) + "; B_opt(L_hat) "
              + ", ".join(f"{x:,.0f}" for x in d["B_opt_tokens"]) + " tokens; batches " + str(d["batches"])
              + "; extrapolated " + str(d["extrapolated"]) + "\n")
    arms = {}
    for r in runs:
        arms.setdefault(arm_label(r["config"]), []).append(r)
    print("| arm | final held-out loss, mean +- std (seeds) | per seed | optimizer steps |")
    print("|---|---|---|---|")
    rows = []
    for name, rs in arms.items():
        v = np.array([r["status"]["final_val_loss"] for r in sorted(rs, key=lambda r: r["config"]["train"]["seed"])])
        rows.append((v.mean(), name, v, rs[0]["status"]["step"]))
    for m, name, v, steps in sorted(rows):
        print(f"| {name} | {m:.4f} +- {v.std(ddof=1) if v.size > 1 else float('nan'):.4f} ({v.size}) "
              f"| {', '.join(f'{x:.4f}' for x in v)} | {steps:,} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="results")
    ap.add_argument("--profile", default="cpu")
    args = ap.parse_args()
    sweep = current(args.runs, "bsz_sweep", args.profile)
    sweep_tables(sweep, f"bsz_sweep/{args.profile}: constant LR per size")
    try:
        sweep_tables(current(args.runs, "bsz_sweep_sqrt_lr", args.profile), "bsz_sweep_sqrt_lr: LR x sqrt(B / 32)")
    except Exception as e:    # not run yet
        print(f"\n(bsz_sweep_sqrt_lr: {e})")
    try:
        sweep_tables(current(args.runs, "bsz_sweep_warmup_steps", args.profile), "bsz_sweep_warmup_steps: warmup 32 steps")
    except Exception as e:
        print(f"\n(bsz_sweep_warmup_steps: {e})")
    try:
        seed_table(current(args.runs, "bsz_sweep_seeds", args.profile), sweep)
    except Exception as e:
        print(f"\n(bsz_sweep_seeds: {e})")
    try:
        schedule_table(current(args.runs, "bsz_schedule", args.profile), sweep)
    except Exception as e:
        print(f"\n(bsz_schedule: {e})")


if __name__ == "__main__":
    main()

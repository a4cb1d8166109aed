"""Print the LR paper's Transfer-paradigm numbers (markdown) from the stored results: the proxy's
horizon rule, Fitting vs Transfer at the target, and the stability / feature-learning panels.

    .venv/bin/python scripts/mup_report.py [--runs results] [--profile cpu]

The README's tables for these are this script's output; it reads only the result store.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bsz_lr.laws import FitError, loss_spikes  # noqa: E402
from bsz_lr.laws.transfer import ARMS, arms_of, final_loss, proxy_horizon, proxy_runs, transfer_optima  # noqa: E402
from bsz_lr.store import curve  # noqa: E402
from bsz_lr.sweep import finished_runs  # noqa: E402


def current(root, name, profile):
    return finished_runs(root, name, profile, pending_ok=True)


def horizon(proxy):
    by_D = transfer_optima(proxy, arm=lambda c: c["train"]["tokens"])
    Ds = sorted(by_D)
    print("| D (tokens) | eta* | how |\n|---|---|---|")
    for D in Ds:
        o = next(iter(by_D[D].values()))
        print(f"| {D:,} | {o['eta_star']:.3g} | {o['how']} |")
    h = proxy_horizon(proxy, Ds[-1])
    meas = next(iter(by_D[Ds[-1]].values()))["eta_star"]
    print(f"\nbeta = {h.fit.beta:.3f} (fitted on D = {', '.join(f'{d:,}' for d in Ds[:-1])}); at D = {Ds[-1]:,}: "
          f"predicted {h.eta_corrected:.3g} ({h.eta_corrected / meas:.2f}x measured), uncorrected "
          f"{h.eta_uncorrected:.3g} ({h.eta_uncorrected / meas:.2f}x), measured {meas:.3g}\n")


def fit_vs_transfer(runs, sweep, proxy):
    d_target = runs[0]["config"]["train"]["tokens"]
    arms = arms_of(runs, sweep, proxy, d_target)
    d = runs[0]["config"]["model"]["d_model"]
    sp = transfer_optima([r for r in sweep if r["config"]["model"]["d_model"] == d]).get("sp", {}).get(d)
    best = min(a["mean"] for a in arms.values())
    print("| arm | how the LR is set | peak LR | x direct optimum | final loss per seed | mean +- std | vs best arm |")
    print("|---|---|---|---|---|---|---|")
    for name, a in arms.items():
        ratio = a["lr"] / sp["eta_star"] if sp else float("nan")
        print(f"| {name} | {ARMS[name][1]} | {a['lr']:.3g} | {ratio:.2f} | "
              f"{' / '.join(f'{x:.4f}' for x in a['losses'])} | **{a['mean']:.4f}** +- {a['std']:.4f} | "
              f"{a['mean'] - best:+.4f} |")
    print()


def panels(runs):
    print("| LR | model | final loss | spikes | relative update, hidden (median) | change from init, hidden "
          "/ head (end) | max attention logit (max) | logit RMS (end) | grad norm (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (r["config"]["optim"]["lr"], r["config"]["model"]["d_model"],
                                         r["config"]["model"]["parametrization"])):
        c = r["config"]
        xs, ys = curve(r, "train_loss")
        _, mx = curve(r, "train_loss_max")
        sp = loss_spikes(xs, ys, mx) if len(mx) == len(ys) and ys else []
        last = lambda k: curve(r, k)[1][-1] if curve(r, k)[1] else float("nan")
        name = f"{c['model']['parametrization']} d = {c['model']['d_model']}".replace("mup", "muP").replace("sp", "SP")
        print(f"| {c['optim']['lr']:g} | {name} | {final_loss(r):.4f} | {len(sp)} | {np.median(curve(r, 'update_rel.hidden')[1]):.4f} | "
              f"{last('delta_init.hidden'):.3f} / {last('delta_init.head'):.3f} | "
              f"{max(curve(r, 'act.attn_logit_max')[1] or [float('nan')]):.1f} | {last('act.logits'):.2f} | "
              f"{np.median(curve(r, 'grad_norm')[1]):.3f} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="results")
    ap.add_argument("--profile", default="cpu")
    a = ap.parse_args()
    root = Path(a.runs)
    width, proxy = current(root, "mup_width", a.profile), current(root, "mup_horizon", a.profile)
    proxy_all = proxy_runs(proxy, width)
    for title, fn, args in (("Horizon rule on the muP proxy (mup_horizon + mup_width d = 32)", horizon, (proxy_all,)),
                            ("Fitting vs Transfer at the target (lr_fit_vs_transfer)", fit_vs_transfer,
                             (current(root, "lr_fit_vs_transfer", a.profile), width, proxy)),
                            ("Stability and feature-learning panels (mup_panels)", panels,
                             (current(root, "mup_panels", a.profile),))):
        print(f"### {title}\n")
        if not all(args):
            print("(no finished runs)\n")
            continue
        try:
            fn(*args)
        except FitError as e:
            print(f"(no fit: {e})\n")


if __name__ == "__main__":
    main()

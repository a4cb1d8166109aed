"""Figures, built only from stored results (never by training).

Each builder is registered with the experiment it reads.  `build_all` feeds it the
completed runs of the experiment's *current expansion* (the experiment file as it is
now, so stale runs of an edited grid, or of a copied file that kept the NAME, never
leak in), from one profile: the one asked for, else the first of every profile the
experiment defines, in the order gpu, cpu-long, cpu, smoke, then the others, whose
runs are all done (else the first with any completed run, said to be partial).  It
writes PNG + PDF per figure and figures/manifest.json (figure -> experiment, profile,
run hashes): regenerating from unchanged results gives byte-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import matplotlib
import matplotlib.ticker
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .config import ConfigError  # noqa: E402
from .store import DONE, curve, load_runs, run_state  # noqa: E402

__all__ = ["FIGURES", "figure", "build_all", "select_runs", "PROFILE_ORDER"]

PROFILE_ORDER = ("gpu", "cpu-long", "cpu", "smoke")   # largest scale first
FIGURES: dict[str, tuple[str, Callable]] = {}


ALSO: dict[str, tuple[str, ...]] = {}     # figure -> other experiments whose runs it compares against


def figure(name: str, experiment: str, also: tuple[str, ...] = ()):
    """Register a builder fn(runs) of `experiment`'s runs; with `also`, fn(runs, others) where
    others maps each named experiment to its selected runs (an empty list if it has none)."""
    def register(fn):
        FIGURES[name] = (experiment, fn)
        ALSO[name] = tuple(also)
        return fn
    return register


@figure("tiny_lm_loss", experiment="tiny_lm")
def tiny_lm_loss(runs: list[dict]):
    """Train and held-out loss vs tokens for the default tiny model(s)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        c = r["config"]
        label = f"{c['model']['d_model']}d x {c['model']['n_layers']}L, lr {c['optim']['lr']:g}"
        line, = ax.plot(*curve(r, "train_loss", skip_start=True), lw=1, alpha=0.6, label=f"train ({label})")
        va = curve(r, "val_loss", skip_start=True)
        if va[0]:
            ax.plot(*va, "o-", ms=3, color=line.get_color(), label=f"held-out ({label})")
    ax.set_xscale("log")
    ax.axhline(5.545, ls=":", color="gray", lw=1)
    ax.text(ax.get_xlim()[0], 5.545, " uniform over bytes", va="top", fontsize=8, color="gray")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("loss (nats/byte)")
    ax.set_title("Tiny LM on Jane Austen (WSD, 1-sqrt decay)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _legend(ax, **kw) -> None:
    """ax.legend(**kw) if the axes have labelled artists (no matplotlib warning otherwise)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _si(x: float) -> str:
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:g}"


def _val_curve(run: dict):
    return curve(run, "val_loss", skip_start=True)


@figure("wsd_branches", experiment="wsd_branches")
def wsd_branches(runs: list[dict]):
    """(a) a stable run and its decay branches; (b) post-decay loss vs data with the Eq. 4 fit."""
    from .laws import FitError, fit_power_law
    parents = [r for r in runs if not r["config"]["train"]["init_from"]]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for p in parents:
        ax.plot(*_val_curve(p), color="0.4", lw=1.5, label="stable (constant LR)")
        kids = sorted((r for r in runs if r["config"]["train"]["init_from"] == p["hash"]),
                      key=lambda r: r["config"]["train"]["init_tokens"])
        cmap = plt.get_cmap("viridis")
        D, L = [], []
        for i, k in enumerate(kids):
            c = cmap(i / max(1, len(kids) - 1))
            d0 = k["config"]["train"]["init_tokens"]
            ax.plot(*_val_curve(k), color=c, lw=1.5, label=f"decay from {_si(d0)} tokens")
            D.append(k["status"]["tokens"])
            L.append(k["status"]["final_val_loss"])
            bx.plot(D[-1], L[-1], "o", color=c)
        try:
            fit = fit_power_law(D, L)
            xs = np.geomspace(min(D) / 1.5, max(D) * 3, 100)
            bx.plot(xs, fit(xs), "--", color="0.3",
                    label=f"$L_0 + A D^{{-\\gamma}}$: $L_0$={fit.L0:.3f}, $\\gamma$={fit.gamma:.2f}")
        except FitError as e:
            bx.text(0.05, 0.05, f"no fit: {e}", transform=bx.transAxes, fontsize=8)
    for a in (ax, bx):
        a.set_xscale("log")
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        a.grid(alpha=0.3)
        a.set_xlabel("training tokens D")
        a.legend(fontsize=8)
    ax.set_ylabel("held-out loss (nats/byte)")
    ax.set_title("(a) WSD decay branches off one stable run")
    bx.set_ylabel("post-decay held-out loss")
    bx.set_title("(b) post-decay loss vs data (Eq. 4 fit)")
    return fig


def _ordered_profiles(exp) -> list[str]:
    return [p for p in PROFILE_ORDER if p in exp.profiles] + [p for p in exp.profiles if p not in PROFILE_ORDER]


def select_runs(exp, root: Path, profile: str | None = None) -> tuple[str | None, list[dict], str]:
    """(profile, completed runs of its current expansion, a note saying what they are)."""
    from .sweep import DependencyPending, plan_runs
    if profile is not None and profile not in exp.profiles:
        raise ConfigError(f"figures: experiment {exp.name} has no profile {profile!r}; "
                          f"known: {', '.join(exp.profiles)}")
    first = None
    for prof in [profile] if profile else _ordered_profiles(exp):
        try:
            planned = {s.dir.name for s in plan_runs(exp, prof, root)}
        except DependencyPending as e:
            first = first or (None, [], str(e))
            continue
        base = Path(root) / exp.name / prof
        runs = [r for r in load_runs(root, exp.name, prof, only=planned) if r["state"] == "completed"]
        done = sum(run_state(base / h)[0] in DONE for h in planned)
        others = sum(1 for d in base.glob("*") if d.is_dir() and "." not in d.name and d.name not in planned)
        note = f"{len(runs)} completed of {len(planned)} planned runs" + (
            f"; {others} other run(s) under {base} not in the current expansion, ignored" if others else "")
        if runs and done == len(planned):
            return prof, runs, note
        if runs and first is None:
            first = (prof, runs, note + " (partial)")
    return first or (None, [], "no completed runs of the current expansion in any profile")


def _experiments() -> dict:
    """Experiment files of the repository by NAME (a NAME used twice is an error: they would share results)."""
    from .sweep import EXPERIMENTS_DIR, load_experiment
    out, paths = {}, {}
    for f in sorted(EXPERIMENTS_DIR.glob("*.py")):
        exp = load_experiment(str(f))
        if exp.name in out:
            raise ConfigError(f"figures: {f} and {paths[exp.name]} both have NAME {exp.name!r}; they would "
                              "mix their runs in results/: give the copy its own NAME")
        out[exp.name], paths[exp.name] = exp, f
    return out


def build_all(root: Path, out: Path, only=None, profile: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    experiments = _experiments()
    unknown = sorted(set(only or ()) - set(FIGURES))
    if unknown:
        raise ConfigError(f"figures: unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    for name, (exp_name, builder) in FIGURES.items():
        if only and name not in only:
            continue
        exp = experiments.get(exp_name)
        if exp is None:
            print(f"figures: {name}: no experiment file with NAME {exp_name!r} in experiments/; skipped")
            continue
        prof, runs, note = select_runs(exp, root, profile)
        if not runs:
            print(f"figures: {name}: {note} of experiment {exp_name!r} under {root}; skipped")
            continue
        others, other_notes = {}, {}
        for o in ALSO.get(name, ()):
            oexp = experiments.get(o)
            oprof, oruns, onote = select_runs(oexp, root, profile) if oexp else (None, [], "no experiment file")
            others[o], other_notes[o] = oruns, (oprof, sorted(r["hash"] for r in oruns), onote)
        fig = builder(runs, others) if ALSO.get(name) else builder(runs)
        for ext in ("png", "pdf"):
            fig.savefig(out / f"{name}.{ext}", dpi=150, bbox_inches="tight",
                        metadata={"CreationDate": None} if ext == "pdf" else None)
        plt.close(fig)
        manifest[name] = {"experiment": exp_name, "profile": prof, "runs": sorted(r["hash"] for r in runs),
                          "note": note, "files": [f"{name}.png", f"{name}.pdf"]}
        if other_notes:
            manifest[name]["also"] = {o: {"profile": p, "runs": h, "note": n} for o, (p, h, n) in other_notes.items()}
        print(f"figures: {name} <- {exp_name}/{prof}: {note}")
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    if not manifest_path.exists() or manifest_path.read_text() != text:
        manifest_path.write_text(text)
    return manifest


from . import figures_bsz  # noqa: E402,F401  (registers the batch-size paper's figures)
from . import figures_lr  # noqa: E402,F401  (registers the LR paper's Fitting figures)
from . import figures_mousse  # noqa: E402,F401  (registers the Mousse paper's figures)
from . import figures_mup  # noqa: E402,F401  (registers the LR paper's Transfer figures)

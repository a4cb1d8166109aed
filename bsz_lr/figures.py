"""Figures, built only from stored results (never by training).

Each builder is registered with the experiment and profile it reads; `build_all`
writes PNG + PDF per figure into the output folder and a manifest.json mapping
each figure to its experiment, profile, runs and the git commit.  The profile
used is the first of FIGURE_PROFILES that has completed runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

import matplotlib
import matplotlib.ticker
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .store import load_runs  # noqa: E402

__all__ = ["FIGURES", "figure", "build_all"]

FIGURE_PROFILES = ("cpu-long", "cpu", "smoke")
FIGURES: dict[str, tuple[str, Callable]] = {}


def figure(name: str, experiment: str):
    def register(fn):
        FIGURES[name] = (experiment, fn)
        return fn
    return register


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


@figure("tiny_lm_loss", experiment="tiny_lm")
def tiny_lm_loss(runs: list[dict]):
    """Train and held-out loss vs tokens for the default tiny model(s)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        m = r["metrics"]
        tr = [(x["tokens"], x["train_loss"]) for x in m if "train_loss" in x and x["tokens"] > 0]
        va = [(x["tokens"], x["val_loss"]) for x in m if "val_loss" in x and x["tokens"] > 0]
        c = r["config"]
        label = f"{c['model']['d_model']}d x {c['model']['n_layers']}L, lr {c['optim']['lr']:g}"
        line, = ax.plot(*zip(*tr), lw=1, alpha=0.6, label=f"train ({label})")
        if va:
            ax.plot(*zip(*va), "o-", ms=3, color=line.get_color(), label=f"held-out ({label})")
    ax.set_xscale("log")
    ax.axhline(5.545, ls=":", color="gray", lw=1)
    ax.text(ax.get_xlim()[0], 5.545, " uniform over bytes", va="top", fontsize=8, color="gray")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("loss (nats/byte)")
    ax.set_title("Tiny LM on Jane Austen (WSD, 1-sqrt decay)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _si(x: float) -> str:
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:g}"


def _val_curve(run: dict):
    pts = [(x["tokens"], x["val_loss"]) for x in run["metrics"] if "val_loss" in x and x["tokens"] > 0]
    return list(zip(*pts)) if pts else ([], [])


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


def build_all(root: Path, out: Path, only=None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    commit = _git_commit()
    for name, (exp, builder) in FIGURES.items():
        if only and name not in only:
            continue
        for profile in FIGURE_PROFILES:
            runs = [r for r in load_runs(root, exp, profile) if r["state"] == "completed"]
            if runs:
                break
        else:
            print(f"figures: {name}: no completed runs of experiment {exp!r} under {root}; skipped")
            continue
        fig = builder(runs)
        for ext in ("png", "pdf"):
            fig.savefig(out / f"{name}.{ext}", dpi=150, bbox_inches="tight",
                        metadata={"CreationDate": None} if ext == "pdf" else None)
        plt.close(fig)
        manifest[name] = {"experiment": exp, "profile": profile, "runs": sorted(r["hash"] for r in runs),
                          "git_commit": commit, "files": [f"{name}.png", f"{name}.pdf"]}
        print(f"figures: {name} <- {exp}/{profile} ({len(runs)} runs)")
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest

"""The batch-size paper's analysis of a stored batch sweep, and the dynamic batch schedule from it.

Input: runs as `store.load_runs` returns them (config, status, metrics rows); nothing here
trains or imports JAX.  One model size at a time (runs grouped by model config):

    >>> sizes = analyse_batch_sweep(runs)              # {label: SizeAnalysis}, smallest model first
    >>> a = sizes["d64 L2"]; a.targets, a.fits[0].revised.B_opt, a.bopt_law.k
    >>> arms = schedule_arms(runs, d_model=64, tokens=1_000_000)    # batch-schedule comparison

Every fit that cannot be made is kept as its reason (a string) in place of the fit.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from .batch import LossPowerLaw, b_simple, fit_loss_power_law
from .ess import ClassicalFit, RevisedFit, bootstrap, fit_classical, fit_revised, loo_error
from .power import FitError
from .targets import Crossings, crossings, smooth_curve, target_levels

__all__ = ["RunCurve", "TargetFit", "SizeAnalysis", "run_curves", "analyse_batch_sweep", "envelope",
           "dynamic_stages", "schedule_arms", "arm_label"]


@dataclasses.dataclass(frozen=True)
class RunCurve:
    hash: str
    label: str                 # the model: "d64 L2"
    n_params: int              # non-embedding
    batch: int                 # sequences per step
    batch_tokens: int
    lr: float
    seed: int
    tokens: np.ndarray         # held-out evaluations (step 0 excluded)
    steps: np.ndarray
    val_loss: np.ndarray
    warmup_steps: float
    noise: list                # [(tokens, grad_sq_micro, grad_sq)] when micro-batches were logged
    microbatches: int


def _label(cfg: dict) -> str:
    m = cfg["model"]
    return f"d{m['d_model']} L{m['n_layers']}" + (f" MoE{m['n_experts']}" if m["ffn"] == "moe" else "")


def run_curves(runs: list[dict]) -> list[RunCurve]:
    """One RunCurve per completed constant-batch run (diverged runs are left out)."""
    out = []
    for r in runs:
        c = r["config"]
        if c["data"]["batch_stages"] or r["status"].get("status") == "diverged":
            continue
        rows = r["metrics"]
        ev = [(x["step"], x["tokens"], x["val_loss"]) for x in rows if "val_loss" in x and x["step"] > 0]
        T, B = c["data"]["seq_len"], c["data"]["batch_size"]
        sch = c["schedule"]
        warm = sch["warmup_tokens"] / (B * T) if sch["warmup_tokens"] else sch["warmup_steps"]
        noise = [(x["tokens"], x["grad_sq_micro"], x["grad_sq"]) for x in rows if "grad_sq_micro" in x]
        out.append(RunCurve(r["hash"], _label(c), int(r["status"].get("params", {}).get("non_embedding", 0)), B,
                            B * T, c["optim"]["lr"], c["train"]["seed"],
                            np.array([e[1] for e in ev], float), np.array([e[0] for e in ev], float),
                            np.array([e[2] for e in ev], float), float(warm), noise,
                            int(c["train"].get("microbatches", 1))))
    return sorted(out, key=lambda rc: (rc.n_params, rc.batch, rc.seed))


@dataclasses.dataclass
class TargetFit:
    target: float
    batch_tokens: np.ndarray   # the batches that reached the target
    S: np.ndarray
    E: np.ndarray
    censored: list             # batch tokens of the runs that never reached it
    classical: ClassicalFit | str
    revised: RevisedFit | str          # form auto: c1, or ql with 5 points / a degenerate c1
    free: RevisedFit | str             # form free
    ci: dict                           # bootstrap intervals of the c1 fit: B_min, B_opt
    loo: dict                          # {"classical", "revised" (auto), "ql", "free"}: ess.loo_error


@dataclasses.dataclass
class SizeAnalysis:
    label: str
    n_params: int
    curves: list[RunCurve]
    targets: np.ndarray
    crossings: list[Crossings]         # per curve
    fits: list[TargetFit]
    bopt_law: LossPowerLaw | str
    bmin_law: LossPowerLaw | str
    noise: list                        # [(held-out loss, B_simple in tokens, batch tokens)]


def _try(fn, *a, **k):
    try:
        return fn(*a, **k)
    except FitError as e:
        return str(e)


def _noise_points(c: RunCurve, bins: int = 12) -> list:
    """B_simple (tokens) per log-token bin: ratio of the bin's mean squared norms (related-work.md)."""
    if c.microbatches < 2 or len(c.noise) < 4:
        return []
    tok = np.array([n[0] for n in c.noise], float)
    gs, gb = np.array([n[1] for n in c.noise]), np.array([n[2] for n in c.noise])
    edges = np.geomspace(tok.min(), tok.max() * (1 + 1e-9), bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (tok >= lo) & (tok < hi)
        if m.sum() < 2:
            continue
        bs = b_simple(gs[m], gb[m], c.batch_tokens / c.microbatches, c.batch_tokens)
        mid = float(np.exp(np.mean(np.log(tok[m]))))
        L = float(np.interp(np.log(mid), np.log(c.tokens), c.val_loss))
        if np.isfinite(bs):
            out.append((L, bs, c.batch_tokens))
    return out


def analyse_size(curves: list[RunCurve], n_targets: int = 8, window: int = 3, n_boot: int = 100,
                 spacing: str = "gap", loo: bool = True) -> SizeAnalysis:
    """One model size's batch sweep: targets, crossings, E(S) fits per target with bootstrap
    intervals (n_boot) and, with loo, leave-one-out errors (most of the time), B_opt(L), B_min(L)."""
    curves = [c for c in curves if c.tokens.size >= 2]
    if len(curves) < 2:
        raise FitError(f"batch sweep: need >= 2 runs with evaluations, got {len(curves)}")
    targets = target_levels([(c.tokens, c.val_loss) for c in curves], n=n_targets, spacing=spacing, margin=0.03)
    cross = [crossings(c.steps, c.val_loss, targets, c.batch_tokens, c.warmup_steps, window) for c in curves]
    fits = []
    for j, L in enumerate(targets):
        ok = [i for i, x in enumerate(cross) if np.isfinite(x.steps[j])]
        S = np.array([cross[i].steps[j] for i in ok])
        E = np.array([cross[i].tokens[j] for i in ok])
        bt = np.array([curves[i].batch_tokens for i in ok])
        censored = [curves[i].batch_tokens for i, x in enumerate(cross) if x.censored[j]]
        rev = _try(fit_revised, S, E, form="auto")
        free = _try(fit_revised, S, E, form="free")
        cla = _try(fit_classical, S, E)
        same_form = lambda s, e, **k: fit_revised(s, e, form=rev.form, **k)     # refits keep the fit's form
        ci = _try(bootstrap, same_form, S, E, n=n_boot) if isinstance(rev, RevisedFit) else {}
        warm = getattr(rev, "_x", None)     # leave-one-out refits start from the full fit (+ 4 random starts)
        loo_fit = lambda s, e: fit_revised(s, e, form="auto", restarts=4, x0=warm)
        errs = {} if not loo else {
               "classical": _try(loo_error, fit_classical, S, E) if len(S) >= 4 else {},
               "revised": _try(loo_error, loo_fit, S, E) if len(S) >= 7 else {},
               "ql": _try(loo_error, lambda s, e: fit_revised(s, e, form="ql", restarts=4), S, E)
               if len(S) >= 6 else {},
               "free": _try(loo_error, lambda s, e: fit_revised(s, e, form="free"), S, E) if len(S) >= 6 else {}}
        fits.append(TargetFit(float(L), bt, S, E, censored, cla, rev, free, ci if isinstance(ci, dict) else {}, errs))
    good = [f for f in fits if isinstance(f.revised, RevisedFit)]
    Ls = [f.target for f in good]
    bopt = _try(fit_loss_power_law, Ls, [f.revised.B_opt for f in good])
    bmin = _try(fit_loss_power_law, Ls, [f.revised.B_min for f in good])
    noise = [p for c in curves for p in _noise_points(c)]
    return SizeAnalysis(curves[0].label, curves[0].n_params, curves, targets, cross, fits, bopt, bmin, noise)


_CACHE: dict = {}       # (runs' hashes + metrics checksums, n_targets, seeds) -> analysis: figures,
                        # the report and Derived schedules ask for the same sweep several times


def analyse_batch_sweep(runs: list[dict], n_targets: int = 8, seeds: str = "first") -> dict:
    """{model label: SizeAnalysis (or the reason it could not be analysed)}, smallest model first.

    seeds "first": one curve per (model, batch), the lowest seed."""
    key = (json.dumps(sorted((r["hash"], r["status"].get("metrics_sha256", "")) for r in runs)), n_targets, seeds)
    if key not in _CACHE:
        curves = run_curves(runs)
        if seeds == "first":          # run_curves sorts by seed within a (model, batch)
            seen, keep = set(), []
            for c in curves:
                if (c.label, c.batch) not in seen:
                    seen.add((c.label, c.batch))
                    keep.append(c)
            curves = keep
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = {label: _try(analyse_size, [c for c in curves if c.label == label], n_targets)
                       for label in dict.fromkeys(c.label for c in curves)}
    return _CACHE[key]


# ---------------------------------------------------------------------------
# The dynamic batch-size schedule (spec section 5).

def envelope(curves: list[RunCurve], tokens) -> np.ndarray:
    """The lowest smoothed held-out loss any constant batch has reached at each token count (a
    baseline loss curve that does not depend on the batch; log-interpolated between evaluations)."""
    tokens = np.asarray(tokens, float)
    ys = []
    for c in curves:
        y = smooth_curve(c.val_loss)
        v = np.interp(np.log(tokens), np.log(c.tokens), y, left=np.nan, right=np.nan)
        ys.append(v)
    return np.nanmin(np.stack(ys), axis=0)


def dynamic_stages(a: SizeAnalysis, tokens: int, n_stages: int = 4, decay_fraction: float = 0.2,
                   seq_len: int | None = None) -> dict:
    """B(D) = B_opt(L_hat(D)) at the middle of n equal stages of the stable phase, L_hat the
    sweep's envelope, rounded (in log) to the sweep's batch sizes and kept inside them; the last
    batch runs through the decay.  Returns the schedule with the numbers it came from."""
    if not isinstance(a.bopt_law, LossPowerLaw):
        raise FitError(f"dynamic schedule: no B_opt(L) law for {a.label} ({a.bopt_law})")
    stable = tokens * (1 - decay_fraction)
    bounds = np.linspace(0, stable, n_stages + 1)
    mids = 0.5 * (bounds[:-1] + bounds[1:])
    L_hat = envelope(a.curves, mids)
    if np.any(np.isnan(L_hat)):
        raise FitError(f"dynamic schedule: the sweep's curves do not cover {mids[np.isnan(L_hat)][0]:.0f} tokens")
    seq = seq_len or a.curves[0].batch_tokens // a.curves[0].batch
    sizes = np.array(sorted({c.batch for c in a.curves}))
    b_opt = a.bopt_law(L_hat) / seq                     # sequences
    idx = [int(np.argmin(np.abs(np.log(sizes) - np.log(b)))) for b in b_opt]
    batches = [int(sizes[i]) for i in idx]
    kept, prev = [], batches[0]                         # a stage that keeps the batch is no switch
    for t, b in zip(bounds[1:-1], batches[1:]):
        if b != prev:
            kept.append((int(t), b))
            prev = b
    fitted = [f.target for f in a.fits if isinstance(f.revised, RevisedFit)]
    L_lo, L_hi = min(fitted), max(fitted)      # B_opt(L) is extrapolated outside the fitted targets
    return {"batch_size": batches[0], "batch_stages": tuple(kept), "stage_starts": bounds[:-1].tolist(),
            "L_hat": L_hat.tolist(), "B_opt_tokens": a.bopt_law(L_hat).tolist(), "batches": batches,
            "extrapolated": [bool(L > L_hi or L < L_lo) for L in L_hat]}


def _best_constant(a: SizeAnalysis, tokens: float) -> int:
    at = [(float(np.interp(np.log(tokens), np.log(c.tokens), smooth_curve(c.val_loss), right=np.nan)), c.batch)
          for c in a.curves]
    at = [x for x in at if np.isfinite(x[0])]
    if not at:
        raise FitError(f"best constant batch: no run of {a.label} reaches {tokens:.0f} tokens")
    return min(at)[1]


def schedule_arms(runs: list[dict], d_model: int, tokens: int, n_stages: int = 4,
                  decay_fraction: float = 0.2) -> list[tuple]:
    """The arms of the scheduler comparison as (data.batch_size, data.batch_stages,
    schedule.batch_lr_scaling): constant smallest and largest batch of the dynamic schedule,
    the best constant batch of the sweep at `tokens`, a doubling schedule (Merrill et al. 2025:
    x2 at each stage boundary with LR x sqrt 2) from the dynamic schedule's first batch, the
    dynamic schedule (LR unchanged, the paper's default) and the dynamic schedule with sqrt LR."""
    sizes = analyse_batch_sweep(runs)
    a = next((v for k, v in sizes.items() if k.startswith(f"d{d_model} ")), None)
    if a is None:
        raise FitError(f"schedule arms: no analysed model with d_model={d_model} in the sweep ({list(sizes)})")
    if isinstance(a, str):
        raise FitError(f"schedule arms: d_model={d_model}: {a}")
    dyn = dynamic_stages(a, tokens, n_stages, decay_fraction)
    b0, stages = dyn["batch_size"], dyn["batch_stages"]
    if not stages:
        raise FitError(f"schedule arms: B_opt(L) gives one batch ({b0}) over the whole run: nothing to schedule")
    b_last = stages[-1][1]
    bounds = dyn["stage_starts"][1:]
    doubling = tuple((int(t), b0 * 2 ** (i + 1)) for i, t in enumerate(bounds))
    arms = [(b0, (), "none"), (b_last, (), "none"), (_best_constant(a, tokens), (), "none"),
            (b0, doubling, "sqrt"), (b0, stages, "none"), (b0, stages, "sqrt")]
    return list(dict.fromkeys(arms))


def arm_label(cfg: dict) -> str:
    """A readable name of a scheduler arm from its config."""
    st, b0 = [tuple(x) for x in cfg["data"]["batch_stages"]], cfg["data"]["batch_size"]
    sq = cfg["schedule"].get("batch_lr_scaling", "none") == "sqrt"
    if not st:
        return f"constant {b0}"
    seq = [b0] + [b for _, b in st]
    # schedule_arms' doubling arm: x2 at every one of equally spaced stage boundaries (>= 3
    # batches); a dynamic schedule that happens to be the same is the same run, named doubling
    at = [t for t, _ in st]
    doubling = (len(seq) >= 3 and all(b2 == 2 * b1 for b1, b2 in zip(seq, seq[1:]))
                and len({round(t2 - t1, -2) for t1, t2 in zip([0] + at, at)}) == 1)
    name = ("doubling " if doubling else "dynamic ") + "-".join(map(str, seq))
    return name + (" + sqrt LR" if sq else "")

"""`bsz_lr advise`: from a results table of cheap runs, the peak LR and batch size for a target run.

Reads the results-table format (results_table.py: one row per run with N, D, peak LR, batch in
tokens and the final loss), reports every unusable row by its line number and leaves it out,
then per batch size (the optimal LR moves with the batch):

* Eq. 2 per (N, D) group through its LRs (laws.fit_lr_parabola; a diverged run bounds the
  optimum, an optimum at the edge of the group's LR grid is reported, never extrapolated);
* Eq. 6 over those optima (laws.fit_lr_law), the target's eta* = c N^a D^b, and a bootstrap
  interval of that prediction (the optima resampled, the law refitted, the prediction's
  percentiles);
* the near-optimal-band estimator as a second opinion (laws.band_points);
* how far the target lies outside the fitted ranges of N and D.

With 3 or more batch sizes in the table, also the batch: per (N, D) the batch with the lowest
final loss (each at its best LR; the same parabola-in-log fit as Eq. 2, edge optima reported),
B_opt = c N^a D^b over those optima (the Eq. 6 form; c D^b with one N), the target's B_opt with a
bootstrap interval, and a schedule of B_opt at token milestones D_target / 8, / 4, / 2, 1 (a
batch that grows with the tokens seen, as the batch-size paper's scheduler does).  The fits are
the papers' (laws.lr); nothing here fits a law of its own.

When the table points to loss curves (its `curve` column) at >= 6 batch sizes of one model size,
also the batch-size paper's analysis of them (laws.analysis.analyse_size, the same code as
bsz_lr's own batch sweeps): per model size the revised E(S) at 8 target losses, B_opt(L) and
B_min(L) as power laws in the loss, and from the size nearest the target a loss-milestone
schedule (switch to B_opt(L) once the loss reaches L) and, where the curves cover the target's
tokens, the paper's token-milestone schedule B(D) = B_opt(L_hat(D)) (laws.analysis.dynamic_stages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .laws import FitError, LRLaw, band_points, fit_lr_law, fit_lr_parabola

__all__ = ["RowProblem", "parse_columns", "map_columns", "clean_rows", "LRAdvice", "lr_advice", "advise",
           "format_advice", "plot_advice", "BatchAdvice", "batch_advice", "read_curve", "curve_advice"]

FIRST_ROW = 2          # the line number of a CSV's first data row (line 1 is the header)


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str


def _positive(row: dict, key: str):
    v = row.get(key)
    if v is None or v == "":
        return None, f"{key} is missing"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None, f"{key} is not a number ({v!r})"
    if not math.isfinite(x) or x <= 0:
        return None, f"{key} must be positive and finite, got {v}"
    return x, None


TARGETS = ("run", "n_params", "tokens", "lr", "batch_tokens", "loss", "status", "seed", "curve", "warmup_tokens",
           "stable_tokens")
_TEXT = ("run", "status", "curve")     # --columns copies these as text


def parse_columns(text: str, header: list[str]) -> dict[str, str]:
    """`--columns`: "n_params=params,batch_tokens=batch*seq_len,tokens=tokens_M*1e6,lr=peak_lr" maps
    the table's own columns onto the results-table names, with + - * / and numbers for units.
    A bad spec or a column the table does not have is a one-line error."""
    import ast
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        target, eq, expr = part.partition("=")
        target = target.strip()
        if not eq or target not in TARGETS:
            raise ValueError(f"--columns: expected NAME=EXPRESSION with NAME one of {', '.join(TARGETS)}, got {part!r}")
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError:
            raise ValueError(f"--columns: {target}: cannot read {expr.strip()!r}") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in header:
                raise ValueError(f"--columns: {target}: the table has no column {node.id!r} "
                                 f"(it has {', '.join(header)})")
            if not isinstance(node, (ast.Expression, ast.BinOp, ast.Name, ast.Constant, ast.Load, ast.Add, ast.Sub,
                                     ast.Mult, ast.Div, ast.UnaryOp, ast.USub)):
                raise ValueError(f"--columns: {target}: only column names, numbers and + - * / are allowed")
        out[target] = expr.strip()
    return out


def map_columns(rows: list[dict], mapping: dict[str, str]) -> list[dict]:
    """Each row with the mapped columns computed (parse_columns); a row whose expression cannot be
    computed (an empty or non-numeric source) gets the reason, reported by clean_rows."""
    import ast
    import operator
    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

    def ev(node, row):
        if isinstance(node, ast.Expression):
            return ev(node.body, row)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.UnaryOp):
            return -ev(node.operand, row)
        if isinstance(node, ast.Name):
            v = row.get(node.id)
            if v in (None, ""):
                raise ValueError(f"column {node.id} is empty")
            try:
                return float(v)
            except ValueError:
                raise ValueError(f"column {node.id} is not a number ({v!r})") from None
        return ops[type(node.op)](ev(node.left, row), ev(node.right, row))

    trees = {t: ast.parse(e, mode="eval") for t, e in mapping.items()}
    out = []
    for r in rows:
        new = dict(r)
        for t, tree in trees.items():
            if t in _TEXT and isinstance(tree.body, ast.Name):
                new[t] = r.get(tree.body.id)
                continue
            try:
                new[t] = repr(ev(tree, r))
            except (ValueError, ZeroDivisionError) as e:
                new[t], new["_why"] = None, f"{t} = {mapping[t]}: {e}"
        out.append(new)
    return out


def clean_rows(rows: list[dict]) -> tuple[list[dict], list[RowProblem]]:
    """The usable rows as {"line", "N", "D", "lr", "batch", "loss", "curve", "warmup", "stable"} (a
    diverged run's loss is +inf; the last three None when not given)
    and a RowProblem for every row left out: a missing, non-numeric or non-positive N, D, LR or
    batch; a NaN or missing loss (unless the run is marked diverged); a duplicate run id or a
    duplicate (N, D, LR, batch, seed)."""
    good, bad, seen = [], [], {}
    for i, r in enumerate(rows):
        line = FIRST_ROW + i
        vals, why = {}, r.get("_why")
        for key, name in () if why else (("n_params", "N"), ("tokens", "D"), ("lr", "lr"), ("batch_tokens", "batch")):
            vals[name], why = _positive(r, key)
            if why:
                break
        if why is None:
            status, loss = (r.get("status") or "").strip(), r.get("loss")
            if status == "diverged":
                vals["loss"] = math.inf
            elif loss is None or loss == "":
                why = "loss is missing (and the run is not marked diverged)"
            else:
                try:
                    vals["loss"] = float(loss)
                except (TypeError, ValueError):
                    why = f"loss is not a number ({loss!r})"
                else:
                    if math.isnan(vals["loss"]):
                        why = "loss is NaN"
                    elif math.isinf(vals["loss"]):
                        why = "loss is infinite (mark a diverged run with status=diverged)"
        if why is None:
            keys = [("run", r.get("run"))] if r.get("run") not in (None, "") else []
            keys.append(("point", (vals["N"], vals["D"], vals["lr"], vals["batch"], r.get("seed"))))
            dup = next((seen[k] for k in keys if k in seen), None)
            if dup is not None:
                why = f"duplicate of line {dup}"
            else:
                seen.update({k: line for k in keys})
        if why:
            bad.append(RowProblem(line, why))
        else:
            extra = {"curve": (r.get("curve") or "").strip() or None, "curve_why": None}
            for key, name in (("warmup_tokens", "warmup"), ("stable_tokens", "stable")):
                v = r.get(key)
                try:
                    extra[name] = None if v in (None, "") else float(v)
                    ok = extra[name] is None or (math.isfinite(extra[name]) and extra[name] >= 0)
                except (TypeError, ValueError):
                    extra[name], ok = None, False
                if not ok and extra["curve"]:
                    extra["curve_why"] = f"{key} must be a number >= 0, got {v!r}"
            good.append({"line": line, **vals, **extra})
    return good, bad


@dataclass
class LRAdvice:
    batch: float                       # tokens per step of these runs
    eta: float                         # Eq. 6's eta* at the target
    interval: tuple                    # bootstrap percentile interval of eta
    law: LRLaw
    band_eta: float | None             # the near-optimal-band estimator's eta* at the target
    band_law: LRLaw | str
    optima: list                       # (N, D, eta*) used
    edges: list                        # (N, D, reason) of the groups left out
    n_range: tuple
    d_range: tuple
    outside: list = field(default_factory=list)   # how the target lies outside the fitted ranges


def _outside(target, n_range, d_range) -> list[str]:
    """How far the target (N, D) lies outside the fitted ranges, in words (empty when inside)."""
    pairs = (("N", target[0], n_range), ("D", target[1], d_range))
    return ([f"{what} = {t:,.4g} is {t / hi:.2g}x the largest in the table ({hi:,.4g})"
             for what, t, (lo, hi) in pairs if t > hi] +
            [f"{what} = {t:,.4g} is below the smallest in the table ({lo:,.4g})"
             for what, t, (lo, hi) in pairs if t < lo])


def _design(N, D, with_n: bool) -> np.ndarray:
    """Rows [1, log N, log D] (or [1, log D]): the log-linear law eta or B = c N^a D^b."""
    N, D = np.atleast_1d(np.asarray(N, float)), np.atleast_1d(np.asarray(D, float))
    return np.stack([np.ones_like(D)] + ([np.log(N)] if with_n else []) + [np.log(D)], 1)


def _predict_intervals(X, y, X_at, n_boot: int, seed: int, level: float) -> list[tuple]:
    """Bootstrap percentile intervals of exp(x @ coef) at each row x of X_at, coef the least-squares
    fit of log y on X refitted on resampled points (rank-deficient resamples skipped); all the
    rows share one set of resamples."""
    rng, preds = np.random.default_rng(seed), []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if np.linalg.matrix_rank(X[i]) == X.shape[1]:
            coef = np.linalg.lstsq(X[i], np.log(y[i]), rcond=None)[0]
            preds.append(np.exp(X_at @ coef))
    if len(preds) < 10:
        return [(math.nan, math.nan)] * len(X_at)
    lo, hi = np.percentile(np.array(preds), [(1 - level) * 50, (1 + level) * 50], axis=0)
    return [(float(a), float(b)) for a, b in zip(lo, hi)]


def lr_advice(rows: list[dict], target_params: float, target_tokens: float, *, n_boot: int = 1000,
              seed: int = 0, level: float = 0.9) -> list[LRAdvice]:
    """Per batch size in the cleaned rows (clean_rows), the LR advice for the target; a FitError
    naming what is missing when no batch size has enough for Eq. 6."""
    if not rows:
        raise FitError("no usable rows in the table")
    out, why = [], []
    for batch in sorted({r["batch"] for r in rows}):
        rs = [r for r in rows if r["batch"] == batch]
        optima, edges = [], []
        for n, d in sorted({(r["N"], r["D"]) for r in rs}):
            g = sorted((r["lr"], r["loss"]) for r in rs if r["N"] == n and r["D"] == d)
            try:
                p = fit_lr_parabola([x for x, _ in g], [y for _, y in g])
                optima.append((n, d, p.eta_star))
            except FitError as e:
                edges.append((n, d, str(e)))
        try:
            N, D, eta = (np.array(v, float) for v in zip(*optima)) if optima else (np.array([]),) * 3
            law = fit_lr_law(N, D, eta, n_boot=n_boot, seed=seed, level=level)
        except FitError as e:
            why.append((batch, f"{e} ({len(optima)} (N, D) groups with an interior optimum, {len(edges)} without)"))
            continue
        target = (float(target_params), float(target_tokens))
        try:
            band = fit_lr_law(*band_points([r["N"] for r in rs], [r["D"] for r in rs], [r["lr"] for r in rs],
                                           [r["loss"] for r in rs]), n_boot=0)
            band_eta = float(band(*target))
        except FitError as e:
            band, band_eta = str(e), None
        n_range, d_range = (float(N.min()), float(N.max())), (float(D.min()), float(D.max()))
        outside = _outside(target, n_range, d_range)
        out.append(LRAdvice(float(batch), float(law(*target)),
                            _predict_intervals(_design(N, D, True), eta, _design(*target, True), n_boot, seed,
                                               level)[0], law, band_eta, band,
                            optima, edges, n_range, d_range, outside))
    if not out:
        by_reason = {}                       # batch sizes that failed for the same reason, said once
        for batch, reason in why:
            by_reason.setdefault(reason, []).append(f"{batch:,.0f}")
        raise FitError("no batch size has enough runs for the LR law: " + "; ".join(
            f"batch{'es' if len(bs) > 1 else ''} {', '.join(bs)} tokens: {r}" for r, bs in by_reason.items()))
    return out


@dataclass
class BatchAdvice:
    batch: float                       # B_opt at the target, tokens per step
    interval: tuple
    law: LRLaw                         # B_opt = c N^a D^b (a = 0 when the table has one N)
    optima: list                       # (N, D, B_opt) used
    edges: list                        # (N, D, reason) of the groups left out
    schedule: list                     # (tokens, batch, (lo, hi)): B_opt(N_target, D) at D_target / 8 .. D_target
    outside: list = field(default_factory=list)   # how the target lies outside the fitted N and D


def batch_advice(rows: list[dict], target_params: float, target_tokens: float, *, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.9) -> BatchAdvice:
    """From final losses at several batch sizes (each with its best LR): per (N, D) the optimal batch
    (Eq. 2's parabola, in log batch, through each batch's best loss; an optimum at the edge of the
    batches tried is reported, never extrapolated), then B_opt = c N^a D^b over those optima (with
    one N: c D^b), the target's B_opt with a bootstrap interval, and a token-milestone schedule."""
    from .laws import fit_horizon
    optima, edges = [], []
    for n, d in sorted({(r["N"], r["D"]) for r in rows}):
        best = {}
        for r in rows:
            if r["N"] == n and r["D"] == d:
                best[r["batch"]] = min(best.get(r["batch"], math.inf), r["loss"])
        if len(best) < 3:
            continue
        try:
            p = fit_lr_parabola(list(best), list(best.values()))
            optima.append((n, d, p.eta_star))
        except FitError as e:
            edges.append((n, d, str(e).replace("Eq. 2", "optimal batch").replace("LR", "batch")))
    if not optima:
        raise FitError("batch law: no (N, D) group with >= 3 batch sizes and an interior optimum "
                       f"({len(edges)} groups with an edge optimum)")
    N, D, Bs = (np.array(v, float) for v in zip(*optima))
    target = (float(target_params), float(target_tokens))
    with_n = np.unique(N).size >= 2
    if with_n:
        law = fit_lr_law(N, D, Bs, n_boot=n_boot, seed=seed, level=level)
    else:
        h = fit_horizon(D, Bs, n_boot=n_boot, seed=seed, level=level)
        law = LRLaw(h.c, 0.0, -h.beta, h.r2, h.n, (0.0, 0.0), (-h.beta_ci[1], -h.beta_ci[0]))
    d_at = [target[1] * f for f in (1 / 8, 1 / 4, 1 / 2, 1)]       # the milestones; the last is the target
    cis = _predict_intervals(_design(N, D, with_n), Bs, _design([target[0]] * 4, d_at, with_n), n_boot, seed, level)
    interval = cis[-1]
    sched = [(d, float(law(target[0], d)), ci) for d, ci in zip(d_at, cis)]
    outside = _outside(target, (float(N.min()), float(N.max())), (float(D.min()), float(D.max())))
    return BatchAdvice(float(law(*target)), interval, law, optima, edges, sched, outside)


def read_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, val_loss) of a loss-curve file: JSON lines (bsz_lr's metrics.jsonl; lines without
    val_loss are skipped) or a CSV with tokens and val_loss columns.  ValueError with the reason."""
    import csv
    import json
    pts = []
    try:
        with open(path, newline="") as f:
            if path.suffix == ".csv":
                rows = list(csv.DictReader(f))
            else:
                rows = [json.loads(line) for line in f if line.strip()]
        for r in rows:
            if r.get("val_loss") not in (None, "") and r.get("tokens") not in (None, ""):
                pts.append((float(r["tokens"]), float(r["val_loss"])))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"unreadable ({type(e).__name__}: {e})") from None
    if not pts:
        raise ValueError("no rows with tokens and val_loss")
    t, y = (np.array(v, float) for v in zip(*sorted(pts)))
    return t, y


def _find(curve: str, base: Path | None) -> Path | None:
    p = Path(curve)
    for c in ([p] if p.is_absolute() else [p] + ([base / p] if base is not None else [])):
        if c.is_file():
            return c
    return None


MIN_CURVE_BATCHES = 6      # the revised E(S) (c1) needs 6 points per target loss


def curve_advice(rows: list[dict], target_params: float, target_tokens: float, base: Path | None = None,
                 n_stages: int = 4, decay_fraction: float = 0.2, n_boot: int = 100) -> dict:
    """The batch-size paper's analysis of the loss curves the cleaned rows point to.

    Per model size N and batch, the curve of the run with the lowest final loss (its best LR and
    longest horizon), read up to its stable_tokens (the constant-LR phase) with crossings inside
    warmup_tokens left out; per N with curves at >= 6 batches laws.analysis.analyse_size (revised
    E(S) per target loss, B_opt(L), B_min(L)); from the size nearest the target in log N a
    loss-milestone schedule and, when its curves cover the target's tokens, the token-milestone
    schedule of dynamic_stages.  Unreadable curves are reported by line and left out."""
    from .laws.analysis import RunCurve, analyse_size, dynamic_stages
    from .laws.batch import LossPowerLaw
    from .laws.ess import RevisedFit
    problems, best = [], {}
    for r in rows:
        if r.get("curve") and math.isfinite(r["loss"]):
            k = (r["N"], r["batch"])
            if k not in best or r["loss"] < best[k]["loss"]:
                best[k] = r
    curves = {}
    for (n, b), r in sorted(best.items()):
        if r["curve_why"]:
            problems.append({"line": r["line"], "reason": r["curve_why"]})
            continue
        path = _find(r["curve"], base)
        if path is None:
            problems.append({"line": r["line"], "reason": f"curve {r['curve']}: no such file"})
            continue
        try:
            t, y = read_curve(path)
        except ValueError as e:
            problems.append({"line": r["line"], "reason": f"curve {r['curve']}: {e}"})
            continue
        keep = (t > 0) & np.isfinite(y) & (t <= (r["stable"] if r["stable"] is not None else math.inf))
        if keep.sum() < 2:
            problems.append({"line": r["line"], "reason": f"curve {r['curve']}: fewer than 2 evaluations "
                             "in the constant-LR phase (stable_tokens)"})
            continue
        warm = (r["warmup"] or 0.0) / b
        curves.setdefault(n, []).append(RunCurve(str(r["line"]), f"N {n:,.4g}", int(n), int(b), int(b), r["lr"], 0,
                                                 t[keep], t[keep] / b, y[keep], warm, [], 1))
    sizes, analyses = [], {}
    for n, cs in sorted(curves.items()):
        if len(cs) < MIN_CURVE_BATCHES:
            sizes.append({"n_params": n, "batches": len(cs), "note": f"curves at {len(cs)} batch sizes; "
                          f"the E(S) fit needs >= {MIN_CURVE_BATCHES}"})
            continue
        try:
            a = analyse_size(cs, n_boot=n_boot, loo=False)
        except FitError as e:
            sizes.append({"n_params": n, "batches": len(cs), "note": str(e)})
            continue
        analyses[n] = a
        laws = {}
        for name, law in (("B_opt", a.bopt_law), ("B_min", a.bmin_law)):
            laws[name] = ({"B_ref": law.B_ref, "L_ref": law.L_ref, "k": law.k, "k_ci": list(law.k_ci), "r2": law.r2,
                           "points": law.n} if isinstance(law, LossPowerLaw) else {"note": law})
        sizes.append({"n_params": n, "batches": len(cs), "laws": laws, "targets": [
            {"loss": f.target, "B_opt": f.revised.B_opt, "B_min": f.revised.B_min,
             "B_opt_ci": list(f.ci.get("B_opt", (math.nan, math.nan))), "points": int(len(f.S)),
             "censored": len(f.censored)} if isinstance(f.revised, RevisedFit) else
            {"loss": f.target, "note": f.revised} for f in a.fits]})
    out = {"sizes": sizes, "problems": problems}
    if not analyses:
        out["note"] = (f"no model size has readable curves at >= {MIN_CURVE_BATCHES} batch sizes"
                       if curves or problems else "the table points to no loss curves")
        return out
    n0 = min(analyses, key=lambda n: abs(math.log(n / target_params)))
    a = analyses[n0]
    if not isinstance(a.bopt_law, LossPowerLaw):
        out["note"] = f"N = {n0:,.4g}: no B_opt(L) law ({a.bopt_law})"
        return out
    out["from_n_params"] = n0
    out["loss_schedule"] = [{"loss": f.target, "B_opt": float(a.bopt_law(f.target)),
                             "interval": list(f.ci.get("B_opt", (math.nan, math.nan)))}
                            for f in sorted(a.fits, key=lambda f: -f.target) if isinstance(f.revised, RevisedFit)]
    out["n_ratio"] = target_params / n0
    try:
        dyn = dynamic_stages(a, int(target_tokens), n_stages, decay_fraction)
        out["token_schedule"] = {"batch_tokens": dyn["batch_size"],
                                 "stages": [{"from_tokens": t, "batch_tokens": b} for t, b in dyn["batch_stages"]],
                                 "loss_at_stage": dyn["L_hat"], "extrapolated": dyn["extrapolated"]}
    except FitError as e:
        out["token_schedule"] = {"note": str(e)}
    return out


def advise(rows: list[dict], target_params: float, target_tokens: float, plot=None, base: Path | None = None,
           **kw) -> dict:
    """The whole advice as plain data (what `--json` prints); plot: also write plot_advice there;
    base: the table's folder (relative curve paths are looked up there too)."""
    good, bad = clean_rows(rows)
    res = {"target": {"n_params": target_params, "tokens": target_tokens},
           "rows": {"used": len(good), "left_out": len(bad),
                    "problems": [{"line": p.line, "reason": p.reason} for p in bad]}}
    try:
        lr = lr_advice(good, target_params, target_tokens, **kw)
    except FitError as e:
        lr, res["lr_note"] = [], str(e)
    res["lr"] = [{"batch_tokens": a.batch, "eta": a.eta, "interval": list(a.interval),
                  "optima": [list(o) for o in a.optima],
                  "law": {"c": a.law.c, "a": a.law.a, "b": a.law.b, "r2": a.law.r2, "points": a.law.n,
                          "a_ci": list(a.law.a_ci), "b_ci": list(a.law.b_ci)},
                  "band_eta": a.band_eta, "groups_used": len(a.optima),
                  "edge_groups": [{"n_params": n, "tokens": d, "reason": r} for n, d, r in a.edges],
                  "n_range": list(a.n_range), "tokens_range": list(a.d_range), "outside": a.outside}
                 for a in lr]
    if len({r["batch"] for r in good}) < 3:
        res["batch"] = {"note": "the table has fewer than 3 batch sizes: no batch law"}
    else:
        try:
            b = batch_advice(good, target_params, target_tokens, **kw)
            res["batch"] = {"batch_tokens": b.batch, "interval": list(b.interval),
                            "law": {"c": b.law.c, "a": b.law.a, "b": b.law.b, "r2": b.law.r2, "points": b.law.n},
                            "optima": [list(o) for o in b.optima],
                            "edge_groups": [{"n_params": n, "tokens": d, "reason": r} for n, d, r in b.edges],
                            "schedule": [{"until_tokens": t, "batch_tokens": x, "interval": list(ci)}
                                         for t, x, ci in b.schedule], "outside": b.outside}
        except FitError as e:
            res["batch"] = {"note": f"no batch law: {e}"}
    if any(r["curve"] for r in good):
        res["batch_curves"] = curve_advice(good, target_params, target_tokens, base,
                                           n_boot=max(10, min(100, kw.get("n_boot", 100))))
    if not res["lr"] and "note" in res["batch"] and "loss_schedule" not in res.get("batch_curves", {}):
        curves = res.get("batch_curves", {}).get("note")
        raise FitError(f"{res['lr_note']}; and {res['batch']['note']}" + (f"; and from the curves: {curves}" if curves else ""))
    if plot is not None:
        plot_advice(good, res, plot)
    return res


def plot_advice(rows: list[dict], res: dict, path) -> None:
    """One page of the advice's fits: per batch size, loss vs LR of every (N, D) group and eta* vs N
    per D with Eq. 6's lines and the target's prediction and interval; then, when fitted, the
    batch law's optima vs D with its lines and the target, and B_opt(L), B_min(L) per model size
    from the loss curves."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    adv = res["lr"]
    has_batch = "law" in res["batch"]
    has_curves = any("laws" in x for x in res.get("batch_curves", {}).get("sizes", []))
    n_rows = len(adv) + (1 if has_batch or has_curves else 0)
    if n_rows == 0:
        raise FitError("--plot: nothing was fitted")
    fig, axes = plt.subplots(n_rows, 2, figsize=(12, 4.2 * n_rows), squeeze=False)
    t = res["target"]
    if has_batch or has_curves:
        _plot_batch(axes[-1][0], axes[-1][1], res, has_batch, has_curves)
    for (a1, a2), a in zip(axes, adv):
        rs = [r for r in rows if r["batch"] == a["batch_tokens"]]
        groups = sorted({(r["N"], r["D"]) for r in rs})
        cmap = plt.get_cmap("viridis")
        for i, (n, d) in enumerate(groups):
            g = sorted((r["lr"], r["loss"]) for r in rs if r["N"] == n and r["D"] == d and math.isfinite(r["loss"]))
            if g:
                a1.plot(*zip(*g), "o-", ms=3, lw=1, color=cmap(i / max(1, len(groups) - 1)),
                        label=f"N {n:,.3g}, D {d:,.3g}" if len(groups) <= 12 else None)
        a1.set_xscale("log")
        a1.set_xlabel("peak LR")
        a1.set_ylabel("final loss")
        a1.set_title(f"batch {a['batch_tokens']:,.0f} tokens: loss vs LR per (N, D)", fontsize=9)
        a1.grid(alpha=0.3)
        if len(groups) <= 12:
            a1.legend(fontsize=6)
        law = a["law"]
        Ds = sorted({d for _, d, _ in a["optima"]})
        Ns = np.geomspace(min(a["n_range"][0], t["n_params"]), max(a["n_range"][1], t["n_params"]), 50)
        for i, d in enumerate(Ds):
            c = cmap(i / max(1, len(Ds) - 1))
            pts = [(n, e) for n, dd, e in a["optima"] if dd == d]
            a2.plot(*zip(*pts), "o", color=c, label=f"D = {d:,.3g}")
            a2.plot(Ns, law["c"] * Ns ** law["a"] * d ** law["b"], "-", lw=1, color=c)
        lo, hi = a["interval"]
        a2.errorbar([t["n_params"]], [a["eta"]], yerr=[[a["eta"] - lo], [hi - a["eta"]]] if np.isfinite(lo) else None,
                    fmt="*", ms=12, color="C3", capsize=4, label=f"target (D = {t['tokens']:,.3g}): {a['eta']:.3g}")
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("N (non-embedding parameters)")
        a2.set_ylabel("eta*")
        a2.set_title(f"Eq. 6: eta* = {law['c']:.3g} N^{law['a']:.3f} D^{law['b']:.3f}, R^2 = {law['r2']:.3f}",
                     fontsize=9)
        a2.grid(alpha=0.3)
        a2.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_batch(a1, a2, res: dict, has_batch: bool, has_curves: bool) -> None:
    import matplotlib.pyplot as plt
    t, cmap = res["target"], plt.get_cmap("viridis")
    if has_batch:
        b = res["batch"]
        law = b["law"]
        Ns = sorted({n for n, _, _ in b["optima"]})
        Ds = np.geomspace(min(d for _, d, _ in b["optima"]), max(t["tokens"], max(d for _, d, _ in b["optima"])), 50)
        for i, n in enumerate(Ns):
            c = cmap(i / max(1, len(Ns) - 1))
            a1.plot(*zip(*[(d, x) for nn, d, x in b["optima"] if nn == n]), "o", color=c, label=f"N = {n:,.3g}")
            a1.plot(Ds, law["c"] * n ** law["a"] * Ds ** law["b"], "-", lw=1, color=c)
        lo, hi = b["interval"]
        a1.errorbar([t["tokens"]], [b["batch_tokens"]], yerr=[[b["batch_tokens"] - lo], [hi - b["batch_tokens"]]]
                    if np.isfinite(lo) else None, fmt="*", ms=12, color="C3", capsize=4,
                    label=f"target (N = {t['n_params']:,.3g}): {b['batch_tokens']:,.0f}")
        a1.set_xscale("log")
        a1.set_yscale("log")
        a1.set_xlabel("D (tokens)")
        a1.set_ylabel("optimal batch (tokens)")
        a1.set_title(f"B_opt = {law['c']:.3g} N^{law['a']:.3f} D^{law['b']:.3f}, R^2 = {law['r2']:.3f}", fontsize=9)
        a1.grid(alpha=0.3)
        a1.legend(fontsize=6)
    else:
        a1.axis("off")
    if not has_curves:
        a2.axis("off")
        return
    sizes = [x for x in res["batch_curves"]["sizes"] if "laws" in x]
    for i, s in enumerate(sizes):
        c = cmap(i / max(1, len(sizes) - 1))
        pts = [x for x in s["targets"] if "B_opt" in x]
        L = np.array([x["loss"] for x in pts])
        for name, mark, ls in (("B_opt", "o", "-"), ("B_min", "s", ":")):
            a2.plot(L, [max(x[name], 1e-3) for x in pts], mark, color=c, mfc="none" if name == "B_min" else c,
                    label=f"{name}, N = {s['n_params']:,.3g}")
            law = s["laws"][name]
            if "k" in law and L.size:
                Lg = np.linspace(L.min(), L.max(), 30)
                a2.plot(Lg, law["B_ref"] * (Lg / law["L_ref"]) ** -law["k"], ls, lw=1, color=c)
    a2.set_yscale("log")
    a2.invert_xaxis()
    a2.set_xlabel("target loss L (falls to the right)")
    a2.set_ylabel("batch (tokens)")
    a2.set_title("from the loss curves: B_opt(L) and B_min(L) per model size (revised E(S))", fontsize=9)
    a2.grid(alpha=0.3)
    a2.legend(fontsize=6)


def format_advice(res: dict) -> str:
    t = res["target"]
    lines = [f"target: N = {t['n_params']:,.4g} non-embedding parameters, D = {t['tokens']:,.4g} tokens"]
    if not res["lr"]:
        lines.append(f"peak LR: {res['lr_note']}")
    for a in res["lr"]:
        law = a["law"]
        lines.append(f"peak LR at batch {a['batch_tokens']:,.0f} tokens: {a['eta']:.3g} "
                     f"[{a['interval'][0]:.3g}, {a['interval'][1]:.3g}] (Eq. 6, 90% bootstrap)")
        lines.append(f"  eta* = {law['c']:.3g} N^{law['a']:.3f} D^{law['b']:.3f}, R^2 = {law['r2']:.3f}, "
                     f"{law['points']} (N, D) optima; a in [{law['a_ci'][0]:.3f}, {law['a_ci'][1]:.3f}], "
                     f"b in [{law['b_ci'][0]:.3f}, {law['b_ci'][1]:.3f}]")
        if a["band_eta"] is not None:
            lines.append(f"  near-optimal-band estimator: {a['band_eta']:.3g}")
        for e in a["edge_groups"]:
            lines.append(f"  left out: N = {e['n_params']:,.4g}, D = {e['tokens']:,.4g}: {e['reason']}")
        for o in a["outside"]:
            lines.append(f"  extrapolation: {o}")
    rows = res["rows"]
    lines.append(f"rows: {rows['used']} used, {rows['left_out']} left out")
    lines += [f"  line {p['line']}: {p['reason']}" for p in rows["problems"]]
    b = res["batch"]
    if "note" in b:
        lines.append(f"batch size: {b['note']}")
    else:
        law = b["law"]
        lines.append(f"batch size: {b['batch_tokens']:,.0f} tokens per step [{b['interval'][0]:,.0f}, "
                     f"{b['interval'][1]:,.0f}] (B_opt = {law['c']:.3g} N^{law['a']:.3f} D^{law['b']:.3f}, "
                     f"R^2 = {law['r2']:.3f}, {law['points']} (N, D) optima)")
        lines.append("  schedule (token milestones): " + ", ".join(
            f"up to {m['until_tokens']:,.4g}: {m['batch_tokens']:,.0f} [{m['interval'][0]:,.0f}, "
            f"{m['interval'][1]:,.0f}]" for m in b["schedule"]))
        for o in b["outside"]:
            lines.append(f"  extrapolation: {o}")
        for e in b["edge_groups"]:
            lines.append(f"  left out: N = {e['n_params']:,.4g}, D = {e['tokens']:,.4g}: {e['reason']}")
    if "batch_curves" in res:
        lines += _format_curves(res["batch_curves"])
    return "\n".join(lines)


def _format_curves(c: dict) -> list[str]:
    lines = ["batch size from the loss curves (revised E(S) per target loss; batches in tokens):"]
    for s in c["sizes"]:
        head = f"  N = {s['n_params']:,.4g}, curves at {s['batches']} batch sizes"
        if "note" in s:
            lines.append(f"{head}: {s['note']}")
            continue
        lines.append(head)
        for name, law in s["laws"].items():
            if "note" in law:
                lines.append(f"    {name}(L): {law['note']}")
            else:
                lines.append(f"    {name}(L) = {law['B_ref']:,.0f} (L / {law['L_ref']:.3f})^-{law['k']:.2f}, "
                             f"k in [{law['k_ci'][0]:.2f}, {law['k_ci'][1]:.2f}], R^2 = {law['r2']:.3f}, "
                             f"{law['points']} target losses")
        for t in s["targets"]:
            lines.append(f"    L = {t['loss']:.3f}: " + (t["note"] if "note" in t else
                         f"B_opt {t['B_opt']:,.0f} [{t['B_opt_ci'][0]:,.0f}, {t['B_opt_ci'][1]:,.0f}], "
                         f"B_min {t['B_min']:,.0f}, {t['points']} batches" +
                         (f" ({t['censored']} never reached it)" if t["censored"] else "")))
    for p in c["problems"]:
        lines.append(f"  line {p['line']}: {p['reason']}")
    if "note" in c:
        lines.append(f"  {c['note']}")
    if "loss_schedule" in c:
        lines.append(f"  schedule by loss (B_opt(L) of N = {c['from_n_params']:,.4g}, the target is {c['n_ratio']:.2g}x "
                     f"that; [the E(S) fit's 90% bootstrap]; switch once the loss reaches L): "
                     + ", ".join(f"L {m['loss']:.3f}: {m['B_opt']:,.0f} [{m['interval'][0]:,.0f}, "
                                 f"{m['interval'][1]:,.0f}]" for m in c["loss_schedule"]))
        ts = c["token_schedule"]
        if "note" in ts:
            lines.append(f"  schedule by tokens: {ts['note']}")
        else:
            lines.append(f"  schedule by tokens (B_opt of the curves' loss at each stage, rounded to the batches "
                         f"tried): {ts['batch_tokens']:,}" + "".join(
                             f", from {m['from_tokens']:,}: {m['batch_tokens']:,}" for m in ts["stages"])
                         + (" (B_opt(L) extrapolated past the fitted losses)" if any(ts["extrapolated"]) else ""))
    return lines

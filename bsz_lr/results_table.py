"""The results table: one CSV row per run, the format `advise` (issue #12) fits laws on.

Columns (units in the names' docs; anyone's sweep can be written in this format):

    run              a unique id of the run (here: the config hash)
    n_params         model size N: non-embedding parameters, active ones for MoE
    n_params_total   non-embedding parameters, every expert (= n_params for dense models)
    tokens           training tokens D at the end of the run
    lr               peak learning rate
    batch_tokens     batch size in tokens per step (the first stage's for a batch schedule)
    loss             final held-out loss (post-decay for a WSD run or a decay branch)
    status           completed | diverged (diverged runs have an empty loss)
    curve            optional: path to a loss-curve file (JSON lines with tokens and val_loss, step
                     optional; lines without val_loss are skipped), absolute or relative to the
                     working directory or the table's folder.  With curves at >= 6 batch sizes per
                     model size, `advise` fits the batch-size paper's B_opt(L) and B_min(L)
    warmup_tokens    optional: tokens of LR warmup (crossings inside warmup are not used)
    stable_tokens    optional: the end of the constant-LR phase in tokens (WSD: where the decay
                     starts); the E(S) analysis reads the curve only up to it (default: all of it)
    experiment, profile, seq_len, seed, ffn, schedule, init_from   provenance (optional)

    python -m bsz_lr export EXPERIMENT --profile cpu --out table.csv
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["COLUMNS", "REQUIRED", "export_rows", "write_table", "read_table"]

REQUIRED = ("run", "n_params", "tokens", "lr", "batch_tokens", "loss")
COLUMNS = REQUIRED + ("n_params_total", "status", "curve", "warmup_tokens", "stable_tokens", "experiment",
                      "profile", "seq_len", "seed", "ffn", "schedule", "init_from")
_INT = ("n_params", "n_params_total", "tokens", "batch_tokens", "seq_len", "seed", "warmup_tokens", "stable_tokens")
_FLOAT = ("lr", "loss")


def export_rows(root: Path, name: str, profile: str) -> list[dict]:
    """The finished runs of an experiment's current expansion as table rows."""
    from .config import from_dict
    from .sweep import finished_runs
    from .train import plan
    rows = []
    for r in finished_runs(root, name, profile, with_metrics=False):
        st, c = r["status"], r["config"]
        p = st.get("params") or {}
        inactive = int(p.get("total", 0)) - int(p.get("active", 0))
        loss = st.get("final_val_loss")
        pl = plan(from_dict(c))                 # the trainer's own warmup and decay start
        D = int(st.get("tokens", 0))
        rows.append({
            "run": r["hash"], "n_params": int(p.get("non_embedding", 0)) - inactive,
            "n_params_total": int(p.get("non_embedding", 0)), "tokens": D,
            "lr": float(c["optim"]["lr"]), "batch_tokens": int(c["data"]["batch_size"]) * int(c["data"]["seq_len"]),
            "loss": float(loss) if st.get("status") == "completed" and loss is not None and math.isfinite(loss) else "",
            "status": st["status"], "curve": str(Path(r["dir"]) / "metrics.jsonl"), "warmup_tokens": int(pl.warmup_tokens),
            "stable_tokens": int(pl.stable_tokens), "experiment": name,
            "profile": profile, "seq_len": int(c["data"]["seq_len"]), "seed": int(c["train"]["seed"]),
            "ffn": c["model"]["ffn"], "schedule": c["schedule"]["kind"], "init_from": c["train"]["init_from"]})
    return rows


def write_table(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in COLUMNS})


def read_table(path: Path) -> list[dict]:
    """Rows of a results table with the numeric columns converted (empty -> None)."""
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row = dict(r)
            for k in _INT:
                if k in row:
                    row[k] = int(float(row[k])) if row[k] not in ("", None) else None
            for k in _FLOAT:
                if k in row:
                    row[k] = float(row[k]) if row[k] not in ("", None) else None
            out.append(row)
    return out

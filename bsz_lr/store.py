"""The result store: one directory per run, named by the hash of its fully resolved config.

    <root>/<experiment>/<profile>/<hash>/config.json     the resolved config (hash(config) == <hash>)
                                         metrics.jsonl   one JSON line per log step / evaluation
                                         status.json     status, reason, counts, sha256 of metrics.jsonl
                                         attempts.jsonl  who trained it when, from which step
                                         ckpt/           orbax checkpoints (never committed)
    <root>/<experiment>/<profile>/.locks/<hash>.lock     flock held while a process trains the run

Every file is written atomically (temp file + rename) or append-only with torn-line
tolerance.  A run whose files contradict each other is *corrupt*: it is reported,
moved aside to `<hash>.corrupt-<time>` (nothing is deleted) and trained again.
Knows nothing of JAX.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

from .config import config_hash, from_dict

__all__ = ["DONE", "run_state", "quarantine", "RunLock", "metrics_sha256", "load_runs", "load_table",
           "record_attempt", "read_json", "write_json_atomic", "read_status", "checkpoint_steps"]

DONE = ("completed", "diverged")      # terminal: a re-run of the sweep never trains these again


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_status(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def metrics_sha256(run_dir: Path) -> str:
    p = Path(run_dir) / "metrics.jsonl"
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else ""


def run_state(run_dir: Path) -> tuple[str, str]:
    """(state, reason): new, running (interrupted or in progress), failed, completed, diverged or corrupt."""
    d = Path(run_dir)
    if not (d / "config.json").exists():
        return ("corrupt", "files but no config.json") if d.exists() and any(
            p.name in ("metrics.jsonl", "status.json") for p in d.iterdir()) else ("new", "")
    try:
        cfg = from_dict(read_json(d / "config.json"))
    except Exception as e:  # any malformed content (null, a list, wrong types) is corruption
        return "corrupt", f"unreadable config.json ({type(e).__name__}: {e})"
    if config_hash(cfg) != d.name:
        return "corrupt", f"config.json hashes to {config_hash(cfg)}, not {d.name}"
    if not (d / "status.json").exists():
        return "running", "no status yet"
    try:
        st = read_json(d / "status.json")
        state = st["status"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return "corrupt", f"unreadable status.json ({e})"
    if state in DONE and st.get("metrics_sha256") != metrics_sha256(d):
        return "corrupt", "metrics.jsonl does not match the checksum in status.json"
    return state, st.get("reason", "")


def quarantine(run_dir: Path, reason: str) -> Path:
    """Move a corrupt run aside (kept for inspection) so it can be trained afresh."""
    d = Path(run_dir)
    dest = d.with_name(f"{d.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(d, dest)
    (dest / "CORRUPT").write_text(reason + "\n")
    return dest


class RunLock:
    """Exclusive, non-blocking claim on a run across processes and machines sharing a POSIX file system.

    flock is released by the kernel when its holder dies, so a SIGKILLed runner never leaves a stale claim.
    """

    def __init__(self, run_dir: Path):
        d = Path(run_dir)
        self.path = d.parent / ".locks" / f"{d.name}.lock"
        self._fd = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def held_elsewhere(self) -> bool:
        """True if another process holds the claim (probes without keeping it)."""
        if self._fd is not None:
            return False
        if self.acquire():
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the finished checkpoints of a run (orbax names them by step once complete)."""
    d = Path(run_dir) / "ckpt"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def record_attempt(run_dir: Path, start_step: int) -> None:
    with open(Path(run_dir) / "attempts.jsonl", "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "time": time.time(),
                            "start_step": start_step}) + "\n")


def _metrics(d: Path) -> list[dict]:
    rows = []
    for line in (d / "metrics.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def load_runs(root: Path, name: str, profile: str, *, with_metrics: bool = True) -> list[dict]:
    """Every run of an experiment profile: hash, dir, config, status, state, metrics rows."""
    out = []
    base = Path(root) / name / profile
    for d in sorted(p for p in base.glob("*") if p.is_dir() and "." not in p.name):
        state, reason = run_state(d)
        if state in ("new", "corrupt"):
            if state == "corrupt":
                print(f"store: {d} is corrupt ({reason}); not used")
            continue
        status = read_json(d / "status.json") if (d / "status.json").exists() else {"status": state}
        out.append({"hash": d.name, "dir": str(d), "config": read_json(d / "config.json"),
                    "status": status, "state": state,
                    "metrics": _metrics(d) if with_metrics and (d / "metrics.jsonl").exists() else []})
    return out


def _flatten(prefix: str, x: dict, out: dict) -> dict:
    for k, v in x.items():
        if isinstance(v, dict):
            _flatten(f"{prefix}{k}.", v, out)
        else:
            out[prefix + k] = v
    return out


def load_table(root: Path, name: str, profile: str) -> list[dict]:
    """One flat row per run: dotted config columns, status columns, final and curve metrics.

    Curves are lists: `curve.tokens`/`curve.val_loss` (evaluations) and
    `curve.train_tokens`/`curve.train_loss` (logged train loss).  Pass the rows to
    `pandas.DataFrame(rows)` if you like tables.
    """
    rows = []
    for r in load_runs(root, name, profile):
        row = {"hash": r["hash"], "dir": r["dir"], "state": r["state"]}
        _flatten("", r["config"], row)
        st = r["status"]
        for k in ("status", "reason", "step", "tokens", "final_train_loss", "final_val_loss", "wall_time"):
            row[k] = st.get(k)
        for k, v in (st.get("params") or {}).items():
            row[f"params.{k}"] = v
        m = r["metrics"]
        row["curve.tokens"] = [x["tokens"] for x in m if "val_loss" in x]
        row["curve.val_loss"] = [x["val_loss"] for x in m if "val_loss" in x]
        row["curve.train_tokens"] = [x["tokens"] for x in m if "train_loss" in x]
        row["curve.train_loss"] = [x["train_loss"] for x in m if "train_loss" in x]
        rows.append(row)
    return rows

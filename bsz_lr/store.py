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
Two states keep a run in place but out of use (see config.py, *Run identity*):
*stale* (trained before a REVISION changed the numbers of its config: the new config
has another hash, so it trains in another directory) and *incompatible* (its config
names a field this version of bsz_lr does not have).  Knows nothing of JAX.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

from . import config as _config
from .config import SchemaError, config_hash, flatten, from_dict
from .metrics import METRICS

__all__ = ["DONE", "UNUSABLE", "run_state", "quarantine", "RunLock", "metrics_sha256", "load_runs",
           "load_table", "record_attempt", "read_json", "write_json_atomic", "read_status",
           "checkpoint_steps", "read_metrics", "curve"]

DONE = ("completed", "diverged")      # terminal: a re-run of the sweep never trains these again
UNUSABLE = ("stale", "incompatible")  # kept in place, never used or trained into


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


_CHECKED: dict = {}     # file identity (path, inode, size, mtime) -> a check's result: a sweep asks
                        # for every run's state several times; a rewritten file has a new identity


def _stamp(*paths: Path) -> tuple | None:
    try:
        return tuple((str(p), st.st_ino, st.st_size, st.st_mtime_ns) for p in paths for st in [p.stat()])
    except OSError:
        return None


def _cached(key, fn):
    if key is None:
        return fn()
    if key not in _CHECKED:
        if len(_CHECKED) > 100_000:
            _CHECKED.clear()
        _CHECKED[key] = fn()
    return _CHECKED[key]


def _schema() -> tuple:
    """What a stored config's reading depends on besides its file (changes only in tests)."""
    return (hash(repr([getattr(_config, n) for n in ("ADDED_FIELDS", "RENAMED", "REMOVED", "REVISIONS")])),)


def _config_state(d: Path) -> tuple[str, str] | None:
    """None when config.json is readable and hashes to the directory's name, else (state, reason)."""
    try:
        cfg = from_dict(read_json(d / "config.json"))
    except SchemaError as e:
        return "incompatible", f"config.json: {e}"
    except Exception as e:  # any malformed content (null, a list, wrong types) is corruption
        return "corrupt", f"unreadable config.json ({type(e).__name__}: {e})"
    if config_hash(cfg) != d.name:
        if config_hash(cfg, revisions=False) == d.name:
            from .config import stale_revisions
            return "stale", f"trained before revision(s) {', '.join(stale_revisions(cfg))} changed its numbers"
        return "corrupt", f"config.json hashes to {config_hash(cfg)}, not {d.name}"
    return None


def run_state(run_dir: Path) -> tuple[str, str]:
    """(state, reason): new, running (in progress or killed), interrupted, failed, completed, diverged,
    corrupt, stale or incompatible.  The config and checksum checks are cached by the files'
    identity (inode, size, mtime), so asking again about an unchanged run reads no file."""
    d = Path(run_dir)
    if not (d / "config.json").exists():
        return ("corrupt", "files but no config.json") if d.exists() and any(
            p.name in ("metrics.jsonl", "status.json") for p in d.iterdir()) else ("new", "")
    stamp = _stamp(d / "config.json")
    bad = _cached(("config",) + _schema() + stamp if stamp else None, lambda: _config_state(d))
    if bad is not None:
        return bad
    if not (d / "status.json").exists():
        return "running", "no status yet"
    try:
        st = read_json(d / "status.json")
        state = st["status"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return "corrupt", f"unreadable status.json ({e})"
    if state in DONE:
        stamp = _stamp(d / "metrics.jsonl")
        sha = _cached(("sha",) + stamp if stamp else None, lambda: metrics_sha256(d))
        if st.get("metrics_sha256") != sha:
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


def read_metrics(path: Path, upto: int | None = None) -> list[dict]:
    """The lines of a metrics.jsonl up to step `upto`; a torn line (a kill mid-write) ends the file."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if upto is not None and row["step"] > upto:
            break
        rows.append(row)
    return rows


def curve(run: dict, name: str, x: str = "tokens", *, skip_start: bool = False) -> tuple[list, list]:
    """(xs, values) of metric `name` (see metrics.METRICS) in a run from load_runs: every line that has it."""
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    pts = [(r[x], r[name]) for r in run["metrics"] if name in r and not (skip_start and r[x] == 0)]
    return [p[0] for p in pts], [p[1] for p in pts]


def load_runs(root: Path, name: str, profile: str, *, with_metrics: bool = True, only=None,
              quiet: bool = False) -> list[dict]:
    """Every usable run of an experiment profile: hash, dir, config, status, state, metrics rows.

    `only`: a set of hashes (e.g. the runs of the experiment's current expansion) to restrict to.
    Corrupt, stale and incompatible runs are reported (unless quiet) and left out.
    """
    out = []
    base = Path(root) / name / profile
    for d in sorted(p for p in base.glob("*") if p.is_dir() and "." not in p.name):
        if only is not None and d.name not in only:
            continue
        state, reason = run_state(d)
        if state == "new" or state == "corrupt" or state in UNUSABLE:
            if state != "new" and not quiet:
                print(f"store: {d} is {state} ({reason}); not used")
            continue
        status = read_json(d / "status.json") if (d / "status.json").exists() else {"status": state}
        out.append({"hash": d.name, "dir": str(d), "config": read_json(d / "config.json"),
                    "status": status, "state": state,
                    "metrics": read_metrics(d / "metrics.jsonl") if with_metrics else []})
    return out


def load_table(root: Path, name: str, profile: str, *, only=None) -> list[dict]:
    """One flat row per run: dotted config columns, status columns, final and curve metrics.

    For every logged metric NAME (metrics.METRICS): `curve.NAME` (values) and `curve.NAME.tokens`
    (the token counts of the lines that hold it).  Pass the rows to `pandas.DataFrame(rows)` if
    you like tables.  `only` restricts to a set of run hashes.
    """
    rows = []
    for r in load_runs(root, name, profile, only=only):
        row = {"hash": r["hash"], "dir": r["dir"], "state": r["state"]}
        row.update(flatten(r["config"]))
        st = r["status"]
        for k in ("status", "reason", "step", "tokens", "final_train_loss", "final_val_loss", "wall_time"):
            row[k] = st.get(k)
        for k, v in (st.get("params") or {}).items():
            row[f"params.{k}"] = v
        present = {k for line in r["metrics"] for k in line}
        for m in METRICS.values():
            if m.kind != "host" and m.name in present:
                row[f"curve.{m.name}.tokens"], row[f"curve.{m.name}"] = curve(r, m.name)
        rows.append(row)
    return rows

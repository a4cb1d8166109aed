"""Experiments as declarative files, expanded into the runs of the result store, and the runner.

An experiment file (experiments/NAME.py) defines module-level values:

    NAME     = "tiny_lm"                      # defaults to the file name
    BASE     = {"model.size": "tiny", ...}    # dotted overrides of Config()
    GRID     = {"optim.lr": [1e-3, 3e-3]}     # cartesian product (may be empty)
    BRANCHES = {"at_tokens": [...], "fraction": 0.2, "shape": "1-sqrt"}   # optional decay branches
    PROFILES = {"smoke": {...}, "cpu": {...}, "gpu": {...}}   # overrides; "grid"/"branches" keys replace
    FIGURES  = ["tiny_lm_loss"]               # figure builders fed by this experiment

Decay branches (the WSD trick): each grid point is a stable run that keeps checkpoints at
`at_tokens`; from each, a branch run decays the LR over `fraction` of its own length.  A
branch is recorded as its own run (its config names the parent), it equals a full WSD run
with that decay start, and it costs only its decay.

The runner claims runs with a file lock (store.RunLock), so any number of runner processes
(worker processes here, or `--shard i/n` jobs on other machines writing to a shared
directory) never train one run twice.  It skips finished runs, resumes interrupted ones from
their checkpoints, moves corrupt ones aside and re-runs them, records failures and goes on.
Nothing here imports JAX until a worker trains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import math
import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from pathlib import Path

from .config import Config, ConfigError, apply_overrides, config_hash, replica_key
from .schedules import BatchSchedule
from .store import DONE, RunLock, checkpoint_steps, quarantine, run_state, write_json_atomic

__all__ = ["Experiment", "load_experiment", "expand", "plan_runs", "RunSpec", "run_sweep", "worker_loop", "branch_configs", "shard",
           "group_units"]

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    base: dict
    grid: dict
    profiles: dict
    branches: dict | None = None
    figures: tuple = ()


def load_experiment(path_or_name: str) -> Experiment:
    path = Path(path_or_name)
    if not path.suffix:
        path = EXPERIMENTS_DIR / f"{path_or_name}.py"
    if not path.is_file():
        raise ConfigError(f"experiment: no file {path}")
    spec = importlib.util.spec_from_file_location(f"bsz_lr_experiment_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return Experiment(getattr(mod, "NAME", path.stem), dict(getattr(mod, "BASE", {})),
                      dict(getattr(mod, "GRID", {})), dict(getattr(mod, "PROFILES", {})),
                      getattr(mod, "BRANCHES", None), tuple(getattr(mod, "FIGURES", ())))


def _profile(exp: Experiment, profile: str) -> tuple[dict, dict, dict | None]:
    if profile not in exp.profiles:
        raise ConfigError(f"experiment {exp.name}: unknown profile {profile!r}; known: {', '.join(exp.profiles)}")
    prof = dict(exp.profiles[profile])
    grid = prof.pop("grid", exp.grid)
    branches = prof.pop("branches", exp.branches)
    return prof, grid, branches


def expand(exp: Experiment, profile: str) -> list[Config]:
    """The grid configs of one profile (base <- profile <- grid point); parents when branching."""
    prof, grid, branches = _profile(exp, profile)
    # Layers BASE < profile < grid point: a later layer wins, its model.size included.
    base = apply_overrides(apply_overrides(Config(), exp.base), prof)
    if branches:
        base = apply_overrides(base, {"train.save_at_tokens": tuple(int(x) for x in branches["at_tokens"])})
    keys = list(grid)
    return [apply_overrides(base, dict(zip(keys, values)))
            for values in itertools.product(*(grid[k] for k in keys))]


def branch_configs(parent: Config, branches: dict) -> list[Config]:
    """Decay branches of a stable parent: decay starts exactly at each kept checkpoint."""
    f = float(branches.get("fraction", 0.2))
    if not 0 < f < 1:
        raise ConfigError(f"branches.fraction: must be in (0, 1), got {f}")
    b = BatchSchedule.from_config(parent)
    out = []
    for d in branches["at_tokens"]:
        start = b.tokens_before(b.steps_for_tokens(int(d)))
        out.append(apply_overrides(parent, {
            "schedule.kind": "wsd", "schedule.decay_fraction": f,
            "schedule.decay_shape": branches.get("shape", "1-sqrt"),
            "schedule.final_lr_fraction": float(branches.get("final", 0.0)),
            "schedule.decay_start_tokens": start,
            "train.tokens": math.ceil(start / (1 - f)), "train.steps": 0, "train.save_at_tokens": (),
            "train.init_from": config_hash(parent), "train.init_tokens": start}))
    return out


@dataclasses.dataclass(frozen=True)
class RunSpec:
    cfg: Config
    dir: Path
    parent: Path | None      # decay branch: the parent's run directory
    cost: float              # estimated training FLOPs (orders the queue longest-first)
    group: str               # shards keep a parent and its branches together

    @property
    def init_step(self) -> int:
        return BatchSchedule.from_config(self.cfg).steps_for_tokens(self.cfg.train.init_tokens)


def _cost(cfg: Config) -> float:
    m, b = cfg.model, BatchSchedule.from_config(cfg)
    ffn = 3 * m.d_model * (m.top_k * m.expert_width if m.ffn == "moe" else m.ffn_width)
    n = m.n_layers * (4 * m.d_model ** 2 + ffn) + m.vocab_size * m.d_model
    steps = cfg.train.steps or b.steps_for_tokens(cfg.train.tokens)
    return 6.0 * n * (b.tokens_before(steps) - cfg.train.init_tokens)


def plan_runs(exp: Experiment, profile: str, root: Path) -> list[RunSpec]:
    """Every run of a profile, parents before their branches, longest first."""
    _, _, branches = _profile(exp, profile)
    base = Path(root) / exp.name / profile
    specs = []
    for cfg in expand(exp, profile):
        h = config_hash(cfg)
        specs.append(RunSpec(cfg, base / h, None, _cost(cfg), h))
        for bc in branch_configs(cfg, branches) if branches else []:
            specs.append(RunSpec(bc, base / config_hash(bc), base / h, _cost(bc), h))
    specs.sort(key=lambda s: (s.parent is not None, -s.cost))
    return specs


def shard(specs: list[RunSpec], i: int, n: int) -> list[RunSpec]:
    """A disjoint slice, stable across machines: by a hash of the run group."""
    return [s for s in specs if int(hashlib.sha256(s.group.encode()).hexdigest(), 16) % n == i]


# ---------------------------------------------------------------------------
# Workers.

def _record_failure(spec: RunSpec, reason: str) -> None:
    spec.dir.mkdir(parents=True, exist_ok=True)
    if not (spec.dir / "config.json").exists():
        write_json_atomic(spec.dir / "config.json", spec.cfg.to_dict())
    write_json_atomic(spec.dir / "status.json", {"status": "failed", "reason": reason})


def _parent_gate(spec: RunSpec, pending_dirs=frozenset()) -> str:
    """'ready', 'wait' (parent still to train or training) or a reason the branch can never start."""
    if spec.parent is None or spec.init_step in checkpoint_steps(spec.parent):
        return "ready"
    if spec.parent in pending_dirs or RunLock(spec.parent).held_elsewhere():
        return "wait"
    state, reason = run_state(spec.parent)
    if state in DONE or state == "failed":
        return f"parent {spec.parent.name} is {state} without a checkpoint at step {spec.init_step}" + (
            f" ({reason})" if reason else "")
    return "wait"


def _latest_checkpoint(spec: RunSpec):
    steps = checkpoint_steps(spec.dir)
    return steps[-1] if steps else None


def _train_unit(unit: list[RunSpec], log, progress: bool, position: int) -> list[str]:
    """Train one run, or several as vmapped replicas; failures are recorded, never raised."""
    from .train import enable_compilation_cache, train_group
    enable_compilation_cache()
    for spec in unit:
        state, reason = run_state(spec.dir)
        if state == "corrupt":
            moved = quarantine(spec.dir, reason)
            log(f"{spec.dir.name}: corrupt ({reason}); moved to {moved.name}, training afresh")
    try:
        sts = train_group([s.cfg for s in unit], [s.dir for s in unit], progress=progress, position=position)
    except Exception as e:  # recorded; the sweep goes on
        reason = f"{type(e).__name__}: {e}"
        log(f"{unit[0].dir.name}{' +' if len(unit) > 1 else ''}: failed: {reason}\n"
            f"{traceback.format_exc(limit=3)}")
        for spec in unit:
            if run_state(spec.dir)[0] != "failed":
                _record_failure(spec, reason)
        return ["failed"] * len(unit)
    return [st["status"] for st in sts]


def _claim(unit: list[RunSpec]) -> list[RunLock] | None:
    locks = []
    for spec in unit:
        lock = RunLock(spec.dir)
        if not lock.acquire():
            for held in locks:
                held.release()
            return None
        locks.append(lock)
    return locks


def worker_loop(units: list[list[RunSpec]], wid: int = 0, *, core: int | None = None, events=None,
                progress: bool = True, poll: float = 0.5) -> None:
    """Train every claimable unit (a run, or a group of vmapped replicas); wait for branches' parents."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    emit = events.put if events is not None else (lambda e: print(*e, flush=True))
    log = lambda msg: emit(("log", wid, msg))
    pending = [list(u) for u in units]
    while pending:
        progressed = False
        for unit in list(pending):
            unit[:] = [s for s in unit if run_state(s.dir)[0] not in DONE]
            if not unit:
                pending.remove(unit)
                continue
            pending_dirs = frozenset(s.dir for u in pending for s in u if u is not unit)
            gates = [_parent_gate(s, pending_dirs) for s in unit]
            if "wait" in gates:
                continue
            locks = _claim(unit)
            if locks is None:
                continue                       # another process is training it
            try:
                todo = [s for s in unit if run_state(s.dir)[0] not in DONE]   # re-check under the locks
                blocked = [(s, g) for s, g in zip(unit, gates) if g != "ready" and s in todo]
                for s, g in blocked:
                    _record_failure(s, g)
                    emit(("done", wid, f"{s.dir.name}: failed ({g})"))
                todo = [s for s in todo if s not in {b for b, _ in blocked}]
                # Replicas must start from the same point; otherwise train them one by one.
                parts = [todo] if len({_latest_checkpoint(s) for s in todo}) <= 1 else [[s] for s in todo]
                for part in (p for p in parts if p):
                    emit(("start", wid, part[0].dir.name))
                    for s, result in zip(part, _train_unit(part, log, progress, wid + 1)):
                        emit(("done", wid, f"{s.dir.name}: {result}"))
            finally:
                for lock in locks:
                    lock.release()
            pending.remove(unit)
            progressed = True
            break                              # re-scan from the longest pending unit
        if pending and not progressed:
            time.sleep(poll)                   # runs held by other processes, or branches waiting


def group_units(specs: list[RunSpec], vmap: int) -> list[list[RunSpec]]:
    """Units of work: single runs, or up to `vmap` runs that differ only in LR / seed and stand at
    the same checkpoint (new runs, or a group a kill interrupted: it resumes as the same group)."""
    if vmap <= 1:
        return [[s] for s in specs]
    units, groups = [], {}
    for s in specs:
        if s.parent is not None or run_state(s.dir)[0] in DONE:
            units.append([s])
            continue
        key = (replica_key(s.cfg), _latest_checkpoint(s))
        if key not in groups or len(groups[key]) == vmap:
            groups[key] = [s]
            units.append(groups[key])
        else:
            groups[key].append(s)
    return units


class _Direct:
    """Queue-like sink for the in-process (one worker) case."""

    def __init__(self, fn):
        self.put = fn


def run_sweep(exp: Experiment, profile: str, root: Path, *, workers: int = 1, shard_spec=(0, 1),
              dry_run: bool = False, progress: bool = True, pin: bool = True, vmap: int = 1) -> int:
    """Run (or list) a profile's runs; returns 1 if any run failed, else 0.

    vmap > 1 trains up to that many new runs differing only in LR / init seed as one vmapped
    program (pays on accelerators; slower on a 2-core CPU, see `make bench`).
    """
    specs = shard(plan_runs(exp, profile, root), *shard_spec)
    if dry_run:
        for s in specs:
            state, reason = run_state(s.dir)
            kind = f"branch of {s.parent.name} at {s.cfg.train.init_tokens:,} tokens" if s.parent else "run"
            print(f"{exp.name}/{profile}/{s.dir.name}  {state:9} {kind}  ~{s.cost:.2e} FLOPs"
                  + (f"  ({reason})" if reason else ""))
        return 0
    from tqdm.auto import tqdm
    t0 = time.time()
    todo = sum(run_state(s.dir)[0] not in DONE for s in specs)
    bar = tqdm(total=len(specs), initial=len(specs) - todo, unit="run", desc=f"{exp.name}/{profile}",
               disable=not progress, position=0, dynamic_ncols=True)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(workers))
    units = group_units(specs, vmap)
    workers = max(1, min(workers, todo, len(units)))
    def handle(e):
        if e[0] == "done":
            bar.update(1)
            bar.write(f"[worker {e[1]}] {e[2]}")
        elif e[0] == "log":
            bar.write(f"[worker {e[1]}] {e[2]}", file=sys.stderr)

    if workers == 1:
        worker_loop(units, 0, events=_Direct(handle), progress=progress)
    else:
        ctx = mp.get_context("spawn")          # JAX and fork do not mix
        q = ctx.Queue()
        procs = [ctx.Process(target=worker_loop, args=(units, i),
                             kwargs=dict(core=cores[i % len(cores)] if pin else None, events=q,
                                         progress=progress), daemon=True)
                 for i in range(workers)]
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs) or not q.empty():
            try:
                handle(q.get(timeout=0.5))
            except queue.Empty:
                continue
        for p in procs:
            p.join()
    bar.close()
    states = [run_state(s.dir)[0] for s in specs]
    summary = {k: states.count(k) for k in sorted(set(states))}
    print(f"{exp.name}/{profile}: " + ", ".join(f"{v} {k}" for k, v in summary.items())
          + f" ({todo} trained in {time.time() - t0:.0f} s with {workers} worker(s))", flush=True)
    return 1 if summary.get("failed") else 0

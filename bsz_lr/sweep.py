"""Experiments as declarative files, expanded into the runs of the result store, and the runner.

An experiment file (experiments/NAME.py) defines module-level values:

    NAME     = "tiny_lm"                      # defaults to the file name
    BASE     = {"model.size": "tiny", ...}    # dotted overrides of Config()
    GRID     = {"optim.lr": [1e-3, 3e-3]}     # cartesian product (may be empty)
    GRID     = [{"model.size": ["tiny"], "data.batch_size": [4, 8, 16]},     # or a list of grids:
                {"model.size": ["small"], "data.batch_size": [16, 32]}]      #   the union of their runs
    GRID     = {("data.batch_size", "optim.lr"): [(8, 1e-3), (32, 2e-3)]}     # a tuple key: zipped values
    BRANCHES = {"at_tokens": [...], "fraction": 0.2, "shape": "1-sqrt"}   # optional decay branches
    PROFILES = {"smoke": {...}, "cpu": {...}, "gpu": {...}}   # overrides; "grid"/"branches" keys replace
    FIGURES  = ["tiny_lm_loss"]               # figure builders fed by this experiment

A value anywhere in BASE, a profile or GRID may be `Derived(experiment, fn)`: computed when the
experiment is expanded, as fn(finished runs of `experiment`, same profile unless given: completed
and diverged ones, see run["status"]["status"]), e.g. a
batch schedule fitted on another experiment's stored results.  Such an experiment cannot be
planned until its dependency has finished (the runner trains dependencies first when given
together); when the dependency's results change, so does the value, hence the config hash, so
the dependent runs are rebuilt (the old ones stay, outside the current expansion).

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

import collections
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
import uuid
from pathlib import Path

from .config import Config, ConfigError, apply_overrides, config_hash, replica_key
from .schedules import BatchSchedule
from .signals import EXIT_CODES, StopRequest
from .store import (DONE, UNUSABLE, RunLock, checkpoint_steps, quarantine, read_status, run_state,
                    write_json_atomic)

__all__ = ["Experiment", "Derived", "DependencyPending", "dependencies", "dependency_order", "load_experiment", "expand", "grid_points", "plan_runs", "RunSpec", "run_sweep", "worker_loop", "branch_configs", "shard", "prune_checkpoints", "finished_runs",
           "group_units"]

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


@dataclasses.dataclass(frozen=True)
class Derived:
    """A config value computed from another experiment's stored results (see the module docstring)."""
    experiment: str                  # NAME of the experiment whose completed runs fn reads
    fn: object                       # fn(runs: list[dict] from store.load_runs) -> the value
    profile: str | None = None       # the dependency's profile; None: the same as the dependent's


class DependencyPending(ConfigError):
    """A Derived value's experiment has not finished (in this store and profile)."""


def _walk_derived(x):
    if isinstance(x, Derived):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _walk_derived(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _walk_derived(v)


def dependencies(exp: "Experiment", profile: str | None = None) -> set[str]:
    """Names of the experiments whose results this one's values are derived from."""
    parts = [exp.base, exp.grid, exp.branches] + (
        [exp.profiles.get(profile, {})] if profile else list(exp.profiles.values()))
    return {d.experiment for d in _walk_derived(parts)}


def dependency_order(exps: list) -> list:
    """The experiments in the given order, except that one derived from another comes after it."""
    names = {e.name for e in exps}
    out, placed, pending = [], set(), list(exps)
    while pending:
        ready = [e for e in pending if not (dependencies(e) & names) - placed - {e.name}]
        if not ready:
            raise ConfigError("sweep: experiments derive values from each other in a cycle: "
                              + ", ".join(e.name for e in pending))
        out.append(ready[0])
        placed.add(ready[0].name)
        pending.remove(ready[0])
    return out


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    base: dict
    grid: dict | list
    profiles: dict
    branches: dict | None = None
    figures: tuple = ()
    path: str = ""


def load_experiment(path_or_name: str) -> Experiment:
    """Read and check an experiment file; any problem is one ConfigError naming the file (and line)."""
    path = Path(path_or_name)
    if not path.suffix:
        path = EXPERIMENTS_DIR / f"{path_or_name}.py"
    if not path.is_file():
        raise ConfigError(f"experiment: no file {path}")
    spec = importlib.util.spec_from_file_location(f"bsz_lr_experiment_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except SyntaxError as e:
        raise ConfigError(f"experiment {path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:
        tb = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == path.resolve()
              or f.filename == str(path)]
        where = f":{tb[-1].lineno}" if tb else ""
        raise ConfigError(f"experiment {path}{where}: {type(e).__name__}: {e}") from None
    exp = Experiment(getattr(mod, "NAME", path.stem), getattr(mod, "BASE", {}), getattr(mod, "GRID", {}),
                     getattr(mod, "PROFILES", {}), getattr(mod, "BRANCHES", None), getattr(mod, "FIGURES", ()),
                     str(path))
    _validate(exp)
    return exp


def _validate(exp: Experiment) -> None:
    where = f"experiment {exp.path}"

    def need(cond, msg):
        if not cond:
            raise ConfigError(f"{where}: {msg}")
    need(isinstance(exp.name, str) and exp.name and "/" not in exp.name and not exp.name.startswith("."),
         f"NAME must be a plain non-empty string, got {exp.name!r}")
    need(isinstance(exp.base, dict), f"BASE must be a dict of overrides, got {type(exp.base).__name__}")
    need(isinstance(exp.profiles, dict) and exp.profiles, "PROFILES must be a non-empty dict of profiles")
    need(isinstance(exp.figures, (list, tuple)) and all(isinstance(f, str) for f in exp.figures),
         "FIGURES must be a list of figure names")
    _check_grid(exp.grid, f"{where}: GRID")
    _check_branches(exp.branches, f"{where}: BRANCHES")
    for name, prof in exp.profiles.items():
        need(isinstance(prof, dict), f"profile {name!r} must be a dict of overrides, got {type(prof).__name__}")
        if "grid" in prof:
            _check_grid(prof["grid"], f"{where}: profile {name!r} grid")
        if "branches" in prof:
            _check_branches(prof["branches"], f"{where}: profile {name!r} branches")


def _check_grid(grid, where: str) -> None:
    if isinstance(grid, (list, tuple)):
        if not grid:
            raise ConfigError(f"{where} is an empty list of grids: the experiment would have no runs")
        for i, g in enumerate(grid):
            _check_grid(g, f"{where}[{i}]")
        return
    if not isinstance(grid, dict):
        raise ConfigError(f"{where} must be a dict of key -> list of values (or a list of such dicts), "
                          f"got {type(grid).__name__}")
    for k, v in grid.items():
        if isinstance(v, Derived):          # the whole list of values, computed at expansion
            continue
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where}[{k!r}] must be a list of values, got {v!r} (write [{v!r}] for one value)")
        if not v:
            raise ConfigError(f"{where}[{k!r}] is an empty list: the grid would have no runs")
        if isinstance(k, tuple):
            if not k or not all(isinstance(x, str) for x in k):
                raise ConfigError(f"{where}: a tuple key must name dotted fields, got {k!r}")
            bad = [x for x in v if not (isinstance(x, Derived) or isinstance(x, (list, tuple)) and len(x) == len(k))]
            if bad:
                raise ConfigError(f"{where}[{k!r}]: each value must be a tuple of {len(k)} "
                                  f"(one per key), got {bad[0]!r}")


def grid_points(grid) -> list[dict]:
    """The overrides of every grid point: a dict is a cartesian product over its keys (a tuple key
    takes its values zipped), a list of dicts the union of their points (duplicates once, in order)."""
    if isinstance(grid, (list, tuple)):
        out = []
        for g in grid:
            out += [p for p in grid_points(g) if p not in out]
        return out
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = {}
        for k, v in zip(keys, values):
            point.update(zip(k, v) if isinstance(k, tuple) else [(k, v)])
        points.append(point)
    return points


def _check_branches(br, where: str) -> None:
    if br is None:
        return
    if not isinstance(br, dict):
        raise ConfigError(f"{where} must be a dict with at_tokens (and fraction, shape, final)")
    unknown = set(br) - {"at_tokens", "fraction", "shape", "final"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: at_tokens, fraction, shape, final")
    at = br.get("at_tokens")
    if not (isinstance(at, (list, tuple)) and at and all(isinstance(x, (int, float)) and x > 0 for x in at)):
        raise ConfigError(f"{where}: at_tokens must be a non-empty list of positive token counts, got {at!r}")
    f = br.get("fraction", 0.2)
    if not (isinstance(f, (int, float)) and 0 < f < 1):
        raise ConfigError(f"{where}: fraction must be in (0, 1), got {f!r}")


def _profile(exp: Experiment, profile: str) -> tuple[dict, dict, dict | None]:
    if profile not in exp.profiles:
        raise ConfigError(f"experiment {exp.name}: unknown profile {profile!r}; known: {', '.join(exp.profiles)}")
    prof = dict(exp.profiles[profile])
    grid = prof.pop("grid", exp.grid)
    branches = prof.pop("branches", exp.branches)
    return prof, grid, branches


def _resolve(x, value):
    if isinstance(x, Derived):
        return value(x)
    if isinstance(x, dict):
        return {k: _resolve(v, value) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_resolve(v, value) for v in x)
    return x


_RESOLVING: set = set()       # (experiment, profile) being expanded: a cycle of Derived values is an error


def _derived_value(exp: Experiment, profile: str, root: Path | None):
    def value(d: Derived):
        where = f"experiment {exp.name}"
        key = (d.experiment, d.profile or profile)
        if key in _RESOLVING:
            raise ConfigError(f"{where}: Derived values form a cycle through {key[0]}/{key[1]}")
        if root is None:
            raise ConfigError(f"{where}: a Derived value needs the result store (pass root)")
        if d.experiment == exp.name:
            raise ConfigError(f"{where}: a value cannot be derived from the experiment itself")
        own = Path(exp.path).parent / f"{d.experiment}.py" if exp.path else None
        dep = load_experiment(str(own) if own and own.is_file() else d.experiment)
        prof = d.profile or profile
        _RESOLVING.add((exp.name, profile))
        try:
            planned = plan_runs(dep, prof, root)
        finally:
            _RESOLVING.discard((exp.name, profile))
        done = sum(run_state(s.dir)[0] in DONE for s in planned)
        if done < len(planned):
            raise DependencyPending(f"{where}: its {profile} profile is derived from {dep.name}/{prof}, which "
                                    f"has {done} of {len(planned)} runs done; run {dep.name} first")
        from .store import load_runs
        runs = [r for r in load_runs(root, dep.name, prof, only={s.dir.name for s in planned}, quiet=True)
                if r["state"] in DONE]     # completed and diverged: a diverged run is a result too
        try:
            return d.fn(runs)
        except (ValueError, ArithmeticError) as e:     # laws.FitError is a ValueError
            raise ConfigError(f"{where}: cannot derive a value from {dep.name}/{prof}: {e}") from None
    return value


def expand(exp: Experiment, profile: str, root: Path | None = None) -> list[Config]:
    """The grid configs of one profile (base <- profile <- grid point); parents when branching.

    root: the result store, needed only to resolve Derived values."""
    prof, grid, branches = _profile(exp, profile)
    if dependencies(exp, profile):
        value = _derived_value(exp, profile, root)
        exp = dataclasses.replace(exp, base=_resolve(exp.base, value))
        prof, grid = _resolve(prof, value), _resolve(grid, value)
        _check_grid(grid, f"experiment {exp.name}: derived GRID")    # the derived values too
    # Layers BASE < profile < grid point: a later layer wins, its model.size included.
    base = apply_overrides(apply_overrides(Config(), exp.base), prof)
    if branches:
        base = apply_overrides(base, {"train.save_at_tokens": tuple(int(x) for x in branches["at_tokens"])})
    out = []
    for point in grid_points(grid):
        cfg = apply_overrides(base, point)
        if cfg not in out:          # two points of a list of grids may resolve to one config
            out.append(cfg)
    return out


def branch_configs(parent: Config, branches: dict) -> list[Config]:
    """Decay branches of a stable parent: decay starts exactly at each kept checkpoint."""
    f = float(branches.get("fraction", 0.2))
    if not 0 < f < 1:
        raise ConfigError(f"branches.fraction: must be in (0, 1), got {f}")
    b = BatchSchedule.from_config(parent)
    total = b.tokens_before(parent.train.steps or b.steps_for_tokens(parent.train.tokens))
    out = []
    for d in branches["at_tokens"]:
        start = b.tokens_before(b.steps_for_tokens(int(d)))
        if start > total:
            raise ConfigError(f"branches.at_tokens: {int(d):,} is past the end of the stable run "
                              f"({total:,} tokens); lengthen train.tokens or drop the branch point")
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
    for cfg in expand(exp, profile, root):
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
#
# Every worker walks the same list of units (a run, or a group of vmapped replicas) and claims
# each with a file lock.  A run that fails is marked with the sweep's id, so the other workers of
# the same sweep do not retry it; the next sweep invocation retries it once.

def _record_failure(spec: RunSpec, reason: str, sweep_id: str) -> None:
    spec.dir.mkdir(parents=True, exist_ok=True)
    if not (spec.dir / "config.json").exists():
        write_json_atomic(spec.dir / "config.json", spec.cfg.to_dict())
    st = read_status(spec.dir) or {}
    st.update(status="failed", reason=reason, sweep=sweep_id)
    write_json_atomic(spec.dir / "status.json", st)


def _failed_in(spec: RunSpec, sweep_id: str) -> bool:
    st = read_status(spec.dir)
    return bool(st and st.get("status") == "failed" and st.get("sweep") == sweep_id)


def _parent_gate(spec: RunSpec, pending_dirs=frozenset()) -> str:
    """'ready', 'wait' (parent still to train or training) or a reason the branch can never start."""
    if spec.parent is None or spec.init_step in checkpoint_steps(spec.parent):
        return "ready"
    if spec.parent in pending_dirs or RunLock(spec.parent).held_elsewhere():
        return "wait"
    state, reason = run_state(spec.parent)
    if state in DONE or state in ("failed", "interrupted") or state in UNUSABLE:
        return f"parent {spec.parent.name} is {state} without a checkpoint at step {spec.init_step}" + (
            f" ({reason})" if reason else "")
    return "wait"


def _latest_checkpoint(spec: RunSpec):
    steps = checkpoint_steps(spec.dir)
    return steps[-1] if steps else None


def _train_unit(unit: list[RunSpec], log, progress: bool, position: int, sweep_id: str) -> list[str]:
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
            _record_failure(spec, reason, sweep_id)
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
                progress: bool = True, poll: float = 0.5, sweep_id: str = "") -> None:
    """Train every claimable unit (a run, or a group of vmapped replicas); wait for branches' parents.

    SIGINT / SIGTERM: the run in training checkpoints and stops (`interrupted`); no new unit starts.
    """
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    emit = events.put if events is not None else (lambda e: print(*e, flush=True))
    log = lambda msg: emit(("log", wid, msg))
    pending = [list(u) for u in units]
    with StopRequest() as stop:
        while pending and not stop.requested:
            progressed = False
            for unit in list(pending):
                unit[:] = [s for s in unit if run_state(s.dir)[0] not in DONE + UNUSABLE
                           and not _failed_in(s, sweep_id)]
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
                    todo = [s for s in unit if run_state(s.dir)[0] not in DONE + UNUSABLE
                            and not _failed_in(s, sweep_id)]     # re-check under the locks
                    blocked = [(s, g) for s, g in zip(unit, gates) if g != "ready" and s in todo]
                    for s, g in blocked:
                        _record_failure(s, g, sweep_id)
                        emit(("done", wid, f"{s.dir.name}: failed ({g})"))
                    todo = [s for s in todo if s not in {b for b, _ in blocked}]
                    # Replicas must start from the same point; otherwise train them one by one.
                    parts = [todo] if len({_latest_checkpoint(s) for s in todo}) <= 1 else [[s] for s in todo]
                    for part in (p for p in parts if p and not stop.requested):
                        emit(("start", wid, part[0].dir.name))
                        for s, result in zip(part, _train_unit(part, log, progress, wid + 1, sweep_id)):
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


def check_runs_dir(root: Path) -> None:
    """One-line error if the result store cannot be written (a file, read-only, missing parent)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--runs {root}: is a file, not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--runs {root}: cannot write there ({e.strerror or e})") from None


def _dry_run(exp: Experiment, profile: str, specs: list[RunSpec]) -> int:
    for s in specs:
        state, reason = run_state(s.dir)
        kind = f"branch of {s.parent.name} at {s.cfg.train.init_tokens:,} tokens" if s.parent else "run"
        print(f"{exp.name}/{profile}/{s.dir.name}  {state:9} {kind}  ~{s.cost:.2e} FLOPs"
              + (f"  ({reason})" if reason else ""))
    return 0


def _run_workers(units, workers: int, pin: bool, progress: bool, sweep_id: str, handle, stop) -> list[str]:
    """Worker processes over the units; returns a line per worker that died abnormally."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(workers))
    ctx = mp.get_context("spawn")          # JAX and fork do not mix
    q = ctx.Queue()
    procs = [ctx.Process(target=worker_loop, args=(units, i),
                         kwargs=dict(core=cores[i % len(cores)] if pin else None, events=q,
                                     progress=progress, sweep_id=sweep_id), daemon=True)
             for i in range(workers)]
    for p in procs:
        p.start()
    forwarded = False
    while any(p.is_alive() for p in procs) or not q.empty():
        if stop.requested and not forwarded:   # a SIGTERM to this process alone reaches the workers too
            for p in procs:
                if p.is_alive():
                    p.terminate()
            forwarded = True
        try:
            handle(q.get(timeout=0.5))
        except queue.Empty:
            continue
    for p in procs:
        p.join()
    return [f"worker {i} exited with code {p.exitcode}" for i, p in enumerate(procs)
            if p.exitcode not in (0, None) and not stop.requested]


def finished_runs(root: Path, name: str, profile: str, *, states=DONE, with_metrics: bool = True,
                  pending_ok: bool = False) -> list[dict]:
    """The runs of an experiment's current expansion (store.load_runs) whose state is in `states`
    (default: completed or diverged).  A Derived experiment whose dependency is unfinished raises
    DependencyPending, or with pending_ok has no runs yet ([])."""
    from .store import load_runs
    try:
        planned = {s.dir.name for s in plan_runs(load_experiment(name), profile, Path(root))}
    except DependencyPending:
        if pending_ok:
            return []
        raise
    return [r for r in load_runs(root, name, profile, with_metrics=with_metrics, only=planned, quiet=True)
            if r["state"] in states]


def prune_checkpoints(exp: Experiment, profile: str, root: Path, *, dry_run: bool = False) -> list[tuple[Path, int]]:
    """Delete the checkpoints of finished runs that nothing needs any more: a run that is completed
    or diverged and, if it is a stable parent, whose planned decay branches are all finished too.
    Metrics, config and status stay (the store needs nothing else).  Runs still to train, running,
    interrupted or failed keep theirs (they resume from them); each run is locked while it is
    pruned, so a concurrent runner never loses a checkpoint it is using.  A branch point added to
    the experiment later cannot start from a pruned parent (the sweep says so); re-train the
    parent by deleting its run directory.  Returns [(run dir, bytes freed)]."""
    import shutil
    specs = plan_runs(exp, profile, root)
    branches = collections.defaultdict(list)
    for s in specs:
        if s.parent is not None:
            branches[s.parent].append(s.dir)
    out = []
    for s in specs:
        ckpt = s.dir / "ckpt"
        if not ckpt.is_dir() or run_state(s.dir)[0] not in DONE:
            continue
        if any(run_state(b)[0] not in DONE for b in branches.get(s.dir, [])):
            continue
        size = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
        lock = RunLock(s.dir)
        if not lock.acquire():
            continue                                   # another runner holds it: leave it
        try:
            if not dry_run:
                shutil.rmtree(ckpt)
        finally:
            lock.release()
        out.append((s.dir, size))
    return out


def run_sweep(exp: Experiment, profile: str, root: Path, *, workers: int = 1, shard_spec=(0, 1),
              dry_run: bool = False, progress: bool = True, pin: bool = True, vmap: int = 1) -> int:
    """Run (or list) a profile's runs.  Returns 0 when every run of the slice is completed or
    diverged; 1 (naming them) when any is not; 130 / 143 after SIGINT / SIGTERM.

    vmap > 1 trains up to that many new runs differing only in LR / init seed as one vmapped
    program (pays on accelerators; slower on a 2-core CPU, see `make bench`).
    """
    if workers < 1 or vmap < 1:
        raise ConfigError(f"--workers and --vmap must be >= 1, got {workers} and {vmap}")
    specs = shard(plan_runs(exp, profile, root), *shard_spec)
    if dry_run:
        return _dry_run(exp, profile, specs)
    check_runs_dir(root)
    from tqdm.auto import tqdm
    t0, sweep_id = time.time(), uuid.uuid4().hex[:12]
    todo = sum(run_state(s.dir)[0] not in DONE for s in specs)
    bar = tqdm(total=len(specs), initial=len(specs) - todo, unit="run", desc=f"{exp.name}/{profile}",
               disable=None if progress else True, position=0, dynamic_ncols=True)
    units = group_units(specs, vmap)
    workers = max(1, min(workers, todo, len(units)))

    def handle(e):
        if e[0] == "done":
            bar.update(1)
            bar.write(f"[worker {e[1]}] {e[2]}")
        elif e[0] == "log":
            bar.write(f"[worker {e[1]}] {e[2]}", file=sys.stderr)

    with StopRequest() as stop:
        if workers == 1:
            worker_loop(units, 0, events=_Direct(handle), progress=progress, sweep_id=sweep_id)
            crashed = []
        else:
            crashed = _run_workers(units, workers, pin, progress, sweep_id, handle, stop)
    bar.close()
    states = [run_state(s.dir) for s in specs]
    summary = collections.Counter(st for st, _ in states)
    print(f"{exp.name}/{profile}: " + ", ".join(f"{v} {k}" for k, v in sorted(summary.items()))
          + f" ({todo} to train, {time.time() - t0:.0f} s with {workers} worker(s))", flush=True)
    for line in crashed:
        print(f"{exp.name}/{profile}: {line}", file=sys.stderr)
    unfinished = [(s, st, why) for s, (st, why) in zip(specs, states) if st not in DONE]
    for s, st, why in unfinished:
        print(f"{exp.name}/{profile}: not finished: {s.dir.name} {st}" + (f" ({why})" if why else ""),
              file=sys.stderr)
    if stop.requested:
        print(f"{exp.name}/{profile}: stopped by {stop.name}; run the same command again to resume",
              file=sys.stderr)
        return EXIT_CODES.get(stop.signum, 1)
    return 1 if unfinished else 0

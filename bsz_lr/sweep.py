"""Experiments as declarative files, expanded into runs of the result store.

An experiment file (experiments/NAME.py) defines module-level values:

    NAME     = "tiny_lm"                      # defaults to the file name
    BASE     = {"model.size": "tiny", ...}    # dotted overrides of Config()
    GRID     = {"optim.lr": [1e-3, 3e-3]}     # cartesian product (may be empty)
    PROFILES = {"smoke": {...}, "cpu": {...}} # overrides per profile; a "grid" key replaces GRID
    FIGURES  = ["tiny_lm_loss"]               # figure builders fed by this experiment

Runs live in <root>/<NAME>/<profile>/<config hash>/ (see train.py for the files).
Today the runner trains runs one after another, skipping completed ones and
resuming interrupted ones from their checkpoints.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
from pathlib import Path

from .config import Config, ConfigError, apply_overrides, config_hash

__all__ = ["Experiment", "load_experiment", "expand", "run_dir", "run_experiment", "load_runs"]

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    base: dict
    grid: dict
    profiles: dict
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
                      tuple(getattr(mod, "FIGURES", ())))


def expand(exp: Experiment, profile: str) -> list[Config]:
    """All fully resolved configs of one profile (base <- profile <- grid point)."""
    if profile not in exp.profiles:
        raise ConfigError(f"experiment {exp.name}: unknown profile {profile!r}; known: {', '.join(exp.profiles)}")
    prof = dict(exp.profiles[profile])
    grid = prof.pop("grid", exp.grid)
    base = apply_overrides(Config(), {**exp.base, **prof})
    keys = list(grid)
    return [apply_overrides(base, dict(zip(keys, values)))
            for values in itertools.product(*(grid[k] for k in keys))]


def run_dir(root: Path, exp: Experiment, profile: str, cfg: Config) -> Path:
    return Path(root) / exp.name / profile / config_hash(cfg)


def run_experiment(exp: Experiment, profile: str, root: Path, *, progress=True, dry_run=False) -> int:
    from .train import read_status, train
    configs = expand(exp, profile)
    failed = 0
    for i, cfg in enumerate(configs):
        d = run_dir(root, exp, profile, cfg)
        st = (read_status(d) or {}).get("status", "new")
        print(f"[{i + 1}/{len(configs)}] {exp.name}/{profile}/{d.name}: {st}", flush=True)
        if dry_run or st == "completed":
            continue
        from .train import enable_compilation_cache
        enable_compilation_cache()
        st = train(cfg, d, progress=progress)["status"]
        print(f"    -> {st}", flush=True)
        failed += st not in ("completed", "diverged")
    return 1 if failed else 0


def load_runs(root: Path, name: str, profile: str) -> list[dict]:
    """Every stored run of an experiment profile: config, status and metrics rows."""
    out = []
    for d in sorted((Path(root) / name / profile).glob("*/")):
        try:
            cfg = json.loads((d / "config.json").read_text())
            status = json.loads((d / "status.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rows = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines() if l.strip()]
        out.append({"dir": str(d), "hash": d.name, "config": cfg, "status": status, "metrics": rows})
    return out

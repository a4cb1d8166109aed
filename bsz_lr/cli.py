"""Command line: `python -m bsz_lr {train,sweep,prune,export,figures,bench,info} ...`.

Config overrides are dotted `key=value` pairs resolved against the config
dataclasses (`model.size=small optim.lr=3e-3 data.batch_stages='((1000000,64),)'`),
the same keys experiment files use.  Errors in config or data print one line
and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from .config import Config, ConfigError, apply_overrides, config_hash


def _writable_dir(path: Path, flag: str) -> None:
    """One-line error unless `path` is (or can be made) a writable directory."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{flag} {path}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {probe} is not writable")


def _train(args) -> int:
    import contextlib
    from . import sharding
    from .signals import EXIT_CODES
    from .train import enable_compilation_cache, train
    cfg = apply_overrides(Config(), args.overrides)
    mesh_spec = sharding.MeshSpec.parse(args.mesh) if args.mesh else None
    out = Path(args.out) if args.out else Path("runs") / "train" / config_hash(cfg)
    sharding.initialize(args.coordinator, args.num_processes, args.process_id)   # multi-host, if asked / detected
    lead = sharding.is_lead()
    if lead:
        _writable_dir(out, "--out")
    if mesh_spec is not None:
        sharding.set_mesh(sharding.make_mesh(mesh_spec))
    from .store import RunLock
    enable_compilation_cache()
    with RunLock(out) if lead else contextlib.nullcontext() as lock:   # one claim per job, by process 0
        if lock is not None and not lock.acquire():
            raise ConfigError(f"--out {out}: another process is training this run")
        status = train(cfg, out, progress=not args.no_progress and lead)
    if status["status"] == "interrupted":
        print(f"bsz_lr: {status['reason']}; run the same command to resume ({out})", file=sys.stderr)
    print(json.dumps({"run_dir": str(out), **status}))
    if status["status"] == "interrupted":
        return EXIT_CODES.get(signal.Signals[status["signal"]], 1)
    return 0 if status["status"] == "completed" else 3


def _positive_int(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
        return value
    parse.__name__ = flag
    return parse


def _workers(text: str):
    return "auto" if text == "auto" else _positive_int("workers")(text)


def _sweep(args) -> int:
    from .sweep import (DependencyPending, check_runs_dir, dependencies, dependency_order, load_experiment,
                        plan_runs, run_sweep)
    try:
        i, n = (int(x) for x in args.shard.split("/"))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise ConfigError(f"--shard: expected i/n with 0 <= i < n, got {args.shard!r}") from None
    if args.mesh:
        from .sharding import MeshSpec
        MeshSpec.parse(args.mesh)                        # a bad value fails here, not in every worker
        os.environ["BSZ_LR_MESH"] = args.mesh
    exps = dependency_order([load_experiment(f) for f in args.files])
    wanted, todo = args.profile.split(","), []
    for exp in exps:                        # every file and profile is checked before anything trains
        profile = next((p for p in wanted if p in exp.profiles), None)
        if profile is None:
            msg = f"experiment {exp.name}: no profile {' or '.join(wanted)}; known: {', '.join(exp.profiles)}"
            if not args.skip_missing:
                raise ConfigError(msg)
            print(f"bsz_lr: {msg}; skipped", file=sys.stderr)
            continue
        try:
            plan_runs(exp, profile, Path(args.runs))
        except DependencyPending:           # planned once the dependency given here has trained
            if not dependencies(exp, profile) & {e.name for e, _ in todo}:
                raise
        todo.append((exp, profile))
    if not todo:     # --skip-missing must not turn a mistyped profile into a sweep that "succeeds"
        raise ConfigError(f"--profile {args.profile}: none of the {len(exps)} experiments defines it")
    if not args.dry_run:
        check_runs_dir(Path(args.runs))
    workers = len(os.sched_getaffinity(0)) if args.workers == "auto" else args.workers
    rc = 0
    for exp, profile in todo:
        try:
            code = run_sweep(exp, profile, Path(args.runs), workers=workers, shard_spec=(i, n),
                             progress=not args.no_progress, dry_run=args.dry_run, vmap=args.vmap)
        except DependencyPending as e:      # its dependency did not finish (or this is a dry run)
            print(f"bsz_lr: {e}; skipped", file=sys.stderr)
            code = 0 if args.dry_run else 1
        except ConfigError as e:            # a derived value could not be computed: the others go on
            if not dependencies(exp, profile):
                raise
            print(f"bsz_lr: error: {e}; skipped", file=sys.stderr)
            code = 1
        if code in (130, 143):
            return code                                     # interrupted: stop here
        rc = rc or code
    return rc


def _prune(args) -> int:
    from .sweep import load_experiment, prune_checkpoints
    total = 0
    for f in args.files:
        exp = load_experiment(f)
        profile = args.profile
        if profile not in exp.profiles:
            print(f"bsz_lr: experiment {exp.name}: no profile {profile}; skipped", file=sys.stderr)
            continue
        done = prune_checkpoints(exp, profile, Path(args.runs), dry_run=args.dry_run)
        freed = sum(b for _, b in done)
        total += freed
        verb = "would free" if args.dry_run else "freed"
        print(f"{exp.name}/{profile}: {len(done)} finished runs' checkpoints, {verb} {freed / 1e6:,.1f} MB")
    return 0


def _export(args) -> int:
    from .results_table import export_rows, write_table
    rows = export_rows(Path(args.runs), args.experiment, args.profile)
    write_table(rows, Path(args.out))
    print(f"{args.experiment}/{args.profile}: {len(rows)} finished runs -> {args.out}")
    return 0


def _advise(args) -> int:
    import csv
    from .advise import advise, format_advice
    from .laws import FitError
    path = Path(args.results)
    if not path.is_file():
        raise ConfigError(f"--results: no such file {path}")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows, header = list(reader), list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"--results {path}: unreadable ({e})") from None
    if args.columns:
        from .advise import map_columns, parse_columns
        try:
            rows = map_columns(rows, parse_columns(args.columns, header))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    try:
        res = advise(rows, args.target_params, args.target_tokens, seed=args.seed, plot=args.plot, base=path.parent)
    except FitError as e:
        raise ConfigError(f"advise: {e}") from None
    print(json.dumps(res, indent=1) if args.json else format_advice(res))
    return 0


def _figures(args) -> int:
    from .figures import build_all
    build_all(Path(args.runs), Path(args.out), only=args.only, profile=args.profile)
    return 0


def _bench(args) -> int:
    from .bench import main as bench_main
    return bench_main(quick=args.quick, peer_only=args.peer, where=args.where, batches=args.batches, moe=args.moe,
                      optim=args.optim, kernels=args.kernels, profile=args.profile)


def _info(args) -> int:
    import jax
    from . import sharding
    from .data import load_corpus
    from .model import counts_of
    cfg = apply_overrides(Config(), args.overrides)
    spec = sharding.MeshSpec.parse(args.mesh) if args.mesh else sharding.default_spec()
    n = args.devices or jax.device_count()
    mem = sharding.memory_estimate(cfg, spec, n)
    limit = args.device_memory_gb * 2 ** 30 if args.device_memory_gb else sharding.device_memory()
    corpus = load_corpus(cfg.data, cfg.model.vocab_size)
    print(json.dumps({"config_hash": config_hash(cfg), "params": counts_of(cfg.model),
                      "train_tokens": int(corpus.train.size), "val_tokens": int(corpus.val.size),
                      "memory_per_device_gib": {k: round(v / 2 ** 30, 4) if k not in ("devices", "data", "fsdp",
                                                "sequences_per_device") else v for k, v in mem.items()},
                      "config": cfg.to_dict()}, indent=1))
    if limit and mem["total"] > limit:
        print(f"bsz_lr: warning: ~{mem['total'] / 2 ** 30:.1f} GiB per device will not fit in {limit / 2 ** 30:.1f} GiB; "
              "try model.remat=true, model.compute_dtype=bfloat16, a larger fsdp or a smaller data.batch_size",
              file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bsz_lr", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train one model (resumes if --out holds a checkpoint)")
    t.add_argument("--out", help="run directory (default runs/train/<config hash>)")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--mesh", metavar="data=D,fsdp=F",
                   help="device mesh (default: every device on data; BSZ_LR_MESH sets it too)")
    t.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: process 0's address (with the two below; "
                   "without them a SLURM / TPU job is detected from its environment)")
    t.add_argument("--num-processes", type=_positive_int("--num-processes"), help="multi-host: number of processes")
    t.add_argument("--process-id", type=int, help="multi-host: this process's index, 0 .. n-1")
    t.add_argument("overrides", nargs="*", metavar="key=value")
    t.set_defaults(fn=_train)

    e = sub.add_parser("sweep", help="run experiment files' profile into the run store")
    e.add_argument("files", nargs="+", metavar="file", help="experiments/NAME.py or NAME (several: one after another)")
    e.add_argument("--profile", default="cpu",
                   help="profile name, or a comma list: the first one each experiment defines")
    e.add_argument("--skip-missing", action="store_true",
                   help="skip (with a message) an experiment that defines none of the profiles")
    e.add_argument("--runs", default="results")
    e.add_argument("--dry-run", action="store_true", help="list the runs and their state; train nothing")
    e.add_argument("--no-progress", action="store_true")
    e.add_argument("--workers", default="auto", type=_workers,
                   help="worker processes, each pinned to a core (default: one per core)")
    e.add_argument("--vmap", type=_positive_int("vmap"), default=1,
                   help="train up to this many runs differing only in LR / seed as one vmapped program")
    e.add_argument("--shard", default="0/1", help="i/n: run only this disjoint slice (e.g. a SLURM array task)")
    e.add_argument("--mesh", metavar="data=D,fsdp=F", help="device mesh of each run (sets BSZ_LR_MESH for the workers)")
    e.set_defaults(fn=_sweep)

    pr = sub.add_parser("prune", help="delete the checkpoints of finished runs nothing needs (branches done)")
    pr.add_argument("files", nargs="+", metavar="file")
    pr.add_argument("--profile", default="cpu")
    pr.add_argument("--runs", default="results")
    pr.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    pr.set_defaults(fn=_prune)

    x = sub.add_parser("export", help="write an experiment's finished runs as a results table (CSV)")
    x.add_argument("experiment", help="experiments/NAME.py or NAME")
    x.add_argument("--profile", default="cpu")
    x.add_argument("--runs", default="results")
    x.add_argument("--out", required=True, help="the CSV to write")
    x.set_defaults(fn=_export)

    v = sub.add_parser("advise", help="fit the LR and batch laws on a results table and recommend a peak LR, "
                                      "batch size and batch schedule for a target run")
    v.add_argument("--results", required=True, metavar="TABLE", help="a results table (CSV, see results_table.py)")
    v.add_argument("--target-params", required=True, type=float, metavar="N",
                   help="the target's non-embedding parameters (active ones for MoE)")
    v.add_argument("--target-tokens", required=True, type=float, metavar="D", help="the target's training tokens")
    v.add_argument("--columns", metavar="NAME=EXPR,...",
                   help="map the table's columns onto n_params, tokens, lr, batch_tokens, loss, status, run, seed, "
                        "curve, warmup_tokens, stable_tokens "
                        "(+ - * / and numbers for units), e.g. batch_tokens=batch*seq_len,lr=peak_lr")
    v.add_argument("--json", action="store_true", help="the advice as JSON")
    v.add_argument("--plot", metavar="FILE", help="also a one-page figure of the fits (PNG / PDF by its suffix)")
    v.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    v.set_defaults(fn=_advise)

    f = sub.add_parser("figures", help="rebuild figures from stored results (no training)")
    f.add_argument("--runs", default="results")
    f.add_argument("--out", default="figures")
    f.add_argument("--only", nargs="*", help="figure names")
    f.add_argument("--profile", help="plot this profile (default: the largest-scale one whose runs are all done)")
    f.set_defaults(fn=_figures)

    b = sub.add_parser("bench", help="tokens/s and FLOP/s vs the matmul ceiling")
    b.add_argument("--quick", action="store_true", help="fewer steps (a sanity run, not a measurement)")
    b.add_argument("--peer", action="store_true", help="only the PyTorch peer table (needs the `bench` extra)")
    b.add_argument("--batches", action="store_true", help="only tokens/s per batch size at the batch sweep's shapes")
    b.add_argument("--moe", action="store_true", help="only MoE tokens/s, ragged vs dense experts")
    b.add_argument("--optim", action="store_true", help="only ms per step of AdamW / Muon / Mousse")
    b.add_argument("--where", action="store_true", help="where a step's time goes: its parts timed alone")
    b.add_argument("--kernels", action="store_true",
                   help="one layer's pieces alone (attention, RoPE, RMSNorm, MLP, block), XLA vs torch")
    b.add_argument("--profile", metavar="MODEL", help="XLA's profile of one compiled chunk, by model operation")
    b.set_defaults(fn=_bench)

    i = sub.add_parser("info", help="resolved config, parameter counts and corpus sizes")
    i.add_argument("overrides", nargs="*", metavar="key=value")
    i.add_argument("--mesh", metavar="data=D,fsdp=F", help="estimate memory per device on this mesh")
    i.add_argument("--devices", type=_positive_int("--devices"), help="device count (default: this machine's)")
    i.add_argument("--device-memory-gb", type=float, help="warn above this (default: what the device reports)")
    i.set_defaults(fn=_info)

    args = ap.parse_args(argv)
    from .data import DataError
    try:
        return args.fn(args)
    except (ConfigError, DataError) as err:
        print(f"bsz_lr: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bsz_lr: interrupted", file=sys.stderr)
        return 130
    except Exception as err:   # one line for the user; the traceback on request
        if os.environ.get("BSZ_LR_DEBUG"):
            raise
        print(f"bsz_lr: error: {type(err).__name__}: {err} (BSZ_LR_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1

"""Sweep runner and result store: resume, kill -9, concurrent runners, failures, corruption, branches."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bsz_lr.config import apply_overrides
from bsz_lr.store import load_runs, load_table, run_state
from bsz_lr.sweep import branch_configs, load_experiment, plan_runs, run_sweep, shard
from bsz_lr.train import load_run_config, train

REPO = Path(__file__).resolve().parent.parent
VOLATILE = ("wall_time", "tokens_per_s")

SMOKE = """
BASE = {"model.size": "nano", "data.seq_len": 32, "data.batch_size": 8, "train.eval_tokens": 2048,
        "train.eval_every": 20, "train.checkpoint_every": 20, "schedule.warmup_steps": 5}
GRID = %(grid)s
PROFILES = {"smoke": {"train.steps": %(steps)d}}
"""


def write_exp(tmp_path, name="exp", grid=None, steps=40, extra=""):
    grid = grid or {"optim.lr": [1e-3, 2e-3, 3e-3], "train.seed": [0]}
    f = tmp_path / f"{name}.py"
    f.write_text(SMOKE % {"grid": repr(grid), "steps": steps} + extra)
    return load_experiment(str(f)), f


def rows(d):
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in (Path(d) / "metrics.jsonl").read_text().splitlines()]


def finals(root, exp):
    return {r["hash"]: rows(r["dir"]) for r in load_runs(root, exp.name, "smoke")}


def runs_with_a_checkpoint(root):
    """Run dirs holding at least one finished checkpoint (old ones are pruned; orbax tmp dirs don't count)."""
    return len({c.parent.parent for c in Path(root).glob("*/*/*/ckpt/*") if c.name.isdigit()})


def sweep_cmd(f, root, *extra):
    return [sys.executable, "-m", "bsz_lr", "sweep", str(f), "--profile", "smoke", "--runs", str(root),
            "--workers", "1", "--no-progress", *extra]


def test_rerun_skips_done_and_dry_run_trains_nothing(tmp_path, capsys):
    exp, _ = write_exp(tmp_path)
    assert run_sweep(exp, "smoke", tmp_path / "r", dry_run=True) == 0
    assert capsys.readouterr().out.count(" new ") == 3 and not (tmp_path / "r").exists()
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    before = finals(tmp_path / "r", exp)
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    assert finals(tmp_path / "r", exp) == before
    for r in load_runs(tmp_path / "r", exp.name, "smoke"):
        assert len((Path(r["dir"]) / "attempts.jsonl").read_text().splitlines()) == 1
    table = load_table(tmp_path / "r", exp.name, "smoke")
    assert len(table) == 3 and {t["optim.lr"] for t in table} == {1e-3, 2e-3, 3e-3}
    assert all(t["status"] == "completed" and len(t["curve.val_loss"]) == 3 for t in table)


def test_sigkill_at_a_random_moment_then_rerun_matches_uninterrupted(tmp_path):
    exp, f = write_exp(tmp_path, grid={"optim.lr": [1e-3, 3e-3]}, steps=300)
    run_sweep(exp, "smoke", tmp_path / "ref", progress=False)
    seed = os.environ.get("BSZ_LR_TEST_SEED") or str(random.randrange(10 ** 6))   # printed on failure
    rng = random.Random(seed)
    proc = subprocess.Popen(sweep_cmd(f, tmp_path / "cut"), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill once at least one run has started (a random moment within the sweep).
    deadline = time.time() + 60
    while not list((tmp_path / "cut").glob("*/smoke/*/metrics.jsonl")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = [run_state(d)[0] for d in (tmp_path / "cut").glob("*/smoke/*") if d.is_dir() and "." not in d.name]
    assert killed.count("completed") < 2, f"the kill came too late to interrupt anything (seed {seed})"
    assert subprocess.run(sweep_cmd(f, tmp_path / "cut"), cwd=REPO, capture_output=True).returncode == 0
    assert finals(tmp_path / "cut", exp) == finals(tmp_path / "ref", exp), f"seed {seed}"
    assert all(run_state(r["dir"])[0] == "completed" for r in load_runs(tmp_path / "cut", exp.name, "smoke"))


def test_two_runners_never_train_a_run_twice(tmp_path):
    exp, f = write_exp(tmp_path, grid={"optim.lr": [1e-3, 2e-3, 3e-3, 4e-3]})
    procs = [subprocess.Popen(sweep_cmd(f, tmp_path / "r"), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    runs = load_runs(tmp_path / "r", exp.name, "smoke")
    assert len(runs) == 4 and all(r["state"] == "completed" for r in runs)
    for r in runs:
        attempts = (Path(r["dir"]) / "attempts.jsonl").read_text().splitlines()
        assert len(attempts) == 1, r["dir"]
        steps = [x["step"] for x in r["metrics"]]
        assert steps == sorted(set(steps))                      # no line written twice
    assert all(out.count(": completed") >= 1 for out in outs)  # both did work


def test_diverged_and_failed_runs_are_recorded_and_the_sweep_goes_on(tmp_path):
    exp, _ = write_exp(tmp_path, grid={"optim.lr": [1e30, 3e-3], "data.corpus": ["austen", str(tmp_path / "nope")]})
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 1      # some failed
    table = load_table(tmp_path / "r", exp.name, "smoke")
    by = {(t["optim.lr"], t["data.corpus"]): t for t in table}
    assert by[(3e-3, "austen")]["status"] == "completed"
    assert by[(1e30, "austen")]["status"] == "diverged" and "nan" in by[(1e30, "austen")]["reason"]
    for lr in (1e30, 3e-3):
        t = by[(lr, str(tmp_path / "nope"))]
        assert t["status"] == "failed" and "not a known corpus" in t["reason"]
    # A re-run retries the failed runs only (they fail again), never the finished ones.
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 1
    att = lambda t: len((Path(t["dir"]) / "attempts.jsonl").read_text().splitlines())
    assert att(by[(3e-3, "austen")]) == 1 and att(by[(1e30, "austen")]) == 1


def test_corrupt_run_is_reported_moved_aside_and_rerun(tmp_path, capsys):
    exp, _ = write_exp(tmp_path, grid={"optim.lr": [1e-3, 2e-3]})
    run_sweep(exp, "smoke", tmp_path / "r", progress=False)
    good = finals(tmp_path / "r", exp)
    a, b = sorted(good)
    base = tmp_path / "r" / exp.name / "smoke"
    m = (base / a / "metrics.jsonl").read_text()
    (base / a / "metrics.jsonl").write_text(m.replace('"train_loss": ', '"train_loss": 1', 1))
    (base / b / "config.json").write_text("{ not json")
    assert run_state(base / a)[0] == "corrupt" and run_state(base / b)[0] == "corrupt"
    (base / b / "config.json").write_text("null")
    assert run_state(base / b)[0] == "corrupt"
    assert load_runs(tmp_path / "r", exp.name, "smoke") == []            # never silently used
    assert "corrupt" in capsys.readouterr().out
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    assert finals(tmp_path / "r", exp) == good
    assert len(list(base.glob("*.corrupt-*"))) == 2                     # kept for inspection


def test_unreadable_checkpoint_falls_back_to_an_older_one(tiny_cfg, tmp_path):
    d = tmp_path / "r"
    train(tiny_cfg, d, progress=False, stop_after=40)     # checkpoints at 20 and 40, status running
    for p in (d / "ckpt" / "40").rglob("*"):
        if p.is_file():
            p.write_bytes(b"garbage")
    (d / "status.json").unlink()
    st = train(tiny_cfg, d, progress=False)
    assert st["status"] == "completed"
    attempts = [json.loads(x) for x in (d / "attempts.jsonl").read_text().splitlines()]
    assert attempts[-1]["start_step"] == 20
    train(tiny_cfg, tmp_path / "ref", progress=False)
    assert rows(d) == rows(tmp_path / "ref")


def test_shards_are_disjoint_and_keep_branches_with_parents(tmp_path):
    exp, _ = write_exp(tmp_path, grid={"optim.lr": [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]},
                       extra='BRANCHES = {"at_tokens": [2560, 5120], "fraction": 0.25}\n')
    specs = plan_runs(exp, "smoke", tmp_path)
    assert len(specs) == 15
    parts = [shard(specs, i, 3) for i in range(3)]
    assert sorted(s.dir for p in parts for s in p) == sorted(s.dir for s in specs)
    for p in parts:
        dirs = {s.dir for s in p}
        assert all(s.parent in dirs for s in p if s.parent is not None)


def test_decay_branch_equals_a_full_wsd_run(tmp_path):
    exp = load_experiment("wsd_branches")
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    runs = load_runs(tmp_path / "r", exp.name, "smoke")
    branches = [r for r in runs if r["config"]["train"]["init_from"]]
    parent = next(r for r in runs if not r["config"]["train"]["init_from"])
    assert len(branches) == 3 and all(b["config"]["train"]["init_from"] == parent["hash"] for b in branches)
    # The longest branch, trained from scratch as an ordinary WSD run, gives the same numbers.
    b = max(branches, key=lambda r: r["config"]["train"]["init_tokens"])
    cfg = apply_overrides(load_run_config(b["dir"]), {"train.init_from": "", "train.init_tokens": 0})
    train(cfg, tmp_path / "full", progress=False)
    full = {r["step"]: r for r in rows(tmp_path / "full")}
    mine = [r for r in rows(b["dir"]) if "train_loss" in r]
    assert mine and all(r["step"] in full for r in mine)
    for r in mine:
        assert r["lr"] == full[r["step"]]["lr"]
        np.testing.assert_allclose(r["train_loss"], full[r["step"]]["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(b["status"]["final_val_loss"], json.loads(
        (tmp_path / "full" / "status.json").read_text())["final_val_loss"], rtol=1e-5)
    # Post-decay loss falls with the data size D_j.
    post = sorted((r["config"]["train"]["init_tokens"], r["status"]["final_val_loss"]) for r in branches)
    assert [v for _, v in post] == sorted([v for _, v in post], reverse=True)


def test_branch_refuses_an_incompatible_parent(tmp_path):
    exp = load_experiment("wsd_branches")
    specs = plan_runs(exp, "smoke", tmp_path / "r")
    parent = specs[0]
    train(parent.cfg, parent.dir, progress=False)
    bad = apply_overrides(branch_configs(parent.cfg, exp.profiles["smoke"]["branches"])[0], {"optim.lr": 1e-3})
    with pytest.raises(Exception, match="train.init_from"):
        train(bad, parent.dir.parent / "bad", progress=False)


def test_pinned_worker_processes_share_the_sweep(tmp_path):
    exp, _ = write_exp(tmp_path, grid={"optim.lr": [1e-3, 2e-3, 3e-3]})
    assert run_sweep(exp, "smoke", tmp_path / "r", workers=2, progress=False) == 0
    runs = load_runs(tmp_path / "r", exp.name, "smoke")
    assert len(runs) == 3 and all(r["state"] == "completed" for r in runs)
    pids = {json.loads((Path(r["dir"]) / "attempts.jsonl").read_text())["pid"] for r in runs}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_vmapped_group_matches_separate_runs_and_isolates_divergence(tmp_path):
    exp, _ = write_exp(tmp_path, grid={"optim.lr": [1e-3, 3e-3, 1e30], "train.seed": [0]})
    assert run_sweep(exp, "smoke", tmp_path / "solo", progress=False) == 0
    assert run_sweep(exp, "smoke", tmp_path / "vmap", progress=False, vmap=3) == 0
    solo = {r["hash"]: r for r in load_runs(tmp_path / "solo", exp.name, "smoke")}
    group = {r["hash"]: r for r in load_runs(tmp_path / "vmap", exp.name, "smoke")}
    assert solo.keys() == group.keys()
    pids = {json.loads((Path(r["dir"]) / "attempts.jsonl").read_text())["pid"] for r in group.values()}
    assert len(pids) == 1                                     # one program trained all three
    for h, r in solo.items():
        g = group[h]
        assert g["state"] == r["state"]
        if r["state"] == "diverged":
            assert "nan" in g["status"]["reason"]
            continue
        a, b = [x for x in r["metrics"] if "train_loss" in x], [x for x in g["metrics"] if "train_loss" in x]
        assert [x["step"] for x in a] == [x["step"] for x in b]
        np.testing.assert_allclose([x["train_loss"] for x in a], [x["train_loss"] for x in b], rtol=1e-4)


def test_vmapped_group_resumes_exactly(tmp_path):
    from bsz_lr.train import train_group
    exp, _ = write_exp(tmp_path, grid={"optim.lr": [1e-3, 3e-3]})
    specs = plan_runs(exp, "smoke", tmp_path / "r")
    cfgs, dirs = [s.cfg for s in specs], [s.dir for s in specs]
    train_group(cfgs, dirs, progress=False)
    full = [rows(d) for d in dirs]
    dirs2 = [tmp_path / "cut" / d.name for d in dirs]
    train_group(cfgs, dirs2, progress=False, stop_after=30)
    sts = train_group(cfgs, dirs2, progress=False)
    assert [s["status"] for s in sts] == ["completed"] * 2
    assert [rows(d) for d in dirs2] == full


def test_killed_vmapped_group_resumes_as_a_group_with_the_same_numbers(tmp_path):
    exp, f = write_exp(tmp_path, grid={"optim.lr": [1e-3, 3e-3]}, steps=400)
    run_sweep(exp, "smoke", tmp_path / "ref", progress=False, vmap=2)
    proc = subprocess.Popen(sweep_cmd(f, tmp_path / "cut", "--vmap", "2"), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60        # kill once both replicas have a checkpoint
    while time.time() < deadline and runs_with_a_checkpoint(tmp_path / "cut") < 2:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before both runs had a checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert subprocess.run(sweep_cmd(f, tmp_path / "cut", "--vmap", "2"), cwd=REPO,
                          capture_output=True).returncode == 0
    assert finals(tmp_path / "cut", exp) == finals(tmp_path / "ref", exp)
    for r in load_runs(tmp_path / "cut", exp.name, "smoke"):
        starts = [json.loads(x)["start_step"] for x in (Path(r["dir"]) / "attempts.jsonl").read_text().splitlines()]
        assert len(starts) == 2 and starts[0] == 0 and starts[1] > 0


def test_sigkill_at_a_chosen_step_then_rerun_matches_uninterrupted(tmp_path):
    """Deterministic: the fault hook SIGKILLs the runner when it reaches step 55 (checkpoint at 40)."""
    exp, f = write_exp(tmp_path, grid={"optim.lr": [1e-3, 3e-3]}, steps=100)
    run_sweep(exp, "smoke", tmp_path / "ref", progress=False)
    env = {**os.environ, "BSZ_LR_FAULT": "sigkill@55"}
    out = subprocess.run(sweep_cmd(f, tmp_path / "cut"), cwd=REPO, capture_output=True, text=True, env=env)
    assert out.returncode == -signal.SIGKILL
    states = sorted(run_state(d)[0] for d in (tmp_path / "cut").glob("*/smoke/*") if d.is_dir() and "." not in d.name)
    assert states == ["running"]                      # the first run died mid-way; the second never started
    assert subprocess.run(sweep_cmd(f, tmp_path / "cut"), cwd=REPO, capture_output=True).returncode == 0
    assert finals(tmp_path / "cut", exp) == finals(tmp_path / "ref", exp)
    for r in load_runs(tmp_path / "cut", exp.name, "smoke"):
        starts = [json.loads(x)["start_step"] for x in (Path(r["dir"]) / "attempts.jsonl").read_text().splitlines()]
        assert starts in ([0], [0, 40])


@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c-to-the-process-group", "sigterm-to-the-runner-only"])
def test_a_signalled_sweep_checkpoints_every_worker_and_resumes_exactly(tmp_path, sig, group):
    exp, f = write_exp(tmp_path, grid={"optim.lr": [1e-3, 3e-3]}, steps=400)
    run_sweep(exp, "smoke", tmp_path / "ref", progress=False, workers=2)
    proc = subprocess.Popen(sweep_cmd(f, tmp_path / "cut", "--workers", "2"), cwd=REPO,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120                      # signal once both runs are training
    while time.time() < deadline and runs_with_a_checkpoint(tmp_path / "cut") < 2:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before both runs had a checkpoint"
    (os.killpg if group else os.kill)(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and f"stopped by {signal.Signals(sig).name}" in err
    runs = load_runs(tmp_path / "cut", exp.name, "smoke")
    assert len(runs) == 2
    for r in runs:
        st = r["status"]
        if st["status"] != "completed":               # stopped where it was, with a checkpoint there
            assert st["status"] == "interrupted", st
            assert st["step"] in [int(p.name) for p in (Path(r["dir"]) / "ckpt").iterdir() if p.name.isdigit()]
    assert any(r["status"]["status"] == "interrupted" for r in runs)
    assert subprocess.run(sweep_cmd(f, tmp_path / "cut"), cwd=REPO, capture_output=True).returncode == 0
    assert finals(tmp_path / "cut", exp) == finals(tmp_path / "ref", exp)


def test_a_failing_run_is_tried_once_per_sweep_and_the_sweep_says_so(tmp_path):
    exp, f = write_exp(tmp_path, grid={"optim.lr": [1e-3], "data.corpus": ["austen", str(tmp_path / "nope")]})
    for attempt in range(2):                          # each invocation tries it once, whatever the workers
        out = subprocess.run(sweep_cmd(f, tmp_path / "r", "--workers", "2"), cwd=REPO,
                             capture_output=True, text=True)
        assert out.returncode == 1
        assert out.stderr.count(": failed: DataError") == 1, out.stderr
        assert "not finished:" in out.stderr and "failed (DataError" in out.stderr


def test_all_workers_crashing_is_not_success(tmp_path):
    exp, f = write_exp(tmp_path, grid={"optim.lr": [1e-3, 3e-3]})
    env = {**os.environ, "BSZ_LR_FAULT": "error@15"}  # every worker's first run raises at step 20
    out = subprocess.run(sweep_cmd(f, tmp_path / "r", "--workers", "2"), cwd=REPO, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 1 and out.stdout.count("2 failed") == 1, out.stdout + out.stderr
    assert out.stderr.count("not finished:") == 2


def test_branch_point_past_the_parent_is_refused_at_expansion(tmp_path, capsys):
    exp, _ = write_exp(tmp_path, extra='BRANCHES = {"at_tokens": [2560, 10**9]}\n')
    from bsz_lr.config import ConfigError
    with pytest.raises(ConfigError, match="branches.at_tokens: 1,000,000,000 is past the end"):
        run_sweep(exp, "smoke", tmp_path / "r", dry_run=True)
    assert not (tmp_path / "r").exists()


def test_figures_use_the_current_expansion_and_are_byte_identical(tmp_path, capsys):
    from bsz_lr.figures import build_all, select_runs
    exp = load_experiment("wsd_branches")
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    # A stale run under the same NAME (an edited grid, a copied file) is not plotted, and is mentioned.
    stale = apply_overrides(plan_runs(exp, "smoke", tmp_path / "r")[0].cfg, {"optim.lr": 1e-2})
    train(stale, tmp_path / "r" / exp.name / "smoke" / "stale0000000", progress=False)
    prof, runs, note = select_runs(exp, tmp_path / "r")
    assert prof == "smoke" and len(runs) == 4 and "1 other run(s)" in note
    m1 = build_all(tmp_path / "r", tmp_path / "f", only=["wsd_branches"])
    first = {p.name: p.read_bytes() for p in (tmp_path / "f").iterdir()}
    build_all(tmp_path / "r", tmp_path / "f", only=["wsd_branches"])
    assert {p.name: p.read_bytes() for p in (tmp_path / "f").iterdir()} == first
    assert m1["wsd_branches"]["profile"] == "smoke" and "git_commit" not in m1["wsd_branches"]
    assert "wsd_branches <- wsd_branches/smoke" in capsys.readouterr().out


def test_figures_prefer_the_largest_profile_whose_runs_are_all_done(tmp_path):
    from bsz_lr.figures import select_runs
    exp, _ = write_exp(tmp_path, grid={"optim.lr": [1e-3, 3e-3]},
                       extra='PROFILES["gpu"] = {"train.steps": 20}\n')
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    assert select_runs(exp, tmp_path / "r")[0] == "smoke"
    gpu = plan_runs(exp, "gpu", tmp_path / "r")
    train(gpu[0].cfg, gpu[0].dir, progress=False)          # one of two gpu runs: partial
    prof, runs, note = select_runs(exp, tmp_path / "r")
    assert prof == "smoke"
    assert select_runs(exp, tmp_path / "r", "gpu")[1:] == (
        [r for r in load_runs(tmp_path / "r", exp.name, "gpu")], "1 completed of 2 planned runs (partial)")
    train(gpu[1].cfg, gpu[1].dir, progress=False)
    assert select_runs(exp, tmp_path / "r")[0] == "gpu"


def test_prune_deletes_only_checkpoints_nothing_needs(tmp_path, capsys):
    from bsz_lr.cli import main
    from bsz_lr.store import RunLock
    from bsz_lr.sweep import prune_checkpoints
    exp = load_experiment("wsd_branches")
    specs = plan_runs(exp, "smoke", tmp_path / "r")
    parent = next(s for s in specs if s.parent is None)
    train(parent.cfg, parent.dir, progress=False)                 # the parent only: its branches are new
    assert prune_checkpoints(exp, "smoke", tmp_path / "r") == []   # they still need its checkpoints
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    before = {s.dir: json.loads((s.dir / "status.json").read_text()) for s in specs}
    held = RunLock(specs[-1].dir)
    assert held.acquire()                                          # a run another process holds is left alone
    try:
        assert {d for d, _ in prune_checkpoints(exp, "smoke", tmp_path / "r", dry_run=True)} == \
            {s.dir for s in specs[:-1]}
    finally:
        held.release()
    assert all((s.dir / "ckpt").is_dir() for s in specs)          # a dry run deletes nothing
    assert main(["prune", "wsd_branches", "--profile", "smoke", "--runs", str(tmp_path / "r")]) == 0
    assert "wsd_branches/smoke: 4 finished runs' checkpoints, freed" in capsys.readouterr().out
    assert not any((s.dir / "ckpt").exists() for s in specs)
    for s in specs:                                                # results intact, nothing to retrain
        assert run_state(s.dir)[0] == "completed" and json.loads((s.dir / "status.json").read_text()) == before[s.dir]
    attempts = {s.dir: (s.dir / "attempts.jsonl").read_text() for s in specs}
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    assert attempts == {s.dir: (s.dir / "attempts.jsonl").read_text() for s in specs}

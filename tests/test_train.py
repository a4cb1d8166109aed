"""Trainer: exact resume, metrics, divergence, run-dir safety, compile reuse."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsz_lr.config import ConfigError, apply_overrides
from bsz_lr.store import read_metrics
from bsz_lr.train import compile_counts, compiled_fns, plan, read_status, train

VOLATILE = ("wall_time", "tokens_per_s")


def rows(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_completed_run_logs_every_field_and_loss_falls(tiny_cfg, tmp_path):
    st = train(tiny_cfg, tmp_path / "a", progress=False)
    assert st["status"] == "completed" and st["step"] == 40
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if "train_loss" in r]
    assert [r["step"] for r in train_lines] == [10, 20, 30, 40]
    for key in ("step", "tokens", "lr", "batch_size", "train_loss", "grad_norm", "wall_time", "tokens_per_s"):
        assert key in train_lines[0], key
    assert train_lines[-1]["tokens"] == 40 * 8 * 32
    val = [r["val_loss"] for r in lines if "val_loss" in r]
    assert len(val) == 3                                 # at init, step 20, step 40
    assert val[0] == pytest.approx(np.log(256), abs=0.05)  # near-uniform at init
    assert val[-1] < val[0] - 1.0                        # it learns
    assert st["final_val_loss"] == val[-1]
    assert st["params"]["total"] > 0
    assert sorted(p.name for p in (tmp_path / "a" / "ckpt").iterdir() if p.name.isdigit()) == ["20", "40"]


def test_resume_equals_uninterrupted_across_a_batch_change(tiny_cfg, tmp_path):
    cfg = apply_overrides(tiny_cfg, {"data.batch_stages": ((3000, 16),)})
    train(cfg, tmp_path / "full", progress=False)
    # A "kill" at step 30: the last checkpoint is at 20, so steps 21-30 are recomputed.
    st = train(cfg, tmp_path / "cut", progress=False, stop_after=30)
    assert st["status"] == "running" and st["step"] == 30
    assert max(r["step"] for r in rows(tmp_path / "cut")) == 30
    st = train(cfg, tmp_path / "cut", progress=False)
    assert st["status"] == "completed"
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")
    assert {r["batch_size"] for r in rows(tmp_path / "full") if "batch_size" in r} == {8, 16}


def test_torn_metrics_line_is_dropped_on_resume(tiny_cfg, tmp_path):
    d = tmp_path / "r"
    train(tiny_cfg, d, progress=False, stop_after=20)
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "train_lo')                 # a kill in the middle of a write
    assert [r["step"] for r in read_metrics(d / "metrics.jsonl")][-1] == 20
    train(tiny_cfg, d, progress=False)
    full = tmp_path / "full"
    train(tiny_cfg, full, progress=False)
    assert rows(d) == rows(full)


@pytest.mark.parametrize("lr,reason", [(1e30, "nan"), (3.0, "limit")])
def test_divergence_is_recorded_not_raised(tiny_cfg, tmp_path, lr, reason):
    cfg = apply_overrides(tiny_cfg, {"optim.lr": lr, "schedule.warmup_steps": 0, "optim.clip_norm": 0.0})
    st = train(cfg, tmp_path / "d", progress=False)
    assert st["status"] == "diverged"
    assert reason in st["reason"].lower()
    assert read_status(tmp_path / "d")["status"] == "diverged"
    # What was computed before the divergence is kept.
    assert (tmp_path / "d" / "metrics.jsonl").read_text().startswith('{"step": 0')


def test_run_dir_with_other_config_is_refused(tiny_cfg, tmp_path):
    train(tiny_cfg, tmp_path / "x", progress=False, stop_after=10)
    other = apply_overrides(tiny_cfg, {"optim.lr": 1e-3})
    with pytest.raises(ConfigError, match="different config"):
        train(other, tmp_path / "x", progress=False)


def test_lr_sweep_reuses_the_compiled_step(tiny_cfg, tmp_path):
    train(tiny_cfg, tmp_path / "a", progress=False, stop_after=10)
    before = compiled_fns.cache_info()
    train(apply_overrides(tiny_cfg, {"optim.lr": 1e-3, "train.steps": 60}), tmp_path / "b",
          progress=False, stop_after=10)
    after = compiled_fns.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


def test_plan_converts_warmup_and_rejects_overlap(tiny_cfg):
    p = plan(apply_overrides(tiny_cfg, {"schedule.warmup_steps": 4}))
    assert p.warmup_tokens == 4 * 8 * 32 and p.total_tokens == 40 * 8 * 32
    lrs = p.lrs(0, 40)
    assert lrs[0] == 0 and lrs[4] == pytest.approx(tiny_cfg.optim.lr) and lrs[-1] < lrs[20]
    with pytest.raises(ConfigError, match="schedule.warmup"):
        plan(apply_overrides(tiny_cfg, {"schedule.warmup_steps": 39}))


def test_moe_model_trains_and_logs_balance_loss(tiny_cfg, tmp_path):
    cfg = apply_overrides(tiny_cfg, {"model.ffn": "moe", "model.n_experts": 4, "model.top_k": 2,
                                     "train.steps": 20})
    st = train(cfg, tmp_path / "moe", progress=False)
    assert st["status"] == "completed"
    assert st["params"]["active"] < st["params"]["total"]
    lb = [r["lb_loss"] for r in rows(tmp_path / "moe") if "lb_loss" in r]
    assert lb and all(np.isfinite(lb)) and all(0 < x < 4 for x in lb)   # E*sum(f*P): 1 when balanced, E at worst


def test_vmapped_replicas_match_separate_runs(tiny_cfg):
    from bsz_lr.data import batch_at, load_corpus
    from bsz_lr.schedules import BatchSchedule
    from bsz_lr.train import step_fns
    single, multi = step_fns(tiny_cfg), step_fns(tiny_cfg, replicas=True)
    corpus = load_corpus(tiny_cfg.data, 256)
    sched = BatchSchedule.from_config(tiny_cfg)
    batches = np.stack([batch_at(corpus.train, 0, s, sched) for s in range(10)])
    lrs = np.array([[1e-3] * 10, [5e-3] * 10], np.float32)
    _, m_R = multi.train_chunk(multi.init_state([0, 1]), batches, lrs)
    for r, seed in enumerate([0, 1]):
        _, m = single.train_chunk(single.init_state(seed), batches, lrs[r])
        np.testing.assert_allclose(m_R["train_loss"][r], m["train_loss"], rtol=2e-5)
    assert not np.allclose(m_R["train_loss"][0], m_R["train_loss"][1])


def test_kill_before_the_first_checkpoint_leaves_no_duplicate_lines(tiny_cfg, tmp_path):
    d = tmp_path / "r"
    train(tiny_cfg, d, progress=False, stop_after=10)     # no checkpoint yet (first at step 20)
    assert not any(p.name.isdigit() for p in (d / "ckpt").iterdir())
    train(tiny_cfg, d, progress=False)
    train(tiny_cfg, tmp_path / "ref", progress=False)
    assert rows(d) == rows(tmp_path / "ref")


def test_log_line_averages_all_steps_since_the_last_line_across_chunks(tiny_cfg, tmp_path):
    train(tiny_cfg, tmp_path / "ten", progress=False)
    train(apply_overrides(tiny_cfg, {"train.log_every": 20}), tmp_path / "twenty", progress=False)
    ten = {r["step"]: r["train_loss"] for r in rows(tmp_path / "ten") if "train_loss" in r}
    twenty = {r["step"]: r["train_loss"] for r in rows(tmp_path / "twenty") if "train_loss" in r}
    assert sorted(twenty) == [20, 40]
    for s in (20, 40):
        assert twenty[s] == pytest.approx((ten[s - 10] + ten[s]) / 2, rel=1e-6)


def test_interrupt_while_flushing_the_last_chunk_is_not_completed(tiny_cfg, tmp_path, monkeypatch):
    from bsz_lr import train as train_mod
    real = train_mod._Run.write

    def flaky(self, s0, n, *a, **k):
        if s0 + n == 40:
            raise KeyboardInterrupt
        return real(self, s0, n, *a, **k)
    monkeypatch.setattr(train_mod._Run, "write", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg, tmp_path / "r", progress=False)
    st = read_status(tmp_path / "r")
    assert st["status"] == "running" and st["step"] == 30
    monkeypatch.setattr(train_mod._Run, "write", real)
    assert train(tiny_cfg, tmp_path / "r", progress=False)["status"] == "completed"
    train(tiny_cfg, tmp_path / "ref", progress=False)
    assert rows(tmp_path / "r") == rows(tmp_path / "ref")


def test_group_refuses_members_at_different_checkpoints(tiny_cfg, tmp_path):
    from bsz_lr.train import train_group
    a, b = tiny_cfg, apply_overrides(tiny_cfg, {"optim.lr": 1e-3})
    train(a, tmp_path / "a", progress=False, stop_after=20)
    with pytest.raises(ConfigError, match="different checkpoints"):
        train_group([a, b], [tmp_path / "a", tmp_path / "b"], progress=False)


def test_lr_follows_tokens_not_steps_under_a_batch_ramp(tiny_cfg, tmp_path):
    """The schedule's progress is tokens consumed: after a batch change each step moves it further."""
    from bsz_lr.schedules import lr_factor
    cfg = apply_overrides(tiny_cfg, {"data.batch_stages": ((3000, 32),), "schedule.warmup_steps": 0,
                                     "schedule.warmup_tokens": 2048, "schedule.decay_fraction": 0.5})
    p = plan(cfg)
    tokens, consumed = [], 0                        # simulated by hand: 8 sequences until 3000 tokens, then 32
    for s in range(p.total_steps):
        tokens.append(consumed)
        consumed += (8 if consumed < 3000 else 32) * 32
    assert p.total_tokens == consumed
    want = cfg.optim.lr * lr_factor(cfg.schedule, np.array(tokens, float), consumed, 2048)
    np.testing.assert_allclose(p.lrs(0, p.total_steps), want, rtol=1e-6)
    by_steps = cfg.optim.lr * lr_factor(cfg.schedule, np.arange(p.total_steps) * 8 * 32.0,
                                        p.total_steps * 8 * 32, 2048)
    assert not np.allclose(p.lrs(0, p.total_steps), by_steps, rtol=1e-3)   # the test can tell them apart
    train(cfg, tmp_path / "r", progress=False)
    logged = {r["step"]: r["lr"] for r in rows(tmp_path / "r") if "lr" in r}
    for s, lr in logged.items():
        assert lr == pytest.approx(want[s - 1], rel=1e-6)


def test_a_run_compiles_its_step_once_per_length_it_needs(tiny_cfg, tmp_path):
    """Kept checkpoints off the scan grid and a batch change: one compiled length of scan_steps and
    one single step per batch shape; a second run of the same shape compiles nothing."""
    cfg = apply_overrides(tiny_cfg, {"train.steps": 60, "train.save_at_tokens": (13 * 256, 27 * 256),
                                     "data.batch_stages": ((37 * 256, 16),)})
    before = compile_counts()
    train(cfg, tmp_path / "a", progress=False)
    got = compile_counts() - before
    assert got["jit(chunk)"] <= 4, got                     # {10, 1} steps x {8, 16} sequences
    assert sum(got.values()) - got["jit(chunk)"] <= 8, got   # init and eval, once each
    again = compile_counts()
    train(apply_overrides(cfg, {"optim.lr": 1e-3}), tmp_path / "b", progress=False)
    assert compile_counts() == again


@pytest.mark.parametrize("sig,at,stopped", [("sigterm", 25, 30), ("sigint", 5, 10)])
def test_a_signal_checkpoints_and_stops_then_resumes_exactly(tiny_cfg, tmp_path, monkeypatch, sig, at, stopped):
    """SIGTERM / SIGINT (sent by the fault hook at a chosen step) end the run cleanly at the next chunk
    with a checkpoint, also before the first regular one (step 10 < 20)."""
    monkeypatch.setenv("BSZ_LR_FAULT", f"{sig}@{at}")
    st = train(tiny_cfg, tmp_path / "r", progress=False)
    assert st["status"] == "interrupted" and st["step"] == stopped and st["signal"] == sig.upper()
    assert st["final_val_loss"] is None and st["last_val_loss"] is not None
    assert stopped in [int(p.name) for p in (tmp_path / "r" / "ckpt").iterdir() if p.name.isdigit()]
    assert max(r["step"] for r in rows(tmp_path / "r")) == stopped
    st = train(tiny_cfg, tmp_path / "r", progress=False)
    assert st["status"] == "completed"
    attempts = [json.loads(x) for x in (tmp_path / "r" / "attempts.jsonl").read_text().splitlines()]
    assert [a["start_step"] for a in attempts] == [0, stopped]
    train(tiny_cfg, tmp_path / "ref", progress=False)
    assert rows(tmp_path / "r") == rows(tmp_path / "ref")


def test_a_branch_with_a_missing_parent_writes_nothing(tiny_cfg, tmp_path):
    cfg = apply_overrides(tiny_cfg, {"train.init_from": "0123456789ab", "train.init_tokens": 2560})
    with pytest.raises(ConfigError, match="train.init_from: parent run .* is missing"):
        train(cfg, tmp_path / "runs" / "b", progress=False)
    assert not (tmp_path / "runs").exists()


def test_cli_train_interrupted_is_one_line_and_exit_143(tmp_path):
    import os
    import subprocess
    import sys

    from .conftest import TINY
    env = {**os.environ, "BSZ_LR_FAULT": "sigterm@25"}
    out = subprocess.run([sys.executable, "-m", "bsz_lr", "train", "--out", str(tmp_path / "r"), *TINY],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 143, out.stderr
    assert out.stderr.strip() == ("bsz_lr: SIGTERM at step 30; resumes from its checkpoint; "
                                  f"run the same command to resume ({tmp_path / 'r'})")    # no bar: not a tty
    assert json.loads(out.stdout)["status"] == "interrupted"


def test_cpu_attention_choice_keeps_the_loss_curve(tmp_path, tiny_cfg, monkeypatch):
    """The CPU speed choices change numbers only by float rounding: the blocked causal attention
    (default on CPU) against the full-mask einsums, train loss within 1e-4 relative over 40 steps."""
    from bsz_lr import model
    curves = {}
    for name, choice in [("einsum", {"impl": "einsum"}), ("blocked", {"impl": "blocked", "block": 8})]:
        monkeypatch.setattr(model, "CPU_ATTENTION", choice)
        compiled_fns.cache_clear()                 # the compiled step bakes the choice in
        train(tiny_cfg, tmp_path / name, progress=False)
        curves[name] = [(r["train_loss"], r.get("val_loss")) for r in rows(tmp_path / name) if "train_loss" in r]
    compiled_fns.cache_clear()
    a, b = (np.array([x[0] for x in curves[k]]) for k in ("einsum", "blocked"))
    assert len(a) == 4
    np.testing.assert_allclose(b, a, rtol=1e-4)


def test_xla_cpu_defaults_keep_the_loss_curve(tmp_path):
    """bsz_lr's XLA:CPU flag defaults (Eigen instead of YNNPACK dots) against plain XLA: same curve."""
    import os
    import subprocess
    import sys
    code = ("import sys, json; from conftest import TINY; from bsz_lr.config import Config, apply_overrides; "
            "from bsz_lr.train import train; import os; print(os.environ.get('XLA_FLAGS', ''), file=sys.stderr); "
            "train(apply_overrides(Config(), TINY), sys.argv[1], progress=False)")
    flags = {}
    for name, env in [("ours", {}), ("plain", {"BSZ_LR_XLA_DEFAULTS": "0"})]:
        e = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "BSZ_LR_XLA_DEFAULTS")} | env
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], env=e, capture_output=True,
                             text=True, cwd=os.path.dirname(__file__))
        assert out.returncode == 0, out.stderr
        flags[name] = out.stderr.strip().splitlines()[0] if out.stderr.strip() else ""
    assert "ynn_fusion_type" in flags["ours"] and "ynn_fusion_type" not in flags["plain"], flags
    a, b = ([r["train_loss"] for r in rows(tmp_path / n) if "train_loss" in r] for n in ("plain", "ours"))
    np.testing.assert_allclose(b, a, rtol=1e-4)


def test_microbatch_accumulation_equals_the_full_batch_step(tiny_cfg, tmp_path):
    """Same loss curve within float rounding; the accumulated run also logs the noise-scale norms."""
    base = apply_overrides(tiny_cfg, {"train.steps": 20, "train.eval_every": 10, "train.checkpoint_every": 10})
    acc = apply_overrides(base, {"train.microbatches": 4})
    train(base, tmp_path / "full", progress=False)
    train(acc, tmp_path / "acc", progress=False)
    a, b = rows(tmp_path / "full"), rows(tmp_path / "acc")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for k in ("train_loss", "val_loss", "grad_norm"):
            if k in ra:
                assert rb[k] == pytest.approx(ra[k], rel=1e-4), (k, ra["step"])
        assert ("grad_sq_micro" in rb) == ("train_loss" in rb) and "grad_sq_micro" not in ra
    line = next(r for r in b if "grad_sq" in r)
    # E|g_micro|^2 >= |mean of the micro gradients|^2, and |g|^2 is the squared logged grad norm
    assert line["grad_sq_micro"] > line["grad_sq"] > 0
    with pytest.raises(ConfigError, match="3 micro-batches do not divide the batch of 8"):
        apply_overrides(base, {"train.microbatches": 3})


def test_eval_points_are_log_spaced_on_the_scan_grid(tiny_cfg):
    p = plan(apply_overrides(tiny_cfg, {"train.steps": 1000, "train.eval_every": 0, "train.eval_points": 12}))
    steps = sorted(p.eval_steps)
    assert all(s % 10 == 0 for s in steps) and steps[0] == 10 and steps[-1] == 1000
    assert 8 <= len(steps) <= 12
    ratios = np.diff(np.log(steps))
    assert ratios.max() < 3 * np.log(100) / 11                  # no big holes in log step
    assert all(p.is_eval(s) for s in steps) and not p.is_eval(15)


def test_sqrt_lr_rescaling_follows_the_batch_stages(tiny_cfg):
    cfg = apply_overrides(tiny_cfg, {"data.batch_stages": ((2560, 32),), "schedule.kind": "constant",
                                     "schedule.warmup_steps": 0, "schedule.batch_lr_scaling": "sqrt",
                                     "optim.lr": 1e-3})
    p = plan(cfg)
    lrs = p.lrs(0, p.total_steps)
    switch = p.batch.steps_for_tokens(2560)
    assert np.allclose(lrs[:switch], 1e-3) and np.allclose(lrs[switch:], 2e-3)
    plain = plan(apply_overrides(cfg, {"schedule.batch_lr_scaling": "none"}))
    assert np.allclose(plain.lrs(0, plain.total_steps), 1e-3)


@pytest.mark.parametrize("name, sides", [("muon", "both"), ("mousse", "both"), ("mousse", "left")])
def test_matrix_optimizer_state_checkpoints_and_resumes_exactly(tiny_cfg, tmp_path, name, sides):
    # refresh every 7 steps: the eigenbases restored at step 20 are the ones from step 15
    cfg = apply_overrides(tiny_cfg, {"optim.name": name, "optim.lr": 2e-2, "optim.adam_lr_ratio": 0.2,
                                     "optim.mousse_refresh": 7, "optim.mousse_sides": sides})
    train(cfg, tmp_path / "full", progress=False)
    st = train(cfg, tmp_path / "cut", progress=False, stop_after=30)
    assert st["status"] == "running"
    st = train(cfg, tmp_path / "cut", progress=False)
    assert st["status"] == "completed" and np.isfinite(st["final_val_loss"])
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")
    assert st["final_val_loss"] < np.log(256) - 1.0                 # it learns


def test_analysis_metrics_are_logged_and_leave_the_numbers_alone(tiny_cfg, tmp_path):
    moe = {"model.ffn": "moe", "model.n_experts": 4, "model.top_k": 2, "model.moe_impl": "dense"}
    base = apply_overrides(tiny_cfg, moe)
    on = apply_overrides(base, {"train.analysis": True})
    train(base, tmp_path / "off", progress=False)
    st = train(on, tmp_path / "on", progress=False)
    assert st["status"] == "completed"
    lines = [r for r in rows(tmp_path / "on") if "train_loss" in r]
    want = {"w_norm.hidden", "grad_norm.expert", "update_rel.router", "update_rel.head", "act.attn_out",
            "act.ffn_out", "act.residual", "act.logits", "act.logz", "router_entropy", "expert_load_cv", "clip_frac",
            "act.attn_logit_max", "train_loss_max"}
    assert want <= set(lines[0])
    for r in lines:
        assert all(np.isfinite(r[k]) for k in want)
        assert 0 <= r["clip_frac"] <= 1 and 0 < r["router_entropy"] <= np.log(4) + 1e-6
        assert 0 < r["update_rel.hidden"] < 1
        assert r["train_loss_max"] >= r["train_loss"] - 1e-6
    # change from init: 0 at the first evaluation, then growing, for every role of the MoE model
    evals = [r for r in rows(tmp_path / "on") if "val_loss" in r]
    roles = ("embedding", "head", "hidden", "out_proj", "router", "expert", "expert_out", "vector")
    assert all(evals[0][f"delta_init.{k}"] == 0 for k in roles)
    assert all(0 < evals[-1][f"delta_init.{k}"] < 10 for k in roles)
    assert lines[0]["act.logz"] == pytest.approx(np.log(256), abs=0.5)    # near-uniform early on
    # the diagnostics do not change training (same losses to float rounding)
    off = {r["step"]: r for r in rows(tmp_path / "off") if "train_loss" in r}
    for r in lines:
        assert r["train_loss"] == pytest.approx(off[r["step"]]["train_loss"], rel=1e-5)
    assert "w_norm.router" not in [r for r in rows(tmp_path / "off") if "train_loss" in r][0]


def test_change_from_init_resumes_with_the_same_values(tiny_cfg, tmp_path):
    """delta_init.* compares with the initial parameters regenerated from the seed: a run cut and
    resumed logs exactly the values of the uninterrupted run, and checkpoints hold nothing extra."""
    cfg = apply_overrides(tiny_cfg, {"train.analysis": True, "train.eval_every": 10})
    train(cfg, tmp_path / "full", progress=False)
    assert train(cfg, tmp_path / "cut", progress=False, stop_after=20)["status"] == "running"
    train(cfg, tmp_path / "cut", progress=False)
    pick = lambda d: [(r["step"], r["delta_init.hidden"], r["delta_init.vector"]) for r in rows(d) if "val_loss" in r]
    full = pick(tmp_path / "full")
    assert len(full) >= 3 and full == pick(tmp_path / "cut")
    steps_and_deltas = [(s, h) for s, h, _ in full]
    assert all(b[1] > a[1] for a, b in zip(steps_and_deltas[1:], steps_and_deltas[2:]))   # keeps moving away


def test_bf16_compute_keeps_float32_masters_and_tracks_the_float32_curve(tiny_cfg, tmp_path):
    """model.compute_dtype=bfloat16: matmuls and activations in bf16, parameters / optimizer state /
    norms / softmax / loss in f32; the loss curve stays within 2% of the f32 one over 40 steps."""
    from bsz_lr.model import compute_params, init_params
    cfg = apply_overrides(tiny_cfg, {"model.compute_dtype": "bfloat16"})
    p = init_params(cfg.model, jax.random.key(0))
    assert {x.dtype for x in jax.tree.leaves(compute_params(p, cfg.model))} == {jnp.dtype("bfloat16")}
    assert compute_params(p, tiny_cfg.model) is p
    st = train(cfg, tmp_path / "bf16", progress=False)
    train(tiny_cfg, tmp_path / "f32", progress=False)
    assert st["status"] == "completed"
    f32 = {r["step"]: r for r in rows(tmp_path / "f32") if "train_loss" in r}
    bf16 = [r for r in rows(tmp_path / "bf16") if "train_loss" in r]
    assert any(r["train_loss"] != f32[r["step"]]["train_loss"] for r in bf16)       # it did compute in bf16
    for r in bf16:
        assert r["train_loss"] == pytest.approx(f32[r["step"]]["train_loss"], rel=0.02)
    from bsz_lr.train import step_fns
    state = step_fns(cfg).init_state(0)
    assert {x.dtype for x in jax.tree.leaves(state)} <= {jnp.dtype("float32"), jnp.dtype("int32")}


def test_remat_gives_the_same_numbers(tiny_cfg, tmp_path):
    cfg = apply_overrides(tiny_cfg, {"model.remat": True, "train.steps": 20})
    train(cfg, tmp_path / "remat", progress=False)
    train(apply_overrides(tiny_cfg, {"train.steps": 20}), tmp_path / "plain", progress=False)
    a, b = rows(tmp_path / "remat"), rows(tmp_path / "plain")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for k in ("train_loss", "val_loss", "grad_norm"):
            if k in y:
                assert x[k] == pytest.approx(y[k], rel=1e-5)

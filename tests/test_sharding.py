"""sharding.py: the (data, fsdp) mesh, state and batch placement, per-process batch rows and the
multi-host launch arguments.  Several devices are forced on the CPU in a subprocess (the device
count is fixed when JAX starts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from bsz_lr import sharding as S
from bsz_lr.config import Config, ConfigError, apply_overrides
from bsz_lr.data import DataError, batch_at, load_corpus
from bsz_lr.schedules import BatchSchedule
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent
# TINY, shorter: 20 steps, an evaluation and a checkpoint every 10 (compiles dominate anyway).
SHORT = {**dict(x.split("=", 1) for x in TINY), "train.steps": "20", "train.eval_every": "10",
         "train.checkpoint_every": "10", "train.log_every": "5"}

# Trains SHORT on meshes of 1 / 2 / 4 / 8 devices and on data=4 x fsdp=2, then a run cut at step 15
# on 4 devices and resumed on fsdp=2; prints every run's (step, train loss, val loss) lines and the
# placement of the parameters under fsdp.
SCRIPT = r"""
import json, sys
from pathlib import Path
import jax
from bsz_lr import sharding as S
from bsz_lr.config import Config, ConfigError, apply_overrides
from bsz_lr.train import enable_compilation_cache, step_fns, train
enable_compilation_cache()
cfg = apply_overrides(Config(), json.loads(sys.argv[2]))
tmp = Path(sys.argv[1])
mesh = lambda d, f: S.make_mesh(S.MeshSpec(d, f), jax.devices()[:d * f])
lines = lambda d: [(r["step"], r.get("train_loss"), r.get("val_loss")) for r in map(json.loads, open(d / "metrics.jsonl"))]
out = {"devices": jax.device_count()}
for name, (d, f) in {"1": (1, 1), "2": (2, 1), "4": (4, 1), "8": (8, 1), "4x2": (4, 2)}.items():
    S.set_mesh(mesh(d, f))
    assert train(cfg, tmp / name, progress=False)["status"] == "completed"
    out[name] = lines(tmp / name)
S.set_mesh(mesh(4, 1))
train(cfg, tmp / "cut", progress=False, stop_after=15)
S.set_mesh(mesh(1, 2))
out["resumed"] = train(cfg, tmp / "cut", progress=False)["status"]
out["cut"] = lines(tmp / "cut")
m = mesh(4, 2)
params = step_fns(cfg, mesh=m).init_state(0).params
out["fsdp_leaves"] = sorted(str(x.sharding.spec) for x in jax.tree.leaves(params))
out["shard_rows"] = [x.addressable_shards[0].data.shape[0] / x.shape[0] for x in jax.tree.leaves(params)
                     if "fsdp" in str(x.sharding.spec) and x.sharding.spec[0] == "fsdp"]
S.set_mesh(mesh(8, 1))
try:
    train(apply_overrides(cfg, {"data.batch_size": 4}), tmp / "odd", progress=False)
    out["odd"] = "trained"
except ConfigError as e:
    out["odd"] = str(e)
out["odd_written"] = (tmp / "odd").exists()
from bsz_lr.train import train_group
S.set_mesh(None)            # no mesh asked for: a vmapped group ignores the 8-device default mesh
grp = [apply_overrides(cfg, {"optim.lr": lr, "train.steps": 10}) for lr in (1e-3, 3e-3)]
out["vmap_default"] = [r["status"] for r in train_group(grp, [tmp / "g1", tmp / "g2"], progress=False)]
S.set_mesh(mesh(8, 1))      # one asked for: refused before anything is written
try:
    train_group(grp, [tmp / "g3", tmp / "g4"], progress=False)
    out["vmap_mesh"] = "trained"
except ConfigError as e:
    out["vmap_mesh"] = str(e)
import re, numpy as np
for impl in ("dense", "ragged"):      # which collectives the MoE layer needs under data parallelism
    moe = apply_overrides(cfg, {"model.ffn": "moe", "model.n_experts": 4, "model.top_k": 2, "model.moe_impl": impl})
    f = step_fns(moe, mesh=mesh(8, 1))
    hlo = f.train_chunk.lower(f.init_state(0), np.zeros((2, 8, 33), np.int32), np.zeros(2, np.float32)).compile().as_text()
    out["moe_" + impl] = re.findall(r"= (\S+) all-gather\(", hlo)
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mesh")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "PYTHONPATH": str(ROOT)}
    env.pop("BSZ_LR_MESH", None)
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp), json.dumps(SHORT)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.split("RESULT", 1)[1])


def _close(a, b, rtol=1e-5):
    assert [r[0] for r in a] == [r[0] for r in b]
    for ra, rb in zip(a, b):
        for x, y in zip(ra[1:], rb[1:]):
            assert (x is None) == (y is None) and (x is None or x == pytest.approx(y, rel=rtol))


def test_every_device_count_and_fsdp_give_the_same_losses(meshes):
    assert meshes["devices"] == 8
    for name in ("2", "4", "8", "4x2"):
        _close(meshes[name], meshes["1"])     # float summation order only: same to ~1e-7 here


def test_vmapped_groups_run_on_one_device_unless_a_mesh_is_asked_for(meshes):
    assert meshes["vmap_default"] == ["completed", "completed"]
    assert "vmapped replicas run on one device" in meshes["vmap_mesh"]


def test_a_run_resumes_on_another_device_count(meshes):
    assert meshes["resumed"] == "completed"
    _close(meshes["cut"], meshes["1"])


def test_fsdp_shards_parameters_and_data_replicates_them(meshes):
    assert any("fsdp" in s for s in meshes["fsdp_leaves"])               # matrices split over fsdp
    assert "P()" in meshes["fsdp_leaves"]                               # norm gains replicated
    assert meshes["shard_rows"] and all(f == 0.5 for f in meshes["shard_rows"])   # each device: half


def test_a_batch_that_does_not_split_over_the_mesh_fails_before_writing(meshes):
    assert "data.batch_size: 4 sequences cannot be split over the 8 devices" in meshes["odd"]
    assert not meshes["odd_written"]


def test_mesh_spec_and_mesh_errors():
    assert S.MeshSpec.parse("data=4,fsdp=2") == S.MeshSpec(4, 2)
    assert S.MeshSpec.parse("fsdp=1") == S.MeshSpec(0, 1)
    for bad in ("data=x", "model=2", "4,2", "fsdp=0"):
        with pytest.raises(ConfigError, match="--mesh"):
            S.MeshSpec.parse(bad)
    m = S.make_mesh()
    assert m.axis_names == S.AXES and m.size == jax.device_count()
    with pytest.raises(ConfigError, match="fsdp=2 does not divide the 1 devices"):
        S.make_mesh(S.MeshSpec(0, 2), jax.devices()[:1])
    with pytest.raises(ConfigError, match="data=2 x fsdp=1 != 1 devices"):
        S.make_mesh(S.MeshSpec(2, 1), jax.devices()[:1])
    # the default: every device on data, except TPUs (fsdp over a host's chips, data across hosts)
    assert S.default_spec("gpu") == S.default_spec("cpu") == S.MeshSpec()
    assert S.default_spec("tpu", local_devices=4) == S.MeshSpec(0, 4)
    assert S.mesh_shape(S.default_spec("tpu", 4), 16) == (4, 4)           # a 4-host pod of 4 chips each


def test_leaf_specs_shard_the_largest_divisible_dimension():
    spec = S._leaf_spec
    assert spec((64, 256), 2) == S.P(None, "fsdp")
    assert spec((256, 64), 4) == S.P("fsdp", None)
    assert spec((4, 33, 64), 2) == S.P(None, None, "fsdp")      # 33 is larger but does not divide
    assert spec((3, 5), 2) == S.P() and spec((128,), 2) == S.P() and spec((), 2) == S.P()
    assert spec((64, 256), 1) == S.P()


def test_batch_rows_are_slices_of_the_global_batch():
    cfg = apply_overrides(Config(), TINY)
    corpus = load_corpus(cfg.data, 256)
    sched = BatchSchedule.from_config(cfg)
    full = batch_at(corpus.train, 3, 17, sched)
    assert np.array_equal(np.concatenate([batch_at(corpus.train, 3, 17, sched, rows=(0, 3)),
                                          batch_at(corpus.train, 3, 17, sched, rows=(3, 8))]), full)
    with pytest.raises(DataError, match="rows 2..9 outside the batch of 8"):
        batch_at(corpus.train, 3, 17, sched, rows=(2, 9))
    # a global array built row-block by row-block is the batch itself
    mesh = S.make_mesh()
    arr = S.global_batch(lambda r0, r1: full[r0:r1], full.shape, S.batch_sharding(mesh, 2, 0), 0)
    assert np.array_equal(np.asarray(arr), full)
    assert np.array_equal(np.asarray(S.host_array(full, S.replicated(mesh))), full)


def test_launch_arguments_and_cluster_detection(monkeypatch):
    with pytest.raises(ConfigError, match="go together"):
        S.initialize("localhost:1234", None, 0)
    with pytest.raises(ConfigError, match="--process-id: 2 is not in"):
        S.initialize("localhost:1234", 2, 2)
    for k in ("SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_JOB_ID", "JAX_COORDINATOR_ADDRESS",
              "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(k, raising=False)
    assert not S._cluster_env() and S.initialize() is False          # one machine: nothing to start
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")
    assert not S._cluster_env()                                       # a one-task SLURM job
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert not S._cluster_env()               # a 4-task allocation, but python run by the batch script itself
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    assert S._cluster_env()                   # an srun step of 4 tasks
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS")
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t0,t1")
    assert S._cluster_env()
    assert S.is_lead()


def test_cli_mesh_errors_are_one_line(tmp_path, capsys):
    from bsz_lr.cli import main
    assert main(["train", "--out", str(tmp_path / "r"), "--mesh", "data=two", "model.size=nano"]) == 2
    assert "--mesh: expected data=N,fsdp=M" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--process-id", "0", "model.size=nano"]) == 2
    assert "go together" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# Two processes of 2 CPU devices each (4 in all, data=2 x fsdp=2) over JAX's distributed runtime
# with gloo collectives: process 0 alone writes the run files.
MULTI = r"""
import json, sys
from pathlib import Path
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from bsz_lr import sharding as S
S.initialize(sys.argv[3], 2, int(sys.argv[2]))
from bsz_lr.config import Config, apply_overrides
from bsz_lr.train import enable_compilation_cache, train
enable_compilation_cache()
S.set_mesh(S.make_mesh(S.MeshSpec(0, 2)))
st = train(apply_overrides(Config(), json.loads(sys.argv[4])), Path(sys.argv[1]), progress=False)
print("RESULT" + json.dumps({"process": jax.process_index(), "devices": jax.device_count(), "status": st["status"]}))
"""


def test_two_processes_train_one_run_like_one_device(meshes, tmp_path):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": str(ROOT)}
    env.pop("BSZ_LR_MESH", None)
    over = json.dumps(SHORT)
    procs = [subprocess.Popen([sys.executable, "-c", MULTI, str(tmp_path / "run"), str(i), f"127.0.0.1:{port}", over],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    res = [json.loads(out.split("RESULT", 1)[1]) for out, _ in outs]
    assert sorted(r["process"] for r in res) == [0, 1] and all(r["devices"] == 4 for r in res)
    assert all(r["status"] == "completed" for r in res)
    lines = [(r["step"], r.get("train_loss"), r.get("val_loss"))
             for r in map(json.loads, open(tmp_path / "run" / "metrics.jsonl"))]
    _close(lines, meshes["1"])
    assert len(open(tmp_path / "run" / "attempts.jsonl").readlines()) == 1     # one writer


def test_memory_estimate_against_closed_forms():
    from bsz_lr.model import counts_of
    cfg = apply_overrides(Config(), ["model.size=tiny", "data.seq_len=128", "data.batch_size=32"])
    n_params = counts_of(cfg.model)["total"]
    one = S.memory_estimate(cfg, S.MeshSpec(), 1)
    assert one["params"] == one["grads"] == 4 * n_params
    assert 2 * one["params"] < one["optimizer"] < 2 * one["params"] + 1024      # Adam: mu and nu, + scalars
    assert one["compute_copy"] == 0 and one["logits"] == 2 * 4 * 32 * 128 * 256
    eight = S.memory_estimate(cfg, S.MeshSpec(0, 2), 8)                           # data 4 x fsdp 2
    assert (eight["data"], eight["fsdp"], eight["sequences_per_device"]) == (4, 2, 4.0)
    assert eight["params"] == one["params"] / 2 and eight["activations"] == one["activations"] / 8
    remat = S.memory_estimate(apply_overrides(cfg, {"model.remat": True}), S.MeshSpec(), 1)
    assert remat["activations"] < one["activations"] and remat["params"] == one["params"]
    bf16 = S.memory_estimate(apply_overrides(cfg, {"model.compute_dtype": "bfloat16"}), S.MeshSpec(), 1)
    assert bf16["activations"] == one["activations"] / 2 and bf16["compute_copy"] == one["params"] / 2
    with pytest.raises(ConfigError, match="fsdp=3 does not divide the 8 devices"):
        S.memory_estimate(cfg, S.MeshSpec(0, 3), 8)


def test_info_prints_the_estimate_and_warns_when_it_will_not_fit(capsys):
    from bsz_lr.cli import main
    assert main(["info", "--devices", "8", "--mesh", "fsdp=2", "model.size=tiny"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["memory_per_device_gib"]["fsdp"] == 2 and out["memory_per_device_gib"]["total"] > 0
    assert main(["info", "--device-memory-gb", "0.001", "model.size=small"]) == 0
    assert "will not fit in 0.0 GiB; try model.remat=true" in capsys.readouterr().err
    assert main(["info", "--devices", "3", "--mesh", "fsdp=2", "model.size=tiny"]) == 2


def test_moe_under_data_parallelism_never_gathers_the_tokens(meshes):
    """N = 8 x 32 tokens of width 16 over 8 devices: no device gathers the tokens' hidden states
    (no all-gather of a [256, 16] or larger array); what is gathered is the router's 4 probabilities
    per token, and with the ragged layer also the 512 expert ids that its global sort needs."""
    for impl in ("dense", "ragged"):
        shapes = meshes["moe_" + impl]
        assert not any("256,16" in s or "512,16" in s for s in shapes), shapes
    assert meshes["moe_dense"] == ["f32[256,4]{1,0}"]
    assert sorted(meshes["moe_ragged"]) == ["f32[256,4]{1,0}", "s32[512]{0}"]


def test_the_gpu_ladder_fits_one_80gb_gpu():
    """Every rung of config.GPU_LADDER under GPU_BASE (bf16, T = 1024, 128 sequences, its
    micro-batches, fused attention as on a GPU) is estimated under 72 GiB on one device, and the
    experiment files' gpu profiles use those rungs."""
    from bsz_lr.config import GPU_BASE, GPU_LADDER, gpu_rung
    from bsz_lr.sweep import expand, load_experiment
    # the fewest micro-batches that divide the batch with at most 16 sequences per pass
    assert gpu_rung("gpu-1b", 40)["train.microbatches"] == 4 and gpu_rung("gpu-1b", 8)["train.microbatches"] == 1
    for name, over in GPU_LADDER.items():
        cfg = apply_overrides(Config(), {**GPU_BASE, **over})
        est = S.memory_estimate(cfg, S.MeshSpec(), 1, fused_attention=True)
        assert est["total"] < 72 * 2 ** 30, (name, est["total"] / 2 ** 30)
        no_micro = S.memory_estimate(apply_overrides(cfg, {"train.microbatches": 1}), S.MeshSpec(), 1, True)
        assert name == "gpu-100m" or no_micro["total"] > 80 * 2 ** 30      # the micro-batches are needed
    rungs = {(c.model.d_model, c.model.n_layers, c.data.seq_len, c.train.microbatches, c.model.compute_dtype)
             for f in ("lr_ladder", "tiny_lm", "wsd_branches") for c in expand(load_experiment(f), "gpu")
             if c.model.ffn == "dense"}           # MoE rungs take twice the micro-batches (checked below)
    ladder = {(c.model.d_model, c.model.n_layers, 1024, c.train.microbatches, "bfloat16")
              for c in (apply_overrides(Config(), {**GPU_BASE, **o}) for o in GPU_LADDER.values())}
    assert rungs <= ladder and len(rungs) == len(ladder)


# A Derived grid's stand-in for the memory check, per (experiment, source): the shapes its
# derivation produces (the LRs do not matter here).
def _stand_ins(g):
    from bsz_lr.config import gpu_rung
    return {
        ("bsz_schedule", "bsz_sweep"): lambda: g["_with_micro"](
            [(16, (), "none"), (16, ((10 ** 9, 1024),), "sqrt"), (1024, (), "none")]),
        ("lr_heldout", "lr_ladder"): lambda: g["gpu_arms"]([("dense", 1e-3), ("moe", 1e-3)]),
        ("mousse_compare", "mousse_lr"): lambda: [(s, n, 1e-3, 0.25, gpu_rung(s)["train.microbatches"])
                                                 for s in ("gpu-100m", "gpu-300m") for n in ("adamw", "mousse")],
        ("mousse_ablations", "mousse_lr"): lambda: [("gpu-100m", "mousse", 1e-2, 0.25)],
        ("lr_fit_vs_transfer", "lr_ladder"): lambda: [("sp", 1e-3)],
        ("lr_fit_vs_transfer", "mup_horizon"): lambda: [("mup", 1e-3)],
        ("lr_fit_vs_transfer", "mup_width"): lambda: [("sp", 1e-3)],
    }


def test_every_experiment_files_gpu_profile_fits_one_80gb_gpu(monkeypatch, tmp_path):
    """Every experiment file has a gpu profile on the gpu ladder's settings (bf16, T = 1024) whose
    every run, derived grids included (their shapes stood in), is estimated under 72 GiB on one
    80 GB GPU with fused attention."""
    import runpy
    from bsz_lr import sweep as sweep_mod
    from bsz_lr.sweep import EXPERIMENTS_DIR, expand, load_experiment
    files = sorted(EXPERIMENTS_DIR.glob("*.py"))
    globs = {}
    monkeypatch.setattr(sweep_mod, "_derived_value", lambda exp, profile, root: lambda d: _stand_ins(
        globs[exp.name])[(exp.name, d.experiment)]())
    seen, worst = {}, (0, "")
    for f in files:
        exp = load_experiment(str(f))
        assert "gpu" in exp.profiles, f"{f.name} has no gpu profile"
        globs[exp.name] = runpy.run_path(str(f))
        cfgs = expand(exp, "gpu", tmp_path)
        assert cfgs, f.name
        for c in cfgs:
            assert (c.model.compute_dtype, c.data.seq_len) == ("bfloat16", 1024), f.name
            key = (c.model, c.optim, c.data.batch_size, c.train.microbatches, c.model.remat)
            if key not in seen:
                seen[key] = S.memory_estimate(c, S.MeshSpec(), 1, fused_attention=True)["total"]
            assert seen[key] < 72 * 2 ** 30, (f.name, c.model.d_model, c.model.n_layers, c.data.batch_size,
                                              c.train.microbatches, seen[key] / 2 ** 30)
            worst = max(worst, (seen[key], f.name))
    assert worst[0] > 30 * 2 ** 30          # the profiles use the GPU, not a sliver of it


def test_state_bytes_of_a_deep_model_are_exact():
    """The depth extrapolation of _state_bytes equals counting every leaf (Adam and Mousse)."""
    import dataclasses
    from bsz_lr.config import ModelConfig, OptimConfig
    from bsz_lr.model import init_params
    from bsz_lr.optim import build_optimizer
    for name in ("adamw", "mousse"):
        m, o = ModelConfig(d_model=32, n_layers=5, n_heads=2), OptimConfig(name=name)
        p = jax.eval_shape(lambda: init_params(m, jax.random.key(0)))
        st = jax.eval_shape(build_optimizer(o, p, m).init, p)
        size = lambda t: sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(t))
        assert S._state_bytes(m, o) == (size(p), size(st))
        assert S._state_bytes(dataclasses.replace(m, n_layers=2), o) != S._state_bytes(m, o)

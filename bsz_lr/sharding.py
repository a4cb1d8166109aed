"""Placement on devices through JAX's own runtime: a (data, fsdp) mesh, the shardings of the train
state and the batches, and multi-host start-up.

* Mesh: `data` x `fsdp` devices (`--mesh data=D,fsdp=F` or BSZ_LR_MESH; default: every device on
  `data`, except on TPUs: `fsdp` over each host's chips and `data` across hosts, default_spec).
  Devices are laid out by jax.experimental.mesh_utils (the physical topology on TPUs).  Batches are split over both axes (every device holds B / (D F) rows); parameters and
  the optimizer state are sharded over `fsdp` along their largest dimension that it divides and
  replicated over `data`.  jit's SPMD partitioner inserts the gathers and reductions.
* Placement is not part of a run's identity (config.py): the same run may be resumed on another
  device count, since orbax restores a checkpoint into whatever shardings the new mesh gives.
* Multi-host: `initialize()` calls jax.distributed.initialize from explicit arguments, or lets it
  read the cluster's environment (SLURM, TPU pods, ...).  Each process then builds only the batch
  rows its own devices hold (`global_batch`: the data order is a pure function of the step), and
  only process 0 writes metrics and status files (train.py).

With one device and no mesh asked for, nothing here is used and a run is exactly what it was.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .config import ConfigError

__all__ = ["AXES", "MeshSpec", "default_spec", "make_mesh", "active_mesh", "requested_mesh", "set_mesh", "state_shardings", "batch_sharding",
           "replicated", "global_batch", "host_array", "check_batch", "initialize", "is_lead", "memory_estimate",
           "device_memory", "mesh_shape"]

AXES = ("data", "fsdp")
_MESH: Mesh | None = None


@dataclass(frozen=True)
class MeshSpec:
    data: int = 0          # 0: every device the fsdp axis leaves
    fsdp: int = 1

    @classmethod
    def parse(cls, text: str) -> "MeshSpec":
        """'data=4,fsdp=2' (either may be left out)."""
        vals = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, eq, val = part.partition("=")
            if not eq or key not in ("data", "fsdp") or not val.isdigit():
                raise ConfigError(f"--mesh: expected data=N,fsdp=M, got {text!r}")
            vals[key] = int(val)
        if vals.get("fsdp", 1) < 1:
            raise ConfigError(f"--mesh: fsdp must be >= 1, got {vals['fsdp']}")
        return cls(**vals)


def default_spec(backend: str | None = None, local_devices: int | None = None) -> MeshSpec:
    """The mesh when none is asked for: every device on `data` (GPUs, CPUs); on TPUs `fsdp` over
    each host's chips and `data` across hosts (a pod's hosts each hold 1/fsdp of the state, and
    the gathers run over the chips' fast interconnect)."""
    if (backend or jax.default_backend()) == "tpu":
        return MeshSpec(data=0, fsdp=local_devices or jax.local_device_count())
    return MeshSpec()


def make_mesh(spec: MeshSpec | None = None, devices=None) -> Mesh:
    """The (data, fsdp) mesh over `devices` (default: all of them, across processes); spec None:
    default_spec().  mesh_utils orders the devices for the physical topology where it knows it
    (TPU slices); elsewhere, or when it cannot, in jax.devices() order."""
    from jax.experimental import mesh_utils
    spec = default_spec() if spec is None else spec
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(spec, len(devices))
    try:
        grid = mesh_utils.create_device_mesh(shape, devices)
    except (ValueError, NotImplementedError, AssertionError):
        grid = np.array(devices).reshape(shape)
    return Mesh(grid, AXES)


def mesh_shape(spec: MeshSpec, n: int) -> tuple[int, int]:
    """(data, fsdp) of the spec on n devices, or a one-line error."""
    if n % spec.fsdp:
        raise ConfigError(f"--mesh: fsdp={spec.fsdp} does not divide the {n} devices")
    data = spec.data or n // spec.fsdp
    if data * spec.fsdp != n:
        raise ConfigError(f"--mesh: data={data} x fsdp={spec.fsdp} != {n} devices")
    return data, spec.fsdp


def set_mesh(mesh: Mesh | None) -> None:
    """Use `mesh` for the runs this process trains from now on (None: back to BSZ_LR_MESH or the default)."""
    global _MESH
    _MESH = mesh


def requested_mesh() -> Mesh | None:
    """The mesh set_mesh or BSZ_LR_MESH asked for, else None (no default mesh)."""
    if _MESH is not None:
        return _MESH
    text = os.environ.get("BSZ_LR_MESH", "")
    return make_mesh(MeshSpec.parse(text)) if text else None


def active_mesh() -> Mesh | None:
    """The mesh runs are placed on: set_mesh's, else BSZ_LR_MESH's, else None on one device and the
    default data mesh over several."""
    if _MESH is not None:
        return _MESH
    text = os.environ.get("BSZ_LR_MESH", "")
    if text:
        return make_mesh(MeshSpec.parse(text))
    return make_mesh() if jax.device_count() > 1 else None


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _leaf_spec(shape, fsdp: int) -> P:
    """Shard the largest dimension fsdp divides (ties: the first); scalars, vectors and leaves with
    no such dimension are replicated."""
    if fsdp == 1 or len(shape) < 2:
        return P()
    dims = [i for i in np.argsort([-s for s in shape], kind="stable") if shape[i] % fsdp == 0]
    if not dims:
        return P()
    spec = [None] * len(shape)
    spec[dims[0]] = "fsdp"
    return P(*spec)


def state_shardings(abstract_state, mesh: Mesh):
    """NamedShardings for a train state (params and optimizer state alike, leaf by leaf)."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda a: NamedSharding(mesh, _leaf_spec(np.shape(a), fsdp)), abstract_state)


def batch_sharding(mesh: Mesh, ndim: int, batch_axis: int) -> NamedSharding:
    """Rows (axis batch_axis) split over every device of the mesh, the other axes whole."""
    spec = [None] * ndim
    spec[batch_axis] = AXES
    return NamedSharding(mesh, P(*spec))


def check_batch(mesh: Mesh, batch: int, what: str = "data.batch_size") -> None:
    if batch % mesh.size:
        raise ConfigError(f"{what}: {batch} sequences cannot be split over the {mesh.size} devices of the "
                          f"mesh (data={mesh.shape['data']} x fsdp={mesh.shape['fsdp']})")


def global_batch(rows_fn, shape: tuple, sharding: NamedSharding, batch_axis: int):
    """A global jax.Array of `shape` whose rows (axis batch_axis, the only one the sharding splits)
    come from rows_fn(r0, r1) -> np.ndarray with rows r0 .. r1-1: each process computes only the
    rows its own devices hold."""
    def rows(index):
        r0, r1, _ = index[batch_axis].indices(shape[batch_axis])
        return rows_fn(r0, r1)
    return jax.make_array_from_callback(shape, sharding, rows)


def host_array(x: np.ndarray, sharding: NamedSharding):
    """A global jax.Array from a value every process holds in full (e.g. the LRs of a chunk)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Start JAX's distributed runtime: from the arguments when given (all three), else from the
    cluster environment jax.distributed knows (SLURM, TPU, ...) when one is detected; on a single
    machine without either, do nothing.  True when the runtime was started."""
    given = [coordinator, num_processes, process_id]
    if any(x is not None for x in given):
        if any(x is None for x in given):
            raise ConfigError("--coordinator, --num-processes and --process-id go together")
        if not 0 <= process_id < num_processes:
            raise ConfigError(f"--process-id: {process_id} is not in [0, {num_processes})")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
        return True
    if _cluster_env():
        jax.distributed.initialize()
        return True
    return False


def _cluster_env() -> bool:
    """A multi-process job that jax.distributed.initialize() can configure by itself."""
    env = os.environ
    # SLURM_STEP_NUM_TASKS is set inside an srun step; a batch script that asked for several tasks
    # but runs python itself (SLURM_NTASKS > 1, one process) must not wait for peers that never come
    if int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in env:
        return True
    return bool(env.get("JAX_COORDINATOR_ADDRESS")) or bool(env.get("TPU_WORKER_HOSTNAMES", "").count(","))


def is_lead() -> bool:
    """Process 0 of a multi-process job (the one that writes files), or the only process."""
    return jax.process_index() == 0


def _shape_key(model_cfg, optim_cfg):
    """The configs with the fields that never change a parameter's or an optimizer state's shape or
    dtype set to their defaults (so the cached _state_bytes is shared across LRs, muP settings ...)."""
    from .config import ModelConfig, OptimConfig
    m0, o0 = ModelConfig(), OptimConfig()
    same = lambda cfg, base, names: dataclasses.replace(cfg, **{n: getattr(base, n) for n in names})
    return (same(model_cfg, m0, ("parametrization", "base_d_model", "base_d_head", "mup_readout", "mup_scale_wd",
                                 "depth_alpha", "base_n_layers", "compute_dtype", "remat", "scan_layers",
                                 "init_std", "moe_aux_coef", "moe_z_coef", "rope_base")),
            same(optim_cfg, o0, ("lr", "b1", "b2", "eps", "weight_decay", "clip_norm", "momentum", "nesterov",
                                 "matrix_weight_decay", "adam_lr_ratio", "mousse_alpha", "mousse_beta",
                                 "mousse_eps", "mousse_refresh")))


@functools.lru_cache(maxsize=64)
def _state_bytes(model_cfg, optim_cfg) -> tuple[int, int]:
    """Bytes of the parameters and of the optimizer state, from their abstract shapes.  Every block
    has the same shapes, so a deep model's are those of 1 and 2 blocks extrapolated in depth
    (exact; tracing 20 blocks of a 1B model just to count them takes seconds)."""
    L = model_cfg.n_layers
    if L > 2:
        (p1, o1), (p2, o2) = (_state_bytes(dataclasses.replace(model_cfg, n_layers=n), optim_cfg) for n in (1, 2))
        return p1 + (L - 1) * (p2 - p1), o1 + (L - 1) * (o2 - o1)
    from .model import init_params
    from .optim import build_optimizer
    abstract = jax.eval_shape(lambda: init_params(model_cfg, jax.random.key(0)))
    opt = jax.eval_shape(build_optimizer(optim_cfg, abstract, model_cfg).init, abstract)
    size = lambda tree: sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))
    return size(abstract), size(opt)


def memory_estimate(cfg, spec: MeshSpec, n_devices: int, fused_attention: bool | None = None) -> dict:
    """Bytes per device of a training step on a (data, fsdp) mesh of n_devices (one micro-batch's
    activations at a time with train.microbatches): exact for the
    parameters, gradients and optimizer state (from their shapes, sharded over fsdp), an estimate
    for the activations kept for the backward pass (per layer and sequence: ~(16 D + 3 F) values
    for norms, projections, RoPE and the FFN, plus the H T^2 attention scores twice unless the
    attention is fused (flash-style, the default off the CPU: fused_attention=None); with
    model.remat only each block's input and one block's working set), and the f32 logits and
    their gradient."""
    m = cfg.model
    data, fsdp = mesh_shape(spec, n_devices)
    param_bytes, opt_bytes = _state_bytes(*_shape_key(m, cfg.optim))
    b = cfg.data.batch_size / (data * fsdp) / cfg.train.microbatches   # sequences per device and pass
    T, D, L, H, V = cfg.data.seq_len, m.d_model, m.n_layers, m.n_heads, m.vocab_size
    F = m.top_k * m.expert_width if m.ffn == "moe" else m.ffn_width
    a = np.dtype(m.compute_dtype).itemsize
    fused = jax.default_backend() != "cpu" if fused_attention is None else fused_attention
    layer = a * b * T * (16 * D + 3 * F) + (0 if fused else a * 2 * b * H * T * T)
    acts = (L * a * b * T * D + layer) if m.remat else L * layer
    grads = param_bytes / fsdp * (2 if cfg.train.microbatches > 1 else 1)    # + the accumulator
    out = {"params": param_bytes / fsdp, "grads": grads, "optimizer": opt_bytes / fsdp,
           "compute_copy": param_bytes / fsdp * a / 4 if a != 4 else 0.0,
           "activations": acts, "logits": 2 * 4 * b * T * V}
    out["total"] = sum(out.values())
    out.update(devices=n_devices, data=data, fsdp=fsdp, sequences_per_device=b)
    return out


def device_memory() -> int | None:
    """Bytes of memory of the first device, when the backend reports it (GPUs, TPUs; not the CPU)."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory stats raise various errors
        return None
    return stats.get("bytes_limit")

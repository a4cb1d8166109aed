"""bsz_lr: batch size and learning rate for large-scale pre-training, reproduced in JAX."""

import os as _os

__version__ = "0.1.0"

# XLA:CPU defaults that measured faster on CPU (README, *CPU speed*), set before JAX opens its
# backend and only where the user's XLA_FLAGS do not already choose: dots through Eigen rather
# than YNNPACK.  BSZ_LR_XLA_DEFAULTS=0 leaves XLA_FLAGS alone.  Without effect on GPU / TPU.
CPU_XLA_FLAGS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _apply_xla_defaults() -> None:
    if _os.environ.get("BSZ_LR_XLA_DEFAULTS", "1") == "0":
        return
    flags = _os.environ.get("XLA_FLAGS", "")
    extra = [f"--{k}={v}" for k, v in CPU_XLA_FLAGS.items() if k not in flags]
    if extra:
        _os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


_apply_xla_defaults()

"""bsz_lr: batch size and learning rate for large-scale pre-training, reproduced in JAX."""

__version__ = "0.1.0"

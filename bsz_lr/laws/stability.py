"""Training-stability readings of a logged run (LR paper, spec section 3): loss spikes.

A log line holds the mean training loss of the steps since the previous line (`train_loss`) and,
with train.analysis, their largest single-step loss (`train_loss_max`).  A spike is a line whose
largest step loss exceeds `ratio` x the lowest mean loss of the `window` lines before it: a
falling curve never triggers it, a jump of 10% above the recent level does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["loss_spikes"]


def loss_spikes(steps, loss_mean, loss_max, ratio: float = 1.1, window: int = 5) -> list[int]:
    """Steps of the log lines that hold a loss spike (see the module docstring)."""
    steps, mean, peak = (np.asarray(a, np.float64) for a in (steps, loss_mean, loss_max))
    if not (steps.shape == mean.shape == peak.shape) or steps.ndim != 1:
        raise ValueError("loss_spikes: steps, loss_mean and loss_max must be 1-D and of one length")
    if ratio <= 1 or window < 1:
        raise ValueError(f"loss_spikes: need ratio > 1 and window >= 1, got {ratio}, {window}")
    out = []
    for i in range(1, len(steps)):
        level = np.min(mean[max(0, i - window):i])
        if np.isfinite(peak[i]) and peak[i] > ratio * level or not np.isfinite(peak[i]):
            out.append(int(steps[i]))
    return out

"""Scaling-law fits over result tables: pure numpy/scipy, no JAX, no training.

power    Eq. 4 of the LR paper: L(D) = L_0 + A D^-gamma
targets  steps / tokens to reach target losses from loss curves (censored when never reached)
ess      E(S) laws: classical hyperbola, revised piecewise law (c1 and free forms), B_min, B_opt,
         bootstrap intervals, leave-one-out error
batch    B_min(L), B_opt(L) as power laws in loss; McCandlish's two-batch noise scale
lr       LR paper Eq. 2 (parabola in log LR, edge optima refused) and Eq. 6 (eta* = c N^a D^b),
         the near-optimal-band estimator
analysis a stored batch sweep end to end, and the dynamic batch schedule (import it directly)
stability loss spikes of a logged run (train.analysis)
transfer the Transfer paradigm from stored sweeps: optima per width / depth, the proxy's horizon
         rule, the Fitting-vs-Transfer arms (import it directly)
lr_analysis  a stored LR ladder with decay branches end to end: Eq. 4 / 2 / 6, the band law, the
         held-out prediction, the search-cost table (import it directly)
"""

from .batch import LossPowerLaw, b_simple, fit_loss_power_law
from .ess import (ClassicalFit, RevisedFit, bootstrap, c1_pieces, classical_E, fit_classical, fit_revised,
                  loo_error)
from .lr import HorizonFit, LRLaw, LRParabola, band_points, fit_horizon, fit_lr_law, fit_lr_parabola
from .power import FitError, PowerLawFit, fit_power_law
from .stability import loss_spikes
from .targets import Crossings, crossings, smooth_curve, target_levels

__all__ = ["FitError", "PowerLawFit", "fit_power_law", "ClassicalFit", "RevisedFit", "classical_E",
           "fit_classical", "fit_revised", "c1_pieces", "bootstrap", "loo_error", "LossPowerLaw",
           "fit_loss_power_law", "b_simple", "Crossings", "crossings", "smooth_curve", "target_levels",
           "LRParabola", "fit_lr_parabola", "LRLaw", "fit_lr_law", "band_points", "HorizonFit", "fit_horizon",
           "loss_spikes"]

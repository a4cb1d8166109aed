"""Scaling-law fits over result tables: pure numpy/scipy, no JAX, no training."""

from .power import FitError, PowerLawFit, fit_power_law

__all__ = ["FitError", "PowerLawFit", "fit_power_law"]

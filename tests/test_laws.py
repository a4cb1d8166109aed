import numpy as np
import pytest

from bsz_lr.laws import FitError, fit_power_law


def test_power_law_recovers_known_parameters():
    D = np.geomspace(1e5, 1e8, 6)
    L = 1.2 + 30.0 * D ** -0.3
    fit = fit_power_law(D, L)
    assert fit.L0 == pytest.approx(1.2, rel=1e-3)
    assert fit.A == pytest.approx(30.0, rel=1e-2)
    assert fit.gamma == pytest.approx(0.3, rel=1e-3)
    assert fit(2e8) == pytest.approx(1.2 + 30.0 * 2e8 ** -0.3, rel=1e-4)


def test_power_law_with_noise_and_bad_input():
    rng = np.random.default_rng(0)
    D = np.geomspace(1e5, 1e7, 8)
    L = 2.0 + 10.0 * D ** -0.25 + rng.normal(0, 1e-3, D.size)
    assert fit_power_law(D, L).gamma == pytest.approx(0.25, abs=0.05)
    with pytest.raises(FitError, match="need >= 3"):
        fit_power_law([1e5, 1e6, np.nan], [3.0, 2.5, 2.0])


def test_loss_spikes_flags_jumps_not_a_falling_curve():
    from bsz_lr.laws import loss_spikes
    steps = np.arange(10, 110, 10)
    mean = np.linspace(3.0, 2.0, 10)                       # falling
    assert loss_spikes(steps, mean, mean * 1.05) == []     # per-line noise below the ratio
    peak = mean * 1.05
    peak[6] = 1.2 * mean[5]                                # a step 20% above the recent level
    peak[8] = np.nan                                       # a non-finite step loss is a spike too
    assert loss_spikes(steps, mean, peak) == [70, 90]
    assert loss_spikes(steps, mean, peak, ratio=1.3) == [90]
    with pytest.raises(ValueError, match="ratio > 1"):
        loss_spikes(steps, mean, peak, ratio=1.0)
    with pytest.raises(ValueError, match="one length"):
        loss_spikes(steps[:3], mean, peak)

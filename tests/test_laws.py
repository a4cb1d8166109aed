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

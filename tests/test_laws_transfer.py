"""laws.transfer: the proxy's horizon rule and the Fitting-vs-Transfer arms on synthetic sweeps with
known optima (loss exactly parabolic in log LR around them)."""

import math

import numpy as np
import pytest

from bsz_lr.laws import FitError
from bsz_lr.laws.transfer import arms_of, direct_lr, final_loss, fitting_lr, proxy_horizon
from tests.synthetic_ladder import synth_ladder

LRS = (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)


def run(par, d, lr, L, tokens=262_144, seed=0, status="completed"):
    return {"hash": f"{par}{d}-{lr:g}-{tokens}-{seed}", "state": status,
            "config": {"model": {"parametrization": par, "d_model": d}, "optim": {"lr": lr},
                       "train": {"tokens": tokens, "seed": seed}},
            "status": {"status": status, "final_val_loss": L}}


def sweep(par, d, eta, tokens=262_144, lrs=LRS):
    return [run(par, d, lr, 2.0 + 0.05 * math.log(lr / eta) ** 2, tokens) for lr in lrs]


def test_proxy_horizon_recovers_beta_and_transfers_the_lr():
    beta, c = 0.5, 5.0
    eta = lambda D: c * D ** -beta
    proxy = sweep("mup", 32, eta(65_536), 65_536) + sweep("mup", 32, eta(131_072), 131_072)
    h = proxy_horizon(proxy, 262_144)
    assert h.fit.beta == pytest.approx(beta, rel=1e-6) and h.d_proxy == 131_072
    assert h.eta_uncorrected == pytest.approx(eta(131_072), rel=1e-6)
    assert h.eta_corrected == pytest.approx(eta(262_144), rel=1e-6)
    # runs at the target horizon (or beyond) never enter the fit
    assert proxy_horizon(proxy + sweep("mup", 32, 1e-2, 262_144), 262_144).fit.beta == pytest.approx(beta, rel=1e-6)
    with pytest.raises(FitError, match=">= 2 horizons below 262,144"):
        proxy_horizon(sweep("mup", 32, 4e-3, 131_072), 262_144)
    with pytest.raises(FitError, match="one width"):
        proxy_horizon(proxy + sweep("mup", 64, 4e-3, 65_536), 262_144)


def test_final_loss_bounds_with_diverged_runs_and_skips_unfinished_ones():
    assert final_loss(run("sp", 32, 1e-3, 2.1)) == 2.1
    assert final_loss(run("sp", 32, 1e-3, None, status="diverged")) == math.inf
    assert math.isnan(final_loss(run("sp", 32, 1e-3, None, status="running")))
    # a diverged top LR still bounds the direct sweep's optimum from above
    s = sweep("sp", 128, 3e-3)[:-1] + [run("sp", 128, 3.2e-2, None, status="diverged")]
    assert direct_lr(s, "sp", 128) == pytest.approx(3e-3, rel=1e-6)
    with pytest.raises(FitError, match="no mup runs at width 128"):
        direct_lr(s, "mup", 128)


def test_fitting_lr_is_eq6_of_the_ladder():
    a, b, c = -0.25, -0.35, 20.0
    runs = synth_ladder(a=a, b=b, c=c)
    N, D = 24 * 128 * 128, 262_144
    assert fitting_lr(runs, N, D) == pytest.approx(c * N ** a * D ** b, rel=1e-3)
    with pytest.raises(FitError, match="no moe runs"):
        fitting_lr(runs, N, D, ffn="moe")


def test_arms_are_told_apart_by_parametrization_and_lr():
    sweep_runs = sweep("sp", 128, 1.7e-3)
    proxy = sweep("mup", 32, 8e-3, 65_536) + sweep("mup", 32, 5e-3, 131_072)
    h = proxy_horizon(proxy, 262_144)
    lr4 = lambda x: float(f"{x:.4g}")
    target = [run("sp", 128, 1.4e-3, 1.93 + 0.01 * s, seed=s) for s in range(3)]
    target += [run("sp", 128, lr4(1.7e-3), 1.91 + 0.01 * s, seed=s) for s in range(3)]
    target += [run("mup", 128, lr4(h.eta_uncorrected), 1.95, seed=s) for s in range(3)]
    target += [run("mup", 128, lr4(h.eta_corrected), 2.10, seed=s) for s in range(2)]
    target += [run("mup", 128, lr4(h.eta_corrected), None, seed=2, status="running")]   # not finished: left out
    arms = arms_of(target, sweep_runs, proxy, 262_144)
    assert list(arms) == ["fitting", "transfer", "transfer+horizon", "direct"]
    assert arms["fitting"]["mean"] == pytest.approx(1.94) and arms["fitting"]["std"] == pytest.approx(0.01)
    assert arms["direct"]["lr"] == lr4(1.7e-3) and len(arms["transfer+horizon"]["losses"]) == 2
    assert arms["transfer"]["std"] == 0.0

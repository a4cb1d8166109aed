"""LR schedules against closed forms and optax; the batch schedule against a step-by-step simulation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bsz_lr.config import Config, ConfigError, DataConfig, ScheduleConfig
from bsz_lr.schedules import (BatchSchedule, cosine_factor, cosine_schedule, decay_factor, lr_factor,
                              wsd_factor, wsd_schedule)

SHAPES = ["linear", "cosine", "1-sqrt", "exp"]


def g_ref(shape, p, final):
    """Closed-form decay multiplier at decay progress p in [0, 1]."""
    if shape == "linear":
        return final + (1 - final) * (1 - p)
    if shape == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * p))
    if shape == "1-sqrt":
        return final + (1 - final) * (1 - math.sqrt(p))
    if shape == "exp":
        return final ** p
    raise AssertionError(shape)


# total=1000, warmup=100, decay over the last 40% -> decay starts at 600.
TOTAL, WARM, FRAC = 1000, 100, 0.4
START = 600


@pytest.mark.parametrize("shape, final", [(s, f) for s in SHAPES for f in (0.0, 0.1)
                                          if not (s == "exp" and f == 0.0)])
def test_wsd_closed_form(shape, final):
    f = lambda x: float(wsd_factor(x, TOTAL, WARM, FRAC, shape, final))
    expect = {
        0: 0.0, 25: 0.25, 50: 0.5, 100: 1.0, 101: 1.0, 300: 1.0, 599: 1.0, START: 1.0,
        700: g_ref(shape, 0.25, final), 800: g_ref(shape, 0.5, final), 900: g_ref(shape, 0.75, final),
        TOTAL: final, TOTAL + 1: final, 5 * TOTAL: final,
    }
    for x, want in expect.items():
        assert f(x) == pytest.approx(want, abs=1e-12), (x, f(x), want)
    # vectorised call gives the same values
    xs = np.array(list(expect), dtype=float)
    np.testing.assert_allclose(wsd_factor(xs, TOTAL, WARM, FRAC, shape, final), list(expect.values()),
                               atol=1e-12)


def test_decay_shapes_differ_mid_decay():
    vals = [float(wsd_factor(700, TOTAL, WARM, FRAC, s, 0.1)) for s in SHAPES]
    assert len(set(np.round(vals, 9))) == 4
    # expected ordering at p=0.25: cosine > linear > exp(0.1) > 1-sqrt
    c, lin, sq, ex = (vals[SHAPES.index(s)] for s in ("cosine", "linear", "1-sqrt", "exp"))
    assert c > lin > ex > sq


@pytest.mark.parametrize("shape", SHAPES)
def test_wsd_no_warmup(shape):
    final = 0.05
    assert float(wsd_factor(0, TOTAL, 0, FRAC, shape, final)) == 1.0
    assert float(wsd_factor(START, TOTAL, 0, FRAC, shape, final)) == 1.0
    assert float(wsd_factor(800, TOTAL, 0, FRAC, shape, final)) == pytest.approx(g_ref(shape, 0.5, final))


@pytest.mark.parametrize("shape", SHAPES)
def test_wsd_no_decay(shape):
    xs = np.array([0, 50, 100, 999, 1000, 2000], float)
    np.testing.assert_allclose(wsd_factor(xs, TOTAL, WARM, 0.0, shape, 0.0),
                               [0.0, 0.5, 1.0, 1.0, 1.0, 1.0])


def test_wsd_decay_whole_run():
    # decay_fraction=1: decay starts at 0 (after warmup multiplies in)
    assert float(wsd_factor(0, 100, 0, 1.0, "linear", 0.0)) == 1.0
    assert float(wsd_factor(50, 100, 0, 1.0, "linear", 0.0)) == pytest.approx(0.5)


def test_decay_factor_clips_and_rejects():
    assert decay_factor(-1.0, "linear", 0.2) == pytest.approx(1.0)
    assert decay_factor(2.0, "cosine", 0.2) == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="final"):
        decay_factor(0.5, "exp", 0.0)
    with pytest.raises(ConfigError, match="decay_shape"):
        decay_factor(0.5, "square", 0.0)


@pytest.mark.parametrize("warmup, total, final", [(10, 100, 0.0), (10, 100, 0.1), (0, 50, 0.2), (7, 33, 0.0)])
def test_cosine_matches_optax(warmup, total, final):
    ref = optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=1.0, warmup_steps=warmup,
                                             decay_steps=total, end_value=final)
    steps = np.arange(total + 10)
    want = np.array([float(ref(int(s))) for s in steps])
    got = cosine_factor(steps, total, warmup, final)
    np.testing.assert_allclose(got, want, atol=2e-6)
    # sanity of the reference semantics: peak at end of warmup, final at total
    assert got[warmup] == pytest.approx(1.0) and got[total] == pytest.approx(final)


def test_cosine_closed_form():
    # halfway through the cosine part the factor is (1 + final) / 2
    assert float(cosine_factor(55, 100, 10, 0.2)) == pytest.approx(0.6)
    assert float(cosine_factor(5, 100, 10, 0.2)) == pytest.approx(0.5)


@pytest.mark.parametrize("shape", SHAPES)
def test_wsd_schedule_jnp_matches_numpy_and_jits(shape):
    peak, final = 3e-3, 0.1
    sched = wsd_schedule(peak, TOTAL, WARM, FRAC, shape, final)
    xs = np.array([0, 50, 100, 600, 700, 800, 999, 1000, 1500])
    want = peak * wsd_factor(xs, TOTAL, WARM, FRAC, shape, final)
    np.testing.assert_allclose(np.asarray(jax.jit(sched)(jnp.asarray(xs))), want, rtol=1e-5, atol=1e-10)
    assert float(sched(800)) == pytest.approx(float(want[5]), rel=1e-5)


def test_cosine_schedule_jnp_matches_numpy_and_optax_under_jit():
    sched = cosine_schedule(2.0, 100, 10, 0.1)
    ref = optax.warmup_cosine_decay_schedule(0.0, 2.0, 10, 100, end_value=0.2)
    xs = jnp.arange(120)
    got = np.asarray(jax.jit(sched)(xs))
    np.testing.assert_allclose(got, 2.0 * cosine_factor(np.arange(120), 100, 10, 0.1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got, np.asarray(jax.jit(ref)(xs)), rtol=1e-5, atol=1e-6)


def test_optax_can_use_wsd_schedule():
    opt = optax.sgd(wsd_schedule(1.0, 10, 2, 0.5, "linear", 0.0))
    params = jnp.zeros(())
    state = opt.init(params)
    lrs = []
    for _ in range(11):
        upd, state = opt.update(jnp.ones(()), state, params)
        lrs.append(-float(upd))
    np.testing.assert_allclose(lrs, [0, 0.5, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0.0], atol=1e-6)


def test_lr_factor_dispatch():
    xs = np.array([0, 5, 10, 40, 90, 100, 150], float)
    wsd = ScheduleConfig(kind="wsd", decay_fraction=0.3, decay_shape="cosine", final_lr_fraction=0.1)
    np.testing.assert_allclose(lr_factor(wsd, xs, 100, 10), wsd_factor(xs, 100, 10, 0.3, "cosine", 0.1))
    cos = ScheduleConfig(kind="cosine", final_lr_fraction=0.1)
    np.testing.assert_allclose(lr_factor(cos, xs, 100, 10), cosine_factor(xs, 100, 10, 0.1))
    const = ScheduleConfig(kind="constant")
    np.testing.assert_allclose(lr_factor(const, xs, 100, 10), [0, 0.5, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(lr_factor(const, xs, 100, 0), np.ones(7))
    # jnp path
    np.testing.assert_allclose(np.asarray(lr_factor(wsd, jnp.asarray(xs), 100, 10, xp=jnp)),
                               wsd_factor(xs, 100, 10, 0.3, "cosine", 0.1), rtol=1e-5)


# ---------------------------------------------------------------------------
# Batch schedule.

def simulate(stages, seq_len, n_steps):
    """Reference: walk step by step, switching to a stage at the first step whose
    tokens-consumed-before reaches the stage's start."""
    out, tokens, seqs = [], 0, 0
    for _ in range(n_steps):
        b = [bb for tok, bb in stages if tokens >= tok][-1]
        out.append((b, seqs, tokens))
        seqs += b
        tokens += b * seq_len
    return out


@pytest.mark.parametrize("B, T", [(8, 32), (3, 5)])
def test_constant_batch_closed_forms(B, T):
    bs = BatchSchedule(((0, B),), T)
    for s in [0, 1, 7, 1000]:
        assert bs.batch_at(s) == B
        assert bs.sequences_before(s) == s * B
        assert bs.tokens_before(s) == s * B * T
        assert bs.next_change(s) is None
    for D in [0, 1, B * T - 1, B * T, B * T + 1, 12345]:
        assert bs.steps_for_tokens(D) == math.ceil(D / (B * T))


STAGED = [
    ((0, 4), (1000, 8), (5000, 16)),           # switches mid-step
    ((0, 4), (1024, 8)),                       # exactly on a step boundary (4*32*8 = 1024)
    ((0, 4), (100, 8), (120, 16)),             # two stages reached within one step
    ((0, 16), (300, 2)),                       # shrinking batch
]


@pytest.mark.parametrize("stages", STAGED)
def test_multistage_matches_simulation(stages):
    T, n = 32, 60
    bs = BatchSchedule(stages, T)
    ref = simulate(stages, T, n)
    for s, (b, seqs, toks) in enumerate(ref):
        assert (bs.batch_at(s), bs.sequences_before(s), bs.tokens_before(s)) == (b, seqs, toks), s
    for k in (1, n // 3, n):
        assert bs.batches_used(k) == {b for b, _, _ in ref[:k]}
    # next_change: first later step with a different batch size (or None)
    for s in range(n - 1):
        later = [t for t in range(s + 1, n) if ref[t][0] != ref[s][0]]
        want = later[0] if later else None
        if want is None:
            assert bs.next_change(s) is None or bs.next_change(s) >= n
        else:
            assert bs.next_change(s) == want, s


def test_multistage_switch_steps_explicit():
    bs = BatchSchedule(((0, 4), (1000, 8), (5000, 16)), 32)
    # stage 1: first step with tokens_before >= 1000 is 8 (7*128=896, 8*128=1024)
    assert [bs.batch_at(s) for s in (7, 8)] == [4, 8]
    assert bs.tokens_before(8) == 1024 and bs.tokens_before(7) == 896
    # stage 2: 1024 + n*256 >= 5000 -> n = 16 -> step 24
    assert [bs.batch_at(s) for s in (23, 24)] == [8, 16]
    assert bs.next_change(0) == 8 and bs.next_change(8) == 24 and bs.next_change(24) is None


@pytest.mark.parametrize("stages", STAGED)
def test_steps_for_tokens_consistent(stages):
    bs = BatchSchedule(stages, 32)
    prev = 0
    for D in list(range(0, 3000, 7)) + [4999, 5000, 5001, 5120, 5121, 10_000]:
        s = bs.steps_for_tokens(D)
        assert s >= prev
        prev = s
        assert bs.tokens_before(s) >= D, (D, s)
        if D > 0:
            assert bs.tokens_before(s - 1) < D, (D, s)
    assert bs.steps_for_tokens(0) == 0


def test_from_config():
    cfg = Config(data=DataConfig(seq_len=16, batch_size=4, batch_stages=((640, 8),)))
    bs = BatchSchedule.from_config(cfg)
    assert bs.stages == ((0, 4), (640, 8)) and bs.seq_len == 16
    assert [bs.batch_at(s) for s in range(12)] == [4] * 10 + [8] * 2

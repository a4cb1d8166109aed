"""SP / muP / depth rules against their formulas, and the coordinate check on tiny widths."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsz_lr import parametrization as pz
from bsz_lr.config import Config, ConfigError, apply_overrides, model_size
from bsz_lr.model import Transformer, init_params, param_roles

ROLES = ("embedding", "head", "hidden", "out_proj", "router", "expert", "expert_out", "vector")


def mc(**kw):
    return model_size("nano", **kw)


def test_sp_and_mup_at_the_base_width_are_the_same_model():
    sp = mc(d_model=32, n_heads=2)
    mup = mc(d_model=32, n_heads=2, parametrization="mup", base_d_model=32)
    for role in ROLES:
        assert pz.init_std(mup, role) == pz.init_std(sp, role)
    roles = {r: r for r in ROLES}
    assert pz.lr_multipliers(roles, mup) == pz.lr_multipliers(roles, sp) == {r: 1.0 for r in ROLES}
    assert pz.attn_scale(mup) == pz.attn_scale(sp) == 1 / math.sqrt(16)
    x = jnp.arange(16, dtype=jnp.int32).reshape(2, 8) % 256
    a = Transformer(sp).apply({"params": init_params(sp, jax.random.key(0))}, x)[0]
    b = Transformer(mup).apply({"params": init_params(mup, jax.random.key(0))}, x)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("readout", ["mult", "zero"])
def test_mup_width_rules(readout):
    c = mc(d_model=128, n_heads=8, parametrization="mup", base_d_model=32, base_d_head=4, mup_readout=readout)
    m = 4.0
    assert pz.width_mult(c) == m
    s0 = c.init_std
    assert pz.init_std(c, "hidden") == pytest.approx(s0 / 2) and pz.init_std(c, "expert") == pytest.approx(s0 / 2)
    assert pz.init_std(c, "out_proj") == pytest.approx(s0 / math.sqrt(2 * c.n_layers) / 2)
    assert pz.init_std(c, "embedding") == s0 and pz.init_std(c, "vector") == s0
    lr = pz.lr_multipliers({r: r for r in ROLES}, c)
    assert all(lr[r] == pytest.approx(1 / m) for r in pz.HIDDEN_ROLES)
    assert lr["embedding"] == lr["vector"] == 1.0
    if readout == "mult":
        assert pz.logit_mult(c) == pz.router_mult(c) == pytest.approx(1 / m)
        assert lr["head"] == lr["router"] == 1.0 and pz.init_std(c, "head") == s0
    else:
        assert pz.logit_mult(c) == pz.router_mult(c) == 1.0
        assert lr["head"] == lr["router"] == pytest.approx(1 / m) and pz.init_std(c, "head") == 0.0
    # 1/d_head attention, equal to SP's 1/sqrt(d_head) at the base head dim (4 here; 0: this d_head)
    assert pz.attn_scale(c) == pytest.approx(math.sqrt(4) / 16)
    assert pz.attn_scale(mc(d_model=128, n_heads=8, parametrization="mup", base_d_model=32)) == 1 / math.sqrt(16)
    wd = pz.wd_multipliers({r: r for r in ROLES}, c, "coupled")
    assert all(wd[r] == m for r in pz.HIDDEN_ROLES) and wd["head"] == wd["embedding"] == 1.0
    assert set(pz.wd_multipliers({r: r for r in ROLES}, c, "independent").values()) == {1.0}
    import dataclasses
    plain = dataclasses.replace(c, mup_scale_wd=False)
    assert set(pz.wd_multipliers({r: r for r in ROLES}, plain, "coupled").values()) == {1.0}


def test_mup_init_is_what_the_rules_say():
    c = mc(d_model=128, n_heads=8, parametrization="mup", base_d_model=32, mup_readout="zero", ffn="moe",
           n_experts=4, top_k=2)
    p = init_params(c, jax.random.key(1))
    for (path, role), leaf in zip(jax.tree_util.tree_flatten_with_path(param_roles(p))[0], jax.tree.leaves(p)):
        if role == "vector":
            continue
        want = pz.init_std(c, role)
        got = float(np.std(np.asarray(leaf)))
        assert got == pytest.approx(want, rel=0.15, abs=1e-9), (path, role)


@pytest.mark.parametrize("alpha, branch, lr", [(0.5, 0.5, 0.5), (1.0, 0.25, 1.0), (0.0, 1.0, 1.0)])
def test_depth_rules(alpha, branch, lr):
    c = mc(n_layers=8, base_n_layers=2, depth_alpha=alpha)       # r = 4
    assert pz.branch_mult(c) == pytest.approx(branch)
    mult = pz.lr_multipliers({r: r for r in ROLES}, c)
    assert all(mult[r] == pytest.approx(lr) for r in pz.HIDDEN_ROLES) and mult["embedding"] == 1.0
    # with depth scaling the output projections keep the base depth's init; without, GPT-2's 1/sqrt(2L)
    L = 2 if alpha else 8
    assert pz.init_std(c, "out_proj") == pytest.approx(c.init_std / math.sqrt(2 * L))


def test_horizon_rule_and_bad_values():
    assert pz.horizon_lr(1e-2, 1e6, 8e6, 0.35) == pytest.approx(1e-2 * 8 ** -0.35)
    with pytest.raises(ValueError, match="positive"):
        pz.horizon_lr(1e-2, 0, 8e6, 0.35)
    for kw, msg in [({"parametrization": "ntk"}, "model.parametrization"), ({"mup_readout": "x"}, "mup_readout"),
                    ({"depth_alpha": 2.0}, "depth_alpha"), ({"base_n_layers": -1}, "base_n_layers"),
                    ({"base_d_head": -2}, "base_d_head")]:
        with pytest.raises(ConfigError, match=msg):
            mc(**kw)


@pytest.mark.parametrize("ffn", ["dense", "moe"])
def test_coordinate_check_is_flat_under_mup_and_drifts_under_sp(ffn):
    from bsz_lr.coord_check import coord_check
    from bsz_lr.data import load_corpus
    corpus = load_corpus(Config().data, 256)
    spread = {}
    moe = {"model.ffn": "moe", "model.n_experts": 4, "model.top_k": 2, "model.moe_impl": "dense"} if ffn == "moe" else {}
    for par in ("sp", "mup"):
        res = [coord_check(apply_overrides(Config(), {
            "model.d_model": d, "model.n_heads": d // 16, "model.n_layers": 1, "model.parametrization": par,
            "model.base_d_model": 32, "data.seq_len": 16, "data.batch_size": 4, "optim.lr": 1e-2,
            "optim.eps": 1e-12, **moe}), steps=3, corpus=corpus) for d in (32, 64, 128)]
        extra = {"block_0/moe/router_entropy"} if ffn == "moe" else set()
        assert set(res[0]) == {"embed_out", "logits", "block_0/attn_out", "block_0/ffn_out", "block_0/residual",
                               "block_0/attn/attn_logit_max"} | extra
        spread[par] = {k: max(r[k][-1] for r in res) / min(r[k][-1] for r in res) for k in res[0]}
    assert max(spread["mup"].values()) < 2.0                                # flat within 2x over 4x in width
    assert spread["sp"]["block_0/residual"] > 4.0 and spread["sp"]["logits"] > 2.0   # drifts under SP


def _runs(par, eta_of_width, widths=(32, 64, 128), lrs=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)):
    out = []
    for w in widths:
        for lr in lrs:
            L = 1.5 + 0.05 * np.log(lr / eta_of_width(w)) ** 2
            out.append({"hash": f"{par}{w}{lr}", "config": {"model": {"parametrization": par, "d_model": w},
                                                          "optim": {"lr": lr}},
                        "status": {"status": "completed", "final_val_loss": float(L)}})
    return out


def test_transfer_optima_and_the_width_figure():
    import matplotlib.pyplot as plt

    from bsz_lr.figures_mup import mup_width
    from bsz_lr.laws.transfer import transfer_optima
    runs = _runs("sp", lambda w: 4e-3 * 32 / w) + _runs("mup", lambda w: 4e-3)
    opt = transfer_optima(runs)
    assert [round(opt["sp"][w]["eta_star"], 6) for w in (32, 64, 128)] == [4e-3, 2e-3, 1e-3]
    assert all(opt["mup"][w]["eta_star"] == pytest.approx(4e-3) for w in (32, 64, 128))
    assert {o["how"] for o in opt["mup"].values()} == {"parabola"}
    edge = transfer_optima(_runs("sp", lambda w: 1e-4))["sp"][32]             # below the grid
    assert edge["eta_star"] == 1e-3 and "grid edge" in edge["how"]
    plt.close(mup_width(runs))
    from bsz_lr.figures_mup import mup_depth
    deep = []
    for r in runs:
        r = {**r, "config": {**r["config"], "model": {**r["config"]["model"], "n_layers": r["config"]["model"]["d_model"] // 16,
                                                       "depth_alpha": 0.5 if r["config"]["model"]["parametrization"] == "mup" else 0.0,
                                                       "base_n_layers": 2}}}
        deep.append(r)
    by_depth = transfer_optima(deep, axis="n_layers", arm=lambda c: c["model"]["depth_alpha"])
    assert sorted(by_depth) == [0.0, 0.5] and sorted(by_depth[0.5]) == [2, 4, 8]
    plt.close(mup_depth(deep))


def test_the_coordinate_check_figure_builds_from_runs():
    import matplotlib.pyplot as plt

    from bsz_lr.figures_mup import COORD_KEYS, mup_coord
    runs = [{"hash": f"{p}{f}{d}", "config": {"model": {"ffn": f, "parametrization": p, "d_model": d}},
             "status": {"status": "completed"},
             "metrics": [{"step": s, **{k: 0.1 * s * (d if p == "sp" else 1) for k in COORD_KEYS}} for s in range(1, 21)]}
            for p in ("sp", "mup") for f in ("dense", "moe") for d in (32, 64, 128)]
    fig = mup_coord(runs)
    assert len(fig.axes) == 2 * len(COORD_KEYS)
    plt.close(fig)


def test_the_weight_decay_transfer_figure_builds():
    import matplotlib.pyplot as plt

    from bsz_lr.figures_mup import mup_wd
    from bsz_lr.laws.transfer import transfer_optima
    runs = []
    for rule in (True, False):
        for w in ((32, 64, 128) if rule else (64, 128)):
            for wd in (0.1, 0.3, 1.0, 3.0):
                star = 0.3 if rule else 0.3 * w / 32
                runs.append({"hash": f"{rule}{w}{wd}", "status": {"status": "completed",
                             "final_val_loss": 2.0 + 0.05 * np.log(wd / star) ** 2},
                             "config": {"model": {"parametrization": "mup", "d_model": w, "mup_scale_wd": rule},
                                        "optim": {"lr": 4e-3, "weight_decay": wd}}})
    opt = transfer_optima(runs, arm=lambda c: c["model"]["mup_scale_wd"], x="weight_decay", band=3.5)
    assert all(o["eta_star"] == pytest.approx(0.3, rel=1e-6) for o in opt[True].values())
    assert opt[False][64]["eta_star"] == pytest.approx(0.6, rel=1e-6)
    plt.close(mup_wd(runs))

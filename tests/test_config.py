"""Config validation, overrides, (de)serialisation and hashing (no JAX needed)."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from bsz_lr.config import (SIZES, Config, ConfigError, DataConfig, ModelConfig, OptimConfig,
                           ScheduleConfig, TrainConfig, apply_overrides, config_hash, from_dict,
                           model_size)


def _raises_field(field, fn, *args, **kwargs):
    with pytest.raises(ConfigError) as e:
        fn(*args, **kwargs)
    assert str(e.value).startswith(field + ":"), str(e.value)
    return str(e.value)


# ---------------------------------------------------------------------------
# Validation: the error names the field.

@pytest.mark.parametrize("kwargs, field", [
    (dict(d_model=16, n_heads=3), "model.n_heads"),          # does not divide
    (dict(d_model=18, n_heads=2), "model.n_heads"),          # odd head dim (RoPE)
    (dict(d_model=0), "model.d_model"),
    (dict(vocab_size=-1), "model.vocab_size"),
    (dict(ffn="moe", n_experts=4, top_k=5), "model.top_k"),
    (dict(ffn="moe", n_experts=4, top_k=0), "model.top_k"),
    (dict(ffn="moe", n_experts=0), "model.n_experts"),
    (dict(ffn="mlp"), "model.ffn"),
    (dict(moe_impl="sparse"), "model.moe_impl"),
    (dict(init_std=0.0), "model.init_std"),
    (dict(rope_base=1.0), "model.rope_base"),
])
def test_model_validation_names_field(kwargs, field):
    _raises_field(field, ModelConfig, **kwargs)


def test_n_heads_message_mentions_values():
    msg = _raises_field("model.n_heads", ModelConfig, d_model=16, n_heads=3)
    assert "3" in msg and "16" in msg


def test_top_k_only_checked_for_moe():
    ModelConfig(ffn="dense", n_experts=2, top_k=4)  # irrelevant for a dense FFN
    ModelConfig(ffn="moe", n_experts=4, top_k=4)     # k == E is allowed


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("inf"), float("nan")])
def test_optim_lr_must_be_positive_finite(lr):
    _raises_field("optim.lr", OptimConfig, lr=lr)


@pytest.mark.parametrize("kwargs, field", [
    (dict(b1=1.0), "optim.b1"), (dict(b2=-0.1), "optim.b2"), (dict(eps=0.0), "optim.eps"),
    (dict(weight_decay=-0.1), "optim.weight_decay"), (dict(clip_norm=-1.0), "optim.clip_norm"),
    (dict(name="sgd"), "optim.name"),
])
def test_optim_validation(kwargs, field):
    _raises_field(field, OptimConfig, **kwargs)


@pytest.mark.parametrize("bs", [0, -4])
def test_batch_size_must_be_positive(bs):
    _raises_field("data.batch_size", DataConfig, batch_size=bs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(seq_len=0), "data.seq_len"), (dict(tokenizer="wordpiece"), "data.tokenizer"),
    (dict(bpe_vocab=256), "data.bpe_vocab"), (dict(val_tokens=0), "data.val_tokens"),
    (dict(corpus=""), "data.corpus"),
])
def test_data_validation(kwargs, field):
    _raises_field(field, DataConfig, **kwargs)


@pytest.mark.parametrize("stages", [
    ((1000, 16), (1000, 32)),        # not strictly increasing
    ((2000, 16), (1000, 32)),        # decreasing
    ((0, 16),),                      # must start after 0
    ((1000, 0),),                    # non-positive batch
    ((1000, 16, 3),),                # not a pair
])
def test_batch_stages_validation(stages):
    _raises_field("data.batch_stages", DataConfig, batch_stages=stages)


def test_batch_stages_increasing_ok():
    assert DataConfig(batch_stages=((1000, 16), (5000, 64))).batch_stages[1] == (5000, 64)


@pytest.mark.parametrize("field", ["eval_every", "checkpoint_every"])
def test_every_must_be_multiple_of_scan_steps(field):
    msg = _raises_field("train." + field, TrainConfig, scan_steps=10, **{field: 15})
    assert "scan_steps=10" in msg
    TrainConfig(scan_steps=10, **{field: 30})       # a multiple is fine
    TrainConfig(scan_steps=10, **{field: 0})        # 0 means "only at the end"


@pytest.mark.parametrize("kwargs, field", [
    (dict(tokens=0, steps=0), "train.tokens"), (dict(steps=-1), "train.steps"),
    (dict(scan_steps=0), "train.scan_steps"), (dict(diverge_factor=1.0), "train.diverge_factor"),
    (dict(log_every=0), "train.log_every"), (dict(keep_checkpoints=0), "train.keep_checkpoints"),
])
def test_train_validation(kwargs, field):
    _raises_field(field, TrainConfig, **kwargs)


def test_bad_decay_shape():
    msg = _raises_field("schedule.decay_shape", ScheduleConfig, decay_shape="quadratic")
    assert "quadratic" in msg


def test_warmup_in_steps_and_tokens_is_an_error():
    _raises_field("schedule.warmup_tokens", ScheduleConfig, warmup_steps=10, warmup_tokens=1000)
    ScheduleConfig(warmup_steps=10)
    ScheduleConfig(warmup_tokens=1000)


@pytest.mark.parametrize("kwargs, field", [
    (dict(kind="step"), "schedule.kind"), (dict(decay_fraction=1.5), "schedule.decay_fraction"),
    (dict(final_lr_fraction=-0.1), "schedule.final_lr_fraction"),
    (dict(decay_shape="exp", final_lr_fraction=0.0), "schedule.final_lr_fraction"),
    (dict(warmup_steps=-1), "schedule.warmup_steps"),
])
def test_schedule_validation(kwargs, field):
    _raises_field(field, ScheduleConfig, **kwargs)


# ---------------------------------------------------------------------------
# Overrides.

def test_overrides_coerce_types():
    cfg = apply_overrides(Config(), [
        "model.d_model=128", "optim.lr=3e-3", "model.qk_norm=true", "model.shared_expert=True",
        "optim.weight_decay=0", "train.tokens=1e6", "data.batch_stages=((1000, 16), (5000, 64))",
        "data.corpus=kjv", "model.rope_base=5e5",
    ])
    assert cfg.model.d_model == 128 and type(cfg.model.d_model) is int
    assert cfg.optim.lr == 3e-3 and type(cfg.optim.lr) is float
    assert cfg.model.qk_norm is True and cfg.model.shared_expert is True
    assert cfg.optim.weight_decay == 0.0 and type(cfg.optim.weight_decay) is float
    assert cfg.train.tokens == 1_000_000 and type(cfg.train.tokens) is int
    assert cfg.data.batch_stages == ((1000, 16), (5000, 64))
    assert all(type(s) is tuple for s in cfg.data.batch_stages) and type(cfg.data.batch_stages) is tuple
    assert cfg.data.corpus == "kjv"
    assert cfg.model.rope_base == 5e5
    # untouched fields keep their defaults
    assert cfg.model.n_layers == ModelConfig().n_layers


def test_overrides_from_dict_of_python_values():
    cfg = apply_overrides(Config(), {"optim.lr": 1e-2, "data.batch_stages": [[100, 8]], "model.qk_norm": False})
    assert cfg.optim.lr == 1e-2 and cfg.data.batch_stages == ((100, 8),) and cfg.model.qk_norm is False


def test_string_field_is_not_literal_evaluated():
    assert apply_overrides(Config(), ["data.corpus=123"]).data.corpus == "123"


@pytest.mark.parametrize("override, field", [
    ("model.d_model=abc", "model.d_model"),
    ("model.d_model=1.5", "model.d_model"),
    ("model.qk_norm=1", "model.qk_norm"),
    ("optim.lr=fast", "optim.lr"),
    ("optim.lr=True", "optim.lr"),
    ("data.batch_stages=5", "data.batch_stages"),
])
def test_override_bad_value_names_key(override, field):
    _raises_field(field, apply_overrides, Config(), [override])


def test_override_validation_error_propagates():
    _raises_field("model.n_heads", apply_overrides, Config(), ["model.n_heads=3"])


@pytest.mark.parametrize("key", ["model.d_modl", "optim.learning_rate", "nosection.x", "model.d_model.x"])
def test_unknown_key_names_it(key):
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), [f"{key}=1"])
    assert str(e.value).startswith(key + ":")


def test_section_cannot_be_set_and_missing_equals():
    _raises_field("model", apply_overrides, Config(), ["model=3"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Config(), ["model.d_model"])


def test_model_size_loads_ladder_rung():
    cfg = apply_overrides(Config(), ["model.size=small"])
    for k, v in SIZES["small"].items():
        assert getattr(cfg.model, k) == v
    assert cfg.model == model_size("small")
    # explicit fields override the rung regardless of order
    cfg = apply_overrides(Config(), ["model.n_layers=7", "model.size=small"])
    assert cfg.model.n_layers == 7 and cfg.model.d_model == SIZES["small"]["d_model"]


def test_unknown_size():
    with pytest.raises(ConfigError, match="huge"):
        apply_overrides(Config(), ["model.size=huge"])


# ---------------------------------------------------------------------------
# Round trips and hashing.

def _nondefault_config() -> Config:
    return Config(
        model=ModelConfig(d_model=32, n_layers=3, n_heads=2, ffn="moe", n_experts=4, top_k=1,
                          qk_norm=True, shared_expert=True, moe_z_coef=1e-3, moe_impl="dense"),
        optim=OptimConfig(lr=1e-2, b2=0.99, clip_norm=0.0),
        schedule=ScheduleConfig(kind="cosine", warmup_tokens=4096, final_lr_fraction=0.1),
        data=DataConfig(corpus="kjv", seq_len=128, batch_size=8, batch_stages=((10_000, 16), (50_000, 32)),
                        seed=3),
        train=TrainConfig(steps=123, scan_steps=5, eval_every=50, checkpoint_every=100, seed=7),
    )


@pytest.mark.parametrize("make", [Config, _nondefault_config,
                                  lambda: apply_overrides(Config(), ["model.size=nano"])])
def test_from_dict_round_trip(make):
    cfg = make()
    assert from_dict(cfg.to_dict()) == cfg
    assert from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert config_hash(from_dict(json.loads(json.dumps(cfg.to_dict())))) == config_hash(cfg)


@pytest.mark.parametrize("cfg", [
    Config(schedule=ScheduleConfig(decay_shape="exp", final_lr_fraction=0.1)),
    Config(train=TrainConfig(scan_steps=7, eval_every=14, checkpoint_every=14)),
], ids=["exp-decay", "scan7"])
def test_from_dict_round_trip_jointly_constrained_fields(cfg):
    assert from_dict(cfg.to_dict()) == cfg


def test_batch_stage_elements_coerced_to_int():
    a = apply_overrides(Config(), ["data.batch_stages=((1e3, 16),)"])
    b = apply_overrides(Config(), ["data.batch_stages=((1000, 16),)"])
    assert type(a.data.batch_stages[0][0]) is int
    assert config_hash(a) == config_hash(b)


def test_from_dict_rejects_unknown_key():
    d = Config().to_dict()
    d["model"]["colour"] = "red"
    with pytest.raises(ConfigError, match="model.colour"):
        from_dict(d)


def test_config_hash_stable():
    h = config_hash(Config())
    assert h == config_hash(Config()) and len(h) == 12 and int(h, 16) >= 0
    assert len(config_hash(Config(), length=20)) == 20 and config_hash(Config(), length=20).startswith(h)
    # stable across processes (no dependence on hash randomisation or dict order)
    code = "from bsz_lr.config import Config, config_hash; print(config_hash(Config()))"
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == h


# One valid non-default value for every field.
ALTERNATES = {
    "model": dict(vocab_size=512, d_model=128, n_layers=3, n_heads=8, d_ff=128, qk_norm=True,
                  rope_base=5e5, init_std=0.01, ffn="moe", n_experts=4, top_k=1, d_expert=32,
                  shared_expert=True, moe_aux_coef=0.02, moe_z_coef=1e-3, moe_impl="dense",
                  parametrization="mup", base_d_model=64, base_d_head=8, mup_readout="zero", mup_scale_wd=False, depth_alpha=0.5, base_n_layers=2,
                  compute_dtype="bfloat16", remat=True, scan_layers=True),
    "optim": dict(name="mousse", lr=1e-3, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.0, clip_norm=0.5,
                  wd_mode="independent", decay_roles=("hidden",), momentum=0.9, nesterov=True,
                  matrix_weight_decay=0.0, adam_lr_ratio=0.3, ns_steps=3, ns_dtype="float32", mousse_alpha=0.25,
                  mousse_beta=0.99, mousse_eps=1e-6, mousse_refresh=5, mousse_trace_norm=False, mousse_graft=False,
                  mousse_sides="left"),
    "schedule": dict(kind="cosine", warmup_steps=10, warmup_tokens=1000, decay_fraction=0.5,
                     decay_shape="cosine", final_lr_fraction=0.1, decay_start_tokens=5000,
                     batch_lr_scaling="sqrt"),
    "data": dict(corpus="kjv", tokenizer="bpe", bpe_vocab=512, seq_len=128, batch_size=16,
                 batch_stages=((1000, 64),), val_tokens=1000, seed=1),
    "train": dict(tokens=1000, steps=5, seed=1, scan_steps=5, eval_every=100, eval_tokens=100,
                  log_every=5, checkpoint_every=100, keep_checkpoints=3, diverge_factor=2.0,
                  save_at_tokens=(500, 1000), eval_points=5, microbatches=2, analysis=True),
}
# A branch's init_from and init_tokens are only valid together.
UNCHANGEABLE = {("train", "init_from"), ("train", "init_tokens")}


def test_branch_fields_go_together_and_change_the_hash():
    with pytest.raises(ConfigError, match="train.init_from"):
        apply_overrides(Config(), ["train.init_from=abc"])
    b = apply_overrides(Config(), ["train.init_from=abc", "train.init_tokens=1000"])
    assert config_hash(b) != config_hash(Config()) and from_dict(b.to_dict()) == b


def test_alternates_cover_every_field():
    cfg = Config()
    for sec in dataclasses.fields(cfg):
        names = {f.name for f in dataclasses.fields(getattr(cfg, sec.name))}
        covered = set(ALTERNATES[sec.name]) | {f for s, f in UNCHANGEABLE if s == sec.name}
        assert names == covered, sec.name


@pytest.mark.parametrize("section, name, value",
                         [(s, k, v) for s, d in ALTERNATES.items() for k, v in d.items()])
def test_config_hash_changes_with_every_field(section, name, value):
    base = Config()
    sub = getattr(base, section)
    assert getattr(sub, name) != value
    changed = dataclasses.replace(base, **{section: dataclasses.replace(sub, **{name: value})})
    assert config_hash(changed) != config_hash(base)
    assert from_dict(changed.to_dict()) == changed

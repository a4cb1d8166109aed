"""Run identity and the store as the config evolves: added, changed, renamed and removed fields, revisions.

The committed results (results/) are the fixture: whatever a later issue adds to the config,
they must keep loading as completed, and a re-run of their sweeps must train nothing.
"""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest

import bsz_lr.config as C
from bsz_lr import sweep as sweep_mod
from bsz_lr.config import ConfigError, apply_overrides, config_hash, from_dict
from bsz_lr.store import load_runs, run_state
from bsz_lr.sweep import load_experiment, plan_runs, run_sweep

REPO = Path(__file__).resolve().parent.parent
COMMITTED = [("tiny_lm", "cpu"), ("wsd_branches", "cpu"), ("lr_ladder", "cpu"), ("lr_heldout", "cpu"),
             ("mousse_lr", "cpu"), ("mousse_compare", "cpu"), ("mousse_ablations", "cpu"), ("mup_width", "cpu"),
             ("mup_depth", "cpu-long"), ("mup_coord", "cpu"), ("mup_wd", "cpu-long")]


@pytest.fixture
def results(tmp_path):
    """A copy of the committed results (the test may not touch the real ones)."""
    shutil.copytree(REPO / "results", tmp_path / "results")
    return tmp_path / "results"


def _attempts(root):
    return {p: p.read_text() for p in Path(root).rglob("attempts.jsonl")}


def add_field(monkeypatch, section: str, name: str, default, legacy=None):
    """Patch a new field into a config section, as a later issue would add one (registered with its
    legacy value, which is `default` unless the default changed since)."""
    sec_cls = type(getattr(C.Config(), section))
    new_sec = dataclasses.make_dataclass(sec_cls.__name__, [(name, type(default), dataclasses.field(default=default))],
                                         bases=(sec_cls,), frozen=True)
    new_cfg = dataclasses.make_dataclass("Config", [(section, new_sec, dataclasses.field(default_factory=new_sec))],
                                         bases=(C.Config,), frozen=True)
    monkeypatch.setattr(C, sec_cls.__name__, new_sec)
    monkeypatch.setattr(C, "Config", new_cfg)
    monkeypatch.setattr(sweep_mod, "Config", new_cfg)
    monkeypatch.setitem(C.ADDED_FIELDS, f"{section}.{name}", default if legacy is None else legacy)
    return new_cfg


def test_committed_results_are_completed_under_their_hashes():
    for name, profile in COMMITTED:
        specs = plan_runs(load_experiment(name), profile, REPO / "results")
        assert specs
        for s in specs:
            assert run_state(s.dir)[0] in ("completed", "diverged"), s.dir    # a diverged run is a result


def test_the_hash_of_the_default_config_is_pinned():
    # Changing how configs hash would orphan every stored run: this must never change silently.
    assert config_hash(C.Config()) == "47984d4f659f"


@pytest.mark.parametrize("section, name, default", [
    ("model", "future_knob", "sp"), ("optim", "grad_accum", 1), ("train", "log_grad_noise", False)])
def test_adding_a_field_keeps_every_stored_run_and_a_rerun_trains_nothing(monkeypatch, results, section, name,
                                                                          default):
    new_cfg = add_field(monkeypatch, section, name, default)
    assert getattr(getattr(new_cfg(), section), name) == default
    before = _attempts(results)
    for exp_name, profile in COMMITTED:
        exp = load_experiment(exp_name)
        specs = plan_runs(exp, profile, results)
        assert all(run_state(s.dir)[0] in ("completed", "diverged") for s in specs)   # same hashes, links
        assert run_sweep(exp, profile, results, progress=False) == 0
        assert len(load_runs(results, exp.name, profile)) == len(specs)
    assert _attempts(results) == before                                   # nothing trained
    # Setting the new field gives a new identity, so those runs would train afresh.
    other = {str: "mup", int: 2, bool: True}[type(default)]
    changed = apply_overrides(new_cfg(), {f"{section}.{name}": other})
    assert config_hash(changed) != config_hash(new_cfg())


def test_changing_a_default_later_gives_configs_that_use_it_a_new_identity(monkeypatch, results):
    add_field(monkeypatch, "model", "future_knob", "mup", legacy="sp")
    exp = load_experiment("tiny_lm")
    spec, = plan_runs(exp, "cpu", results)
    assert run_state(spec.dir)[0] == "new"          # the new default is not what the stored run did ...
    stored, = load_runs(results, "tiny_lm", "cpu")  # ... which is still there, read with the legacy value
    assert from_dict(stored["config"]).model.future_knob == "sp"
    assert config_hash(from_dict(stored["config"])) == stored["hash"]


def test_an_unregistered_field_is_refused_with_its_name(monkeypatch):
    add_field(monkeypatch, "model", "colour", "red")
    monkeypatch.delitem(C.ADDED_FIELDS, "model.colour")
    with pytest.raises(ConfigError, match="model.colour.*ADDED_FIELDS"):
        config_hash(C.Config())


def _as_written(d: Path, cfg: dict) -> Path:
    """Store `cfg` as config.json of run `d`, renamed to the hash of the file as written (how an older
    version of bsz_lr, whose fields these were, named it)."""
    (d / "config.json").write_text(json.dumps(cfg))
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    return d.rename(d.with_name(h))


def test_a_removed_or_renamed_field_is_reported_not_quarantined(monkeypatch, results, capsys):
    d = results / "tiny_lm" / "cpu" / "6fc2165ee8d0"
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["init_scale"] = cfg["model"].pop("init_std")       # stored when the field was init_scale
    d = _as_written(d, cfg)
    state, reason = run_state(d)
    assert state == "incompatible" and "model.init_scale" in reason and "removed or renamed" in reason
    assert load_runs(results, "tiny_lm", "cpu") == [] and "incompatible" in capsys.readouterr().out
    # Registered as a rename (stored name -> current name), the run is read under the current name
    # and keeps its identity.
    monkeypatch.setitem(C.RENAMED, "model.init_scale", "model.init_std")
    assert from_dict(cfg).model.init_std == cfg["model"]["init_scale"]
    assert run_state(d) == ("completed", "")
    monkeypatch.delitem(C.RENAMED, "model.init_scale")
    # A field removed at a fixed value: stored runs with that value stay valid, others are refused.
    cfg["model"]["init_std"] = cfg["model"].pop("init_scale")
    cfg["model"]["wiggle"] = 0
    d = _as_written(d, cfg)
    assert run_state(d)[0] == "incompatible"
    monkeypatch.setitem(C.REMOVED, "model.wiggle", 0)
    assert run_state(d) == ("completed", "")
    cfg["model"]["wiggle"] = 1
    d = _as_written(d, cfg)
    state, reason = run_state(d)
    assert state == "incompatible" and "model.wiggle" in reason
    # The sweep leaves such a run where it is and says so (exit 1), never moves or overwrites it.
    monkeypatch.delitem(C.REMOVED, "model.wiggle")
    del cfg["model"]["wiggle"]
    cfg["model"]["colour"] = "red"
    (d / "config.json").write_text(json.dumps(cfg))
    d = d.rename(d.with_name("6fc2165ee8d0"))                          # where the sweep plans the run
    before = (d / "status.json").read_text()
    assert run_state(d)[0] == "incompatible"
    assert run_sweep(load_experiment("tiny_lm"), "cpu", results, progress=False) == 1
    assert (d / "status.json").read_text() == before and not list(d.parent.glob("*.corrupt-*"))


def test_a_revision_renames_the_configs_it_affects_and_marks_their_old_runs_stale(tmp_path):
    top1 = apply_overrides(C.Config(), {"model.ffn": "moe", "model.top_k": 1, "model.n_experts": 4})
    top2 = apply_overrides(top1, {"model.top_k": 2})
    assert config_hash(top1) != config_hash(top1, revisions=False)         # affected by moe-top1-switch-gate
    assert config_hash(top2) == config_hash(top2, revisions=False)         # not affected
    old = tmp_path / config_hash(top1, revisions=False)                    # a run stored before the fix
    old.mkdir()
    (old / "config.json").write_text(json.dumps(top1.to_dict()))
    (old / "status.json").write_text(json.dumps({"status": "completed"}))
    state, reason = run_state(old)
    assert state == "stale" and "moe-top1-switch-gate" in reason


def test_run_state_sees_a_file_changed_after_it_was_checked(results):
    """run_state caches its checks by file identity: a change after a check is seen, in place or not."""
    d = results / "tiny_lm" / "cpu" / "6fc2165ee8d0"
    assert run_state(d) == ("completed", "")
    text = (d / "config.json").read_text()
    assert '"seed": 0' in text
    with open(d / "config.json", "w") as f:                   # in place, the same size
        f.write(text.replace('"seed": 0', '"seed": 1', 1))
    assert run_state(d)[0] == "corrupt"
    (d / "config.json").write_text(text)
    assert run_state(d) == ("completed", "")
    with open(d / "metrics.jsonl", "a") as f:
        f.write("{}\n")
    assert run_state(d) == ("corrupt", "metrics.jsonl does not match the checksum in status.json")

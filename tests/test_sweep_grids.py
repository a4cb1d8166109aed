"""Non-cartesian grids (lists of grids, zipped keys) and values derived from another experiment."""

import json

import pytest

from bsz_lr.cli import main
from bsz_lr.config import ConfigError, config_hash
from bsz_lr.sweep import DependencyPending, dependencies, expand, grid_points, load_experiment, plan_runs


def test_grid_points_product_zip_and_union():
    g = {("a", "b"): [(1, 2), (3, 4)], "c": [5, 6]}
    assert grid_points(g) == [{"a": 1, "b": 2, "c": 5}, {"a": 1, "b": 2, "c": 6},
                              {"a": 3, "b": 4, "c": 5}, {"a": 3, "b": 4, "c": 6}]
    union = grid_points([{"x": [1, 2]}, {"x": [2, 3]}])
    assert union == [{"x": 1}, {"x": 2}, {"x": 3}]            # duplicates once, in order
    assert grid_points({}) == [{}]


def write(tmp_path, name, text):
    f = tmp_path / f"{name}.py"
    f.write_text(text)
    return f


def test_per_size_batch_lists_and_lrs_expand(tmp_path):
    f = write(tmp_path, "e", 'PROFILES = {"smoke": {"train.steps": 10}}\n'
              'GRID = [{("model.size", "optim.lr"): [("nano", 1e-2)], "data.batch_size": [4, 8]},\n'
              '        {("model.size", "optim.lr"): [("micro", 5e-3)], "data.batch_size": [8, 16, 32]}]\n')
    cfgs = expand(load_experiment(str(f)), "smoke")
    got = [(c.model.d_model, c.optim.lr, c.data.batch_size) for c in cfgs]
    assert got == [(16, 1e-2, 4), (16, 1e-2, 8), (32, 5e-3, 8), (32, 5e-3, 16), (32, 5e-3, 32)]


@pytest.mark.parametrize("grid, msg", [
    ('[]', "empty list of grids"),
    ('[{"optim.lr": 1}]', r"GRID\[0\]\['optim.lr'\] must be a list"),
    ('{("optim.lr", "train.seed"): [(1e-3,)]}', "must be a tuple of 2"),
    ('{("optim.lr", 3): [(1e-3, 1)]}', "tuple key must name dotted fields"),
])
def test_bad_grids_are_one_line_errors(tmp_path, grid, msg):
    f = write(tmp_path, "e", f'PROFILES = {{"smoke": {{}}}}\nGRID = {grid}\n')
    with pytest.raises(ConfigError, match=msg):
        load_experiment(str(f))


DEP = '''
NAME = "dep"
BASE = {"model.size": "nano", "data.seq_len": 32, "data.batch_size": 4, "train.steps": 4,
        "train.eval_every": 0, "train.checkpoint_every": 0, "train.eval_tokens": 1024, "train.scan_steps": 2}
GRID = {"optim.lr": [1e-3, 2e-3]}
PROFILES = {"smoke": {}}
'''
USER = '''
from bsz_lr.sweep import Derived
NAME = "user"
# the batch is derived from the dependency's stored results: twice its runs' final step count
B = Derived("dep", lambda runs: 2 * max(r["status"]["step"] for r in runs))
BASE = {"model.size": "nano", "data.seq_len": 32, "train.steps": 2, "train.eval_every": 0,
        "train.checkpoint_every": 0, "train.eval_tokens": 1024, "train.scan_steps": 2}
GRID = {"data.batch_size": [B], "optim.lr": [1e-3]}
PROFILES = {"smoke": {}}
'''


def test_derived_values_wait_for_their_dependency_and_follow_its_results(tmp_path, capsys):
    write(tmp_path, "dep", DEP)
    fu = write(tmp_path, "user", USER)
    user, root = load_experiment(str(fu)), tmp_path / "r"
    assert dependencies(user) == {"dep"}
    with pytest.raises(DependencyPending, match="derived from dep/smoke, which has 0 of 2 runs done"):
        plan_runs(user, "smoke", root)
    # dependencies run first when given together, whatever the order on the command line
    assert main(["sweep", str(fu), str(tmp_path / "dep.py"), "--profile", "smoke", "--runs", str(root),
                 "--no-progress", "--workers", "1"]) == 0
    (spec,) = plan_runs(user, "smoke", root)
    assert spec.cfg.data.batch_size == 8
    assert json.loads((spec.dir / "status.json").read_text())["status"] == "completed"
    # the dependency changes: the user waits for its new results, then gets a new value and hash
    write(tmp_path, "dep", DEP.replace('"train.steps": 4', '"train.steps": 6'))
    with pytest.raises(DependencyPending, match="0 of 2 runs done"):
        plan_runs(user, "smoke", root)
    assert main(["sweep", str(tmp_path / "dep.py"), str(fu), "--profile", "smoke", "--runs", str(root),
                 "--no-progress", "--workers", "1"]) == 0
    (spec2,) = plan_runs(user, "smoke", root)
    assert spec2.cfg.data.batch_size == 12 and config_hash(spec2.cfg) != config_hash(spec.cfg)
    assert spec.dir.exists() and spec2.dir.exists()
    assert "user/smoke: 1 completed" in capsys.readouterr().out


def test_derived_value_errors_are_reported_and_the_sweep_goes_on(tmp_path, capsys):
    write(tmp_path, "dep", DEP)
    bad = write(tmp_path, "user", USER.replace('lambda runs: 2 * max(r["status"]["step"] for r in runs)',
                                                'lambda runs: int("no fit")'))
    other = write(tmp_path, "other", DEP.replace('NAME = "dep"', 'NAME = "other"'))
    code = main(["sweep", str(bad), str(tmp_path / "dep.py"), str(other), "--profile", "smoke",
                 "--runs", str(tmp_path / "r"), "--no-progress", "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert "experiment user: cannot derive a value from dep/smoke: invalid literal" in captured.err
    assert "other/smoke: 2 completed" in captured.out
    assert not (tmp_path / "r" / "user").exists()


def test_derived_values_in_a_cycle_are_one_line_errors(tmp_path):
    a = 'from bsz_lr.sweep import Derived\nNAME = "a"\nGRID = {"optim.lr": [Derived("b", lambda runs: 1e-3)]}\n' \
        'PROFILES = {"smoke": {"train.steps": 2}}\n'
    fa = write(tmp_path, "a", a)
    write(tmp_path, "b", a.replace('NAME = "a"', 'NAME = "b"').replace('Derived("b"', 'Derived("a"'))
    with pytest.raises(ConfigError, match="cycle"):
        plan_runs(load_experiment(str(fa)), "smoke", tmp_path / "r")


def test_every_profile_of_every_experiment_file_plans(tmp_path):
    # A bad shape in a profile nobody ran yet (cpu-long, gpu) must fail here, not on a cluster.
    from bsz_lr.sweep import EXPERIMENTS_DIR
    n = 0
    for f in sorted(EXPERIMENTS_DIR.glob("*.py")):
        exp = load_experiment(str(f))
        for prof in exp.profiles:
            if dependencies(exp, prof):
                continue                  # derived: planned from its dependency's results (tested above)
            assert plan_runs(exp, prof, tmp_path), (f.name, prof)
            n += 1
    assert n >= 15

"""Command line, experiment files and the figure pipeline (smoke shapes only)."""

import json

import pytest

from bsz_lr.cli import main
from bsz_lr.config import ConfigError
from bsz_lr.figures import build_all
from bsz_lr.store import load_runs
from bsz_lr.sweep import expand, load_experiment, run_sweep

from .conftest import TINY


@pytest.mark.parametrize("override,msg", [
    ("model.n_heads=3", "model.n_heads: 3 heads do not divide d_model"),
    ("optim.lr=-1", "optim.lr: must be positive"),
    ("data.batch_size=0", "data.batch_size: must be positive"),
    ("model.nope=1", "model.nope: unknown field"),
    ("data.corpus=/no/such/file", "data.corpus: '/no/such/file' is not a known corpus"),
    ("data.seq_len=5000000", "data.seq_len: corpus 'austen' has"),
])
def test_bad_input_is_one_line_exit_2(override, msg, capsys, tmp_path):
    assert main(["train", "--no-progress", "--out", str(tmp_path / "r"), override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bsz_lr: error: " + msg) and "\n" not in err
    assert not (tmp_path / "r").exists()        # nothing written for a run that cannot start


def test_train_command_runs_and_reports(tmp_path, capsys):
    assert main(["train", "--no-progress", "--out", str(tmp_path / "r"), *TINY]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "completed" and out["run_dir"] == str(tmp_path / "r")


def test_experiment_expansion_and_store_and_figures(tmp_path, capsys):
    exp = load_experiment("tiny_lm")
    cfgs = expand(exp, "smoke")
    assert len(cfgs) == 1 and cfgs[0].model.d_model == 16
    with pytest.raises(ConfigError, match="unknown profile"):
        expand(exp, "nope")
    assert run_sweep(exp, "smoke", tmp_path / "res", progress=False) == 0
    # A second pass finds the run completed and trains nothing.
    assert run_sweep(exp, "smoke", tmp_path / "res", progress=False) == 0
    assert capsys.readouterr().out.count(": completed") == 1
    runs = load_runs(tmp_path / "res", "tiny_lm", "smoke")
    assert len(runs) == 1 and runs[0]["status"]["status"] == "completed"
    manifest = build_all(tmp_path / "res", tmp_path / "figs")
    assert manifest["tiny_lm_loss"]["runs"] == [runs[0]["hash"]]
    assert (tmp_path / "figs" / "tiny_lm_loss.png").stat().st_size > 10_000
    assert (tmp_path / "figs" / "tiny_lm_loss.pdf").exists()


def test_grid_is_a_cartesian_product(tmp_path):
    f = tmp_path / "g.py"
    f.write_text('BASE = {"model.size": "nano"}\nGRID = {"optim.lr": [1e-3, 2e-3], "data.batch_size": [4, 8, 16]}\n'
                 'PROFILES = {"smoke": {"train.steps": 10}}\n')
    cfgs = expand(load_experiment(str(f)), "smoke")
    assert len(cfgs) == 6 and len({(c.optim.lr, c.data.batch_size) for c in cfgs}) == 6
    assert all(c.train.steps == 10 for c in cfgs)


GOOD = 'BASE = {"model.size": "nano"}\nGRID = {"optim.lr": [1e-3]}\nPROFILES = {"smoke": {"train.steps": 10}}\n'


@pytest.mark.parametrize("text, msg", [
    ("BASE = {\n  'a': 1,,\n}\n", r"exp.py:2: syntax error"),
    ("import math\nBASE = {}\nX = 1 / 0\n", r"exp.py:3: ZeroDivisionError: division by zero"),
    (GOOD.replace("[1e-3]", "1e-3"), r"GRID\['optim.lr'\] must be a list of values, got 0.001"),
    (GOOD.replace("[1e-3]", "[]"), r"GRID\['optim.lr'\] is an empty list"),
    (GOOD + 'BRANCHES = {"fraction": 0.2}\n', r"BRANCHES: at_tokens must be a non-empty list"),
    (GOOD.replace('{"smoke": {"train.steps": 10}}', '{"smoke": ["train.steps=10"]}'),
     r"profile 'smoke' must be a dict of overrides, got list"),
    (GOOD.replace('"nano"}', '"nano", "model.init_std": 1e400}'), r"model.init_std: must be positive and finite"),
])
def test_bad_experiment_files_are_one_line_errors(tmp_path, capsys, text, msg):
    import re
    f = tmp_path / "exp.py"
    f.write_text(text)
    assert main(["sweep", str(f), "--profile", "smoke", "--runs", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("bsz_lr: error: ") and re.search(msg, err), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, msg", [
    (["--workers", "abc"], "argument --workers: expected a positive integer, got 'abc'"),
    (["--workers", "0"], "argument --workers: must be >= 1, got 0"),
    (["--vmap", "0"], "argument --vmap: must be >= 1, got 0"),
    (["--runs", "FILE"], "--runs {FILE}: is a file, not a directory"),
    (["--runs", "/proc/bsz_lr_results"], "--runs /proc/bsz_lr_results: cannot write there"),
    (["--profile", "nope"], "experiment exp: no profile nope; known: smoke"),
])
def test_bad_sweep_arguments_are_one_line_errors(tmp_path, capsys, args, msg):
    f = tmp_path / "exp.py"
    f.write_text(GOOD)
    (tmp_path / "FILE").write_text("")
    args = [a.replace("FILE", str(tmp_path / "FILE")) for a in args]
    msg = msg.replace("{FILE}", str(tmp_path / "FILE"))
    with pytest.raises(SystemExit) if args[0] in ("--workers", "--vmap") else _nothing():
        code = main(["sweep", str(f), "--runs", str(tmp_path / "r"), "--profile", "smoke", "--no-progress", *args])
        assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert msg in err[-1], err


def _nothing():
    import contextlib
    return contextlib.nullcontext()


def test_train_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["train", "--no-progress", "--out", str(tmp_path / "f" / "run"), *TINY]) == 2
    assert f"--out {tmp_path / 'f' / 'run'}: {tmp_path / 'f'} is a file" in capsys.readouterr().err


def test_skip_missing_profile_goes_on_with_the_others(tmp_path, capsys):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(GOOD.replace('"smoke"', '"cpu"'))
    b.write_text(GOOD)
    assert main(["sweep", str(a), str(b), "--profile", "smoke", "--runs", str(tmp_path / "r"), "--no-progress"]) == 2
    assert main(["sweep", str(a), str(b), "--profile", "smoke", "--skip-missing", "--runs", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "experiment a: no profile smoke; known: cpu; skipped" in captured.err
    assert "b/smoke: 1 completed" in captured.out


def test_skip_missing_with_no_experiment_left_is_an_error(tmp_path, capsys):
    a = tmp_path / "a.py"
    a.write_text(GOOD)
    assert main(["sweep", str(a), "--profile", "cpuu", "--skip-missing", "--runs", str(tmp_path / "r")]) == 2
    assert "--profile cpuu: none of the 1 experiments defines it" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()

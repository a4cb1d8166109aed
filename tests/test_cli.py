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

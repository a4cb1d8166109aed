"""The results table (CSV): export of a stored sweep and a read round-trip."""

import json

from bsz_lr.cli import main
from bsz_lr.results_table import COLUMNS, read_table, write_table
from bsz_lr.store import load_runs
from bsz_lr.sweep import load_experiment, run_sweep


def test_export_and_read_round_trip(tmp_path, capsys):
    exp = load_experiment("wsd_branches")
    assert run_sweep(exp, "smoke", tmp_path / "r", progress=False) == 0
    out = tmp_path / "t.csv"
    assert main(["export", "wsd_branches", "--profile", "smoke", "--runs", str(tmp_path / "r"), "--out", str(out)]) == 0
    assert "wsd_branches/smoke: 4 finished runs" in capsys.readouterr().out
    rows = read_table(out)
    runs = {r["hash"]: r for r in load_runs(tmp_path / "r", "wsd_branches", "smoke", with_metrics=False)}
    assert len(rows) == 4 and set(rows[0]) == set(COLUMNS)
    for row in rows:
        r = runs[row["run"]]
        assert row["loss"] == r["status"]["final_val_loss"] and row["tokens"] == r["status"]["tokens"]
        assert row["lr"] == r["config"]["optim"]["lr"]
        assert row["batch_tokens"] == r["config"]["data"]["batch_size"] * r["config"]["data"]["seq_len"]
        assert row["n_params"] == r["status"]["params"]["non_embedding"] == row["n_params_total"]
        assert "step" in json.loads(open(row["curve"]).readline())              # the curve file is there
        sch = r["config"]["schedule"]
        assert row["warmup_tokens"] == (sch["warmup_tokens"] or sch["warmup_steps"] * row["batch_tokens"])
        if sch["kind"] == "constant":                                            # the trunk: all of it
            assert row["stable_tokens"] == row["tokens"]
        else:                                                                    # a WSD branch: to its decay
            start = sch["decay_start_tokens"] or row["tokens"] * (1 - sch["decay_fraction"])
            assert sch["kind"] == "wsd" and row["stable_tokens"] == int(start) < row["tokens"]
    assert sum(bool(r["init_from"]) for r in rows) == 3                      # the decay branches
    # a diverged run has an empty loss, read back as None
    write_table([{**rows[0], "loss": "", "status": "diverged"}], tmp_path / "d.csv")
    assert read_table(tmp_path / "d.csv")[0]["loss"] is None

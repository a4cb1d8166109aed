"""advise.py: the LR advice on synthetic results tables from a known law, every bad-row report,
and the command's errors."""

import csv
import json
import math

import numpy as np
import pytest

from bsz_lr.advise import advise, clean_rows, curve_advice, lr_advice, plot_advice
from bsz_lr.cli import main
from bsz_lr.laws import FitError
from bsz_lr.results_table import COLUMNS

A, B, C = -0.3, -0.25, 30.0          # eta* = C N^A D^B


def table(noise=0.0, seed=0, batches=(1024,), sizes=(2e4, 5e4, 1.2e5, 2.6e5), Ds=(1e5, 2e5, 4e5)):
    rng, rows = np.random.default_rng(seed), []
    for batch in batches:
        for N in sizes:
            for D in Ds:
                eta = C * N ** A * D ** B * (batch / 1024) ** 0.5
                for f in (1 / 4, 1 / 2, 1, 2, 4):
                    lr = float(f"{eta * f * 1.13:.4g}")          # the grid is not centred on the optimum
                    L = 2.0 + 0.03 * math.log(lr / eta) ** 2 + noise * rng.normal()
                    rows.append({"run": f"{batch}-{N:g}-{D:g}-{lr:g}", "n_params": str(int(N)), "tokens": str(int(D)),
                                 "lr": str(lr), "batch_tokens": str(batch), "loss": str(L), "status": "completed"})
    return rows


def test_the_lr_law_and_the_target_optimum_are_recovered():
    target = (1e6, 8e5)
    res = advise(table(), *target, n_boot=200)
    (a,) = res["lr"]
    assert a["law"]["a"] == pytest.approx(A, abs=1e-6) and a["law"]["b"] == pytest.approx(B, abs=1e-6)
    assert a["eta"] == pytest.approx(C * target[0] ** A * target[1] ** B, rel=1e-6)
    assert a["band_eta"] == pytest.approx(a["eta"], rel=0.3)             # the second opinion agrees roughly
    assert "N = 1e+06 is 3.8x the largest in the table" in a["outside"][0]
    assert "D = 8e+05 is 2x the largest" in a["outside"][1]
    # with noise: exponents within 0.05 and the truth inside the 90% interval
    res = advise(table(noise=0.002, seed=3), *target, n_boot=400)
    (a,) = res["lr"]
    truth = C * target[0] ** A * target[1] ** B
    assert abs(a["law"]["a"] - A) < 0.05 and abs(a["law"]["b"] - B) < 0.05
    assert a["interval"][0] < truth < a["interval"][1] and a["eta"] == pytest.approx(truth, rel=0.15)


def test_each_batch_size_gets_its_own_law():
    res = advise(table(batches=(1024, 4096)), 1e6, 8e5, n_boot=0)
    assert [a["batch_tokens"] for a in res["lr"]] == [1024, 4096]
    assert res["lr"][1]["eta"] == pytest.approx(2 * res["lr"][0]["eta"], rel=1e-6)


def test_bad_rows_are_reported_by_line_and_left_out():
    rows = table()
    rows[0]["loss"] = "nan"
    rows[1]["lr"] = "-1e-3"
    rows[2]["n_params"] = ""
    rows[3] = {**rows[4]}                                   # the same run twice
    rows[5]["loss"], rows[5]["status"] = "", "diverged"     # a diverged run: kept, as +inf
    rows[6]["loss"] = ""
    rows[7]["tokens"] = "many"
    good, bad = clean_rows(rows)
    assert [(p.line, p.reason) for p in bad] == [
        (2, "loss is NaN"), (3, "lr must be positive and finite, got -1e-3"), (4, "N is missing".replace("N", "n_params")),
        (6, "duplicate of line 5"), (8, "loss is missing (and the run is not marked diverged)"),
        (9, "tokens is not a number ('many')")]
    assert len(good) == len(rows) - 6 and any(r["loss"] == math.inf for r in good)
    res = advise(rows, 1e6, 8e5, n_boot=0)
    assert res["rows"]["left_out"] == 6 and res["rows"]["problems"][0] == {"line": 2, "reason": "loss is NaN"}


def test_too_little_for_a_law_names_what_is_missing():
    one_size = table(sizes=(5e4,))
    with pytest.raises(FitError, match="need >= 4 finite positive"):
        lr_advice(clean_rows(one_size)[0], 1e6, 8e5)
    edge = [r for r in table() if float(r["lr"]) < 0.5 * C * float(r["n_params"]) ** A * float(r["tokens"]) ** B]
    with pytest.raises(FitError, match=r"0 \(N, D\) groups with an interior optimum, 12 without"):
        lr_advice(clean_rows(edge)[0], 1e6, 8e5)
    with pytest.raises(FitError, match="no usable rows"):
        lr_advice([], 1e6, 8e5)
    # batch sizes that fail for the same reason are named together, the reason said once
    two = table(sizes=(5e4,), batches=(1024, 2048))
    with pytest.raises(FitError, match=r"LR law: batches 1,024, 2,048 tokens: Eq. 6: need >= 4 [^;]*\(3 \(N, D\) "
                                       r"groups with an interior optimum, 0 without\)$"):
        lr_advice(clean_rows(two)[0], 1e6, 8e5)


def test_the_command(tmp_path, capsys):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(table())
    assert main(["advise", "--results", str(path), "--target-params", "1e6", "--target-tokens", "8e5"]) == 0
    out = capsys.readouterr().out
    assert "peak LR at batch 1,024 tokens:" in out and "rows: 60 used, 0 left out" in out
    assert main(["advise", "--results", str(path), "--target-params", "1e6", "--target-tokens", "8e5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lr"][0]["law"]["points"] == 12
    assert main(["advise", "--results", str(path), "--target-params", "1e6", "--target-tokens", "8e5",
                 "--plot", str(tmp_path / "fits.png")]) == 0
    assert (tmp_path / "fits.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(["advise", "--results", str(tmp_path / "no.csv"), "--target-params", "1", "--target-tokens", "1"]) == 2
    assert "--results: no such file" in capsys.readouterr().err
    path.write_text("run,n_params\nx,1\n")
    assert main(["advise", "--results", str(path), "--target-params", "1e6", "--target-tokens", "8e5"]) == 2
    assert "advise: no usable rows" in capsys.readouterr().err


def test_other_peoples_columns_and_units(tmp_path, capsys):
    """Another lab's table: batch in sequences with a sequence length, tokens in millions, the LR
    under another name, N as total parameters with a known embedding size to subtract."""
    mine = table()
    theirs = [{"id": r["run"], "params": str(int(r["n_params"]) + 256 * 64), "D_M": str(int(r["tokens"]) / 1e6),
               "peak_lr": r["lr"], "bsz": "16", "ctx": "64", "val": r["loss"]} for r in mine]
    theirs[3]["bsz"] = ""                                                 # one row cannot be mapped
    path = tmp_path / "theirs.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(theirs[0]))
        w.writeheader()
        w.writerows(theirs)
    cols = "run=id,n_params=params-256*64,tokens=D_M*1e6,lr=peak_lr,batch_tokens=bsz*ctx,loss=val"
    assert main(["advise", "--results", str(path), "--columns", cols, "--target-params", "1e6",
                 "--target-tokens", "8e5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    ref = advise(mine, 1e6, 8e5)
    assert res["lr"][0]["eta"] == pytest.approx(ref["lr"][0]["eta"], rel=1e-3)   # one row fewer
    assert res["rows"]["problems"] == [{"line": 5, "reason": "batch_tokens = bsz*ctx: column bsz is empty"}]
    for bad, msg in (("lr=learning_rate", "the table has no column 'learning_rate'"),
                     ("speed=val", "NAME one of"), ("lr=__import__('os')", "only column names, numbers"),
                     ("lr=peak_lr*", "cannot read")):
        assert main(["advise", "--results", str(path), "--columns", bad, "--target-params", "1",
                     "--target-tokens", "1"]) == 2
        assert msg in capsys.readouterr().err


def batch_table(noise=0.0, seed=0, sizes=(2e4, 5e4, 1.2e5), Ds=(1e5, 2e5, 4e5, 8e5)):
    """Runs on a shared grid of 8 batch sizes (2^13 .. 2^20 tokens) x 3 LRs per (N, D), with the
    lowest loss at B_opt = 2 N^0.4 D^0.5 tokens per step and at LR 1e-3."""
    rng, rows = np.random.default_rng(seed), []
    for N in sizes:
        for D in Ds:
            b_opt = 2.0 * N ** 0.4 * D ** 0.5
            for B in (2.0 ** k for k in range(13, 21)):
                for flr in (0.5, 1, 2):
                    L = 2.0 + 0.02 * math.log(B / b_opt) ** 2 + 0.01 * math.log(flr) ** 2 + noise * rng.normal()
                    rows.append({"run": f"{N:g}-{D:g}-{B:g}-{flr}", "n_params": str(int(N)), "tokens": str(int(D)),
                                 "lr": str(1e-3 * flr), "batch_tokens": str(B), "loss": str(L)})
    return rows


def test_the_batch_law_and_schedule_are_recovered(tmp_path):
    truth = lambda N, D: 2.0 * N ** 0.4 * D ** 0.5
    res = advise(batch_table(), 1e6, 3.2e6, n_boot=200)
    b = res["batch"]
    assert b["law"]["a"] == pytest.approx(0.4, abs=0.02) and b["law"]["b"] == pytest.approx(0.5, abs=0.02)
    assert b["batch_tokens"] == pytest.approx(truth(1e6, 3.2e6), rel=0.1)
    assert [m["until_tokens"] for m in b["schedule"]] == [4e5, 8e5, 1.6e6, 3.2e6]
    ms = [m["batch_tokens"] for m in b["schedule"]]
    assert ms == sorted(ms) and ms == pytest.approx([truth(1e6, d) for d in (4e5, 8e5, 1.6e6, 3.2e6)], rel=0.1)
    assert b["interval"][0] < truth(1e6, 3.2e6) < b["interval"][1]
    assert all(m["interval"][0] < m["batch_tokens"] < m["interval"][1] for m in b["schedule"])
    assert b["outside"] == ["N = 1e+06 is 8.3x the largest in the table (1.2e+05)",
                            "D = 3.2e+06 is 4x the largest in the table (8e+05)"]
    assert res["lr"] and all(a["eta"] == pytest.approx(1e-3, rel=1e-6) for a in res["lr"])   # LR per batch
    plot_advice(clean_rows(batch_table())[0], res, tmp_path / "b.png")      # LR rows and the batch row
    assert (tmp_path / "b.png").stat().st_size > 10_000
    # one model size: B_opt = c D^b
    one = advise(batch_table(sizes=(5e4,)), 5e4, 3.2e6, n_boot=100)["batch"]
    assert one["law"]["a"] == 0 and one["law"]["b"] == pytest.approx(0.5, abs=0.02)
    # fewer than 3 batch sizes: said, not fitted; batches all on one side of the optimum: said why
    assert "fewer than 3 batch sizes" in advise(table(), 1e6, 8e5, n_boot=0)["batch"]["note"]
    low = [r for r in batch_table() if float(r["batch_tokens"]) <= 2 ** 15]
    note = advise(low, 1e6, 3.2e6, n_boot=0)["batch"]["note"]
    assert "no (N, D) group with >= 3 batch sizes and an interior optimum (12 groups with an edge optimum)" in note


def curve_table(tmp_path, runs):
    """Results-table rows for store-shaped runs, each pointing to its curve written under tmp_path
    (paths relative to the table's folder)."""
    (tmp_path / "curves").mkdir(exist_ok=True)
    rows = []
    for r in runs:
        rel = f"curves/{r['hash']}.jsonl"
        with open(tmp_path / rel, "w") as f:
            f.writelines(json.dumps(m) + "\n" for m in r["metrics"])
        c, last = r["config"], r["metrics"][-1]
        rows.append({"run": r["hash"], "n_params": str(r["status"]["params"]["non_embedding"]),
                     "tokens": str(last["tokens"]), "lr": str(c["optim"]["lr"]),
                     "batch_tokens": str(c["data"]["batch_size"] * c["data"]["seq_len"]),
                     "loss": str(last["val_loss"]), "curve": rel, "warmup_tokens": "0", "stable_tokens": ""})
    return rows


def test_batch_laws_and_schedules_from_loss_curves(tmp_path, capsys):
    from bsz_lr.laws.analysis import analyse_size, dynamic_stages, run_curves
    from .synthetic_sweep import synth_runs
    runs = synth_runs()
    rows = curve_table(tmp_path, runs)
    c = advise(rows, 64_000, 750_000, base=tmp_path, n_boot=20)["batch_curves"]
    ref = analyse_size(run_curves(runs), n_boot=20, loo=False)         # the batch paper's own analysis
    (size,) = c["sizes"]
    assert size["n_params"] == 64_000 and size["batches"] == 7 and not c["problems"]
    assert size["laws"]["B_opt"]["k"] == pytest.approx(ref.bopt_law.k) and size["laws"]["B_opt"]["k"] > 0
    assert size["laws"]["B_min"]["k"] == pytest.approx(ref.bmin_law.k) and size["laws"]["B_min"]["k"] > 0
    # B_opt(L) against the mechanism's: the batch with the fewest tokens to reach L
    L0, sigma, A, alpha, Bc = 1.2, 200.0, 40.0, 0.3, 2048.0
    b = np.geomspace(100, 1e5, 20_000)
    fitted = [t for t in size["targets"] if "B_opt" in t]
    assert len(fitted) >= 3
    for t in fitted:
        with np.errstate(invalid="ignore"):
            E = (1 + b / Bc) * np.where(t["loss"] - L0 - sigma / b > 0, (t["loss"] - L0 - sigma / b) / A, np.nan) ** (-1 / alpha)
        assert t["B_opt"] == pytest.approx(b[np.nanargmin(E)], rel=0.15) and t["B_opt"] > t["B_min"]
    sched = [m["B_opt"] for m in c["loss_schedule"]]
    assert sched == sorted(sched) and c["from_n_params"] == 64_000
    dyn = dynamic_stages(ref, 750_000)
    ts = c["token_schedule"]
    assert ts["batch_tokens"] == dyn["batch_size"] * 64
    assert [(m["from_tokens"], m["batch_tokens"]) for m in ts["stages"]] == [(t, x * 64) for t, x in dyn["batch_stages"]]
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["advise", "--results", str(path), "--target-params", "64000", "--target-tokens", "750000",
                 "--plot", str(tmp_path / "fits.png")]) == 0
    assert (tmp_path / "fits.png").stat().st_size > 10_000       # no LR law here: the batch row alone
    out = capsys.readouterr().out
    assert "B_opt(L) = " in out and "schedule by loss" in out and "schedule by tokens" in out


def test_curve_problems_are_reported_and_left_out(tmp_path):
    from .synthetic_sweep import synth_runs
    rows = curve_table(tmp_path, synth_runs())
    better = {**rows[0], "run": "x", "loss": "0.5", "curve": "curves/missing.jsonl", "lr": "1e-3"}
    (tmp_path / "curves" / "bad.jsonl").write_text("{not json\n")
    bad = {**rows[1], "run": "y", "loss": "0.5", "curve": "curves/bad.jsonl", "lr": "1e-3"}
    odd = {**rows[2], "run": "z", "loss": "0.5", "stable_tokens": "abc", "lr": "1e-3"}
    good, _ = clean_rows(rows + [better, bad, odd])
    c = curve_advice(good, 64_000, 750_000, base=tmp_path, n_boot=10)
    reasons = {p["line"]: p["reason"] for p in c["problems"]}
    assert reasons == {9: "curve curves/missing.jsonl: no such file",
                       10: "curve curves/bad.jsonl: unreadable (JSONDecodeError: Expecting property name "
                           "enclosed in double quotes: line 1 column 2 (char 1))",
                       11: "stable_tokens must be a number >= 0, got 'abc'"}
    assert c["sizes"][0]["batches"] == 4 and "the E(S) fit needs >= 6" in c["sizes"][0]["note"]
    assert "no model size has readable curves at >= 6 batch sizes" in c["note"]
    # a stable phase that ends before the second evaluation leaves the curve out, said why
    short = [{**r, "stable_tokens": "1"} for r in rows]
    c = curve_advice(clean_rows(short)[0], 64_000, 750_000, base=tmp_path, n_boot=10)
    assert "fewer than 2 evaluations" in c["problems"][0]["reason"]
    with pytest.raises(FitError, match="and from the curves: no model size has readable curves"):
        advise(short, 64_000, 750_000, base=tmp_path, n_boot=10)
    # no curves: no curve advice
    assert "batch_curves" not in advise(table(), 1e6, 8e5, n_boot=10)

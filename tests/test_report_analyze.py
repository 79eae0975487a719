"""report.analyze: several run folders (and earlier analysis.csv files) compared, one row
per run, on run folders generated in the real schema."""

from __future__ import annotations

import pandas as pd
import pytest
from report_runs import CONFIRM, make_run

from takd_search.cli import main
from takd_search.report.analyze import analyze


def test_analyze_two_runs(tmp_path, capsys):
    a = make_run(tmp_path / "results", "digits_vgg-1")
    other = dict(CONFIRM, heuristic=("plain10>plain6>plain2", [0.99] * 3, [0.97, 0.98, 0.99]))
    b = make_run(tmp_path / "results", "cifar_vgg-2", confirm=other, winner="heuristic")
    (tmp_path / "results" / "unfinished").mkdir()
    (tmp_path / "results" / "unfinished" / "space.json").write_text("{}")
    out = tmp_path / "out"
    assert main(["analyze", str(a), str(b / "trials.csv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "digits_vgg-1" in printed and "cifar_vgg-2" in printed
    df = pd.read_csv(out / "analysis.csv").set_index("run")
    assert list(df.index) == ["digits_vgg-1", "cifar_vgg-2"]
    assert df.loc["digits_vgg-1", "best_path"] == "plain10>plain8>plain4>plain2"
    assert df.loc["digits_vgg-1", "gain_vs_blkd"] == pytest.approx(0.02)
    assert df.loc["digits_vgg-1", "gain_vs_nokd"] == pytest.approx(0.03)
    assert not df.loc["digits_vgg-1", "heuristic_found_best"]
    assert df.loc["cifar_vgg-2", "best_path"] == "plain10>plain6>plain2"
    assert df.loc["cifar_vgg-2", "best_test_mean"] == pytest.approx(0.98)
    assert df.loc["cifar_vgg-2", "gain_vs_blkd"] == pytest.approx(0.04)  # .04, .03, .05
    assert df.loc["cifar_vgg-2", "heuristic_found_best"]
    assert df.loc["cifar_vgg-2", "blkd_test_mean"] == pytest.approx(0.94)
    assert df["train_hours"].tolist() == pytest.approx([(sum(range(10, 22)) + 6) / 3600] * 2)
    md = (out / "analysis.md").read_text()
    assert (
        "| cifar_vgg-2 | digits | plain10 -> plain2 | plain10>plain6>plain2 | 98.00 ± 1.00 |" in md
    )
    # a folder of runs: finished ones are taken, the unfinished one is skipped with a note
    r = analyze([tmp_path / "results"], None)
    assert sorted(r["table"]["run"]) == ["cifar_vgg-2", "digits_vgg-1"]
    assert "skipped 1 unfinished run" in capsys.readouterr().err
    # an earlier analysis.csv plus a run already in it: each run once
    r = analyze([out / "analysis.csv", a], None)
    assert sorted(r["table"]["run"]) == ["cifar_vgg-2", "digits_vgg-1"]

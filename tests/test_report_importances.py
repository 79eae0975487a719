"""report.importances: Optuna's parameter importances rebuilt from trials.csv (shared,
per-hop and trial-level parameters), on run folders generated in the real schema."""

from __future__ import annotations

import json

import pytest
from report_runs import make_run

from takd_search import results
from takd_search.atomic import write_json
from takd_search.report.build import report
from takd_search.report.importances import param_importances
from takd_search.results import open_run


def test_importances_rank_the_parameter_that_matters(tmp_path):
    run = open_run(make_run(tmp_path, n_search=14))
    imp, note = param_importances(run)
    assert "12 completed search trials" in note
    assert set(imp.index) == {"T", "alpha", "ta_plain8", "ta_plain6", "ta_plain4"}
    assert imp.index[0] == "alpha" and imp["alpha"] > 0.5
    assert imp.sum() == pytest.approx(1.0)


def test_importances_with_too_few_trials_is_a_note(tmp_path):
    run = open_run(make_run(tmp_path, n_search=4))  # 3 completed, 1 pruned
    imp, note = param_importances(run)
    assert imp is None and "Too few completed search trials (3)" in note


def test_per_hop_spaces_use_the_hop_into_each_model(tmp_path):
    d = make_run(tmp_path, n_search=12)
    space = json.loads((d / "space.json").read_text())
    space["distill"]["per_hop"] = True
    write_json(d / "space.json", space)
    t = results.load(d)["trials"]
    # per hop: the hop into the student gets alpha 0.1..0.9 spread, earlier hops 0.5
    hops = []
    for h in map(json.loads, t["hops"]):
        hops.append(json.dumps([dict(x, alpha=0.5) for x in h[:-1]] + h[-1:]))
    t["hops"] = hops
    results.write_csv(d, "trials", t)
    imp, _ = param_importances(open_run(d))
    # present in every trial: the TA flags and the hop into plain2; T_plain6 etc. are not
    assert {"alpha_plain2", "T_plain2"} <= set(imp.index)
    assert not {"T_plain6", "alpha_plain4", "alpha_plain6"} & set(imp.index)
    assert imp.index[0] == "alpha_plain2"
    out = report(d)
    assert all(p.exists() for p in out["plots"].values())


def test_searched_learning_rate_is_analysed(tmp_path):
    d = make_run(tmp_path, n_search=12)
    space = json.loads((d / "space.json").read_text())
    space["train"] = {"lr": {"low": 0.01, "high": 0.1, "log": True}}
    write_json(d / "space.json", space)
    t = results.load(d)["trials"]
    t["lr"] = [0.01 * (1 + i % 9) for i in range(len(t))]
    # now the learning rate decides the accuracy, alpha does not
    t["val_acc"] = t["val_acc"].where(t["val_acc"].isna(), 0.8 + t["lr"])
    results.write_csv(d, "trials", t)
    imp, _ = param_importances(open_run(d))
    assert "lr" in imp.index and imp.index[0] == "lr"
    assert all(p.exists() for p in report(d)["plots"].values())

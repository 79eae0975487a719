"""bench/calibrate.py: the simulated trainer and the counting of claims, at a tiny size
(seconds). The calibration figures themselves are in docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "calibrate.py"


@pytest.fixture(scope="module")
def calib():
    spec = importlib.util.spec_from_file_location("bench_calibrate", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_simulated_trainer_reports_counts_like_run_trial(calib):
    land = calib.LANDSCAPES["null"]
    trainer = calib.SimTrainer(land, run_index=7)
    hop = {"T": 4.0, "alpha": 0.6, "kd_fraction": 1.0, "parent_fraction": 1.0}
    cfg = {"path": "plain10>plain6>plain2", "hops": [hop, hop], "seed": 3, "method": "top1"}
    run = {"train": {"epochs": 3}, "seed": 0, "val_fraction": 0.2, "split_seed": 0}
    got = []
    trainer(cfg, run, report=got.append, trial_id="t")
    assert [m["epoch"] for m in got] == [1, 2, 3, 3] and got[-1]["finished"]
    last = got[-1]
    assert last["val_total"] == 288 and last["test_total"] == 360
    assert last["val_acc"] == last["val_correct"] / 288
    assert last["test_acc"] == last["test_correct"] / 360
    # the same (configuration, seed) is the same network: identical counts, any order
    again = []
    trainer(dict(cfg), run, report=again.append, trial_id="u")
    assert again[-1]["val_correct"] == last["val_correct"]
    # a search trial (no method) never sees the test set
    seen = []
    trainer({k: v for k, v in cfg.items() if k != "method"}, run, report=seen.append, trial_id="v")
    assert seen[-1]["test_acc"] is None and seen[-1]["test_correct"] is None
    # paths have no effect in the null landscape, +1 pp in the effect one
    direct = {"path": "plain10>plain2", "hops": [hop]}
    assert land.truth(cfg["path"], cfg["hops"]) == land.truth(direct["path"], direct["hops"])
    eff = calib.LANDSCAPES["effect"]
    assert eff.truth(cfg["path"], cfg["hops"]) - eff.truth(direct["path"], direct["hops"]) == (
        pytest.approx(0.01)
    )


def test_claims_are_read_as_the_answer_block_words_them(calib):
    beats = {"best": {"path": "a>x>b", "diff_vs_blkd": 0.02, "diff_ci_vs_blkd": [0.01, 0.03],
                      "p_holm_vs_blkd": 0.01}, "heuristic_found_best": True}  # fmt: skip
    c = calib.claims(beats)
    assert c["beats_blkd"] and not c["blkd_beats"] and c["heuristic_same"]
    assert c["winner_tas"] == 1
    # interval above zero but Holm p >= 0.05: no claim
    beats["best"]["p_holm_vs_blkd"] = 0.06
    assert not calib.claims(beats)["beats_blkd"]
    worse = {"best": {"path": "a>b", "diff_vs_blkd": 0.0}, "heuristic_found_best": False,
             "heuristic_vs_best": {"ci": [-0.03, -0.01]}}  # fmt: skip
    assert calib.claims(worse)["heuristic_worse"]


def test_tally_counts_claims_with_exact_intervals(calib):
    runs = [{"beats_blkd": i < 3, "blkd_beats": False, "heuristic_same": i % 2 == 0,
             "heuristic_worse": False, "tied": False, "gain": 0.01, "winner_tas": 1}
            for i in range(10)] + [{"error": "boom"}]  # fmt: skip
    t = calib.tally(runs)
    assert t["finished"] == 10 and t["errors"] == 1
    assert t["beats_blkd"]["k"] == 3 and t["beats_blkd"]["rate"] == 0.3
    # Clopper-Pearson for 3/10: [0.0667, 0.6525]
    assert t["beats_blkd"]["ci"] == pytest.approx((0.06674, 0.65245), abs=1e-4)
    assert t["heuristic_same"]["k"] == 5 and t["gain_mean_pp"] == pytest.approx(1.0)
    assert calib.clopper_pearson(0, 200)[1] == pytest.approx(0.01827, abs=1e-4)


def test_smoke_a_certain_effect_is_always_claimed_and_a_flat_null_never(calib, capsys):
    """A landscape with a known answer: no noise at all and a +20 pp path effect: every
    run's winner is a TA path that beats BLKD on every seed by the same amount, which is
    zero variance: undefined, so *not* a claim. With net noise back on, it is a claim."""
    land = calib.LANDSCAPES["certain"]
    args = {"index": 0, "trials": 6, "top_k": 2, "report_seeds": 3, "select_seeds": 2}
    r = calib.stats_run({**args, "landscape": asdict(land)})
    assert r["winner_tas"] >= 1 and r["gain"] == pytest.approx(0.2, abs=0.03)
    assert not r["beats_blkd"]  # identical differences: the test is undefined
    noisy = {**asdict(land), "net_sd": 0.01}
    assert all(
        calib.stats_run({**args, "index": i, "landscape": noisy})["beats_blkd"] for i in range(3)
    )
    # the command line: --runs 4 in stats mode prints one row per landscape
    assert calib.main(["--runs", "4", "--mode", "stats", "--trials", "6"]) == 0
    out = capsys.readouterr().out
    assert "| null | 4 |" in out and "| effect | 4 |" in out and "mode stats" in out


@pytest.mark.skipif(
    importlib.util.find_spec("takd_search.search.runner") is None,
    reason="needs the runner seam (takd_search.search.runner)",
)
def test_full_mode_runs_the_real_procedure_with_the_simulated_trainer(calib):
    land = calib.LANDSCAPES["certain"]
    args = {"index": 0, "trials": 4, "top_k": 1, "report_seeds": 2, "select_seeds": 1}
    r = calib.full_run({**args, "landscape": {**asdict(land), "net_sd": 0.01}})
    assert "error" not in r, r.get("error", "") + r.get("log", "")
    assert r["winner_tas"] >= 1 and r["gain"] == pytest.approx(0.2, abs=0.05)

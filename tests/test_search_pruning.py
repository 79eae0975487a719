"""Early stopping: the scheduler's rule on hand-made results, and a real ASHA search on
digits that ends with completed and pruned trials, charged, PRUNED in Optuna, and a
confirmed winner."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from takd_search.cli import main
from takd_search.search.pruning import FairASHA, rungs

STOP, CONTINUE = "STOP", "CONTINUE"


def _sched(max_t=9, grace=1, **kw):
    s = FairASHA(time_attr="epoch", max_t=max_t, grace_period=grace, reduction_factor=3, **kw)
    s.set_search_properties("score", "max")
    return s


def _trial(name):
    return SimpleNamespace(trial_id=name)


def _report(s, trial, epoch, score):
    return s.on_trial_result(None, trial, {"epoch": epoch, "score": score})


def test_rungs_are_grace_times_powers_of_rf_below_max_t():
    assert rungs(9, 1) == [1, 3]
    assert rungs(20, 2) == [2, 6, 18]
    assert rungs(12, 12) == []


def test_the_final_epoch_is_never_stopped_even_below_the_cut():
    s = _sched()
    trials = [_trial(f"t{i}") for i in range(4)]
    for t in trials:
        s.on_trial_add(None, t)
    for t in trials[:3]:
        assert _report(s, t, 1, 0.9) == CONTINUE
    # t3 is far below the rung-1 cut, but this is its final report (epoch == max_t):
    # it must reach Tune (it carries the trial's details), so it is not stopped
    assert _report(s, trials[3], 9, 0.1) == CONTINUE


def test_no_stop_until_the_rung_holds_min_compared_results():
    s = _sched()
    a, b, c = _trial("a"), _trial("b"), _trial("c")
    for t in (a, b, c):
        s.on_trial_add(None, t)
    assert _report(s, a, 1, 0.9) == CONTINUE
    # stock ASHA stops b here: it trails the only other result at the rung
    assert _report(s, b, 1, 0.5) == CONTINUE
    # with three results the cut (67th percentile of 0.9, 0.5, 0.4) is above c and b
    assert _report(s, c, 1, 0.4) == STOP
    assert _report(s, b, 2, 0.55) == STOP  # b is re-judged at its next report


def test_an_early_arrival_is_rejudged_when_later_trials_beat_it():
    s = _sched()
    first = _trial("first")
    s.on_trial_add(None, first)
    assert _report(s, first, 1, 0.5) == CONTINUE
    late = [_trial(f"late{i}") for i in range(3)]
    for t in late:
        s.on_trial_add(None, t)
        assert _report(s, t, 1, 0.8) == CONTINUE
    # stock ASHA would let `first` run to max_t: it was alone at rung 1 when it got there
    assert _report(s, first, 2, 0.6) == STOP


def test_a_replayed_curve_that_skips_rungs_is_placed_on_each():
    s = _sched(max_t=27)
    others = [_trial(f"o{i}") for i in range(3)]
    for t in others:
        s.on_trial_add(None, t)
        _report(s, t, 1, 0.9)
        _report(s, t, 3, 0.95)
    late = _trial("late")
    s.on_trial_add(None, late)
    assert _report(s, late, 4, 0.5) == STOP  # below both rungs it just crossed


def test_state_survives_save_and_restore(tmp_path):
    s = _sched()
    for i in range(3):
        t = _trial(f"t{i}")
        s.on_trial_add(None, t)
        _report(s, t, 1, 0.9)
    s.save(str(tmp_path / "sched.pkl"))
    r = _sched()
    r.restore(str(tmp_path / "sched.pkl"))
    t = _trial("new")
    r.on_trial_add(None, t)
    assert _report(r, t, 1, 0.1) == STOP


ASHA = """
description: an ASHA digits search for tests
data: {dataset: digits}
models: {family: plain, teacher: 6, student: 2, candidates: [4], max_tas: 1}
train: {epochs: 4, batch_size: 64, lr: [0.002, 0.05]}
distill: {T: [2.0, 8.0], alpha: {low: 0.2, high: 0.8}}
search: {n_trials: 8, seed: 0, scheduler: asha, grace_epochs: 1}
resources: {cpu: 1}
baselines: {confirm_top_k: 1, confirm_seeds: [1, 2], blkd_trials: 3}
"""


@pytest.mark.slow
def test_an_asha_search_completes_prunes_charges_and_names_a_winner(tmp_path):
    space = tmp_path / "asha.yaml"
    space.write_text(ASHA)
    res = tmp_path / "results"
    assert main(["run", "--space", str(space), "--results", str(res)]) == 0
    (run,) = [d for d in res.iterdir() if d.name.startswith("asha-")]
    trials = pd.read_csv(run / "trials.csv")
    search = trials[trials.phase == "search"]
    done, pruned = search[search.status == "completed"], search[search.status == "pruned"]
    assert len(done) >= 1 and len(pruned) >= 1, search[["status", "epochs_trained"]]
    # a completed trial trained every epoch; a pruned one stopped before the last
    assert (done.epochs_trained == 4).all()
    assert (pruned.epochs_trained < 4).all()
    # every trial is charged what it trained, pruned ones included
    assert (search.train_seconds > 0).all() and (search.hops_trained >= 1).all()
    # Optuna saw the stopped trials as PRUNED and the finished ones as COMPLETE
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch()
    searcher.restore_from_dir(str(run / "tune" / "search"))
    states = [t.state.name for t in searcher._ot_study.trials]
    assert states.count("PRUNED") == len(pruned)
    assert states.count("COMPLETE") == len(done)
    s = json.loads((run / "summary.json").read_text())
    assert s["winner"] is not None and s["best"]["seeds"] == 2
    assert s["best"]["test_mean"] > 0.5  # chance is 0.10 on digits
    assert s["compute"]["search_pruned"] == len(pruned)

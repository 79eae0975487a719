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


def _trial(name, batch=0):
    return SimpleNamespace(trial_id=name, config={"batch": batch})


def _report(s, trial, epoch, score):
    return s.on_trial_result(None, trial, {"epoch": epoch, "score": score})


def test_rungs_are_grace_times_powers_of_rf_below_max_t():
    assert rungs(9, 1) == [1, 3]
    assert rungs(20, 2) == [2, 6, 18]
    assert rungs(12, 12) == []


def test_the_first_batch_is_never_stopped_whatever_its_scores():
    s = _sched()
    for i, score in enumerate((0.9, 0.1, 0.05, 0.01)):
        assert _report(s, _trial(f"t{i}"), 1, score) == CONTINUE


def test_a_trial_is_judged_against_earlier_batches_only():
    s = _sched()
    for i, score in enumerate((0.9, 0.8, 0.7)):
        assert _report(s, _trial(f"a{i}", batch=0), 1, score) == CONTINUE
    # batch 1: the cut is the 67th percentile of (0.9, 0.8, 0.7, own)
    assert _report(s, _trial("b0", batch=1), 1, 0.75) == STOP
    assert _report(s, _trial("b1", batch=1), 1, 0.95) == CONTINUE
    # b0's low score does not count against its batch mate b2: same batch, not earlier
    assert _report(s, _trial("b2", batch=1), 1, 0.86) == CONTINUE


def test_the_decision_does_not_depend_on_arrival_order():
    """Batch 1's trials reported in every order get the same verdicts."""
    import itertools

    scores = {"x": 0.95, "y": 0.75, "z": 0.85}
    verdicts = set()
    for order in itertools.permutations(scores):
        s = _sched()
        for i, v in enumerate((0.9, 0.8, 0.7)):
            _report(s, _trial(f"a{i}", 0), 1, v)
        got = {k: _report(s, _trial(k, 1), 1, scores[k]) for k in order}
        verdicts.add(tuple(sorted(got.items())))
    assert verdicts == {(("x", CONTINUE), ("y", STOP), ("z", CONTINUE))}


def test_no_stop_until_min_compared_earlier_results():
    s = _sched()
    _report(s, _trial("a", 0), 1, 0.9)
    _report(s, _trial("b", 0), 1, 0.8)
    assert _report(s, _trial("c", 1), 1, 0.1) == CONTINUE  # only two earlier results
    s = _sched(min_compared=2)
    _report(s, _trial("a", 0), 1, 0.9)
    _report(s, _trial("b", 0), 1, 0.8)
    assert _report(s, _trial("c", 1), 1, 0.1) == STOP


def test_the_final_epoch_is_never_stopped_even_below_the_cut():
    s = _sched()
    for i in range(3):
        _report(s, _trial(f"t{i}", 0), 1, 0.9)
    # far below the rung-1 cut, but this is its final report (epoch == max_t): it must
    # reach Tune (it carries the trial's details), so it is not stopped
    assert _report(s, _trial("late", 1), 9, 0.1) == CONTINUE


def test_a_replayed_curve_that_skips_rungs_is_placed_on_each():
    s = _sched(max_t=27)
    for i in range(3):
        t = _trial(f"o{i}", 0)
        _report(s, t, 1, 0.9)
        _report(s, t, 3, 0.95)
    assert _report(s, _trial("late", 1), 4, 0.5) == STOP  # below both rungs it crossed


def test_state_survives_save_and_restore(tmp_path):
    s = _sched()
    for i in range(3):
        _report(s, _trial(f"t{i}", 0), 1, 0.9)
    s.save(str(tmp_path / "sched.pkl"))
    r = _sched()
    r.restore(str(tmp_path / "sched.pkl"))
    assert _report(r, _trial("new", 1), 1, 0.1) == STOP


ASHA = """
description: an ASHA digits search for tests
data: {dataset: digits}
models: {family: plain, teacher: 6, student: 2, candidates: [4], max_tas: 1}
train: {epochs: 4, batch_size: 64, lr: [0.002, 0.05]}
distill: {T: [2.0, 8.0], alpha: {low: 0.2, high: 0.8}}
search: {n_trials: 8, seed: 0, scheduler: asha, grace_epochs: 1, batch: 2}
resources: {cpu: 1}
baselines: {confirm_top_k: 1, confirm_seeds: [1, 2], blkd_trials: 3}
"""


@pytest.mark.slow  # a whole search or a long training: the second tier
def test_an_asha_search_completes_prunes_charges_and_names_a_winner(tmp_path):
    """Every tuning procedure is early-stopped by the same rule (equal effort): across
    the search, BLKD and the heuristic's path some trials are pruned (TPE's later batches
    in the search tend to beat the earlier ones, so there it may be none)."""
    space = tmp_path / "asha.yaml"
    space.write_text(ASHA)
    res = tmp_path / "results"
    assert main(["run", "--space", str(space), "--results", str(res)]) == 0
    (run,) = [d for d in res.iterdir() if d.name.startswith("asha-")]
    trials = pd.read_csv(run / "trials.csv")
    tuning = trials[trials.phase.isin(["search", "blkd", "tune"])]
    done, pruned = tuning[tuning.status == "completed"], tuning[tuning.status == "pruned"]
    assert len(done) >= 1 and len(pruned) >= 1, tuning[["phase", "status", "epochs_trained"]]
    # a completed trial trained every epoch; a pruned one stopped before the last
    assert (done.epochs_trained == 4).all()
    assert (pruned.epochs_trained < 4).all()
    # the first batch (2 proposals) of every procedure is never stopped
    assert (tuning[tuning.trial_number < 2].status == "completed").all()
    # every trial is charged what it trained, pruned ones included
    assert (tuning.train_seconds > 0).all() and (tuning.hops_trained >= 1).all()
    # Optuna saw the stopped trials as PRUNED and the finished ones as COMPLETE
    import optuna

    for phase, rows in tuning.groupby("phase"):
        study = optuna.load_study(study_name=phase, storage=f"sqlite:///{run / 'study.db'}")
        states = [t.state.name for t in study.trials]
        assert states.count("PRUNED") == (rows.status == "pruned").sum(), phase
        assert states.count("COMPLETE") == (rows.status == "completed").sum(), phase
    s = json.loads((run / "summary.json").read_text())
    assert s["winner"] is not None and s["best"]["seeds"] == 2
    assert s["best"]["test_mean"] > 0.5  # chance is 0.10 on digits
    search = tuning[tuning.phase == "search"]
    assert s["compute"]["search_pruned"] == (search.status == "pruned").sum()
    assert sum(b["pruned"] for b in s["budget"].values()) == len(pruned)

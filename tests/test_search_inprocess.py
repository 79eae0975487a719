"""The in-process runner with a trial function of our own (no training): the proposer's
batches, early stopping by batch, failures, and a resume that replays finished trials."""

from __future__ import annotations

import pytest

from takd_search.engine.hop import TrainConfig
from takd_search.search.inprocess import InProcessRunner
from takd_search.search.phase import Phase
from takd_search.search.settings import RunSettings
from takd_search.search.stop import Interrupted

RUN = RunSettings.of({"train": TrainConfig(epochs=4, batch_size=8).as_dict(), "seed": 0})


class Space:
    """A define-by-run space of one number; the trial's score is that number."""

    def __call__(self, trial):
        return {"path": "a>b", "x": trial.suggest_float("x", 0.0, 1.0)}


class Trainer:
    """Reports x * epoch / 3 for epochs 1..3, then x as the final score; counts calls,
    fails on the numbers in `fail`, is interrupted (Ctrl-C) at `stop_at`."""

    def __init__(self, fail=(), stop_at=None):
        self.calls, self.fail, self.stop_at = [], set(fail), stop_at

    def __call__(self, cfg, run, dataset, teacher, *, report, trial_id):
        n = cfg["trial_number"]
        self.calls.append(n)
        if n == self.stop_at:
            raise KeyboardInterrupt
        if n in self.fail:
            raise RuntimeError(f"trial {n} diverged")
        for e in (1, 2, 3):
            report({"score": cfg["x"] * e / 3, "epoch": e, "epochs": 4})
        report({"score": cfg["x"], "epoch": 4, "epochs": 4, "finished": True})


def _phase(**kw):
    return Phase(name="search", run=RUN, space=Space(), n_trials=8, batch=4, **kw)


def _run(tmp_path, trainer, **kw):
    return InProcessRunner(trainer).run_phase(_phase(**kw), tmp_path)


def test_proposals_come_in_batches_and_rows_in_proposal_order(tmp_path):
    rows = _run(tmp_path, Trainer())
    assert [r["trial_number"] for r in rows] == list(range(8))
    assert [r["config"]["batch"] for r in rows] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert all(r["status"] == "completed" for r in rows)
    # the same seed, the same proposals (what makes the two runners agree)
    again = _run(tmp_path / "again", Trainer())
    assert [r["config"]["x"] for r in again] == [r["config"]["x"] for r in rows]


def test_early_stopping_judges_only_against_earlier_batches(tmp_path):
    rows = _run(tmp_path, Trainer(), asha=True, grace_epochs=1)
    first, second = rows[:4], rows[4:]
    assert all(r["status"] == "completed" for r in first)  # the first batch: never stopped
    pruned = [r for r in second if r["status"] == "pruned"]
    assert pruned and all(r["metrics"]["epoch"] < 4 for r in pruned)
    # a pruned trial is below the rung-1 cut of the first batch's scores and its own
    cut = sorted(r["config"]["x"] / 3 for r in first)
    assert all(r["config"]["x"] / 3 < cut[-1] for r in pruned)


def test_a_failing_trial_is_retried_then_recorded_and_the_phase_goes_on(tmp_path):
    trainer = Trainer(fail={2})
    rows = _run(tmp_path, trainer, max_failures=1)
    assert trainer.calls.count(2) == 2  # one retry
    assert rows[2]["status"] == "failed" and "trial 2 diverged" in rows[2]["error"]
    assert [r["status"] for r in rows].count("completed") == 7


def test_an_interrupted_phase_resumes_without_rerunning_finished_trials(tmp_path):
    first = Trainer(stop_at=5)
    with pytest.raises(Interrupted, match="the search phase was interrupted"):
        _run(tmp_path, first)
    assert first.calls == [0, 1, 2, 3, 4, 5]
    resumed = Trainer()
    rows = _run(tmp_path, resumed)
    assert resumed.calls == [5, 6, 7]  # 0-4 replayed from tune/search/trials.json
    fresh = _run(tmp_path / "fresh", Trainer())
    assert [r["config"] for r in rows] == [r["config"] for r in fresh]

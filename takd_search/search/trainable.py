"""The Ray Tune trainable: `trial.run_trial` inside a Ray worker.

Tune calls `run_trial(config)` with the run's settings, data set and brought teacher bound
by `tune.with_parameters` (tune_phase.py); reports go to Tune, which hands them to the
scheduler (early stopping) and the searcher. Ray pickles this function by module path.
"""

from __future__ import annotations

from ray import tune

from takd_search.search import trial

METRIC = trial.METRIC


def run_trial(config: dict, run, dataset=None, teacher=None) -> None:
    trial.run_trial(
        config,
        run,
        dataset,
        teacher,
        report=tune.report,
        trial_id=tune.get_context().get_trial_id(),
    )

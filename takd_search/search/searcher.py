"""The searcher of the search phases: Optuna through Tune, told which trials were pruned.

`PruningOptunaSearch` runs our define-by-run PathSpace (space.py) with the sampler
`make_sampler` builds (TPE, random or grid, seeded). Its state lives in Tune's experiment
snapshot (DESIGN.md: no Optuna `storage=`); study.py mirrors the trials into study.db.
"""

from __future__ import annotations

import logging
import warnings

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from takd_search.search.trainable import METRIC

log = logging.getLogger(__name__)
# a resumed trial re-reports its epochs; Optuna warns for each and ignores them
warnings.filterwarnings("ignore", message=".*is already reported.*")


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna PRUNED for trials a scheduler stopped early.

    Tune reports a scheduler stop like a normal end (`done` is True for both), and the
    stock searcher would record the truncated score as COMPLETE, teaching TPE that a
    stopped trial was a finished one. A trial is early-stopped when its last result has
    no `finished` flag (set only by `run_trial`'s final report).
    """

    def on_trial_complete(self, trial_id, result=None, error=False):
        if (
            not error
            and result
            and trial_id not in self._completed_trials
            and trial_id in self._ot_trials
            and not result.get("finished")
        ):
            ot_trial = self._ot_trials[trial_id]
            try:
                if METRIC in result:
                    ot_trial.report(result[METRIC], int(result.get("epoch", 0)))
                self._ot_study.tell(ot_trial, None, state=TrialState.PRUNED)
            except Exception as exc:  # a value Optuna rejects must not stop the search
                log.warning("optuna: %s", exc)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def make_sampler(kind: str, seed: int, grid: dict | None = None, n_trials: int | None = None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    # random start-up trials before TPE models the space: a third of the budget, 4..10
    startup = 10 if not n_trials else max(4, min(10, n_trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)

"""Early stopping of search trials: asynchronous successive halving, judged fairly.

Ray's ASHA judges a trial once, at the moment it reaches a rung, against whoever reached
that rung before it. The first arrivals are therefore never stopped, and in a path search
the first arrivals are systematic: short paths, and paths whose prefix hops are already
in the store, reach the student's epochs first. So survival partly measured path length
and arrival order, not accuracy.

`FairASHA` keeps ASHA's rungs (grace * rf^k student epochs) and its cut (a trial below
the (1 - 1/rf) quantile of its rung is stopped), with two changes:

- a rung judges nobody until it holds at least `min_compared` results (default rf), so
  the second arrival is not stopped for trailing the first alone;
- every report re-judges the trial at every rung it has passed, against everyone recorded
  there so far, so an early arrival that later falls below its rung's cut is stopped at
  its next epoch, exactly as a late arrival with the same score would be.

The resource is the student's epoch: trials are compared on the student's validation
accuracy after the same number of student epochs (a TA's accuracy says nothing about the
student's). TA hops are not pruned, because no comparable score exists while they train,
but every report carries the trial's cumulative compute, so what a pruned trial spent,
TA hops included, is charged in trials.csv (see `trainable.run_trial`).

This module imports Ray's scheduler base classes only (tune_phase imports it).
"""

from __future__ import annotations

import numpy as np
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler


class FairASHA(AsyncHyperBandScheduler):
    """ASHA with a minimum rung population and re-judging at every report.

    time_attr: the student's epoch (1-based); max_t: epochs per hop; grace_period: the
    first rung, in student epochs; reduction_factor: rf (a third survive each rung at 3).
    A trial reaching max_t is never stopped by this scheduler (its final report, which
    carries the trial's details, must reach Tune: stopping it there is what made every
    ASHA trial look pruned).
    """

    def __init__(self, *, min_compared: int | None = None, **kw):
        kw.setdefault("brackets", 1)  # one bracket: no random bracket assignment
        kw["stop_last_trials"] = False
        super().__init__(**kw)
        self._min_compared = int(min_compared or self._reduction_factor)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        t, score = result[self._time_attr], self._metric_op * result[self._metric]
        if t >= self._max_t:  # the final report: record it, never stop it
            return TrialScheduler.CONTINUE
        bracket = self._trial_info[trial.trial_id]
        _record(bracket, trial.trial_id, t, score)
        if _below_cut(bracket, trial.trial_id, self._min_compared):
            self._num_stopped += 1
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if trial.trial_id in self._trial_info and result and self._time_attr in result:
            if self._metric in result:
                bracket = self._trial_info[trial.trial_id]
                t = min(result[self._time_attr], self._max_t)
                _record(bracket, trial.trial_id, t, self._metric_op * result[self._metric])
        self._trial_info.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._trial_info.pop(trial.trial_id, None)


def _record(bracket, trial_id: str, t: float, score: float) -> None:
    """Record `score` at every rung the trial has reached and not yet recorded: a trial
    whose first report skips rungs (a replayed stored curve) is placed on each of them."""
    for milestone, recorded in bracket._rungs:  # noqa: SLF001 (Ray's bookkeeping)
        if t >= milestone and trial_id not in recorded:
            recorded[trial_id] = score


def _below_cut(bracket, trial_id: str, min_compared: int) -> bool:
    """Is the trial below the cut of any rung it stands on, among >= min_compared?"""
    for _, recorded in bracket._rungs:  # noqa: SLF001
        if trial_id in recorded and len(recorded) >= min_compared:
            cut = np.nanpercentile(list(recorded.values()), (1 - 1 / bracket.rf) * 100)
            if recorded[trial_id] < cut:
                return True
    return False


def rungs(max_t: int, grace: int, rf: float = 3) -> list[int]:
    """The student epochs at which trials are judged, ascending (for docs and --dry-run)."""
    out, m = [], float(grace)
    while m < max_t:
        out.append(int(m))
        m *= rf
    return out

"""Early stopping of search trials as a Tune scheduler: `rungs.Rungs` inside Ray Tune.

The rule (successive halving judged against earlier batches only, so it does not depend
on arrival order) is in rungs.py, shared with the in-process runner; this module only
adapts it to Tune's scheduler interface. It imports Ray (tune_phase imports it).
"""

from __future__ import annotations

import pickle

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from takd_search.search.rungs import Rungs, rungs

__all__ = ["FairASHA", "rungs"]


class FairASHA(FIFOScheduler):
    """Tune's view of `Rungs`: STOP a trial whose report falls below a rung's cut.

    time_attr: the student's epoch (1-based); max_t: epochs per hop; grace_period: the
    first rung, in student epochs; reduction_factor: rf (a third survive each rung at 3).
    A trial's batch comes from its config (`batch`, set by the proposer).
    """

    def __init__(
        self,
        *,
        time_attr: str = "epoch",
        max_t: int,
        grace_period: int,
        reduction_factor: float = 3,
        min_compared: int | None = None,
        metric: str | None = None,
        mode: str | None = None,
    ):
        super().__init__()
        self._time_attr = time_attr
        self._metric, self._mode = metric, mode
        self.rungs = Rungs(max_t, grace_period, reduction_factor, min_compared)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        sign = -1.0 if self._mode == "min" else 1.0
        batch = int((getattr(trial, "config", None) or {}).get("batch", 0))
        stop = self.rungs.should_stop(
            trial.trial_id, batch, result[self._time_attr], sign * result[self._metric]
        )
        return TrialScheduler.STOP if stop else TrialScheduler.CONTINUE

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump((self._metric, self._mode, self.rungs), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self._metric, self._mode, self.rungs = pickle.load(f)

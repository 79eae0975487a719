"""The searcher of the search phases in Ray Tune: `proposer.Proposer` as a Tune Searcher.

Tune asks `suggest(trial_id)` whenever a slot is free; we hand out the proposer's batch in
proposal order and answer None (wait) until the batch has finished, so Tune's concurrency
never changes what is proposed (proposer.py). Optuna learns PRUNED for trials a scheduler
stopped early (no `finished` flag in their last result), never a truncated score as
COMPLETE. The proposer, with its Optuna study, is pickled into Tune's experiment snapshot
(DESIGN.md: no Optuna `storage=`), so a restored phase carries on from it; study.py
mirrors finished trials into study.db.
"""

from __future__ import annotations

import pickle

from ray.tune.search import Searcher

from takd_search.search.proposer import FINISHED, Proposer
from takd_search.search.trial import METRIC, outcome


class BatchedOptunaSearch(Searcher):
    """Tune Searcher over a Proposer; `trial_number` and `batch` go into each config."""

    def __init__(self, proposer: Proposer):
        super().__init__()
        self.proposer = proposer
        self.numbers: dict[str, int] = {}  # Tune trial id -> Optuna trial number

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        self._metric, self._mode = metric or METRIC, mode or "max"
        return True

    def suggest(self, trial_id: str):
        if trial_id in self.numbers:  # asked again for a trial we already gave a config
            return None
        cfg = self.proposer.next()
        if cfg is FINISHED or cfg == FINISHED:
            return Searcher.FINISHED
        if cfg is None:
            return None
        self.numbers[trial_id] = cfg["trial_number"]
        return cfg

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
        number = self.numbers.get(trial_id)
        if number is None:
            return
        status, score, epoch = outcome(result, error)
        self.proposer.tell(number, status, score, epoch)

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__.copy(), f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))

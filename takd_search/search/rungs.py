"""Early stopping that does not depend on arrival order: successive halving by batches.

ASHA judges a trial at a rung (grace * rf^k student epochs) against whoever reached that
rung before it, so survival depends on arrival order: short paths and paths whose prefix
hops are in the store arrive first, and a second machine (or a busier one) prunes other
trials. Here the searcher proposes trials in fixed batches (proposer.py), and a trial of
batch b is judged at each rung only against the trials of batches before b. Those have all
finished before batch b starts, so the decision is a function of the proposals and their
scores alone: the same under any concurrency, load or completion order, and the same in
both runners.

Rule: at every rung the trial has reached, it stops when its score there is below the
(1 - 1/rf) quantile of its own score and the earlier batches' scores at that rung, once at
least `min_compared` (default rf) earlier scores exist. The first batch is never stopped.
The resource is the student's epoch; TA hops are not pruned (no comparable score exists
while they train), but every report carries the trial's compute, so a pruned trial is
charged what it spent. A trial's final epoch (max_t) is never stopped: its final report
carries the trial's details. No Ray here (pruning.py wraps it as a Tune scheduler).
"""

from __future__ import annotations

import numpy as np


def rungs(max_t: int, grace: int, rf: float = 3) -> list[int]:
    """The student epochs at which trials are judged, ascending (for docs and --dry-run)."""
    out, m = [], float(grace)
    while m < max_t:
        out.append(int(m))
        m *= rf
    return out


class Rungs:
    """The scores recorded at each rung, with the batch of the trial that made them."""

    def __init__(self, max_t: int, grace: int, rf: float = 3, min_compared: int | None = None):
        self.max_t, self.rf = int(max_t), float(rf)
        self.min_compared = int(min_compared or rf)
        self.scores: dict[int, dict[str, tuple[int, float]]] = {
            m: {} for m in rungs(max_t, grace, rf)
        }

    def record(self, key: str, batch: int, t: float, score: float) -> None:
        """Place `score` (higher is better) on every rung up to epoch `t` not yet holding
        one of this trial: a replayed stored curve that skips rungs lands on each."""
        for milestone, held in self.scores.items():
            if t >= milestone and key not in held:
                held[key] = (int(batch), float(score))

    def should_stop(self, key: str, batch: int, t: float, score: float) -> bool:
        """Record the report, then: is the trial below the cut of a rung it stands on?"""
        if t >= self.max_t:
            return False
        self.record(key, batch, t, score)
        for held in self.scores.values():
            if key not in held:
                continue
            earlier = [s for b, s in held.values() if b < batch]
            if len(earlier) < self.min_compared:
                continue
            own = held[key][1]
            cut = np.nanpercentile([*earlier, own], (1 - 1 / self.rf) * 100)
            if own < cut:
                return True
        return False

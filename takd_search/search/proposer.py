"""Optuna's proposals in fixed batches, so that the answer does not depend on the machine.

TPE asked while trials run sees only the finished ones, so with trials asked one at a time
as slots free up, its proposals depend on how many run at once and in which order they
finish (FACTS.md): the same command named different winners with one and with two trials
at a time. `Proposer` asks `batch` trials at once (the space's `search.batch`, never the
machine's concurrency), hands them out in proposal order, and asks the next batch only
when every trial of this one has been told. What TPE sees before each ask is then the same
set of finished trials, whatever the concurrency, load or completion order.

Both runners use it: the in-process runner directly (inprocess.py), the Ray Tune runner
through a Tune `Searcher` (searcher.py). No Ray here.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

FINISHED = "FINISHED"  # no proposal is left (Tune's Searcher.FINISHED has the same value)


def make_sampler(kind: str, seed: int, grid: dict | None = None, n_trials: int | None = None):
    """The seeded Optuna sampler of a search phase: TPE, random or grid."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return _Grid(grid, seed=seed)
    # random start-up trials before TPE models the space: a third of the budget, 4..10
    startup = 10 if not n_trials else max(4, min(10, n_trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


class _Grid(optuna.samplers.GridSampler):
    """A GridSampler for ask-and-tell: the stock one calls `study.stop()` once the grid is
    exhausted, which only works inside `study.optimize` (elsewhere it raises and leaves the
    told trial RUNNING). The proposer counts proposals itself (at most the grid's size)."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


class Proposer:
    """Asks an Optuna study for trial configs, `batch` at a time, and is told results.

    space: the define-by-run callable (space.PathSpace): Optuna trial -> config dict.
    n_trials: proposals in all (None: until `stop()`, for a time budget).
    Each config carries `trial_number` (Optuna's, 0-based: the proposal order every tie
    and every row order uses) and `batch` (0-based: the early-stopping rule compares a
    trial only with trials of earlier batches, rungs.py).
    """

    def __init__(self, space, sampler, n_trials: int | None, batch: int):
        self.space = space
        self.n_trials = n_trials
        self.batch = max(1, int(batch))
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.queue: list[dict] = []  # asked, not yet handed out
        self.open: dict[int, optuna.trial.Trial] = {}  # handed out or queued, not yet told
        self.asked = 0
        self.batches = 0
        self.stopped = False

    def next(self) -> dict | str | None:
        """The next config; None while this batch still runs; FINISHED when done."""
        if self.queue:
            return self.queue.pop(0)
        if self.open:
            return None
        left = None if self.n_trials is None else self.n_trials - self.asked
        if self.stopped or left is not None and left <= 0:
            return FINISHED
        for _ in range(self.batch if left is None else min(self.batch, left)):
            trial = self.study.ask()
            extra = self.space(trial)
            self.open[trial.number] = trial
            self.queue.append(
                {**trial.params, **extra, "trial_number": trial.number, "batch": self.batches}
            )
            self.asked += 1
        self.batches += 1
        return self.queue.pop(0)

    def stop(self) -> None:
        """Ask no further batch (a time budget ran out); what was asked still runs."""
        self.stopped = True

    def tell(self, number: int, status: str, score: float | None, epoch: int | None = None):
        """The result of trial `number`: status 'completed' (score = its value), 'pruned'
        (stopped early: Optuna learns PRUNED, never a truncated score as COMPLETE; DESIGN),
        or anything else (failed/interrupted: FAIL)."""
        trial = self.open.pop(number, None)
        if trial is None:
            return
        if status == "completed" and score is not None and score == score:
            self.study.tell(trial, float(score))
        elif status == "pruned":
            if score is not None and score == score:
                trial.report(float(score), int(epoch or 0))
            self.study.tell(trial, None, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, None, state=TrialState.FAIL)

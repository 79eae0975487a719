"""The console of a phase in Ray Tune: a Tune callback over `console.PhaseProgress`.

Tune pickles it into the experiment's snapshot, and a restored experiment brings it back.
"""

from __future__ import annotations

from pathlib import Path

from ray import tune

from takd_search.search.console import PhaseProgress, error_line


class Progress(tune.Callback):
    """Tune's trial events, passed to a PhaseProgress (one console line per event)."""

    def __init__(self, *args, **kw):
        self.core = PhaseProgress(*args, **kw)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.core.start(trial.trial_id, trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.core.result(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.core.complete(trial.trial_id, trial.config, trial.last_result)

    def on_trial_recover(self, iteration, trials, trial, **info):
        epoch = (trial.last_result or {}).get("epoch")
        n = getattr(trial, "num_failures", 1)
        self.core.retry(trial.trial_id, trial.config, _why(trial), epoch, n)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.core.error(trial.trial_id, trial.config, _why(trial))


def _why(trial) -> str:
    try:
        return error_line(Path(trial.error_file).read_text()) if trial.error_file else ""
    except OSError:
        return ""

"""`takd-search run`: the search, from a space file to the answer.

The modules, in the order a run meets them:

- plan.py: every check of the input and of this machine, before anything is written;
- run.py: `run_search`, the phases in order over a run (NoKD, search, BLKD, top-up,
  confirmation);
- run_dir.py: the run folder (choosing or resuming it, state.json, versions, phases/);
  resume.py: its saved settings and its driver lock;
- space.py: the define-by-run Optuna space; fractions.py: a hop's settings as fractions
  of its epochs, the one conversion to the engine's whole epochs, and the old names;
  searcher.py: Optuna through Tune;
  pruning.py: fair early stopping (ASHA);
- ray_session.py: starting and stopping Ray (reaper.py ends an orphaned local Ray);
- tune_phase.py: one phase as a Tune experiment; trainable.py: one trial in a Ray worker;
  callback.py: the phase's console lines; stop.py: Ctrl-C/SIGTERM; disk.py: a full disk;
- rows.py: the CSV rows; methods.py: the compared methods and their budgets;
  summary.py: summary.json and the closing lines; study.py: study.db for Optuna's tools;
  dryrun.py: `run --dry-run`'s plan and estimate.

Only this package and cluster/ import Ray, and only once the input is known good: this
file imports nothing and sets no environment variable, and the names below are loaded on
first use, so `import takd_search.search.space` (or the reaper's own process) costs
neither Ray nor torch.
"""

from __future__ import annotations

import importlib

# Importing this package changes nothing in the process: the Ray/Tune settings of the
# tool's own runs (no Tune console tables, no auto loggers, 2 s snapshots) are set by
# ray_session.start_ray for those runs only, and given back by stop_ray.

# name -> the module that holds it (what cli, tests and users import from here)
_EXPORTS = {
    "run_search": "run",
    "RunFailed": "run",
    "say": "run_dir",
    "answer": "summary",
    "SELECTION_RULE": "summary",
    "Interrupted": "stop",
    "DiskFull": "disk",
    "is_disk_full": "disk",
    "full_message": "disk",
    "PathSpace": "space",
    "RunPlan": "plan",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value

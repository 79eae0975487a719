"""One phase of a run as data, and what a runner returns for each of its trials. No Ray.

A phase (NoKD baselines, a tuning search, the confirmation) is either a search, whose
trials the proposer asks Optuna for in fixed batches (`space`, `n_trials`), or a fixed
list of configs. A runner (`runner.py`: in-process or Ray Tune) executes it and returns one
row per trial, in proposal order: {trial_id, trial_number, status, error, config,
metrics, retries, path_dir}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from takd_search.search.proposer import Proposer, make_sampler
from takd_search.search.trial import outcome


@dataclass
class Phase:
    """One phase of a run. Either `space` (an Optuna define-by-run callable, searched for
    `n_trials` / `time_budget_s`, `batch` proposals at a time) or `configs` (a fixed
    list). cpu/gpu: one trial's resources; concurrency: trials at once (Ray runner)."""

    name: str
    run: object  # settings.RunSettings: what every trial needs
    dataset: object = None  # takd_search.data.Dataset, shipped to workers by Ray
    teacher: object = None  # takd_search.teacher.TeacherSource of a brought teacher, or None
    configs: list[dict] | None = None
    space: object | None = None
    sampler: str = "tpe"
    n_trials: int | None = None
    time_budget_s: float | None = None
    batch: int = 4
    seed: int = 0
    grid: dict | None = None
    asha: bool = False
    grace_epochs: int | None = None
    cpu: float = 1.0
    gpu: float = 0.0
    concurrency: int = 1
    max_failures: int = 1
    watchers: list = field(default_factory=list)  # console.PhaseProgress's watchers

    @property
    def total(self) -> int | None:
        """Trials the phase will run (None: until its time budget runs out)."""
        return self.n_trials if self.space is not None else len(self.configs or [])

    def cases(self) -> list[dict]:
        """A fixed phase's configs, each with its `trial_number` (its place in the list)."""
        return [{**c, "trial_number": i} for i, c in enumerate(self.configs or [])]

    def proposer(self) -> Proposer:
        """A fresh proposer for a search phase (seeded: the same proposals every time)."""
        sampler = make_sampler(self.sampler, self.seed, self.grid, self.n_trials)
        return Proposer(self.space, sampler, self.n_trials, self.batch)

    def console(self, root) -> dict:
        """The arguments of the phase's console (console.PhaseProgress), for either runner:
        its lines, progress.json in the run folder (`root`'s parent) and its watchers."""
        return dict(
            phase=self.name,
            total=self.total,
            label=label,
            run_dir=str(root.parent),
            max_failures=self.max_failures,
            watchers=self.watchers,
        )

    def grace(self) -> int:
        """The first rung of early stopping, in student epochs."""
        epochs = self.run.train.epochs
        return min(epochs, self.grace_epochs or max(1, epochs // 4))


def label(cfg: dict) -> str:
    """A trial's name on the console: 'nokd plain8 seed 0' or its path."""
    case = cfg.get("case", cfg)
    tag = case.get("method")
    return (
        f"{tag} {case.get('path')}" + (f" seed {case['seed']}" if "seed" in case else "")
        if tag
        else str(case.get("path", "?"))
    )


def make_row(
    trial_id: str | None,
    number: int | None,
    config: dict,
    metrics: dict | None,
    error: str | None,
    path_dir: str | None = None,
) -> dict:
    """A trial as a flat dict: its config, its last metrics, status and error."""
    cfg = dict(config or {})
    case = cfg.pop("case", None)
    if case:
        cfg.update(case)
    m = dict(metrics or {})
    status, _, _ = outcome(m, error is not None)
    return {
        "trial_id": trial_id,
        "trial_number": number,
        "status": status,
        "error": error,
        "config": cfg,
        "metrics": m,
        "retries": max(0, int(m.get("attempt", 1)) - 1),
        "path_dir": path_dir,
    }

"""The in-process runner: every trial of a phase, one after another, in this process. No Ray.

It executes the same trial function (trial.run_trial), with the same proposer (fixed
batches, proposer.py) and the same early-stopping rule (rungs.py) as the Ray Tune runner,
so both give the same rows, and so the same answer, for the same space: the runner is an
execution detail. Used for debugging (a breakpoint in a trial works), notebooks, tests of
the orchestration, and the calibration benchmark, which passes a simulated `trial_fn`.

Every finished trial is appended to `<run>/tune/<phase>/trials.json`; a resumed phase
replays those results into a fresh proposer (the same seeded asks, the same tells, so the
same proposals) and runs only what is left.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from takd_search.atomic import write_json
from takd_search.errors import UserError, first_line
from takd_search.search import trial as trial_mod
from takd_search.search.console import PhaseProgress
from takd_search.search.disk import DiskFull, full_message, is_disk_full
from takd_search.search.fractions import upgrade_rows
from takd_search.search.phase import Phase, make_row
from takd_search.search.proposer import FINISHED
from takd_search.search.rungs import Rungs
from takd_search.search.stop import Interrupted, main_thread

SAVED = "trials.json"


class _Stopped(Exception):
    """Raised out of a trial's report when the early-stopping rule stops it."""


class InProcessRunner:
    """Runs phases in the driver. trial_fn: (config, run, dataset, teacher, *, report,
    trial_id) -> None, reporting like trial.run_trial (the calibration benchmark's
    simulated trainer has this signature)."""

    name = "inprocess"

    def __init__(self, trial_fn: Callable | None = None):
        self.trial_fn = trial_fn or trial_mod.run_trial

    def start(self, address: str | None, run_dir: Path, resources) -> int:
        """Nothing to start; one trial at a time."""
        if address not in (None, "", "local"):
            raise UserError(
                f"--address {address} needs the Ray runner: drop --runner inprocess (the "
                "in-process runner runs every trial in this process)"
            )
        self.resources = {"runner": "inprocess", "CPU": os.cpu_count()}
        return 1

    def logs(self) -> str | None:
        return None

    def run_phase(self, phase: Phase, root: Path) -> list[dict]:
        """Run (or resume) one phase; one row per trial, in proposal order."""
        folder = root / phase.name
        saved = _load(folder / SAVED)
        progress = PhaseProgress(**phase.console(root))
        rungs = Rungs(phase.run.train.epochs, phase.grace()) if phase.asha else None
        proposer = phase.proposer() if phase.space is not None else None
        fixed = iter(phase.cases())
        rows: list[dict] = []
        t0 = time.monotonic()
        with _sigterm_as_interrupt(phase.name):
            while True:
                if proposer is not None:
                    if phase.time_budget_s and time.monotonic() - t0 > phase.time_budget_s:
                        proposer.stop()
                    cfg = proposer.next()
                    if cfg is None or cfg == FINISHED:  # None cannot happen: one at a time
                        break
                    number = cfg["trial_number"]
                else:
                    cfg = next(fixed, None)
                    if cfg is None:
                        break
                    number = cfg["trial_number"]
                old = saved.get(number)
                if old is not None and old["config"] == _flat(cfg):
                    row = old  # finished before an interruption: replayed, not rerun
                else:
                    row = self._run_one(phase, root, cfg, number, progress, rungs)
                    saved[number] = row
                    write_json(folder / SAVED, list(saved.values()))
                rows.append(row)
                if proposer is not None:
                    status, score, epoch = trial_mod.outcome(
                        row["metrics"], row["status"] == "failed"
                    )
                    proposer.tell(number, status, score, epoch)
        return sorted(rows, key=lambda r: r["trial_number"])

    def _run_one(self, phase, root, cfg, number, progress, rungs) -> dict:
        tid = f"{phase.name}_{number:05d}"
        batch = int(cfg.get("batch", 0))
        last: dict = {}

        def report(metrics: dict) -> None:
            last.clear()
            last.update(metrics, trial_id=tid)
            progress.result(tid, last)
            if (
                rungs is not None
                and not metrics.get("finished")
                and rungs.should_stop(tid, batch, metrics["epoch"], metrics[trial_mod.METRIC])
            ):
                raise _Stopped

        progress.start(tid, cfg)
        error = None
        for attempt in range(1, phase.max_failures + 2):
            error = None
            try:
                self.trial_fn(
                    cfg, phase.run, phase.dataset, phase.teacher, report=report, trial_id=tid
                )
                break
            except _Stopped:
                break
            except (KeyboardInterrupt, UserError):
                raise
            except Exception as e:
                if is_disk_full(e):
                    where = f"the {phase.name} phase"
                    raise DiskFull(full_message(_places(phase, root), where)) from None
                error = first_line(e)
                if attempt <= phase.max_failures:
                    progress.retry(tid, cfg, error, last.get("epoch"), attempt)
                    last.clear()
        if error is None:
            progress.complete(tid, cfg, last)
        else:
            progress.error(tid, cfg, error)
        return make_row(tid, number, cfg, last, error)


def _flat(cfg: dict) -> dict:
    """A config as a saved row holds it (the JSON round trip: tuples become lists)."""
    out = dict(cfg)
    out.update(out.pop("case", None) or {})
    return json.loads(json.dumps(out))


def _load(path: Path) -> dict[int, dict]:
    try:
        return {r["trial_number"]: r for r in upgrade_rows(json.loads(path.read_text()))}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _places(phase: Phase, root: Path) -> list[Path]:
    return [Path(p) for p in (root, phase.run.store) if p]


class _sigterm_as_interrupt:
    """SIGTERM while a phase runs ends it like Ctrl-C: `Interrupted`, finished trials kept
    (each is saved as it ends), and the same command resumes."""

    def __init__(self, phase: str):
        self.phase = phase

    def __enter__(self):
        self.old = None
        if main_thread():
            self.old = signal.signal(signal.SIGTERM, self._on_term)
        return self

    def _on_term(self, signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, kind, exc, tb):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        if kind is KeyboardInterrupt:
            raise Interrupted(f"the {self.phase} phase was interrupted") from None
        return False

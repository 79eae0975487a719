"""The Ray Tune runner: one phase of a run as a Tune experiment (build, run, restore).

Every phase of a run (NoKD baselines, the tuning searches, the confirmation) is one Tune
experiment of the same trainable (trainable.run_trial). Search phases get their trials
from Optuna in fixed batches (searcher.py over proposer.py, with our define-by-run
`PathSpace`); fixed phases from a list of configs. The in-process runner (inprocess.py)
runs the same phases without Ray and gives the same rows. Each experiment lives in
`<run>/tune/<phase>` and is restored from there after an interruption, so no completed
trial is lost or run twice; one Tune cannot read back is set aside and the phase runs
again (its finished hops come back from the store).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from ray import tune
from ray.tune.search import BasicVariantGenerator

from takd_search.errors import UserError
from takd_search.search import ray_session
from takd_search.search.callback import Progress
from takd_search.search.console import error_line
from takd_search.search.disk import DiskFull, full_message, is_disk_full, low_disk
from takd_search.search.phase import Phase, make_row
from takd_search.search.pruning import FairASHA
from takd_search.search.searcher import BatchedOptunaSearch
from takd_search.search.stop import Interrupted, StopFlag, main_thread
from takd_search.search.trainable import METRIC, run_trial

__all__ = ["Phase", "TuneRunner", "run_phase"]


class TuneRunner:
    """Runs phases as Ray Tune experiments: on a local Ray this tool starts, or on the
    cluster at `address`."""

    name = "ray"

    def start(self, address: str | None, run_dir: Path, resources) -> int:
        """Start (or join) Ray; returns how many trials run at once."""
        self.resources = ray_session.start_ray(address, token_dir=run_dir)
        return ray_session.check_resources(resources.cpu, resources.gpu, resources.concurrency)

    def logs(self) -> str | None:
        return ray_session.session_logs()

    def run_phase(self, phase: Phase, root: Path) -> list[dict]:
        return run_phase(phase, root)


def _trainable(phase: Phase):
    trainable = tune.with_parameters(
        run_trial, run=phase.run, dataset=phase.dataset, teacher=phase.teacher
    )
    return tune.with_resources(trainable, {"cpu": phase.cpu, "gpu": phase.gpu})


def _search(phase: Phase):
    """(search algorithm, num_samples) of a phase. A fixed phase's generator carries the
    concurrency itself: Tune applies `max_concurrent_trials` only to a Searcher and ignores
    it (a warning our quiet logger hides) for a generator passed in, so NoKD and the
    retraining phases ran as many trials at once as the CPUs held, whatever
    `resources.concurrency` said (the CPU rehearsal of issue 25 saw two on two cores)."""
    if phase.space is not None:
        search = BatchedOptunaSearch(phase.proposer())  # Tune wraps it in its limiter
        return search, phase.n_trials if phase.n_trials is not None else -1
    search = BasicVariantGenerator(
        points_to_evaluate=None,
        constant_grid_search=True,
        random_state=phase.seed,
        max_concurrent=phase.concurrency,
    )
    return search, 1


def _tuner(phase: Phase, root: Path, progress: Progress):
    run_config = tune.RunConfig(
        name=phase.name,
        storage_path=str(root.resolve()),
        verbose=0,
        callbacks=[progress],
        failure_config=tune.FailureConfig(max_failures=phase.max_failures),
    )
    search, num_samples = _search(phase)
    scheduler = None
    if phase.asha:
        # metric/mode come from TuneConfig: Tune refuses them in both places
        scheduler = FairASHA(
            time_attr="epoch", max_t=phase.run.train.epochs, grace_period=phase.grace()
        )
    param_space = {"case": tune.grid_search(phase.cases())} if phase.configs else None
    tune_config = tune.TuneConfig(
        search_alg=search,
        metric=METRIC,
        mode="max",
        num_samples=num_samples,
        max_concurrent_trials=phase.concurrency,
        scheduler=scheduler,
        time_budget_s=phase.time_budget_s,
        reuse_actors=True,
    )
    return tune.Tuner(
        _trainable(phase), tune_config=tune_config, run_config=run_config, param_space=param_space
    )


def run_phase(phase: Phase, root: Path) -> list[dict]:
    """Run (or resume) one phase; returns one row per trial from Tune's ResultGrid.

    Raises Interrupted when the driver was stopped by SIGINT/SIGTERM: the experiment's
    state is snapshotted and the same command resumes it. Raises DiskFull (one line) when
    a disk the run writes to filled up. A saved experiment Tune cannot read back (cut
    short by a full disk or a kill mid-write) is moved aside and the phase starts again:
    its finished hops come back from the store, so little is retrained.
    """
    exp = root / phase.name
    progress = Progress(**phase.console(root))
    stop = StopFlag()
    quiet = [logging.getLogger(n) for n in ("ray.tune", "ray.train", "ray")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:  # trial failures are reported by Progress, one line each
        lg.setLevel(logging.CRITICAL)
    try:
        with stop:
            try:
                rows = _fit(phase, root, exp, progress)
            except (KeyboardInterrupt, UserError):
                raise
            except Exception as e:
                if is_disk_full(e) or _low_disk(phase, root):
                    raise _disk_is_full(phase, root, exp) from None
                if not stop.caught and exp.exists() and _restored[0]:
                    _set_aside(exp, e)
                    if main_thread():  # the first fit left Tune's handler: ours again
                        signal.signal(signal.SIGINT, stop._on_int)
                    rows = _fit(phase, root, exp, progress)
                else:
                    raise
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    if stop.caught:
        raise Interrupted(f"the {phase.name} phase was interrupted ({stop.caught})")
    errors = [r["error"] for r in rows if r["error"]]
    if any(is_disk_full(e) for e in errors) or (errors and _low_disk(phase, root)):
        raise _disk_is_full(phase, root, exp)
    return rows


_restored = [False]  # did the last _fit restore a saved experiment?


def _fit(phase: Phase, root: Path, exp: Path, progress: Progress) -> list[dict]:
    _restored[0] = tune.Tuner.can_restore(str(exp))
    if _restored[0]:
        tuner = tune.Tuner.restore(
            str(exp), trainable=_trainable(phase), resume_errored=True, restart_errored=False
        )
        # the restored experiment brings back its own (pickled) Progress callback
    else:
        tuner = _tuner(phase, root, progress)
    grid = tuner.fit()
    return [_row(r) for r in grid]


def _set_aside(exp: Path, e: BaseException) -> None:

    dest = exp.with_name(f"{exp.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    print(
        f"[{exp.name}] its saved state cannot be read back ({type(e).__name__}: "
        f"{str(e)[:120]}); moved to {dest.name}, the phase starts again (finished hops "
        "are reused from the store)",
        file=sys.stderr,
        flush=True,
    )
    os.replace(exp, dest)


def _disk_is_full(phase: Phase, root: Path, exp: Path) -> DiskFull:
    """The error to raise, after setting the phase's Tune state aside: Tune wrote it while
    the disk was full, so parts of it may be cut short, and Tune would read them back
    (trials without a config). The phase then runs again; every hop that was saved whole
    comes back from the store. A rename needs no free blocks."""
    msg = _full_message(phase, root)
    if exp.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            os.replace(exp, exp.with_name(f"{exp.name}.disk-full-{stamp}"))
        except OSError:
            pass
    return DiskFull(msg)


def _places(phase: Phase, root: Path) -> list[Path]:
    return [Path(p) for p in (root, phase.run.store) if p]


def _low_disk(phase: Phase, root: Path) -> bool:
    return low_disk(_places(phase, root))


def _full_message(phase: Phase, root: Path) -> str:
    return full_message(_places(phase, root), f"the {phase.name} phase")


def _row(result) -> dict:
    """A trial of Tune's ResultGrid as a runner's row (phase.make_row)."""
    cfg = result.config or {}
    m = result.metrics or {}
    case = cfg.get("case") or cfg
    number = case.get("trial_number")
    tid = m.get("trial_id") or (Path(result.path).name.split("_")[1] if result.path else None)
    error = error_line(result.error) if result.error is not None else None
    return make_row(tid, number, cfg, m, error, result.path)

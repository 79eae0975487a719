"""`takd-search run`: one search over one space file, start to answer.

The procedure, in order (each phase is a Tune experiment: tune_phase.py):

1. validate the space, load the data, check the models and the cluster's resources,
   all before anything is written (plan.py);
2. NoKD: every model of the space trained alone (feeds the heuristic and the report);
   the heuristic's TA is the one whose NoKD validation accuracy is nearest the
   teacher/student mean (ties: the smaller TA);
3. search: Optuna proposes paths and hyper-parameters, Tune runs them as chains;
4. equal budgets: BLKD (blkd phase) and the heuristic's path and any less-tried top-k
   path (tune phase) are topped up to as many completed tuning trials as the most-tried
   confirmed candidate path; the search's direct-path trials count towards BLKD;
5. confirmation: the candidates (top-k, heuristic) retrained with the selection seeds,
   which name the winner by mean validation accuracy; every method (BLKD and NoKD too)
   retrained with the report seeds, whose test accuracy is reported.

Every choice is deterministic: ties go to proposal order (Optuna's trial number), then
the stated preferences (baselines.py), never to Ray's random trial ids.

Each finished phase is saved in the run folder, and CSVs are rewritten after each one,
so an interrupted run keeps everything finished and the same command resumes it.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from takd_search import baselines, progress
from takd_search.atomic import write_json
from takd_search.report import report
from takd_search.report.premise import run_warnings
from takd_search.results import write_csv
from takd_search.search import resume as saved_run
from takd_search.search import study
from takd_search.search.disk import DiskFull, full_message, is_disk_full
from takd_search.search.methods import _budget, _candidates, _hop_seconds, _methods
from takd_search.search.phase import Phase
from takd_search.search.plan import check_machine, make_plan
from takd_search.search.runner import make_runner
from takd_search.search.resume import _abs
from takd_search.search.rows import _baseline_rows, _confirm_rows, _trial_rows
from takd_search.search.run_dir import (
    _link,
    _load_done,
    _pick_run_dir,
    _set_state,
    _write_start,
    say,
)
from takd_search.search.space import PathSpace, snapshot_epochs
from takd_search.search.stop import Interrupted
from takd_search.search.summary import _summary, answer

__all__ = ["RunFailed", "answer", "run_search", "say"]


class RunFailed(Exception):
    """Every trial of a phase failed: nothing to compare; the message says why."""


def run_search(
    space_ref: str | None,
    *,
    overrides: dict | None = None,
    results_dir: str | os.PathLike | None = None,
    store_root: str | os.PathLike | None = None,
    no_store: bool = False,
    address: str | None = None,
    resume: str | os.PathLike | None = None,
    new: bool = False,
    device: str | None = None,
    dry_run: bool = False,
    write_report: bool = True,
    runner=None,
) -> Path | None:
    """Run (or resume) a search; returns the run folder. Raises UserError on bad input
    (before anything is written) and Interrupted when stopped (state kept).
    dry_run: check everything, print the plan (`dryrun.plan`), write nothing, return None.
    write_report: write report.md and its plots into the run folder at the end.
    runner: 'ray' (Ray Tune, the default), 'inprocess' (every trial in this process, no
    Ray), or a runner object (runner.py); None: $TAKD_SEARCH_RUNNER, else 'ray'.

    space_ref / results_dir None: `digits_vgg` / `results`, or with `resume` the run's own.
    A resumed run keeps its saved settings (resume.py); a flag contradicting them is refused.
    """
    p = make_plan(
        space_ref,
        overrides=overrides,
        results_dir=results_dir,
        store_root=store_root,
        no_store=no_store,
        resume=resume,
        device=device,
    )
    if dry_run:
        from takd_search.search import dryrun  # its timing probe: only for --dry-run

        store_arg = p.prev.get("store") if p.prev is not None else store_root
        print(dryrun.plan_text(dryrun.plan(p.space, p.ds, p.sizes, p.train, p.results_dir,
                                           store_arg, no_store, address, p.device,
                                           p.resume)))  # fmt: skip
        return None

    runner = make_runner(runner)
    store = check_machine(p, address, store_root, no_store)
    space, space_json, text, space_file = p.space, p.space_json, p.text, p.space_file
    overrides, results_dir, device, ds, own = p.overrides, p.results_dir, p.device, p.ds, p.own
    teacher, student, candidates, sizes, train = (
        p.teacher, p.student, p.candidates, p.sizes, p.train
    )  # fmt: skip
    classes = ds.num_classes
    run_dir = p.resume or _pick_run_dir(space, space_json, results_dir, new, store)
    fresh = not (run_dir / "space.json").exists()
    owner = saved_run.DriverLock(run_dir).acquire()  # the same command twice: one line
    try:
        concurrency = runner.start(address, run_dir, space.resources)
    except BaseException:
        owner.release()
        if fresh:  # nothing of a run that never started stays behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    run = {
        "dataset": space.data.dataset,
        "data_dir": _abs(space.data.data_dir),
        "device": device,
        "val_fraction": space.data.val_fraction,
        "split_seed": space.data.split_seed,
        "augment": space.data.augment,
        "image_size": space.data.image_size,
        "store": store,
        "train": asdict(train),
        "snapshots": list(snapshot_epochs(space, train.epochs)),
        "seed": space.search.seed,
        "cpus": space.resources.cpu,
        "teacher": own.describe() if own else None,
        "attempts_dir": str((run_dir / "tune" / "attempts").resolve()),
        "driver": uuid.uuid4().hex,  # this driver's id: a trial it restarts is a retry
    }
    if fresh:  # settings first: space.json is what makes the folder a run folder
        write_json(
            run_dir / saved_run.SETTINGS,
            saved_run.settings(space_file, overrides, results_dir, store, device),
        )
        _write_start(run_dir, space_json, text, run, runner.resources)
    progress.attach_log(run_dir / "console.log")  # the console, copied into the run folder
    common = dict(
        run=run,
        teacher=own,  # shipped to trials (the file's bytes) with the data set
        cpu=space.resources.cpu,
        gpu=space.resources.gpu,
        concurrency=concurrency,
        max_failures=space.search.max_failures,
        seed=space.search.seed,
        batch=space.search.batch,
    )
    tune_root = run_dir / "tune"
    say(
        f"run folder {run_dir} | {space.data.dataset} {teacher} -> {student}, TAs "
        f"{', '.join(candidates) or 'none'} | {train.epochs} epochs/hop | up to "
        f"{concurrency} trials at once"
    )
    t0 = time.perf_counter()
    done = _load_done(run_dir)
    study_spaces: dict = {}  # phase -> its PathSpace, for the study.db mirror

    def phase(name: str, **kw) -> list[dict]:
        if name in done:
            say(f"[{name}] already complete ({len(done[name])} trials), kept")
            return done[name]
        rows = runner.run_phase(Phase(name=name, dataset=ds, **common, **kw), tune_root)
        _report_corrupt(run_dir, rows)
        write_json(run_dir / "phases" / f"{name}.json", rows)
        done[name] = rows
        _mirror_study(run_dir, done, study_spaces)
        if rows and not any(r["status"] in ("completed", "pruned") for r in rows):
            errors = [r["error"] for r in rows if r["error"]]
            raise RunFailed(
                f"every {name} trial failed, e.g. {errors[0] if errors else 'no result'}; "
                f"the trials' logs are in {tune_root / name}"
            )
        return rows

    try:
        _set_state(run_dir, "running")
        seed = space.search.seed
        everyone = [teacher, *candidates, student]
        nokd = phase(
            "nokd", configs=[{"method": "nokd", "path": m, "seed": seed} for m in everyone]
        )
        write_csv(run_dir, "baselines", _baseline_rows(nokd, teacher, student, sizes))
        _warn_teacher(nokd, teacher, student, own)
        nokd_val = {
            r["config"]["path"]: r["metrics"].get("val_acc")
            for r in nokd
            if r["status"] == "completed"
        }
        n_val = len(ds.split(space.data.val_fraction, space.data.split_seed)[1])
        ta = (
            baselines.heuristic_ta(nokd_val, teacher, student, candidates, sizes, n_val)
            if all(m in nokd_val for m in everyone)
            else None
        )
        path_space = PathSpace(space, sizes, classes=classes)
        study_spaces["search"] = path_space
        search = phase(
            "search",
            space=path_space,
            sampler=space.search.sampler,
            n_trials=space.search.n_trials,
            time_budget_s=space.search.time_budget_s,
            grid=path_space.grid() if space.search.sampler == "grid" else None,
            asha=space.search.scheduler == "asha",
            grace_epochs=space.search.grace_epochs,
        )
        trials = _trial_rows(search, "search", seed)
        write_csv(run_dir, "trials", trials)
        # equal budgets: every compared method's path gets as many completed tuning trials
        # as the most-tried confirmed candidate path (top-up phases train every trial in
        # full, no early stopping, so their completed count is exact)
        budget = _budget(trials, space, teacher, student, ta)
        direct = f"{teacher}>{student}"
        n_blkd = max(space.baselines.blkd_trials or 0, budget["need"].get(direct, 0))
        blkd_space = PathSpace(space, sizes, direct_only=True, classes=classes)
        study_spaces["blkd"] = blkd_space  # mirrored into study.db even with no trials
        if n_blkd:
            blkd = phase(
                "blkd",
                space=blkd_space,
                sampler=space.search.sampler,
                n_trials=n_blkd,
                grid=blkd_space.grid() if space.search.sampler == "grid" else None,
            )
        else:
            blkd = _skip_phase(run_dir, done, "blkd")
        trials = trials + _trial_rows(blkd, "blkd", seed)
        schedule = [p for p, k in budget["need"].items() if p != direct for _ in range(k)]
        if schedule:
            tune_space = PathSpace(space, sizes, classes=classes, schedule=schedule)
            study_spaces["tune"] = tune_space
            # a grid search gives every path the same grid, so this is rarely needed there;
            # the per-path parameter names do not form one grid: TPE then
            sampler = "tpe" if space.search.sampler == "grid" else space.search.sampler
            extra = phase("tune", space=tune_space, sampler=sampler, n_trials=len(schedule))
        else:
            extra = _skip_phase(run_dir, done, "tune")
        trials = trials + _trial_rows(extra, "tune", seed)
        write_csv(run_dir, "trials", trials)
        methods = _methods(trials, space, teacher, student, ta)
        write_csv(run_dir, "baselines", _baseline_rows(nokd, teacher, student, sizes, methods, ta))
        select_seeds = space.baselines.select_seeds
        if select_seeds is None:
            select_seeds = baselines.default_select_seeds(space.baselines.confirm_seeds, seed)
        plan = baselines.confirmation_plan(
            {k: {x: v[x] for x in ("path", "guidance", "hops", "lr")} for k, v in methods.items()},
            space.baselines.confirm_seeds,
            teacher_seed=None if space.baselines.reseed_teacher else seed,
            select_seeds=select_seeds,
            candidates=_candidates(methods),
        )
        confirm = phase("confirm", configs=plan)
        crow = _confirm_rows(confirm)
        write_csv(run_dir, "confirmation", crow)
        summary = _summary(
            space,
            run_dir,
            methods,
            crow,
            trials,
            nokd_val,
            ta,
            path_space,
            teacher,
            student,
            time.perf_counter() - t0,
            select_seeds=select_seeds,
            n_val=n_val,
            budget=budget,
            hop_seconds=_hop_seconds([nokd, search, blkd, extra, confirm]),
        )
        write_json(run_dir / "summary.json", summary)
        _set_state(run_dir, "complete")
    except RunFailed:
        _set_state(run_dir, "failed")
        raise
    except Interrupted as e:
        _set_state(run_dir, "interrupted")
        say(
            f"\n{e}; finished trials are saved. Resume with the same command, or: "
            f"{saved_run.command(run_dir, address)}"
        )
        raise
    except BaseException as e:  # never "running" once no driver runs it
        try:
            _set_state(run_dir, "stopped", f"{type(e).__name__}: {e}")
        except OSError:
            pass  # no state file to overwrite yet
        if isinstance(e, OSError) and is_disk_full(e):
            # the disk filled between phases (a phase's own writes are caught in run_phase):
            # every file is written atomically, so nothing half-written is left to resume
            raise DiskFull(full_message([run_dir, store], "writing results")) from None
        raise
    finally:
        logs = runner.logs()
        if logs:
            _link(run_dir / "ray_logs", logs)
        owner.release()
    print(answer(summary))
    if write_report:
        _write_report(run_dir)
    return run_dir


def _warn_teacher(nokd: list[dict], teacher: str, student: str, own=None) -> None:
    """One line each when the teacher is not better than the student alone, or a
    brought teacher measures far below its sidecar's claim (validation, `premise`)."""

    done = [r for r in nokd if r["status"] == "completed"]
    val = {r["config"]["path"]: r["metrics"].get("val_acc") for r in done}
    for line in run_warnings(val, teacher, student, getattr(own, "claims", None)):
        say(line)


def _mirror_study(run_dir: Path, done: dict, spaces: dict) -> None:
    """RUN/study.db for Optuna's tools (`study.mirror`); a failure costs the mirror only."""
    try:
        study.mirror(run_dir, done, spaces)
    except Exception as e:  # the search's own state is in Tune's snapshot, not here
        say(f"warning: could not write {run_dir / study.FILE} ({type(e).__name__}: {e})")


def _write_report(run_dir: Path) -> None:
    """report.md and its plots at the end of a run (what `takd-search report` writes)."""

    try:
        out = report(run_dir)
    except Exception as e:  # the run is complete; only its report is missing
        say(
            f"warning: could not write the report ({type(e).__name__}: {e}): "
            f"run takd-search report {run_dir}"
        )
        return
    say(f"report: {out['report']} ({len(out['plots'])} plots in {run_dir})")


def _report_corrupt(run_dir: Path, rows: list[dict]) -> None:
    """Each corrupt store entry the trials met, once: on the console and in
    `<run>/events.log` (the workers' own log lines stay in Ray's logs)."""
    log = run_dir / "events.log"
    try:
        seen = {ln.split(" ", 1)[1] for ln in log.read_text().splitlines() if " " in ln}
    except OSError:
        seen = set()
    new = []
    for r in rows:
        for msg in r["metrics"].get("corrupt") or []:
            if msg not in seen:
                seen.add(msg)
                new.append(msg)
    if new:
        for msg in new:
            say(msg)
        with open(log, "a") as f:
            f.writelines(f"{time.strftime('%FT%T%z')} {msg}\n" for msg in new)


def _skip_phase(run_dir: Path, done: dict, name: str) -> list[dict]:
    """A top-up phase with nothing to do: recorded as finished with no trials."""
    if name not in done:
        write_json(run_dir / "phases" / f"{name}.json", [])
        done[name] = []
    return done[name]

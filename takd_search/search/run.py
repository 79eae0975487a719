"""`takd-search run`: one search over one space file, start to answer.

The procedure, in order (each phase runs through a runner: Ray Tune or in-process):

1. check the space, the data, the models and this machine before anything is written
   (plan.py), then open the run folder (session.py);
2. NoKD: every model of the space trained alone (the heuristic's input and a baseline);
   the heuristic's TA is the one whose NoKD validation accuracy is nearest the
   teacher/student mean (ties: the smaller TA);
3. three tuning procedures with the same number of proposals, each from a fresh sampler
   seeded alike and asked in the same fixed batches: the search over paths, BLKD (the
   direct path) and the heuristic's path (methods.py);
4. selection: each procedure's k best configurations retrained with the selection seeds;
   each procedure keeps the one with the best mean validation accuracy;
5. confirmation: the chosen configurations and NoKD retrained with the report seeds, whose
   test accuracies are reported and compared pairwise (summary.py).

Every choice is deterministic: ties go to proposal order (Optuna's trial number), then the
stated preferences (baselines.py), never to Ray's trial ids or completion order. Each
finished phase is saved in the run folder, so the same command resumes an interrupted run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from takd_search import baselines
from takd_search.atomic import write_json
from takd_search.report import report
from takd_search.report.premise import run_warnings
from takd_search.search import methods as procedures
from takd_search.search.disk import DiskFull, full_message, is_disk_full
from takd_search.search.plan import check_machine, make_plan
from takd_search.search.resume import command as saved_run_command
from takd_search.search.rows import baseline_rows, confirm_rows, trial_rows
from takd_search.search.run_dir import say
from takd_search.search.runner import make_runner
from takd_search.search.session import RunFailed, Session
from takd_search.search.space import PathSpace
from takd_search.search.stop import Interrupted
from takd_search.search.summary import answer, footer, summarize

__all__ = ["RunFailed", "answer", "run_search", "say"]


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
    trackers=(),
    callbacks=(),
    print_answer: bool = True,
) -> Path | None:
    """Run (or resume) a search; returns the run folder. Raises UserError on bad input
    (before anything is written) and Interrupted when stopped (state kept).
    dry_run: check everything, print the plan (`dryrun.plan`), write nothing, return None.
    write_report: write report.md and its plots into the run folder at the end.
    runner: 'ray' (Ray Tune, the default), 'inprocess' (every trial in this process, no
    Ray), or a runner object (runner.py); None: $TAKD_SEARCH_RUNNER, else 'ray'.
    trackers: tracker kinds (trackers.py) besides the space's; callbacks: objects with
    `trial(phase, row)` (and optionally `answer(summary, text)`), told as trials finish.
    print_answer: the closing block on stdout (the CLI); else to the progress log only.

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
    runner = make_runner(runner, address)
    store = check_machine(p, address, store_root, no_store)
    s = Session.open(p, runner, address, new, store, trackers, callbacks)
    try:
        s.state("running")
        summary = _procedure(s)
        write_json(s.run_dir / "summary.json", summary)
        s.state("complete")
    except RunFailed:
        s.state("failed")
        raise
    except Interrupted as e:
        s.state("interrupted")
        say(f"\n{e}; finished trials are saved. Resume with the same command, or: "
            f"{saved_run_command(s.run_dir, address)}")  # fmt: skip
        raise
    except BaseException as e:  # never "running" once no driver runs it
        try:
            s.state("stopped", f"{type(e).__name__}: {e}")
        except OSError:
            pass  # no state file to overwrite yet
        if isinstance(e, OSError) and is_disk_full(e):
            # the disk filled between phases (a phase's own writes are caught by the
            # runner): every file is written atomically, so nothing half-written is left
            raise DiskFull(full_message([s.run_dir, store], "writing results")) from None
        raise
    finally:
        s.close()
    text = answer(summary)
    for part in (text, footer(summary)):
        if print_answer:
            print(part)
        else:
            say(part)
    s.answered(summary, text)
    if write_report:
        _write_report(s.run_dir)
    return s.run_dir


def _procedure(s: Session) -> dict:
    """The five phases of a run (the module docstring), from NoKD to the answer."""
    p, space = s.plan, s.plan.space
    teacher, student, seed = p.teacher, p.student, space.search.seed
    everyone = [teacher, *p.candidates, student]
    nokd = s.phase("nokd", configs=[_nokd(m, seed) for m in everyone])
    s.csv("baselines", baseline_rows(nokd, teacher, student, p.sizes))
    split = {
        "dataset": space.data.dataset,
        "data": p.ds.fingerprint,
        "val_fraction": space.data.val_fraction,
        "split_seed": space.data.split_seed,
    }
    _warn_teacher(nokd, teacher, student, p.own, split)  # fmt: skip
    nokd_val = {
        r["config"]["path"]: r["metrics"].get("val_acc")
        for r in nokd
        if r["status"] == "completed"
    }
    n_val = len(p.ds.split(space.data.val_fraction, space.data.split_seed)[1])
    ta = (
        baselines.heuristic_ta(nokd_val, teacher, student, p.candidates, p.sizes, n_val)
        if all(m in nokd_val for m in everyone)
        else None
    )
    # three tuning procedures, the same number of proposals each (methods.py)
    paths = PathSpace(space, p.sizes, classes=p.ds.num_classes)
    search = _tune(s, "search", paths, space.search.n_trials, space.search.time_budget_s)
    counts = procedures.trial_counts(space, len(search), heuristic=ta is not None)
    direct = PathSpace(space, p.sizes, direct_only=True, classes=p.ds.num_classes)
    blkd = _tune(s, "blkd", direct, counts["blkd"])
    tune = []
    if ta:
        heur = [f"{teacher}>{ta}>{student}"]
        tune = _tune(s, "tune", PathSpace(space, p.sizes, classes=p.ds.num_classes,
                                          schedule=heur), counts["tune"])  # fmt: skip
    elif "tune" not in s.done:
        s.save("tune", [])
    trials = [
        *trial_rows(search, "search", seed),
        *trial_rows(blkd, "blkd", seed),
        *trial_rows(tune, "tune", seed),
    ]
    s.csv("trials", trials)
    # selection: each procedure's k best, retrained with the selection seeds
    cands = procedures.candidates(trials, space.baselines.confirm_top_k)
    select_seeds = counts["select_seeds"]
    teacher_seed = None if space.baselines.reseed_teacher else seed
    select = None
    if select_seeds:
        select = s.phase("select", configs=_plan(cands, select_seeds, teacher_seed, "select"))
    chosen = procedures.choose(cands, select, n_val)
    methods = procedures.compared(cands, chosen, student)
    s.csv("baselines", baseline_rows(nokd, teacher, student, p.sizes, methods, ta))
    # confirmation: the chosen configurations and NoKD, with the report seeds
    reported = {k: methods[k] for k in (chosen.get("top"), "blkd", "heuristic", "nokd")
                if k in methods}  # fmt: skip
    if chosen.get("top"):
        # the matched control: BLKD at the chosen path's own student-hop hyper-parameters;
        # "the path beats BLKD" needs both comparisons to reject (summary.py), so a gain
        # that is tuning luck (a better T/alpha found by one procedure) is not credited to
        # the path (bench/calibrate.py measures the difference)
        w = methods[chosen["top"]]
        reported["blkd_matched"] = {"path": f"{teacher}>{student}", "guidance": "chain",
                                    "hops": [w["hops"][-1]], "lr": w["lr"]}  # fmt: skip
    confirm = s.phase(
        "confirm", configs=_plan(reported, space.baselines.confirm_seeds, teacher_seed, "report")
    )
    crow = confirm_rows(_relabel(select or [], chosen) + confirm)
    s.csv("confirmation", crow)
    return summarize(
        space, s.run_dir, methods, crow, trials, nokd_val, ta, paths, teacher, student,
        time.perf_counter() - s.t0, select_seeds=select_seeds, n_val=n_val,
        budget=_budget(search, blkd, tune),
        hop_seconds=procedures.mean_hop_seconds([nokd, search, blkd, tune, select, confirm]),
    )  # fmt: skip


def _nokd(model: str, seed: int) -> dict:
    """A NoKD baseline trial: the model trained alone; its test number is reported."""
    return {"method": "nokd", "path": model, "seed": seed, "sees_test": True}


def _tune(s: Session, name: str, space: PathSpace, n: int | None, budget_s=None) -> list:
    """One tuning procedure: `n` proposals (a grid: at most its size) in fixed batches,
    early-stopped by the space's scheduler; the same settings for every procedure."""
    se = s.plan.space.search
    grid = space.grid() if se.sampler == "grid" else None
    if grid is not None:
        size = 1
        for values in grid.values():
            size *= len(values)
        n = size if n is None else min(n, size)
    return s.phase(
        name,
        space=space,
        sampler=se.sampler,
        n_trials=n,
        time_budget_s=budget_s,
        grid=grid,
        asha=se.scheduler == "asha",
        grace_epochs=se.grace_epochs,
    )


def _plan(methods: dict, seeds, teacher_seed, seed_set: str) -> list[dict]:
    """Trials retraining `methods` with `seeds`: 'select' seeds never see the test set,
    'report' seeds do (the only trials of a run that do, with NoKD's)."""
    cfgs = {k: {x: v[x] for x in ("path", "guidance", "hops", "lr")} for k, v in methods.items()}
    if seed_set == "select":
        rows = baselines.confirmation_plan(
            cfgs, [], teacher_seed=teacher_seed, select_seeds=seeds, candidates=list(cfgs)
        )
    else:
        rows = baselines.confirmation_plan(cfgs, seeds, teacher_seed=teacher_seed)
    return [{**r, "sees_test": seed_set == "report"} for r in rows]


def _relabel(select: list[dict], chosen: dict[str, str]) -> list[dict]:
    """Selection rows with the chosen BLKD and heuristic candidates under the labels
    `blkd` and `heuristic` (and the candidates they displaced under the chosen's)."""
    swap = {}
    for prefix in ("blkd", "heuristic"):
        if chosen.get(prefix, prefix) != prefix:
            swap[chosen[prefix]], swap[prefix] = prefix, chosen[prefix]
    out = []
    for r in select:
        m = r["config"].get("method")
        out.append({**r, "config": {**r["config"], "method": swap.get(m, m)}} if m in swap else r)
    return out


def _budget(*phases: list[dict]) -> dict:
    """Each procedure's tuning effort: proposals (pruned and failed included), completed,
    pruned, and training seconds."""
    out = {}
    for name, rows in zip(("search", "blkd", "tune"), phases):
        out[name] = {
            "proposals": len(rows),
            "completed": sum(1 for r in rows if r["status"] == "completed"),
            "pruned": sum(1 for r in rows if r["status"] == "pruned"),
            "seconds": round(
                sum(float(r["metrics"].get("train_seconds") or 0.0) for r in rows), 3
            ),
        }
    return out


def _warn_teacher(nokd: list[dict], teacher: str, student: str, own=None, split=None) -> None:
    """One line each when the teacher is not better than the student alone, a brought
    teacher measures far below its sidecar's claim, or its sidecar shows it trained on
    another split of this data (`premise`)."""
    done = [r for r in nokd if r["status"] == "completed"]
    val = {r["config"]["path"]: r["metrics"].get("val_acc") for r in done}
    for line in run_warnings(val, teacher, student, getattr(own, "claims", None), split):
        say(line)


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

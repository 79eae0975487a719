"""`takd-search run`: one search over one space file, start to answer.

The procedure, in order (each phase is a Tune experiment; see `tuner`):

1. validate the space, load the data, check the models and the cluster's resources,
   all before anything is written;
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

import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from takd_search import baselines, models, progress
from takd_search.chain import check_shrinking
from takd_search.config import Space, load_space
from takd_search.errors import UserError
from takd_search.experiment import recipe
from takd_search.results import hop_columns, write_atomic, write_csv, write_json
from takd_search.space import PathSpace, reference_lr, snapshot_epochs

PHASES = ("nokd", "search", "blkd", "tune", "confirm")


class RunFailed(Exception):
    """Every trial of a phase failed: nothing to compare; the message says why."""


def say(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


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
) -> Path | None:
    """Run (or resume) a search; returns the run folder. Raises UserError on bad input
    (before anything is written) and tuner.Interrupted when stopped (state kept).
    dry_run: check everything, print the plan (`dryrun.plan`), write nothing, return None.
    write_report: write report.md and its plots into the run folder at the end.

    space_ref / results_dir None: `digits_vgg` / `results`, or with `resume` the run's own.
    A resumed run keeps its saved settings (resume.py); a flag contradicting them is refused.
    """
    from takd_search import resume as saved_run

    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    prev = None
    if resume:
        resume = saved_run.resume_dir(resume)
        prev = saved_run.saved(resume)
        saved_run.check_flags(
            resume,
            prev,
            space_ref=space_ref,
            overrides=overrides,
            results_dir=results_dir,
            store_root=store_root,
            no_store=no_store,
            device=device,
        )
        space = Space.model_validate(prev["space"])
        text, space_file = None, prev.get("space_file")
        results_dir, device = prev["results"], prev.get("device")
    else:
        space_ref = space_ref or "digits_vgg"
        space, space_path, text = load_space(space_ref, overrides)
        space_file = str(space_path.resolve())
    from takd_search.data import load_dataset

    ds = load_dataset(space.data.dataset, space.data.data_dir, image_size=space.data.image_size)
    # the split now: a data set too small to split fails here, before Ray starts, and the
    # workers get the split with the data
    ds.split(space.data.val_fraction, space.data.split_seed)
    if ds.is_signal and space.data.augment not in (None, "none"):
        raise UserError(
            f"data.augment: {space.data.augment!r} is for images, but {ds.name} holds 1-D "
            "signals: set data.augment to none (or leave it unset)"
        )
    teacher, student, candidates = space.model_names()
    shape, classes = ds.input_shape, ds.num_classes
    from takd_search.teacher import check_teacher, teacher_from_space

    own = teacher_from_space(space)  # a brought teacher (`teacher: teacher`), or None
    sizes = {
        m: check_teacher(own, ds) if m == "teacher" else models.model_size(m, classes, shape)
        for m in (teacher, *candidates, student)
    }
    for ta in candidates:
        check_shrinking([teacher, ta, student], classes, shape)
    check_shrinking([teacher, student], classes, shape)
    fixed = {k: v for k, v in space.train.model_dump().items() if v is not None}
    fixed["lr"] = reference_lr(space)  # searched per trial when given as choices/range
    train = recipe(space.data.dataset, family=space.models.family, **fixed)
    space_json = json.loads(space.model_dump_json())
    results_dir = Path(results_dir or "results").resolve()
    if dry_run:
        from takd_search import dryrun

        store_arg = prev.get("store") if prev is not None else store_root
        print(dryrun.plan_text(dryrun.plan(space, ds, sizes, train, results_dir, store_arg,
                                           no_store, address, device, resume)))  # fmt: skip
        return None

    from takd_search import tuner  # Ray is imported only once the input is known good

    # every check that needs no Ray before Ray starts (seconds) and before anything is
    # written: the device, and for a local run the CPUs and GPUs a trial asks for
    tuner.check_device(device)
    local = address in (None, "", "local")
    if local:
        tuner.check_resources(
            space.resources.cpu,
            space.resources.gpu,
            space.resources.concurrency,
            tuner.local_resources(),
        )
    else:
        tuner.probe_address(address)
    _check_writable(results_dir)
    if prev is not None:
        store = prev.get("store")
    else:
        store = (
            None
            if no_store
            else str(
                Path(
                    store_root or os.environ.get("TAKD_STORE") or results_dir / ".store"
                ).resolve()
            )
        )
    # an unwritable store: one line now, before the run folder is written; after the checks
    # above, so a failed check leaves nothing behind, not even an empty store
    if store is not None:
        from takd_search.store import Store

        Store(store)
    run_dir = resume or _pick_run_dir(space, space_json, results_dir, new, store)
    fresh = not (run_dir / "space.json").exists()
    owner = saved_run.DriverLock(run_dir).acquire()  # the same command twice: one line
    try:
        res = tuner.start_ray(address, token_dir=run_dir)
        concurrency = tuner.check_resources(
            space.resources.cpu, space.resources.gpu, space.resources.concurrency
        )
    except BaseException:
        owner.release()
        if fresh:  # nothing of a run that never started stays behind
            import shutil

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
        _write_start(run_dir, space_json, text, run, res)
    progress.attach_log(run_dir / "console.log")  # the console, copied into the run folder
    common = dict(
        run=run,
        teacher=own,  # shipped to trials (the file's bytes) with the data set
        cpu=space.resources.cpu,
        gpu=space.resources.gpu,
        concurrency=concurrency,
        max_failures=space.search.max_failures,
        seed=space.search.seed,
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
        rows = tuner.run_phase(tuner.Phase(name=name, dataset=ds, **common, **kw), tune_root)
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
    except tuner.Interrupted as e:
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
        if isinstance(e, OSError) and tuner.is_disk_full(e):
            # the disk filled between phases (a phase's own writes are caught in run_phase):
            # every file is written atomically, so nothing half-written is left to resume
            raise tuner.DiskFull(tuner.full_message([run_dir, store], "writing results")) from None
        raise
    finally:
        logs = tuner.session_logs()
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
    from takd_search.report.premise import run_warnings

    done = [r for r in nokd if r["status"] == "completed"]
    val = {r["config"]["path"]: r["metrics"].get("val_acc") for r in done}
    for line in run_warnings(val, teacher, student, getattr(own, "claims", None)):
        say(line)


def _mirror_study(run_dir: Path, done: dict, spaces: dict) -> None:
    """RUN/study.db for Optuna's tools (`study.mirror`); a failure costs the mirror only."""
    from takd_search import study

    try:
        study.mirror(run_dir, done, spaces)
    except Exception as e:  # the search's own state is in Tune's snapshot, not here
        say(f"warning: could not write {run_dir / study.FILE} ({type(e).__name__}: {e})")


def _write_report(run_dir: Path) -> None:
    """report.md and its plots at the end of a run (what `takd-search report` writes)."""
    from takd_search.report import report

    try:
        out = report(run_dir)
    except Exception as e:  # the run is complete; only its report is missing
        say(
            f"warning: could not write the report ({type(e).__name__}: {e}): "
            f"run takd-search report {run_dir}"
        )
        return
    say(f"report: {out['report']} ({len(out['plots'])} plots in {run_dir})")


# ---- the run folder ---------------------------------------------------------------------
def _abs(p):
    return str(Path(p).expanduser().resolve()) if p else None


def _check_writable(results_dir: Path) -> None:
    """One clear line now rather than a traceback after an hour of training. A results
    folder this check had to create is removed again: a later failed check must leave
    nothing behind."""
    made = []
    try:
        for d in (results_dir, *results_dir.parents):
            if d.exists():
                break
            made.append(d)
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = results_dir / f".write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"x" * 4096)
        finally:
            probe.unlink(missing_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot write to the results folder {results_dir} ({e.strerror}): "
            "free space or pass --results DIR on a writable disk"
        ) from None
    finally:
        for d in made:
            try:
                d.rmdir()
            except OSError:
                break


def _pick_run_dir(
    space: Space, space_json: dict, results_dir: Path, new: bool, store: str | None
) -> Path:
    """The newest unfinished run of the same space (same effective settings and store);
    else a new `<results>/<space>-<timestamp>` folder."""
    from takd_search import resume as saved_run

    if not new:
        for d in sorted(results_dir.glob(f"{space.name}-*"), reverse=True):
            try:
                state = json.loads((d / "state.json").read_text())["status"]
                prev = saved_run.saved(d)
            except (OSError, ValueError, KeyError):
                continue
            if prev["space"] == space_json and prev.get("store") == store and state != "complete":
                if saved_run.is_live(d):  # the same command twice: say so, attach to nothing
                    saved_run.DriverLock(d).acquire().release()
                say(f"resuming the unfinished run {d} (pass --new for a fresh one)")
                return d
    d = results_dir / f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while d.exists():
        n += 1
        d = results_dir / f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    return d


def _write_start(run_dir: Path, space_json: dict, text: str, run: dict, res: dict) -> None:
    if (run_dir / "space.json").exists():
        return
    write_atomic(run_dir / "space.yaml", text)
    write_json(run_dir / "space.json", space_json)
    write_json(run_dir / "versions.json", _versions(run, res))


def _versions(run: dict, res: dict) -> dict:
    import optuna
    import ray
    import torch

    from takd_search import __version__

    try:
        rev = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        rev = None
    return {
        "takd_search": __version__,
        "git_revision": rev,
        "torch": torch.__version__,
        "ray": ray.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "cluster_resources": res,
        "run": run,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


STATE_BYTES = 512  # state.json's fixed size: rewritten in place when the disk is full


def _set_state(run_dir: Path, status: str, why: str | None = None) -> None:
    """state.json, padded to STATE_BYTES: written atomically; on a full disk (no room for
    a temporary copy) overwritten in place, which needs no new block, so a stopped run
    never keeps saying "running"."""
    state = {"status": status, "at": time.strftime("%FT%T%z")}
    if why:
        state["why"] = why[:300]
    text = json.dumps(state)
    text += " " * max(0, STATE_BYTES - 1 - len(text)) + "\n"
    path = run_dir / "state.json"
    try:
        write_atomic(path, text)
    except OSError:
        if len(text) > STATE_BYTES or not path.exists():
            raise
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, text.encode(), 0)
        finally:
            os.close(fd)


def _load_done(run_dir: Path) -> dict:
    out = {}
    for name in PHASES:
        p = run_dir / "phases" / f"{name}.json"
        if p.exists():
            out[name] = json.loads(p.read_text())
    return out


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


def _link(link: Path, target: str) -> None:
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    except OSError:
        pass


# ---- rows -------------------------------------------------------------------------------
def _trial_number(r: dict) -> int | None:
    """The trial's place in the searcher's proposal order (0-based; for an Optuna phase
    Optuna's trial number): the counter Tune puts at the start of `experiment_tag`
    (1-based), read from the last result or, for a trial that never reported, its folder
    name `<trainable>_<trial id>_<tag>...`. Ray's trial ids are random: never an order."""
    tag = (r.get("metrics") or {}).get("experiment_tag")
    if not tag and r.get("path_dir") and r.get("trial_id"):
        name = Path(r["path_dir"]).name
        tag = name.split(f"{r['trial_id']}_", 1)[1] if f"{r['trial_id']}_" in name else None
    m = re.match(r"(\d+)", str(tag or ""))
    return int(m.group(1)) - 1 if m else None


def _trial_rows(rows: list[dict], phase: str, seed: int | None = None) -> list[dict]:
    """trials.csv rows of one phase, in proposal order (`trial_number`)."""
    out = []
    order = sorted(
        rows,
        key=lambda r: (
            _trial_number(r) if _trial_number(r) is not None else math.inf,
            str(r["trial_id"]),
        ),
    )
    for r in order:
        cfg, m = r["config"], r["metrics"]
        names = str(cfg.get("path", "")).split(">")
        out.append(
            {
                "trial_id": r["trial_id"],
                "trial_number": _trial_number(r),
                "phase": phase,
                "status": r["status"],
                "error": r["error"],
                "path": cfg.get("path"),
                "n_tas": max(0, len(names) - 2),
                "guidance": cfg.get("guidance"),
                "seed": cfg.get("seed", seed),
                "lr": cfg.get("lr"),
                "val_acc": m.get("score") if r["status"] in ("completed", "pruned") else None,
                "test_acc": None,  # the test set is not looked at during the search
                "epochs_trained": m.get("epoch"),
                "best_epoch": m.get("best_epoch"),
                "hops_trained": m.get("hops_trained"),
                "hops_reused": m.get("hops_reused"),
                "retries": r["retries"],
                "train_seconds": m.get("train_seconds"),
                "wall_seconds": m.get("time_total_s"),
                **hop_columns(cfg.get("hops", [])),
            }
        )
    return out


def _baseline_rows(nokd, teacher, student, sizes, methods=None, ta=None) -> list[dict]:
    out = []
    for r in nokd:
        m = r["config"]["path"]
        role = "teacher" if m == teacher else "student" if m == student else "ta"
        out.append(
            {
                "kind": "nokd",
                "model": m,
                "path": m,
                "role": role,
                "params": sizes.get(m),
                "val_acc": r["metrics"].get("val_acc"),
                "test_acc": r["metrics"].get("test_acc"),
                "seconds": r["metrics"].get("train_seconds"),
                "note": "; ".join(
                    n
                    for n in (
                        r["error"],
                        "picked by the heuristic" if m == ta else None,
                        f"retried {r['retries']}x after a failure" if r["retries"] else None,
                    )
                    if n
                )
                or None,
            }
        )
    if methods and "blkd" in methods:
        b = methods["blkd"]
        out.append(
            {
                "kind": "blkd",
                "model": student,
                "path": b["path"],
                "role": "student",
                "params": sizes.get(student),
                "val_acc": b["val_acc"],
                "T": b["hops"][0]["T"],
                "alpha": b["hops"][0]["alpha"],
                "note": f"best of its {b.get('tuning_trials')} completed tuning trials "
                "(test set: see confirmation.csv)",
            }
        )
    if methods and "heuristic" in methods:
        h = methods["heuristic"]
        out.append(
            {
                "kind": "heuristic",
                "model": ta,
                "path": h["path"],
                "role": "ta",
                "params": sizes.get(ta),
                "val_acc": h.get("val_acc"),
                "T": h["hops"][0]["T"],
                "alpha": h["hops"][0]["alpha"],
                "note": h.get("note"),
            }
        )
    return out


TUNING_PHASES = ("search", "blkd", "tune")


def _pool(trials: list[dict], path: str) -> list[dict]:
    """Every tuning trial (search, BLKD search, top-up) of one path: what a method on that
    path has its configuration chosen from."""
    return [t for t in trials if t["phase"] in TUNING_PHASES and t["path"] == path]


def _budget(trials, space, teacher, student, ta) -> dict:
    """The equal tuning budget: `target` = the most completed search trials any confirmed
    candidate path had (the top-k paths and the heuristic's), and `need` = path -> top-up
    trials that bring BLKD's path and every candidate path up to it (the search's own
    direct-path trials count towards BLKD)."""
    search = [dict(t, hops=json.loads(t["hops"])) for t in trials if t["phase"] == "search"]
    paths = [t["path"] for t in baselines.top_configs(search, space.baselines.confirm_top_k)]
    if ta:
        paths.append(f"{teacher}>{ta}>{student}")
    direct = f"{teacher}>{student}"
    done = {
        p: sum(1 for t in search if t["path"] == p and t["status"] == "completed")
        for p in dict.fromkeys([*paths, direct])
    }
    target = max([1, *(done[p] for p in paths)])
    return {
        "target": target,
        "search_completed": done,
        "need": {p: target - n for p, n in done.items() if n < target},
    }


def _skip_phase(run_dir: Path, done: dict, name: str) -> list[dict]:
    """A top-up phase with nothing to do: recorded as finished with no trials."""
    if name not in done:
        write_json(run_dir / "phases" / f"{name}.json", [])
        done[name] = []
    return done[name]


def _candidates(methods: dict) -> list[str]:
    """The methods the winner is chosen from, in rank order: top1..topk, the heuristic."""
    return [k for k in methods if k.startswith("top")] + (
        ["heuristic"] if "heuristic" in methods else []
    )


def _hop_seconds(phases: list[list[dict]]) -> dict[str, float]:
    """Mean training seconds of one trained hop, per model (child), over every hop this
    run trained: the unit cost the report's grid counterfactual charges a hop."""
    secs: dict[str, list[float]] = {}
    for rows in phases:
        for r in rows or []:
            for h in (r.get("metrics") or {}).get("hop_rows") or []:
                if h.get("status") == "trained" and h.get("seconds") is not None:
                    secs.setdefault(h["model"], []).append(float(h["seconds"]))
    return {m: sum(v) / len(v) for m, v in secs.items()}


def _method(t: dict, pool: list[dict], **extra) -> dict:
    return {
        "path": t["path"],
        "guidance": t["guidance"],
        "hops": t["hops"],
        "lr": _lr(t),
        "val_acc": t["val_acc"],
        "trial_id": t["trial_id"],
        "trial_number": t.get("trial_number"),
        "phase": t["phase"],
        "tuning_trials": sum(1 for x in pool if x["status"] == "completed"),
        "tuning_seconds": round(sum(float(x["train_seconds"] or 0) for x in pool), 3),
        **extra,
    }


def _methods(trials, space, teacher, student, ta) -> dict[str, dict]:
    """What the confirmation retrains: top-k configs, BLKD, heuristic, NoKD.

    Each method's configuration is the best (top-k: the k best) of its path's tuning
    trials, over the search, the BLKD search and the top-up phase; `tuning_trials` and
    `tuning_seconds` count what it was chosen from. Ties: see baselines.rank_key."""
    out = {}
    tuning = [dict(t, hops=json.loads(t["hops"])) for t in trials if t["phase"] in TUNING_PHASES]
    direct = f"{teacher}>{student}"
    ranked = [t for t in tuning if t["phase"] != "blkd" or t["path"] != direct]
    for i, t in enumerate(baselines.top_configs(ranked, space.baselines.confirm_top_k), 1):
        out[f"top{i}"] = _method(t, _pool(tuning, t["path"]))
    best_blkd = baselines.top_configs(_pool(tuning, direct), 1)
    if best_blkd:
        out["blkd"] = dict(_method(best_blkd[0], _pool(tuning, direct)), guidance="chain")
    if ta:
        path = f"{teacher}>{ta}>{student}"
        same = baselines.top_configs(_pool(tuning, path), 1)
        if same:
            out["heuristic"] = _method(
                same[0], _pool(tuning, path), note="the best of its own tuning trials"
            )
        elif "top1" in out:
            hop = out["top1"]["hops"][0]
            out["heuristic"] = {
                "path": path,
                "guidance": "chain",
                "hops": [hop, hop],
                "lr": out["top1"]["lr"],
                "val_acc": None,
                "tuning_trials": 0,
                "tuning_seconds": 0.0,
                "note": "no completed tuning trial: top1's first-hop values (untuned)",
            }
    out["nokd"] = {
        "path": student,
        "guidance": "chain",
        "hops": [],
        "lr": None,
        "val_acc": None,
        "tuning_trials": 0,
        "tuning_seconds": 0.0,
    }
    return out


def _lr(trial: dict) -> float | None:
    lr = trial.get("lr")
    return None if lr is None or lr != lr else float(lr)


def _confirm_rows(rows: list[dict]) -> list[dict]:
    return [
        {
            "method": r["config"].get("method"),
            "path": r["config"].get("path"),
            "guidance": r["config"].get("guidance"),
            "lr": r["config"].get("lr"),
            "seed": r["config"].get("seed"),
            "seed_set": r["config"].get("seed_set", "report"),
            "teacher_seed": r["config"].get("teacher_seed"),
            "status": r["status"],
            "val_acc": r["metrics"].get("val_acc"),
            "test_acc": r["metrics"].get("test_acc"),
            "hops": json.dumps(r["config"].get("hops", [])),
            "error": r["error"],
        }
        for r in rows
    ]


SELECTION_RULE = (
    "the candidate (top-k, heuristic) with the best mean validation accuracy over the "
    "selection seeds, which are disjoint from the report seeds; exact ties go to the "
    "shorter path, then to the search's rank (validation accuracy, then proposal order)"
)


def _summary(
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
    wall,
    *,
    select_seeds=(),
    n_val=None,
    budget=None,
    hop_seconds=None,
) -> dict:
    ok = [r for r in crow if r["status"] == "completed"]
    report = [r for r in ok if r.get("seed_set", "report") != "select"]
    chosen = [r for r in ok if r.get("seed_set") == "select"]
    test = baselines.paired_summary(report, "blkd")
    vs_nokd = baselines.paired_summary(report, "nokd")
    val = baselines.paired_summary(report, "blkd", metric="val_acc")
    cands = _candidates(methods)
    if select_seeds:
        scores = {
            k: v["mean"]
            for k, v in baselines.paired_summary(chosen, "blkd", metric="val_acc").items()
        }
        on = f"mean validation accuracy over selection seeds {list(select_seeds)}"
    else:  # no selection seeds: the search's own validation ranking (the search seed)
        scores = {k: methods[k]["val_acc"] for k in cands if methods[k].get("val_acc") is not None}
        on = f"validation accuracy in its tuning trials (search seed {space.search.seed})"
    win = baselines.winner(
        {k: {"mean": v} for k, v in scores.items()},
        cands,
        paths={k: methods[k]["path"] for k in methods},
    )
    resolution = 1.0 / n_val if n_val else None
    tied = (
        [k for k in cands if k in scores and scores[win] - scores[k] < resolution - 1e-12]
        if win and resolution
        else []
    )

    def method(k):
        if k not in methods:
            return None
        d = {
            "path": methods[k]["path"],
            "guidance": methods[k]["guidance"],
            "hops": methods[k]["hops"],
            "tuning_trials": methods[k].get("tuning_trials"),
            "tuning_seconds": methods[k].get("tuning_seconds"),
            "select_val": scores.get(k),
        }
        if methods[k].get("note"):
            d["note"] = methods[k]["note"]
        if k in test:
            t, n = test[k], vs_nokd.get(k, {})
            adj = baselines.holm(
                {
                    "blkd": t.get("p_vs_blkd") if k != "blkd" else None,
                    "nokd": n.get("p_vs_nokd") if k != "nokd" else None,
                }
            )
            d.update(
                test_mean=t["mean"],
                test_std=t["std"],
                seeds=t["n"],
                val_mean=val.get(k, {}).get("mean"),
            )
            for ref, src in (("blkd", t), ("nokd", n)):
                if k == ref:
                    continue
                d.update(
                    {
                        f"diff_vs_{ref}": src.get(f"diff_vs_{ref}"),
                        f"diff_std_vs_{ref}": src.get(f"diff_std_vs_{ref}"),
                        f"diff_ci_vs_{ref}": src.get(f"diff_ci_vs_{ref}"),
                        f"p_vs_{ref}": src.get(f"p_vs_{ref}"),
                        f"p_holm_vs_{ref}": adj[ref],
                        f"p_note_vs_{ref}": src.get(f"p_note_vs_{ref}"),
                    }
                )
        return d

    heur_vs_best = None
    if win and "heuristic" in methods and win != "heuristic":
        by = {}
        for r in report:
            if r["method"] in (win, "heuristic") and r.get("test_acc") is not None:
                by.setdefault(r["seed"], {})[r["method"]] = float(r["test_acc"])
        diffs = [v["heuristic"] - v[win] for v in by.values() if len(v) == 2]
        heur_vs_best = baselines.paired_test(diffs) if diffs else None

    n = lambda phase, status=None: sum(  # noqa: E731
        1 for t in trials if t["phase"] == phase and (status is None or t["status"] == status)
    )
    grid_hops = path_space.grid_hops()
    return {
        "space": space.name,
        "dataset": space.data.dataset,
        "run_dir": str(run_dir),
        "teacher": teacher,
        "student": student,
        "winner": win,
        "best": method(win) if win else None,
        "heuristic_ta": ta,
        "heuristic": method("heuristic"),
        "heuristic_found_best": bool(
            win and "heuristic" in methods and methods[win]["path"] == methods["heuristic"]["path"]
        ),
        "heuristic_vs_best": heur_vs_best,
        "blkd": method("blkd"),
        "nokd": method("nokd"),
        "top": {k: method(k) for k in methods if k.startswith("top")},
        "nokd_val": nokd_val,
        "selection": {
            "rule": SELECTION_RULE,
            "on": on,
            "select_seeds": list(select_seeds),
            "report_seeds": list(space.baselines.confirm_seeds),
            "scores": scores,
            "n_val": n_val,
            "resolution": resolution,
            "tied": tied if len(tied) > 1 else [],
        },
        "budget": budget,
        "compute": {
            "search_trials": n("search"),
            "search_completed": n("search", "completed"),
            "search_pruned": n("search", "pruned"),
            "search_failed": n("search", "failed"),
            "blkd_trials": n("blkd"),
            "tune_trials": n("tune"),
            "hops_trained": sum(int(t["hops_trained"] or 0) for t in trials),
            "hops_reused": sum(int(t["hops_reused"] or 0) for t in trials),
            "train_seconds": sum(float(t["train_seconds"] or 0) for t in trials),
            "grid_trials": path_space.grid_size(),
            "grid_hops": grid_hops,
            "grid_hops_total": sum(grid_hops.values()),
            "hop_seconds": hop_seconds or {},
            "paths": path_space.n_paths(),
            "wall_seconds": round(wall, 1),
        },
    }


def _pm(d: dict | None, key="test") -> str:
    if not d or d.get(f"{key}_mean") is None:
        return "-"
    return f"{100 * d[f'{key}_mean']:.2f} +- {100 * d[f'{key}_std']:.2f} %"


def _diff_text(d: dict, ref: str) -> str:
    """' BLKD +1.20 pp [95% CI -0.3, +2.7], Holm p=0.2' (or why there is no test)."""
    v = d.get(f"diff_vs_{ref}")
    if v is None:
        return ""
    name = dict(blkd="BLKD", nokd="NoKD")[ref]
    ci, p = d.get(f"diff_ci_vs_{ref}"), d.get(f"p_holm_vs_{ref}")
    out = f" {name} {100 * v:+.2f} pp"
    if ci:
        out += f" [95% CI {100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
    if p is not None:
        out += f" (Holm p={p:.2g})"
    elif d.get(f"p_note_vs_{ref}"):
        out += f" (p {d[f'p_note_vs_{ref}']})"
    return out


def answer(s: dict) -> str:
    """The closing lines: best path, its accuracy, the heuristic's, BLKD's, NoKD's, each
    with the number of tuning trials its configuration was chosen from."""
    best = s.get("best")
    lines = [
        "",
        f"== {s['space']}: {s['teacher']} -> {s['student']} on {s['dataset']} "
        f"(test accuracy over {best['seeds'] if best and best.get('seeds') else 0} "
        "report seeds) ==",
    ]

    def tuned(d):
        return f"  [{d.get('tuning_trials', '?')} tuning trials]" if d else ""

    if best:
        lines.append(
            f"best path  {best['path']:<40} {_pm(best)}  vs"
            f"{_diff_text(best, 'blkd')};{_diff_text(best, 'nokd')}{tuned(best)}"
        )
        tied = (s.get("selection") or {}).get("tied") or []
        if tied:
            lines.append(
                f"           tied within one validation image with "
                f"{', '.join(t for t in tied if t != s['winner'])}; "
                "chosen by the stated tie rule (shorter path, then search rank)"
            )
    h = s.get("heuristic")
    if h:
        hv = s.get("heuristic_vs_best")
        if s["heuristic_found_best"]:
            found = "the same path as the best"
        elif hv and hv.get("ci") and (hv["ci"][1] < 0):
            found = f"worse than the best: {100 * hv['mean']:+.2f} pp, CI excludes 0"
        else:
            found = "another path; not separated from the best on these seeds"
        lines.append(f"heuristic  {h['path']:<40} {_pm(h)}  ({found}){tuned(h)}")
    if s.get("blkd"):
        lines.append(f"BLKD       {s['blkd']['path']:<40} {_pm(s['blkd'])}{tuned(s['blkd'])}")
    if s.get("nokd"):
        lines.append(f"NoKD       {s['nokd']['path']:<40} {_pm(s['nokd'])}")
    c = s["compute"]
    lines.append(
        f"compute    {c['search_trials']} search + {c['blkd_trials']} BLKD + "
        f"{c.get('tune_trials', 0)} top-up trials "
        f"({c['search_pruned']} pruned, {c['search_failed']} failed), "
        f"{c['hops_trained']} hops trained, {c['hops_reused']} reused; an exhaustive "
        f"grid would train {c.get('grid_hops_total', '?')} distinct hops; "
        f"{c['wall_seconds']:.0f} s wall"
    )
    lines.append(f"results    {s['run_dir']}")
    return "\n".join(lines)

"""The plumbing of one run: its folder, its runner, and each phase run once and saved.

`Session.open` takes a checked plan (plan.py), picks or resumes the run folder, takes the
driver lock and starts the runner; `Session.phase` runs one phase through the runner
unless a finished copy is saved in `phases/`, saves it, mirrors study.db and refuses a
phase whose every trial failed. run.py tells the procedure in terms of these.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from takd_search import progress
from takd_search.atomic import write_json
from takd_search.results import write_csv
from takd_search.search import resume as saved_run
from takd_search.search import study
from takd_search.search.fractions import upgrade_rows
from takd_search.search.phase import Phase
from takd_search.search.resume import abs_path
from takd_search.search.run_dir import (
    load_done,
    pick_run_dir,
    say,
    set_state,
    symlink,
    write_start,
)
from takd_search.search.settings import RunSettings
from takd_search.search.space import snapshot_epochs
from takd_search.search.study import LiveMirror
from takd_search.trackers import make_trackers


class RunFailed(Exception):
    """Every trial of a phase failed: nothing to compare; the message says why."""


@dataclass
class Session:
    """A run folder being worked on by this driver (the lock is held until `close`)."""

    plan: object  # plan.RunPlan
    run_dir: Path
    runner: object
    common: dict  # Phase fields every phase shares (run settings, resources, seed, batch)
    done: dict = field(default_factory=dict)  # phase name -> its saved rows
    spaces: dict = field(default_factory=dict)  # phase name -> its PathSpace (study.db)
    owner: object = None
    t0: float = field(default_factory=time.perf_counter)
    watchers: list = field(default_factory=list)  # trackers and callbacks: every phase

    @classmethod
    def open(
        cls,
        p,
        runner,
        address: str | None,
        new: bool,
        store: str | None,
        trackers=(),
        callbacks=(),
    ) -> Session:
        """trackers: tracker kinds (trackers.KINDS) besides the space's `search.trackers`;
        callbacks: objects with `trial(phase, row)`, told of every finished trial."""
        space = p.space
        run_dir = p.resume or pick_run_dir(space, p.space_json, p.results_dir, new, store)
        fresh = not (run_dir / "space.json").exists()
        owner = saved_run.DriverLock(run_dir).acquire()  # the same command twice: one line
        try:
            concurrency = runner.start(address, run_dir, space.resources)
        except BaseException:
            owner.release()
            if fresh:  # nothing of a run that never started stays behind
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        run = run_settings(p, store, run_dir)
        if fresh:  # settings first: space.json is what makes the folder a run folder
            write_json(
                run_dir / saved_run.SETTINGS,
                saved_run.settings(p.space_file, p.overrides, p.results_dir, store, p.device),
            )
            write_start(run_dir, p.space_json, p.text, run.as_dict(), runner.resources)
        progress.attach_log(run_dir / "console.log")  # the console, copied into the folder
        common = dict(
            run=run,
            teacher=p.own,  # shipped to trials (the file's bytes) with the data set
            cpu=space.resources.cpu,
            gpu=space.resources.gpu,
            concurrency=concurrency,
            max_failures=space.search.max_failures,
            seed=space.search.seed,
            batch=space.search.batch,
        )
        say(
            f"run folder {run_dir} | {space.data.dataset} {p.teacher} -> {p.student}, TAs "
            f"{', '.join(p.candidates) or 'none'} | {p.train.epochs} epochs/hop | up to "
            f"{min(concurrency, space.search.batch)} trials at once ({runner.name} runner)"
        )
        kinds = [*(space.search.trackers or []), *(trackers or [])]
        watchers = [*make_trackers(kinds, run_dir), *callbacks]
        return cls(p, run_dir, runner, common, load_done(run_dir), owner=owner,
                   watchers=watchers)  # fmt: skip

    def phase(self, name: str, space=None, **kw) -> list[dict]:
        """Run phase `name` (or keep its saved rows); `space`: a search phase's PathSpace."""
        if space is not None:
            self.spaces[name] = space
        if name in self.done:
            say(f"[{name}] already complete ({len(self.done[name])} trials), kept")
            return self.done[name]
        root = self.run_dir / "tune"
        live = LiveMirror(self.run_dir, self.spaces)
        try:
            rows = self.runner.run_phase(
                Phase(name=name, dataset=self.plan.ds, space=space,
                      watchers=[live, *self.watchers], **self.common, **kw),
                root,
            )  # fmt: skip
        finally:
            live.close()
        # trials Tune restored from an older version's snapshot carry its names
        rows = upgrade_rows(rows)
        _report_corrupt(self.run_dir, rows)
        self.save(name, rows)
        if rows and not any(r["status"] in ("completed", "pruned") for r in rows):
            errors = [r["error"] for r in rows if r["error"]]
            raise RunFailed(
                f"every {name} trial failed, e.g. {errors[0] if errors else 'no result'}; "
                f"the trials' logs are in {root / name}"
            )
        return rows

    def save(self, name: str, rows: list[dict]) -> list[dict]:
        """phases/<name>.json (an empty list: a phase with nothing to do) and study.db."""
        write_json(self.run_dir / "phases" / f"{name}.json", rows)
        self.done[name] = rows
        try:  # RUN/study.db for Optuna's tools; a failure costs the mirror only
            study.mirror(self.run_dir, self.done, self.spaces, phase=name)
        except Exception as e:
            say(f"warning: could not write {self.run_dir / study.FILE} ({type(e).__name__}: {e})")
        return rows

    def answered(self, summary: dict, text: str) -> None:
        """Trackers log the run's answer (a tracker that fails costs one line)."""
        for w in self.watchers:
            if hasattr(w, "answer"):
                try:
                    w.answer(summary, text)
                except Exception as e:
                    say(f"warning: {type(w).__name__} could not log the answer: {e}")

    def csv(self, name: str, rows: list[dict]) -> None:
        write_csv(self.run_dir, name, rows)

    def state(self, status: str, why: str | None = None) -> None:
        set_state(self.run_dir, status, why)

    def close(self) -> None:
        logs = self.runner.logs()
        if logs:
            symlink(self.run_dir / "ray_logs", logs)
        self.owner.release()


def run_settings(p, store: str | None, run_dir: Path) -> RunSettings:
    """What every trial of the run needs to know, as it travels to workers."""
    space = p.space
    return RunSettings(
        dataset=space.data.dataset,
        data_dir=abs_path(space.data.data_dir),
        device=p.device,
        val_fraction=space.data.val_fraction,
        split_seed=space.data.split_seed,
        augment=space.data.augment,
        image_size=space.data.image_size,
        store=store,
        train=p.train,
        snapshots=tuple(snapshot_epochs(space, p.train.epochs)),
        seed=space.search.seed,
        cpus=space.resources.cpu,
        teacher=p.own.describe() if p.own else None,
        attempts_dir=str((run_dir / "tune" / "attempts").resolve()),
        driver=uuid.uuid4().hex,
    )


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

"""The run folder: which one a run uses, and what it holds besides the results.

A new run gets `<results>/<space>-<timestamp>`; the same command again resumes the newest
unfinished run of the same space (same effective settings and store). The folder holds
the settings it was started with (resume.py), space.yaml/space.json, versions.json (the
software and the cluster), state.json (running, interrupted, failed, stopped, complete:
fixed-size, so it can be rewritten on a full disk), phases/*.json (each finished phase's
rows, which a resume keeps) and a link to Ray's session logs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

from takd_search import __version__
from takd_search.atomic import write_atomic, write_json
from takd_search.config import Space
from takd_search.errors import UserError
from takd_search.progress import say  # noqa: F401 (re-exported: search.say)
from takd_search.results import read_json
from takd_search.search import resume as saved_run

PHASES = ("nokd", "search", "blkd", "tune", "select", "confirm")


def check_writable(results_dir: Path) -> None:
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


def pick_run_dir(
    space: Space, space_json: dict, results_dir: Path, new: bool, store: str | None
) -> Path:
    """The newest unfinished run of the same space (same effective settings and store);
    else a new `<results>/<space>-<timestamp>` folder."""
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


def write_start(run_dir: Path, space_json: dict, text: str, run: dict, res: dict) -> None:
    if (run_dir / "space.json").exists():
        return
    write_atomic(run_dir / "space.yaml", text)
    write_json(run_dir / "space.json", space_json)
    write_json(run_dir / "versions.json", _versions(run, res))


def _versions(run: dict, res: dict) -> dict:
    import optuna  # optuna: only when a study or importances are made
    import torch  # torch: not loaded by torch-free callers

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
        "ray": _dist_version("ray"),  # without importing Ray (the in-process runner)
        "optuna": optuna.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "cluster_resources": res,
        "run": run,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


STATE_BYTES = 512  # state.json's fixed size: rewritten in place when the disk is full


def set_state(run_dir: Path, status: str, why: str | None = None) -> None:
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


def load_done(run_dir: Path) -> dict:
    """The finished phases' rows (phases/*.json), as results.read_json reads them (the
    names of older versions under today's)."""
    out = {}
    for name in PHASES:
        rows = read_json(run_dir, f"phases/{name}.json")
        if rows is not None:
            out[name] = rows
    return out


def symlink(link: Path, target: str) -> None:
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    except OSError:
        pass

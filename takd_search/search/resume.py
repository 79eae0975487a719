"""A run folder's memory of how it was started, and its owner while a driver runs it.

`takd-search run` writes `settings.json` into a new run folder: the space file as found,
the flags that overrode it, the results folder, the hop store and the device. A resume
(`--resume DIR`, or the same command again) runs with exactly those settings, so the
printed hint `takd-search run --resume DIR` is all it takes; a flag given with
`--resume` that contradicts a saved setting is refused in one line rather than silently
changing the run half-way (a different data set or budget in the same folder).

While a driver runs a folder it holds an exclusive `fcntl` lock on `driver.lock` in it;
the kernel drops the lock when the process ends, however it ends, so a second driver
(the same command in another terminal) is told the run is live instead of attaching to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from takd_search.config import load_space
from takd_search.config.flags import FLAG_OF  # the flag that sets each space key
from takd_search.errors import UserError
from takd_search.results import read_json
from takd_search.search.fractions import upgrade_key

SETTINGS = "settings.json"
LOCK = "driver.lock"


def resume_dir(resume: str | os.PathLike) -> Path:
    """--resume DIR as an absolute run folder; one line (and nothing written) if it is not
    one."""
    d = Path(resume).expanduser().resolve()
    if not (d / "space.json").is_file():
        raise UserError(
            f"--resume {resume}: not a run folder (no space.json in {d}): pass a folder "
            "made by takd-search run"
        )
    return d


def settings(
    space_file: str | None, overrides: dict, results_dir: Path, store: str | None, device
) -> dict:
    """What settings.json holds for a new run (every path absolute)."""
    return {
        "space_file": space_file,
        "overrides": {k: v for k, v in overrides.items() if v is not None},
        "results": str(results_dir),
        "store": store,
        "device": device,
    }


def saved(run_dir: Path) -> dict:
    """settings.json plus the effective space (space.json). Run folders made before
    settings.json existed give what versions.json recorded (store, device)."""
    space = read_json(run_dir, "space.json")  # an older version's names under today's
    try:
        out = json.loads((run_dir / SETTINGS).read_text())
    except (OSError, ValueError):
        try:
            run = json.loads((run_dir / "versions.json").read_text()).get("run", {})
        except (OSError, ValueError):
            run = {}
        out = {
            "space_file": None,
            "overrides": {},
            "store": run.get("store"),
            "device": run.get("device"),
        }
    out["results"] = str(run_dir.parent)  # where the folder is now, even if it was moved
    out["space"] = space
    return out


def _dotted(d: dict, key: str):
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def check_flags(
    run_dir: Path,
    prev: dict,
    *,
    space_ref: str | None,
    overrides: dict,
    results_dir,
    store_root,
    no_store: bool,
    device,
) -> None:
    """Refuse, in one line, a flag given with --resume that contradicts a saved setting.
    A flag equal to the saved value is accepted (the original command plus --resume)."""

    def refuse(flag: str, given, was) -> None:
        raise UserError(
            f"--resume {run_dir}: {flag} {given} contradicts the run's saved {was}: drop "
            f"{flag} (the run resumes with its own settings), or pass --new for a fresh run"
        )

    if space_ref is not None:  # by name: a job's copy of the same file is the same space
        name = load_space(space_ref)[0].name
        if name != prev["space"].get("name"):
            refuse("--space", space_ref, f"space {prev['space'].get('name')!r}")
    for key, value in overrides.items():
        if value is None:
            continue
        was = _dotted(prev["space"], upgrade_key(key))
        if key == "data.data_dir":
            value, was = abs_path(value), abs_path(was)
        if not _same(value, was):
            refuse(FLAG_OF.get(key, key), value, f"{key}: {was}")
    if results_dir is not None and Path(results_dir).resolve() != run_dir.parent:
        refuse("--results", results_dir, f"results folder {run_dir.parent}")
    if no_store and prev.get("store") is not None:
        refuse("--no-store", "", f"store {prev['store']}")
    if store_root is not None:
        if prev.get("store") is None:
            refuse("--store", store_root, "--no-store")
        if str(Path(store_root).expanduser().resolve()) != prev["store"]:
            refuse("--store", store_root, f"store {prev['store']}")
    if device is not None and device != prev.get("device"):
        refuse("--device", device, f"device {prev.get('device') or 'auto'}")


def command(run_dir: Path, address: str | None = None) -> str:
    """The one command that resumes `run_dir` (its settings are in the folder)."""
    join = f" --address {address}" if address not in (None, "", "local") else ""
    return f"takd-search run --resume {run_dir}{join}"


class DriverLock:
    """Exclusive ownership of a run folder by one driver process (fcntl, released by the
    kernel when the process dies)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.fd: int | None = None

    def acquire(self) -> DriverLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise UserError(
                f"the run {self.run_dir} is live: another takd-search driver ({owner}) is "
                "running it; wait for it to end (or stop it), or pass --new for a fresh run"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def is_live(run_dir: Path) -> bool:
    """Does a driver hold this run folder now?"""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def abs_path(p):
    """A user's path as stored in a run folder: absolute, ~ expanded (None stays None)."""
    return str(Path(p).expanduser().resolve()) if p else None

"""A full disk: recognised in any error, and said in one line with the fix.

A run writes to its results folder and its hop store. A full disk there, inside a phase
(tune_phase) or between phases (run.py), ends the run with `DiskFull`: one line naming
the disk and its free space, exit 2; after freeing space the same command resumes.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from takd_search.errors import UserError


class DiskFull(UserError):
    """A disk the run writes to is full: one line; after freeing space the same command
    resumes (what was written whole is kept, nothing half-written is read back)."""


_FULL = ("No space left on device", "Disk quota exceeded", "File too large", "[Errno 28]")


def is_disk_full(err) -> bool:
    """Is this error (an exception, its causes, or a trial's error line) a full disk?"""
    seen = 0
    while isinstance(err, BaseException) and seen < 10:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if any(t in str(err) for t in _FULL):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return isinstance(err, str) and any(t in err for t in _FULL)


def low_disk(places: list) -> bool:
    """Is any of these folders' disks nearly full (under 1 MB free)?"""
    for p in places:
        try:
            if shutil.disk_usage(p).free < 1 << 20:  # under 1 MB: nothing fits any more
                return True
        except OSError:
            pass
    return False


def full_message(places: list, during: str) -> str:
    """One line for a full disk: which disk, how much is free (MB), and the fix."""
    places = [Path(p) for p in places if p]
    free = []
    for i, p in enumerate(places):
        try:
            free.append((shutil.disk_usage(p).free, i, p))
        except OSError:
            pass
    least, _, where = min(free) if free else (0, 0, places[0] if places else Path.cwd())
    return (
        f"the disk holding {where} is full ({least / 1e6:.1f} MB free) during "
        f"{during}: free space there (e.g. `takd-search store gc`), or move "
        "--results/--store to a bigger disk, then run the same command again (it resumes)"
    )

"""Ends a local Ray session's processes when the driver that started them dies.

`ray.init(address="local")` starts gcs_server, the raylet, agents and workers as the
driver's children; a driver that is SIGKILLed (or crashes) cannot shut them down, and some
of them live on for a minute or more, holding ports, memory and CPU. The driver starts this
watcher with a pipe on its stdin: the pipe's end at EOF means the driver is gone (the kernel
closes it, however the process ended). Meanwhile it notes the driver's descendants every
2 s. At the end it waits a few seconds, for a clean `ray.shutdown()` to finish, and kills
whatever is left of that session: the noted descendants (checked by start time, so a
reused pid is never hit) and processes whose command line names the session.

    python -m takd_search.search.reaper SESSION_NAME DRIVER_PID
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_S = 5.0  # a clean shutdown is over by then (ray.shutdown takes ~1.5 s here)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live, non-zombie process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else (int(fields[1]), int(fields[19]))


def descendants(pid: int) -> dict[int, int]:
    """{pid: start time} of every live descendant of `pid`."""
    children: dict[int, list[int]] = {}
    starts = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st:
                children.setdefault(st[0], []).append(int(d.name))
                starts[int(d.name)] = st[1]
    out, todo = {}, list(children.get(pid, []))
    while todo:
        q = todo.pop()
        out[q] = starts[q]
        todo.extend(children.get(q, []))
    return out


def session_pids(session: str, known: dict[int, int]) -> list[int]:
    """Pids of the session: those whose command line names it, and the driver's
    descendants seen while it lived (still the same processes: same start time). Ray's
    agents rename themselves (`ray::DashboardAgent`), so the command line alone misses
    them."""
    me = os.getpid()
    out = {
        q
        for q, start in known.items()
        if q != me and (_stat(q) or (0, -1))[1] == start and _is_ray(q)
    }
    needle = session.encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            if needle in (d / "cmdline").read_bytes() and _stat(int(d.name)):
                out.add(int(d.name))
        except OSError:
            continue
    return sorted(out)


def _is_ray(pid: int) -> bool:
    """Only Ray's own processes: a driver's other children are none of our business."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(m in cmd for m in (b"ray::", b"/ray/", b"gcs_server", b"raylet"))


def reap(session: str, known: dict[int, int], grace_s: float = GRACE_S) -> int:
    """SIGTERM, then SIGKILL, every process of `session`; returns how many were left."""
    time.sleep(grace_s)
    pids = session_pids(session, known)
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 0.5)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(wait)
        pids = session_pids(session, known)
        if not pids:
            break
    return len(pids)


def watch(session: str, driver: int, every_s: float = 2.0) -> None:
    """Note the driver's descendants every `every_s` until stdin ends, then reap."""

    known: dict[int, int] = {}
    while True:
        known.update(descendants(driver))
        ready, _, _ = select.select([sys.stdin.buffer], [], [], every_s)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break  # EOF: the driver closed the pipe, or died
    reap(session, known)


def start(session: str) -> subprocess.Popen | None:
    """The watcher for this driver's session (Linux /proc only; None elsewhere)."""
    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "takd_search.search.reaper", session, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the driver's group must not end it first
    )


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(sys.argv[1], int(sys.argv[2]))

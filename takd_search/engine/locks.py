"""One trainer per missing hop: an exclusive lock a dead holder cannot keep.

`HopLock` serialises processes (trials, hosts) that want the same missing store entry:
one trains, the others wait and load. It is an fcntl lock where the file system has one
(the kernel drops it when its holder dies), else an O_EXCL file with a heartbeat.
`remove_dead_locks` clears lock files nobody holds (`takd-search store gc`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from pathlib import Path

log = logging.getLogger("takd_search.store")


class HopLock:
    """An exclusive lock on `locks/<key>.lock` that a dead holder cannot keep.

    Where the file system supports it (local disks, NFSv4) this is an `fcntl.flock`: the
    kernel releases it the instant its holder dies, however it dies, so a crashed
    trainer's lock is free at once and no waiter ever has to decide that a lock is stale.
    The holder unlinks the file on exit; a waiter that then gets the lock on the unlinked
    file sees it is no longer the one at the path and tries again.

    Elsewhere (`flock` refused) it falls back to an O_EXCL file holding "host pid",
    refreshed by a heartbeat. It is stale when its pid is dead on this host (at once), when
    it stayed empty for `EMPTY_S` (its creator died before writing), or when its heartbeat
    stopped for `stale_after` seconds (a holder on another host). Breaking it is one
    waiter's job at a time (`<lock>.break`, O_EXCL), judged again under that guard, so
    two waiters can never both break it and both train.
    """

    EMPTY_S = 5.0

    def __init__(self, path: Path, stale_after: float, poll: float, use_flock: bool = True):
        self.path, self.stale_after, self.poll = path, stale_after, poll
        self.use_flock = use_flock
        self._fd: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> HopLock:
        if self.use_flock and self._enter_flock():
            return self
        self._enter_file()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()
        return self

    # ---- flock ---------------------------------------------------------------------------
    def _enter_flock(self) -> bool:
        """True once held; False if the file system has no flock (then use the file)."""

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits; a dead holder's lock is already gone
            except OSError:
                os.close(fd)
                return False
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder unlinked it: lock the file now at the path
                os.close(fd)
                continue
            try:  # for people and for hosts on the fallback; the flock is the lock
                os.ftruncate(fd, 0)
                os.pwrite(fd, _owner().encode(), 0)
            except OSError:
                pass
            self._fd = fd
            return True

    # ---- the O_EXCL file fallback --------------------------------------------------------
    def _enter_file(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                judged = self._stale()
                if judged is not None:
                    self._break(judged)
                else:
                    time.sleep(self.poll)
                continue
            try:
                os.write(fd, _owner().encode())
            except OSError:  # a full disk: no empty lock left behind to wait on
                os.close(fd)
                self.path.unlink(missing_ok=True)
                raise
            os.close(fd)
            return

    def _stale(self) -> os.stat_result | None:
        """The lock file's stat if its holder is gone, else None."""
        try:
            st = os.stat(self.path)
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        age = time.time() - st.st_mtime
        owner = text.split()
        if not owner:
            return st if age > self.EMPTY_S else None
        if len(owner) >= 2 and owner[0] == socket.gethostname() and owner[1].isdigit():
            if not _alive(int(owner[1])):
                return st
        return st if age > self.stale_after else None

    def _break(self, judged: os.stat_result) -> None:
        """Unlink the stale lock, holding `<lock>.break` (O_EXCL) meanwhile and judging it
        again under it: a waiter that judged it stale before another broke it and took a
        fresh lock finds the fresh one alive and leaves it."""
        breaker = self.path.with_name(self.path.name + ".break")
        try:
            fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:  # a breaker dies only inside these few lines; its file is gone in seconds
                if time.time() - os.stat(breaker).st_mtime > self.EMPTY_S:
                    breaker.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return
        os.close(fd)
        try:
            now = self._stale()
            if now is not None and (now.st_ino, now.st_mtime_ns) == (
                judged.st_ino,
                judged.st_mtime_ns,
            ):
                self.path.unlink(missing_ok=True)
                log.warning("store: broke the stale lock %s", self.path)
        finally:
            breaker.unlink(missing_ok=True)

    def _heartbeat(self) -> None:
        interval = max(0.05, self.stale_after / 4)
        while not self._stop.wait(interval):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        self.path.unlink(missing_ok=True)  # before the flock goes: see _enter_flock
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _owner() -> str:
    return f"{socket.gethostname()} {os.getpid()}\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_dead_locks(folder: Path) -> int:
    """Delete lock files nobody holds (a dead trainer's); returns how many."""

    removed = 0
    if not folder.is_dir():
        return removed
    for p in list(folder.iterdir()):
        if not p.name.endswith(".lock"):
            continue
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # held: a trainer is alive
            except OSError:  # no flock here: judge it as the fallback does
                if HopLock(p, 3600.0, 0.0, use_flock=False)._stale() is None:
                    continue
            try:
                if os.fstat(fd).st_ino == os.stat(p).st_ino:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)
    return removed

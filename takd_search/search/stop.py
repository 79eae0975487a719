"""Stopping a run: Ctrl-C or SIGTERM while a phase runs ends it with `Interrupted`,
after Tune has snapshotted the experiment, so the same command resumes it.
"""

from __future__ import annotations

import os
import signal
import threading


class Interrupted(Exception):
    """The driver was asked to stop (Ctrl-C / SIGTERM); the phase's state is saved."""


class StopFlag:
    """Makes SIGTERM graceful while a phase runs, and remembers that a stop came.

    Tune handles SIGINT itself (it snapshots, then fit() returns) with a handler that, on
    the first SIGINT, puts back the handler it found. So ours goes in first: finding it
    back after fit() means a SIGINT (Ctrl-C) came; a run that simply ended leaves Tune's
    in place. That, not the trials' saved states, tells an interruption from a phase whose
    searcher had nothing more to propose. SIGTERM would hit the handler `ray.init`
    installed (a plain exit, no snapshot), so while fit() runs it is turned into SIGINT.
    Installed after ray.init, or ray.init would replace it.
    """

    def __init__(self):
        self.caught: str | None = None
        self._old = self._old_int = None

    def __enter__(self):
        if main_thread():
            self._old = signal.signal(signal.SIGTERM, self._on_term)
            self._old_int = signal.signal(signal.SIGINT, self._on_int)
        return self

    def _on_int(self, signum, frame):  # a second Ctrl-C (Tune's handler took the first)
        self.caught = self.caught or "Ctrl-C"
        raise KeyboardInterrupt

    def _on_term(self, signum, frame):
        self.caught = "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)

    def __exit__(self, *exc):
        if self._old is not None:
            if signal.getsignal(signal.SIGINT) == self._on_int:  # Tune saw a SIGINT
                self.caught = self.caught or "Ctrl-C"
            signal.signal(signal.SIGTERM, self._old)
            signal.signal(signal.SIGINT, self._old_int)
        return False


def main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()

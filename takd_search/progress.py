"""Console output: progress lines while hops train, and plain-text tables.

Progress goes to stderr (so stdout stays a clean table); on a terminal the epoch line is
rewritten in place, elsewhere (CI, logs, Ray workers) a line is printed every few epochs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from takd_search.atomic import write_atomic
from takd_search.results import read_json, require_run


def fmt_acc(x) -> str:
    """A fraction in [0, 1] as a percentage with two decimals, '-' when missing."""
    try:
        if x is None or x != x:
            return "-"
        return f"{100 * float(x):.2f}"
    except (TypeError, ValueError):
        return "-"


class HopProgress:
    """Turns the chain's events into progress lines: `hop 2/3 plain4 <- plain10 ...`."""

    def __init__(self, stream=None, every: int | None = None, prefix: str = ""):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.prefix = prefix
        self._epochs = None

    def _head(self, info: dict) -> str:
        where = f"hop {info['hop']}/{info['hops']} " if "hop" in info else ""
        src = f" <- {info['parent']}" if info.get("parent") else ""
        return f"{self.prefix}{where}{info['model']}{src}"

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "hop_start":
            self._epochs = info.get("epochs")
        elif kind == "epoch":
            e = info["epoch"]
            every = self.every or 5
            line = (
                f"{self._head(info)}: epoch {e} loss {info['train_loss']:.3f} "
                f"val {fmt_acc(info['val_acc'])}%"
            )
            if self.tty:
                self.stream.write("\r\033[K" + line)
                self.stream.flush()
            elif e == 1 or e % every == 0:
                print(line, file=self.stream, flush=True)
        elif kind == "hop_end":
            if self.tty:
                self.stream.write("\r\033[K")
            print(
                f"{self._head(info)}: {info['status']}, val {fmt_acc(info['val_acc'])}% "
                f"({info['seconds']:.1f} s{' saved' if info['status'] == 'reused' else ''})",
                file=self.stream,
                flush=True,
            )


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """A plain fixed-width table; columns are (key, heading) pairs. Accuracies are
    printed as percentages when the key ends in '_acc'."""

    def cell(row, key):
        v = row.get(key)
        if key.endswith("_acc"):
            return fmt_acc(v)
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10000:
            return f"{v:,}"
        return "-" if v is None else str(v)

    body = [[cell(r, k) for k, _ in columns] for r in rows]
    heads = [h for _, h in columns]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(heads)
    ]
    # numbers right-aligned, text left-aligned, as a reader expects
    numeric = [all(_numeric(b[i]) for b in body) if body else False for i in range(len(heads))]

    def line(cells):
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)
        ).rstrip()

    return "\n".join([line(heads), line(["-" * w for w in widths]), *map(line, body)])


def _numeric(text: str) -> bool:
    return text == "-" or text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()


# ---- the live view of a search phase ---------------------------------------------------------
def fmt_seconds(s: float | None) -> str:
    """Seconds as '42 s', '3.5 min' or '1.2 h'; '-' when unknown."""
    if s is None or s != s or s < 0:
        return "-"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


LOG = logging.getLogger("takd_search")


def say(msg: str = "") -> None:
    """One line of progress: to the `takd_search` logger, which the CLI prints to stderr
    (`print_to_stderr`) and a Python caller shows with logging's own configuration."""
    LOG.info(msg)


class _Stderr(logging.Handler):
    """Each progress line (the `takd_search` logger's own records, not its modules'),
    alone, on whatever sys.stderr is at the time (a console_log tee, pytest's capture).
    The modules' own warnings (a corrupt store entry, say) reach the console once, through
    the driver's report of them, whichever runner ran the trial."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == LOG.name

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(record.getMessage(), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def print_to_stderr() -> None:
    """The CLI's console: progress lines on stderr, as lines (once per process)."""
    if not any(isinstance(h, _Stderr) for h in LOG.handlers):
        LOG.addHandler(_Stderr())
    LOG.setLevel(logging.INFO)
    LOG.propagate = False


class LiveBlock:
    """A block of status lines redrawn in place on a terminal (one per running trial),
    with event lines printed above it; off a terminal it prints only the event lines.

    The stream is looked up at each call (sys.stderr by default): Tune pickles the
    callback that owns this, and a stream cannot be pickled."""

    def __init__(self, stream=None):
        self._stream = stream
        self._shown = 0  # lines of the block currently on screen

    def __getstate__(self):
        return {"_stream": None, "_shown": 0}

    @property
    def stream(self):
        return self._stream or sys.stderr

    @property
    def tty(self) -> bool:
        s = self.stream
        return hasattr(s, "isatty") and s.isatty()

    @property
    def screen(self):
        """The terminal itself: the block is redrawn there only, past a console_log's tee
        (the log keeps the event lines, not every redraw)."""
        return getattr(self.stream, "console", self.stream)

    def _erase(self) -> None:
        if self._shown:
            self.screen.write(f"\033[{self._shown}F\033[J")  # up N lines, clear to the end
            self._shown = 0

    def event(self, line: str, block: list[str] | None = None) -> None:
        """Print one event line (kept in the scroll-back); redraw the block below it."""
        if not self.tty:
            if self._stream is None:
                say(line)  # the progress log (the CLI prints it; a notebook's logging)
            else:
                print(line, file=self._stream, flush=True)
            return
        self._erase()
        self.stream.write(line + "\n")
        self.draw(block or [])

    def draw(self, block: list[str]) -> None:
        """Replace the block (terminal only; elsewhere a no-op: events say enough)."""
        if not self.tty:
            return
        self._erase()
        for line in block:
            self.screen.write("\033[K" + line[:200] + "\n")
        self._shown = len(block)
        self.screen.flush()


def trial_line(phase: str, label: str, info: dict, now: float) -> str:
    """`  [search] plain10>plain4>plain2: hop 3/3 epoch 12/20, best 97.22%, 41 s`: a
    running trial's line of the live view. info: hops, epoch, epochs, best, started."""
    where = (
        f"hop {info['hops']}/{info['hops']} epoch {info['epoch']}/{info['epochs']}"
        if info.get("epoch")
        else f"hops before the student ({_before(info.get('hops') or 1)})"
    )
    best = f", best {fmt_acc(info['best'])}%" if info.get("best") is not None else ""
    return f"  [{phase}] {label}: {where}{best}, {fmt_seconds(now - info['started'])}"


def _before(hops: int) -> str:
    """'1 of 2', '1-2 of 3': the hops a trial trains (or loads) before its student's,
    which report no epochs to Tune (only the student's epochs do, for ASHA)."""
    return f"1 of {hops}" if hops <= 2 else f"1-{hops - 1} of {hops}"


def eta_seconds(elapsed: float, done: int, total: int | None) -> float | None:
    """What is left of a phase at the pace so far: elapsed/done per finished trial (the
    pace already includes the trials run side by side); None before the first finishes
    or without a fixed total (a time budget)."""
    if not total or done <= 0 or done >= total:
        return None
    return elapsed / done * (total - done)


# ---- the run's status file (read by `takd-search status RUN_DIR`) -----------------------------
STATUS_FILE = "progress.json"


def write_status(run_dir, info: dict) -> None:
    """Atomically replace RUN/progress.json: the phase now running, trials done/running/
    failed/total, the best so far, per running trial its epoch, the driver's pid/host."""

    info = {**info, "pid": os.getpid(), "host": socket.gethostname(), "at": time.time()}
    try:
        write_atomic(os.path.join(run_dir, STATUS_FILE), json.dumps(info, default=str) + "\n")
    except OSError:  # a status file must never stop a search
        pass


def run_status(run_dir) -> dict:
    """What a run folder says about its run, for `takd-search status RUN_DIR`:
    {'run_dir', 'state', 'phase', 'phases_done', 'done', 'running', 'failed', 'total',
    'best', 'running_trials', 'winner', 'updated', 'alive'}. Reads files only.

    A run whose state.json says running but whose driver (same host) is gone is
    reported as 'stopped' (a crash or a kill: resume it)."""

    d = require_run(run_dir, finished=False)
    state = (read_json(d, "state.json", {}) or {}).get("status", "unknown")
    live = read_json(d, STATUS_FILE, {}) or {}
    phases_done = []
    best = None
    for name in ("nokd", "search", "blkd", "confirm"):
        rows = read_json(d, f"phases/{name}.json")
        if rows is None:
            continue
        phases_done.append(name)
        if name == "search":
            vals = [
                ((r.get("metrics") or {}).get("val_acc"), (r.get("config") or {}).get("path"))
                for r in rows
                if r.get("status") == "completed"
            ]
            vals = [v for v in vals if v[0] is not None]
            if vals:
                b = max(vals, key=lambda v: v[0])
                best = {"val_acc": b[0], "path": b[1], "phase": "search"}
    if live.get("best") and (best is None or live["phase"] == "search"):
        if best is None or live["best"]["val_acc"] >= best["val_acc"]:
            best = live["best"]
    alive = None
    if live.get("pid") and live.get("host") == socket.gethostname():
        try:
            os.kill(int(live["pid"]), 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    if state == "running" and alive is False:
        state = "stopped"
    summary = read_json(d, "summary.json", {}) or {}
    running = state == "running"
    return {
        "run_dir": str(Path(d).resolve()),
        "state": state,
        "phase": live.get("phase") if running else None,
        "phases_done": phases_done,
        "done": live.get("done") if running else None,
        "running": live.get("running") if running else None,
        "failed": live.get("failed") if running else None,
        "total": live.get("total") if running else None,
        "eta_s": live.get("eta_s") if running else None,
        "running_trials": live.get("running_trials", []) if running else [],
        "best": best,
        "winner": summary.get("winner"),
        "updated": time.strftime("%F %T", time.localtime(live["at"])) if live.get("at") else None,
        "alive": alive,
        "log": str(Path(d) / "console.log") if (Path(d) / "console.log").exists() else None,
    }


def format_status(s: dict) -> str:
    """`run_status` as a few lines for a person."""
    lines = [f"run      {s['run_dir']}", f"state    {s['state']}"]
    if s["phases_done"]:
        lines.append(f"finished {', '.join(s['phases_done'])}")
    if s["phase"]:
        total = f"/{s['total']}" if s.get("total") else ""
        failed = f", {s['failed']} failed" if s.get("failed") else ""
        eta = f", about {fmt_seconds(s['eta_s'])} left" if s.get("eta_s") else ""
        lines.append(
            f"phase    {s['phase']}: {s['done']}{total} done, {s['running']} running{failed}{eta}"
        )
        for t in s["running_trials"]:
            ep = f"epoch {t['epoch']}/{t['epochs']}" if t.get("epoch") else "earlier hops"
            lines.append(f"  running {t['label']}: {ep}")
    if s["best"]:
        b = s["best"]
        lines.append(f"best     {fmt_acc(b.get('val_acc'))}% val, {b.get('path')}")
    if s["winner"]:
        lines.append(f"winner   {s['winner']} (summary.json)")
    if s["state"] == "stopped":
        lines.append(f"the driver is gone: resume with takd-search run --resume {s['run_dir']}")
    if s["updated"]:
        lines.append(f"updated  {s['updated']}")
    if s["log"]:
        lines.append(f"log      {s['log']}")
    return "\n".join(lines)


# ---- the console log ---------------------------------------------------------------------------
class _Tee:
    """A text stream that writes to the console and to a log (a file, or a list that
    holds the lines until the run folder is known). Terminal control sequences of the
    live view (cursor moves, line clears) stay out of the log."""

    def __init__(self, stream, sink):
        self._stream, self._sink = stream, sink

    def write(self, text: str) -> int:
        n = self._stream.write(text)
        clean = _ANSI.sub("", text).replace("\r", "\n")
        if clean:
            self._sink.write(clean)
        return n

    def flush(self) -> None:
        self._stream.flush()

    @property
    def console(self):
        """The stream without the log (for output that is redrawn, not kept)."""
        return self._stream

    def isatty(self) -> bool:
        return hasattr(self._stream, "isatty") and self._stream.isatty()

    def __getattr__(self, name):
        return getattr(self._stream, name)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ACTIVE: list = []  # the console_log now capturing, if any


class console_log:
    """`with console_log(): run_search(...)` copies everything the process prints to
    stdout and stderr (progress lines, the answer, Ray's forwarded worker lines) into the
    run folder's `console.log` once the run calls `attach_log(path)`; lines printed
    before that are kept and written first. Appends, so a resumed run's log continues
    the first one's. Used by the CLI; a library caller without it gets no log file."""

    def __init__(self):
        self._held: list[str] = []
        self._file = None

    def write(self, text: str) -> None:
        try:
            if self._file is None:
                self._held.append(text)
            else:
                self._file.write(text)
                self._file.flush()
        except (OSError, ValueError):  # a full disk or a closed log must not stop a run
            pass

    def attach(self, path) -> None:
        if self._file is not None:
            return
        try:
            self._file = open(path, "a", encoding="utf-8")
        except OSError:
            return
        self.write("".join(self._held))
        self._held = []

    def __enter__(self):
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self)
        sys.stderr = _Tee(sys.stderr, self)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self._saved
        _ACTIVE.remove(self)
        if self._file is not None:
            self._file.close()
        return False


def attach_log(path) -> None:
    """Start writing the active console_log (if any) to `path`."""
    if _ACTIVE:
        _ACTIVE[-1].attach(path)

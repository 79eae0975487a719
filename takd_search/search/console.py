"""The console of a phase: one line per trial event, whichever runner runs it. No Ray.

`PhaseProgress` keeps a live block of the running trials (takd_search.progress draws it),
and writes `progress.json` into the run folder for `takd-search status`. The in-process
runner calls it directly; the Ray runner through a Tune callback (callback.py), which Tune
pickles into the experiment's snapshot, so a restored experiment brings it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from takd_search.progress import LiveBlock, eta_seconds, fmt_seconds, trial_line, write_status
from takd_search.search.trial import METRIC


class PhaseProgress:
    """One console line per event: trials done/running/total and the best so far."""

    def __init__(
        self,
        phase: str,
        total: int | None,
        label: Callable | None = None,
        run_dir: str | None = None,
        max_failures: int | None = None,
        watchers: list | None = None,
    ):
        self.phase, self.total, self.max_failures = phase, total, max_failures
        # told of every finished trial (the live study.db, trackers, an API caller's
        # callbacks): objects with `trial(phase, row)`, picklable (Tune snapshots them)
        self.watchers = list(watchers or [])
        self.label = label or (lambda cfg: cfg.get("path", "?"))
        self.done = self.failed = 0
        self.running: set = set()
        self.best: tuple[float, str] | None = None
        self.run_dir = run_dir  # where progress.json goes (`takd-search status RUN_DIR`)
        self.live: dict = {}  # trial id -> its line's state (progress.trial_line)
        self.started: float | None = None
        self.view = LiveBlock()

    def __setstate__(self, state):
        # a Progress pickled by an older version (a restored experiment) lacks the view
        defaults = {
            "run_dir": None,
            "live": {},
            "started": None,
            "view": LiveBlock(),
            "watchers": [],
        }
        self.__dict__.update({**defaults, **state})

    def _block(self) -> list[str]:
        now = time.time()
        lines = [trial_line(self.phase, v["label"], v, now) for v in self.live.values()]
        eta = self._eta()
        if lines and eta is not None:
            lines.append(f"  [{self.phase}] about {fmt_seconds(eta)} left")
        return lines

    def _eta(self) -> float | None:
        elapsed = time.time() - self.started if self.started else 0.0
        return eta_seconds(elapsed, self.done + self.failed, self.total)

    def _status(self) -> None:
        if not self.run_dir:
            return
        best = {"val_acc": self.best[0], "path": self.best[1]} if self.best else None
        write_status(
            self.run_dir,
            {
                "phase": self.phase,
                "done": self.done,
                "failed": self.failed,
                "running": len(self.running),
                "total": self.total,
                "best": best,
                "eta_s": self._eta(),
                "running_trials": [
                    {k: v.get(k) for k in ("label", "epoch", "epochs", "best")}
                    for v in self.live.values()
                ],
            },
        )

    def _line(self, what: str) -> None:
        total = f"/{self.total}" if self.total else ""
        best = f" | best {100 * self.best[0]:.2f}% {self.best[1]}" if self.best else ""
        self.view.event(
            f"[{self.phase}] {self.done + self.failed}{total} done, {len(self.running)} "
            f"running{f', {self.failed} failed' if self.failed else ''}{best} | {what}",
            self._block(),
        )
        self._status()

    def start(self, trial_id: str, config: dict) -> None:
        self.started = self.started or time.time()
        self.running.add(trial_id)
        path = str((config.get("case") or config).get("path", "?"))
        self.live[trial_id] = {
            "label": self.label(config),
            "hops": path.count(">") + 1,
            "epoch": None,
            "epochs": None,
            "best": None,
            "started": time.time(),
        }
        self.view.draw(self._block())
        self._status()

    def result(self, trial_id: str, result: dict) -> None:
        live = self.live.get(trial_id)
        if live is None or result.get("finished"):
            return
        live.update(epoch=result.get("epoch"), epochs=result.get("epochs"))
        live["best"] = result.get(METRIC, live["best"])
        self.view.draw(self._block())
        self._status()

    def complete(self, trial_id: str, config: dict, res: dict | None) -> None:
        self.running.discard(trial_id)
        self.live.pop(trial_id, None)
        self.done += 1
        res = res or {}
        score = res.get(METRIC)
        label = self.label(config)
        if score is not None and (self.best is None or score > self.best[0]):
            self.best = (score, label)
        status = "finished" if res.get("finished") else "stopped early"
        val = f"{100 * score:.2f}%" if score is not None else "-"
        self._line(f"{label}: {status}, val {val}")
        self._tell(trial_id, config, res, None)

    def retry(self, trial_id: str, config: dict, why: str, epoch, n: int | None) -> None:
        """A failed trial that will run again (Tune's FailureConfig, or the in-process
        runner's retry): our own line, not Ray's raw one."""
        died = not why or any(w in why for w in ("died", "ActorDied", "SYSTEM_ERROR", "exit"))
        after = f" after epoch {epoch}" if epoch else ""
        limit = getattr(self, "max_failures", None)  # a Progress restored from an old run
        count = f"{n or 1}/{limit}" if limit else "once more"
        what = "worker died" if died else f"failed ({why})"
        self._line(
            f"trial {trial_id} {self.label(config)}: {what}{after}, retrying "
            f"{count} from its last checkpoint"
        )

    def error(self, trial_id: str, config: dict, why: str) -> None:
        self.running.discard(trial_id)
        self.live.pop(trial_id, None)
        self.failed += 1
        self._line(f"{self.label(config)}: failed{': ' + why if why else ''}")
        self._tell(trial_id, config, {}, why or "failed")

    def _tell(self, trial_id: str, config: dict, metrics: dict, error: str | None) -> None:
        """Each watcher hears of the finished trial; a watcher that fails costs itself
        only (one line), never the run."""
        if not self.watchers:
            return
        from takd_search.search.phase import make_row  # optuna: only with watchers

        case = config.get("case") or config
        row = make_row(trial_id, case.get("trial_number"), config, metrics, error)
        for w in list(self.watchers):
            try:
                w.trial(self.phase, row)
            except Exception as e:
                self.watchers.remove(w)
                self._line(f"warning: {type(w).__name__} stopped: {type(e).__name__}: {e}")


def error_line(err) -> str:
    """The last meaningful line of an error (Ray wraps the trial's traceback)."""
    text = str(err).strip().splitlines()
    for line in reversed(text):
        if line.strip() and not line.startswith(" "):
            return line.strip()[:300]
    return type(err).__name__

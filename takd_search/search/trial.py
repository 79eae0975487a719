"""One trial: one chain through the store, reported epoch by epoch. No Ray.

Every phase of a run executes `run_trial` once per trial, through a runner: the Ray Tune
runner calls it inside a worker (trainable.py, with `tune.report`), the in-process runner
calls it in the driver (inprocess.py). It reports the student's running best validation
accuracy (`METRIC`) once per student epoch, so a scheduler can stop it early, and a final
row (flagged `finished`) with the trial's details, among them the counts of correctly
classified validation and test images, from which the statistics are computed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from takd_search.engine.augment import DeviceData
from takd_search.engine.chain import Context, hop_rows, run_chain
from takd_search.engine.distill import pick_device
from takd_search.engine.own_teacher import attach_teacher
from takd_search.engine.path import path_models
from takd_search.run_path import open_store
from takd_search.search.fractions import hop_params, upgrade_config
from takd_search.search.settings import RunSettings

METRIC = "score"  # the running best validation accuracy of the path's student

_CONTEXTS: dict = {}


def _context(run: RunSettings, dataset, teacher=None):
    """The worker's Context for a run: data moved to the device once per process (actors
    are reused between trials), store opened once. The data set itself comes from the
    driver through Ray's object store, so workers (and cluster nodes) need no data files
    and the driver's checks (md5, formats) are the only ones."""

    key = (
        dataset.fingerprint,
        run.device,
        run.val_fraction,
        run.split_seed,
        run.augment,
        run.store,
        teacher.digest if teacher is not None else None,
    )
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        device = pick_device(run.device)
        data = DeviceData(dataset, device, run.val_fraction, run.split_seed, run.augment)
        store = open_store(run.store, no_store=run.store is None)
        ctx = Context(data, run.train, store, snapshot_epochs=tuple(run.snapshots))
        if teacher is not None:  # a brought teacher: measured (or fine-tuned) once per process
            attach_teacher(ctx, teacher, seed=run.seed)
        _CONTEXTS[key] = ctx
    ctx = _CONTEXTS[key]
    ctx.train = run.train
    return ctx


def run_trial(
    config: dict,
    run,  # settings.RunSettings (or its dict form)
    dataset=None,
    teacher=None,
    *,
    report: Callable[[dict], None],
    trial_id: str = "",
) -> None:
    """One trial: train config['path'] as a chain and report the student's validation
    accuracy once per epoch (so a scheduler can stop it), then a final row with the
    details (`_Reports`).

    Hops already in the store are loaded, and a reused student's stored curve is
    replayed, so a restarted or retried trial resumes at its first unfinished hop.
    """
    import torch  # torch: not loaded by torch-free callers

    # the thread count comes from the space (resources.cpu), never from the machine: it
    # changes the floats, so it is part of the answer
    run = RunSettings.of(run)
    torch.set_num_threads(max(1, int(run.cpus)))
    config = {**config, **config.get("case", {})}  # fixed phases nest their config
    # a config saved before the fractions were renamed (Tune restoring an interrupted phase)
    config = upgrade_config(config)
    ctx = _context(run, dataset, teacher)
    # only hops whose test number is reported look at the test set: the phase says so
    # explicitly (`sees_test`); never a search, tuning or selection trial
    ctx.evaluate_test = sees_test_set(config)
    if config.get("lr") is not None:  # a searched learning rate: part of every hop's key
        ctx.train = replace(ctx.train, lr=float(config["lr"]))
    names = path_models(config["path"])
    hops = hop_params(config.get("hops", []), ctx.train.epochs)  # fractions -> epochs
    teacher_seed = config.get("teacher_seed")
    reports = _Reports(report, ctx, len(names), _attempt(run.attempts_dir, trial_id, run.driver))
    ctx.on_event = reports.on_event
    chain = run_chain(
        ctx,
        names,
        hops,
        guidance=config.get("guidance", "chain"),
        seed=int(config.get("seed", run.seed)),
        teacher_seed=None if teacher_seed is None else int(teacher_seed),
    )
    reports.final(chain)


class _Reports:
    """A trial's reports: one per student epoch (the running best validation accuracy
    and what the trial has spent so far, so a trial stopped early or failing is charged
    its compute, TA hops included), then the final one, flagged `finished`."""

    def __init__(self, report: Callable[[dict], None], ctx, n_models: int, attempt: int):
        self.report, self.ctx, self.n_models, self.attempt = report, ctx, n_models, attempt
        self.epochs = ctx.train.epochs
        self.best, self.reported = -1.0, 0
        self.spent = {"trained": 0, "reused": 0, "seconds": 0.0, "current": 0.0}
        self.before = ctx.store.stats.as_dict()
        self.t0 = time.perf_counter()

    def epoch(self, epoch: int, val: float) -> None:
        self.best = max(self.best, val)
        self.reported = epoch
        if epoch >= self.epochs:
            # the last epoch goes out with the final report: a scheduler stops a trial at
            # max_t, and a stop here would swallow the trial's details (and make a
            # finished trial look pruned)
            return
        spent = self.spent
        self.report(
            {
                METRIC: self.best,
                "val_acc": val,
                "epoch": epoch,
                "epochs": self.epochs,
                "attempt": self.attempt,
                "hops_trained": spent["trained"],
                "hops_reused": spent["reused"],
                "train_seconds": round(spent["seconds"] + spent["current"], 3),
            }
        )

    def on_event(self, kind: str, info: dict) -> None:
        spent = self.spent
        if kind == "hop_start":
            spent["trained"] += 1
            spent["current"] = 0.0
        elif kind == "hop_end":
            if info.get("status") == "reused":
                spent["reused"] += 1
            else:
                spent["seconds"] += float(info.get("seconds") or 0.0)
            spent["current"] = 0.0
        elif kind == "epoch":
            spent["current"] = float(info.get("seconds") or 0.0)
            if info.get("hop") == self.n_models:
                _inject_worker_death(info["epoch"])
                self.epoch(info["epoch"], info["val_acc"])

    def final(self, chain) -> None:
        student = chain[-1].result
        for row in student.curve[self.reported :]:  # replay a stored student's curve
            self.epoch(row["epoch"], row["val_acc"])
        after, before = self.ctx.store.stats.as_dict(), self.before
        rows = hop_rows(chain)
        # searched trials never see the test set; baselines and report seeds do
        test_acc = student.test_acc if self.ctx.evaluate_test else None
        self.report(
            {
                METRIC: student.val_acc,
                "val_acc": student.val_acc,
                "test_acc": test_acc,
                **_counts(self.ctx.data, student.val_acc, test_acc),
                "epoch": self.epochs,
                "epochs": self.epochs,
                "best_epoch": student.best_epoch,
                "hops_trained": after["trained"] - before["trained"],
                "hops_reused": after["reused"] - before["reused"],
                "bank_hits": after["bank_hits"] - before["bank_hits"],
                "bank_misses": after["bank_misses"] - before["bank_misses"],
                "train_seconds": sum(r["seconds"] for r in rows if r["status"] == "trained"),
                "wall_seconds": time.perf_counter() - self.t0,
                "hop_rows": rows,
                "attempt": self.attempt,
                # corrupt store entries this trial met (discarded, retrained): the driver
                # reports each once, on the console and in the run folder
                "corrupt": after["corrupt"][len(before["corrupt"]) :],
                "finished": True,
            }
        )


def sees_test_set(config: dict) -> bool:
    """May this trial evaluate on the test set? Only where the phase said so (`sees_test`,
    set by run.py for NoKD baselines and report seeds). Configs saved before that key
    existed: a method's report seed (never a selection seed, never a search trial)."""
    if "sees_test" in config:
        return bool(config["sees_test"])
    return "method" in config and config.get("seed_set") != "select"


def _counts(data, val_acc: float | None, test_acc: float | None) -> dict:
    """Correct/total image counts of the student's validation (and test) accuracy. The
    engine measures accuracy as correct/total in float32; with totals far below 2**24 the
    count is recovered exactly by rounding, and the statistics work in counts (float64)."""
    out = {}
    for split, acc in (("val", val_acc), ("test", test_acc)):
        total = int(data.split(split)[1].numel()) if acc is not None else None
        out[f"{split}_total"] = total
        out[f"{split}_correct"] = int(round(float(acc) * total)) if total else None
    return out


def _attempt(folder: str | None, trial_id: str, driver: str | None = None) -> int:
    """1 + how many times Tune retried this trial after a failure (a dead worker), counted
    per trial id in the run folder (Tune gives a restarted trial a fresh local folder).
    Each start appends its driver's id: a start under a driver that already started the
    trial is a retry; the first start under a new driver (a resumed run) is not."""
    if not folder or not trial_id:
        return 1
    try:
        path = Path(folder) / trial_id
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:  # one short line per start: appends never lose a count
            f.write(f"{driver or '-'}\n")
        starts = path.read_text().split()
        return len(starts) - len(set(starts)) + 1
    except OSError:
        return 1


def _inject_worker_death(epoch: int) -> None:
    """Fault injection for the reliability tests: with TAKD_FAULT_WORKER_EXIT=FILE set,
    the first trial to reach its student's epoch 2 kills its own worker process (once:
    FILE records that it happened). Never set in normal use."""
    marker = os.environ.get("TAKD_FAULT_WORKER_EXIT")
    if marker and epoch == 2:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(1)


def outcome(result: dict | None, error: bool = False) -> tuple[str, float | None, int | None]:
    """(status, score, student epoch) of a trial from its last report: 'completed' (its
    final report, flagged `finished`), 'pruned' (stopped early), 'failed' or
    'interrupted' (no report). The one place both runners read a trial's end from."""
    m = result or {}
    if error:
        return "failed", None, m.get("epoch")
    if m.get("finished"):
        return "completed", m.get(METRIC), m.get("epoch")
    if m:
        return "pruned", m.get(METRIC), m.get("epoch")
    return "interrupted", None, None

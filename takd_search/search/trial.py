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
from takd_search.engine.hop import HopParams, TrainConfig
from takd_search.engine.own_teacher import attach_teacher
from takd_search.engine.path import path_models
from takd_search.run_path import open_store
from takd_search.search.space import resolve_hops

METRIC = "score"  # the running best validation accuracy of the path's student

_CONTEXTS: dict = {}


def _context(run: dict, dataset, teacher=None):
    """The worker's Context for a run: data moved to the device once per process (actors
    are reused between trials), store opened once. The data set itself comes from the
    driver through Ray's object store, so workers (and cluster nodes) need no data files
    and the driver's checks (md5, formats) are the only ones."""

    key = (
        dataset.fingerprint,
        run["device"],
        run["val_fraction"],
        run["split_seed"],
        run["augment"],
        run["store"],
        teacher.digest if teacher is not None else None,
    )
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        device = pick_device(run["device"])
        data = DeviceData(dataset, device, run["val_fraction"], run["split_seed"], run["augment"])
        store = open_store(run["store"], no_store=run["store"] is None)
        ctx = Context(
            data, TrainConfig(**run["train"]), store, snapshot_epochs=tuple(run["snapshots"])
        )
        if teacher is not None:  # a brought teacher: measured (or fine-tuned) once per process
            attach_teacher(ctx, teacher, seed=run["seed"])
        _CONTEXTS[key] = ctx
    ctx = _CONTEXTS[key]
    ctx.train = TrainConfig(**run["train"])
    return ctx


def run_trial(
    config: dict,
    run: dict,
    dataset=None,
    teacher=None,
    *,
    report: Callable[[dict], None],
    trial_id: str = "",
) -> None:
    """One trial: train config['path'] as a chain and report the student's validation
    accuracy once per epoch (so ASHA can stop it), then a final row with the details.

    Hops already in the store are loaded, and a reused student's stored curve is
    replayed, so a restarted or retried trial resumes at its first unfinished hop.
    """
    import torch  # torch: not loaded by torch-free callers

    torch.set_num_threads(max(1, int(run["cpus"])))
    config = {**config, **config.get("case", {})}  # fixed phases nest their config
    t0 = time.perf_counter()
    ctx = _context(run, dataset, teacher)
    # only hops whose test number is reported look at the test set: the phase says so
    # explicitly (`sees_test`); never a search, tuning or selection trial
    sees_test = sees_test_set(config)
    ctx.evaluate_test = sees_test
    if config.get("lr") is not None:  # a searched learning rate: part of every hop's key
        ctx.train = replace(ctx.train, lr=float(config["lr"]))
    names = path_models(config["path"])
    epochs = ctx.train.epochs
    hops = [HopParams(**h) for h in resolve_hops(config.get("hops", []), epochs)]
    seed = int(config.get("seed", run["seed"]))
    teacher_seed = config.get("teacher_seed")
    before = ctx.store.stats.as_dict()
    best = [-1.0]
    reported = [0]
    attempt = _attempt(run.get("attempts_dir"), trial_id, run.get("driver"))
    # what this trial has spent so far, so that a trial stopped early (or failing) is
    # charged its compute: hops started training here (TA hops included) and their seconds
    spent = {"trained": 0, "reused": 0, "seconds": 0.0, "current": 0.0}

    def report_epoch(epoch: int, val: float) -> None:
        best[0] = max(best[0], val)
        reported[0] = epoch
        if epoch >= epochs:
            # the last epoch goes out with the final report below: a scheduler stops a
            # trial at max_t, and a stop here would swallow the trial's details (and make
            # a finished trial look pruned)
            return
        report(
            {
                METRIC: best[0],
                "val_acc": val,
                "epoch": epoch,
                "epochs": epochs,
                "attempt": attempt,
                "hops_trained": spent["trained"],
                "hops_reused": spent["reused"],
                "train_seconds": round(spent["seconds"] + spent["current"], 3),
            }
        )

    def on_event(kind: str, info: dict) -> None:
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
            if info.get("hop") == len(names):
                _inject_worker_death(info["epoch"])
                report_epoch(info["epoch"], info["val_acc"])

    ctx.on_event = on_event
    chain = run_chain(
        ctx,
        names,
        hops,
        guidance=config.get("guidance", "chain"),
        seed=seed,
        teacher_seed=None if teacher_seed is None else int(teacher_seed),
    )
    student = chain[-1]
    for row in student.result.curve[reported[0] :]:  # replay a stored student's curve
        report_epoch(row["epoch"], row["val_acc"])
    after = ctx.store.stats.as_dict()
    rows = hop_rows(chain)
    test_acc = student.result.test_acc if sees_test else None
    report(
        {
            METRIC: student.result.val_acc,
            "val_acc": student.result.val_acc,
            # searched trials never see the test set; baselines and confirmation report it
            "test_acc": test_acc,
            **_counts(ctx.data, student.result.val_acc, test_acc),
            "epoch": epochs,
            "epochs": epochs,
            "best_epoch": student.result.best_epoch,
            "hops_trained": after["trained"] - before["trained"],
            "hops_reused": after["reused"] - before["reused"],
            "bank_hits": after["bank_hits"] - before["bank_hits"],
            "bank_misses": after["bank_misses"] - before["bank_misses"],
            "train_seconds": sum(r["seconds"] for r in rows if r["status"] == "trained"),
            "wall_seconds": time.perf_counter() - t0,
            "hop_rows": rows,
            "attempt": attempt,
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

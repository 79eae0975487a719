"""The CSV rows of a run: trials.csv, baselines.csv and confirmation.csv, from the
phases' trial rows (tune_phase.run_phase). Columns: results.py and docs/results.md.

Rows are in the searcher's proposal order (`proposal_number`), never in the order of Ray's
random trial ids, so every choice made from them is deterministic.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from takd_search.engine.path import path_models
from takd_search.results import hop_columns

COUNTS = ("val_correct", "val_total", "test_correct", "test_total")


def proposal_number(r: dict) -> int | None:
    """The trial's place in the searcher's proposal order (0-based; for an Optuna phase
    Optuna's trial number): the counter Tune puts at the start of `experiment_tag`
    (1-based), read from the last result or, for a trial that never reported, its folder
    name `<trainable>_<trial id>_<tag>...`. Ray's trial ids are random: never an order."""
    if r.get("trial_number") is not None:  # the runners' own (the proposer's) number
        return int(r["trial_number"])
    tag = (r.get("metrics") or {}).get("experiment_tag")
    if not tag and r.get("path_dir") and r.get("trial_id"):
        name = Path(r["path_dir"]).name
        tag = name.split(f"{r['trial_id']}_", 1)[1] if f"{r['trial_id']}_" in name else None
    m = re.match(r"(\d+)", str(tag or ""))
    return int(m.group(1)) - 1 if m else None


def trial_rows(rows: list[dict], phase: str, seed: int | None = None) -> list[dict]:
    """trials.csv rows of one phase, in proposal order (`trial_number`)."""
    out = []
    order = sorted(
        rows,
        key=lambda r: (
            proposal_number(r) if proposal_number(r) is not None else math.inf,
            str(r["trial_id"]),
        ),
    )
    for r in order:
        cfg, m = r["config"], r["metrics"]
        names = path_models(cfg.get("path", ""))
        out.append(
            {
                "trial_id": r["trial_id"],
                "trial_number": proposal_number(r),
                "phase": phase,
                "status": r["status"],
                "error": r["error"],
                "path": cfg.get("path"),
                "n_tas": max(0, len(names) - 2),
                "guidance": cfg.get("guidance"),
                "seed": cfg.get("seed", seed),
                "lr": cfg.get("lr"),
                "val_acc": m.get("score") if r["status"] in ("completed", "pruned") else None,
                "test_acc": None,  # the test set is not looked at during the search
                "epochs_trained": m.get("epoch"),
                "best_epoch": m.get("best_epoch"),
                "hops_trained": m.get("hops_trained"),
                "hops_reused": m.get("hops_reused"),
                "retries": r["retries"],
                "train_seconds": m.get("train_seconds"),
                "wall_seconds": m.get("time_total_s"),
                **hop_columns(cfg.get("hops", [])),
            }
        )
    return out


def baseline_rows(nokd, teacher, student, sizes, methods=None, ta=None) -> list[dict]:
    out = []
    for r in nokd:
        m = r["config"]["path"]
        role = "teacher" if m == teacher else "student" if m == student else "ta"
        out.append(
            {
                "kind": "nokd",
                "model": m,
                "path": m,
                "role": role,
                "params": sizes.get(m),
                "val_acc": r["metrics"].get("val_acc"),
                "test_acc": r["metrics"].get("test_acc"),
                "seconds": r["metrics"].get("train_seconds"),
                "note": "; ".join(
                    n
                    for n in (
                        r["error"],
                        "picked by the heuristic" if m == ta else None,
                        f"retried {r['retries']}x after a failure" if r["retries"] else None,
                    )
                    if n
                )
                or None,
            }
        )
    if methods and "blkd" in methods:
        b = methods["blkd"]
        out.append(
            {
                "kind": "blkd",
                "model": student,
                "path": b["path"],
                "role": "student",
                "params": sizes.get(student),
                "val_acc": b["val_acc"],
                "T": b["hops"][0]["T"],
                "alpha": b["hops"][0]["alpha"],
                "note": f"best of its {b.get('tuning_trials')} completed tuning trials "
                "(test set: see confirmation.csv)",
            }
        )
    if methods and "heuristic" in methods:
        h = methods["heuristic"]
        out.append(
            {
                "kind": "heuristic",
                "model": ta,
                "path": h["path"],
                "role": "ta",
                "params": sizes.get(ta),
                "val_acc": h.get("val_acc"),
                "T": h["hops"][0]["T"],
                "alpha": h["hops"][0]["alpha"],
                "note": h.get("note"),
            }
        )
    return out


def _count(m: dict, key: str) -> int | None:
    v = m.get(key)
    return None if v is None else int(v)


def _teacher_acc(m: dict, split: str) -> float | None:
    """The path's first model's (the teacher's) accuracy from the trial's hop rows, when
    the path has a teacher (more than one hop)."""
    hops = m.get("hop_rows") or []
    return hops[0].get(f"{split}_acc") if len(hops) > 1 else None


def confirm_rows(rows: list[dict]) -> list[dict]:
    """confirmation.csv rows: one per (method, seed), with the counts of correct images
    behind each accuracy (what the paired statistics use) and the teacher's accuracy."""
    return [
        {
            "method": r["config"].get("method"),
            "path": r["config"].get("path"),
            "guidance": r["config"].get("guidance"),
            "lr": r["config"].get("lr"),
            "seed": r["config"].get("seed"),
            "seed_set": r["config"].get("seed_set", "report"),
            "teacher_seed": r["config"].get("teacher_seed"),
            "status": r["status"],
            "val_acc": r["metrics"].get("val_acc"),
            "test_acc": r["metrics"].get("test_acc"),
            **{k: _count(r["metrics"], k) for k in COUNTS},
            "teacher_val_acc": _teacher_acc(r["metrics"], "val"),
            "teacher_test_acc": _teacher_acc(r["metrics"], "test"),
            "hops": json.dumps(r["config"].get("hops", [])),
            "error": r["error"],
        }
        for r in rows
    ]

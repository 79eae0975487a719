"""A run's trials as a SQLite Optuna study, `RUN/study.db`, for Optuna's own tools.

    optuna.load_study(study_name="search", storage="sqlite:///RUN/study.db")
    optuna-dashboard sqlite:///RUN/study.db

One study per phase of the run that has finished (`nokd`, `search`, `blkd`, `tune`,
`confirm`; a top-up phase with nothing to do has none),
direction maximize, value = the student's validation accuracy (a fraction). Searched
phases carry the Optuna parameters exactly as the searcher proposed them (`ta_plain6`,
`T_plain4`, ...: replayed through the run's define-by-run space from each trial's config),
with their distributions; fixed phases carry `path` and `seed`. States: COMPLETE,
PRUNED (stopped early by ASHA: no value, its per-epoch scores as intermediate values)
and FAIL. Every trial has user attributes: path, hops (JSON), Tune's trial id, hops
trained/reused, wall seconds, and the test accuracy where the phase measured it.

This is a mirror, rebuilt from the phase rows (`phases/*.json`) after every phase: the
search state itself lives in Tune's experiment snapshot (DESIGN.md: passing `storage=` to
OptunaSearch breaks restore after a hard kill). The file is written to a temporary name
and renamed into place, so a reader never sees half a study.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from takd_search.atomic import replacing
from takd_search.engine.path import path_models
from takd_search.search.run_dir import PHASES

FILE = "study.db"


def _params(config: dict, space) -> tuple[dict, dict]:
    """(params, distributions) of a searched trial: its config answered back through the
    define-by-run space (a FixedTrial asks exactly what the real trial asked)."""
    import optuna  # optuna: only when a study or importances are made

    path = path_models(config.get("path", ""))
    fixed: dict = {f"ta_{c}": c in path[1:-1] for c in space.candidates}
    if "guidance" in config:
        fixed["guidance"] = config["guidance"]
    if config.get("lr") is not None:
        fixed["lr"] = float(config["lr"])
    for child, hop in zip(path[1:], config.get("hops") or []):
        suffix = f"_{child}" if space.per_hop else ""
        for h, v in hop.items():
            if v is not None:
                fixed[f"{h}{suffix}"] = v
    trial = optuna.trial.FixedTrial(fixed)
    space(trial)
    return dict(trial.params), dict(trial.distributions)


def _trial(row: dict, params: dict, dists: dict):
    import optuna  # optuna: only when a study or importances are made
    from optuna.trial import TrialState  # optuna: only when a study or importances are made

    m = row.get("metrics") or {}
    cfg = row.get("config") or {}
    status = row.get("status")
    value = m.get("val_acc") if status == "completed" else None
    state = {
        "completed": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
    }.get(status, TrialState.FAIL)
    if state == TrialState.COMPLETE and value is None:
        state = TrialState.FAIL
    inter = {}
    for c in (m.get("hop_rows") or [{}])[-1].get("curve") or []:
        if c.get("epoch") is not None and c.get("val_acc") is not None:
            inter[int(c["epoch"])] = float(c["val_acc"])
    if state == TrialState.PRUNED and m.get("score") is not None and m.get("epoch"):
        inter.setdefault(int(m["epoch"]), float(m["score"]))
    attrs = {
        "path": cfg.get("path"),
        "hops": json.dumps(cfg.get("hops") or []),
        "tune_trial_id": row.get("trial_id"),
        "hops_trained": m.get("hops_trained"),
        "hops_reused": m.get("hops_reused"),
        "wall_seconds": m.get("wall_seconds"),
        "test_acc": m.get("test_acc"),
        "status": status,
        "error": row.get("error"),
    }
    if "method" in cfg:
        attrs["method"] = cfg["method"]
    return optuna.trial.create_trial(
        state=state,
        value=float(value) if value is not None else None,
        params=params,
        distributions=dists,
        user_attrs={k: v for k, v in attrs.items() if v is not None},
        intermediate_values=inter,
    )


def _fixed_params(rows: list[dict]) -> tuple[dict, list[dict]]:
    """Distributions (fixed per study) and params for a fixed phase: path and seed."""
    # optuna: only when a study or importances are made
    from optuna.distributions import CategoricalDistribution

    paths = sorted({str((r.get("config") or {}).get("path")) for r in rows})
    seeds = sorted({int((r.get("config") or {}).get("seed") or 0) for r in rows})
    dists = {"path": CategoricalDistribution(paths), "seed": CategoricalDistribution(seeds)}
    params = [
        {"path": str(r["config"].get("path")), "seed": int(r["config"].get("seed") or 0)}
        for r in rows
    ]
    return dists, params


def mirror(run_dir: str | os.PathLike, done: dict[str, list[dict]], spaces: dict) -> Path:
    """(Re)write RUN/study.db from the finished phases. done: phase name -> its rows
    (as in phases/*.json); spaces: phase name -> the PathSpace it searched (search,
    blkd). Returns the file's path."""
    import optuna  # optuna: only when a study or importances are made

    run_dir = Path(run_dir)
    final = run_dir / FILE
    with replacing(final) as tmp:  # an empty file is a new SQLite database
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}")
        try:
            for name in PHASES:
                rows = done.get(name)
                if rows is None or (not rows and name not in spaces):
                    continue  # not run yet, or a top-up phase that had nothing to do
                study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
                study.set_user_attr("run_dir", str(run_dir.resolve()))
                study.set_user_attr("phase", name)
                trials = []
                if name in spaces:
                    try:
                        for r in rows:
                            params, dists = _params(r.get("config") or {}, spaces[name])
                            trials.append(_trial(r, params, dists))
                    except (ValueError, KeyError):
                        # a space whose names a config cannot answer back (the top-up phase's
                        # per-path names): path and seed, its hops in the user attributes
                        trials = []
                if not trials and rows:
                    dists, params = _fixed_params(rows)
                    trials = [_trial(r, p, dists) for r, p in zip(rows, params)]
                study.add_trials(trials)
        finally:
            storage.engine.dispose()
    return final


class LiveMirror:
    """A phase watcher (console.PhaseProgress) that rewrites study.db after every finished
    trial, so optuna-dashboard shows the search while it runs. `done`: the earlier phases'
    rows; rows of this phase accumulate as trials finish (the phase's saved rows replace
    them when it ends). The file is replaced atomically: a reader never sees half of it."""

    def __init__(self, run_dir, done: dict, spaces: dict):
        self.run_dir, self.done, self.spaces = str(run_dir), dict(done), dict(spaces)
        self.rows: dict[str, list[dict]] = {}

    def trial(self, phase: str, row: dict) -> None:
        rows = self.rows.setdefault(phase, [])
        rows.append(row)
        rows.sort(
            key=lambda r: r.get("trial_number") if r.get("trial_number") is not None else 1e9
        )
        mirror(self.run_dir, {**self.done, phase: rows}, self.spaces)

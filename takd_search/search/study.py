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

This is a mirror of the phase rows (`phases/*.json`): the search state itself lives in
Tune's experiment snapshot (DESIGN.md: passing `storage=` to OptunaSearch breaks restore
after a hard kill). It grows by appends, never by rebuilding: while a searched phase runs,
each finished trial is added to its study (one SQLite transaction: a reader sees whole
trials); when a phase ends its study is rewritten from the saved rows in a copy of the
file renamed into place. Rebuilding the whole file after every trial made the mirror
quadratic in the trials: 32 of a 33-second warm digits run, and minutes per trial in a
search of a few hundred.
"""

from __future__ import annotations

import json
import os
import shutil
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


def _storage(db: Path, fresh: bool):
    """An Optuna RDB storage on the SQLite file `db`. A file this module wrote already has
    the tables and the schema version: its compatibility check (0.3 s of alembic scripts
    per open) is skipped."""
    import optuna  # optuna: only when a study or importances are made

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.storages.RDBStorage(f"sqlite:///{db}", skip_compatibility_check=not fresh)


def _study(storage, name: str, run_dir: Path):
    """Phase `name`'s study in `storage`, empty: a copy left by an interrupted attempt of
    the phase is deleted first."""
    import optuna  # optuna: only when a study or importances are made

    if name in {s.study_name for s in storage.get_all_studies()}:
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("run_dir", str(run_dir.resolve()))
    study.set_user_attr("phase", name)
    return study


def _phase_trials(name: str, rows: list[dict], spaces: dict) -> list:
    """The frozen trials of phase `name`: searched phases with their Optuna parameters,
    fixed phases (or names a config cannot answer back) by path and seed."""
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
    return trials


def mirror(
    run_dir: str | os.PathLike,
    done: dict[str, list[dict]],
    spaces: dict,
    phase: str | None = None,
) -> Path:
    """Write RUN/study.db from the finished phases. done: phase name -> its rows (as in
    phases/*.json); spaces: phase name -> the PathSpace it searched (search, blkd).
    phase: rewrite only that phase's study in a copy of the existing file (what a run does
    when a phase ends); None, or a file that cannot be read: rebuild every phase. The
    file is replaced atomically. Returns its path."""
    run_dir = Path(run_dir)
    final = run_dir / FILE
    if phase is not None and final.exists():
        try:
            with replacing(final) as tmp:
                shutil.copyfile(final, tmp)
                _write(_storage(tmp, fresh=False), run_dir, {phase: done.get(phase)}, spaces)
            return final
        except Exception:  # a damaged or foreign file: rebuilt below
            pass
    with replacing(final) as tmp:  # an empty file is a new SQLite database
        _write(_storage(tmp, fresh=True), run_dir, done, spaces)
    return final


def _write(storage, run_dir: Path, done: dict, spaces: dict) -> None:
    try:
        for name in PHASES:
            rows = done.get(name)
            if rows is None or (not rows and name not in spaces):
                continue  # not run yet, or a top-up phase that had nothing to do
            _study(storage, name, run_dir).add_trials(_phase_trials(name, rows, spaces))
    finally:
        storage.engine.dispose()


class LiveMirror:
    """A phase watcher (console.PhaseProgress) that adds each finished trial of a searched
    phase to its study in RUN/study.db, so optuna-dashboard shows the search while it runs.
    Fixed phases (NoKD, confirm), whose path choices are only known at the end, appear when
    they end (Session.save). One storage per phase, closed by `close`."""

    def __init__(self, run_dir, spaces: dict):
        self.run_dir, self.spaces = Path(run_dir), dict(spaces)
        self._open: dict = {}  # phase -> (storage, study)

    def trial(self, phase: str, row: dict) -> None:
        if phase not in self.spaces:
            return
        try:
            params, dists = _params(row.get("config") or {}, self.spaces[phase])
        except (ValueError, KeyError):
            return  # per-path names (the top-up phase): by path and seed when it ends
        if phase not in self._open:
            db = self.run_dir / FILE
            storage = _storage(db, fresh=not db.exists())
            self._open[phase] = (storage, _study(storage, phase, self.run_dir))
        self._open[phase][1].add_trial(_trial(row, params, dists))

    def __getstate__(self) -> dict:  # pickled with its phase: open storages stay here
        return {"run_dir": self.run_dir, "spaces": self.spaces, "_open": {}}

    def close(self) -> None:
        for storage, _ in self._open.values():
            storage.engine.dispose()
        self._open.clear()

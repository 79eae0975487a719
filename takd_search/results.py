"""The run folder's files: one CSV schema, atomic writes, and loading back with pandas.

Files of a run folder (documented column by column in docs/results.md):

    trials.csv        one row per searched trial (path search and BLKD search)
    baselines.csv     NoKD per model, the tuned BLKD, the heuristic's pick
    confirmation.csv  one row per (method, seed) of the seeded confirmation
    summary.json      the answer: winner, heuristic, BLKD, NoKD, compute
    space.yaml        the space file as run (space.json: as validated)
    versions.json     library versions, git revision, and `run`: data set, store, recipe
    phases/*.json     every trial of each phase as Tune returned it (hop store keys included)
    state.json        running / interrupted / complete

`load(run_dir)` reads the three CSVs back as DataFrames with the schema's dtypes;
`load_many(paths)` stacks several runs with a `run` column; `open_run(run_dir)` loads a
finished run folder whole (tables and JSON files) as a `Run`, for the report and analyze.
Rows of trials.csv are in the order the searcher proposed them, per phase. `load` and
`read_json` are where every reader gets a run folder's files, so they read an older
version's names under today's (search/fractions.py: `kd_epochs_1` -> `kd_fraction_1`).

Every file is written to a temporary name in the same folder and renamed into place, so
a reader (or a crash) never sees half a file. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import difflib
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from takd_search.atomic import write_atomic
from takd_search.config.schema import HYPER
from takd_search.errors import UserError
from takd_search.search import fractions

MAX_HOPS = 4  # per-hop columns T_1..T_4 etc.; longer paths keep all hops in `hops` (JSON)

TRIALS = {
    "trial_id": "string",
    "trial_number": "Int64",
    "phase": "string",
    "status": "string",
    "error": "string",
    "path": "string",
    "n_tas": "Int64",
    "guidance": "string",
    "seed": "Int64",
    "lr": "float64",
    "val_acc": "float64",
    "test_acc": "float64",
    "epochs_trained": "Int64",
    "best_epoch": "Int64",
    "hops_trained": "Int64",
    "hops_reused": "Int64",
    "retries": "Int64",
    "train_seconds": "float64",
    "wall_seconds": "float64",
    "hops": "string",
    **{f"{h}_{i}": "float64" for i in range(1, MAX_HOPS + 1) for h in HYPER},
}
BASELINES = {
    "kind": "string",
    "model": "string",
    "path": "string",
    "role": "string",
    "params": "Int64",
    "val_acc": "float64",
    "test_acc": "float64",
    "T": "float64",
    "alpha": "float64",
    "seconds": "float64",
    "note": "string",
}
CONFIRMATION = {
    "method": "string",
    "path": "string",
    "guidance": "string",
    "seed": "Int64",
    "seed_set": "string",
    "teacher_seed": "Int64",
    "lr": "float64",
    "status": "string",
    "val_acc": "float64",
    "test_acc": "float64",
    # the counts behind val_acc / test_acc (images right, images evaluated): the paired
    # statistics use these exact fractions (baselines.acc_of); empty in older folders
    "val_correct": "Int64",
    "val_total": "Int64",
    "test_correct": "Int64",
    "test_total": "Int64",
    # the teacher of this row as it was measured (fractions): with reseed_teacher one
    # teacher per seed, the spread the report gives; empty for NoKD and older folders
    "teacher_val_acc": "float64",
    "teacher_test_acc": "float64",
    "hops": "string",
    "error": "string",
}
SCHEMAS = {"trials": TRIALS, "baselines": BASELINES, "confirmation": CONFIRMATION}


def frame(kind: str, rows: Iterable[dict] | pd.DataFrame) -> pd.DataFrame:
    """Rows (dicts, or a DataFrame) -> a DataFrame with exactly the schema's columns, in
    order, with its dtypes."""
    schema = SCHEMAS[kind]
    if isinstance(rows, pd.DataFrame):
        df = rows.reindex(columns=list(schema)).reset_index(drop=True)
    else:
        df = pd.DataFrame(list(rows), columns=list(schema))
    return df.astype(schema)


def write_csv(run_dir: str | os.PathLike, kind: str, rows: Iterable[dict] | pd.DataFrame) -> Path:
    buf = io.StringIO()
    frame(kind, rows).to_csv(buf, index=False)
    return write_atomic(Path(run_dir) / f"{kind}.csv", buf.getvalue())


def hop_columns(hops: Sequence[dict]) -> dict:
    """Per-hop values as flat columns T_1, alpha_1, ... plus all of them as JSON."""
    out = {"hops": json.dumps(list(hops))}
    for i, h in enumerate(hops[:MAX_HOPS], start=1):
        for k in HYPER:
            out[f"{k}_{i}"] = h.get(k)
    return out


# any of these makes a folder a run folder (`run` writes space.json first; `run-path`
# writes chain.json)
MARKERS = ("space.json", "trials.csv", "baselines.csv", "confirmation.csv", "summary.json")
CHAIN = "chain.json"


def _near(path: Path) -> str:
    """' (did you mean results/x?)' for a misspelled folder name, else ''."""

    parent = path.parent if str(path.parent) else Path(".")
    try:
        names = [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return f" (did you mean {parent / close[0]}?)" if close else ""


def check_run_dir(run_dir: str | os.PathLike) -> Path:
    """The folder, or a UserError (one line) when it does not exist or holds none of a
    run's files (space.json, the CSVs, summary.json, or a run-path's chain.json)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(
            f"{run_dir}: no such run folder{_near(run_dir)}: pass a folder made by "
            "takd-search run or run-path (ls results/)"
        )
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a run folder: pass a folder made by takd-search run")
    if not any((run_dir / m).exists() for m in (*MARKERS, CHAIN)):
        raise UserError(
            f"{run_dir}: not a run folder (none of space.json, trials.csv, summary.json, "
            "chain.json): pass a folder made by takd-search run or run-path"
        )
    return run_dir


def load(run_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """{'trials', 'baselines', 'confirmation'} DataFrames of a run folder, with dtypes.

    A folder that does not exist or is not a run folder raises UserError (a misspelled
    path must not read as an empty run). In a run folder, a file that is not there yet
    gives an empty frame with the right columns. A column missing from the file (written
    by an older version) is added empty; a column the schema does not know is kept,
    after the schema's columns. A run-path folder (chain.json) has its hops in
    `load_chain`.
    """
    run_dir = check_run_dir(run_dir)
    out = {}
    for kind, schema in SCHEMAS.items():
        path = run_dir / f"{kind}.csv"
        if path.exists() and path.stat().st_size:
            df = _upgrade_frame(pd.read_csv(path, dtype=schema, keep_default_na=True), schema)
            for col in schema:
                if col not in df:
                    df[col] = pd.Series(index=df.index, dtype=schema[col])
            extra = [c for c in df.columns if c not in schema]
            df = df[[*schema, *extra]]
        else:
            df = frame(kind, [])
        out[kind] = df
    return out


def _upgrade_frame(df: pd.DataFrame, schema: dict) -> pd.DataFrame:
    """A CSV written before the fractions were renamed (search/fractions.py): the columns
    kd_epochs_i / parent_epoch_i and the keys in the `hops` JSON under the new names."""
    renames = {}
    for col in df.columns:
        base, _, i = col.rpartition("_")
        if base in fractions.OLD_NAMES and i.isdigit():
            new = f"{fractions.OLD_NAMES[base]}_{i}"
            if new not in df:
                renames[col] = new
    if renames:
        df = df.rename(columns=renames)
        for col in renames.values():
            if col in schema:
                df[col] = df[col].astype(schema[col])
    old = tuple(f'"{name}"' for name in fractions.OLD_NAMES)
    if "hops" in df and any(isinstance(h, str) and any(o in h for o in old) for h in df["hops"]):

        def upgrade(h):
            return json.dumps(fractions.upgrade_hops(json.loads(h))) if isinstance(h, str) else h

        df["hops"] = df["hops"].map(upgrade).astype(df["hops"].dtype)
    return df


def run_dir_of(path: str | os.PathLike) -> Path:
    """A run folder, or one of its CSV/JSON files -> the run folder."""
    path = Path(path)
    if path.is_file() and (path.stem in SCHEMAS or path.name == "summary.json"):
        return path.parent
    return path


def load_many(paths: Iterable[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """Several runs stacked, with a `run` column naming each run folder (its folder name;
    two folders of the same name in different places get `parent/name`)."""
    dirs = [run_dir_of(p) for p in paths]
    names = [d.resolve().name for d in dirs]
    labels = [
        f"{d.resolve().parent.name}/{n}" if names.count(n) > 1 else n for d, n in zip(dirs, names)
    ]
    parts: dict[str, list] = {k: [] for k in SCHEMAS}
    for d, label in zip(dirs, labels):
        for kind, df in load(d).items():
            parts[kind].append(df.assign(run=pd.Series(label, index=df.index, dtype="string")))
    return {
        k: pd.concat(v, ignore_index=True)
        if v
        else frame(k, []).assign(run=pd.Series(dtype="string"))
        for k, v in parts.items()
    }


def require_run(run_dir: str | os.PathLike, *, finished: bool = True) -> Path:
    """The run folder, or a UserError (one line) naming what is wrong with it.

    finished: also require summary.json, which a run writes only once it is complete.
    """
    run_dir = run_dir_of(run_dir)
    if not run_dir.exists():
        raise UserError(
            f"{run_dir}: no such run folder{_near(run_dir)}: pass a folder made by takd-search run"
        )
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a run folder: pass a folder made by takd-search run")
    if not (run_dir / "space.json").exists() and not (run_dir / "trials.csv").exists():
        raise UserError(
            f"{run_dir}: not a run folder (no space.json or trials.csv): pass a folder "
            "made by takd-search run"
        )
    if finished and not (run_dir / "summary.json").exists():
        raise UserError(
            f"{run_dir}: the run has not finished (no summary.json): resume it with "
            f"takd-search run --resume {run_dir}"
        )
    return run_dir


def is_chain(run_dir: str | os.PathLike) -> bool:
    """Is this a `run-path` folder (chain.json, no search)?"""
    d = run_dir_of(run_dir)
    return (d / CHAIN).exists() and not (d / "space.json").exists()


def load_chain(run_dir: str | os.PathLike) -> pd.DataFrame:
    """A run-path folder's hops as a DataFrame, one row per hop (hop 1 = the teacher)
    plus the student trained alone (hop 'NoKD') when it was: model, parent, params,
    status, val_acc, test_acc, best_epoch, seconds, T, alpha, key."""
    d = check_run_dir(run_dir)
    c = json.loads((d / CHAIN).read_text())
    rows = [*c["hops"], *([c["student_alone"]] if c.get("student_alone") else [])]
    cols = ["hop", "model", "parent", "params", "status", "val_acc", "test_acc"]
    cols += ["best_epoch", "seconds", "T", "alpha", "key"]
    return pd.DataFrame([{k: r.get(k) for k in cols} for r in rows], columns=cols)


def read_json(run_dir: str | os.PathLike, name: str, default=None):
    """A JSON file of the run folder (e.g. 'space.json', 'phases/confirm.json'), or
    `default` when it is not there. Files written before the fractions were renamed read
    as if written now (`upgrade_json`)."""
    path = Path(run_dir) / name
    if not path.exists():
        return default
    return upgrade_json(name, json.loads(path.read_text()))


def upgrade_json(name: str, data):
    """One of a run folder's JSON files (by its name in the folder) with the names of an
    older version under today's (search/fractions.py): every reader of space.json,
    summary.json and phases/*.json (report, analyze, status, export, --resume) reads
    through here, so none of them knows the old names."""
    name = Path(name).as_posix()
    if name == "space.json":
        return fractions.upgrade_space(data)
    if name == "summary.json":
        return fractions.upgrade_summary(data)
    if name.startswith("phases/"):
        return fractions.upgrade_rows(data)
    return data


def summary(run_dir: str | os.PathLike) -> dict:
    return upgrade_json("summary.json", json.loads((Path(run_dir) / "summary.json").read_text()))


@dataclass
class Run:
    """A finished run folder, loaded: the three tables and the JSON files."""

    dir: Path
    trials: pd.DataFrame
    baselines: pd.DataFrame
    confirmation: pd.DataFrame
    summary: dict
    space: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.dir.resolve().name


def open_run(run_dir: str | os.PathLike) -> Run:
    """Load a finished run folder; a UserError (one line) if it is missing or unfinished."""
    d = require_run(run_dir, finished=True)
    t = load(d)
    return Run(
        dir=d,
        trials=t["trials"],
        baselines=t["baselines"],
        confirmation=t["confirmation"],
        summary=summary(d),
        space=read_json(d, "space.json", {}) or {},
        versions=read_json(d, "versions.json", {}) or {},
    )

"""The run folder's files: one CSV schema, atomic writes, and loading back with pandas.

Files of a run folder (documented column by column in docs/results.md):

    trials.csv        one row per searched trial (path search and BLKD search)
    baselines.csv     NoKD per model, the tuned BLKD, the heuristic's pick
    confirmation.csv  one row per (method, seed) of the seeded confirmation
    summary.json      the answer: winner, heuristic, BLKD, NoKD, compute
    space.yaml        the space file as run; versions.json: library versions, git rev

Every file is written to a temporary name in the same folder and renamed into place, so
a reader (or a crash) never sees half a file. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

MAX_HOPS = 4  # per-hop columns T_1..T_4 etc.; longer paths keep all hops in `hops` (JSON)

TRIALS = {
    "trial_id": "string",
    "phase": "string",
    "status": "string",
    "error": "string",
    "path": "string",
    "n_tas": "Int64",
    "guidance": "string",
    "seed": "Int64",
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
    **{
        f"{h}_{i}": "float64"
        for i in range(1, MAX_HOPS + 1)
        for h in ("T", "alpha", "kd_epochs", "parent_epoch")
    },
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
    "status": "string",
    "val_acc": "float64",
    "test_acc": "float64",
    "hops": "string",
    "error": "string",
}
SCHEMAS = {"trials": TRIALS, "baselines": BASELINES, "confirmation": CONFIRMATION}


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def frame(kind: str, rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly the schema's columns, in order, with its dtypes."""
    schema = SCHEMAS[kind]
    df = pd.DataFrame(list(rows), columns=list(schema))
    return df.astype(schema)


def write_csv(run_dir: str | os.PathLike, kind: str, rows: Iterable[dict]) -> Path:
    buf = io.StringIO()
    frame(kind, rows).to_csv(buf, index=False)
    return write_atomic(Path(run_dir) / f"{kind}.csv", buf.getvalue())


def hop_columns(hops: Sequence[dict]) -> dict:
    """Per-hop values as flat columns T_1, alpha_1, ... plus all of them as JSON."""
    out = {"hops": json.dumps(list(hops))}
    for i, h in enumerate(hops[:MAX_HOPS], start=1):
        for k in ("T", "alpha", "kd_epochs", "parent_epoch"):
            out[f"{k}_{i}"] = h.get(k)
    return out


def load(run_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """{'trials', 'baselines', 'confirmation'} DataFrames of a run folder, with dtypes.
    A file that is not there yet gives an empty frame with the right columns."""
    run_dir = Path(run_dir)
    out = {}
    for kind, schema in SCHEMAS.items():
        path = run_dir / f"{kind}.csv"
        if path.exists():
            df = pd.read_csv(path, dtype={k: v for k, v in schema.items()})
        else:
            df = frame(kind, [])
        out[kind] = df
    return out


def load_many(paths: Iterable[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """Several runs stacked, with a `run` column naming each run folder."""
    parts: dict[str, list] = {k: [] for k in SCHEMAS}
    for p in paths:
        p = Path(p)
        for kind, df in load(p).items():
            parts[kind].append(df.assign(run=p.name))
    return {
        k: pd.concat(v, ignore_index=True)
        if v
        else frame(k, []).assign(run=pd.Series(dtype="string"))
        for k, v in parts.items()
    }


def summary(run_dir: str | os.PathLike) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())

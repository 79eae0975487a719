"""`takd-search analyze RUN...`: one row per run (best path, heuristic, BLKD, NoKD) across
runs of different spaces, data sets or seeds, as analysis.csv, analysis.md and a table.

Each argument is a finished run folder, one of its files (trials.csv, summary.json ...),
a folder holding run folders (e.g. `results/`; unfinished ones are skipped with a note),
or an analysis.csv written earlier (its rows are carried over). Like `report`, this reads
the run folders' CSV and JSON files only: no Ray, no torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd

from takd_search import results
from takd_search.atomic import write_atomic
from takd_search.errors import UserError
from takd_search.report.stats import device_kind, method_stats
from takd_search.report.tables import console_table, markdown_table, pct, pp
from takd_search.results import open_run

# analysis.csv: accuracies and gains are fractions (gains: paired by seed, test set)
COLUMNS = {
    "run": "string",
    "space": "string",
    "dataset": "string",
    "teacher": "string",
    "student": "string",
    "seeds": "Int64",
    "best_method": "string",
    "best_path": "string",
    "best_val_mean": "float64",
    "best_test_mean": "float64",
    "best_test_std": "float64",
    "gain_vs_blkd": "float64",
    "gain_vs_blkd_std": "float64",
    "p_vs_blkd": "float64",
    "gain_vs_nokd": "float64",
    "gain_vs_nokd_std": "float64",
    "p_vs_nokd": "float64",
    "heuristic_ta": "string",
    "heuristic_path": "string",
    "heuristic_test_mean": "float64",
    "heuristic_test_std": "float64",
    "heuristic_found_best": "boolean",
    "blkd_path": "string",
    "blkd_test_mean": "float64",
    "blkd_test_std": "float64",
    "nokd_test_mean": "float64",
    "nokd_test_std": "float64",
    "search_trials": "Int64",
    "grid_trials": "Int64",
    "train_hours": "float64",
    "device": "string",
    "run_dir": "string",
}


def run_row(run_dir: str | os.PathLike) -> dict:
    """One finished run as one analysis row (numbers recomputed from confirmation.csv)."""
    run = open_run(run_dir)
    s = run.summary
    n_val = (s.get("selection") or {}).get("n_val")
    stats = {r["method"]: r for r in method_stats(run.confirmation, n_val).to_dict("records")}
    win = s.get("winner")
    best, heur = stats.get(win, {}), stats.get("heuristic", {})
    blkd, nokd = stats.get("blkd", {}), stats.get("nokd", {})
    c = s.get("compute", {}) or {}
    kind, per = device_kind(run)
    secs = float(run.trials["train_seconds"].astype("float64").fillna(0).sum()) * per
    return {
        "run": run.name,
        "space": s.get("space"),
        "dataset": s.get("dataset"),
        "teacher": s.get("teacher"),
        "student": s.get("student"),
        "seeds": best.get("seeds"),
        "best_method": win,
        "best_path": best.get("path") or (s.get("best") or {}).get("path"),
        "best_val_mean": best.get("val_mean"),
        "best_test_mean": best.get("test_mean"),
        "best_test_std": best.get("test_std"),
        "gain_vs_blkd": best.get("diff_vs_blkd"),
        "gain_vs_blkd_std": best.get("diff_std_vs_blkd"),
        "p_vs_blkd": best.get("p_vs_blkd"),
        "gain_vs_nokd": best.get("diff_vs_nokd"),
        "gain_vs_nokd_std": best.get("diff_std_vs_nokd"),
        "p_vs_nokd": best.get("p_vs_nokd"),
        "heuristic_ta": s.get("heuristic_ta"),
        "heuristic_path": heur.get("path") or (s.get("heuristic") or {}).get("path"),
        "heuristic_test_mean": heur.get("test_mean"),
        "heuristic_test_std": heur.get("test_std"),
        "heuristic_found_best": s.get("heuristic_found_best"),
        "blkd_path": blkd.get("path"),
        "blkd_test_mean": blkd.get("test_mean"),
        "blkd_test_std": blkd.get("test_std"),
        "nokd_test_mean": nokd.get("test_mean"),
        "nokd_test_std": nokd.get("test_std"),
        "search_trials": c.get("search_trials"),
        "grid_trials": c.get("grid_trials"),
        "train_hours": secs / 3600,
        "device": kind,
        "run_dir": str(run.dir.resolve()),
    }


def table(rows) -> pd.DataFrame:
    """Rows (dicts or a DataFrame) -> the analysis schema, with its dtypes."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    df = df.reindex(columns=list(COLUMNS)).reset_index(drop=True)
    return df.astype(COLUMNS)


def _is_analysis_csv(path: Path) -> bool:
    try:
        head = pd.read_csv(path, nrows=0)
    except Exception:
        return False
    return {"run", "best_path", "best_test_mean"} <= set(head.columns)


def expand(paths) -> list:
    """Arguments -> run folders (Path) and earlier analyses (DataFrame), in order."""
    out: list = []
    for p in map(Path, paths):
        if p.is_file() and p.suffix == ".csv" and p.stem not in results.SCHEMAS:
            if not _is_analysis_csv(p):
                raise UserError(
                    f"{p}: not a run's CSV (trials/baselines/confirmation.csv) or an "
                    "analysis.csv: pass run folders or their files"
                )
            out.append(table(pd.read_csv(p, dtype={"run": "string", "run_dir": "string"})))
            continue
        d = results.run_dir_of(p)
        if d.is_dir() and not (d / "summary.json").exists() and not (d / "space.json").exists():
            children = sorted(c for c in d.iterdir() if (c / "space.json").exists())
            if children:
                done = [c for c in children if (c / "summary.json").exists()]
                skipped = len(children) - len(done)
                if skipped:
                    print(
                        f"analyze: skipped {skipped} unfinished run(s) in {d}",
                        file=sys.stderr,
                    )
                if not done:
                    raise UserError(
                        f"{d}: none of its {len(children)} runs has finished (no "
                        "summary.json): resume them with takd-search run --resume RUN_DIR"
                    )
                out.extend(done)
                continue
        out.append(results.require_run(d, finished=True))
    return out


def analyze(paths, out_dir: str | os.PathLike | None = ".") -> dict:
    """Compare runs: one row per run. Writes `analysis.csv` (fractions) and `analysis.md`
    (percentages) into `out_dir` (None: write nothing). Returns {'table': DataFrame,
    'text': printable table, 'csv': path, 'md': path}."""
    if not paths:
        raise UserError("analyze needs at least one run folder")
    parts = []
    for item in expand(paths):
        parts.append(item if isinstance(item, pd.DataFrame) else table([run_row(item)]))
    df = table(pd.concat(parts, ignore_index=True))
    # one run given twice (e.g. in an earlier analysis.csv and as a folder) counts once,
    # with its freshly computed row
    again = df["run_dir"].notna() & df["run_dir"].duplicated(keep="last")
    df = df[~again].reset_index(drop=True)
    # the same folder name in two places: tell them apart by their parent folder
    dup = df["run"].duplicated(keep=False) & df["run_dir"].notna()
    df.loc[dup, "run"] = [
        f"{Path(d).parent.name}/{n}" for d, n in zip(df.loc[dup, "run_dir"], df.loc[dup, "run"])
    ]
    shown = readable(df)
    out = {"table": df, "text": _console(shown), "csv": None, "md": None}
    if out_dir is not None:
        od = Path(out_dir)
        out["csv"] = write_atomic(od / "analysis.csv", df.to_csv(index=False))
        md = [
            "# Runs compared",
            "",
            "Test accuracy mean ± std over each run's confirmation seeds; gains are paired by "
            "seed (percentage points, p from a paired t-test). `analysis.csv` has the same "
            "numbers as fractions.",
            "",
            markdown_table(shown),
            "",
        ]
        out["md"] = write_atomic(od / "analysis.md", "\n".join(md))
    return out


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """The analysis table as people read it: percentages and pp, one string per cell."""
    rows = []
    for r in df.to_dict("records"):
        found = r["heuristic_found_best"]
        rows.append(
            {
                "run": r["run"],
                "data": r["dataset"],
                "teacher -> student": f"{r['teacher']} -> {r['student']}",
                "best path": r["best_path"],
                "best test %": pct(r["best_test_mean"], r["best_test_std"]).removesuffix(" %"),
                "vs BLKD": pp(r["gain_vs_blkd"], r["gain_vs_blkd_std"], r["p_vs_blkd"]),
                "vs NoKD": pp(r["gain_vs_nokd"], r["gain_vs_nokd_std"], r["p_vs_nokd"]),
                "heuristic path": r["heuristic_path"],
                "heuristic test %": pct(
                    r["heuristic_test_mean"], r["heuristic_test_std"]
                ).removesuffix(" %"),
                "heuristic best?": "-" if pd.isna(found) else ("yes" if found else "no"),
                "BLKD test %": pct(r["blkd_test_mean"], r["blkd_test_std"]).removesuffix(" %"),
                "NoKD test %": pct(r["nokd_test_mean"], r["nokd_test_std"]).removesuffix(" %"),
                "trials / grid": f"{_int(r['search_trials'])} / {_int(r['grid_trials'])}",
            }
        )
    return pd.DataFrame(rows)


def _int(v) -> str:
    return "-" if v is None or pd.isna(v) else str(int(v))


def _console(df: pd.DataFrame) -> str:
    return console_table(df) if len(df) else "(no runs)"

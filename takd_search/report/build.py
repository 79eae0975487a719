"""`takd-search report RUN_DIR`: report.md and its plots from a run folder alone.

Assembly only: `report` opens the run (`results.open_run`), asks `stats`, `importances`,
`plots` and `text` for their parts and writes report.md (into the run folder or
`--out DIR`), in the order a reader wants them: the answer, the confirmed paths, the
models trained alone against size, the search's progress, the hyper-parameters, the
learning curves. A run-path folder (chain.json) gets `chain_report` instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from takd_search import results
from takd_search.atomic import write_atomic
from takd_search.report.chain_report import report_chain
from takd_search.report.importances import param_importances
from takd_search.report.plots import (
    PLOTS,
    plot_curves,
    plot_hyper,
    plot_nokd_vs_size,
    plot_paths,
    plot_progress,
)
from takd_search.report.stats import mean_curves, method_stats, student_curves, tuning_of
from takd_search.report.tables import console_table, key_table, markdown_table, pct
from takd_search.report.text import (
    answer_lines,
    premise_lines,
    search_ties,
    speed_sentence,
    teacher_note,
)
from takd_search.results import Run, open_run


def report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict:
    """Write report.md and the plots for a finished run folder (into `out_dir`, default
    the run folder). Returns {'report': path, 'plots': {name: path}, 'table': text,
    'stats': DataFrame}. A run-path folder (chain.json) gets its own, shorter report
    (`chain_report`)."""
    if results.is_chain(run_dir):
        return report_chain(run_dir, out_dir)
    run = open_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.dir
    out.mkdir(parents=True, exist_ok=True)
    stats = method_stats(run.confirmation, (run.summary.get("selection") or {}).get("n_val"))
    imp, note = param_importances(run)
    plots = {
        "nokd_size": plot_nokd_vs_size(run, out / PLOTS["nokd_size"]),
        "paths": plot_paths(run, stats, out / PLOTS["paths"]),
        "progress": plot_progress(run, out / PLOTS["progress"]),
        "hyper": plot_hyper(run, imp, note, out / PLOTS["hyper"]),
    }
    confirm_curves = student_curves(run, "confirm")
    if len(confirm_curves):
        search_curves = student_curves(run, "search")
        plots["curves"] = plot_curves(run, confirm_curves, search_curves, out / PLOTS["curves"])
        curves_md = [
            "Student validation accuracy after each epoch: left, each confirmed method's mean "
            "over seeds (± std band, thin lines one seed each; the winner bold); right, the "
            "search's students against the student trained alone. "
            + speed_sentence(
                mean_curves(confirm_curves), run.summary.get("winner"), confirm_curves
            ),
            "",
            f"![learning curves]({os.path.relpath(plots['curves'], out)})",
        ]
    else:
        curves_md = [
            "No learning-curve plot: the confirmation trials in `phases/confirm.json` carry "
            "no per-epoch `curve` (a run from before curves were recorded, or no completed "
            "confirmation)."
        ]
    s = run.summary
    keys = key_table(stats, s.get("winner"), tuning_of(s))
    rel = {k: os.path.relpath(p, out) for k, p in plots.items()}
    md = [
        f"# {s.get('space')}: {s.get('teacher')} -> {s.get('student')} on {s.get('dataset')}",
        "",
        f"Run folder `{run.dir}`"
        + (f", started {run.versions['started']}" if run.versions.get("started") else "")
        + (
            f", git {str(run.versions['git_revision'])[:10]}"
            if run.versions.get("git_revision")
            else ""
        )
        + ".",
        "",
        "## Answer",
        "",
        *answer_lines(run, stats),
        "",
        *premise_lines(run),
        "## Confirmed paths",
        "",
        "Each configuration retrained with fresh seeds "
        + teacher_note(run.confirmation)
        + "; test accuracy mean ± std over the report seeds, differences paired by seed "
        "(percentage points, a t-based 95 % confidence interval, p from a paired t-test "
        "Holm-adjusted over the two comparisons vs BLKD and vs NoKD; undefined when every "
        "seed gives the same difference). The winner is the searched configuration with the "
        "best mean *validation* accuracy on the selection seeds, which are not reported. "
        "`tuning trials`: completed trials the configuration was chosen from (every compared "
        "method gets at least as many as the most-tried candidate path); `tuning s`: their "
        "training seconds, pruned and failed trials included.",
        "",
        markdown_table(keys),
        "",
        f"![confirmed paths]({rel['paths']})",
        "",
        "## Models trained alone (NoKD) against size",
        "",
        "The heuristic picks the TA whose NoKD validation accuracy is nearest the mean of the "
        "teacher's and the student's (dotted line).",
        "",
        markdown_table(_nokd_table(run)),
        "",
        f"![NoKD accuracy against size]({rel['nokd_size']})",
        "",
        "## Search progress",
        "",
        "Best validation accuracy found so far, against trials and against training compute "
        "(hops reused from the store cost nothing).",
        "",
        f"![search progress]({rel['progress']})",
        "",
        "Best searched trials (validation accuracy; the test set is not used in the search)."
        + search_ties(run),
        "",
        markdown_table(_top_trials(run)),
        "",
        "## Hyper-parameters",
        "",
        note,
        "",
    ]
    if imp is not None:
        md += [
            markdown_table(
                pd.DataFrame({"parameter": imp.index, "importance": imp.map(lambda v: f"{v:.3f}")})
            ),
            "",
        ]
    md += [f"![hyper-parameters]({rel['hyper']})", "", "## Learning curves", "", *curves_md, ""]
    path = write_atomic(out / "report.md", "\n".join(md))
    return {"report": path, "plots": plots, "table": console_table(keys), "stats": stats}


def _nokd_table(run: Run) -> pd.DataFrame:
    b = run.baselines
    n = b[b["kind"] == "nokd"]
    ta = run.summary.get("heuristic_ta")
    return pd.DataFrame(
        {
            "model": n["model"],
            "role": n["role"],
            "params": n["params"].map(lambda v: "-" if pd.isna(v) else f"{int(v):,}"),
            "val %": n["val_acc"].map(lambda v: pct(v).removesuffix(" %")),
            "test %": n["test_acc"].map(lambda v: pct(v).removesuffix(" %")),
            "note": [("heuristic pick" if m == ta else "") for m in n["model"]],
        }
    )


def _top_trials(run: Run, k: int = 10) -> pd.DataFrame:
    t = run.trials
    t = t[(t["phase"] == "search") & t["val_acc"].notna()].copy()
    by = ["val_acc", "trial_number"] if "trial_number" in t else ["val_acc"]
    t = t.sort_values(by, ascending=[False, True][: len(by)], kind="stable").head(k)
    return pd.DataFrame(
        {
            "trial": t["trial_id"],
            "status": t["status"],
            "path": t["path"],
            "val %": t["val_acc"].map(lambda v: pct(v).removesuffix(" %")),
            "T": t["T_1"].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}"),
            "alpha": t["alpha_1"].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}"),
            "hops trained/reused": [
                f"{a}/{b}" for a, b in zip(t["hops_trained"].fillna(0), t["hops_reused"].fillna(0))
            ],
        }
    )

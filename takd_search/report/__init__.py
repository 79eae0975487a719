"""`takd-search report` and `takd-search analyze`: what a finished run folder says, in
words, tables and plots, from the folder alone.

Everything here reads the run folder's CSVs and JSON files (`results`, `results.open_run`);
nothing imports Ray or torch, so a report can be made on a laptop from a copied folder.
Optuna is imported (lazily) only to compute parameter importances from trials.csv, and
matplotlib only when a plot is drawn.

    stats.py         the numbers: per-method statistics, paired differences, CIs, curves
    importances.py   the searched hyper-parameters and Optuna's importances of them
    tables.py        percentages, pp, Markdown and console tables, the key table
    text.py          the answer in words: verdicts, the heuristic, compute, learning speed
    plots.py         the five PNG plots
    build.py         `report(run_dir)`: report.md assembled from the parts above
    chain_report.py  the shorter report of a `run-path` folder (chain.json)
    premise.py       warnings about a run's premise (teacher not better, below its claim)
    analyze.py       `analyze(paths)`: one row per run across runs (analysis.csv, .md)

Files `report` writes into the run folder (or `--out DIR`): report.md and the plots named
in `PLOTS` (see `plots`). Accuracies are fractions in the CSVs and percentages in the
report; differences are in percentage points (pp), paired by seed.

The names below are the ones `takd_search.report` offered as one module; they stay
importable from here. `analyze` is imported from `takd_search.report.analyze`: a
function exported here under a submodule's name would hide that submodule.
"""

from takd_search.report.build import report
from takd_search.report.importances import (
    HYPER,
    HYPER_LABEL,
    MIN_IMPORTANCE_TRIALS,
    TRIAL_LEVEL,
    param_importances,
)
from takd_search.report.plots import (
    METHOD_STYLE,
    PLOTS,
    REFERENCE,
    plot_curves,
    plot_hyper,
    plot_nokd_vs_size,
    plot_paths,
    plot_progress,
)
from takd_search.report.stats import (
    device_kind,
    epochs_to_reach,
    mean_curves,
    method_stats,
    progress_frame,
    student_curves,
    time_unit,
    tuning_of,
)
from takd_search.report.tables import console_table, key_table, markdown_table, pct, pp, pp_ci
from takd_search.report.text import (
    answer_lines,
    premise_lines,
    search_ties,
    speed_sentence,
    teacher_note,
)
from takd_search.results import Run, open_run

__all__ = [
    "HYPER",
    "HYPER_LABEL",
    "METHOD_STYLE",
    "MIN_IMPORTANCE_TRIALS",
    "PLOTS",
    "REFERENCE",
    "TRIAL_LEVEL",
    "Run",
    "answer_lines",
    "console_table",
    "device_kind",
    "epochs_to_reach",
    "key_table",
    "markdown_table",
    "mean_curves",
    "method_stats",
    "open_run",
    "param_importances",
    "pct",
    "plot_curves",
    "plot_hyper",
    "plot_nokd_vs_size",
    "plot_paths",
    "plot_progress",
    "pp",
    "pp_ci",
    "premise_lines",
    "progress_frame",
    "report",
    "search_ties",
    "speed_sentence",
    "student_curves",
    "teacher_note",
    "time_unit",
    "tuning_of",
]

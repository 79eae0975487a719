"""Numbers and tables as people read them: fractions as percentages (`pct`), paired
differences in percentage points with their interval and p (`pp`, `pp_ci`), Markdown and
console tables, and the key table of confirmed methods the report and the console print.

Shared by the report, the run-path report and `analyze`, so every output formats a
number the same way.
"""

from __future__ import annotations

import math

import pandas as pd

from takd_search.progress import table


def pct(x, std=None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return "-"
    s = f"{100 * float(x):.{digits}f}"
    if std is not None and not pd.isna(std):
        s += f" ± {100 * float(std):.{digits}f}"
    return s + " %"


def pp(diff, std=None, p=None) -> str:
    """A paired difference in percentage points, with its std and p-value."""
    if diff is None or pd.isna(diff):
        return "-"
    s = f"{100 * float(diff):+.2f}"
    if std is not None and not pd.isna(std):
        s += f" ± {100 * float(std):.2f}"
    s += " pp"
    if p is not None and not pd.isna(p):
        s += f" (p={float(p):.2g})"
    return s


def pp_ci(r: dict, ref: str) -> str:
    """A paired difference against `ref` with its 95 % CI and Holm-adjusted p, or why
    there is no test: '+2.00 pp [-0.48, +4.48] (Holm p=0.24)'."""
    d = r.get(f"diff_vs_{ref}")
    if d is None or pd.isna(d):
        return "-"
    s = f"{100 * float(d):+.2f} pp"
    lo, hi = r.get(f"ci_lo_vs_{ref}"), r.get(f"ci_hi_vs_{ref}")
    if lo is not None and not pd.isna(lo):
        s += f" [{100 * float(lo):+.2f}, {100 * float(hi):+.2f}]"
    p = r.get(f"p_holm_vs_{ref}")
    if p is not None and not pd.isna(p):
        s += f" (Holm p={float(p):.2g})"
    elif r.get(f"p_note_vs_{ref}"):
        s += f" (p {r[f'p_note_vs_{ref}']})"
    return s


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of `df` as it is (cells str()-ed, '-' for NA)."""

    def cell(v) -> str:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def key_table(
    stats: pd.DataFrame, winner: str | None, tuning: dict[str, tuple] | None = None
) -> pd.DataFrame:
    """The confirmed methods as the report prints them (strings, percentages): the paired
    differences with their 95 % CI and Holm-adjusted p, and (`tuning`, see `tuning_of`)
    how many completed tuning trials, and training seconds, each configuration came from."""
    rows = []
    tuning = tuning or {}
    for r in stats.to_dict("records"):
        n, secs = tuning.get(r["method"], (None, None))
        rows.append(
            {
                "method": r["method"] + (" (winner)" if r["method"] == winner else ""),
                "path": r["path"],
                "seeds": r["seeds"],
                "val %": pct(r["val_mean"]).removesuffix(" %"),
                "test % (mean ± std)": pct(r["test_mean"], r["test_std"]).removesuffix(" %"),
                "vs BLKD [95% CI]": pp_ci(r, "blkd"),
                "vs NoKD [95% CI]": pp_ci(r, "nokd"),
                "tuning trials": "-" if n is None else str(n),
                "tuning s": "-" if secs is None else f"{float(secs):.3g}",
            }
        )
    cols = ["method", "path", "seeds", "val %", "test % (mean ± std)", "vs BLKD [95% CI]",
            "vs NoKD [95% CI]", "tuning trials", "tuning s"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def console_table(df: pd.DataFrame) -> str:
    rows = [
        {c: ("-" if pd.isna(v) else str(v)) for c, v in r.items()} for r in df.to_dict("records")
    ]
    return table(rows, [(c, c) for c in df.columns])

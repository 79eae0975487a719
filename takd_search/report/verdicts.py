"""The report's verdicts and the facts beside them: what a paired difference supports in
words (a claim only where the Holm-adjusted test rejects and the interval excludes zero,
else "no difference detected at this budget"), whether the verdicts are "for this
teacher", failed confirmation runs per method and seed, the teacher-to-teacher spread, and
each tuning procedure's effort. Used by `text.answer_lines`.
"""

from __future__ import annotations

import pandas as pd

from takd_search.baselines import verdict_kind
from takd_search.report.stats import method_key
from takd_search.report.tables import pct
from takd_search.results import Run


def verdict_line(r: dict, ref: str, name: str, fixed_teacher: bool = False) -> str:
    """What the paired difference against `ref` supports, in words (`baselines.
    verdict_kind`): a claim ("the path beats BLKD") only when the Holm-adjusted test
    rejects at 5 % and the 95 % interval excludes zero; otherwise "no difference detected
    at this budget: BLKD is as good", with why. `fixed_teacher`: every seed distilled from
    one teacher, so the verdict holds for this teacher."""
    n = r.get("seeds")
    lo, hi = r.get(f"ci_lo_vs_{ref}"), r.get(f"ci_hi_vs_{ref}")
    p, note = r.get(f"p_holm_vs_{ref}"), r.get(f"p_note_vs_{ref}")
    ci = None if lo is None or pd.isna(lo) else (float(lo), float(hi))
    p = None if p is None or pd.isna(p) else float(p)
    kind = verdict_kind(r.get(f"diff_vs_{ref}"), ci, p, note)
    teacher = ", for this teacher" if fixed_teacher else ""
    none = f"**no difference detected at this budget: {name} is as good**"
    if kind == "undefined":
        return (
            f"{none}: every seed gave the same difference, so the test is undefined (zero "
            f"variance); {n} seeds cannot say whether it would hold on others" + teacher
        )
    if kind in ("too_few", "missing"):
        return (
            f"{none}: too few paired seeds for an interval or a test, one seed's difference"
            + teacher
        )
    if kind in ("beats", "beaten"):
        side = f"the path beats {name}" if kind == "beats" else f"{name} beats the path"
        return (
            f"**{side}** on these {n} seeds (interval excludes zero, Holm p = {p:.2g})" + teacher
        )
    if kind == "suggestive":
        return (
            f"{none}: the interval excludes zero, but corrected for the two comparisons "
            f"(Holm p = {p:.2g}) it is not significant at 5 %: suggestive on these {n} "
            "seeds, not shown" + teacher
        )
    return (
        f"{none}: the interval includes zero (Holm p = {p:.2g}); on these {n} seeds the "
        f"path is not distinguishable from {name}" + teacher
    )


def teacher_fixed(run: Run) -> bool:
    """Did every distilled confirmation row use one teacher? summary.json says so
    (`teacher_fixed`); an older run: one `teacher_seed` across its distilled rows."""
    s = run.summary
    if s.get("teacher_fixed") is not None:
        return bool(s["teacher_fixed"])
    c = run.confirmation
    distilled = c[c["method"] != "nokd"]["teacher_seed"].dropna()
    return bool(len(distilled)) and distilled.nunique() == 1


def failure_lines(stats: pd.DataFrame, summary: dict) -> list[str]:
    """One bullet listing every failed confirmation row per method and seed (selection
    seeds from summary.json's `failed`, report seeds from the statistics), or none."""
    parts = []
    sel = {m: f.get("select") or [] for m, f in (summary.get("failed") or {}).items()}
    rep = {r["method"]: list(r.get("failed_seeds") or []) for r in stats.to_dict("records")}
    for m, f in (summary.get("failed") or {}).items():
        rep.setdefault(m, list(f.get("report") or []))
    for m in sorted(set(sel) | set(rep), key=method_key):
        bits = []
        if rep.get(m):
            bits.append(f"report seed{'s' if len(rep[m]) > 1 else ''} {_seeds(rep[m])}")
        if sel.get(m):
            bits.append(f"selection seed{'s' if len(sel[m]) > 1 else ''} {_seeds(sel[m])}")
        if bits:
            parts.append(f"`{m}` " + " and ".join(bits))
    if not parts:
        return []
    return [
        "- **Failed confirmation runs**: "
        + "; ".join(parts)
        + ". A failed report seed leaves its pair out of the paired differences; a "
        "configuration with a failed selection seed ranked after every one without (an "
        "unstable configuration is not scored on its surviving seeds)."
    ]


def _seeds(v: list) -> str:
    return ", ".join(str(int(x)) for x in v)


def teacher_spread_line(summary: dict) -> list[str]:
    """With `reseed_teacher` (a teacher per seed): the teacher's accuracy spread over the
    report seeds, which the intervals above include."""
    t = summary.get("teacher_spread") or {}
    rows = [(k, t[k]) for k in ("test", "val") if t.get(k)]
    if not rows:
        return []
    parts = [
        f"{k} {pct(v['mean'], v['std'])} (min {pct(v['min'])}, max {pct(v['max'])})"
        for k, v in rows
    ]
    return [
        f"- The teacher was retrained with every report seed ({rows[0][1]['n']} teachers): "
        + "; ".join(parts)
        + ". The intervals above include this teacher-to-teacher spread, so the verdicts "
        "are about the procedure, not one teacher."
    ]


def effort_lines(summary: dict) -> list[str]:
    """The tuning procedures' effort (summary.json `budget` of an equal-effort run:
    proposals, completed, pruned, training seconds each), so "the path beats BLKD" reads
    as one procedure against another at equal compute; none for older runs."""
    b = summary.get("budget")
    if not isinstance(b, dict) or not isinstance(b.get("search"), dict):
        return []
    parts = []
    for key, name in (("search", "the search over paths"), ("blkd", "BLKD's tuning"),
                      ("tune", "the heuristic path's tuning")):  # fmt: skip
        e = b.get(key)
        if isinstance(e, dict) and e.get("proposals"):
            parts.append(
                f"{name} {e['proposals']} proposals ({e.get('completed', 0)} completed, "
                f"{e.get('pruned', 0)} pruned; {float(e.get('seconds') or 0):.3g} s of training)"
            )
    if not parts:
        return []
    return [
        "- Tuning effort, one procedure against another: "
        + "; ".join(parts)
        + ". Each procedure's best configurations went through the same selection seeds."
    ]

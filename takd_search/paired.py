"""Paired statistics of a run's confirmation, from counts of correct images, and the
verdicts they support. Pure Python/numpy/scipy.

Accuracies are counts of images. A confirmation row carries `val_correct`/`val_total` and
`test_correct`/`test_total`; `acc_of` turns them into exact fractions
(`fractions.Fraction`), so two methods that differ by the same number of images on every
seed have *identical* per-seed differences and the paired test is undefined (zero
variance), not p ~ 1e-10 from float32 rounding. Rows without counts (older run folders)
get them derived as round(acc * total) when the total is known, and otherwise are
compared as floats with a tolerance of `FLOAT_TOL`. Means, standard deviations, intervals
and p-values are computed in float64 from the exact values.

A claim ("the path beats BLKD") is made only when the Holm-adjusted paired t-test rejects
at `ALPHA` and the 95 % interval excludes zero (`verdict_kind`, `verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

ZERO_VARIANCE = "undefined (zero variance)"
TOO_FEW = "too few paired seeds for a test"
# accuracies known only as floats (a run folder from before counts, total unknown) are the
# engine's float32 fractions: two values closer than this (fraction) are the same count,
# since a real one-image difference is at least 1/n >= 1e-6 for n <= 10^6 images, while
# float32 rounding of a fraction in [0, 1] is below 6e-8
FLOAT_TOL = 1e-6
ALPHA = 0.05  # the level of every claim (Holm-adjusted over a method's two comparisons)


def finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def acc_of(
    row: dict, metric: str = "test_acc", total: int | None = None
) -> Fraction | float | None:
    """One accuracy of a confirmation row, exact where possible.

    `metric` is `val_acc` or `test_acc`. With the row's counts (`val_correct`/`val_total`,
    `test_correct`/`test_total`): Fraction(correct, total). Without counts but with the
    number of images (`total`, e.g. n_val of an older run folder): the count is derived as
    round(acc * total), exact for any total below ~10^7 at float32. Otherwise the float
    (None when missing or not finite)."""
    stem = metric.removesuffix("_acc")
    correct, n = row.get(f"{stem}_correct"), row.get(f"{stem}_total")
    if finite(correct) and finite(n) and int(n) > 0:
        return Fraction(int(correct), int(n))
    acc = row.get(metric)
    if not finite(acc):
        return None
    if finite(n) and int(n) > 0:
        total = int(n)
    if total:
        return Fraction(round(float(acc) * int(total)), int(total))
    return float(acc)


def _all_equal(d: Sequence) -> bool:
    """Are all values the same: exactly for fractions of images, within FLOAT_TOL for
    floats (see FLOAT_TOL)."""
    if all(isinstance(x, Fraction) for x in d):
        return len(set(d)) == 1
    v = np.asarray([float(x) for x in d], dtype="float64")
    return float(v.max() - v.min()) <= FLOAT_TOL


def paired_test(diffs: Sequence[float | Fraction]) -> dict:
    """Mean, std (ddof 1), t-based 95 % confidence interval and two-sided paired t-test p
    of per-seed differences (fractions; exact `Fraction`s when the accuracies came from
    counts of images). With < 2 pairs, or all differences equal (zero variance: exactly
    equal fractions, or floats within FLOAT_TOL), the test is undefined: ci and p are None
    and `note` says why (never p = 0). The statistics are computed in float64."""
    exact = list(diffs)
    d = np.asarray([float(x) for x in exact], dtype="float64")
    out = {
        "n": len(d),
        "mean": mean_of(exact) if len(d) else None,
        "std": float(d.std(ddof=1)) if len(d) > 1 else None,
        "ci": None,
        "p": None,
        "note": None,
    }
    if len(d) < 2:
        out["note"] = TOO_FEW
        return out
    if _all_equal(exact):
        out["note"] = ZERO_VARIANCE
        return out
    from scipy import stats  # scipy: only for this statistic

    half = float(stats.t.ppf(0.975, len(d) - 1)) * out["std"] / math.sqrt(len(d))
    out["ci"] = [out["mean"] - half, out["mean"] + half]
    out["p"] = float(stats.ttest_1samp(d, 0.0).pvalue)
    return out


def holm(ps: dict[str, float | None]) -> dict[str, float | None]:
    """Holm-Bonferroni adjusted p-values of one family of tests (name -> p; None stays
    None and does not count towards the family's size)."""
    have = sorted((p, k) for k, p in ps.items() if p is not None)
    m, out, running = len(have), {k: None for k in ps}, 0.0
    for i, (p, k) in enumerate(have):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def paired_summary(
    rows: Sequence[dict], reference: str, metric: str = "test_acc", total: int | None = None
) -> dict[str, dict]:
    """Per method: `metric` mean/std over seeds, and the paired difference against
    `reference`: mean, std, 95 % CI (`diff_ci_vs_<ref>`, [low, high]), two-sided paired
    t-test p (`p_vs_<ref>`; None with < 2 pairs or zero variance, `p_note_vs_<ref>` says
    which).

    rows: dicts with method, seed and the metric (fractions), and where known the counts
    behind it (`val_correct`, `val_total`, `test_correct`, `test_total`: see `acc_of`);
    total: the number of images behind `metric` when rows carry no counts (None: unknown).
    Only rows with a value count: pass completed rows (failures: `failed_seeds`).
    """
    by = {}
    for r in rows:
        a = acc_of(r, metric, total)
        if a is not None:
            by.setdefault(r["method"], {})[r["seed"]] = a
    ref = by.get(reference, {})
    out = {}
    for method, accs in by.items():
        exact = list(accs.values())
        vals = np.array([float(a) for a in exact], dtype="float64")
        common = sorted(set(accs) & set(ref))
        test = paired_test([accs[s] - ref[s] for s in common])
        own = method == reference
        out[method] = {
            "n": len(vals),
            "mean": mean_of(exact),
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            f"diff_vs_{reference}": test["mean"],
            f"diff_std_vs_{reference}": test["std"],
            f"diff_n_vs_{reference}": None if own else test["n"],
            f"diff_ci_vs_{reference}": None if own else test["ci"],
            f"p_vs_{reference}": None if own else test["p"],
            f"p_note_vs_{reference}": None if own else test["note"],
        }
    return out


def exact_mean(values: Sequence) -> Fraction | float:
    """Mean of accuracies: an exact Fraction when they all are fractions of images, else
    a float64."""
    if all(isinstance(v, Fraction) for v in values):
        return sum(values, Fraction(0)) / len(values)
    return float(np.mean([float(v) for v in values]))


def mean_of(values: Sequence) -> float:
    """Mean of accuracies in float64 (computed exactly first from fractions of images)."""
    return float(exact_mean(values))


def failed_seeds(rows: Sequence[dict]) -> dict[str, list[int]]:
    """Method -> the seeds whose row did not complete (status other than `completed`),
    sorted; methods with none are left out. What the report lists per method and seed."""
    out: dict[str, set] = {}
    for r in rows:
        if r.get("status") != "completed":
            out.setdefault(r["method"], set()).add(int(r["seed"]))
    return {m: sorted(v) for m, v in out.items()}


def verdict_kind(
    mean: float | None, ci: Sequence[float] | None, p_holm: float | None, note: str | None
) -> str:
    """Which claim a paired difference supports: `beats` / `beaten` (the Holm-adjusted
    test rejects at ALPHA and the interval excludes zero on that side), `suggestive` (the
    interval excludes zero but the Holm-adjusted p does not reach ALPHA), `none` (the
    interval includes zero), `undefined` (zero variance), `too_few` (< 2 pairs) or
    `missing` (no difference). Only `beats` and `beaten` are claims."""
    if mean is None:
        return "missing"
    if not ci:
        return "undefined" if note == ZERO_VARIANCE else "too_few"
    lo, hi = ci
    if lo > 0 or hi < 0:
        if p_holm is not None and p_holm < ALPHA:
            return "beats" if lo > 0 else "beaten"
        return "suggestive"
    return "none"


def verdict(
    mean: float | None,
    ci: Sequence[float] | None,
    p_holm: float | None,
    note: str | None,
    ref: str,
    *,
    subject: str = "the path",
    fixed_teacher: bool = False,
    seeds: int | None = None,
) -> str:
    """The paired difference (subject minus `ref`, fractions) in words, worded from the
    interval: "`subject` beats REF by X pp [95% CI lo, hi]" only when the Holm-adjusted
    test rejects at ALPHA (the interval then excludes zero on that side); otherwise "no
    difference detected at this budget: REF is as good" with the numbers in brackets, so
    a difference that is noise never reads as a signed gain. A zero-variance or too-few-
    seeds difference gets no claim either. With `fixed_teacher` (every seed distils from
    one teacher) the verdict says "for this teacher": the seeds sample the TAs and the
    student, not the teacher."""
    if mean is None:
        return f"not compared with {ref}"
    tail = ", for this teacher" if fixed_teacher else ""
    n = f"{seeds} paired seeds" if seeds else "paired seeds"
    nums = f"{100 * mean:+.2f} pp"
    if ci:
        nums += f" [95% CI {100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
    if verdict_kind(mean, ci, p_holm, note) in ("beats", "beaten"):
        size = f"{100 * abs(mean):.2f} pp [95% CI {100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
        head = f"{subject} beats {ref}" if ci[0] > 0 else f"{ref} beats {subject}"
        return f"{head} by {size} (Holm p={p_holm:.2g}, {n}){tail}"
    if note == ZERO_VARIANCE:
        why = f"every seed gave the same difference, {nums}: the test is undefined"
    elif note == TOO_FEW or not ci:
        why = f"{nums}; {note or TOO_FEW}"
    else:
        why = f"{nums}, Holm p={p_holm:.2g}, {n}" if p_holm is not None else nums
    return f"no difference detected at this budget: {ref} is as good ({why}){tail}"

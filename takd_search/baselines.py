"""Baselines and the winner: NoKD, BLKD, the TAKD mean-accuracy heuristic, and the
seeded confirmation that names the winner. Pure Python/numpy/scipy: no training here.

- NoKD: each model trained alone (from scratch).
- BLKD: teacher -> student directly, T/alpha tuned on at least as many completed trials as
  the searched paths it is compared with (the search's direct-path trials count).
- Heuristic (TAKD paper, Sec. 5): the single TA whose NoKD *validation* accuracy is
  closest to the mean of the teacher's and the student's; ties (at the validation set's
  resolution) go to the smaller TA.
- Confirmation: the top-k searched configurations, BLKD, the heuristic path and NoKD
  retrained with fresh seeds. Two disjoint seed sets: the *selection* seeds name the
  winner by mean validation accuracy; the *report* seeds (`confirm_seeds`) give the test
  accuracy mean +- std and the paired difference against BLKD and NoKD (paired by seed:
  the same seed gives every method the same TA and student seeds), with a t-based 95 %
  confidence interval and Holm-adjusted p over the two comparisons. Selecting and
  reporting on the same seeds would favour the configuration whose seeds were lucky.
  Every method distils from the one teacher the search used, as a user with one teacher
  would; `baselines.reseed_teacher` retrains the teacher per seed too.

Every choice is deterministic: ties in validation accuracy go to the earlier proposed
trial (its `trial_number`, the searcher's proposal order), never to Ray's random trial ids.

Accuracies are counts of images. A confirmation row carries `val_correct`/`val_total` and
`test_correct`/`test_total`; the statistics turn them into exact fractions
(`fractions.Fraction`), so two methods that differ by the same number of images on every
seed have *identical* per-seed differences and the paired test is undefined (zero
variance), not p ~ 1e-10 from float32 rounding. Rows without counts (older run folders)
get them derived as round(acc * total) when the total is known, and otherwise are
compared as floats with a tolerance of `FLOAT_TOL`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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


def heuristic_ta(
    nokd_val: dict[str, float],
    teacher: str,
    student: str,
    candidates: Sequence[str],
    sizes: dict[str, int] | None = None,
    n_val: int | None = None,
) -> str | None:
    """The candidate whose NoKD val accuracy is closest to mean(teacher, student).

    Distances are compared at the validation set's resolution: counted in half
    validation images (the mean of two accuracies is a multiple of 1/(2 n_val)), so two
    TAs one float rounding apart are tied. Ties go to the smaller TA (fewer parameters,
    `sizes`), then to listing order. No candidates -> None.
    """
    if not candidates:
        return None
    target = (nokd_val[teacher] + nokd_val[student]) / 2

    def key(item):
        i, c = item
        d = abs(nokd_val[c] - target)
        dist = round(d * 2 * n_val) if n_val else round(d, 9)
        return (dist, (sizes or {}).get(c, 0), i)

    return min(enumerate(candidates), key=key)[1]


def config_id(path: str, guidance: str, hops: Sequence[dict], lr=None) -> str:
    """A readable identity for one searched configuration (path + per-hop values)."""
    parts = [
        f"T={h['T']:.3g},a={h['alpha']:.3g},kd={h['kd_epochs']:.3g},pe={h['parent_epoch']:.3g}"
        for h in hops
    ]
    return f"{path}|{guidance}|{lr}|" + ";".join(parts)


PHASE_ORDER = {"search": 0, "blkd": 1, "tune": 2}  # the order a run proposes its trials in


def rank_key(t: dict) -> tuple:
    """Sort key of a completed trial, best first: validation accuracy (rounded to 1e-9 so
    equal counts of correct images compare equal), then proposal order (the phase, then
    `trial_number` within it: the search's trials before the top-ups'), then the shorter
    path, then the trial id (a last resort for rows without a number)."""
    n = t.get("trial_number")
    n = int(n) if _finite(n) else math.inf
    phase = PHASE_ORDER.get(t.get("phase"), len(PHASE_ORDER))
    return (
        -round(float(t["val_acc"]), 9),
        phase,
        n,
        str(t["path"]).count(">"),
        str(t["trial_id"]),
    )


def top_configs(trials: Iterable[dict], k: int) -> list[dict]:
    """The k best completed trials by validation score, one per distinct configuration;
    ties go to the earlier proposed trial (see `rank_key`)."""
    done = [t for t in trials if t.get("status") == "completed" and _finite(t.get("val_acc"))]
    done.sort(key=rank_key)
    out, seen = [], set()
    for t in done:
        lr = t.get("lr")
        cid = config_id(t["path"], t["guidance"], t["hops"], None if lr != lr else lr)
        if cid not in seen:
            seen.add(cid)
            out.append(t)
        if len(out) == k:
            break
    return out


def tied(values: Sequence[float], resolution: float | None) -> bool:
    """Are the two best of `values` within `resolution` (one validation image, 1/n_val)?"""
    v = sorted((float(x) for x in values if _finite(x)), reverse=True)
    return len(v) > 1 and resolution is not None and v[0] - v[1] < resolution - 1e-12


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def default_select_seeds(report_seeds: Sequence[int], search_seed: int, n: int = 2) -> list[int]:
    """`n` selection seeds when the space names none: the smallest positive integers that
    are neither a report seed nor the search's seed (report [1, 2, 3], search 0 -> [4, 5])."""
    used = {int(s) for s in report_seeds} | {int(search_seed)}
    out, s = [], 1
    while len(out) < n:
        if s not in used:
            out.append(s)
        s += 1
    return out


def confirmation_plan(
    methods: dict[str, dict],
    seeds: Sequence[int],
    teacher_seed: int | None = None,
    select_seeds: Sequence[int] = (),
    candidates: Sequence[str] = (),
) -> list[dict]:
    """Every method (label -> {path, guidance, hops}) crossed with every report seed
    (`seed_set: report`), and the `candidates` for the winner also with every selection
    seed (`seed_set: select`).

    teacher_seed: the seed of the teacher of every distilled path (the search's, so the
    teacher is trained once per run); None retrains it with each confirmation seed. A
    path of one model (NoKD) has no teacher and gets none.
    """

    def one(label, cfg, seed, seed_set):
        return {
            "method": label,
            "seed": int(seed),
            "seed_set": seed_set,
            **(
                {"teacher_seed": int(teacher_seed)}
                if teacher_seed is not None and ">" in cfg["path"]
                else {}
            ),
            **cfg,
        }

    sel = [
        one(label, cfg, s, "select")
        for label, cfg in methods.items()
        if label in candidates
        for s in select_seeds
    ]
    return sel + [one(label, cfg, s, "report") for label, cfg in methods.items() for s in seeds]


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
    if _finite(correct) and _finite(n) and int(n) > 0:
        return Fraction(int(correct), int(n))
    acc = row.get(metric)
    if not _finite(acc):
        return None
    if _finite(n) and int(n) > 0:
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
        "mean": _mean(exact) if len(d) else None,
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
            "mean": _mean(exact),
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            f"diff_vs_{reference}": test["mean"],
            f"diff_std_vs_{reference}": test["std"],
            f"diff_n_vs_{reference}": None if own else test["n"],
            f"diff_ci_vs_{reference}": None if own else test["ci"],
            f"p_vs_{reference}": None if own else test["p"],
            f"p_note_vs_{reference}": None if own else test["note"],
        }
    return out


def _exact_mean(values: Sequence) -> Fraction | float:
    """Mean of accuracies: an exact Fraction when they all are fractions of images, else
    a float64."""
    if all(isinstance(v, Fraction) for v in values):
        return sum(values, Fraction(0)) / len(values)
    return float(np.mean([float(v) for v in values]))


def _mean(values: Sequence) -> float:
    """Mean of accuracies in float64 (computed exactly first from fractions of images)."""
    return float(_exact_mean(values))


def failed_seeds(rows: Sequence[dict]) -> dict[str, list[int]]:
    """Method -> the seeds whose row did not complete (status other than `completed`),
    sorted; methods with none are left out. What the report lists per method and seed."""
    out: dict[str, set] = {}
    for r in rows:
        if r.get("status") != "completed":
            out.setdefault(r["method"], set()).add(int(r["seed"]))
    return {m: sorted(v) for m, v in out.items()}


TIE_RULE = "fewer TAs, then the higher selection score, then the search's rank"


def n_tas(path: str | None) -> int:
    """Teacher assistants on a path `a>b>c` (models between the first and the last)."""
    return max(0, str(path or "").count(">") - 1)


def selection_scores(
    rows: Sequence[dict], candidates: Sequence[str], total: int | None = None
) -> dict[str, dict]:
    """Each candidate's selection score from its selection-seed rows: `score` (mean
    validation accuracy over the seeds that completed, a fraction; exact from counts),
    `seeds` (how many rows it has), `failed` (the seeds that did not complete).

    A failed seed is a failure of the configuration, not a missing value: `select_winner`
    ranks a candidate with any failed selection seed after every candidate with none, so an
    unstable configuration is never scored on its survivors alone."""
    out = {}
    for c in candidates:
        mine = [r for r in rows if r.get("method") == c]
        ok = [acc_of(r, "val_acc", total) for r in mine if r.get("status") == "completed"]
        ok = [a for a in ok if a is not None]
        failed = sorted({int(r["seed"]) for r in mine if r.get("status") != "completed"})
        out[c] = {
            "score": _exact_mean(ok) if ok else None,
            "seeds": len(mine),
            "failed": failed,
        }
    return out


def select_winner(
    scores: dict[str, dict],
    candidates: Sequence[str],
    paths: dict[str, str] | None = None,
    n_val: int | None = None,
) -> dict:
    """The winner among `candidates` by the stated rule, and who it is tied with.

    scores: `selection_scores` (or {label: {"score": x}}); n_val: validation images of
    one evaluation (None: ties are exact equality only).

    Rule. Candidates with a failed selection seed come after every candidate without one
    (then by fewer failures). Among the rest, the *band* is every candidate whose score
    is within one validation image (1/n_val, on the mean's scale) of the best; the winner
    is the band's candidate with the fewest TAs, then the higher score, then the earlier
    candidate (top1 before top2: the search's rank). `tied` lists every candidate that a
    one-image change of one validation number could make the winner: those within
    1/n_val + 1/(k n_val) of the best, where k is the number of selection seeds (one
    image moves a k-seed mean by 1/(k n_val)). So the winner never flips on one image
    without the report having said the candidates tie.

    Returns {"winner", "tied" (labels in candidate order; [] when alone), "band" (fraction),
    "step" (fraction: one image on the mean), "rule"}."""
    have = [c for c in candidates if c in scores and scores[c].get("score") is not None]
    out = {"winner": None, "tied": [], "band": None, "step": None, "rule": TIE_RULE}
    if not have:
        return out
    order = {c: i for i, c in enumerate(candidates)}
    fails = {c: len(scores[c].get("failed") or []) for c in have}
    clean = [c for c in have if fails[c] == min(fails.values())]
    k = max(1, max(int(scores[c].get("seeds") or 1) - fails[c] for c in clean))
    band = Fraction(1, int(n_val)) if n_val else Fraction(0)
    step = Fraction(1, int(n_val) * k) if n_val else Fraction(0)

    def gap(c):  # best score minus c's, exact where the scores are fractions
        g = best - scores[c]["score"]
        return g if isinstance(g, Fraction) else Fraction(g).limit_denominator(10**9)

    best = max(scores[c]["score"] for c in clean)
    in_band = [c for c in clean if gap(c) <= band]
    win = min(
        in_band,
        key=lambda c: (
            n_tas((paths or {}).get(c)),
            -float(scores[c]["score"]),
            order[c],
        ),
    )
    near = [c for c in clean if gap(c) <= band + step] if n_val else in_band
    tied = sorted(near, key=order.get)
    out.update(
        winner=win,
        tied=tied if len(tied) > 1 else [],
        band=float(band),
        step=float(step),
    )
    return out


def winner(
    val_summary: dict[str, dict], candidates: Sequence[str], paths: dict[str, str] | None = None
) -> str | None:
    """The method with the best mean *validation* accuracy among `candidates` (pass the
    summary of the selection seeds' val_acc, never of test_acc). Exact ties go to the
    shorter path (`paths`: label -> path), then to the earlier candidate (top1 before top2:
    the search's rank, itself ordered by proposal). (`select_winner` is the rule a run
    applies: it also treats one validation image as a tie.)"""
    have = [c for c in candidates if c in val_summary]
    if not have:
        return None
    order = {c: i for i, c in enumerate(candidates)}
    return min(
        have,
        key=lambda c: (
            -round(val_summary[c]["mean"], 9),
            str((paths or {}).get(c, "")).count(">"),
            order[c],
        ),
    )


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

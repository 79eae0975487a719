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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

ZERO_VARIANCE = "undefined (zero variance)"
TOO_FEW = "too few paired seeds for a test"


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


def paired_test(diffs: Sequence[float]) -> dict:
    """Mean, std (ddof 1), t-based 95 % confidence interval and two-sided paired t-test p
    of per-seed differences. With < 2 pairs, or all differences equal (zero variance),
    the test is undefined: ci and p are None and `note` says why (never p = 0)."""
    d = np.asarray(list(diffs), dtype="float64")
    out = {
        "n": len(d),
        "mean": float(d.mean()) if len(d) else None,
        "std": float(d.std(ddof=1)) if len(d) > 1 else None,
        "ci": None,
        "p": None,
        "note": None,
    }
    if len(d) < 2:
        out["note"] = TOO_FEW
        return out
    if np.allclose(d, d[0], rtol=0, atol=1e-12):
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
    rows: Sequence[dict], reference: str, metric: str = "test_acc"
) -> dict[str, dict]:
    """Per method: `metric` mean/std over seeds, and the paired difference against
    `reference`: mean, std, 95 % CI (`diff_ci_vs_<ref>`, [low, high]), two-sided paired
    t-test p (`p_vs_<ref>`; None with < 2 pairs or zero variance, `p_note_vs_<ref>` says
    which).

    rows: dicts with method, seed and the metric (fractions).
    """
    by = {}
    for r in rows:
        if _finite(r.get(metric)):
            by.setdefault(r["method"], {})[r["seed"]] = float(r[metric])
    ref = by.get(reference, {})
    out = {}
    for method, accs in by.items():
        vals = np.array(list(accs.values()))
        common = sorted(set(accs) & set(ref))
        test = paired_test([accs[s] - ref[s] for s in common])
        own = method == reference
        out[method] = {
            "n": len(vals),
            "mean": float(vals.mean()),
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            f"diff_vs_{reference}": test["mean"],
            f"diff_std_vs_{reference}": test["std"],
            f"diff_ci_vs_{reference}": None if own else test["ci"],
            f"p_vs_{reference}": None if own else test["p"],
            f"p_note_vs_{reference}": None if own else test["note"],
        }
    return out


def winner(
    val_summary: dict[str, dict], candidates: Sequence[str], paths: dict[str, str] | None = None
) -> str | None:
    """The method with the best mean *validation* accuracy among `candidates` (pass the
    summary of the selection seeds' val_acc, never of test_acc). Exact ties go to the
    shorter path (`paths`: label -> path), then to the earlier candidate (top1 before top2:
    the search's rank, itself ordered by proposal)."""
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

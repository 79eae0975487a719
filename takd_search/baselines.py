"""Baselines and the winner: NoKD, BLKD, the TAKD mean-accuracy heuristic, and the
seeded confirmation that names the winner. Pure Python/numpy: no training here.

- NoKD: each model trained alone (from scratch).
- BLKD: teacher -> student directly, T/alpha searched on the same budget as a path.
- Heuristic (TAKD paper, Sec. 5): the single TA whose NoKD *validation* accuracy is
  closest to the mean of the teacher's and the student's.
- Confirmation: the top-k searched configurations, BLKD and the heuristic path retrained
  with fresh seeds; test accuracy mean +- std and the paired difference against BLKD and
  NoKD (paired by seed: the same seed gives every method the same TA and student seeds).
  Every method distils from the one teacher the search used, as a user with one teacher
  would; `baselines.reseed_teacher` retrains the teacher per seed too. The
  winner is the configuration with the best mean *validation* accuracy over those seeds:
  the test set only reports, it never selects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def heuristic_ta(
    nokd_val: dict[str, float], teacher: str, student: str, candidates: Sequence[str]
) -> str | None:
    """The candidate whose NoKD val accuracy is closest to mean(teacher, student).
    Ties go to the smaller distance in listing order; no candidates -> None."""
    if not candidates:
        return None
    target = (nokd_val[teacher] + nokd_val[student]) / 2
    return min(candidates, key=lambda c: abs(nokd_val[c] - target))


def config_id(path: str, guidance: str, hops: Sequence[dict], lr=None) -> str:
    """A readable identity for one searched configuration (path + per-hop values)."""
    parts = [
        f"T={h['T']:.3g},a={h['alpha']:.3g},kd={h['kd_epochs']:.3g},pe={h['parent_epoch']:.3g}"
        for h in hops
    ]
    return f"{path}|{guidance}|{lr}|" + ";".join(parts)


def top_configs(trials: Iterable[dict], k: int) -> list[dict]:
    """The k best completed trials by validation score, one per distinct configuration."""
    done = [t for t in trials if t.get("status") == "completed" and _finite(t.get("val_acc"))]
    done.sort(key=lambda t: (-t["val_acc"], t["trial_id"]))
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


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def confirmation_plan(
    methods: dict[str, dict], seeds: Sequence[int], teacher_seed: int | None = None
) -> list[dict]:
    """Every method (label -> {path, guidance, hops}) crossed with every seed.

    teacher_seed: the seed of the teacher of every distilled path (the search's, so the
    teacher is trained once per run); None retrains it with each confirmation seed. A
    path of one model (NoKD) has no teacher and gets none.
    """
    return [
        {
            "method": label,
            "seed": int(seed),
            **(
                {"teacher_seed": int(teacher_seed)}
                if teacher_seed is not None and ">" in cfg["path"]
                else {}
            ),
            **cfg,
        }
        for label, cfg in methods.items()
        for seed in seeds
    ]


def paired_summary(
    rows: Sequence[dict], reference: str, metric: str = "test_acc"
) -> dict[str, dict]:
    """Per method: `metric` mean/std over seeds, and the paired difference against
    `reference` (mean, std, and a two-sided paired t-test p-value; None if < 2 pairs).

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
        diffs = np.array([accs[s] - ref[s] for s in common])
        out[method] = {
            "n": len(vals),
            "mean": float(vals.mean()),
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            f"diff_vs_{reference}": float(diffs.mean()) if len(diffs) else None,
            f"diff_std_vs_{reference}": (float(diffs.std(ddof=1)) if len(diffs) > 1 else None),
            f"p_vs_{reference}": _paired_p(diffs) if method != reference else None,
        }
    return out


def _paired_p(diffs: np.ndarray) -> float | None:
    if len(diffs) < 2:
        return None
    if np.allclose(diffs, diffs[0]):
        return 0.0 if diffs[0] != 0 else 1.0
    from scipy import stats

    return float(stats.ttest_1samp(diffs, 0.0).pvalue)


def winner(val_summary: dict[str, dict], candidates: Sequence[str]) -> str | None:
    """The method with the best mean confirmed *validation* accuracy among `candidates`
    (pass the summary of val_acc, never of test_acc)."""
    summary = val_summary
    have = [c for c in candidates if c in summary]
    return max(have, key=lambda c: summary[c]["mean"]) if have else None

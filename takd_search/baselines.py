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

The paired statistics (from counts of correct images) and the verdicts live in
`takd_search.paired` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

from takd_search.paired import (  # noqa: F401 - re-exported: baselines' public names
    ALPHA,
    FLOAT_TOL,
    TOO_FEW,
    ZERO_VARIANCE,
    acc_of,
    exact_mean,
    failed_seeds,
    finite,
    holm,
    mean_of,
    paired_summary,
    paired_test,
    verdict,
    verdict_kind,
)


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
        f"T={h['T']:.3g},a={h['alpha']:.3g},kd={h['kd_fraction']:.3g},"
        f"pe={h['parent_fraction']:.3g}"
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
    n = int(n) if finite(n) else math.inf
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
    done = [t for t in trials if t.get("status") == "completed" and finite(t.get("val_acc"))]
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
    v = sorted((float(x) for x in values if finite(x)), reverse=True)
    return len(v) > 1 and resolution is not None and v[0] - v[1] < resolution - 1e-12


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
            "score": exact_mean(ok) if ok else None,
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

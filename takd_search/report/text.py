"""The report's words: the answer (selected path, its gains over BLKD and NoKD, the
heuristic, the compute and a grid counterfactual), whether the learning curves show
"KD learns faster", ties among the best trials, how confirmation treated the teacher,
and the run's premise warnings.

Each sentence carries its interval, and a claim is made only where the interval (and the
Holm-adjusted p) supports it; otherwise the sentence says the numbers do not separate.
The numbers come from `stats`, their formatting from `tables`.
"""

from __future__ import annotations

import math

import pandas as pd

from takd_search.report.importances import HYPER
from takd_search.report.premise import run_warnings
from takd_search.report.stats import (
    device_kind,
    epochs_test,
    epochs_to_reach,
    paired_vs,
    time_unit,
    tuning_of,
)
from takd_search.report.tables import pct, pp_ci
from takd_search.report.verdicts import (
    effort_lines,
    failure_lines,
    teacher_fixed,
    teacher_spread_line,
    verdict_line,
)
from takd_search.results import Run


def answer_lines(run: Run, stats: pd.DataFrame) -> list[str]:
    """The answer in words: best path, gains with uncertainty, heuristic, compute. Each
    sentence carries its interval, and a claim is made only where the interval supports
    it (otherwise the sentence says the numbers do not separate)."""
    s = run.summary
    by = {r["method"]: r for r in stats.to_dict("records")}
    tuning = tuning_of(s)
    win = s.get("winner")
    sel = s.get("selection") or {}
    out = []
    b = by.get(win)
    blkd, nokd = by.get("blkd"), by.get("nokd")
    fixed = teacher_fixed(run)
    if b is None:
        out.append("- **No path was confirmed**: the confirmation phase has no completed rows.")
    else:
        how = sel.get("on") or "its mean validation accuracy over the same confirmation seeds"
        line = (
            f"- **Selected path: `{b['path']}`** ({b['guidance']} guidance, confirmation label "
            f"`{win}`; {_hops_text((s.get('best') or {}).get('hops'))}"
            + (f"; tuned on {_trials(tuning[win][0])}" if win in tuning else "")
            + f"): test accuracy **{pct(b['test_mean'], b['test_std'])}** (mean ± std over "
            f"{b['seeds']} report seeds). It was chosen by {how}"
            + (
                "; the test set and the report seeds did not take part in the choice."
                if sel.get("select_seeds") or sel.get("on")
                else "; the test set did not take part in the choice, but the same seeds "
                "chose and report it (a run from before selection seeds), which flatters it."
            )
        )
        tied = sel.get("tied") or []
        if tied:
            res = sel.get("resolution")
            others = ", ".join(f"`{t}`" for t in tied if t != win)
            rule = sel.get("tie_rule") or "shorter path, then search rank"
            line += (
                f" Its selection score is tied with {others}: within one validation image "
                f"({100 * res:.2f} pp) of the best, or one image of one seed from it, so one "
                f"image could change the choice; it is the stated rule ({rule}), not evidence."
            )
        out.append(line)
        for ref, name, what in ((blkd, "BLKD", "teacher -> student directly, T/alpha tuned"),
                                (nokd, "NoKD", "the student trained alone")):  # fmt: skip
            if ref is None:
                out.append(f"- {name} was not confirmed, so no gain over it can be given.")
                continue
            key = name.lower()
            n_ref = tuning.get(key, (None,))[0]
            out.append(
                f"- Difference from {name} (`{ref['path']}`, {what}"
                + (f" on {_trials(n_ref)}" if key == "blkd" and n_ref is not None else "")
                + f": {pct(ref['test_mean'], ref['test_std'])}): {pp_ci(b, key)} "
                f"(paired by seed; 95 % t interval; p Holm-adjusted over the two comparisons): "
                f"{verdict_line(b, key, name, fixed)}."
            )
        if fixed and (blkd is not None or nokd is not None):
            out.append(
                "- *For this teacher*: every seed distilled from the one teacher the search "
                "trained, so the seeds sample the TAs and the student, not the teacher; "
                "another teacher of the same architecture may give another answer "
                "(`baselines.reseed_teacher: true` retrains it per seed, and the report then "
                "gives the teacher-to-teacher spread)."
            )
    ta = s.get("heuristic_ta")
    h = by.get("heuristic")
    nv = s.get("nokd_val") or {}
    if ta:
        teacher, student = s.get("teacher"), s.get("student")
        mean = (nv[teacher] + nv[student]) / 2 if teacher in nv and student in nv else None
        hpath = (s.get("heuristic") or {}).get("path")
        line = (
            f"- The TAKD heuristic (the TA whose NoKD validation accuracy is nearest the "
            f"teacher/student mean{', ' + pct(mean) if mean is not None else ''}; ties at the "
            f"validation set's resolution go to the smaller TA) picked `{ta}` "
            f"({pct(nv.get(ta))}), giving the path `{hpath}`"
        )
        n_h, n_w = tuning.get("heuristic", (None,))[0], tuning.get(win, (None,))[0]
        if n_h is not None:
            line += f", tuned on {_trials(n_h)}"
        if s.get("heuristic_found_best"):
            line += "; it is the selected path"
            if h is not None:
                line += f" ({pct(h['test_mean'], h['test_std'])} on test)"
        elif h is not None and b is not None:
            t = paired_vs(run.confirmation, "heuristic", win)
            line += f": {pct(h['test_mean'], h['test_std'])} on test"
            under = n_h is not None and n_w is not None and n_h < n_w
            if t is None:
                line += ", with no paired seeds against the selected path"
            elif t.get("ci") and t["ci"][1] < 0 and not under:
                line += (
                    f", {_ci_text(t)} against the selected path: the heuristic's path is "
                    "worse on these seeds"
                )
            elif t.get("ci") and t["ci"][0] > 0:
                line += (
                    f", {_ci_text(t)} against the selected path: better on test, though "
                    "validation chose the other"
                )
            else:
                line += (
                    f", {_ci_text(t)} against the selected path"
                    + (
                        f" (its hyper-parameters had fewer tuning trials, {n_h} against {n_w})"
                        if under
                        else ""
                    )
                    + ": this run does not show that the heuristic missed the best path"
                )
        else:
            line += "; it was not confirmed"
        out.append(line + ".")
    else:
        out.append("- The space has no candidate TAs, so the heuristic had nothing to pick.")
    out += teacher_spread_line(s)
    out += failure_lines(stats, s)
    out += effort_lines(s)
    out.append(_compute_line(run))
    return out


def _hops_text(hops: list[dict] | None) -> str:
    if not hops:
        return "no distillation"
    keys = [h for h in HYPER if h in hops[0]]

    def one(h):
        return ", ".join(f"{k}={h[k]:.3g}" for k in keys if h.get(k) is not None)

    if all(h == hops[0] for h in hops):
        return one(hops[0]) + (" on every hop" if len(hops) > 1 else "")
    return "; ".join(f"hop {i}: {one(h)}" for i, h in enumerate(hops, 1))


def _trials(n: int) -> str:
    return f"{n} completed trial{'' if n == 1 else 's'}"


def _ci_text(t: dict, unit: float = 100.0, what: str = "pp") -> str:
    """'-1.00 pp [95 % CI -3.5, +1.5]' or the difference and why there is no interval."""
    out = f"{unit * t['mean']:+.2f} {what}"
    if t.get("ci"):
        out += f" [95 % CI {unit * t['ci'][0]:+.2f}, {unit * t['ci'][1]:+.2f}]"
    elif t.get("note"):
        out += f" ({t['note']})"
    return out


def _compute_line(run: Run) -> str:
    """The compute sentence, with the grid counterfactual computed per distinct hop."""
    s = run.summary
    c = s.get("compute", {}) or {}
    kind, per = device_kind(run)
    secs = float(run.trials["train_seconds"].astype("float64").fillna(0).sum()) * per
    unit, div = time_unit(secs)
    n_search = int(c.get("search_trials", 0))
    line = (
        f"- Compute: {n_search} search trials ({c.get('search_completed', 0)} completed, "
        f"{c.get('search_pruned', 0)} pruned, {c.get('search_failed', 0)} failed), "
        f"{c.get('blkd_trials', 0)} BLKD trials and {c.get('tune_trials', 0)} top-up trials "
        "(equal tuning budgets); "
        f"{c.get('hops_trained', 0)} hops trained, "
        f"{c.get('hops_reused', 0)} reused from the hop store (free); "
        f"{secs / div:.3g} {kind}-{unit} of training in these trials, pruned and failed "
        f"ones included (whole run including NoKD and confirmation: "
        f"{c.get('wall_seconds', 0):.0f} s wall)."
    )
    hops, cost = c.get("grid_hops"), c.get("hop_seconds") or {}
    if hops and cost:
        fallback = sum(cost.values()) / len(cost)
        grid_secs = per * sum(n * cost.get(m, fallback) for m, n in hops.items())
        gu, gdiv = time_unit(grid_secs)
        missing = sorted(set(hops) - set(cost))
        line += (
            f" An exhaustive grid of the same space ({c.get('paths', '?')} paths, a continuous "
            f"range counted as 5 points) would train {sum(hops.values())} distinct hops, every "
            "path prefix shared through the hop store as here; at this run's mean training "
            f"time of one hop of each model that is about {grid_secs / gdiv:.3g} {kind}-{gu}"
            + (f" (no measured hop of {', '.join(missing)}: the overall mean)" if missing else "")
            + f", against {secs / div:.3g} {kind}-{unit} here. It assumes every grid hop costs "
            "what a hop of its model cost in this run (full epochs, no early stopping) and "
            "counts KD hops and the teacher only (NoKD and confirmation come on top of both)."
        )
    elif c.get("grid_trials"):
        line += (
            f" An exhaustive grid of the same space is {c['grid_trials']} trials (continuous "
            f"ranges counted as 5 points); this run recorded no per-hop costs, so no grid "
            "time is estimated."
        )
    return line


def speed_sentence(mean: pd.DataFrame, winner: str | None, curves=None) -> str:
    """One sentence: epochs the winner's and NoKD's mean curves need to reach NoKD's best
    mean validation accuracy (rounded down to 0.01 %, the figure the sentence states),
    and whether the per-seed difference supports "KD learns faster".

    curves: the per-seed frame of `student_curves` (report seeds). The claim is made only
    when the paired per-seed difference in epochs (NoKD's minus the winner's; a seed that
    never reaches the target counts as one epoch past its last) has a 95 % interval above
    zero; otherwise the sentence says the curves do not separate."""
    m = mean
    have = set(m["method"])
    if winner not in have or "nokd" not in have:
        return (
            "The confirmation phase has no curves for "
            + ("the winner" if winner not in have else "NoKD")
            + ", so the epochs to reach NoKD's accuracy cannot be compared."
        )
    nk = m[m["method"] == "nokd"]
    target = math.floor(float(nk["mean"].max()) * 1e4 + 1e-6) / 1e4
    e_nokd = epochs_to_reach(m, "nokd", target)
    e_win = epochs_to_reach(m, winner, target)
    last = int(m.loc[m["method"] == winner, "epoch"].max())
    head = (
        f"Epochs to reach NoKD's best mean validation accuracy ({100 * target:.2f} %), "
        f"from the mean curves over seeds: NoKD needs **{e_nokd}**, the winner `{winner}` "
    )
    test = epochs_test(curves, winner, target) if curves is not None else None
    if test is None or test["n"] < 2:
        evidence = " Too few paired seeds to say whether this is more than seed noise."
    elif test["ci"] is None:
        evidence = (
            f" Every seed gave the same gap ({test['mean']:+.0f} epochs): the test is "
            f"{test['note']}, so this is no evidence either way."
        )
    else:
        lo, hi = test["ci"]
        evidence = (
            f" Per seed, NoKD needs {test['mean']:+.2g} epochs more (95 % CI {lo:+.2g} to "
            f"{hi:+.2g}, {test['n']} seeds)"
            + (
                ": KD makes the student learn faster here."
                if lo > 0
                else ": KD is slower to get there here."
                if hi < 0
                else ", an interval that includes zero: no evidence that KD changes how "
                "fast the student learns."
            )
        )
    if e_win is None:
        best = float(m.loc[m["method"] == winner, "mean"].max())
        return (
            head + f"**never reaches it** in its {last} epochs (best mean {pct(best)})." + evidence
        )
    diff = e_nokd - e_win
    gap = (
        f"{diff} epoch{'s' if diff != 1 else ''} fewer"
        if diff > 0
        else "the same number"
        if diff == 0
        else f"{-diff} epoch{'s' if diff != -1 else ''} more"
    )
    return head + f"**{e_win}** ({gap})." + evidence


def search_ties(run: Run) -> str:
    """' N trials are tied ...' when several completed search trials share the best
    validation accuracy within one validation image (1/n_val), else ''. Runs that did
    not record n_val say nothing."""
    res = (run.summary.get("selection") or {}).get("resolution")
    t = run.trials
    v = t.loc[(t["phase"] == "search") & (t["status"] == "completed"), "val_acc"].dropna()
    if not res or v.empty:
        return ""
    n = int((v > float(v.max()) - res + 1e-12).sum())
    if n < 2:
        return ""
    return (
        f" {n} completed trials are tied at the best validation accuracy, {pct(v.max())}, "
        f"within one validation image ({100 * res:.2f} pp): their order is proposal order, "
        "not evidence, which is why several are confirmed with fresh seeds."
    )


def teacher_note(confirmation: pd.DataFrame) -> str:
    """How confirmation treated the teacher: kept (the search's) or retrained per seed.
    A run from before `teacher_seed` existed loads with the column empty: it reseeded."""
    distilled = confirmation[confirmation["method"] != "nokd"]["teacher_seed"].dropna()
    if len(distilled) and distilled.nunique() == 1:
        return (
            f"(the TAs and the student; every seed distils from the search's teacher, "
            f"seed {int(distilled.iloc[0])})"
        )
    return "(the whole path, the teacher included)"


def premise_lines(run: Run) -> list[str]:
    """The run's premise warnings (`premise.run_warnings`: the teacher not better than
    the student alone, a brought teacher far below its claim or trained on another split
    of this data) as quoted lines + blank."""
    s = run.summary
    r = run.versions.get("run") or {}
    claims = (r.get("teacher") or {}).get("claims")
    split = {
        "dataset": r.get("dataset"),
        "data": r.get("data_fingerprint"),
        "val_fraction": r.get("val_fraction"),
        "split_seed": r.get("split_seed"),
    }
    lines = run_warnings(run.baselines, s.get("teacher"), s.get("student"), claims, split)
    return [*(f"> **{w}**" for w in lines), *([""] if lines else [])]

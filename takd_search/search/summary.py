"""A run's answer: summary.json (`summarize`) and the closing lines (`answer`).

The winner is chosen by the stated rule (`SELECTION_RULE`) on the selection seeds; the
report seeds give the test accuracies and the paired comparisons with BLKD and NoKD.
"""

from __future__ import annotations

import numpy as np

from takd_search import baselines
from takd_search.search.methods import search_candidates

EXACT_RULE = "the higher selection score; exact ties: the shorter path, then the search's rank"
SELECTION_RULE = (
    "the candidate (top-k, heuristic) with the best mean validation accuracy over the "
    "selection seeds, which are disjoint from the report seeds; a candidate with a failed "
    "selection seed ranks after every candidate without one; candidates within one "
    "validation image (1/n_val) of the best are a tie band, won by " + baselines.TIE_RULE
)


# the matched control: BLKD (the direct path) retrained with the report seeds at the
# winner's own student-hop hyper-parameters, so winner minus it is the path's effect without
# the tuning's luck (which T/alpha each procedure happened to find)
MATCHED = "blkd_matched"


def _matched_verdict(d: dict, win: str, report: list[dict], fixed_teacher: bool) -> None:
    """With a matched control in the report rows: its paired comparison (`*_vs_matched`),
    and "the path beats BLKD" kept only when the winner also beats BLKD at its own
    hyper-parameters (an intersection-union test: each at 5 %, together still at 5 %). In
    bench/calibrate.py's null landscape this is what keeps tuning luck from reading as a
    path effect at large test sets."""
    m = baselines.paired_summary(report, MATCHED).get(win) or {}
    mean, ci = m.get(f"diff_vs_{MATCHED}"), m.get(f"diff_ci_vs_{MATCHED}")
    p, note = m.get(f"p_vs_{MATCHED}"), m.get(f"p_note_vs_{MATCHED}")
    d.update(diff_vs_matched=mean, diff_ci_vs_matched=ci, p_vs_matched=p, p_note_vs_matched=note)
    if (
        baselines.verdict_kind(
            d.get("diff_vs_blkd"),
            d.get("diff_ci_vs_blkd"),
            d.get("p_holm_vs_blkd"),
            d.get("p_note_vs_blkd"),
        )
        != "beats"
    ):
        return  # fmt: skip
    if baselines.verdict_kind(mean, ci, p, note) == "beats":
        d["verdict_vs_blkd"] += (
            f"; also BLKD at the path's own hyper-parameters, by {100 * mean:.2f} pp"
        )
        return
    d["claim_vs_blkd"] = "unmatched"  # beats tuned BLKD only: not a claim
    ctl = f"{100 * mean:+.2f} pp" if mean is not None else "not measured"
    if ci:
        ctl += f" [95% CI {100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
    d["verdict_vs_blkd"] = (
        "no path effect detected at this budget: the path beats tuned BLKD "
        f"({100 * d['diff_vs_blkd']:+.2f} pp) but not BLKD at its own hyper-parameters "
        f"({ctl}): the gain may be the tuning's, not the path's"
        + (", for this teacher" if fixed_teacher else "")
    )


def _teacher_spread(report: list[dict]) -> dict | None:
    """The teacher's accuracy over the report seeds when it was retrained per seed
    (`reseed_teacher`): one value per seed (the teacher of any distilled method with that
    seed), as n, mean, std (ddof 1), min and max, for val and test. None when no row
    measured a teacher."""
    per_seed: dict[int, dict] = {}
    for r in report:
        if r.get("method") == "nokd":
            continue
        for split in ("val", "test"):
            v = r.get(f"teacher_{split}_acc")
            if baselines.finite(v):
                per_seed.setdefault(int(r["seed"]), {}).setdefault(split, float(v))
    if not per_seed:
        return None
    out: dict = {"seeds": sorted(per_seed)}
    for split in ("val", "test"):
        v = np.array([d[split] for d in per_seed.values() if split in d], dtype="float64")
        if len(v):
            out[split] = {
                "n": len(v),
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if len(v) > 1 else None,
                "min": float(v.min()),
                "max": float(v.max()),
            }
    return out


def summarize(
    space,
    run_dir,
    methods,
    crow,
    trials,
    nokd_val,
    ta,
    path_space,
    teacher,
    student,
    wall,
    *,
    select_seeds=(),
    n_val=None,
    budget=None,
    hop_seconds=None,
) -> dict:
    """summary.json from the run's methods, confirmation rows (`crow`, with the counts of
    correct images: the statistics are exact fractions, baselines.acc_of) and trials.

    The winner: `baselines.select_winner` on the selection seeds (SELECTION_RULE). The
    report seeds give every method's test accuracy and its paired differences against
    BLKD and NoKD, each with a verdict worded from its interval (`baselines.verdict`).
    Failed rows are listed per method and seed (`failed`)."""
    report = [r for r in crow if r["status"] == "completed" and r.get("seed_set") != "select"]
    chosen = [r for r in crow if r.get("seed_set") == "select"]
    sel, on, choice = _selection(space, methods, chosen, report, select_seeds, n_val)
    win = choice["winner"]
    scores = {k: float(v["score"]) for k, v in sel.items() if v["score"] is not None}
    fixed_teacher = not space.baselines.reseed_teacher
    stats = {
        "blkd": baselines.paired_summary(report, "blkd"),
        "nokd": baselines.paired_summary(report, "nokd"),
        "val": baselines.paired_summary(report, "blkd", metric="val_acc", total=n_val),
    }
    failed = _failed(crow)

    def method(k):
        return _method(k, methods, stats, scores, failed, fixed_teacher)

    best_d = method(win) if win else None
    if best_d and any(r["method"] == MATCHED for r in report):
        _matched_verdict(best_d, win, report, fixed_teacher)
    return {
        "space": space.name,
        "dataset": space.data.dataset,
        "run_dir": str(run_dir),
        "teacher": teacher,
        "student": student,
        "winner": win,
        "best": best_d,
        "heuristic_ta": ta,
        "heuristic": method("heuristic"),
        "heuristic_found_best": bool(
            win and "heuristic" in methods and methods[win]["path"] == methods["heuristic"]["path"]
        ),
        "heuristic_vs_best": _heuristic_vs_best(report, win, methods),
        "blkd": method("blkd"),
        "nokd": method("nokd"),
        "top": {k: method(k) for k in methods if k.startswith("top")},
        "nokd_val": nokd_val,
        "selection": {
            "rule": SELECTION_RULE,
            "on": on,
            "select_seeds": list(select_seeds),
            "report_seeds": list(space.baselines.confirm_seeds),
            "scores": scores,
            "n_val": n_val,
            "resolution": 1.0 / n_val if n_val else None,
            "band": choice["band"],
            "step": choice["step"],
            "tie_rule": choice["rule"],
            "tied": choice["tied"],
        },
        "failed": failed,
        "teacher_fixed": fixed_teacher,
        "teacher_spread": None if fixed_teacher else _teacher_spread(report),
        "budget": budget,
        "compute": _compute(trials, path_space, hop_seconds, wall),
    }


def _selection(space, methods, chosen, report, select_seeds, n_val) -> tuple:
    """(selection scores of every candidate, what they are computed on, the choice)."""
    cands = search_candidates(methods)
    paths = {k: methods[k]["path"] for k in methods}
    if select_seeds:
        sel = baselines.selection_scores(chosen, cands, total=n_val)
        on = f"mean validation accuracy over selection seeds {list(select_seeds)}"
    else:  # no selection seeds: the search's own validation ranking (the search seed)
        sel = {
            k: {"score": methods[k]["val_acc"], "seeds": 1, "failed": []}
            for k in cands
            if methods[k].get("val_acc") is not None
        }
        on = f"validation accuracy in its tuning trials (search seed {space.search.seed})"
    choice = baselines.select_winner(sel, cands, paths, n_val)
    # the driver may already have chosen (run.py retrains only its choice with the report
    # seeds): that choice is the winner; the tie band is still stated, and the rule is the
    # one that made the choice
    confirmed = [k for k in cands if any(r["method"] == k for r in report)]
    if len(confirmed) == 1 and confirmed[0] != choice["winner"]:
        win = confirmed[0]
        choice = dict(choice, winner=win, rule=EXACT_RULE)
        if choice["tied"] and win not in choice["tied"]:
            choice["tied"] = sorted([*choice["tied"], win], key=cands.index)
    if select_seeds:  # every selection score, the other procedures' candidates too
        others = sorted({r["method"] for r in chosen} - set(cands))
        sel |= baselines.selection_scores(chosen, others, total=n_val)
    return sel, on, choice


def _failed(crow) -> dict:
    """method -> {"select": failed selection seeds, "report": failed report seeds}."""
    select = [r for r in crow if r.get("seed_set") == "select"]
    failed = {m: {"select": s, "report": []} for m, s in baselines.failed_seeds(select).items()}
    rest = [r for r in crow if r.get("seed_set", "report") != "select"]
    for m, seeds in baselines.failed_seeds(rest).items():
        failed.setdefault(m, {"select": [], "report": []})["report"] = seeds
    return failed


def _method(k, methods, stats, scores, failed, fixed_teacher) -> dict | None:
    """One method's entry: its configuration, effort, selection score, failures, and
    (with report seeds) its test accuracy and verdicts against BLKD and NoKD."""
    if k not in methods:
        return None
    m = methods[k]
    d = {
        "path": m["path"],
        "guidance": m["guidance"],
        "hops": m["hops"],
        "proposals": m.get("proposals"),
        "tuning_trials": m.get("tuning_trials"),
        "tuning_seconds": m.get("tuning_seconds"),
        "select_val": scores.get(k),
    }
    if m.get("note"):
        d["note"] = m["note"]
    if k in failed:
        d["failed_seeds"] = failed[k]
    if k not in stats["blkd"]:
        return d
    t, n = stats["blkd"][k], stats["nokd"].get(k, {})
    adj = baselines.holm(
        {
            "blkd": t.get("p_vs_blkd") if k != "blkd" else None,
            "nokd": n.get("p_vs_nokd") if k != "nokd" else None,
        }
    )
    d.update(
        test_mean=t["mean"],
        test_std=t["std"],
        seeds=t["n"],
        val_mean=stats["val"].get(k, {}).get("mean"),
    )
    for ref, src in (("blkd", t), ("nokd", n)):
        if k == ref:
            continue
        keys = ("diff", "diff_std", "diff_ci", "p", "p_note")
        d.update({f"{x}_vs_{ref}": src.get(f"{x}_vs_{ref}") for x in keys})
        d[f"p_holm_vs_{ref}"] = adj[ref]
        # the claim, as data (bench/calibrate.py counts these): beats, beaten, none, ...
        d[f"claim_vs_{ref}"] = baselines.verdict_kind(
            src.get(f"diff_vs_{ref}"), src.get(f"diff_ci_vs_{ref}"), adj[ref],
            src.get(f"p_note_vs_{ref}"),
        )  # fmt: skip
        d[f"verdict_vs_{ref}"] = baselines.verdict(
            src.get(f"diff_vs_{ref}"),
            src.get(f"diff_ci_vs_{ref}"),
            adj[ref],
            src.get(f"p_note_vs_{ref}"),
            dict(blkd="BLKD", nokd="NoKD")[ref],
            subject="BLKD" if k == "blkd" else "the path",
            fixed_teacher=fixed_teacher and k != "nokd",
            seeds=src.get(f"diff_n_vs_{ref}"),
        )
    return d


def _heuristic_vs_best(report, win, methods) -> dict | None:
    """The heuristic's path minus the winner's, paired by report seed (test accuracy)."""
    if not win or "heuristic" not in methods or win == "heuristic":
        return None
    by = {}
    for r in report:
        a = baselines.acc_of(r, "test_acc")
        if r["method"] in (win, "heuristic") and a is not None:
            by.setdefault(r["seed"], {})[r["method"]] = a
    diffs = [v["heuristic"] - v[win] for v in by.values() if len(v) == 2]
    return baselines.paired_test(diffs) if diffs else None


def _compute(trials, path_space, hop_seconds, wall) -> dict:
    """What the run spent (trials, hops, seconds) and what a grid would have."""

    def n(phase, status=None):
        return sum(
            1 for t in trials if t["phase"] == phase and (status is None or t["status"] == status)
        )

    grid_hops = path_space.grid_hops()
    return {
        "search_trials": n("search"),
        "search_completed": n("search", "completed"),
        "search_pruned": n("search", "pruned"),
        "search_failed": n("search", "failed"),
        "blkd_trials": n("blkd"),
        "tune_trials": n("tune"),
        "hops_trained": sum(int(t["hops_trained"] or 0) for t in trials),
        "hops_reused": sum(int(t["hops_reused"] or 0) for t in trials),
        "train_seconds": sum(float(t["train_seconds"] or 0) for t in trials),
        "grid_trials": path_space.grid_size(),
        "grid_hops": grid_hops,
        "grid_hops_total": sum(grid_hops.values()),
        "hop_seconds": hop_seconds or {},
        "paths": path_space.n_paths(),
        "wall_seconds": round(wall, 1),
    }


def _pm(d: dict | None, key="test") -> str:
    if not d or d.get(f"{key}_mean") is None:
        return "-"
    return f"{100 * d[f'{key}_mean']:.2f} +- {100 * d[f'{key}_std']:.2f} %"


def _effort_text(budget: dict | None, seconds: bool = False) -> str | None:
    """'search 12 proposals (10 completed, 2 pruned, 31 s); BLKD 12 (...); heuristic 12
    (...)': each tuning procedure's effort, so the comparison is read at equal compute.
    None for a budget of another shape (runs from before equal effort)."""
    if not isinstance(budget, dict) or not isinstance(budget.get("search"), dict):
        return None
    parts = []
    for key, name in (("search", "search"), ("blkd", "BLKD"), ("tune", "heuristic")):
        b = budget.get(key)
        if not isinstance(b, dict) or not b.get("proposals"):
            continue
        if seconds:
            parts.append(f"{name} {float(b.get('seconds') or 0):.0f} s")
        else:
            parts.append(
                f"{name} {b['proposals']} proposals ({b.get('completed', '?')} completed, "
                f"{b.get('pruned', 0)} pruned)"
            )
    return "; ".join(parts) or None


def _failed_text(s: dict) -> str | None:
    """'top2 seed 6 (selection); blkd seed 3' or None when every row completed."""
    parts = []
    for m, f in (s.get("failed") or {}).items():
        for kind, label in (("select", " (selection)"), ("report", "")):
            if f.get(kind):
                seeds = ", ".join(str(x) for x in f[kind])
                parts.append(f"{m} seed{'s' if len(f[kind]) > 1 else ''} {seeds}{label}")
    return "; ".join(parts) or None


def answer(s: dict) -> str:
    """The closing lines: the best path with its accuracy, its verdicts against BLKD and
    NoKD (worded from the paired interval: `baselines.verdict`; "for this teacher" when
    the teacher is fixed), ties in the choice, the heuristic's, BLKD's and NoKD's
    accuracies, each with the tuning trials (and seconds) its configuration came from,
    failed seeds, and the compute."""
    best = s.get("best")
    lines = [
        "",
        f"== {s['space']}: {s['teacher']} -> {s['student']} on {s['dataset']} "
        f"(test accuracy over {best['seeds'] if best and best.get('seeds') else 0} "
        "report seeds) ==",
    ]

    def tuned(d):
        """'  [12 proposals]': the tuning effort of the procedure that chose it (its
        seconds are in the footer: the block holds nothing the machine changes)."""
        if not d:
            return ""
        if d.get("proposals") is not None:
            return f"  [{d['proposals']} proposals]"
        return f"  [{d.get('tuning_trials', '?')} tuning trials]"

    if best:
        lines.append(f"best path  {best['path']:<40} {_pm(best)}{tuned(best)}")
        for ref, name in (("blkd", "BLKD"), ("nokd", "NoKD")):
            v = best.get(f"verdict_vs_{ref}")
            if v:
                lines.append(f"vs {name:<7} {v}")
        tied = (s.get("selection") or {}).get("tied") or []
        if tied:
            sel = s.get("selection") or {}
            rule = sel.get("tie_rule") or "shorter path, then search rank"
            lines.append(
                f"tied       {', '.join(tied)}: within one validation image of the best "
                f"selection score; {s['winner']} chosen by the stated rule ({rule}), "
                "not by evidence"
            )
    if s.get("teacher_spread"):
        t = s["teacher_spread"].get("test") or s["teacher_spread"].get("val") or {}
        which = "test" if s["teacher_spread"].get("test") else "val"
        if t:
            lines.append(
                f"teacher    retrained per seed ({t['n']} seeds): {which} "
                f"{100 * t['mean']:.2f} % (min {100 * t['min']:.2f}, max {100 * t['max']:.2f})"
            )
    h = s.get("heuristic")
    if h:
        hv = s.get("heuristic_vs_best")
        if s["heuristic_found_best"]:
            found = "the same path as the best"
        elif hv and hv.get("ci") and (hv["ci"][1] < 0):
            found = f"worse than the best: {100 * hv['mean']:+.2f} pp, CI excludes 0"
        else:
            found = "another path; not separated from the best on these seeds"
        lines.append(f"heuristic  {h['path']:<40} {_pm(h)}  ({found}){tuned(h)}")
    if s.get("blkd"):
        lines.append(f"BLKD       {s['blkd']['path']:<40} {_pm(s['blkd'])}{tuned(s['blkd'])}")
    if s.get("nokd"):
        lines.append(f"NoKD       {s['nokd']['path']:<40} {_pm(s['nokd'])}")
    failed = _failed_text(s)
    if failed:
        lines.append(f"failed     {failed}")
    effort = _effort_text(s.get("budget"))
    if effort:
        lines.append(f"effort     {effort}")
    return "\n".join(lines)


def footer(s: dict) -> str:
    """What the run cost and where it is: below the answer block, since seconds, a warm
    store and the folder's name change from run to run while the answer does not."""
    c = s["compute"]
    secs = _effort_text(s.get("budget"), seconds=True)
    return "\n".join(
        [
            f"compute    {c['search_trials']} search + {c['blkd_trials']} BLKD + "
            f"{c.get('tune_trials', 0)} heuristic trials "
            f"({c['search_pruned']} pruned, {c['search_failed']} failed), "
            f"{c['hops_trained']} hops trained, {c['hops_reused']} reused; an exhaustive "
            f"grid would train {c.get('grid_hops_total', '?')} distinct hops; "
            f"{c['wall_seconds']:.0f} s wall" + (f"; tuning {secs}" if secs else ""),
            f"results    {s['run_dir']}",
        ]
    )

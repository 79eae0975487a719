"""A run's answer: summary.json (`_summary`) and the closing lines (`answer`).

The winner is chosen by the stated rule (`SELECTION_RULE`) on the selection seeds; the
report seeds give the test accuracies and the paired comparisons with BLKD and NoKD.
"""

from __future__ import annotations

from takd_search import baselines
from takd_search.search.methods import _candidates

SELECTION_RULE = (
    "the candidate (top-k, heuristic) with the best mean validation accuracy over the "
    "selection seeds, which are disjoint from the report seeds; exact ties go to the "
    "shorter path, then to the search's rank (validation accuracy, then proposal order)"
)


def _summary(
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
    ok = [r for r in crow if r["status"] == "completed"]
    report = [r for r in ok if r.get("seed_set", "report") != "select"]
    chosen = [r for r in ok if r.get("seed_set") == "select"]
    test = baselines.paired_summary(report, "blkd")
    vs_nokd = baselines.paired_summary(report, "nokd")
    val = baselines.paired_summary(report, "blkd", metric="val_acc")
    cands = _candidates(methods)
    if select_seeds:
        scores = {
            k: v["mean"]
            for k, v in baselines.paired_summary(chosen, "blkd", metric="val_acc").items()
        }
        on = f"mean validation accuracy over selection seeds {list(select_seeds)}"
    else:  # no selection seeds: the search's own validation ranking (the search seed)
        scores = {k: methods[k]["val_acc"] for k in cands if methods[k].get("val_acc") is not None}
        on = f"validation accuracy in its tuning trials (search seed {space.search.seed})"
    win = baselines.winner(
        {k: {"mean": v} for k, v in scores.items()},
        cands,
        paths={k: methods[k]["path"] for k in methods},
    )
    resolution = 1.0 / n_val if n_val else None
    tied = (
        [k for k in cands if k in scores and scores[win] - scores[k] < resolution - 1e-12]
        if win and resolution
        else []
    )

    def method(k):
        if k not in methods:
            return None
        d = {
            "path": methods[k]["path"],
            "guidance": methods[k]["guidance"],
            "hops": methods[k]["hops"],
            "tuning_trials": methods[k].get("tuning_trials"),
            "tuning_seconds": methods[k].get("tuning_seconds"),
            "select_val": scores.get(k),
        }
        if methods[k].get("note"):
            d["note"] = methods[k]["note"]
        if k in test:
            t, n = test[k], vs_nokd.get(k, {})
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
                val_mean=val.get(k, {}).get("mean"),
            )
            for ref, src in (("blkd", t), ("nokd", n)):
                if k == ref:
                    continue
                d.update(
                    {
                        f"diff_vs_{ref}": src.get(f"diff_vs_{ref}"),
                        f"diff_std_vs_{ref}": src.get(f"diff_std_vs_{ref}"),
                        f"diff_ci_vs_{ref}": src.get(f"diff_ci_vs_{ref}"),
                        f"p_vs_{ref}": src.get(f"p_vs_{ref}"),
                        f"p_holm_vs_{ref}": adj[ref],
                        f"p_note_vs_{ref}": src.get(f"p_note_vs_{ref}"),
                    }
                )
        return d

    heur_vs_best = None
    if win and "heuristic" in methods and win != "heuristic":
        by = {}
        for r in report:
            if r["method"] in (win, "heuristic") and r.get("test_acc") is not None:
                by.setdefault(r["seed"], {})[r["method"]] = float(r["test_acc"])
        diffs = [v["heuristic"] - v[win] for v in by.values() if len(v) == 2]
        heur_vs_best = baselines.paired_test(diffs) if diffs else None

    n = lambda phase, status=None: sum(  # noqa: E731
        1 for t in trials if t["phase"] == phase and (status is None or t["status"] == status)
    )
    grid_hops = path_space.grid_hops()
    return {
        "space": space.name,
        "dataset": space.data.dataset,
        "run_dir": str(run_dir),
        "teacher": teacher,
        "student": student,
        "winner": win,
        "best": method(win) if win else None,
        "heuristic_ta": ta,
        "heuristic": method("heuristic"),
        "heuristic_found_best": bool(
            win and "heuristic" in methods and methods[win]["path"] == methods["heuristic"]["path"]
        ),
        "heuristic_vs_best": heur_vs_best,
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
            "resolution": resolution,
            "tied": tied if len(tied) > 1 else [],
        },
        "budget": budget,
        "compute": {
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
        },
    }


def _pm(d: dict | None, key="test") -> str:
    if not d or d.get(f"{key}_mean") is None:
        return "-"
    return f"{100 * d[f'{key}_mean']:.2f} +- {100 * d[f'{key}_std']:.2f} %"


def _diff_text(d: dict, ref: str) -> str:
    """' BLKD +1.20 pp [95% CI -0.3, +2.7], Holm p=0.2' (or why there is no test)."""
    v = d.get(f"diff_vs_{ref}")
    if v is None:
        return ""
    name = dict(blkd="BLKD", nokd="NoKD")[ref]
    ci, p = d.get(f"diff_ci_vs_{ref}"), d.get(f"p_holm_vs_{ref}")
    out = f" {name} {100 * v:+.2f} pp"
    if ci:
        out += f" [95% CI {100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
    if p is not None:
        out += f" (Holm p={p:.2g})"
    elif d.get(f"p_note_vs_{ref}"):
        out += f" (p {d[f'p_note_vs_{ref}']})"
    return out


def answer(s: dict) -> str:
    """The closing lines: best path, its accuracy, the heuristic's, BLKD's, NoKD's, each
    with the number of tuning trials its configuration was chosen from."""
    best = s.get("best")
    lines = [
        "",
        f"== {s['space']}: {s['teacher']} -> {s['student']} on {s['dataset']} "
        f"(test accuracy over {best['seeds'] if best and best.get('seeds') else 0} "
        "report seeds) ==",
    ]

    def tuned(d):
        return f"  [{d.get('tuning_trials', '?')} tuning trials]" if d else ""

    if best:
        lines.append(
            f"best path  {best['path']:<40} {_pm(best)}  vs"
            f"{_diff_text(best, 'blkd')};{_diff_text(best, 'nokd')}{tuned(best)}"
        )
        tied = (s.get("selection") or {}).get("tied") or []
        if tied:
            lines.append(
                f"           tied within one validation image with "
                f"{', '.join(t for t in tied if t != s['winner'])}; "
                "chosen by the stated tie rule (shorter path, then search rank)"
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
    c = s["compute"]
    lines.append(
        f"compute    {c['search_trials']} search + {c['blkd_trials']} BLKD + "
        f"{c.get('tune_trials', 0)} top-up trials "
        f"({c['search_pruned']} pruned, {c['search_failed']} failed), "
        f"{c['hops_trained']} hops trained, {c['hops_reused']} reused; an exhaustive "
        f"grid would train {c.get('grid_hops_total', '?')} distinct hops; "
        f"{c['wall_seconds']:.0f} s wall"
    )
    lines.append(f"results    {s['run_dir']}")
    return "\n".join(lines)

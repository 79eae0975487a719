"""The compared methods of a run and their equal tuning budgets.

Each method (top-k, BLKD, the heuristic's path, NoKD) has its configuration chosen from
its path's tuning trials (the search, the BLKD search, the top-up phase); `_budget` says
how many top-up trials give BLKD and every confirmed candidate path as many completed
tuning trials as the most-tried candidate. Ties: baselines.rank_key.
"""

from __future__ import annotations

import json

from takd_search import baselines

TUNING_PHASES = ("search", "blkd", "tune")


def _pool(trials: list[dict], path: str) -> list[dict]:
    """Every tuning trial (search, BLKD search, top-up) of one path: what a method on that
    path has its configuration chosen from."""
    return [t for t in trials if t["phase"] in TUNING_PHASES and t["path"] == path]


def _budget(trials, space, teacher, student, ta) -> dict:
    """The equal tuning budget: `target` = the most completed search trials any confirmed
    candidate path had (the top-k paths and the heuristic's), and `need` = path -> top-up
    trials that bring BLKD's path and every candidate path up to it (the search's own
    direct-path trials count towards BLKD)."""
    search = [dict(t, hops=json.loads(t["hops"])) for t in trials if t["phase"] == "search"]
    paths = [t["path"] for t in baselines.top_configs(search, space.baselines.confirm_top_k)]
    if ta:
        paths.append(f"{teacher}>{ta}>{student}")
    direct = f"{teacher}>{student}"
    done = {
        p: sum(1 for t in search if t["path"] == p and t["status"] == "completed")
        for p in dict.fromkeys([*paths, direct])
    }
    target = max([1, *(done[p] for p in paths)])
    return {
        "target": target,
        "search_completed": done,
        "need": {p: target - n for p, n in done.items() if n < target},
    }


def _candidates(methods: dict) -> list[str]:
    """The methods the winner is chosen from, in rank order: top1..topk, the heuristic."""
    return [k for k in methods if k.startswith("top")] + (
        ["heuristic"] if "heuristic" in methods else []
    )


def _hop_seconds(phases: list[list[dict]]) -> dict[str, float]:
    """Mean training seconds of one trained hop, per model (child), over every hop this
    run trained: the unit cost the report's grid counterfactual charges a hop."""
    secs: dict[str, list[float]] = {}
    for rows in phases:
        for r in rows or []:
            for h in (r.get("metrics") or {}).get("hop_rows") or []:
                if h.get("status") == "trained" and h.get("seconds") is not None:
                    secs.setdefault(h["model"], []).append(float(h["seconds"]))
    return {m: sum(v) / len(v) for m, v in secs.items()}


def _method(t: dict, pool: list[dict], **extra) -> dict:
    return {
        "path": t["path"],
        "guidance": t["guidance"],
        "hops": t["hops"],
        "lr": _lr(t),
        "val_acc": t["val_acc"],
        "trial_id": t["trial_id"],
        "trial_number": t.get("trial_number"),
        "phase": t["phase"],
        "tuning_trials": sum(1 for x in pool if x["status"] == "completed"),
        "tuning_seconds": round(sum(float(x["train_seconds"] or 0) for x in pool), 3),
        **extra,
    }


def _methods(trials, space, teacher, student, ta) -> dict[str, dict]:
    """What the confirmation retrains: top-k configs, BLKD, heuristic, NoKD.

    Each method's configuration is the best (top-k: the k best) of its path's tuning
    trials, over the search, the BLKD search and the top-up phase; `tuning_trials` and
    `tuning_seconds` count what it was chosen from. Ties: see baselines.rank_key."""
    out = {}
    tuning = [dict(t, hops=json.loads(t["hops"])) for t in trials if t["phase"] in TUNING_PHASES]
    direct = f"{teacher}>{student}"
    ranked = [t for t in tuning if t["phase"] != "blkd" or t["path"] != direct]
    for i, t in enumerate(baselines.top_configs(ranked, space.baselines.confirm_top_k), 1):
        out[f"top{i}"] = _method(t, _pool(tuning, t["path"]))
    best_blkd = baselines.top_configs(_pool(tuning, direct), 1)
    if best_blkd:
        out["blkd"] = dict(_method(best_blkd[0], _pool(tuning, direct)), guidance="chain")
    if ta:
        path = f"{teacher}>{ta}>{student}"
        same = baselines.top_configs(_pool(tuning, path), 1)
        if same:
            out["heuristic"] = _method(
                same[0], _pool(tuning, path), note="the best of its own tuning trials"
            )
        elif "top1" in out:
            hop = out["top1"]["hops"][0]
            out["heuristic"] = {
                "path": path,
                "guidance": "chain",
                "hops": [hop, hop],
                "lr": out["top1"]["lr"],
                "val_acc": None,
                "tuning_trials": 0,
                "tuning_seconds": 0.0,
                "note": "no completed tuning trial: top1's first-hop values (untuned)",
            }
    out["nokd"] = {
        "path": student,
        "guidance": "chain",
        "hops": [],
        "lr": None,
        "val_acc": None,
        "tuning_trials": 0,
        "tuning_seconds": 0.0,
    }
    return out


def _lr(trial: dict) -> float | None:
    lr = trial.get("lr")
    return None if lr is None or lr != lr else float(lr)

"""The compared methods of a run, as procedures given equal tuning effort.

Three tuning procedures, each with the same number of proposals from a fresh, equally
seeded sampler asked in the same batches (run.py):

- search: Optuna over paths and hyper-parameters (phase `search`, methods top1..topk);
- BLKD: Optuna over the hyper-parameters of the direct path (phase `blkd`);
- heuristic: Optuna over the hyper-parameters of the paper's rule's path (phase `tune`).

Each procedure puts its k best configurations, from its own trials only, through the same
selection seeds, and its configuration with the best mean selection accuracy is the one
retrained with the report seeds (`choose`). So "the best path beats BLKD" compares two
procedures at equal compute, not the best of many trials with the best of a few.
Ties: baselines.rank_key and baselines.winner.
"""

from __future__ import annotations

import json

from takd_search import baselines
from takd_search.search.rows import confirm_rows

TUNING_PHASES = ("search", "blkd", "tune")
PROCEDURES = {"top": "search", "blkd": "blkd", "heuristic": "tune"}  # label prefix -> phase


def trial_counts(space, n_search: int | None, heuristic: bool = True) -> dict:
    """Trials per phase after NoKD, given the search's proposals `n_search` (its n_trials,
    or what its time budget allowed): the one arithmetic the run and its dry run share.
    BLKD and the heuristic get the same proposals (BLKD at least `blkd_trials`); the k best
    of each procedure x the selection seeds; the chosen three, NoKD and the matched BLKD
    control x the report seeds."""
    from takd_search.baselines import default_select_seeds

    b = space.baselines
    n = max(n_search or 0, 1)
    select = b.select_seeds
    if select is None:
        select = default_select_seeds(b.confirm_seeds, space.search.seed)
    procedures = 3 if heuristic else 2
    return {
        "search": n_search,
        "blkd": max(n, b.blkd_trials or 0),
        "tune": n if heuristic else 0,
        "select": procedures * b.confirm_top_k * len(select),
        # the chosen configurations, NoKD and the matched BLKD control (run.py)
        "confirm": (procedures + 2) * len(b.confirm_seeds),
        "select_seeds": list(select),
    }


def _label(prefix: str, i: int) -> str:
    """top1, top2, ...; blkd, blkd2, ...; heuristic, heuristic2, ..."""
    return f"top{i}" if prefix == "top" else prefix if i == 1 else f"{prefix}{i}"


def procedure(label: str) -> str:
    """The procedure (label prefix) a candidate belongs to: 'top', 'blkd' or 'heuristic'."""
    return next(p for p in ("heuristic", "blkd", "top") if label.startswith(p))


def candidates(trials: list[dict], k: int) -> dict[str, dict]:
    """label -> method: the k best configurations of each procedure, from its own phase."""
    tuning = [dict(t, hops=json.loads(t["hops"])) for t in trials if t["phase"] in TUNING_PHASES]
    out = {}
    for prefix, phase in PROCEDURES.items():
        pool = [t for t in tuning if t["phase"] == phase]
        for i, t in enumerate(baselines.top_configs(pool, k), 1):
            out[_label(prefix, i)] = _method(t, pool)
    return out


def _method(t: dict, pool: list[dict]) -> dict:
    return {
        "path": t["path"],
        "guidance": "chain" if t["phase"] == "blkd" else t["guidance"],
        "hops": t["hops"],
        "lr": _lr(t),
        "val_acc": t["val_acc"],
        "trial_id": t["trial_id"],
        "trial_number": t.get("trial_number"),
        "phase": t["phase"],
        "proposals": len(pool),
        "tuning_trials": sum(1 for x in pool if x["status"] == "completed"),
        "tuning_seconds": round(sum(float(x["train_seconds"] or 0) for x in pool), 3),
    }


def choose(
    cands: dict[str, dict], select_rows: list[dict] | None, n_val: int | None
) -> dict[str, str]:
    """procedure -> the label of its chosen configuration, by baselines.select_winner's
    rule on the selection seeds (a failed seed ranks its candidate last; candidates within
    one validation image tie and the tie goes to fewer TAs); without selection seeds, on
    the validation accuracy of its tuning trial."""
    if select_rows is None:
        scores = {
            k: {"score": m["val_acc"], "seeds": 1, "failed": []}
            for k, m in cands.items()
            if m.get("val_acc") is not None
        }
    else:
        scores = baselines.selection_scores(confirm_rows(select_rows), list(cands), n_val)
    out = {}
    for prefix in PROCEDURES:
        labels = [k for k in cands if procedure(k) == prefix]
        win = baselines.select_winner(
            {k: scores[k] for k in labels if k in scores},
            labels,
            {k: cands[k]["path"] for k in labels},
            n_val,
        )["winner"]
        if win:
            out[prefix] = win
    return out


def compared(cands: dict[str, dict], chosen: dict[str, str], student: str) -> dict:
    """The methods the report compares: every search candidate (top1..topk), BLKD's and the
    heuristic's chosen configurations (under the labels `blkd` and `heuristic`), NoKD."""
    out = {k: v for k, v in cands.items() if procedure(k) == "top"}
    for prefix in ("blkd", "heuristic"):
        if prefix in chosen:
            out[prefix] = dict(cands[chosen[prefix]], candidate=chosen[prefix])
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


def search_candidates(methods: dict) -> list[str]:
    """The methods the best path is chosen from, in rank order: top1..topk (the heuristic
    is a procedure of its own, compared with the best, not a candidate for it)."""
    return [k for k in methods if k.startswith("top")]


def mean_hop_seconds(phases: list[list[dict]]) -> dict[str, float]:
    """Mean training seconds of one trained hop, per model (child), over every hop this
    run trained: the unit cost the report's grid counterfactual charges a hop."""
    secs: dict[str, list[float]] = {}
    for rows in phases:
        for r in rows or []:
            for h in (r.get("metrics") or {}).get("hop_rows") or []:
                if h.get("status") == "trained" and h.get("seconds") is not None:
                    secs.setdefault(h["model"], []).append(float(h["seconds"]))
    return {m: sum(v) / len(v) for m, v in secs.items()}


def _lr(trial: dict) -> float | None:
    lr = trial.get("lr")
    return None if lr is None or lr != lr else float(lr)

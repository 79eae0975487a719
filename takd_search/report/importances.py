"""The searched hyper-parameters and Optuna's parameter importances of a finished run.

`HYPER` and `TRIAL_LEVEL` name the parameters a search varies (per hop, and once per
trial), `HYPER_LABEL` says them in words for the plots. `param_importances` rebuilds an
Optuna study from the completed search trials of trials.csv (the distributions from
space.json, widened to what was observed) and returns fANOVA importances, or a note
saying why there are none. Optuna is imported only here, and only when importances are
computed.
"""

from __future__ import annotations

import json

import pandas as pd

from takd_search.config.schema import HYPER
from takd_search.engine.path import path_models
from takd_search.results import Run

HYPER_LABEL = {
    "T": "temperature T",
    "alpha": "soft-loss weight alpha",
    "kd_fraction": "kd_fraction (of the hop's epochs)",
    "parent_fraction": "parent_fraction (of the parent's epochs)",
    "lr": "learning rate (every hop)",
}
TRIAL_LEVEL = ("lr",)  # searched once per trial (trials.csv column), not per hop
MIN_IMPORTANCE_TRIALS = 4  # fewer completed search trials: a note instead of importances


def _distribution(spec):
    """An Optuna distribution for one distill parameter of space.json, or None if fixed."""
    import optuna  # only when importances are computed: a slow import the rest never needs

    if isinstance(spec, dict) and "low" in spec:
        return optuna.distributions.FloatDistribution(
            float(spec["low"]), float(spec["high"]), log=bool(spec.get("log"))
        )
    if isinstance(spec, list) and len(spec) > 1:
        return optuna.distributions.CategoricalDistribution([float(v) for v in spec])
    return None


def _hop_params(row: dict, per_hop: bool) -> dict:
    """The per-hop values of one trials.csv row as the searcher named them: `T` (shared,
    per_hop false) or `T_plain4` (the hop into plain4, per_hop true)."""
    try:
        hops = json.loads(row["hops"]) if isinstance(row["hops"], str) else []
    except ValueError:
        hops = []
    names = path_models(row["path"])
    out = {}
    for child, hop in zip(names[1:], hops):
        for h in HYPER:
            if hop.get(h) is not None:
                out[h if not per_hop else f"{h}_{child}"] = float(hop[h])
        if not per_hop:
            break
    return out


def param_importances(run: Run) -> tuple[pd.Series | None, str]:
    """Optuna's fANOVA importances of the searched parameters, from the completed search
    trials of trials.csv: (importances, note). None (and why, in the note) when there are
    too few trials or nothing varied."""
    t = run.trials
    done = t[(t["phase"] == "search") & (t["status"] == "completed") & t["val_acc"].notna()]
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return None, (
            f"Too few completed search trials ({len(done)}) for parameter importances: "
            f"they need at least {MIN_IMPORTANCE_TRIALS}."
        )
    import optuna  # only when importances are computed: a slow import the rest never needs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distill = run.space.get("distill", {}) or {}
    per_hop = bool(distill.get("per_hop"))
    teacher, student = run.summary.get("teacher"), run.summary.get("student")
    rows = done.to_dict("records")
    candidates = sorted(
        {m for r in rows for m in path_models(r["path"])[1:-1]} - {teacher, student}
    )
    dists: dict = {f"ta_{c}": optuna.distributions.CategoricalDistribution([False, True])
                   for c in candidates}  # fmt: skip
    if (run.space.get("search", {}) or {}).get("guidance") == "search":
        dists["guidance"] = optuna.distributions.CategoricalDistribution(["chain", "dense"])
    trials = []
    for r in rows:
        names = path_models(r["path"])
        params = {f"ta_{c}": c in names[1:-1] for c in candidates}
        if "guidance" in dists:
            params["guidance"] = r["guidance"]
        for name in TRIAL_LEVEL:
            value = r.get(name)
            if value is None or pd.isna(value):
                continue
            if name not in dists:
                d = _distribution((run.space.get("train", {}) or {}).get(name))
                if d is None:
                    continue
                dists[name] = d
            params[name] = float(value)
        for name, value in _hop_params(r, per_hop).items():
            base = next(h for h in HYPER if name == h or name.startswith(h + "_"))
            if name not in dists:
                d = _distribution(distill.get(base))
                if d is None:
                    continue
                dists[name] = d
            params[name] = value
        trials.append((params, float(r["val_acc"])))
    # widen float ranges to what was observed (a space edited after the run, rounding)
    for name, d in list(dists.items()):
        if isinstance(d, optuna.distributions.FloatDistribution):
            seen = [p[name] for p, _ in trials if name in p]
            if seen:
                dists[name] = optuna.distributions.FloatDistribution(
                    min(d.low, *seen), max(d.high, *seen), log=d.log
                )
    varied = [
        k for k in dists if all(k in p for p, _ in trials) and len({p[k] for p, _ in trials}) > 1
    ]
    if not varied:
        return None, "No searched parameter took two different values in every trial."
    try:
        study = optuna.create_study(direction="maximize")
        study.add_trials(
            [
                optuna.trial.create_trial(
                    params=p, distributions={k: dists[k] for k in p}, value=v
                )
                for p, v in trials
            ]
        )
        imp = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            params=varied,
        )
    except Exception as e:  # a degenerate study must not stop the report
        return None, f"Parameter importances could not be computed ({type(e).__name__}: {e})."
    s = pd.Series(imp, dtype="float64", name="importance").sort_values(ascending=False)
    note = (
        f"fANOVA importances over {len(trials)} completed search trials: the share of the "
        "validation accuracy's variance each parameter explains"
        + (" (rough with this few trials)." if len(trials) < 20 else ".")
    )
    return s, note

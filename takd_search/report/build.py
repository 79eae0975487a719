"""`takd-search report RUN_DIR`: report.md and four PNG plots from a run folder alone.

Everything here reads the run folder's CSVs and JSON files (see `results`); nothing
imports Ray or torch, so a report can be made on a laptop from a copied folder. Optuna is
imported (lazily) only to compute parameter importances from trials.csv.

Files written into the run folder (or `--out DIR`):

    report.md                the answer in words, the key table, and the plots below
    nokd_vs_size.png         NoKD accuracy against depth and parameter count (TAKD Fig. 4)
    paths_accuracy.png       confirmed paths: test accuracy mean +- std, BLKD/NoKD lines
    search_progress.png      best-so-far validation accuracy against trials and compute
    hyperparameters.png      accuracy against T, alpha (...) and Optuna's importances
    learning_curves.png      student validation accuracy per epoch: confirmed methods
                             (mean +- std over seeds) and the search's students vs NoKD
                             (only when phases/*.json carry per-epoch curves)

Accuracies are fractions in the CSVs and percentages in the report; differences are in
percentage points (pp), paired by seed.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from takd_search import results
from takd_search.baselines import holm, paired_summary, paired_test

HYPER = ("T", "alpha", "kd_epochs", "parent_epoch")
HYPER_LABEL = {
    "T": "temperature T",
    "alpha": "soft-loss weight alpha",
    "kd_epochs": "kd_epochs (fraction of the hop's epochs)",
    "parent_epoch": "parent_epoch (fraction of the parent's epochs)",
    "lr": "learning rate (every hop)",
}
TRIAL_LEVEL = ("lr",)  # searched once per trial (trials.csv column), not per hop
PLOTS = {
    "nokd_size": "nokd_vs_size.png",
    "paths": "paths_accuracy.png",
    "progress": "search_progress.png",
    "hyper": "hyperparameters.png",
    "curves": "learning_curves.png",  # only when the phase files carry per-epoch curves
}
MIN_IMPORTANCE_TRIALS = 4  # fewer completed search trials: a note instead of importances
REFERENCE = ("blkd", "nokd")  # confirmation methods drawn as reference lines


# ---- the run folder -----------------------------------------------------------------------
@dataclass
class Run:
    """A finished run folder, loaded: the three tables and the JSON files."""

    dir: Path
    trials: pd.DataFrame
    baselines: pd.DataFrame
    confirmation: pd.DataFrame
    summary: dict
    space: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.dir.resolve().name


def open_run(run_dir: str | os.PathLike) -> Run:
    """Load a finished run folder; a UserError (one line) if it is missing or unfinished."""
    d = results.require_run(run_dir, finished=True)
    t = results.load(d)
    return Run(
        dir=d,
        trials=t["trials"],
        baselines=t["baselines"],
        confirmation=t["confirmation"],
        summary=results.summary(d),
        space=results.read_json(d, "space.json", {}) or {},
        versions=results.read_json(d, "versions.json", {}) or {},
    )


# ---- numbers ------------------------------------------------------------------------------
def _method_key(m: str) -> tuple:
    if m.startswith("top") and m[3:].isdigit():
        return (0, int(m[3:]), m)
    return ({"heuristic": 1, "blkd": 2, "nokd": 3}.get(m, 4), 0, m)


def method_stats(confirmation: pd.DataFrame) -> pd.DataFrame:
    """One row per confirmed method: path, seeds, val/test mean and std, and the paired
    test-accuracy difference against BLKD and against NoKD: mean, std, t-based 95 % CI
    (`ci_lo_vs_*`, `ci_hi_vs_*`), the paired t-test p, and p Holm-adjusted over the
    method's two comparisons (`p_holm_vs_*`; NaN when undefined: < 2 seeds or zero
    variance, `p_note_vs_*` says which).

    Only rows with status `completed` of the *report* seeds count (`seed_set` not
    `select`: the selection seeds chose the winner and are not reported). Columns are
    fractions, like the CSVs.
    """
    cols = [
        "method",
        "path",
        "guidance",
        "seeds",
        "val_mean",
        "val_std",
        "test_mean",
        "test_std",
        "diff_vs_blkd",
        "diff_std_vs_blkd",
        "p_vs_blkd",
        "diff_vs_nokd",
        "diff_std_vs_nokd",
        "p_vs_nokd",
        "ci_lo_vs_blkd",
        "ci_hi_vs_blkd",
        "p_holm_vs_blkd",
        "ci_lo_vs_nokd",
        "ci_hi_vs_nokd",
        "p_holm_vs_nokd",
        "p_note_vs_blkd",
        "p_note_vs_nokd",
    ]
    ok = confirmation[confirmation["status"] == "completed"]
    if "seed_set" in ok:
        ok = ok[ok["seed_set"].fillna("report") != "select"]
    recs = [
        {
            "method": r["method"],
            "seed": None if pd.isna(r["seed"]) else int(r["seed"]),
            "val_acc": None if pd.isna(r["val_acc"]) else float(r["val_acc"]),
            "test_acc": None if pd.isna(r["test_acc"]) else float(r["test_acc"]),
        }
        for r in ok.to_dict("records")
    ]
    vs_blkd = paired_summary(recs, "blkd")
    vs_nokd = paired_summary(recs, "nokd")
    val = paired_summary(recs, "blkd", metric="val_acc")
    rows = []
    for m in sorted(set(ok["method"].dropna()), key=_method_key):
        first = ok[ok["method"] == m].iloc[0]
        t, n, v = vs_blkd.get(m, {}), vs_nokd.get(m, {}), val.get(m, {})
        adj = holm({"blkd": t.get("p_vs_blkd"), "nokd": n.get("p_vs_nokd")})
        ci_b, ci_n = t.get("diff_ci_vs_blkd") or [None] * 2, n.get("diff_ci_vs_nokd") or [None] * 2
        rows.append(
            {
                "method": m,
                "path": first["path"],
                "guidance": first["guidance"],
                "seeds": t.get("n", v.get("n", 0)),
                "val_mean": v.get("mean"),
                "val_std": v.get("std"),
                "test_mean": t.get("mean"),
                "test_std": t.get("std"),
                "diff_vs_blkd": t.get("diff_vs_blkd") if m != "blkd" else None,
                "diff_std_vs_blkd": t.get("diff_std_vs_blkd") if m != "blkd" else None,
                "p_vs_blkd": t.get("p_vs_blkd"),
                "diff_vs_nokd": n.get("diff_vs_nokd") if m != "nokd" else None,
                "diff_std_vs_nokd": n.get("diff_std_vs_nokd") if m != "nokd" else None,
                "p_vs_nokd": n.get("p_vs_nokd"),
                "ci_lo_vs_blkd": ci_b[0],
                "ci_hi_vs_blkd": ci_b[1],
                "p_holm_vs_blkd": adj["blkd"],
                "ci_lo_vs_nokd": ci_n[0],
                "ci_hi_vs_nokd": ci_n[1],
                "p_holm_vs_nokd": adj["nokd"],
                "p_note_vs_blkd": t.get("p_note_vs_blkd") if m != "blkd" else None,
                "p_note_vs_nokd": n.get("p_note_vs_nokd") if m != "nokd" else None,
            }
        )
    df = pd.DataFrame(rows, columns=cols)
    return df.astype(
        {c: "float64" for c in cols[4:-2]}
        | {"seeds": "Int64"}
        | dict.fromkeys(cols[-2:], "object")
    )


def device_kind(run: Run) -> tuple[str, float]:
    """('GPU' or 'CPU', the resource one trial holds): compute = training seconds x that."""
    res = run.space.get("resources", {}) or {}
    gpu = float(res.get("gpu") or 0.0)
    if gpu > 0:
        return "GPU", gpu
    return "CPU", float(res.get("cpu") or 1.0)


def time_unit(seconds: float) -> tuple[str, float]:
    """A readable unit for a total of `seconds`: (name, seconds per unit)."""
    if seconds < 120:
        return "seconds", 1.0
    if seconds < 2 * 3600:
        return "minutes", 60.0
    return "hours", 3600.0


def progress_frame(trials: pd.DataFrame, phase: str, per_trial: float = 1.0) -> pd.DataFrame:
    """Trials of one phase in the order proposed: trial number, val_acc (completed only),
    best so far, and cumulative training seconds x `per_trial` resources (reused hops
    cost nothing, so a trial whose hops were all in the store adds 0)."""
    t = trials[trials["phase"] == phase].reset_index(drop=True)
    ok = (t["status"] == "completed") & t["val_acc"].notna()
    val = t["val_acc"].where(ok).astype("float64")
    cost = t["train_seconds"].astype("float64").fillna(0.0) * per_trial
    return pd.DataFrame(
        {
            "trial": np.arange(1, len(t) + 1),
            "status": t["status"],
            "path": t["path"],
            "val_acc": val,
            "val_any": t["val_acc"].astype("float64"),
            "best_so_far": val.cummax().ffill(),
            "cost_seconds": cost.cumsum(),
        }
    )


def _distribution(spec):
    """An Optuna distribution for one distill parameter of space.json, or None if fixed."""
    import optuna

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
    names = str(row["path"]).split(">")
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
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distill = run.space.get("distill", {}) or {}
    per_hop = bool(distill.get("per_hop"))
    teacher, student = run.summary.get("teacher"), run.summary.get("student")
    rows = done.to_dict("records")
    candidates = sorted(
        {m for r in rows for m in str(r["path"]).split(">")[1:-1]} - {teacher, student}
    )
    dists: dict = {f"ta_{c}": optuna.distributions.CategoricalDistribution([False, True])
                   for c in candidates}  # fmt: skip
    if (run.space.get("search", {}) or {}).get("guidance") == "search":
        dists["guidance"] = optuna.distributions.CategoricalDistribution(["chain", "dense"])
    trials = []
    for r in rows:
        names = str(r["path"]).split(">")
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


def student_curves(run: Run, phase: str) -> pd.DataFrame:
    """The student's per-epoch validation accuracy in every completed trial of one phase
    (phases/<phase>.json; the student is the last entry of `hop_rows`): one row per
    (trial, epoch) with method, seed, path, T, alpha, epoch, val_acc. Empty when the file
    is missing or its rows carry no `curve` (runs from before curves were recorded)."""
    cols = ["trial", "method", "seed", "path", "T", "alpha", "epoch", "val_acc"]
    rows = []
    for i, r in enumerate(results.read_json(run.dir, f"phases/{phase}.json", []) or []):
        hops = (r.get("metrics") or {}).get("hop_rows") or []
        if r.get("status") != "completed" or not hops or not hops[-1].get("curve"):
            continue
        cfg, last = r.get("config") or {}, hops[-1]
        if cfg.get("seed_set") == "select":  # chose the winner: not among reported seeds
            continue
        for e in last["curve"]:
            if e.get("epoch") is None or e.get("val_acc") is None:
                continue
            rows.append(
                {
                    "trial": r.get("trial_id") or str(i),
                    "method": cfg.get("method", phase),
                    "seed": cfg.get("seed"),
                    "path": cfg.get("path", last.get("model")),
                    "T": last.get("T"),
                    "alpha": last.get("alpha"),
                    "epoch": int(e["epoch"]),
                    "val_acc": float(e["val_acc"]),
                }
            )
    return pd.DataFrame(rows, columns=cols)


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per method and epoch: mean and std (ddof 1; 0 for one seed) of the validation
    accuracy over seeds, and how many seeds reached that epoch."""
    g = curves.groupby(["method", "epoch"])["val_acc"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def epochs_to_reach(mean: pd.DataFrame, method: str, target: float) -> int | None:
    """The first epoch at which `method`'s mean curve reaches `target` (None: never)."""
    m = mean[(mean["method"] == method) & (mean["mean"] >= target - 1e-12)]
    return int(m["epoch"].min()) if len(m) else None


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
    test = _epochs_test(curves, winner, target) if curves is not None else None
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


def _epochs_test(curves: pd.DataFrame, winner: str, target: float) -> dict | None:
    """Paired per-seed test of (NoKD's - the winner's) epochs to reach `target`."""
    firsts = {}
    for (method, seed), c in curves[curves["method"].isin([winner, "nokd"])].groupby(
        ["method", "seed"]
    ):
        hit = c[c["val_acc"] >= target - 1e-12]["epoch"]
        firsts.setdefault(seed, {})[method] = (
            int(hit.min()) if len(hit) else int(c["epoch"].max()) + 1
        )
    diffs = [v["nokd"] - v[winner] for v in firsts.values() if len(v) == 2]
    return paired_test(diffs) if diffs else None


# ---- formatting ---------------------------------------------------------------------------
def pct(x, std=None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return "-"
    s = f"{100 * float(x):.{digits}f}"
    if std is not None and not pd.isna(std):
        s += f" ± {100 * float(std):.{digits}f}"
    return s + " %"


def pp(diff, std=None, p=None) -> str:
    """A paired difference in percentage points, with its std and p-value."""
    if diff is None or pd.isna(diff):
        return "-"
    s = f"{100 * float(diff):+.2f}"
    if std is not None and not pd.isna(std):
        s += f" ± {100 * float(std):.2f}"
    s += " pp"
    if p is not None and not pd.isna(p):
        s += f" (p={float(p):.2g})"
    return s


def pp_ci(r: dict, ref: str) -> str:
    """A paired difference against `ref` with its 95 % CI and Holm-adjusted p, or why
    there is no test: '+2.00 pp [-0.48, +4.48] (Holm p=0.24)'."""
    d = r.get(f"diff_vs_{ref}")
    if d is None or pd.isna(d):
        return "-"
    s = f"{100 * float(d):+.2f} pp"
    lo, hi = r.get(f"ci_lo_vs_{ref}"), r.get(f"ci_hi_vs_{ref}")
    if lo is not None and not pd.isna(lo):
        s += f" [{100 * float(lo):+.2f}, {100 * float(hi):+.2f}]"
    p = r.get(f"p_holm_vs_{ref}")
    if p is not None and not pd.isna(p):
        s += f" (Holm p={float(p):.2g})"
    elif r.get(f"p_note_vs_{ref}"):
        s += f" (p {r[f'p_note_vs_{ref}']})"
    return s


def tuning_of(summary: dict) -> dict[str, tuple]:
    """Confirmation method -> (tuning_trials, tuning_seconds) from summary.json (runs
    from before equal budgets have none: an empty dict)."""
    out = {}
    named = {k: summary.get(k) for k in ("heuristic", "blkd", "nokd")}
    named |= summary.get("top") or {}
    for k, d in named.items():
        if d and d.get("tuning_trials") is not None:
            out[k] = (d["tuning_trials"], d.get("tuning_seconds"))
    return out


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of `df` as it is (cells str()-ed, '-' for NA)."""

    def cell(v) -> str:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def key_table(
    stats: pd.DataFrame, winner: str | None, tuning: dict[str, tuple] | None = None
) -> pd.DataFrame:
    """The confirmed methods as the report prints them (strings, percentages): the paired
    differences with their 95 % CI and Holm-adjusted p, and (`tuning`, see `tuning_of`)
    how many completed tuning trials, and training seconds, each configuration came from."""
    rows = []
    tuning = tuning or {}
    for r in stats.to_dict("records"):
        n, secs = tuning.get(r["method"], (None, None))
        rows.append(
            {
                "method": r["method"] + (" (winner)" if r["method"] == winner else ""),
                "path": r["path"],
                "seeds": r["seeds"],
                "val %": pct(r["val_mean"]).removesuffix(" %"),
                "test % (mean ± std)": pct(r["test_mean"], r["test_std"]).removesuffix(" %"),
                "vs BLKD [95% CI]": pp_ci(r, "blkd"),
                "vs NoKD [95% CI]": pp_ci(r, "nokd"),
                "tuning trials": "-" if n is None else str(n),
                "tuning s": "-" if secs is None else f"{float(secs):.3g}",
            }
        )
    cols = ["method", "path", "seeds", "val %", "test % (mean ± std)", "vs BLKD [95% CI]",
            "vs NoKD [95% CI]", "tuning trials", "tuning s"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def console_table(df: pd.DataFrame) -> str:
    from takd_search.progress import table

    rows = [
        {c: ("-" if pd.isna(v) else str(v)) for c, v in r.items()} for r in df.to_dict("records")
    ]
    return table(rows, [(c, c) for c in df.columns])


def _verdict(r: dict, ref: str, name: str) -> str:
    """What the paired difference against `ref` supports, in words: a claim only when
    the 95 % interval excludes zero (and the Holm-adjusted p is below 0.05)."""
    n = r.get("seeds")
    lo, hi = r.get(f"ci_lo_vs_{ref}"), r.get(f"ci_hi_vs_{ref}")
    p, note = r.get(f"p_holm_vs_{ref}"), r.get(f"p_note_vs_{ref}")
    if lo is None or pd.isna(lo):
        if note == "undefined (zero variance)":
            return (
                f"every seed gave the same difference, so the test is undefined (zero "
                f"variance); {n} seeds cannot say whether it would hold on others"
            )
        return "too few paired seeds for an interval or a test: one seed's difference"
    if (lo > 0 or hi < 0) and p is not None and p < 0.05:
        side = f"the path beats {name}" if lo > 0 else f"{name} beats the path"
        return f"{side} on these {n} seeds (interval excludes zero, Holm p = {p:.2g})"
    if lo > 0 or hi < 0:
        return (
            f"the interval excludes zero, but corrected for the two comparisons (Holm p = "
            f"{p:.2g}) it is not significant at 5 %: suggestive on these {n} seeds, not shown"
        )
    return (
        f"the interval includes zero (Holm p = {p:.2g}): on these {n} seeds the path is not "
        f"distinguishable from {name}; more seeds would be needed to separate them"
    )


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


def _paired_vs(confirmation: pd.DataFrame, a: str, b: str) -> dict | None:
    """Paired test of a's minus b's test accuracy over the report seeds both completed."""
    c = confirmation[confirmation["status"] == "completed"]
    if "seed_set" in c:
        c = c[c["seed_set"].fillna("report") != "select"]
    by = c[c["method"].isin([a, b])].pivot_table(index="seed", columns="method", values="test_acc")
    if a not in by or b not in by:
        return None
    d = (by[a] - by[b]).dropna()
    return paired_test(d.tolist()) if len(d) else None


def _ci_text(t: dict, unit: float = 100.0, what: str = "pp") -> str:
    """'-1.00 pp [95 % CI -3.5, +1.5]' or the difference and why there is no interval."""
    out = f"{unit * t['mean']:+.2f} {what}"
    if t.get("ci"):
        out += f" [95 % CI {unit * t['ci'][0]:+.2f}, {unit * t['ci'][1]:+.2f}]"
    elif t.get("note"):
        out += f" ({t['note']})"
    return out


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
            line += (
                f" Its selection score is tied with {others}"
                f" within one validation image ({100 * res:.2f} pp): the choice between them "
                "is the stated tie rule (shorter path, then search rank), not evidence."
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
                f"{_verdict(b, key, name)}."
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
            t = _paired_vs(run.confirmation, "heuristic", win)
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
    out.append(_compute_line(run))
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


# ---- plots --------------------------------------------------------------------------------
def _figure(w: float, h: float):
    from matplotlib.figure import Figure  # no pyplot: no global backend, no GUI (Agg)

    return Figure(figsize=(w, h), dpi=110, layout="constrained")


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return results.write_atomic(path, buf.getvalue())


def _depth(model: str) -> float:
    m = re.match(r"[a-zA-Z]+(\d+)", str(model))
    return float(m.group(1)) if m else float("nan")


def _depth_label(family: str | None) -> str:
    return {
        "plain": "depth (conv layers)",
        "vgg": "depth (conv layers)",
        "resnet": "depth (layers, 6n+2)",
        "mlp": "depth (hidden layers)",
    }.get(str(family).lower(), "depth (layers)")


def plot_nokd_vs_size(run: Run, path: Path) -> Path:
    """NoKD accuracy against depth and against parameters, with the teacher/student mean
    and the heuristic's pick (the TAKD paper's Fig. 4 view)."""
    b = run.baselines
    n = b[(b["kind"] == "nokd") & b["val_acc"].notna()].copy()
    n["depth"] = n["model"].map(_depth)
    s = run.summary
    teacher, student, ta = s.get("teacher"), s.get("student"), s.get("heuristic_ta")
    best_tas = set(str((s.get("best") or {}).get("path", "")).split(">")[1:-1])
    family = (run.space.get("models", {}) or {}).get("family")
    fig = _figure(11, 4.6)
    axes = fig.subplots(1, 2, sharey=True)
    tv = n.loc[n["model"] == teacher, "val_acc"]
    sv = n.loc[n["model"] == student, "val_acc"]
    mean = (float(tv.iloc[0]) + float(sv.iloc[0])) / 2 if len(tv) and len(sv) else None
    for ax, xcol, xlabel, log in (
        (axes[0], "depth", _depth_label(family), False),
        (axes[1], "params", "parameters (log scale)", True),
    ):
        d = n.dropna(subset=[xcol]).sort_values(xcol)
        if d.empty:
            ax.text(0.5, 0.5, "no NoKD results", ha="center", va="center", transform=ax.transAxes)
            continue
        x = d[xcol].astype("float64")
        ax.plot(x, 100 * d["val_acc"], "o-", color="C0", label="validation (heuristic uses)")
        if d["test_acc"].notna().any():
            ax.plot(x, 100 * d["test_acc"], "s--", color="C7", mfc="none", label="test (reported)")
        if mean is not None:
            ax.axhline(100 * mean, ls=":", color="C3", label=f"teacher/student mean {pct(mean)}")
        for r, xv in zip(d.to_dict("records"), x):
            role = {"teacher": "T", "student": "S"}.get(r["role"], "")
            ax.annotate(
                f"{r['model']}{' (' + role + ')' if role else ''}",
                (xv, 100 * r["val_acc"]),
                textcoords="offset points",
                xytext=(0, 11),
                ha="center",
                fontsize=8,
            )
            if r["model"] in best_tas:
                ax.plot(xv, 100 * r["val_acc"], "o", ms=14, mfc="none", mec="C2", mew=2)
        if ta is not None and ta in set(d["model"]):
            r = d[d["model"] == ta].iloc[0]
            ax.plot(
                float(r[xcol]), 100 * r["val_acc"], "*", ms=18, color="C3", mec="k",
                label=f"heuristic pick: {ta}",
            )  # fmt: skip
        if best_tas:
            ax.plot([], [], "o", ms=10, mfc="none", mec="C2", mew=2, label="TA on the best path")
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("NoKD accuracy (%)")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=5, fontsize=8)
    fig.suptitle(
        f"Models trained alone (NoKD) on {s.get('dataset')}: accuracy against size "
        f"(teacher {teacher}, student {student})"
    )
    return _save(fig, path)


def plot_paths(run: Run, stats: pd.DataFrame, path: Path) -> Path:
    """Each confirmed path's student test accuracy (mean +- std over seeds, seeds as
    dots), with BLKD and NoKD as reference lines (mean, +-std band)."""
    c = run.confirmation
    ok = c[(c["status"] == "completed") & c["test_acc"].notna()]
    win = run.summary.get("winner")
    rows = stats[~stats["method"].isin(REFERENCE) & stats["test_mean"].notna()]
    fig = _figure(10, 2.2 + 0.55 * max(1, len(rows)))
    ax = fig.subplots()
    for i, r in enumerate(rows.to_dict("records")):
        colour = "C2" if r["method"] == win else "C0"
        seeds = ok.loc[ok["method"] == r["method"], "test_acc"].astype("float64")
        ax.scatter(100 * seeds, [i] * len(seeds), s=14, color="0.55", zorder=2)
        ax.errorbar(
            100 * r["test_mean"], i, xerr=100 * (r["test_std"] or 0), fmt="o", ms=8,
            capsize=5, color=colour, zorder=3,
        )  # fmt: skip
    labels = [
        f"{r['method']}{' (winner)' if r['method'] == win else ''}: {r['path']}"
        + _short_hops(ok.loc[ok["method"] == r["method"], "hops"])
        for r in rows.to_dict("records")
    ]
    ax.set_yticks(range(len(rows)), labels)
    for i, lab in enumerate(ax.get_yticklabels()):
        if rows.iloc[i]["method"] == win:
            lab.set_fontweight("bold")
    for m, colour, name in (("blkd", "C1", "BLKD"), ("nokd", "C3", "NoKD")):
        r = stats[stats["method"] == m]
        if r.empty or pd.isna(r.iloc[0]["test_mean"]):
            continue
        r = r.iloc[0]
        mu, sd = 100 * r["test_mean"], 100 * (r["test_std"] or 0)
        ax.axvline(
            mu,
            color=colour,
            ls="--",
            label=f"{name} {r['path']}: {pct(r['test_mean'], r['test_std'])}",
        )
        ax.axvspan(mu - sd, mu + sd, color=colour, alpha=0.12)
    ax.scatter([], [], s=14, color="0.55", label="one seed")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    n_seeds = int(stats["seeds"].max()) if len(stats) and stats["seeds"].notna().any() else 0
    ax.set_xlabel(f"student test accuracy (%), mean ± std over {n_seeds} confirmation seeds")
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle(
        f"Confirmed paths {run.summary.get('teacher')} -> {run.summary.get('student')} "
        f"on {run.summary.get('dataset')} (winner chosen on validation accuracy)"
    )
    if rows.empty:
        ax.text(0.5, 0.5, "no confirmed path", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def _short_hops(hops: pd.Series) -> str:
    """'\n(T=2.21, alpha=0.72)' from a method's confirmation `hops` JSON ('' if none)."""
    try:
        h = json.loads(hops.iloc[0]) if len(hops) and isinstance(hops.iloc[0], str) else []
    except ValueError:
        return ""
    if not h:
        return ""
    txt = f"T={h[0]['T']:.3g}, alpha={h[0]['alpha']:.2g}"
    return f"\n({txt}{'' if all(x == h[0] for x in h) else ' on hop 1'})"


def plot_progress(run: Run, path: Path) -> Path:
    """Best-so-far validation accuracy against trials and against compute."""
    from matplotlib.ticker import MaxNLocator

    kind, per = device_kind(run)
    frames = {p: progress_frame(run.trials, p, per) for p in ("search", "blkd")}
    total = max((f["cost_seconds"].iloc[-1] for f in frames.values() if len(f)), default=0.0)
    unit, div = time_unit(total)
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2, sharey=True)
    for p, colour, name in (("search", "C0", "path search"), ("blkd", "C1", "BLKD search")):
        f = frames[p]
        if f.empty:
            continue
        ok = f["val_acc"].notna()
        pruned = f["status"] == "pruned"
        for ax, x in ((axes[0], f["trial"]), (axes[1], f["cost_seconds"] / div)):
            ax.step(x, 100 * f["best_so_far"], where="post", color=colour, lw=2,
                    label=f"best so far: {name}")  # fmt: skip
            ax.scatter(x[ok], 100 * f.loc[ok, "val_acc"], s=22, color=colour, alpha=0.5,
                       label=f"one trial: {name}")  # fmt: skip
            if pruned.any():
                ax.scatter(x[pruned], 100 * f.loc[pruned, "val_any"], marker="x",
                           color="0.5", label=f"stopped early: {name}")  # fmt: skip
    b = run.baselines
    sv = b[(b["kind"] == "nokd") & (b["role"] == "student")]["val_acc"].dropna()
    for ax in axes:
        if len(sv):
            ax.axhline(
                100 * sv.iloc[0], color="C3", ls=":", label=f"NoKD student {pct(sv.iloc[0])}"
            )
        ax.grid(alpha=0.3)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_xlabel("trial (in the order the searcher proposed them)")
    axes[1].set_xlabel(f"cumulative {kind}-{unit} of training (reused hops are free)")
    axes[0].set_ylabel("student validation accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[1].legend(handles, labels, fontsize=8, loc="lower right")
    fig.suptitle(f"Search progress: {run.summary.get('space')} ({run.summary.get('dataset')})")
    return _save(fig, path)


def _hyper_frame(run: Run) -> tuple[pd.DataFrame, bool]:
    """Completed search and BLKD trials with one value per hyper-parameter: the shared
    value (per_hop false) or the last hop's, into the student (per_hop true)."""
    per_hop = bool((run.space.get("distill", {}) or {}).get("per_hop"))
    t = run.trials
    t = t[t["phase"].isin(["search", "blkd"]) & (t["status"] == "completed")]
    t = t[t["val_acc"].notna()]
    rows = []
    for r in t.to_dict("records"):
        try:
            hops = json.loads(r["hops"]) if isinstance(r["hops"], str) else []
        except ValueError:
            hops = []
        if not hops:
            continue
        hop = hops[-1] if per_hop else hops[0]
        rows.append(
            {
                "phase": r["phase"],
                "n_tas": int(r["n_tas"]) if not pd.isna(r["n_tas"]) else 0,
                "val_acc": float(r["val_acc"]),
                **{h: hop.get(h) for h in HYPER},
                **{h: None if pd.isna(r.get(h, None)) else r[h] for h in TRIAL_LEVEL},
            }
        )
    cols = ["phase", "n_tas", "val_acc", *HYPER, *TRIAL_LEVEL]
    return pd.DataFrame(rows, columns=cols), per_hop


def plot_hyper(run: Run, importances: pd.Series | None, note: str, path: Path) -> Path:
    """Validation accuracy against each searched hyper-parameter (colour = number of TAs),
    plus Optuna's parameter importances (or a note when there are too few trials)."""
    df, per_hop = _hyper_frame(run)
    distill = run.space.get("distill", {}) or {}
    varied = [h for h in (*HYPER, *TRIAL_LEVEL) if len(df) and df[h].dropna().nunique() > 1]
    panels = max(1, len(varied)) + 1
    ncols = min(3, panels)
    nrows = math.ceil(panels / ncols)
    fig = _figure(4.3 * ncols, 3.9 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    tas = sorted(df["n_tas"].unique()) if len(df) else []
    for ax, h in zip(axes, varied):
        for k, n_ta in enumerate(tas):
            for phase, marker in (("search", "o"), ("blkd", "s")):
                d = df[(df["n_tas"] == n_ta) & (df["phase"] == phase)]
                if d.empty:
                    continue
                label = (
                    "BLKD search (0 TAs)"
                    if phase == "blkd"
                    else f"{n_ta} TA{'s' if n_ta != 1 else ''}"
                )
                ax.scatter(d[h], 100 * d["val_acc"], marker=marker, s=36, alpha=0.8,
                           color=f"C{k}", edgecolors="k" if phase == "blkd" else "none",
                           label=label)  # fmt: skip
        spec = distill.get(h) if h in HYPER else (run.space.get("train", {}) or {}).get(h)
        if isinstance(spec, dict) and spec.get("log"):
            _log_axis(ax)
        suffix = "" if h in TRIAL_LEVEL else " of the last hop" if per_hop else " (every hop)"
        ax.set_xlabel(HYPER_LABEL[h] + suffix)
        ax.set_ylabel("student validation accuracy (%)")
        ax.grid(alpha=0.3)
    if varied:
        axes[0].legend(fontsize=8, title="path", title_fontsize=8)
    else:
        ax = axes[0]
        ax.axis("off")
        ax.text(0.5, 0.5, "no hyper-parameter varied in this search", ha="center",
                va="center", transform=ax.transAxes, wrap=True)  # fmt: skip
    ax = axes[max(1, len(varied))]
    if importances is not None and len(importances):
        imp = importances.iloc[::-1]
        ax.barh(list(imp.index), imp.values, color="C4")
        ax.set_xlabel("importance (share of val. accuracy variance, fANOVA)")
        ax.set_xlim(0, max(1e-9, float(imp.max())) * 1.15)
        ax.set_title("Optuna parameter importances", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.axis("off")
        ax.set_title("Optuna parameter importances", fontsize=10)
        ax.text(0.5, 0.5, _wrap(note, 40), ha="center", va="center", transform=ax.transAxes)
    for extra in axes[max(1, len(varied)) + 1 :]:
        extra.axis("off")
    fig.suptitle(f"Hyper-parameter effects: {run.summary.get('space')} (completed trials)")
    return _save(fig, path)


METHOD_STYLE = {"blkd": ("C1", "--", "BLKD"), "nokd": ("C3", ":", "NoKD"),
                "heuristic": ("C4", "-.", "heuristic")}  # fmt: skip


def plot_curves(run: Run, confirm: pd.DataFrame, search: pd.DataFrame, path: Path) -> Path:
    """Student validation accuracy against epoch: (a) each confirmed method's mean over
    seeds with a +-std band and thin per-seed lines, the winner bold; (b) when the search
    recorded curves, each searched student coloured by alpha (or T) against NoKD's."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import MaxNLocator

    s = run.summary
    win = s.get("winner")
    fig = _figure(12 if len(search) else 7.5, 4.8)
    axes = np.atleast_1d(fig.subplots(1, 2 if len(search) else 1, sharey=True))
    ax = axes[0]
    mean = mean_curves(confirm)
    others = 0
    for m in sorted(set(confirm["method"]), key=_method_key):
        if m == win:
            colour, ls, lw = "C2", "-", 3.0
        elif m in METHOD_STYLE:
            colour, ls, lw = METHOD_STYLE[m][0], METHOD_STYLE[m][1], 1.8
        else:
            colour, ls, lw = f"C{[0, 9, 5, 6, 8][others % 5]}", "-", 1.8
            others += 1
        c = confirm[confirm["method"] == m]
        for _, one in c.groupby("trial"):
            one = one.sort_values("epoch")
            ax.plot(one["epoch"], 100 * one["val_acc"], color=colour, lw=0.6, alpha=0.35)
        mc = mean[mean["method"] == m].sort_values("epoch")
        n = int(mc["n"].max())
        name = METHOD_STYLE.get(m, (0, 0, m))[2] + (" (winner)" if m == win else "")
        label = f"{name}: {c['path'].iloc[0]} (n={n})"
        ax.plot(mc["epoch"], 100 * mc["mean"], color=colour, ls=ls, lw=lw, label=label,
                zorder=4 if m == win else 3)  # fmt: skip
        lo, hi = 100 * (mc["mean"] - mc["std"]), 100 * (mc["mean"] + mc["std"])
        ax.fill_between(mc["epoch"], lo, hi, color=colour, alpha=0.15, lw=0)
    ax.plot([], [], color="0.4", lw=0.6, label="one seed")
    ax.fill_between([], [], [], color="0.4", alpha=0.15, label="± std over seeds")
    ax.set_title("(a) confirmation: mean over seeds, ± std band", fontsize=10)
    ax.set_ylabel("student validation accuracy (%)")
    ax.legend(fontsize=7.5, loc="lower right")
    if len(search):
        ax = axes[1]
        by = "alpha" if search["alpha"].dropna().nunique() > 1 else "T"
        vals = search[by].astype("float64")
        lo, hi = float(vals.min()), float(vals.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        spec = (run.space.get("distill", {}) or {}).get(by)
        log = by == "T" and isinstance(spec, dict) and spec.get("log") and lo > 0
        norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
        cmap = colormaps["viridis"]
        for _, one in search.groupby("trial"):
            one = one.sort_values("epoch")
            ax.plot(one["epoch"], 100 * one["val_acc"], lw=1.2, alpha=0.85,
                    color=cmap(norm(float(one[by].iloc[0]))))  # fmt: skip
        nokd = student_curves(run, "nokd")
        nokd = nokd[nokd["path"] == s.get("student")]
        if nokd.empty:  # no NoKD phase curve: the confirmation's mean over seeds
            nokd = mean[mean["method"] == "nokd"].rename(columns={"mean": "val_acc"})
        if len(nokd):
            nokd = nokd.groupby("epoch", as_index=False)["val_acc"].mean()
            ax.plot(nokd["epoch"], 100 * nokd["val_acc"], color="C3", ls=":", lw=2.5,
                    label=f"NoKD student {s.get('student')} (alone)")  # fmt: skip
            ax.legend(fontsize=8, loc="lower right")
        bar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax)
        bar.set_label(HYPER_LABEL[by] + " (hop into the student)")
        ax.set_title(f"(b) search: {search['trial'].nunique()} students, colour = {by}",
                     fontsize=10)  # fmt: skip
    for ax in axes:
        ax.set_xlabel("epoch (of the student's hop)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Learning curves of the student {s.get('student')} on {s.get('dataset')}: "
        "does KD learn faster than training alone?"
    )
    return _save(fig, path)


def _log_axis(ax) -> None:
    """A log x axis labelled 1, 2, 5, 10, 20 ... in plain numbers (no 2x10^0 clutter)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ---- the report ---------------------------------------------------------------------------
def _nokd_table(run: Run) -> pd.DataFrame:
    b = run.baselines
    n = b[b["kind"] == "nokd"]
    ta = run.summary.get("heuristic_ta")
    return pd.DataFrame(
        {
            "model": n["model"],
            "role": n["role"],
            "params": n["params"].map(lambda v: "-" if pd.isna(v) else f"{int(v):,}"),
            "val %": n["val_acc"].map(lambda v: pct(v).removesuffix(" %")),
            "test %": n["test_acc"].map(lambda v: pct(v).removesuffix(" %")),
            "note": [("heuristic pick" if m == ta else "") for m in n["model"]],
        }
    )


def _top_trials(run: Run, k: int = 10) -> pd.DataFrame:
    t = run.trials
    t = t[(t["phase"] == "search") & t["val_acc"].notna()].copy()
    by = ["val_acc", "trial_number"] if "trial_number" in t else ["val_acc"]
    t = t.sort_values(by, ascending=[False, True][: len(by)], kind="stable").head(k)
    return pd.DataFrame(
        {
            "trial": t["trial_id"],
            "status": t["status"],
            "path": t["path"],
            "val %": t["val_acc"].map(lambda v: pct(v).removesuffix(" %")),
            "T": t["T_1"].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}"),
            "alpha": t["alpha_1"].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}"),
            "hops trained/reused": [
                f"{a}/{b}" for a, b in zip(t["hops_trained"].fillna(0), t["hops_reused"].fillna(0))
            ],
        }
    )


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
    the student alone, a brought teacher far below its claim) as quoted lines + blank."""
    from takd_search.premise import run_warnings

    s = run.summary
    claims = ((run.versions.get("run") or {}).get("teacher") or {}).get("claims")
    lines = run_warnings(run.baselines, s.get("teacher"), s.get("student"), claims)
    return [*(f"> **{w}**" for w in lines), *([""] if lines else [])]


def report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict:
    """Write report.md and the plots for a finished run folder (into `out_dir`, default
    the run folder). Returns {'report': path, 'plots': {name: path}, 'table': text,
    'stats': DataFrame}. A run-path folder (chain.json) gets its own, shorter report
    (`chain_report`)."""
    if results.is_chain(run_dir):
        from takd_search.chain_report import report_chain

        return report_chain(run_dir, out_dir)
    run = open_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.dir
    out.mkdir(parents=True, exist_ok=True)
    stats = method_stats(run.confirmation)
    imp, note = param_importances(run)
    plots = {
        "nokd_size": plot_nokd_vs_size(run, out / PLOTS["nokd_size"]),
        "paths": plot_paths(run, stats, out / PLOTS["paths"]),
        "progress": plot_progress(run, out / PLOTS["progress"]),
        "hyper": plot_hyper(run, imp, note, out / PLOTS["hyper"]),
    }
    confirm_curves = student_curves(run, "confirm")
    if len(confirm_curves):
        search_curves = student_curves(run, "search")
        plots["curves"] = plot_curves(run, confirm_curves, search_curves, out / PLOTS["curves"])
        curves_md = [
            "Student validation accuracy after each epoch: left, each confirmed method's mean "
            "over seeds (± std band, thin lines one seed each; the winner bold); right, the "
            "search's students against the student trained alone. "
            + speed_sentence(
                mean_curves(confirm_curves), run.summary.get("winner"), confirm_curves
            ),
            "",
            f"![learning curves]({os.path.relpath(plots['curves'], out)})",
        ]
    else:
        curves_md = [
            "No learning-curve plot: the confirmation trials in `phases/confirm.json` carry "
            "no per-epoch `curve` (a run from before curves were recorded, or no completed "
            "confirmation)."
        ]
    s = run.summary
    keys = key_table(stats, s.get("winner"), tuning_of(s))
    rel = {k: os.path.relpath(p, out) for k, p in plots.items()}
    md = [
        f"# {s.get('space')}: {s.get('teacher')} -> {s.get('student')} on {s.get('dataset')}",
        "",
        f"Run folder `{run.dir}`"
        + (f", started {run.versions['started']}" if run.versions.get("started") else "")
        + (
            f", git {str(run.versions['git_revision'])[:10]}"
            if run.versions.get("git_revision")
            else ""
        )
        + ".",
        "",
        "## Answer",
        "",
        *answer_lines(run, stats),
        "",
        *premise_lines(run),
        "## Confirmed paths",
        "",
        "Each configuration retrained with fresh seeds "
        + teacher_note(run.confirmation)
        + "; test accuracy mean ± std over the report seeds, differences paired by seed "
        "(percentage points, a t-based 95 % confidence interval, p from a paired t-test "
        "Holm-adjusted over the two comparisons vs BLKD and vs NoKD; undefined when every "
        "seed gives the same difference). The winner is the searched configuration with the "
        "best mean *validation* accuracy on the selection seeds, which are not reported. "
        "`tuning trials`: completed trials the configuration was chosen from (every compared "
        "method gets at least as many as the most-tried candidate path); `tuning s`: their "
        "training seconds, pruned and failed trials included.",
        "",
        markdown_table(keys),
        "",
        f"![confirmed paths]({rel['paths']})",
        "",
        "## Models trained alone (NoKD) against size",
        "",
        "The heuristic picks the TA whose NoKD validation accuracy is nearest the mean of the "
        "teacher's and the student's (dotted line).",
        "",
        markdown_table(_nokd_table(run)),
        "",
        f"![NoKD accuracy against size]({rel['nokd_size']})",
        "",
        "## Search progress",
        "",
        "Best validation accuracy found so far, against trials and against training compute "
        "(hops reused from the store cost nothing).",
        "",
        f"![search progress]({rel['progress']})",
        "",
        "Best searched trials (validation accuracy; the test set is not used in the search)."
        + search_ties(run),
        "",
        markdown_table(_top_trials(run)),
        "",
        "## Hyper-parameters",
        "",
        note,
        "",
    ]
    if imp is not None:
        md += [
            markdown_table(
                pd.DataFrame({"parameter": imp.index, "importance": imp.map(lambda v: f"{v:.3f}")})
            ),
            "",
        ]
    md += [f"![hyper-parameters]({rel['hyper']})", "", "## Learning curves", "", *curves_md, ""]
    path = results.write_atomic(out / "report.md", "\n".join(md))
    return {"report": path, "plots": plots, "table": console_table(keys), "stats": stats}

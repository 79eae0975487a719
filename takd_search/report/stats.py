"""The numbers a report states, computed from a run folder's tables (`results.Run`).

Per confirmed method: seeds, validation/test mean and std, and the paired (by seed)
test-accuracy differences against BLKD and NoKD with their t-based 95 % intervals and
Holm-adjusted p (`method_stats`); the search's best-so-far and its cumulative compute
(`progress_frame`); the students' per-epoch learning curves and how many epochs each
needs to reach an accuracy, with the paired per-seed test behind "KD learns faster"
(`student_curves`, `mean_curves`, `epochs_to_reach`, `epochs_test`).

Pure pandas on the loaded tables, so the prose (`text`), the plots and `analyze` all
state the same numbers. Columns are fractions, like the CSVs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from takd_search import results
from takd_search.baselines import acc_of, failed_seeds, holm, paired_summary, paired_test
from takd_search.results import Run


def method_key(m: str) -> tuple:
    """Sort key of confirmation methods: top1, top2 ..., heuristic, blkd, nokd, others."""
    if m.startswith("top") and m[3:].isdigit():
        return (0, int(m[3:]), m)
    return ({"heuristic": 1, "blkd": 2, "nokd": 3}.get(m, 4), 0, m)


COUNT_COLS = ("val_correct", "val_total", "test_correct", "test_total")


def _records(confirmation: pd.DataFrame) -> list[dict]:
    """The completed report-seed rows as plain dicts (method, seed, accuracies and the
    counts behind them where the folder has them), for `baselines`' exact statistics."""
    ok = confirmation[confirmation["status"] == "completed"]
    if "seed_set" in ok:
        ok = ok[ok["seed_set"].fillna("report") != "select"]
    out = []
    for r in ok.to_dict("records"):
        rec = {
            "method": r["method"],
            "seed": None if pd.isna(r["seed"]) else int(r["seed"]),
            "val_acc": None if pd.isna(r["val_acc"]) else float(r["val_acc"]),
            "test_acc": None if pd.isna(r["test_acc"]) else float(r["test_acc"]),
        }
        for c in COUNT_COLS:
            v = r.get(c)
            rec[c] = None if v is None or pd.isna(v) else int(v)
        out.append(rec)
    return out


def method_stats(confirmation: pd.DataFrame, n_val: int | None = None) -> pd.DataFrame:
    """One row per confirmed method: path, seeds, val/test mean and std, and the paired
    test-accuracy difference against BLKD and against NoKD: mean, std, t-based 95 % CI
    (`ci_lo_vs_*`, `ci_hi_vs_*`), the paired t-test p, and p Holm-adjusted over the
    method's two comparisons (`p_holm_vs_*`; NaN when undefined: < 2 seeds or zero
    variance, `p_note_vs_*` says which).

    Only rows with status `completed` of the *report* seeds count (`seed_set` not
    `select`: the selection seeds chose the winner and are not reported); `failed_seeds`
    lists the report seeds whose row failed. The statistics use the rows' counts of
    correct images as exact fractions (`baselines.acc_of`); a folder from before the
    counts gets them derived from `n_val` (validation images, summary.json) for the
    validation accuracy. Columns are fractions, like the CSVs.
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
        "failed_seeds",
    ]
    ok = confirmation[confirmation["status"] == "completed"]
    if "seed_set" in ok:
        ok = ok[ok["seed_set"].fillna("report") != "select"]
    recs = _records(confirmation)
    reported = confirmation
    if "seed_set" in reported:
        reported = reported[reported["seed_set"].fillna("report") != "select"]
    failed = failed_seeds(
        [
            {"method": m, "seed": int(sd), "status": st}
            for m, sd, st in zip(reported["method"], reported["seed"], reported["status"])
            if not pd.isna(sd)
        ]
    )
    vs_blkd = paired_summary(recs, "blkd")
    vs_nokd = paired_summary(recs, "nokd")
    val = paired_summary(recs, "blkd", metric="val_acc", total=n_val)
    rows = []
    for m in sorted(set(ok["method"].dropna()), key=method_key):
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
                "failed_seeds": failed.get(m, []),
            }
        )
    df = pd.DataFrame(rows, columns=cols)
    return df.astype(
        {c: "float64" for c in cols[4:-3]}
        | {"seeds": "Int64"}
        | dict.fromkeys(cols[-3:], "object")
    )


def paired_vs(confirmation: pd.DataFrame, a: str, b: str) -> dict | None:
    """Paired test of a's minus b's test accuracy over the report seeds both completed."""
    c = confirmation[confirmation["status"] == "completed"]
    if "seed_set" in c:
        c = c[c["seed_set"].fillna("report") != "select"]
    by = c[c["method"].isin([a, b])].pivot_table(index="seed", columns="method", values="test_acc")
    if a not in by or b not in by:
        return None
    recs = {(r["method"], r["seed"]): acc_of(r, "test_acc") for r in _records(confirmation)}
    diffs = [
        recs[(a, s)] - recs[(b, s)]
        for s in by.index
        if recs.get((a, s)) is not None and recs.get((b, s)) is not None
    ]
    return paired_test(diffs) if diffs else None


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


def epochs_test(curves: pd.DataFrame, winner: str, target: float) -> dict | None:
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

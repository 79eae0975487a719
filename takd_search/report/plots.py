"""The report's five PNG plots of a finished run (file names in `PLOTS`):

    nokd_vs_size.png         NoKD accuracy against depth and parameter count (TAKD Fig. 4)
    paths_accuracy.png       confirmed paths: test accuracy mean +- std, BLKD/NoKD lines
    search_progress.png      best-so-far validation accuracy against trials and compute
    hyperparameters.png      accuracy against T, alpha (...) and Optuna's importances
    learning_curves.png      student validation accuracy per epoch: confirmed methods
                             (mean +- std over seeds) and the search's students vs NoKD

One story, kept in one file: every plot is drawn on a pyplot-free `figure` (no global
backend, no GUI) and written atomically by `save_png`. matplotlib is imported inside the
functions that draw, so importing the report (and `takd-search --help`) stays fast.
"""

from __future__ import annotations

import io
import json
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from takd_search.atomic import write_atomic
from takd_search.engine.path import path_models
from takd_search.report.importances import HYPER, HYPER_LABEL, TRIAL_LEVEL
from takd_search.report.stats import (
    device_kind,
    mean_curves,
    method_key,
    progress_frame,
    student_curves,
    time_unit,
)
from takd_search.report.tables import pct
from takd_search.results import Run

PLOTS = {
    "nokd_size": "nokd_vs_size.png",
    "paths": "paths_accuracy.png",
    "progress": "search_progress.png",
    "hyper": "hyperparameters.png",
    "curves": "learning_curves.png",  # only when the phase files carry per-epoch curves
}
REFERENCE = ("blkd", "nokd")  # confirmation methods drawn as reference lines


def figure(w: float, h: float):
    """A w x h inch matplotlib Figure of the report's look (also the run-path report's)."""
    # matplotlib here, not at the top: importing the report (and --help) stays fast
    from matplotlib.figure import Figure  # no pyplot: no global backend, no GUI (Agg)

    return Figure(figsize=(w, h), dpi=110, layout="constrained")


def save_png(fig, path: Path) -> Path:
    """`fig` as a PNG at `path`, written atomically; returns `path`."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_atomic(path, buf.getvalue())


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
    best_tas = set(path_models((s.get("best") or {}).get("path", ""))[1:-1])
    family = (run.space.get("models", {}) or {}).get("family")
    fig = figure(11, 4.6)
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
    return save_png(fig, path)


def plot_paths(run: Run, stats: pd.DataFrame, path: Path) -> Path:
    """Each confirmed path's student test accuracy (mean +- std over seeds, seeds as
    dots), with BLKD and NoKD as reference lines (mean, +-std band)."""
    c = run.confirmation
    ok = c[(c["status"] == "completed") & c["test_acc"].notna()]
    win = run.summary.get("winner")
    rows = stats[~stats["method"].isin(REFERENCE) & stats["test_mean"].notna()]
    fig = figure(10, 2.2 + 0.55 * max(1, len(rows)))
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
    return save_png(fig, path)


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
    from matplotlib.ticker import MaxNLocator  # lazily, like every matplotlib import here

    kind, per = device_kind(run)
    frames = {p: progress_frame(run.trials, p, per) for p in ("search", "blkd")}
    total = max((f["cost_seconds"].iloc[-1] for f in frames.values() if len(f)), default=0.0)
    unit, div = time_unit(total)
    fig = figure(11, 4.4)
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
    return save_png(fig, path)


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
    fig = figure(4.3 * ncols, 3.9 * nrows)
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
    return save_png(fig, path)


METHOD_STYLE = {"blkd": ("C1", "--", "BLKD"), "nokd": ("C3", ":", "NoKD"),
                "heuristic": ("C4", "-.", "heuristic")}  # fmt: skip


def plot_curves(run: Run, confirm: pd.DataFrame, search: pd.DataFrame, path: Path) -> Path:
    """Student validation accuracy against epoch: (a) each confirmed method's mean over
    seeds with a +-std band and thin per-seed lines, the winner bold; (b) when the search
    recorded curves, each searched student coloured by alpha (or T) against NoKD's."""
    # lazily, like every matplotlib import here
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable  # matplotlib: only when a plot is drawn
    from matplotlib.colors import LogNorm, Normalize  # matplotlib: only when a plot is drawn
    from matplotlib.ticker import MaxNLocator  # matplotlib: only when a plot is drawn

    s = run.summary
    win = s.get("winner")
    fig = figure(12 if len(search) else 7.5, 4.8)
    axes = np.atleast_1d(fig.subplots(1, 2 if len(search) else 1, sharey=True))
    ax = axes[0]
    mean = mean_curves(confirm)
    others = 0
    for m in sorted(set(confirm["method"]), key=method_key):
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
    return save_png(fig, path)


def _log_axis(ax) -> None:
    """A log x axis labelled 1, 2, 5, 10, 20 ... in plain numbers (no 2x10^0 clutter)."""
    # lazily, like every matplotlib import here
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))

"""The MNIST-1D study: does a teacher assistant help, and does the search find the best one?

What it runs (all on one hop store, so every network is trained once)
------------------------------------------------------------------------
On the shipped `mnist1d_plain` space (plain 10 -> 2, TAs 8, 6, 4; 1-D plain CNNs on
MNIST-1D, 8,000 signals to train on, 2,000 to validate, 2,500 to test):

1. search: `takd-search run` on the space as shipped, confirmation with `--seeds` seeds
   (the best searched configuration, BLKD, the mean-accuracy heuristic's path, NoKD);
2. grid: the exhaustive grid of the same space: every one of its 8 paths at every
   (T, alpha) of `--grid-T` x `--grid-alpha` (bench/sweep.py's `grid_space`), its top
   configuration confirmed with `--grid-seeds` seeds;
3. NoKD: every depth trained from scratch with seeds 0..seeds-1 (seed 0 is the search's).

Then it writes `--out` (docs/benchmarks.md): the setting, NoKD accuracy against size, the
confirmed methods with means, 95 % t-intervals and paired differences, the grid's table
of paths, how much of the search's compute it took to reach a path within noise of the
grid's best, and whether TAKD's three claims hold here. Anything that did not finish is
reported as missing and the page is labelled partial.

Usage:
    python bench/mnist1d_study.py --root /tmp/mnist1d-study     # everything (resumable)
    python bench/mnist1d_study.py --root /tmp/mnist1d-study --write-only   # just the page
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine  # noqa: E402
from sweep import grid_space  # noqa: E402

from takd_search import results  # noqa: E402
from takd_search.config import find_space  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEPTHS = (10, 8, 6, 4, 2)


# --- running --------------------------------------------------------------------------------


def space_copy(src: Path, dest: Path, seeds: int, epochs: int | None, top_k: int = 3) -> Path:
    """The shipped space with `seeds` confirmation seeds (1..seeds), `top_k` confirmed
    configurations and, if given, epochs."""
    spec = yaml.safe_load(src.read_text())
    spec["name"] = spec.get("name") or src.stem
    spec["baselines"]["confirm_seeds"] = list(range(1, seeds + 1))
    spec["baselines"]["confirm_top_k"] = int(top_k)
    if epochs:
        spec["train"]["epochs"] = int(epochs)
    dest.write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def run_space(label: str, space: Path, results_dir: Path, store: Path, log: Path) -> Path | None:
    """`takd-search run` (resumes an unfinished run of the same space); its run folder."""
    done = finished_run(results_dir)
    if done is not None:
        print(f"# {label}: already finished in {done}", flush=True)
        return done
    cmd = [sys.executable, "-m", "takd_search.cli", "run", "--space", str(space)]
    cmd += ["--results", str(results_dir), "--store", str(store)]
    t0 = time.perf_counter()
    print(f"# {label}: {' '.join(cmd)} (load {load()})", flush=True)
    with open(log, "a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    print(f"# {label}: exit {proc.returncode} after {time.perf_counter() - t0:.0f} s "
          f"(load {load()})", flush=True)  # fmt: skip
    return finished_run(results_dir)


def latest_run(results_dir: Path) -> Path | None:
    """The newest run folder with a trials.csv (its search phase ended), finished or not."""
    if not results_dir.is_dir():
        return None
    runs = sorted(d for d in results_dir.iterdir() if (d / "trials.csv").is_file())
    return runs[-1] if runs else None


def finished_run(results_dir: Path) -> Path | None:
    if not results_dir.is_dir():
        return None
    runs = sorted(d for d in results_dir.iterdir() if (d / "summary.json").is_file())
    return runs[-1] if runs else None


def nokd_seeds(space: Path, store: Path, seeds: int, out: Path) -> pd.DataFrame:
    """Every depth from scratch with seeds 0..seeds-1, on the run's data, split and recipe
    (so seed 0 is the search's own NoKD hop, reused from the store). Appends to `out`."""
    from takd_search.config import load_space
    from takd_search.engine.chain import Context, hop_rows, run_chain
    from takd_search.engine.store import Store
    from takd_search.run_path import open_data, recipe

    sp, _, _ = load_space(str(space), {})
    train = recipe(sp.data.dataset, **{k: v for k, v in sp.train.model_dump().items() if v})
    data = open_data(
        sp.data.dataset, sp.data.data_dir, val_fraction=sp.data.val_fraction,
        split_seed=sp.data.split_seed, device="cpu",
    )  # fmt: skip
    ctx = Context(data, train, Store(store))
    rows = pd.read_csv(out).to_dict("records") if out.is_file() else []
    have = {(r["model"], int(r["seed"])) for r in rows}
    for seed in range(seeds):
        for depth in DEPTHS:
            model = f"{sp.models.family}{depth}"
            if (model, seed) in have:
                continue
            t0 = time.perf_counter()
            (row,) = hop_rows(run_chain(ctx, [model], seed=seed))
            rows.append(
                {
                    "model": model, "depth": depth, "seed": seed, "params": row["params"],
                    "val_acc": row["val_acc"], "test_acc": row["test_acc"],
                    "status": row["status"], "seconds": round(time.perf_counter() - t0, 1),
                }
            )  # fmt: skip
            pd.DataFrame(rows).to_csv(out, index=False)
            print(f"# nokd {model} seed {seed}: test {row['test_acc']:.4f} ({load()})", flush=True)
    return pd.DataFrame(rows)


# --- statistics -----------------------------------------------------------------------------


def t_half(values) -> float:
    """Half-width of the two-sided 95 % t-interval of the mean (nan below 2 values)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def paired(a: pd.Series, b: pd.Series) -> tuple[float, float, float, int]:
    """(mean of a - b, 95 % t half-width, two-sided paired p, pairs) over common seeds."""
    from scipy import stats

    common = a.index.intersection(b.index)
    d = (a[common] - b[common]).to_numpy(float)
    if len(d) < 2:
        return float("nan"), float("nan"), float("nan"), len(d)
    p = 1.0 if np.allclose(d, 0) else float(stats.ttest_1samp(d, 0.0).pvalue)
    return float(d.mean()), t_half(d), p, len(d)


def pct(x: float, half: float | None = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    s = f"{100 * x:.2f}"
    return s if half is None or math.isnan(half) else f"{s} ± {100 * half:.2f}"


def pp(d: float, half: float, p: float) -> str:
    if math.isnan(d):
        return "-"
    return f"{100 * d:+.2f} ± {100 * half:.2f} pp (p = {p:.3f})"


# --- the page -------------------------------------------------------------------------------


def nokd_section(nokd: pd.DataFrame, seeds: int) -> list[str]:
    out = ["## NoKD: accuracy against size", ""]
    if nokd.empty:
        return out + ["**Missing**: no NoKD rows were trained.", ""]
    out += [
        f"Each depth trained from scratch with seeds 0..{seeds - 1} (test accuracy, %; "
        "± is the 95 % t-interval of the mean over seeds).",
        "",
        "| model | params | seeds | val % | test % | test min..max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for depth in DEPTHS:
        g = nokd[(nokd["depth"] == depth) & (nokd["status"] != "failed")]
        if g.empty:
            continue
        out.append(
            f"| plain{depth} | {int(g['params'].iloc[0]):,} | {len(g)} | "
            f"{pct(g['val_acc'].mean(), t_half(g['val_acc']))} | "
            f"{pct(g['test_acc'].mean(), t_half(g['test_acc']))} | "
            f"{100 * g['test_acc'].min():.2f}..{100 * g['test_acc'].max():.2f} |"
        )
    means = nokd.groupby("depth")["test_acc"].mean()
    if {10, 2} <= set(means.index):
        out += [
            "",
            f"Teacher minus student (plain10 - plain2), mean test: "
            f"{100 * (means[10] - means[2]):.2f} points.",
        ]
    return out + [""]


def confirmed_section(run_dir: Path | None, title: str) -> tuple[list[str], dict]:
    out = [f"## {title}", ""]
    if run_dir is None:
        return out + ["**Missing**: this run did not finish.", ""], {}
    r = results.load(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    conf = r["confirmation"].query("status == 'completed'")
    test = {m: g.set_index("seed")["test_acc"] for m, g in conf.groupby("method")}
    val = {m: g.set_index("seed")["val_acc"] for m, g in conf.groupby("method")}
    paths = conf.groupby("method")["path"].first()
    order = sorted(test, key=lambda m: (m not in ("nokd", "blkd", "heuristic"), m))
    out += [
        f"Run `{run_dir.name}`; the teacher is the search's (seed 0), TAs and student are "
        f"retrained with each confirmation seed ({', '.join(map(str, sorted(conf['seed'].unique())))}). "  # noqa: E501
        "Test accuracy %, mean ± 95 % t-interval; differences are paired by seed.",
        "",
        "| method | path | seeds | val % | test % | vs BLKD | vs NoKD |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for m in order:
        t = test[m]
        vb = pp(*paired(t, test["blkd"])[:3]) if "blkd" in test and m != "blkd" else "-"
        vn = pp(*paired(t, test["nokd"])[:3]) if "nokd" in test and m != "nokd" else "-"
        out.append(
            f"| {m} | {paths[m]} | {len(t)} | {pct(val[m].mean(), t_half(val[m]))} | "
            f"{pct(t.mean(), t_half(t))} | {vb} | {vn} |"
        )
    out += [
        "",
        f"Winner (best mean validation accuracy among searched methods): "
        f"**{summary.get('winner')}** ({(summary.get('best') or {}).get('path')}); "
        f"the heuristic's TA: {summary.get('heuristic_ta')}; heuristic found the best: "
        f"{summary.get('heuristic_found_best')}.",
        "",
    ]
    return out, {"run": r, "summary": summary, "test": test, "val": val, "paths": paths}


def grid_section(
    grid_dir: Path | None, search: dict, search_trials: pd.DataFrame | None
) -> tuple[list[str], dict]:
    out = ["## Exhaustive grid of the same space", ""]
    if grid_dir is None:
        return out + ["**Missing**: the grid's search phase did not finish.", ""], {}
    g = {"trials": pd.read_csv(grid_dir / "trials.csv")}
    conf_csv = grid_dir / "confirmation.csv"
    g["confirmation"] = (
        pd.read_csv(conf_csv)
        if conf_csv.is_file()
        else pd.DataFrame(columns=["status", "method", "val_acc"])
    )
    if not (grid_dir / "summary.json").is_file():
        out += [
            "**Partial**: the grid's search phase finished, its BLKD/confirmation phases did "
            "not; the table below is the complete grid of paths x (T, alpha).",
            "",
        ]
    tr = g["trials"].query("phase == 'search' and status == 'completed'").copy()
    if tr.empty:
        return out + ["**Missing**: the grid has no completed trials.", ""], {}
    best_by_path = (
        tr.sort_values("val_acc", ascending=False).groupby("path", as_index=False).first()
    )
    best_by_path = best_by_path.sort_values("val_acc", ascending=False)
    out += [
        f"Run `{grid_dir.name}`: {len(tr)} trials (every path at every (T, alpha) of the "
        "grid; one seed each, the search's). Best validation accuracy per path, %:",
        "",
        "| path | TAs | best val % | at T | at alpha | trials |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    counts = tr.groupby("path").size()
    for _, row in best_by_path.iterrows():
        out.append(
            f"| {row['path']} | {int(row['n_tas'])} | {100 * row['val_acc']:.2f} | "
            f"{row['T_1']:g} | {row['alpha_1']:g} | {counts[row['path']]} |"
        )
    grid_best = float(best_by_path["val_acc"].iloc[0])
    n_val = _n_val(grid_dir)
    binom = math.sqrt(grid_best * (1 - grid_best) / n_val) if n_val else float("nan")
    conf = g["confirmation"].query("status == 'completed' and method == 'top1'")
    seed_sd = float(conf["val_acc"].std(ddof=1)) if len(conf) > 1 else float("nan")
    if math.isnan(seed_sd) and search and "top1" in search["val"]:  # the search's seeds
        seed_sd = float(search["val"]["top1"].std(ddof=1))
    noise = np.nanmax([binom, seed_sd])
    out += [
        "",
        f"Grid best: {best_by_path['path'].iloc[0]} at {100 * grid_best:.2f} % val. Noise "
        f"of one validation number: binomial SE {100 * binom:.2f} pp at {n_val} signals, "
        f"seed-to-seed SD of the top configuration's validation accuracy {100 * seed_sd:.2f} "
        "pp; "
        f"'within noise' below means within {100 * noise:.2f} pp (the larger).",
        "",
    ]
    gc = hop_costs(grid_dir)
    gcompute, ghops = float(gc["cum_s"].iloc[-1]), int(gc["cum_hops"].iloc[-1])
    spread = float(best_by_path["val_acc"].iloc[0] - best_by_path["val_acc"].iloc[-1])
    out.append(
        f"The 8 paths' best validation accuracies span {100 * spread:.2f} pp, against a noise "
        f"of {100 * noise:.2f} pp: on this ladder the grid cannot tell the paths apart."
    )
    info = {"best": grid_best, "noise": noise, "by_path": best_by_path, "grid_s": gcompute}
    s_dir = latest_run(grid_dir.parent.parent / "search") if search_trials is not None else None
    if s_dir is not None:
        st = hop_costs(s_dir)
        hit = st[st["val_acc"] >= grid_best - noise]
        total, thops = float(st["cum_s"].iloc[-1]), int(st["cum_hops"].iloc[-1])
        if hit.empty:
            out.append(
                f"The search's {len(st)} trials ({thops} hops, {total:.0f} s) never reached a "
                f"path within noise of the grid's best (its best: {100 * st['val_acc'].max():.2f} %)."  # noqa: E501
            )
        else:
            h = hit.iloc[0]
            out.append(
                f"Compute: the search reached a path within noise of the grid's best at trial "
                f"{int(h['trial'])} of {len(st)} ({h['path']}, {100 * h['val_acc']:.2f} % val), "
                f"after {int(h['cum_hops'])} hops, {h['cum_s']:.0f} s of training: "
                f"{100 * h['cum_s'] / gcompute:.0f} % of the grid's {ghops} hops, "
                f"{gcompute:.0f} s ({len(tr)} trials); the whole search needed {thops} hops, "
                f"{total:.0f} s. Hops are counted once each (the hop store trains a shared "
                "prefix once), teacher excluded; seconds are wall seconds of each hop's "
                "training on the shared machine, so they carry its load."
            )
        out.append("")
    return out, info


def hop_costs(run_dir: Path) -> pd.DataFrame:
    """The search phase's trials in order, with the cumulative cost of the distinct hops
    they needed (teacher excluded: every path shares it): hop seconds as first trained,
    whether this run trained the hop or found it in the store, so a search and a grid that
    share a store are charged alike."""
    rows = results.read_json(run_dir, "phases/search.json", []) or []
    seen: set = set()
    out, cum_s = [], 0.0
    for i, r in enumerate(rows):
        m = r.get("metrics") or {}
        for h in (m.get("hop_rows") or [])[1:]:
            if h.get("key") and h["key"] not in seen:
                seen.add(h["key"])
                cum_s += float(h.get("seconds") or 0.0)
        path = ">".join(h["model"] for h in m.get("hop_rows") or [])
        out.append(
            {"trial": i + 1, "path": path, "val_acc": m.get("val_acc"), "cum_s": cum_s,
             "cum_hops": len(seen)}
        )  # fmt: skip
    return pd.DataFrame(out)


def _n_val(run_dir: Path) -> int | None:
    try:
        v = json.loads((run_dir / "versions.json").read_text())["run"]
        from takd_search.data import load_dataset

        ds = load_dataset(v["dataset"], v.get("data_dir"))
        return len(ds.split(v["val_fraction"], v["split_seed"])[1])
    except Exception:
        return None


def claims_section(search: dict, grid: dict, nokd: pd.DataFrame) -> list[str]:
    out = ["## Do TAKD's claims hold here?", ""]
    if not search:
        return out + ["**Missing**: the search run did not finish.", ""]
    test = search["test"]
    summ = search["summary"]
    if "heuristic" in test and "blkd" in test:
        d, h, p, n = paired(test["heuristic"], test["blkd"])
        verdict = "yes" if d - h > 0 else ("no: it is worse" if d + h < 0 else "not shown")
        out.append(
            f"1. **A TA beats BLKD** (the heuristic's path {search['paths']['heuristic']} "
            f"against {search['paths']['blkd']}): {pp(d, h, p)} over {n} seeds: {verdict}."
        )
        best = summ.get("winner")
        if best in test and best != "heuristic":
            d, h, p, n = paired(test[best], test["blkd"])
            verdict = "yes" if d - h > 0 else ("no: it is worse" if d + h < 0 else "not shown")
            out.append(
                f"   The searched winner ({search['paths'][best]}) against BLKD: "
                f"{pp(d, h, p)}: {verdict}."
            )
    if grid:
        bp = grid["by_path"]
        one = bp[bp["n_tas"] == 1]
        multi = bp[bp["n_tas"] >= 2]
        h_ta = summ.get("heuristic_ta")
        if not one.empty and h_ta:
            ranked = list(one["path"])
            h_path = next((p for p in ranked if f">{h_ta}>" in p), None)
            rank = ranked.index(h_path) + 1 if h_path else None
            gap = float(
                one["val_acc"].iloc[0] - one.set_index("path")["val_acc"].get(h_path, np.nan)
            )  # noqa: E501
            if rank == 1:
                verdict = "yes"
            elif gap <= grid["noise"]:
                verdict = (
                    "not shown: its path is within noise of the best, but so is every one-TA "
                    "path (the rule's choice does not matter here)"
                )
            else:
                verdict = "no"
            out.append(
                f"2. **The mean-accuracy rule picks a good TA**: it picks {h_ta}; among the "
                f"one-TA paths of the grid its path ranks {rank} of {len(ranked)} "
                f"({100 * gap:.2f} pp below the best one-TA path, {one['path'].iloc[0]}; "
                f"noise {100 * grid['noise']:.2f} pp): {verdict}."
            )
        if not one.empty and not multi.empty:
            d = float(multi["val_acc"].iloc[0] - one["val_acc"].iloc[0])
            verdict = (
                "yes" if d > grid["noise"] else ("no" if d < -grid["noise"] else "within noise")
            )
            out.append(
                f"3. **Multi-step beats one step**: best multi-TA path {multi['path'].iloc[0]} "
                f"{100 * multi['val_acc'].iloc[0]:.2f} % against best one-TA path "
                f"{one['path'].iloc[0]} {100 * one['val_acc'].iloc[0]:.2f} % val "
                f"({100 * d:+.2f} pp; single seed each, noise {100 * grid['noise']:.2f} pp): "
                f"{verdict}."
            )
        blkd_row = bp[bp["n_tas"] == 0]
        if not blkd_row.empty and not one.empty:
            out.append(
                f"   In the grid, the best path with TAs is "
                f"{100 * (bp['val_acc'].iloc[0] - blkd_row['val_acc'].iloc[0]):+.2f} pp "
                "(val) against the best direct 10 -> 2 distillation."
            )
    return out + [""]


def summary_lines(search: dict, grid: dict, nokd: pd.DataFrame) -> list[str]:
    """The findings in four lines, from the same numbers as the sections below."""
    out = ["## Summary", ""]
    if not nokd.empty:
        m = nokd.groupby("depth")["test_acc"].mean()
        out.append(
            f"- Size matters from scratch, but only at the bottom of the ladder: plain10 "
            f"{100 * m.get(10, np.nan):.2f} %, plain8/6/4 {100 * m.get(8, np.nan):.2f} / "
            f"{100 * m.get(6, np.nan):.2f} / {100 * m.get(4, np.nan):.2f} %, plain2 "
            f"{100 * m.get(2, np.nan):.2f} % (test, 5 seeds): the teacher and the TAs 8 and 6 "
            "are within noise of each other near the ceiling."
        )
    t = search.get("test", {})
    if "blkd" in t and "nokd" in t:
        d, h, p, _ = paired(t["blkd"], t["nokd"])
        word = "helps" if d - h > 0 else ("hurts" if d + h < 0 else "is not shown to help")
        out.append(f"- Distillation {word} the student: BLKD against NoKD {pp(d, h, p)}.")
    best = search.get("summary", {}).get("winner")
    if best in t and "blkd" in t:
        d, h, p, _ = paired(t[best], t["blkd"])
        if d - h > 0:
            word = "help here, as TAKD reports"
        elif d + h < 0:
            word = "hurt here: TAKD's gain is reversed"
        else:
            word = "show no gain here: TAKD's gain is not reproduced at these epochs"
        out.append(
            f"- Teacher assistants {word}: the searched best path against BLKD {pp(d, h, p)}."
        )
    if grid:
        bp = grid["by_path"]
        spread = float(bp["val_acc"].iloc[0] - bp["val_acc"].iloc[-1])
        out.append(
            f"- The exhaustive grid agrees: all 8 paths lie within {100 * spread:.2f} pp "
            f"(validation), inside one validation number's noise ({100 * grid['noise']:.2f} "
            "pp), so any search 'finds' the best path at once."
        )
    return out + [""]


def write_page(args, root: Path, search_dir, grid_dir, nokd: pd.DataFrame, meta: dict) -> str:
    partial = search_dir is None or grid_dir is None or len(nokd) < len(DEPTHS) * args.seeds
    spec = yaml.safe_load((root / "space_search.yaml").read_text())
    lines = [
        "# MNIST-1D benchmark: teacher assistants on the plain CNN ladder"
        + (" (PARTIAL: see the missing parts below)" if partial else ""),
        "",
        "Made by `python bench/mnist1d_study.py "
        + " ".join(a if len(a) < 60 else "'...'" for a in meta["argv"])
        + "` (see its docstring). Every number below is read from the run folders it wrote.",
        "",
        "## Setting",
        "",
        f"- Data: MNIST-1D (Greydanus 2020) generated offline by the `mnist1d` package, "
        f"`{spec['data']['dataset']}`: 10,000 train / 2,500 test signals of 40 points; "
        f"validation fraction {spec['data']['val_fraction']} of train (seeded, stratified), so "
        "8,000 to train on and 2,000 to select on. No augmentation.",
        "- Models: TAKD's plain CNN ladder, CIFAR-10 book, built with Conv1d/MaxPool1d. "
        "Teacher plain10, student plain2, candidate TAs 8, 6, 4 (up to 3 on a path).",
        f"- Training: {spec['train']['epochs']} epochs per hop, batch "
        f"{spec['train']['batch_size']}, SGD lr {spec['train']['lr']} (the space's recipe), "
        f"KD loss (1-alpha) CE + alpha T^2 KL (batchmean). Search: TPE, "
        f"{spec['search']['n_trials']} trials, T in [1, 20] (log), alpha in [0.1, 0.9], one "
        f"(T, alpha) per path. Grid: T in {args.grid_T} x alpha in {args.grid_alpha} for "
        "each of the 8 paths.",
        f"- Confirmation: {args.seeds} seeds for the search's best configuration, BLKD, the "
        f"heuristic's path and NoKD; {args.grid_seeds} for the grid's; the teacher is the "
        "search's (seed 0) throughout, as for a user with one teacher.",
        f"- Machine: {meta['machine']}; shared with other jobs: load average {meta['load0']} "
        f"at the start, {load()} at the end; started {meta['started']}, this page written "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"- Engine: git {meta['git']}." + (f" {args.note}" if args.note else ""),
        "",
    ]
    lines += nokd_section(nokd, args.seeds)
    s_lines, search = confirmed_section(search_dir, "Confirmed methods (the search run)")
    lines += s_lines
    s_any = latest_run(root / "search")
    s_trials = pd.read_csv(s_any / "trials.csv") if s_any is not None else None
    g_lines, grid = grid_section(latest_run(root / "grid"), search, s_trials)
    lines += g_lines
    if grid_dir is not None:
        gl, _ = confirmed_section(grid_dir, "Confirmed methods (the grid run)")
        lines += gl
    lines += claims_section(search, grid, nokd)
    at = lines.index("## Setting")
    lines[at:at] = summary_lines(search, grid, nokd)
    if args.default_run:
        d = Path(args.default_run)
        dl, _ = confirmed_section(
            d if (d / "summary.json").is_file() else None,
            "The README's first run (`mnist1d_cnn_mlp`, as shipped)",
        )
        lines += dl
        if (d / "summary.json").is_file():
            wall = json.loads((d / "summary.json").read_text())["compute"]["wall_seconds"]
            lines += [f"Run wall time {wall:.0f} s. {args.default_run_note}", ""]
    return "\n".join(lines) + "\n"


def git_rev() -> str:
    """'<commit> on branch <branch>, based on main <merge-base>' of this checkout."""

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *a], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head, branch = git("rev-parse", "--short", "HEAD"), git("branch", "--show-current")
        base = git("rev-parse", "--short", git("merge-base", "HEAD", "main"))
        return f"{head} on branch {branch or '?'}, based on main {base}"
    except Exception:
        return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="/tmp/takd-mnist1d-study", help="run folders and store")
    p.add_argument("--space", default="mnist1d_plain")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, help="epochs per hop (default: the space's)")
    p.add_argument("--grid-seeds", type=int, default=1, help="confirmation seeds of the grid")
    p.add_argument("--grid-T", type=float, nargs="+", default=[2.0, 8.0])
    p.add_argument("--grid-alpha", type=float, nargs="+", default=[0.5, 0.9])
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--write-only", action="store_true", help="only (re)write the page")
    p.add_argument("--skip", nargs="*", default=[], choices=["search", "grid", "nokd"])
    p.add_argument("--only-nokd", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--default-run", help="a finished `run --space mnist1d_cnn_mlp` folder")
    p.add_argument("--default-run-note", default="", help="how and where it was measured")
    p.add_argument("--note", default="", help="a line on how the runs were made, for the page")
    args = p.parse_args(argv)
    argv_shown = [a for a in (argv if argv is not None else sys.argv[1:])]

    t0 = time.perf_counter()
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    meta_file = root / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    meta.setdefault("load0", load())
    meta.setdefault("started", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    meta.setdefault("wall0", 0.0)
    meta.update(machine=machine(), git=git_rev(), argv=argv_shown)
    store = root / "store"
    os.environ.pop("TAKD_STORE", None)
    src = find_space(args.space)
    # the search confirms its best configuration, BLKD, the heuristic and NoKD with every
    # seed; the grid, whose job is the best path by validation and the compute comparison,
    # confirms its top configuration with `--grid-seeds` seeds (CPU time is what limits this)
    search_space = space_copy(src, root / "space_search.yaml", args.seeds, args.epochs, top_k=1)
    grid_src = space_copy(src, root / "space_grid_src.yaml", args.grid_seeds, args.epochs, top_k=1)
    gspace = grid_space(grid_src, root / "space_grid.yaml", args.grid_T, args.grid_alpha)
    print(f"# {meta['machine']}; load {load()}", flush=True)
    if args.only_nokd:  # the child process started below
        import torch

        torch.set_num_threads(1)  # one core: the runs beside it have the other
        nokd_seeds(search_space, store, args.seeds, root / "nokd.csv")
        return 0
    if not args.write_only:
        child = None
        if "nokd" not in args.skip:  # one process beside the runs; the store shares seed 0
            cmd = [sys.executable, __file__, "--only-nokd", "--root", str(root)]
            cmd += ["--space", args.space, "--seeds", str(args.seeds)]
            cmd += ["--epochs", str(args.epochs)] if args.epochs else []
            child = subprocess.Popen(cmd, stdout=open(root / "nokd.log", "a"), stderr=-2)
        if "search" not in args.skip:
            run_space("search", search_space, root / "search", store, root / "search.log")
        if "grid" not in args.skip:
            run_space("grid", gspace, root / "grid", store, root / "grid.log")
        if child is not None:
            print(f"# nokd: exit {child.wait()}", flush=True)
    nokd_csv = root / "nokd.csv"
    nokd = pd.read_csv(nokd_csv) if nokd_csv.is_file() else pd.DataFrame()
    meta["wall0"] = meta["wall0"] + (0 if args.write_only else time.perf_counter() - t0)
    meta["wall"] = meta["wall0"]
    meta_file.write_text(json.dumps(meta))
    page = write_page(
        args, root, finished_run(root / "search"), finished_run(root / "grid"), nokd, meta
    )
    Path(args.out).write_text(page)
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of a whole small search, with hop reuse, without it, and as an exhaustive grid.

What is measured
----------------
Three end-to-end runs of `takd-search run` on the shipped `digits_vgg` space (plain 10 -> 2
on scikit-learn digits, TAs {8, 6, 4}), each a subprocess with its own `--results` folder
(and hop store) in a temporary directory, all at the same `--epochs`:

* search: `--space digits_vgg --trials N` with the hop store (fresh, empty);
* no store: the same command with `--no-store`: every hop of every trial is trained,
  nothing is shared between trials or phases;
* grid: the exhaustive grid of the space. The shipped space searches T and alpha over
  continuous ranges, which no grid covers; the grid run uses a temporary copy of the
  space file with `sampler: grid` and `--grid-T` x `--grid-alpha` choices (default
  T in {2, 4, 8}, alpha in {0.3, 0.7}), so it tries every one of the 8 paths with every
  (T, alpha): 8 x 6 = 48 search trials, with the hop store (fresh, empty);
* grid no store (only with `--grid-no-store`): the same grid with `--no-store`.

Each run is the whole procedure: Ray start, NoKD, search, BLKD and seed confirmation
(confirmation retrains the top paths, BLKD, the heuristic path and NoKD with fresh seeds,
so its teacher hops can never come from the search; every run confirms 18 trials, though
which paths depends on what its search found). Printed per run: wall seconds of the
subprocess, the run's own wall seconds (summary.json), trials per phase, hops trained and
reused (summed over every phase's trials), and the wall-time ratio against the search;
then, per phase, its trials' summed wall time and the hops trained per model. With
`--reps 2` or more the runs alternate (A/B/C, then C/B/A) and the table shows medians.

Usage:
    python bench/sweep.py                                   # epochs 20, trials 8
    python bench/sweep.py --epochs 5 --trials 4 --no-grid   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine  # noqa: E402

from takd_search.config import find_space  # noqa: E402

PHASES = ("nokd", "search", "blkd", "confirm")


def grid_space(src: Path, dest: Path, T: list[float], alpha: list[float]) -> Path:
    """A copy of the space file with sampler: grid and choice lists for T and alpha."""
    spec = yaml.safe_load(src.read_text())
    spec["name"] = f"{spec.get('name') or src.stem}_grid"
    spec["distill"]["T"] = [float(t) for t in T]
    spec["distill"]["alpha"] = [float(a) for a in alpha]
    spec["distill"]["per_hop"] = False
    spec["search"]["sampler"] = "grid"
    # every point of the grid: a TA on/off flag per candidate (the repair maps the 2^k flag
    # sets onto the paths) times every (T, alpha). Set explicitly: an unset n_trials falls
    # back to the spec's default (16), which would stop the grid part-way.
    spec["search"]["n_trials"] = 2 ** len(spec["models"]["candidates"]) * len(T) * len(alpha)
    spec["search"].pop("time_budget_s", None)
    dest.write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def run_cli(label: str, args: list[str], results: Path, log: Path) -> dict:
    """Run `takd-search run ARGS --results RESULTS`; returns timings and counts."""
    env = {k: v for k, v in os.environ.items() if k != "TAKD_STORE"}
    cmd = [sys.executable, "-m", "takd_search.cli", "run", *args, "--new"]
    cmd += ["--results", str(results)]
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"{label} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    run_dir = next(d for d in results.iterdir() if (d / "summary.json").exists())
    return read_run(run_dir, wall, log.read_text())


def read_run(run_dir: Path, wall: float, log_text: str) -> dict:
    """Counts and timeline of a finished run folder; `wall`: its command's wall seconds."""
    summary = json.loads((run_dir / "summary.json").read_text())
    trials, trained, reused, phases = {}, 0, 0, {}
    for ph in PHASES:
        rows = json.loads((run_dir / "phases" / f"{ph}.json").read_text())
        trials[ph] = len(rows)
        trained += sum(r["metrics"].get("hops_trained", 0) for r in rows)
        reused += sum(r["metrics"].get("hops_reused", 0) for r in rows)
        models: Counter = Counter()
        for r in rows:
            for h in r["metrics"].get("hop_rows", []):
                if h["status"] == "trained":
                    models[h["model"]] += 1
        # Tune's per-result `timestamp` (whole seconds) and `time_total_s` (from the trial
        # actor's start) place each trial on the run's timeline
        spans = [
            (r["metrics"]["timestamp"] - r["metrics"]["time_total_s"], r["metrics"]["timestamp"])
            for r in rows
            if "timestamp" in r["metrics"] and "time_total_s" in r["metrics"]
        ]
        phases[ph] = {
            "trials": len(rows),
            "start": min((a for a, _ in spans), default=None),
            "end": max((b for _, b in spans), default=None),
            "actor_s": sum(
                r["metrics"].get("time_total_s", 0.0) - r["metrics"].get("wall_seconds", 0.0)
                for r in rows
            ),
            "trial_s": sum(r["metrics"].get("wall_seconds", 0.0) for r in rows),
            "trained": dict(models),
        }
    m = re.search(r"up to (\d+) trials? at once", log_text)
    return {
        "wall": wall,
        "concurrency": int(m.group(1)) if m else 1,
        "run_wall": summary["compute"]["wall_seconds"],
        "trials": trials,
        "trained": trained,
        "reused": reused,
        "phases": phases,
    }


def overheads(r: dict) -> str:
    """One line: where the run's wall time went besides training, from its timeline."""
    ph = [r["phases"][p] for p in PHASES if r["phases"][p]["start"] is not None]
    span = ph[-1]["end"] - ph[0]["start"]
    gaps = sum(max(0.0, b["start"] - a["end"]) for a, b in zip(ph, ph[1:]))
    actor = sum(p["actor_s"] for p in ph) / r["concurrency"]
    busy = sum(p["trial_s"] for p in ph) / r["concurrency"]
    idle = span - gaps - actor - busy
    return (
        f"wall {r['wall']:6.1f} = training {busy:5.1f} + outside {r['wall'] - span:4.1f} "
        f"+ gaps {gaps:4.1f} + actor {actor:4.1f} + idle {idle:4.1f}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="digits_vgg")
    p.add_argument("--trials", type=int, default=8, help="search trials (fixed count)")
    p.add_argument("--epochs", type=int, default=20, help="epochs per hop (the space's own: 20)")
    p.add_argument("--grid-T", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    p.add_argument("--grid-alpha", type=float, nargs="+", default=[0.3, 0.7])
    p.add_argument("--no-grid", action="store_true", help="skip the grid run")
    p.add_argument(
        "--grid-no-store", action="store_true", help="also run the grid with --no-store (slow)"
    )
    p.add_argument("--reps", type=int, default=1, help="runs of each set-up (alternating)")
    p.add_argument("--keep", help="keep run folders and logs here instead of a temp dir")
    args = p.parse_args(argv)

    print(f"# {machine()}; {time.strftime('%Y-%m-%d %H:%M:%S')}; load average at start {load()}")
    print(
        f"# space {args.space}, {args.trials} search trials, {args.epochs} epochs/hop; grid "
        f"T {args.grid_T} x alpha {args.grid_alpha}; reps {args.reps}"
    )
    base = ["--space", args.space, "--epochs", str(args.epochs)]
    with tempfile.TemporaryDirectory(prefix="takd-bench-sweep-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        setups = {
            "search": base + ["--trials", str(args.trials)],
            "no store": base + ["--trials", str(args.trials), "--no-store"],
        }
        if not args.no_grid:
            gfile = grid_space(
                find_space(args.space), root / "grid_space.yaml", args.grid_T, args.grid_alpha
            )
            setups["grid"] = ["--space", str(gfile), "--epochs", str(args.epochs)]
            if args.grid_no_store:
                setups["grid no store"] = setups["grid"] + ["--no-store"]
        runs: dict[str, list[dict]] = {k: [] for k in setups}
        for rep in range(args.reps):
            order = list(setups) if rep % 2 == 0 else list(reversed(setups))
            for name in order:
                tag = f"{name.replace(' ', '_')}-{rep}"
                r = run_cli(name, setups[name], root / tag, root / f"{tag}.log")
                runs[name].append(r)
                print(
                    f"# rep {rep + 1} {name}: {r['wall']:.1f} s, trials {r['trials']}, "
                    f"{r['trained']} hops trained, {r['reused']} reused",
                    flush=True,
                )

    med = {k: statistics.median(r["wall"] for r in v) for k, v in runs.items()}
    head = (
        f"{'set-up':<13} {'trials (nokd/search/blkd/confirm)':>34} {'hops trained':>12} "
        f"{'reused':>6} {'wall s':>7} {'run s':>6} {'x search':>8}"
    )
    print()
    print(head)
    print("-" * len(head))
    for name, rs in runs.items():
        r = rs[0]
        t = "/".join(str(r["trials"][ph]) for ph in PHASES)
        run_s = statistics.median(x["run_wall"] for x in rs)
        print(
            f"{name:<13} {t:>34} {r['trained']:>12} {r['reused']:>6} {med[name]:>7.1f} "
            f"{run_s:>6.1f} {med[name] / med['search']:>8.2f}"
        )
    print(
        f"\nno store / search = {med['no store'] / med['search']:.2f}x (target >= 3x)"
        + (f"; grid / search = {med['grid'] / med['search']:.2f}x" if "grid" in med else "")
    )
    print("\nwhere the time goes (first rep): trial-seconds = sum of the phase's trials' wall")
    print("time (2 run at once); hops trained per model")
    for name, rs in runs.items():
        for ph, info in rs[0]["phases"].items():
            models = " ".join(f"{m}:{n}" for m, n in sorted(info["trained"].items()))
            print(
                f"  {name:<13} {ph:<8} {info['trials']:>3} trials {info['trial_s']:>7.1f} "
                f"trial-s  {models}"
            )
    print("\nwall time not spent training (first rep), seconds: outside = process and Ray")
    print("start/stop, data load (wall minus the trials' timeline); gaps = between phases;")
    print("actor = trial actors starting (imports) before run_trial; idle = free trial slots")
    print("inside phases (concurrency x span - busy, / concurrency); timestamps are whole seconds")
    for name, rs in runs.items():
        print(f"  {name:<13} " + overheads(rs[0]))
    print(f"# load average at end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

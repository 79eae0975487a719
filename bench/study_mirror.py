"""study.db kept live: rebuilt after every finished trial (before) against one append per
trial (now), side by side in one run.

What is measured
----------------
1. A whole in-process search, twice per set-up on the same store: a cold store (every hop
   trained) and then warm (every hop reused, so the mirror is nearly all that is left).
   The space is tests/test_search_runners.py's: plain6 -> plain2 on digits, 4 proposals
   per procedure, 28 trials over 6 phases, 2 epochs per hop.
   - before: a watcher that, like the old LiveMirror, rewrites the whole study.db from
     every finished phase plus this phase's rows so far, after every trial;
   - now: `study.LiveMirror`, one `add_trial` per finished trial of a searched phase.
   The set-ups alternate (before/now, now/before) so load drift hits both alike.
2. The cost of mirroring the n-th trial of a searched phase (n = 25, 100, 400: that run's
   search rows repeated): a rebuild of the phase's n rows against one append.

Usage:
    python bench/study_mirror.py            # 1 rep of each set-up
    python bench/study_mirror.py --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine  # noqa: E402

from takd_search.search import session, study  # noqa: E402
from takd_search.search.run import run_search  # noqa: E402
from takd_search.search.run_dir import load_done  # noqa: E402

# the space of the runner-agreement tests: one definition for the test and this bench
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_search_runners import SPACE  # noqa: E402


class Rebuild:
    """The old live mirror: the whole file rebuilt from every finished phase and this
    phase's rows so far, after every trial."""

    def __init__(self, run_dir, spaces: dict):
        self.run_dir, self.spaces, self.rows = Path(run_dir), spaces, {}

    def trial(self, phase: str, row: dict) -> None:
        rows = self.rows.setdefault(phase, [])
        rows.append(row)
        study.mirror(self.run_dir, {**load_done(self.run_dir), phase: rows}, self.spaces)

    def close(self) -> None:
        pass


def one_search(root: Path, tag: str, store: Path) -> tuple[float, Path]:
    space = root / "tiny.yaml"
    space.write_text(SPACE)
    t0 = time.perf_counter()
    run_dir = run_search(
        str(space), results_dir=root / tag, store_root=store, runner="inprocess",
        write_report=False,
    )  # fmt: skip
    return time.perf_counter() - t0, run_dir


def searches(root: Path, setup: str, rep: int) -> dict:
    session.LiveMirror = Rebuild if setup == "before" else study.LiveMirror
    store = root / f"store-{setup}-{rep}"
    cold, run_dir = one_search(root, f"{setup}-{rep}-cold", store)
    warm, _ = one_search(root, f"{setup}-{rep}-warm", store)
    return {"cold": cold, "warm": warm, "run_dir": run_dir}


def nth_trial(run_dir: Path, spaces: dict, n: int) -> tuple[float, float]:
    """Seconds to mirror the n-th trial of the search phase: rebuild vs append."""
    rows = json.loads((run_dir / "phases" / "search.json").read_text())
    many = [dict(r, trial_number=i) for i, r in zip(range(n), rows * (n // len(rows) + 1))]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        study.mirror(Path(d), {"search": many}, spaces)
        rebuild = time.perf_counter() - t0
        live = study.LiveMirror(Path(d), spaces)
        live.trial("search", many[0])  # opens the storage and the study
        t0 = time.perf_counter()
        live.trial("search", many[-1])
        append = time.perf_counter() - t0
        live.close()
    return rebuild, append


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("TAKD_SEARCH_RUNNER", "inprocess")
    print(f"# {machine()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load average at start {load()}")
    out = {"before": [], "now": []}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for rep in range(a.reps):
            order = ("before", "now") if rep % 2 == 0 else ("now", "before")
            for setup in order:
                r = searches(root, setup, rep)
                out[setup].append(r)
                print(f"# rep {rep + 1} {setup}: cold {r['cold']:.1f} s, warm {r['warm']:.1f} s")
        session.LiveMirror = study.LiveMirror
        print("| set-up | cold store, s | warm store, s |")
        print("|---|---:|---:|")
        med = {}
        for setup in ("before", "now"):
            med[setup] = {k: statistics.median(r[k] for r in out[setup]) for k in ("cold", "warm")}
            print(f"| {setup} | {med[setup]['cold']:.1f} | {med[setup]['warm']:.1f} |")
        print(
            f"| before / now | {med['before']['cold'] / med['now']['cold']:.1f}x | "
            f"{med['before']['warm'] / med['now']['warm']:.1f}x |"
        )
        from takd_search.search.plan import make_plan

        p = make_plan(str(root / "tiny.yaml"), overrides=None, results_dir=root / "p",
                      store_root=None, no_store=True, resume=None, device=None)  # fmt: skip
        from takd_search.search.space import PathSpace

        spaces = {"search": PathSpace(p.space, p.sizes, classes=p.ds.num_classes)}
        print("\n| n-th trial of the search phase | rebuild, s | append, s | ratio |")
        print("|---:|---:|---:|---:|")
        for n in (25, 100, 400):
            rebuild, append = nth_trial(out["now"][0]["run_dir"], spaces, n)
            print(f"| {n} | {rebuild:.2f} | {append:.3f} | {rebuild / append:.0f}x |")
    print(f"# load average at end {load()}")


if __name__ == "__main__":
    main()

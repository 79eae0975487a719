"""Engine hop throughput against torch's intra-op thread count, on an idle and a busy CPU.

Why: on the shared 2-core machine `hop_throughput.py` saw the engine's plain10 -> plain2
rate swing from ~8,000 img/s (quiet reps) to ~400 img/s (busy reps) while the reference
loop only moved from ~900 to ~200. A hop of a small student is thousands of small ops,
each split over torch's OpenMP threads and joined at a barrier; when another process holds
one of the cores, every barrier waits for a descheduled thread.

What is measured: images/s of `train_hop` (banked parent logits, as in hop_throughput's
"engine") with `torch.set_num_threads(t)` for each t in `--threads`, alternating t rep
after rep after a warm-up, first with the CPU as it is, then with `--busy` competing
busy-loop processes started by this script (and stopped by it, by pid, at the end). Each
row is the median over reps; the ratio is against the first thread count in the same rep.

Usage:
    python bench/threads_under_load.py --pair plain --busy 1 --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine  # noqa: E402
from hop_throughput import (  # noqa: E402
    PAIRS,
    banked_teacher,
    calibrated_parent,
    engine_epoch,
    synthetic_cifar,
)

from takd_search import models  # noqa: E402
from takd_search.engine.augment import DeviceData  # noqa: E402

BUSY = "while True: pass"


def measure(data, make_child, teacher, batch, threads, reps) -> dict[int, list[float]]:
    rates: dict[int, list[float]] = {t: [] for t in threads}
    for t in threads:  # warm-up at every thread count
        torch.set_num_threads(t)
        engine_epoch(make_child, data, batch, teacher)
    for rep in range(reps):
        for t in threads if rep % 2 == 0 else threads[::-1]:
            torch.set_num_threads(t)
            t0 = time.perf_counter()
            n = engine_epoch(make_child, data, batch, teacher)
            rates[t].append(n / (time.perf_counter() - t0))
    return rates


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pair", default="plain", choices=list(PAIRS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    p.add_argument("--busy", type=int, default=1, help="competing busy-loop processes")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)

    print(f"# {machine()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load average at start {load()}")
    pf, pd, cf, cd = PAIRS[args.pair]
    ds = synthetic_cifar(args.n_train, 100)
    data = DeviceData(ds, "cpu", val_fraction=0.01, split_seed=0)
    parent = calibrated_parent(models.create_model(pf, pd, 10, ds.input_shape), data)
    teacher = banked_teacher(parent, data)
    make_child = lambda: models.create_model(cf, cd, 10, ds.input_shape)  # noqa: E731
    default_threads = torch.get_num_threads()

    results = {}
    results["as is"] = measure(data, make_child, teacher, args.batch, args.threads, args.reps)
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    try:
        time.sleep(1.0)
        label = f"+{args.busy} busy"
        results[label] = measure(data, make_child, teacher, args.batch, args.threads, args.reps)
    finally:
        for proc in procs:
            proc.kill()  # only the processes started above, by their pid
            proc.wait()
    torch.set_num_threads(default_threads)

    print(f"# {pf}{pd} -> {cf}{cd}, batch {args.batch}, {args.n_train} images, reps {args.reps}")
    head = f"{'CPU':<9} {'threads':>7} {'img/s':>8} {'(min-max)':>13} {'x first':>7}"
    print(head)
    print("-" * len(head))
    for cpu, rates in results.items():
        first = rates[args.threads[0]]
        for t, rs in rates.items():
            ratio = statistics.median(r / f for r, f in zip(rs, first))
            spread = f"{min(rs):.0f}-{max(rs):.0f}"
            print(f"{cpu:<9} {t:>7} {statistics.median(rs):>8.0f} {spread:>13} {ratio:>7.2f}")
    print(f"# load average at end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

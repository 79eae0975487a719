"""Wall time of the 8 TA paths of plain 10 -> 2 on digits, with and without the hop store.

What is measured
----------------
The eight paths with candidate TAs {8, 6, 4} (10-2, 10-8-2, 10-6-2, 10-4-2, 10-8-6-2,
10-8-4-2, 10-6-4-2, 10-8-6-4-2) are run one after another with `chain.run_chain`, all
with the same seed and hop settings (T=4, alpha=0.5), in two set-ups:

* no store: `Store(None)`: every hop of every path is trained, and every child computes
  its parent's logits with a live forward pass;
* store: a `Store` in a fresh temporary folder: a hop whose lineage was already trained
  is loaded, and a parent's logits are computed once and banked for all its children.

Printed per set-up: wall seconds (median over reps), hops trained, hops reused, parent
forward passes, child epochs trained and parent passes per child epoch; and the ratio of
wall times. The set-ups alternate (A/B, then B/A, ...) after a warm-up hop, so load drift
on the shared machine hits both alike; the ratio is the median of per-rep ratios.

Why 28 and 16: without a store the 8 paths train 2+3+3+3+4+4+4+5 = 28 hops. With the store,
a hop's key includes its parent's key, so two hops are the same only when their whole
prefix is: the unique hops are the nodes of the prefix tree of the 8 paths: 10 (1),
10>{2,8,6,4} (4), 10>8>{2,6,4} (3), 10>6>{2,4} (2), 10>4>2, 10>8>6>{2,4} (2), 10>8>4>2,
10>6>4>2, 10>8>6>4>2 = 16.

Usage:
    python bench/store_reuse.py                 # 10 epochs per hop, 1 rep of each
    python bench/store_reuse.py --epochs 15 --reps 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine  # noqa: E402

from takd_search.data import load_dataset
from takd_search.engine.augment import DeviceData  # noqa: E402
from takd_search.engine.chain import Context, run_chain
from takd_search.engine.hop import HopParams, TrainConfig
from takd_search.engine.path import parse_path
from takd_search.engine.store import Store
from takd_search.engine.train import train_hop
from takd_search.models import create_model

PATHS = (
    "10-2",
    "10-8-2",
    "10-6-2",
    "10-4-2",
    "10-8-6-2",
    "10-8-4-2",
    "10-6-4-2",
    "10-8-6-4-2",
)


def run_all(data: DeviceData, train: TrainConfig, store: Store, seed: int) -> dict:
    """Run every path through `store`; returns wall seconds and what was done."""
    trained_models: Counter = Counter()
    child_epochs = 0

    def on_event(kind: str, info: dict) -> None:
        nonlocal child_epochs
        if kind == "hop_end" and info["status"] == "trained":
            trained_models[info["model"]] += 1
            if info.get("parent"):
                child_epochs += train.epochs

    ctx = Context(data, train, store, on_event=on_event)
    hop = HopParams(T=4.0, alpha=0.5)
    t0 = time.perf_counter()
    for path in PATHS:
        run_chain(ctx, parse_path(path, "plain"), hop, seed=seed)
    wall = time.perf_counter() - t0
    st = store.stats
    return {
        "wall": wall,
        "trained": st.trained,
        "reused": st.reused,
        "parent_passes": st.parent_passes,
        "child_epochs": child_epochs,
        "per_model": dict(sorted(trained_models.items())),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10, help="epochs per hop")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reps", type=int, default=1, help="runs of each set-up (alternating)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    print(f"# {machine()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load average at start {load()}")
    print(
        f"# digits, plain 10 -> 2, TAs {{8, 6, 4}}, 8 paths, {args.epochs} epochs/hop, "
        f"batch {args.batch_size}, T=4 alpha=0.5, reps {args.reps}"
    )
    data = DeviceData(load_dataset("digits"), args.device, val_fraction=0.1, split_seed=0)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05)
    # warm-up (not timed): one short hop of the biggest and smallest model
    for depth in (10, 2):
        make = lambda d=depth: create_model("plain", d, data.num_classes, data.input_shape)  # noqa: E731
        train_hop(make, data, TrainConfig(epochs=1, batch_size=args.batch_size))

    runs: dict[str, list[dict]] = {"no store": [], "store": []}
    with tempfile.TemporaryDirectory(prefix="takd-bench-store-") as tmp:
        for rep in range(args.reps):
            order = ["no store", "store"] if rep % 2 == 0 else ["store", "no store"]
            for name in order:
                store = Store(None) if name == "no store" else Store(os.path.join(tmp, f"s{rep}"))
                r = run_all(data, train, store, args.seed)
                runs[name].append(r)
                print(f"# rep {rep + 1} {name}: {r['wall']:.1f} s, trained {r['per_model']}")
                sys.stdout.flush()

    ratios = [a["wall"] / b["wall"] for a, b in zip(runs["no store"], runs["store"])]
    head = (
        f"{'set-up':<9} {'wall s':>7} {'trained':>7} {'reused':>6} {'parent passes':>13} "
        f"{'child epochs':>12} {'passes/child epoch':>18}"
    )
    print()
    print(head)
    print("-" * len(head))
    for name, rs in runs.items():
        r = rs[0]  # counts are the same every rep; the wall time is the median
        per = r["parent_passes"] / r["child_epochs"] if r["child_epochs"] else float("nan")
        print(
            f"{name:<9} {statistics.median(x['wall'] for x in rs):>7.1f} {r['trained']:>7} "
            f"{r['reused']:>6} {r['parent_passes']:>13} {r['child_epochs']:>12} {per:>18.3f}"
        )
    print(
        f"\nwall time no store / store = {statistics.median(ratios):.2f}x "
        f"(per rep: {', '.join(f'{x:.2f}' for x in ratios)}; target >= 2.5x)"
    )
    print(f"# load average at end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batched crop+flip augmentation: the engine's `augment.apply_views` against a proposed
variant that does the same work in one gather on uint8.

What is measured
----------------
Images per second of building normalised, augmented training batches (the engine's
`DeviceData.train_batch`: gather, pad-4 crop, flip, normalise), for

* current: `DeviceData.train_batch` as shipped (float pad, crop gather, flip via where);
* proposed: `fast_train_batch` below: pad and gather the uint8 images, with the flip
  folded into the column index, then one float multiply-add.

Both must give bit-identical batches for the same views (checked before timing): the
logit banks depend on the views being the same whatever code builds them. The two
alternate rep after rep after a warm-up; the table shows median rates and their ratio.

Usage:
    python bench/augment_micro.py --n 5000 --batch 128 --reps 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from hop_throughput import synthetic_cifar  # noqa: E402

from takd_search.engine.augment import PAD, DeviceData, Views  # noqa: E402


def fast_train_batch(data: DeviceData, idx: torch.Tensor, views: Views) -> torch.Tensor:
    """The proposed `DeviceData.train_batch` for crop/flip views (no resized crop)."""
    x = data.x_train[idx.to(data.device)]
    if views.identity:
        return data.normalize(x)
    b, _, h, w = x.shape
    dev = x.device
    rows = torch.arange(h, device=dev).expand(b, h)
    cols = torch.arange(w, device=dev).expand(b, w)
    if views.shift is not None:
        shift = views.shift[idx].to(dev)
        x = F.pad(x, (PAD, PAD, PAD, PAD))  # uint8, zero padding
        rows = rows + shift[:, :1]
        cols = cols + shift[:, 1:]
    if views.flip is not None:
        cols = torch.where(views.flip[idx].to(dev)[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None]
    out = x[batch, :, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C] uint8
    return data.normalize(out.permute(0, 3, 1, 2))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=5000, help="generated 3x32x32 training images")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--reps", type=int, default=7, help="timed epochs per variant")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    data = DeviceData(synthetic_cifar(args.n, 20), args.device, val_fraction=0.01)
    views = data.views(0, 1)
    for i in range(0, data.n_train, args.batch):  # identical output, batch by batch
        idx = views.order[i : i + args.batch]
        if not torch.equal(data.train_batch(idx, views), fast_train_batch(data, idx, views)):
            raise SystemExit("proposed augmentation differs from the engine's: not timed")

    def epoch(fn) -> float:
        t0 = time.perf_counter()
        for i in range(0, data.n_train, args.batch):
            fn(views.order[i : i + args.batch], views)
        if data.device.type == "cuda":
            torch.cuda.synchronize()
        return data.n_train / (time.perf_counter() - t0)

    variants = {
        "current": data.train_batch,
        "proposed": lambda idx, v: fast_train_batch(data, idx, v),
    }
    for fn in variants.values():
        epoch(fn)  # warm-up
    rates = {k: [] for k in variants}
    for rep in range(args.reps):
        for name in variants if rep % 2 == 0 else reversed(variants):
            rates[name].append(epoch(variants[name]))
    print(f"# {machine()}")
    print(f"# {args.n} images, batch {args.batch}, {args.reps} reps, device {args.device}")
    print(f"{'variant':<9} {'img/s':>9} {'x current':>9}")
    cur = rates["current"]
    for name, rs in rates.items():
        ratio = statistics.median(r / c for r, c in zip(rs, cur))
        print(f"{name:<9} {statistics.median(rs):>9.0f} {ratio:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

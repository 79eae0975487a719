"""Images per second of one distillation hop: our engine against a TAKD-style reference loop.

What is measured
----------------
Training throughput (training images per wall second) of one hop parent -> child, for:

* ref: a loop written the way the published TAKD code works: a torch ``Dataset`` that
  augments one image at a time (ToTensor, pad-4 random crop, random horizontal flip,
  Normalize: what torchvision's RandomCrop/RandomHorizontalFlip do, written in torch since
  torchvision is not installed), behind a ``DataLoader`` with shuffle and 2 workers
  (not persistent, as in the published code), the parent's forward pass (eval mode,
  no_grad) on every batch, fp32, default memory format, SGD momentum 0.9, wd 1e-4.
* engine: ``DeviceData`` + ``distill.train_hop`` with a teacher callable serving banked
  logits (the steady state once the parent's logit bank exists, as ``chain`` does on a
  bank hit: the fp16 bank is rounded and moved to the device once per epoch).
* engine (no bank): the same, but the callable computes the parent's logits live with
  ``distill.train_logits`` once per epoch (what ``chain`` does on a bank miss).

A measurement cell is (method, batch size): by default ref at batch 128 (the published
code's batch), engine at 128, 256 and 512, engine (no bank) at 128. One timed run of a cell
is one epoch over the same N training images. The engine's time is the whole
``train_hop`` call, so it also includes what the reference loop does not do: model
construction, the per-epoch validation pass (a 1% split) and the final test pass
(``--n-test`` images). Every cell is warmed up first (a short run on a few hundred images,
not counted); then each rep runs every cell once, in alternating order (A/B/C, then C/B/A),
and the table reports the median per-rep rate and the median of the per-rep ratios
cell / ref@128, measured side by side in this one process run. The CPU is shared, so only
the ratios are meaningful; absolute images/s move with the load.

Data: generated uint8 images of CIFAR shape (3x32x32, 10 classes, fixed seed): the speed of
a hop does not depend on pixel values, and no download is needed.

Usage:
    python bench/hop_throughput.py                          # CPU, both pairs, batches 128 256 512
    python bench/hop_throughput.py --pairs resnet --n-train 2500 --reps 3
    python bench/hop_throughput.py --device cuda --n-train 45000 --classes 100  # on a GPU
    python bench/hop_throughput.py --device cuda --compile default  # engine child compiled

``--compile MODE`` wraps the engine's child in ``torch.compile(mode=MODE)`` (the reference
loop stays eager); the engine itself never compiles. bench/gpu.sh runs this on a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine  # noqa: E402

from takd_search import models  # noqa: E402
from takd_search.data import Dataset
from takd_search.engine.augment import DeviceData
from takd_search.engine.distill import train_logits
from takd_search.engine.hop import TrainConfig
from takd_search.engine.train import HopDidNotLearn, train_hop

PAIRS = {
    "plain": ("plain", 10, "plain", 2),  # CIFAR-10 book, plain10 -> plain2
    "resnet": ("resnet", 110, "resnet", 8),
}
T, ALPHA = 4.0, 0.5
SEED = 0


# ---- data ----------------------------------------------------------------------------------


def synthetic_cifar(n_train: int, n_test: int, classes: int = 10, seed: int = 0) -> Dataset:
    """A Dataset of random uint8 3x32x32 images with CIFAR's augmentation ('crop_flip')."""
    g = torch.Generator().manual_seed(seed)
    x_tr = torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g)
    x_te = torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g)
    # balanced labels, so the stratified validation split always works
    y_tr = torch.arange(n_train) % classes
    y_te = torch.arange(n_test) % classes
    xf = x_tr.float() / 255.0
    mean = tuple(float(v) for v in xf.mean((0, 2, 3)))
    std = tuple(float(v) for v in xf.std((0, 2, 3)))
    return Dataset(
        name=f"synthetic-cifar-{n_train}",
        x_train=x_tr,
        y_train=y_tr,
        x_test=x_te,
        y_test=y_te,
        num_classes=classes,
        mean=mean,
        std=std,
        augment="crop_flip",
        class_names=tuple(str(i) for i in range(classes)),
        fingerprint=f"bench-synthetic-cifar-{n_train}-{n_test}-{seed}",
    )


class PerSampleCifar(TorchDataset):
    """TAKD's training transform, one image at a time: ToTensor, RandomCrop(32, padding=4),
    RandomHorizontalFlip, Normalize (torchvision's order of work, in plain torch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean, std):
        self.x, self.y = x, y
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = self.x[i].float().div(255.0)  # ToTensor
        padded = F.pad(img, (4, 4, 4, 4))  # RandomCrop(32, padding=4)
        dy, dx = torch.randint(0, 9, (2,)).tolist()
        img = padded[:, dy : dy + 32, dx : dx + 32]
        if torch.rand(1).item() < 0.5:  # RandomHorizontalFlip
            img = img.flip(2)
        img = (img - self.mean) / self.std  # Normalize
        return img, int(self.y[i])


# ---- the three methods ----------------------------------------------------------------------


def ref_epoch(parent, make_child, data: DeviceData, batch: int, workers: int, limit=None) -> int:
    """One TAKD-style epoch over data's training images; returns images trained on."""
    ds = PerSampleCifar(data.x_train.cpu(), data.y_train.cpu(), data.ds.mean, data.ds.std)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)
    torch.manual_seed(SEED)
    child = make_child().to(data.device)
    opt = torch.optim.SGD(child.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    parent.eval()
    child.train()
    seen = 0
    for step, (x, y) in enumerate(loader):
        x, y = x.to(data.device), y.to(data.device)
        with torch.no_grad():
            t = parent(x)
        s = child(x)
        kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
        loss = (1 - ALPHA) * F.cross_entropy(s, y) + ALPHA * T * T * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
        if limit is not None and step + 1 >= limit:
            break
    if data.device.type == "cuda":
        torch.cuda.synchronize()
    return seen


def compiled(make_child, mode: str | None):
    """`make_child` whose model is wrapped in ``torch.compile(mode=mode)``; as is for None.

    train_hop moves the wrapper to the device and to channels_last like any module, and its
    state_dict keys gain an ``_orig_mod.`` prefix, which stays inside the hop.
    """
    if mode is None:
        return make_child
    return lambda: torch.compile(make_child(), mode=None if mode == "default" else mode)


def engine_epoch(make_child, data: DeviceData, batch: int, teacher) -> int:
    """One ``train_hop`` epoch with `teacher` (epoch -> logits); returns images trained on."""
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=0.1, weight_decay=1e-4, nesterov=False)
    try:
        train_hop(make_child, data, cfg, seed=SEED, teachers=[teacher], T=T, alpha=ALPHA)
    except HopDidNotLearn:  # random labels cannot be learned; the epoch ran all the same
        pass
    if data.device.type == "cuda":
        torch.cuda.synchronize()
    return data.n_train * cfg.epochs


def banked_teacher(parent, data: DeviceData):
    """A bank hit, as ``chain.teacher_logits`` serves it: the parent's fp16 logits for the
    epoch's views (computed here once, before any timing), moved to the device and
    widened to fp32 when the hop asks for them."""
    bank = train_logits(parent, data, data.views(SEED, 1)).to("cpu", torch.float16)
    return lambda epoch: bank.to(data.device, torch.float16).float()


def live_teacher(parent, data: DeviceData):
    """A bank miss: the parent's forward pass over the epoch's views, every epoch."""
    return lambda epoch: train_logits(parent, data, data.views(SEED, epoch)).half().float()


@torch.no_grad()
def calibrated_parent(parent: torch.nn.Module, data: DeviceData, batches: int = 4):
    """The parent in eval mode with BatchNorm running statistics taken from a few training
    batches, as a trained parent has them. (At initialisation the running statistics are
    mean 0 / var 1, and an untrained resnet110 in eval mode then emits logits that overflow
    fp16: the bank would hold inf.) Speed does not depend on the weights."""
    parent = parent.to(data.device)
    for m in parent.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    parent.train()
    views = data.views(SEED, 0)
    for i in range(batches):
        idx = views.order[i * 256 : (i + 1) * 256]
        parent(data.train_batch(idx, views))
    return parent.eval()


# ---- measurement ----------------------------------------------------------------------------


def measure_pair(pair: str, args, ds: Dataset, warm_ds: Dataset) -> list[dict]:
    pf, pd, cf, cd = PAIRS[pair]
    device = torch.device(args.device)
    data = DeviceData(ds, device, val_fraction=args.val_fraction, split_seed=0)
    warm = DeviceData(warm_ds, device, val_fraction=0.1, split_seed=0)
    parent = calibrated_parent(models.create_model(pf, pd, ds.num_classes, ds.input_shape), data)
    if device.type == "cuda":
        parent = parent.to(memory_format=torch.channels_last)  # as distill.load_model does
    make_child = lambda: models.create_model(cf, cd, ds.num_classes, ds.input_shape)  # noqa: E731
    make_engine_child = compiled(make_child, args.compile)
    teachers = {d: banked_teacher(parent, d) for d in (data, warm)}  # one epoch: one bank
    run = {
        "ref": lambda d, b: ref_epoch(parent, make_child, d, b, args.workers),
        "engine": lambda d, b: engine_epoch(make_engine_child, d, b, teachers[d]),
        "engine (no bank)": lambda d, b: engine_epoch(
            make_engine_child, d, b, live_teacher(parent, d)
        ),
    }
    # the cells of one rep: (method, batch); every ratio is against ref at batch 128 (the
    # published code's batch) measured in the same rep
    cells = [("ref", b) for b in sorted({128, *args.ref_batches})]
    cells += [("engine", b) for b in args.batches]
    if not args.skip_no_bank:
        cells += [("engine (no bank)", b) for b in args.no_bank_batches]
    for method, batch in cells:  # warm-up: not counted
        run[method](warm, batch)
    rates: dict[tuple, list[float]] = {c: [] for c in cells}
    for rep in range(args.reps):
        order = cells if rep % 2 == 0 else cells[::-1]  # A/B/C.. then ..C/B/A
        for method, batch in order:
            t0 = time.perf_counter()
            n = run[method](data, batch)
            rates[(method, batch)].append(n / (time.perf_counter() - t0))
        done = ", ".join(f"{m}@{b} {r[-1]:.0f}" for (m, b), r in rates.items())
        print(f"# {pf}{pd} -> {cf}{cd} rep {rep + 1}: {done}", flush=True)
    ref = rates[("ref", 128)]
    rows = []
    for (method, batch), rs in rates.items():
        rows.append(
            {
                "pair": f"{pf}{pd} -> {cf}{cd}",
                "batch": batch,
                "method": method,
                "img/s": statistics.median(rs),
                "min": min(rs),
                "max": max(rs),
                "x ref": statistics.median(r / b for r, b in zip(rs, ref)),
            }
        )
    return rows


HEADER = (
    f"{'pair':<22} {'batch':>5} {'method':<17} {'img/s':>8} {'(min-max)':>15} {'x ref@128':>9}"
)


def _fmt_row(r: dict) -> str:
    spread = f"{r['min']:.0f}-{r['max']:.0f}"
    return (
        f"{r['pair']:<22} {r['batch']:>5} {r['method']:<17} {r['img/s']:>8.0f} "
        f"{spread:>15} {r['x ref']:>9.2f}"
    )


def headline(rows: list[dict]) -> list[str]:
    """Per pair: the engine at batch 128 and at its best batch against ref at batch 128."""
    out = []
    for pair in dict.fromkeys(r["pair"] for r in rows):
        eng = [r for r in rows if r["pair"] == pair and r["method"] == "engine"]
        if not eng:
            continue
        best = max(eng, key=lambda r: r["x ref"])
        at128 = next((r for r in eng if r["batch"] == 128), None)
        line = f"{pair}: engine / ref@128 = "
        if at128:
            line += f"{at128['x ref']:.2f}x at batch 128, "
        line += f"{best['x ref']:.2f}x at the engine's best batch ({best['batch']})"
        out.append(line)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--pairs", nargs="+", default=["plain", "resnet"], choices=list(PAIRS))
    p.add_argument(
        "--batches", nargs="+", type=int, default=[128, 256, 512], help="engine batch sizes"
    )
    p.add_argument(
        "--ref-batches", nargs="+", type=int, default=[128], help="reference batch sizes"
    )
    p.add_argument(
        "--no-bank-batches", nargs="+", type=int, default=[128], help="'engine (no bank)' ones"
    )
    p.add_argument("--n-train", type=int, default=5000, help="generated training images")
    p.add_argument("--classes", type=int, default=10, help="classes of the generated data")
    p.add_argument("--n-test", type=int, default=100, help="test images (engine's final eval)")
    p.add_argument("--n-warm", type=int, default=600, help="images of the warm-up runs")
    p.add_argument(
        "--val-fraction", type=float, default=0.01, help="engine's validation split (per epoch)"
    )
    p.add_argument("--reps", type=int, default=3, help="timed epochs per method and batch")
    p.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    p.add_argument("--skip-no-bank", action="store_true", help="skip 'engine (no bank)'")
    p.add_argument(
        "--compile",
        choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs"],
        help="torch.compile the engine's child with this mode (reduce-overhead: CUDA graphs)",
    )
    p.add_argument("--json", help="also write the table's rows to this JSON file")
    args = p.parse_args(argv)

    print(f"# {machine()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load average at start {load()}")
    print(
        f"# device {args.device}, {args.n_train} generated 3x32x32 images, T={T}, "
        f"alpha={ALPHA}, reps {args.reps} (median), warm-up {args.n_warm} images, "
        f"{args.classes} classes, compile {args.compile or 'no'}"
    )
    ds = synthetic_cifar(args.n_train, args.n_test, args.classes)
    warm_ds = synthetic_cifar(args.n_warm, max(20, args.classes), args.classes, seed=1)
    rows = []
    for pair in args.pairs:
        rows += measure_pair(pair, args, ds, warm_ds)
    print()
    print(HEADER)
    print("-" * len(HEADER))
    for r in rows:
        print(_fmt_row(r))
    print()
    for line in headline(rows):
        print(line)
    print(f"# load average at end {load()}")
    if args.json:
        meta = {"machine": machine(), "device": args.device, "n_train": args.n_train}
        meta |= {"classes": args.classes, "reps": args.reps, "compile": args.compile}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

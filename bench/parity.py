"""Does every network learn? The engine against a plain PyTorch loop, same data and budget.

What is measured
----------------
For every model (plain2..10, resnet8, resnet20, one mlp), every seed and every data set,
test accuracy (%) of one from-scratch hop trained two ways on the same training images,
validation images and test images, with the same recipe (epochs, batch, peak lr, momentum,
nesterov, weight decay, warm-up + cosine per step):

* engine: ``DeviceData`` + ``distill.train_hop`` as the tool runs it (default recipe of
  the data set unless flags override it; test accuracy of the best-validation epoch, which
  is what the tool reports).
* ref: an independent loop written the way a PyTorch user would write it: its own
  shuffling (``torch.randperm`` with its own generator), weight decay on *every*
  parameter, the non-fused ``torch.optim.SGD`` and ``LambdaLR`` warm-up + cosine. It
  reports the last epoch's test accuracy (``ref last``) and, as the engine does, the test
  accuracy of its best-validation epoch (``ref best``).

Models are the project's own (``models.create_model_from_name``), so the comparison is of the
training loops only. Data: scikit-learn's digits (8x8, 1,437 train / 360 test, 10% of
train carved off for validation) and the same digits upsampled to 28x28 (bilinear) written
to an npz file and read by the real ``npz:`` loader.

Each cell prints `engine | ref best | ref last` per seed; the summary says, per model and data
set, the mean over seeds and the largest seed's |engine - ref best| difference. Chance is
10%: a cell below 30% is flagged ``DEAD``.

Usage:
    python bench/parity.py                              # everything, 10 epochs
    python bench/parity.py --datasets digits28 --models plain2 --seeds 0 1 2 --epochs 10
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine  # noqa: E402

from takd_search import models  # noqa: E402
from takd_search.data import load_dataset  # noqa: E402
from takd_search.engine.augment import DeviceData  # noqa: E402
from takd_search.engine.hop import TrainConfig  # noqa: E402
from takd_search.engine.train import TrainingDiverged, train_hop  # noqa: E402
from takd_search.run_path import recipe  # noqa: E402

MODELS = ["plain2", "plain4", "plain6", "plain8", "plain10", "resnet8", "resnet20", "mlp2x256"]


def digits28_npz(path: Path) -> Path:
    """scikit-learn digits upsampled 8x8 -> 28x28 (bilinear), as an MNIST-like npz file."""
    ds = load_dataset("digits")

    def up(x: torch.Tensor) -> np.ndarray:
        y = F.interpolate(x.float(), size=(28, 28), mode="bilinear", align_corners=False)
        return y.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()

    np.savez(
        path,
        x_train=up(ds.x_train),
        y_train=ds.y_train.numpy(),
        x_test=up(ds.x_test),
        y_test=ds.y_test.numpy(),
    )
    return path


def reference_loop(name: str, data: DeviceData, cfg: TrainConfig, seed: int) -> tuple:
    """A plain PyTorch training loop: (test % of the best-val epoch, test % of the last)."""
    torch.manual_seed(seed)
    model = models.create_model_from_name(name, data.num_classes, data.input_shape)
    x_tr = data.normalize(data.x_train)
    y_tr = data.y_train
    x_va, y_va = data.normalize(data.x_val), data.y_val
    x_te, y_te = data.normalize(data.x_test), data.y_test
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    n = len(y_tr)
    per_epoch = math.ceil(n / cfg.batch_size)
    total, warm = per_epoch * cfg.epochs, per_epoch * cfg.warmup_epochs

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    gen = torch.Generator().manual_seed(10_000 + seed)

    def acc(x, y) -> float:
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(x[i : i + 512]) for i in range(0, len(x), 512)])
        model.train()
        return (out.argmax(1) == y).float().mean().item() * 100

    best_val, best_test, test = -1.0, 0.0, 0.0
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        val, test = acc(x_va, y_va), acc(x_te, y_te)
        if val > best_val:
            best_val, best_test = val, test
    return best_test, test


def engine(name: str, data: DeviceData, cfg: TrainConfig, seed: int) -> float:
    """The tool's hop: test % of the best-validation epoch; NaN for a failed hop (it
    diverged or did not learn: the tool stores and reports nothing for it)."""
    make = lambda: models.create_model_from_name(name, data.num_classes, data.input_shape)  # noqa: E731
    try:
        return train_hop(make, data, cfg, seed=seed, evaluate_test=True, name=name).test_acc * 100
    except TrainingDiverged as e:
        print(f"  engine: {e}")
        return float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["digits", "digits28"])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10, help="epochs per hop (both loops)")
    p.add_argument("--batch-size", type=int, help="default: the data set's recipe")
    p.add_argument("--lr", type=float, help="default: the data set's recipe")
    p.add_argument("--warmup-epochs", type=int, help="default: the data set's recipe")
    p.add_argument("--no-ref", action="store_true", help="engine only")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"# {machine()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load average at start {load()}")
    tmp = tempfile.TemporaryDirectory()
    rows = []
    t_start = time.perf_counter()
    for dname in a.datasets:
        if dname == "digits28":
            spec = f"npz:{digits28_npz(Path(tmp.name) / 'digits28.npz')}"
            rname = "npz"
        else:
            spec = rname = dname
        data = DeviceData(load_dataset(spec), "cpu", 0.1, 0)
        over = {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr}
        cfg = recipe(rname, **over, warmup_epochs=a.warmup_epochs)
        print(
            f"# {dname}: {data.n_train} train / {len(data.y_val)} val / {len(data.y_test)} "
            f"test, {data.input_shape}; recipe {cfg}"
        )
        for name in a.models:
            for seed in a.seeds:
                t0 = time.perf_counter()
                e = engine(name, data, cfg, seed)
                rb, rl = (float("nan"),) * 2 if a.no_ref else reference_loop(name, data, cfg, seed)
                flag = " DEAD" if not min(e, e if a.no_ref else rb) >= 30 else ""
                print(
                    f"{dname:9s} {name:9s} seed {seed}: engine {e:5.1f} | ref best {rb:5.1f} | "
                    f"ref last {rl:5.1f}  ({time.perf_counter() - t0:.1f} s){flag}",
                    flush=True,
                )
                rows.append((dname, name, seed, e, rb, rl))
    print(f"\n# total {time.perf_counter() - t_start:.0f} s, load average at end {load()}")
    print(
        "\n| data | model | engine % (seeds) | ref best % (seeds) | ref last % | "
        "mean engine - ref best | max seed abs diff |"
    )
    print("|---|---|---|---|---|---|---|")
    for dname in a.datasets:
        for name in a.models:
            cell = [r for r in rows if r[0] == dname and r[1] == name]
            es, rbs, rls = ([r[i] for r in cell] for i in (3, 4, 5))
            fmt = lambda v: " / ".join(f"{x:.1f}" for x in v)  # noqa: E731
            diff = statistics.mean(es) - statistics.mean(rbs)
            worst = max(abs(x - y) for x, y in zip(es, rbs))
            print(
                f"| {dname} | {name} | {fmt(es)} | {fmt(rbs)} | {fmt(rls)} | "
                f"{diff:+.1f} | {worst:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The issue-25 steps of bench/gpu.sh: one subcommand each, each writing NAME.json into
--dir row by row (a step cut by its time limit keeps the rows it finished).

    repeat      one hop (plain4 -> plain2 distilled, crop+flip views) trained twice from
                the same lineage: are the selected weights bit-identical?
    epochs      per-model epoch time at 45,000 CIFAR-100-shaped images (plain2/4/10,
                resnet8/110; batch 128 and 512), from the engine's own loop: the second
                epoch of a 2-epoch hop on a 1/5 subset, times 5
    hostsync    the same epoch with the host syncs of the old step put back (views on the
                CPU, indices copied per step) against the engine as it is
    concurrent  1/2/4/8 trial processes training at once on one GPU, without Ray (and with
                --mps, under MPS started by gpu.sh): total images/s and per-trial slowdown

--tiny: sizes for a 2-core CPU (proves the code path, measures nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import hop_throughput as ht  # noqa: E402

from takd_search import models  # noqa: E402
from takd_search.engine.augment import PAD, DeviceData, Views, epoch_views  # noqa: E402
from takd_search.engine.distill import train_logits  # noqa: E402
from takd_search.engine.hop import TrainConfig  # noqa: E402
from takd_search.engine.train import train_hop  # noqa: E402

MODELS = [("plain", 2), ("plain", 4), ("plain", 10), ("resnet", 8), ("resnet", 110)]


def write(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


def _data(n: int, classes: int, device) -> DeviceData:
    """n generated CIFAR-shaped images; a validation split of 1% (at least 2 per class)."""
    ds = ht.synthetic_cifar(n, 100, classes)
    val = max(0.01, 2 * classes / n)
    return DeviceData(ds, device, val_fraction=val, split_seed=0, augment="crop_flip")


def _epoch_s(family, depth, data, batch) -> float:
    """Seconds of one epoch of the engine's loop: the second epoch of a 2-epoch hop, from
    its curve (the first carries cuDNN's autotuning and allocator warm-up)."""
    make = lambda: models.create_model(family, depth, data.num_classes, data.input_shape)  # noqa: E731
    cfg = TrainConfig(epochs=2, batch_size=batch, lr=0.05, warmup_epochs=0)
    r = train_hop(make, data, cfg, seed=0, evaluate_test=False, require_learning=False)
    return r.curve[1]["seconds"] - r.curve[0]["seconds"]


# ---- repeat ---------------------------------------------------------------------------------


def cmd_repeat(args) -> dict:
    dev = torch.device(args.device)
    n, classes = (400, 10) if args.tiny else (20000, 100)
    data = _data(n, classes, dev)
    make = lambda d: lambda: models.create_model("plain", d, classes, data.input_shape)  # noqa: E731
    cfg = TrainConfig(epochs=2, batch_size=128, lr=0.05)
    parent = train_hop(make(4), data, cfg, seed=0, evaluate_test=False, require_learning=False)
    net = make(4)()
    net.load_state_dict(parent.state)
    net = net.to(dev).eval()
    teacher = lambda e: train_logits(net, data, data.views(1, e)).half().float()  # noqa: E731
    runs = []
    for _ in range(2):
        r = train_hop(
            make(2), data, cfg, seed=1, teachers=[teacher], T=4.0, alpha=0.5,
            evaluate_test=False, require_learning=False,
        )  # fmt: skip
        runs.append(r)
    a, b = runs[0].state, runs[1].state
    same = all(torch.equal(a[k], b[k]) for k in a)
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    out = {
        "device": str(dev),
        "n_train": data.n_train,
        "bit_identical": same,
        "max_abs_weight_diff": diff,
        "val_acc": [r.val_acc for r in runs],
        "deterministic_flags": {
            "cudnn.deterministic": torch.backends.cudnn.deterministic,
            "cudnn.benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        },
    }
    write(Path(args.dir) / "repeat.json", out)
    return out


# ---- epochs ---------------------------------------------------------------------------------


def cmd_epochs(args) -> dict:
    """Epoch seconds per (model, batch), each row written as it finishes; 45,000 images
    projected from a 1/5 subset."""
    dev = torch.device(args.device)
    n, scale, classes = (400, 45000 / 400, 10) if args.tiny else (9000, 5.0, 100)
    data = _data(n, classes, dev)
    out: dict = {"device": str(dev), "subset": data.n_train, "rows": []}
    for batch in args.batches:
        for family, depth in MODELS:
            if args.tiny and (family, depth) not in (("plain", 2), ("resnet", 8)):
                continue  # the code path, not the numbers
            s = _epoch_s(family, depth, data, batch) * scale
            row = {"model": f"{family}{depth}", "batch": batch, "epoch_s_45k": round(s, 3)}
            row["img_s"] = round(45000 / s, 1)
            row["hop_150_min"] = round(150 * s / 60, 2)
            out["rows"].append(row)
            print(f"# {json.dumps(row)}", flush=True)
            write(Path(args.dir) / "epochs.json", out)
    return out


# ---- hostsync -------------------------------------------------------------------------------


def _old_apply_views(x, idx, views):
    """augment.apply_views as it was before issue 25: CPU views, copied per step."""
    out = x.float()
    if views.shift is not None:
        b, _, h, w = x.shape
        shift = views.shift[idx].to(x.device)
        padded = F.pad(out, (PAD, PAD, PAD, PAD))
        rows = (shift[:, 0, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (shift[:, 1, None] + torch.arange(w, device=x.device))[:, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if views.flip is not None:
        flip = views.flip[idx].to(x.device)[:, None, None, None]
        out = torch.where(flip, out.flip(3), out)
    return out


@contextlib.contextmanager
def old_host_syncs():
    """The step as before: views stay on the CPU, and each step copies its indices, shifts
    and flips to the device (a CPU index into a device tensor copies too)."""
    views, batch = DeviceData.views, DeviceData.train_batch

    def cpu_views(self, seed, epoch) -> Views:
        return epoch_views(self.n_train, seed, epoch, self.augment)

    def old_batch(self, idx, views):
        x = self.x_train[idx.to(self.device)]
        return self.normalize(x if views.identity else _old_apply_views(x, idx, views))

    DeviceData.views, DeviceData.train_batch = cpu_views, old_batch
    try:
        yield
    finally:
        DeviceData.views, DeviceData.train_batch = views, batch


def cmd_hostsync(args) -> dict:
    dev = torch.device(args.device)
    n, scale, classes = (400, 45000 / 400, 10) if args.tiny else (9000, 5.0, 100)
    data = _data(n, classes, dev)
    out: dict = {"device": str(dev), "rows": []}
    for family, depth in [("plain", 2), ("resnet", 8)]:
        for batch in (128,):
            row = {"model": f"{family}{depth}", "batch": batch}
            with old_host_syncs():
                row["before_epoch_s"] = round(_epoch_s(family, depth, data, batch) * scale, 3)
            row["after_epoch_s"] = round(_epoch_s(family, depth, data, batch) * scale, 3)
            row["speedup"] = round(row["before_epoch_s"] / row["after_epoch_s"], 3)
            out["rows"].append(row)
            print(f"# {json.dumps(row)}", flush=True)
            write(Path(args.dir) / "hostsync.json", out)
    return out


# ---- concurrent -----------------------------------------------------------------------------


def _trial(device: str, n: int, classes: int, epochs: int, q) -> None:
    torch.set_num_threads(1)
    data = _data(n, classes, torch.device(device))
    make = lambda: models.create_model("plain", 4, classes, data.input_shape)  # noqa: E731
    cfg = TrainConfig(epochs=epochs, batch_size=128, lr=0.05, warmup_epochs=0)
    t0 = time.perf_counter()
    train_hop(make, data, cfg, seed=0, evaluate_test=False, require_learning=False)
    q.put((t0, time.perf_counter(), data.n_train * epochs))


def cmd_concurrent(args) -> dict:
    """k processes each train plain4 at batch 128 on the one GPU at once (no Ray); total
    images/s over the span from the first start to the last end."""
    n, epochs, classes = (400, 1, 10) if args.tiny else (9000, 2, 100)
    name = "concurrent_mps" if args.mps else "concurrent"
    out: dict = {"device": args.device, "mps": args.mps, "rows": []}
    ctx = mp.get_context("spawn")  # CUDA in children needs spawn
    for k in args.procs:
        q = ctx.Queue()
        job = (args.device, n, classes, epochs, q)
        ps = [ctx.Process(target=_trial, args=job) for _ in range(k)]
        for p in ps:
            p.start()
        got = [q.get() for _ in ps]
        for p in ps:
            p.join()
        span = max(e for _, e, _ in got) - min(s for s, _, _ in got)
        imgs = sum(i for _, _, i in got)
        row = {"procs": k, "total_img_s": round(imgs / span, 1), "span_s": round(span, 2)}
        row["per_trial_s"] = round(sum(e - s for s, e, _ in got) / k, 2)
        out["rows"].append(row)
        print(f"# {json.dumps(row)}", flush=True)
        write(Path(args.dir) / f"{name}.json", out)
    return out


def result(name: str, j: dict) -> str:
    """The summary cell of one of these steps (bench/gpu_checks.py summary)."""
    if name == "repeat":
        same = "bit-identical" if j["bit_identical"] else "NOT bit-identical"
        dw = j["max_abs_weight_diff"]
        return f"plain4->plain2 twice on {j['device']}: {same} (max |dw| {dw:.3g})"
    if name == "epochs":
        return "; ".join(
            f"{r['model']}@{r['batch']} {r['epoch_s_45k']:.2f} s/epoch "
            f"({r['hop_150_min']:.1f} min/150)"
            for r in j["rows"]
        )
    if name == "hostsync":
        return "; ".join(
            f"{r['model']}@{r['batch']} before {r['before_epoch_s']:.2f} s, after "
            f"{r['after_epoch_s']:.2f} s = {r['speedup']:.2f}x"
            for r in j["rows"]
        )
    if name in ("concurrent", "concurrent_mps"):
        return "; ".join(f"{r['procs']} procs {r['total_img_s']:.0f} img/s" for r in j["rows"])
    return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=["repeat", "epochs", "hostsync", "concurrent"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--dir", default=".")
    p.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--mps", action="store_true", help="concurrent: label the rows as under MPS")
    args = p.parse_args(argv)
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    globals()[f"cmd_{args.step}"](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

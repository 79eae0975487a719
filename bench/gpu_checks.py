"""The Python parts of bench/gpu.sh: one subcommand per GPU check, each writing a JSON file.

Every subcommand takes ``--device`` (cuda on the GPU machine; cpu for the dry run) and
``--tiny`` (sizes small enough for a 2-core CPU: they prove the code path, not a speed),
and writes NAME.json into ``--dir``. ``summary DIR`` reads them all and prints the table.

    env       GPU, driver, torch, CUDA, date; bf16 matrix-product rate measured here
    agree     the same hop (plain4 on digits, 3 seeds) on the CPU and on --device
    flops     model FLOPs per image (torch.utils.flop_counter) and the fraction of the bf16
              peak the engine reaches, from hop_throughput's JSON
    hop150    plain10 -> plain2 on 45,000 generated CIFAR-100-shaped images for a few epochs
              at the cifar100_vgg recipe, and its 150-epoch time against the 2-minute target
    compile   the engine's hop eager, torch.compile'd and with CUDA graphs, batch 128/256/512
    search    a small whole search with resources.gpu 0.25 and 1, GPU use sampled by
              nvidia-smi every 0.5 s
    profile   torch.profiler summary of one resnet110 -> resnet8 hop epoch
    summary   the table of every step (and summary.md, results.json)

Usage: see bench/gpu.sh, which runs all of them with time limits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import gpu_scale  # noqa: E402
import hop_throughput as ht  # noqa: E402
from _common import load, machine  # noqa: E402

from takd_search import models  # noqa: E402
from takd_search.engine.augment import DeviceData  # noqa: E402
from takd_search.engine.hop import TrainConfig  # noqa: E402
from takd_search.engine.train import train_hop  # noqa: E402

# H100/H200 SXM dense bf16 tensor-core peak by NVIDIA's datasheet (989.4 TFLOP/s); the
# rate measured by `env` (an 8192^3 bf16 product) is reported beside it
DATASHEET_BF16_TFLOPS = 989.4
T, ALPHA = ht.T, ht.ALPHA


def write(path: Path, obj: dict) -> None:
    """JSON, written atomically (a step killed by its timeout leaves the last whole file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def recipe(epochs: int, batch: int) -> TrainConfig:
    """cifar100_vgg's training recipe (TAKD's: batch 128, lr 0.1, wd 1e-4), cosine schedule."""
    return TrainConfig(epochs=epochs, batch_size=batch, lr=0.1, weight_decay=1e-4)


def child_maker(family: str, depth: int, ds):
    return lambda: models.create_model(family, depth, ds.num_classes, ds.input_shape)


def with_compile(make, mode: str, backend: str):
    """`make` wrapped in torch.compile: mode 'eager' (no compile), 'default' or
    'reduce-overhead' (CUDA graphs). backend other than inductor ignores the mode (the CPU
    dry run uses aot_eager: no C++ build on 2 shared cores)."""
    if mode == "eager":
        return make
    if backend != "inductor":
        return lambda: torch.compile(make(), backend=backend)
    return lambda: torch.compile(make(), mode=None if mode == "default" else mode)


def per_epoch(curve: list[dict]) -> tuple[float, float]:
    """(first epoch's seconds, median seconds of the later epochs) from a hop's curve; the
    first includes cuDNN's autotuning and any compilation."""
    ends = [r["seconds"] for r in curve]
    steps = [b - a for a, b in zip(ends, ends[1:])]
    return ends[0], statistics.median(steps) if steps else ends[0]


# ---- env ------------------------------------------------------------------------------------


def cmd_env(args) -> dict:
    dev = torch.device(args.device)
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": machine(),
        "load": load(),
        "device": args.device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": sys.version.split()[0],
        "git_rev": os.environ.get("GIT_REV", "unknown"),
    }
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info |= {"gpu": p.name, "sm_count": p.multi_processor_count}
        info |= {"capability": f"{p.major}.{p.minor}", "gpu_mem_gib": p.total_memory / 2**30}
    if shutil.which("nvidia-smi"):
        q = "name,driver_version,memory.total,clocks.max.sm,power.limit"
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        info["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
        if out.returncode == 0 and out.stdout.strip():
            info["driver"] = out.stdout.split(",")[1].strip()
    else:
        info["nvidia_smi"] = "absent"
    # the matrix-product ceiling on this very machine: what a fraction of peak is against
    n = 1024 if args.tiny else 8192
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(dev)
    reps = 10 if dev.type == "cuda" else 3
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(dev)
    sec = (time.perf_counter() - t0) / reps
    info["matmul"] = {"n": n, "dtype": str(dtype), "tflops": 2 * n**3 / sec / 1e12}
    return info


# ---- agree ----------------------------------------------------------------------------------


def cmd_agree(args) -> dict:
    """Seeds x {cpu, device} of one from-scratch plain4 hop on digits (real data: accuracy
    means something). Agreement: |mean difference| within max(min_tol, 3 standard errors)."""
    from takd_search.data import load_dataset

    ds = load_dataset("digits")
    epochs = 2 if args.tiny else 8
    seeds = [0, 1] if args.tiny else [0, 1, 2]
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.05)
    make = child_maker("plain", 4, ds)
    res: dict = {"model": "plain4", "data": "digits", "epochs": epochs, "seeds": seeds}
    for dev in dict.fromkeys(["cpu", args.device]):
        data = DeviceData(ds, dev, val_fraction=0.1, split_seed=0)
        rows = []
        for s in seeds:
            r = train_hop(make, data, cfg, seed=s)
            rows.append({"seed": s, "val_acc": r.val_acc, "test_acc": r.test_acc})
            print(f"# {dev} seed {s}: val {r.val_acc:.4f} test {r.test_acc:.4f}", flush=True)
        res[dev] = rows
    a = [r["test_acc"] for r in res["cpu"]]
    b = [r["test_acc"] for r in res[args.device]]
    sd = lambda x: statistics.stdev(x) if len(x) > 1 else 0.0  # noqa: E731
    se = math.sqrt(sd(a) ** 2 / len(a) + sd(b) ** 2 / len(b))
    tol = max(args.min_tol, 3 * se)
    diff = statistics.mean(b) - statistics.mean(a)
    res |= {"cpu_mean": statistics.mean(a), "cpu_sd": sd(a), "dev_mean": statistics.mean(b)}
    res |= {"dev_sd": sd(b), "diff": diff, "tol": tol, "agree": abs(diff) <= tol}
    return res


# ---- flops ----------------------------------------------------------------------------------


def count_flops(make, ds, device: torch.device, train: bool) -> float:
    """FLOPs per image of one forward (train=False) or forward + backward pass (train=True),
    counted by FlopCounterMode (convolutions and matrix products: what the tensor cores run;
    BatchNorm, ReLU and pooling are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = make().to(device)
    model.train(train)
    b = 8
    x = torch.randn(b, *ds.input_shape, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        if train:
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops() / b


def cmd_flops(args) -> dict:
    dev = torch.device(args.device)
    classes = 10 if args.tiny else 100
    ds = ht.synthetic_cifar(16, 16, classes)
    out: dict = {"classes": classes, "peak_datasheet_tflops": DATASHEET_BF16_TFLOPS}
    env = Path(args.dir) / "env.json"
    if env.exists():
        out["peak_measured_tflops"] = json.loads(env.read_text())["matmul"]["tflops"]
    rates = {}
    tp = Path(args.dir) / "throughput.json"
    if tp.exists():
        for r in json.loads(tp.read_text())["rows"]:
            rates.setdefault((r["pair"], r["method"]), []).append(r)
    for name, (fam, depth) in {"resnet8": ("resnet", 8), "plain2": ("plain", 2)}.items():
        make = child_maker(fam, depth, ds)
        fwd = count_flops(make, ds, dev, train=False)
        trn = count_flops(make, ds, dev, train=True)
        row = {"fwd_gflop_per_img": fwd / 1e9, "train_gflop_per_img": trn / 1e9}
        pair = {"resnet8": "resnet110 -> resnet8", "plain2": "plain10 -> plain2"}[name]
        eng = rates.get((pair, "engine"))
        if eng:
            best = max(eng, key=lambda r: r["img/s"])
            tflops = best["img/s"] * trn / 1e12
            row |= {"engine_img_s": best["img/s"], "batch": best["batch"]}
            row |= {"achieved_tflops": tflops, "of_datasheet": tflops / DATASHEET_BF16_TFLOPS}
            if "peak_measured_tflops" in out:
                row["of_measured"] = tflops / out["peak_measured_tflops"]
        out[name] = row
        print(f"# {name}: {json.dumps(row)}", flush=True)
    return out


# ---- hop150 ---------------------------------------------------------------------------------


def cmd_hop150(args) -> dict:
    """plain10 -> plain2 at cifar100_vgg's recipe (batch 128) on 45,000 training images
    (50,000 generated, 10% validation as the space's split), the parent's logits banked."""
    dev = torch.device(args.device)
    n, classes = (300, 10) if args.tiny else (50000, 100)
    epochs = 2 if args.tiny else args.epochs
    ds = ht.synthetic_cifar(n, 100 if args.tiny else 10000, classes)
    data = DeviceData(ds, dev, val_fraction=0.1, split_seed=0)
    parent = ht.calibrated_parent(models.create_model("plain", 10, classes, ds.input_shape), data)
    if dev.type == "cuda":
        parent = parent.to(memory_format=torch.channels_last)
    bank = ht.banked_teacher(parent, data)
    make = child_maker("plain", 2, ds)
    out: dict = {"n_train": data.n_train, "classes": classes, "epochs": epochs, "runs": []}
    for batch in args.batches:
        warm = train_hop(
            make, data, recipe(1, batch), teachers=[bank], T=T, alpha=ALPHA, require_learning=False
        )
        sync(dev)
        t0 = time.perf_counter()
        r = train_hop(
            make,
            data,
            recipe(epochs, batch),
            teachers=[bank],
            T=T,
            alpha=ALPHA,
            require_learning=False,
        )
        sync(dev)
        wall = time.perf_counter() - t0
        first, step = per_epoch(r.curve)
        est = first + step * 149 + (wall - r.curve[-1]["seconds"])
        row = {"batch": batch, "wall_s": wall, "first_epoch_s": first, "epoch_s": step}
        row |= {"img_s": data.n_train / step, "est_150_s": est, "warm_s": warm.seconds}
        out["runs"].append(row)
        print(f"# batch {batch}: {json.dumps(row)}", flush=True)
    out["target_s"] = 120.0
    return out


# ---- compile --------------------------------------------------------------------------------


def cmd_compile(args) -> dict:
    """Per (batch, pair): the banked hop eager, compiled and (CUDA) with CUDA graphs for a
    few epochs; steady images/s from the later epochs, compile cost from the first. Batch
    128 of both pairs comes first, so a step cut by its time limit still answers the main
    question; every cell is written as it finishes."""
    dev = torch.device(args.device)
    n, classes = (256, 10) if args.tiny else (45000, 100)
    epochs = 2 if args.tiny else 3
    modes = ["eager", "default"] + (["reduce-overhead"] if dev.type == "cuda" else [])
    backend = args.backend or ("inductor" if dev.type == "cuda" else "aot_eager")
    ds = ht.synthetic_cifar(n, 100, classes)
    data = DeviceData(ds, dev, val_fraction=0.05 if args.tiny else 0.01, split_seed=0)
    out: dict = {"n_train": data.n_train, "epochs": epochs, "backend": backend, "cells": []}
    path = Path(args.dir) / "compile.json"
    hops = {}
    for pair in args.pairs:
        pf, pd, cf, cd = ht.PAIRS[pair]
        parent = ht.calibrated_parent(models.create_model(pf, pd, classes, ds.input_shape), data)
        if dev.type == "cuda":
            parent = parent.to(memory_format=torch.channels_last)
        hops[f"{pf}{pd} -> {cf}{cd}"] = (ht.banked_teacher(parent, data), child_maker(cf, cd, ds))
    for batch in args.batches:
        for name, (bank, make) in hops.items():
            for mode in modes:
                torch._dynamo.reset()  # each hop compiles as in a fresh trial process
                cell = {"pair": name, "batch": batch, "mode": mode}
                try:
                    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=0.1, nesterov=False)
                    m = with_compile(make, mode, backend)
                    r = train_hop(
                        m, data, cfg, teachers=[bank], T=T, alpha=ALPHA, require_learning=False
                    )
                    sync(dev)
                    first, step = per_epoch(r.curve)
                    cell |= {"img_s": data.n_train / step, "first_epoch_s": first}
                    cell |= {"epoch_s": step, "compile_s": max(0.0, first - step)}
                    cell["val_acc"] = r.val_acc
                except Exception as e:  # one failing mode must not hide the others
                    cell["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                eager = [
                    c for c in out["cells"]
                    if (c["pair"], c["batch"], c["mode"]) == (name, batch, "eager")
                ]  # fmt: skip
                if eager and "img_s" in eager[0] and "img_s" in cell:
                    cell["x_eager"] = cell["img_s"] / eager[0]["img_s"]
                out["cells"].append(cell)
                print(f"# {json.dumps(cell)}", flush=True)
                write(path, out)
    return out


# ---- search ---------------------------------------------------------------------------------


def learnable_npz(path: Path, n_train: int, n_test: int, classes: int, seed: int = 0) -> None:
    """CIFAR-shaped uint8 images [N, 32, 32, 3] that a CNN can learn: each class is a smooth
    random colour template (4x4 upsampled), each image its class template plus noise and a
    random shift, so accuracies move above chance and the search has something to rank."""
    import numpy as np
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    templ = F.interpolate(torch.randn(classes, 3, 4, 4, generator=g), size=32, mode="bilinear")

    def make(n):
        y = torch.arange(n) % classes
        x = 128 + 45 * templ[y] + 40 * torch.randn(n, 3, 32, 32, generator=g)
        shift = torch.randint(-3, 4, (2,), generator=g).tolist()
        x = torch.roll(x, shifts=shift, dims=(2, 3))
        return x.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy(), y.numpy()

    x_tr, y_tr = make(n_train)
    x_te, y_te = make(n_test)
    np.savez(path, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)


SPACE = """\
description: bench/gpu.sh small whole search on generated CIFAR-shaped data
data: {{dataset: "npz:{npz}"}}
models: {{family: plain, teacher: {teacher}, student: 2, candidates: {cands}, max_tas: {tas}}}
train: {{epochs: {epochs}, batch_size: 128, lr: 0.05, weight_decay: 1.0e-4}}
distill:
  T: {{low: 1.0, high: 20.0, log: true}}
  alpha: {{low: 0.1, high: 0.9}}
search: {{sampler: tpe, n_trials: {trials}, seed: 0, scheduler: none}}
resources: {{cpu: {cpu}, gpu: 0}}
baselines: {{confirm_top_k: 1, confirm_seeds: [1]}}
"""


class Sampler:
    """nvidia-smi in the background: GPU utilisation (%) and memory (MiB) every 0.5 s."""

    def __init__(self, log: Path):
        self.log, self.proc = log, None
        if shutil.which("nvidia-smi"):
            q = "--query-gpu=timestamp,utilization.gpu,memory.used"
            cmd = ["nvidia-smi", q, "--format=csv,noheader,nounits", "-lms", "500"]
            self.f = open(log, "w")
            self.proc = subprocess.Popen(cmd, stdout=self.f, stderr=subprocess.STDOUT)

    def stop(self) -> dict:
        if self.proc is None:
            return {"samples": 0, "note": "nvidia-smi absent: no utilisation sampled"}
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.f.close()
        util, mem = [], []
        for line in self.log.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 3 and parts[1].isdigit():
                util.append(int(parts[1]))
                mem.append(float(parts[2]))
        if not util:
            return {"samples": 0, "note": "nvidia-smi printed no samples"}
        return {
            "samples": len(util),
            "util_mean": statistics.mean(util),
            "util_median": statistics.median(util),
            "busy_frac": sum(u > 0 for u in util) / len(util),
            "mem_max_mib": max(mem),
        }


def cmd_search(args) -> dict:
    """`takd-search run` on a generated CIFAR-shaped npz, once per --gpus value (concurrency
    is what fits: with cpu C per trial and gpu G, min(cores / C, GPUs / G))."""
    sys.path.insert(0, str(BENCH))
    import sweep  # needs Ray, Optuna, pydantic: imported here so other steps run without

    dev = torch.device(args.device)
    tiny = args.tiny
    gpus = [0.0] if dev.type == "cpu" else args.gpus
    out: dict = {"runs": []}
    with tempfile.TemporaryDirectory(prefix="takd-gpu-search-") as tmp:
        tmp = Path(tmp)
        n_train, n_test = (400, 100) if tiny else (10000, 2000)
        learnable_npz(tmp / "data.npz", n_train, n_test, 10)
        space = SPACE.format(
            npz=tmp / "data.npz",
            teacher=6 if tiny else 10,
            cands="[4]" if tiny else "[6, 4]",
            tas=1 if tiny else 2,
            epochs=1 if tiny else args.epochs,
            trials=2 if tiny else args.trials,
            cpu=1 if tiny else args.cpu,
        )
        (tmp / "space.yaml").write_text(space)
        out |= {"space": space, "n_train": n_train}
        for g in gpus:
            tag = f"gpu{g:g}"
            results = tmp / tag
            env = {k: v for k, v in os.environ.items() if k != "TAKD_STORE"}
            cmd = [sys.executable, "-m", "takd_search.cli", "run", "--space"]
            cmd += [str(tmp / "space.yaml"), "--gpus-per-trial", f"{g:g}", "--new"]
            cmd += ["--results", str(results)]
            log = Path(args.dir) / f"search-{tag}.log"
            sampler = Sampler(Path(args.dir) / f"search-{tag}-smi.csv")
            t0 = time.perf_counter()
            with open(log, "w") as f:
                proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
            wall = time.perf_counter() - t0
            row = {"gpu_per_trial": g, "wall_s": wall, "rc": proc.returncode} | sampler.stop()
            done = [d for d in results.glob("*") if (d / "summary.json").exists()]
            if proc.returncode == 0 and not done:
                row["rc"] = "no summary.json"
            if proc.returncode == 0 and done:
                r = sweep.read_run(done[0], wall, log.read_text())
                row |= {"concurrency": r["concurrency"], "trials": r["trials"]}
                row |= {"trained": r["trained"], "reused": r["reused"]}
                row["timeline"] = sweep.overheads(r)
            else:
                row["tail"] = log.read_text().splitlines()[-5:]
            out["runs"].append(row)
            print(f"# {json.dumps(row)}", flush=True)
            write(Path(args.dir) / "search.json", out)
    ok = [r for r in out["runs"] if r["rc"] == 0]
    if len(ok) == 2:
        out["x_packed"] = ok[1]["wall_s"] / ok[0]["wall_s"]  # gpu 1 wall / gpu 0.25 wall
    if any(r["rc"] for r in out["runs"]):
        out["failed"] = True
    return out


# ---- profile --------------------------------------------------------------------------------


def _dev_us(evt) -> float:
    """Self time on the device (us) of a profiler row, across torch's renames."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(evt, name):
            return float(getattr(evt, name))
    return 0.0


def cmd_profile(args) -> dict:
    """One epoch of the banked resnet110 -> resnet8 hop at batch 128 under torch.profiler,
    after a warm-up epoch; the top ops by device (CPU: host) self time, the device's busy
    fraction of the wall time and the kernel launches per training step."""
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(args.device)
    n, classes = (256, 10) if args.tiny else (10000, 100)
    ds = ht.synthetic_cifar(n, 100, classes)
    data = DeviceData(ds, dev, val_fraction=0.05 if args.tiny else 0.01, split_seed=0)
    pf, pd, cf, cd = ht.PAIRS[args.pair]
    parent = ht.calibrated_parent(models.create_model(pf, pd, classes, ds.input_shape), data)
    if dev.type == "cuda":
        parent = parent.to(memory_format=torch.channels_last)
    bank = ht.banked_teacher(parent, data)
    make = child_maker(cf, cd, ds)
    cfg = TrainConfig(epochs=1, batch_size=args.batch, lr=0.1, nesterov=False)
    train_hop(
        make, data, cfg, teachers=[bank], T=T, alpha=ALPHA, require_learning=False
    )  # warm-up
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    sync(dev)
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        train_hop(make, data, cfg, teachers=[bank], T=T, alpha=ALPHA, require_learning=False)
        sync(dev)
    wall = time.perf_counter() - t0
    avg = prof.key_averages()
    on_dev = dev.type == "cuda"
    # kernels (and copies) are rows of their own with a device type; CPU ops' self device
    # time repeats theirs, so the device total and the top list take the device rows only
    from torch.autograd import DeviceType

    if on_dev:
        rows = [e for e in avg if getattr(e, "device_type", None) == DeviceType.CUDA]
        key = _dev_us
    else:
        rows, key = list(avg), lambda e: float(e.self_cpu_time_total)
    rows.sort(key=key, reverse=True)
    total = sum(key(e) for e in rows)
    host = sorted(avg, key=lambda e: e.self_cpu_time_total, reverse=True)
    steps = math.ceil(data.n_train / args.batch)
    launches = sum(e.count for e in avg if "LaunchKernel" in e.key)
    top = [
        {"op": e.key[:90], "self_ms": key(e) / 1e3, "share": key(e) / total if total else 0.0,
         "calls": e.count}
        for e in rows[:15]
    ]  # fmt: skip
    top_cpu = [{"op": e.key[:90], "self_ms": e.self_cpu_time_total / 1e3} for e in host[:10]]
    sort = "self_device_time_total" if on_dev else "self_cpu_time_total"
    try:
        table = avg.table(sort_by=sort, row_limit=25)
    except (AttributeError, KeyError):  # torch before the cuda -> device rename
        table = avg.table(sort_by=sort.replace("device", "cuda"), row_limit=25)
    (Path(args.dir) / "profile.txt").write_text(table)
    print(table)
    out = {"pair": f"{pf}{pd} -> {cf}{cd}", "batch": args.batch, "n_train": data.n_train}
    out |= {"wall_s": wall, "steps": steps, "top": top, "top_cpu": top_cpu}
    out["time_kind"] = "device" if on_dev else "cpu"
    out |= {"busy_frac": total / 1e6 / wall if on_dev else None}
    out |= {"launches_per_step": launches / steps, "img_s": data.n_train / wall}
    return out


# ---- summary --------------------------------------------------------------------------------


def _read(d: Path, name: str) -> dict | None:
    p = d / f"{name}.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _result(name: str, d: Path, dry: bool = False) -> str:
    """One cell of the summary's 'result' column: the step's headline numbers (no target
    verdicts on a dry run: its sizes and device say nothing about them)."""
    j = _read(d, name)
    if name in ("repeat", "epochs", "hostsync", "concurrent", "concurrent_mps"):
        return gpu_scale.result(name, j) if j is not None else ""  # issue 25's steps
    if name == "tests":
        log = d / "tests.log"
        lines = [x for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
        return lines[-1].strip("= ") if lines else ""
    if j is None:
        return ""
    if name == "env":
        gpu = j.get("gpu") or "no GPU"
        mm = j["matmul"]
        return (
            f"{gpu}, driver {j.get('driver', '-')}, torch {j['torch']}, CUDA {j['cuda']}; "
            f"{mm['dtype'].split('.')[-1]} {mm['n']}^3 product {mm['tflops']:.3g} TFLOP/s"
        )
    if name == "agree":
        return (
            f"plain4 digits test acc cpu {j['cpu_mean']:.3f}+-{j['cpu_sd']:.3f} vs "
            f"{j.get('device', 'dev')} {j['dev_mean']:.3f}+-{j['dev_sd']:.3f}: "
            f"diff {j['diff']:+.3f}, tol {j['tol']:.3f} -> {'agree' if j['agree'] else 'DIFFER'}"
        )
    if name == "throughput":
        parts = []
        for pair in dict.fromkeys(r["pair"] for r in j["rows"]):
            rs = [r for r in j["rows"] if r["pair"] == pair]
            ref = next((r for r in rs if r["method"] == "ref" and r["batch"] == 128), None)
            eng = [r for r in rs if r["method"] == "engine"]
            if not eng or not ref:
                continue
            best = max(eng, key=lambda r: r["x ref"])
            s = f"{pair}: ref {ref['img/s']:.0f} img/s, engine {best['img/s']:.0f} "
            s += f"(batch {best['batch']}) = {best['x ref']:.1f}x"
            if pair.startswith("resnet110") and not dry:
                s += f" (target 15x: {'met' if best['x ref'] >= 15 else 'missed'})"
            parts.append(s)
        return "; ".join(parts)
    if name == "flops":
        parts = []
        for m in ("resnet8", "plain2"):
            r = j.get(m, {})
            s = f"{m} {r.get('train_gflop_per_img', 0):.3f} GFLOP/img train"
            if "achieved_tflops" in r:
                s += f", {r['achieved_tflops']:.3g} TFLOP/s = {100 * r['of_datasheet']:.3g}%"
                s += " of bf16 datasheet peak"
                if "of_measured" in r:
                    s += f" ({100 * r['of_measured']:.3g}% of the measured product)"
            parts.append(s)
        return "; ".join(parts)
    if name == "hop150":
        parts = []
        for r in j["runs"]:
            met = "met" if r["est_150_s"] <= j["target_s"] else "missed"
            verdict = "" if dry else f"target {j['target_s']:.0f} s: {met}; "
            parts.append(
                f"batch {r['batch']}: {r['img_s']:.0f} img/s, {r['epoch_s']:.2f} s/epoch -> "
                f"150 epochs ~{r['est_150_s']:.0f} s ({verdict}from {j['epochs']} epochs)"
            )
        return "; ".join(parts)
    if name == "compile":
        parts = []
        for c in j["cells"]:
            tag = f"{c['pair'].split(' -> ')[1]}@{c['batch']} {c['mode']}"
            if "error" in c:
                parts.append(f"{tag} FAILED")
            else:
                x = f" {c['x_eager']:.2f}x" if "x_eager" in c else ""
                parts.append(f"{tag} {c['img_s']:.0f}{x} (+{c['compile_s']:.0f} s)")
        return "; ".join(parts)
    if name == "search":
        parts = []
        for r in j["runs"]:
            s = f"gpu {r['gpu_per_trial']:g}: {r['wall_s']:.0f} s"
            if r["rc"]:
                s += f" FAILED rc {r['rc']}"
            else:
                s += f", {r['concurrency']} at once"
            if r.get("samples"):
                s += f", GPU util mean {r['util_mean']:.0f}% (busy {100 * r['busy_frac']:.0f}%)"
            parts.append(s)
        if "x_packed" in j:
            parts.append(f"gpu 1 / gpu 0.25 wall = {j['x_packed']:.2f}x")
        return "; ".join(parts)
    if name == "profile":
        top = ", ".join(f"{t['op'][:40]} {100 * t['share']:.0f}%" for t in j["top"][:3])
        s = f"top ({j['time_kind']} time): {top}; {j['launches_per_step']:.0f} launches/step"
        if j.get("busy_frac") is not None:
            s += f"; GPU busy {100 * j['busy_frac']:.0f}% of wall"
        return s
    return ""


def cmd_summary(args) -> dict:
    """The table from steps/status.tsv (name, status, seconds) and each step's JSON."""
    d = Path(args.dir)
    env = _read(d, "env") or {}
    dry = env.get("device", args.device) != "cuda"
    rows = []
    status = d / "status.tsv"
    for line in status.read_text().splitlines() if status.exists() else []:
        name, st, sec, *note = line.split("\t")
        try:
            res = _result(name, d, dry) if st == "OK" or (d / f"{name}.json").exists() else ""
        except Exception as e:  # a malformed JSON must not hide the other rows
            res = f"(summary failed: {type(e).__name__}: {e})"
        rows.append((name, st, sec, res or (note[0] if note else "")))
    head = ["# bench/gpu.sh summary", ""]
    if dry:
        head += ["**CPU DRY RUN of the GPU script: no GPU numbers. Sizes are tiny; only that",
                 "every step runs is shown.**", ""]  # fmt: skip
    head += [f"- date (UTC): {env.get('date_utc', '?')}; git {env.get('git_rev', '?')}"]
    head += [f"- machine: {env.get('machine', '?')}"]
    head += [f"- nvidia-smi: {env.get('nvidia_smi', '?')}", ""]
    table = ["| step | status | s | result |", "|---|---|---|---|"]
    table += [f"| {n} | {s} | {sec} | {r.replace('|', '/')} |" for n, s, sec, r in rows]
    text = "\n".join(head + table) + "\n"
    (d.parent / "summary.md").write_text(text)
    merged = {n: _read(d, n) for n, *_ in rows}
    merged["status"] = [dict(zip(("step", "status", "seconds"), r[:3])) for r in rows]
    (d.parent / "results.json").write_text(json.dumps(merged, indent=1, default=str))
    print(text)
    return {}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=[n[4:] for n in globals() if n.startswith("cmd_")])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="sizes for a 2-core CPU dry run")
    p.add_argument("--dir", default=".", help="folder of the step JSON files")
    p.add_argument("--min-tol", type=float, default=0.03, help="agree: least tolerance")
    p.add_argument("--epochs", type=int, default=20, help="hop150/search: epochs per hop")
    p.add_argument("--batches", type=int, nargs="+", default=None)
    p.add_argument("--pairs", nargs="+", default=["resnet", "plain"], choices=list(ht.PAIRS))
    p.add_argument("--pair", default="resnet", choices=list(ht.PAIRS), help="profile's pair")
    p.add_argument("--batch", type=int, default=128, help="profile's batch size")
    p.add_argument("--backend", help="compile: torch.compile backend (default inductor on CUDA)")
    p.add_argument("--gpus", type=float, nargs="+", default=[0.25, 1.0], help="search")
    p.add_argument("--trials", type=int, default=6, help="search: search trials")
    p.add_argument("--cpu", type=float, default=2, help="search: CPUs per trial")
    args = p.parse_args(argv)
    if args.batches is None:
        args.batches = {"hop150": [128], "compile": [128, 256, 512]}.get(args.step, [128])
        if args.tiny:
            args.batches = [64]
    if args.step != "summary" and args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"{args.step}: SKIPPED: --device {args.device} but torch sees no CUDA device")
        return 3
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    out = globals()[f"cmd_{args.step}"](args)
    if args.step != "summary":
        out = {"device": args.device, "tiny": args.tiny} | out
        write(Path(args.dir) / f"{args.step}.json", out)
        if out.get("failed") or out.get("agree") is False:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A full-size rehearsal of `takd-search run --space cifar100_vgg` on the CPU (issue 25).

1. Writes a CIFAR-100-shaped archive in the real format: `cifar-100-python.tar.gz` holding
   `cifar-100-python/train` (50,000 images), `test` (10,000) and `meta`, pickles of
   `data` uint8 [N, 3072] and `fine_labels`, 100 classes. It is learnable: each class is a
   smooth random template; an image is its template moved by up to 3 pixels, brightness-
   jittered, plus pixel noise (a plain2 learns it well above chance in one epoch).
   The loader accepts it through TAKD_CIFAR_MD5 (data/cifar.py).
2. Runs the dry run and prints its disk estimate, then `takd-search run --space
   cifar100_vgg --data-dir D` with budget flags (few epochs, few trials, CPU trials) to the
   end, sampling the disk use of the results folder and store every few seconds and the
   peak RSS of the whole process tree.
3. Reports: wall time, completion (rc 0 and the answer block printed), the load average,
   peak disk against the dry run's estimate, peak RSS, training
   images per second per hop from the store's entries (epochs x 45,000 / hop seconds), and
   the 150-epoch projection of one hop from that per-image cost and a GPU speed-up factor
   given on the command line (measured by bench/gpu.sh; none is assumed here).

    python bench/rehearse_cifar100.py --out /tmp/rehearsal --epochs 1 --trials 1 --seeds 1 \
        --cpus-per-trial 1 --max-wall 3900 --set resources.concurrency=1 \
        --set baselines.confirm_top_k=1 --set "baselines.select_seeds=[]" \
        --set "models.candidates=[4]" --set models.max_tas=1

(the run of bench/RESULTS.md: 15 hops, 49 min on one core of a shared 2-core VM).
`--set` is passed to both the dry run and the run, so the disk estimate is the run's own.

Writes <out>/rehearsal.json; bench/RESULTS.md holds the figures with machine and date.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import platform
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np

N_TRAIN, N_TEST, CLASSES = 50_000, 10_000, 100


def _templates(rng: np.random.Generator) -> np.ndarray:
    """100 smooth colour patterns [100, 3, 32, 32] float32 in about [40, 215]."""
    coarse = rng.normal(0, 1, (CLASSES, 3, 8, 8)).astype(np.float32)
    fine = coarse.repeat(4, axis=2).repeat(4, axis=3)  # 8x8 blocks -> 32x32
    # a 3x3 box blur twice: smooth edges, so shifted copies stay alike
    for _ in range(2):
        pad = np.pad(fine, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
        fine = sum(pad[:, :, i : i + 32, j : j + 32] for i in range(3) for j in range(3)) / 9
    fine = (fine - fine.mean()) / fine.std()
    return 128 + 45 * fine


def _images(rng, templates, labels: np.ndarray) -> np.ndarray:
    """uint8 [N, 3072]: template moved by up to 3 px, brightness jitter, noise."""
    out = np.empty((len(labels), 3072), np.uint8)
    for start in range(0, len(labels), 5000):
        y = labels[start : start + 5000]
        x = templates[y]
        dy, dx = rng.integers(-3, 4, 2)  # one shift per chunk keeps it vectorised...
        x = np.roll(x, (int(dy), int(dx)), axis=(2, 3))
        per = rng.integers(-3, 4, (len(y), 2))  # ...and one per image on top, by rows
        for k in range(-3, 4):
            rows = per[:, 0] == k
            x[rows] = np.roll(x[rows], k, axis=2)
            cols = per[:, 1] == k
            x[cols] = np.roll(x[cols], k, axis=3)
        x = x * rng.uniform(0.8, 1.2, (len(y), 1, 1, 1)) + rng.normal(0, 40, x.shape)
        out[start : start + len(y)] = np.clip(x, 0, 255).astype(np.uint8).reshape(len(y), -1)
    return out


def write_archive(data_dir: Path, seed: int = 0) -> str:
    """Write data_dir/cifar-100-python.tar.gz; returns its md5."""
    rng = np.random.default_rng(seed)
    templates = _templates(rng)
    y_train = np.arange(N_TRAIN) % CLASSES
    rng.shuffle(y_train)
    y_test = np.arange(N_TEST) % CLASSES
    rng.shuffle(y_test)
    parts = {
        "train": {"data": _images(rng, templates, y_train), "fine_labels": y_train.tolist()},
        "test": {"data": _images(rng, templates, y_test), "fine_labels": y_test.tolist()},
        "meta": {"fine_label_names": [f"class{i}" for i in range(CLASSES)]},
    }
    for p in ("train", "test"):
        parts[p]["coarse_labels"] = [c // 5 for c in parts[p]["fine_labels"]]
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for name, obj in parts.items():
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _gib_bytes(disk_line: str) -> int | None:
    """The dry run's 'disk     at most 1.4 GiB: ...' in bytes (to its 0.1 GiB), or None."""
    words = disk_line.split()
    try:
        return int(float(words[words.index("most") + 1]) * (1 << 30))
    except (ValueError, IndexError):
        return None


def _tree_rss(pid: int) -> int:
    """Bytes of resident memory of `pid` and all its descendants (from /proc)."""
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            pages = int(Path(f"/proc/{d}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(kids.get(p, []))
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="a folder for data, results, store")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--seeds", default="1", help="report seeds (--seeds of run)")
    ap.add_argument("--cpus-per-trial", type=float, default=2)
    ap.add_argument("--gpu-speedup", type=float, default=None, help="GPU/CPU per-image ratio")
    ap.add_argument("--space", default="cifar100_vgg")
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed on to run (and its dry run) as --set KEY=VALUE; repeatable",
    )
    ap.add_argument(
        "--max-wall",
        type=float,
        default=None,
        help="seconds; then the run is interrupted (SIGINT: Tune snapshots, the same command "
        "resumes) and what it reached is reported",
    )
    a = ap.parse_args()
    out = a.out.resolve()
    data, results = out / "data", out / "results"
    report: dict = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    if not (data / "cifar-100-python.tar.gz").exists():
        t0 = time.perf_counter()
        md5 = write_archive(data)
        report["archive_s"] = round(time.perf_counter() - t0, 1)
    else:
        md5 = hashlib.md5((data / "cifar-100-python.tar.gz").read_bytes()).hexdigest()
    report["archive_bytes"] = (data / "cifar-100-python.tar.gz").stat().st_size
    env = {**os.environ, "TAKD_CIFAR_MD5": md5}
    base = [sys.executable, "-m", "takd_search.cli", "run", "--space", a.space]
    base += ["--data-dir", str(data), "--results", str(results)]
    base += ["--epochs", str(a.epochs), "--trials", str(a.trials), "--seeds", a.seeds]
    base += ["--gpus-per-trial", "0", "--cpus-per-trial", str(a.cpus_per_trial)]
    for kv in a.sets:
        base += ["--set", kv]
    dry = subprocess.run(base + ["--dry-run"], env=env, capture_output=True, text=True)
    print(dry.stdout, dry.stderr, flush=True)
    (disk_line,) = [ln for ln in dry.stdout.splitlines() if ln.startswith("disk ")] or [""]
    report["dry_run_disk"] = disk_line
    report["command"] = " ".join(base[2:])

    report["dry_run_disk_bytes"] = _gib_bytes(disk_line)
    peak = {"disk": 0, "rss": 0, "load1": 0.0}
    loads: list[float] = []
    report["load_at_start"] = os.getloadavg()
    proc = subprocess.Popen(
        base, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    stop = threading.Event()
    lines: list[str] = []

    def sample() -> None:
        while not stop.is_set():
            peak["disk"] = max(peak["disk"], _du(results))
            peak["rss"] = max(peak["rss"], _tree_rss(proc.pid))
            loads.append(os.getloadavg()[0])
            peak["load1"] = max(peak["load1"], loads[-1])
            (out / "progress.json").write_text(json.dumps({**peak, "at": time.time()}))
            stop.wait(3.0)

    def echo() -> None:  # the run's own output, passed on and kept for the answer block
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line.rstrip("\n"))

    t0 = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    echoer = threading.Thread(target=echo, daemon=True)
    echoer.start()
    try:
        rc = proc.wait(timeout=a.max_wall)
        report["interrupted"] = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # Tune snapshots; the run says how to resume
        rc = proc.wait()
        report["interrupted"] = True
    stop.set()
    sampler.join()
    echoer.join(timeout=10)
    head = f"== {a.space}: "
    at = next((i for i, ln in enumerate(lines) if ln.startswith(head)), None)
    report["answer_block"] = lines[at:] if at is not None else None
    report["completed"] = rc == 0 and at is not None
    report["load_1min"] = {
        "start": report.pop("load_at_start")[0],
        "mean": round(float(np.mean(loads)), 2) if loads else None,
        "max": peak["load1"],
        "end": os.getloadavg()[0],
    }
    report.update(
        rc=rc,
        wall_s=round(time.perf_counter() - t0, 1),
        peak_disk_bytes=max(peak["disk"], _du(results)),
        within_estimate=(
            None
            if report["dry_run_disk_bytes"] is None
            else max(peak["disk"], _du(results)) <= report["dry_run_disk_bytes"]
        ),
        final_disk_bytes=_du(results),
        peak_rss_bytes=peak["rss"],
        store_bytes={
            sub: _du(results / ".store" / sub) for sub in ("hops", "banks", "partial", "tmp")
        },
    )
    runs = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    report["run_folder_bytes"] = sum(_du(p) for p in runs)
    hops = []
    for meta in (results / ".store" / "hops").glob("*/meta.json"):
        m = json.loads(meta.read_text())
        sec = m["metrics"]["seconds"]
        imgs = m["metrics"]["epochs"] * 45_000
        kind = "kd" if m["lineage"]["parents"] else "nokd"  # kd: + the parent's forward
        model = m["lineage"]["model"]
        hops.append({"model": model, "kind": kind, "seconds": sec, "img_per_s": imgs / sec})
    report["hops"] = sorted(hops, key=lambda h: (h["model"], h["kind"]))
    report["hops_in_store"] = len(hops)
    per_model: dict[str, list[float]] = {}
    for h in hops:
        per_model.setdefault(h["model"], []).append(h["img_per_s"])
        per_model.setdefault(f"{h['model']} {h['kind']}", []).append(h["img_per_s"])
    report["img_per_s_by_kind"] = {
        m: round(float(np.median(v)), 1) for m, v in sorted(per_model.items()) if " " in m
    }
    # the per-model figure the projection uses: its NoKD hops (training alone), else all
    report["img_per_s"] = {
        m: round(float(np.median(per_model.get(f"{m} nokd", v))), 1)
        for m, v in sorted(per_model.items())
        if " " not in m
    }
    # one 150-epoch hop on this CPU, and on a GPU when a measured speed-up is given
    report["hop_150_epochs_cpu_h"] = {
        m: round(150 * 45_000 / v / 3600, 1) for m, v in report["img_per_s"].items()
    }
    if a.gpu_speedup:
        report["hop_150_epochs_gpu_min"] = {
            m: round(150 * 45_000 / (v * a.gpu_speedup) / 60, 1)
            for m, v in report["img_per_s"].items()
        }
    (out / "rehearsal.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "hops"}, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())

"""`takd-search run --dry-run`: the plan of a run, before anything trains or is written.

The space, data and models are checked exactly as for a real run (the same code path,
`run.run_search`, stops just before Ray starts). The plan then lists the phases with
their trial counts, an upper bound of the hops each trains, the resources per trial and
the concurrency they allow here, where results and the hop store go, and a compute
estimate from a short timing probe: a few SGD steps of every model of the space on a
batch of the real data, on the device the run would use.

The estimate is an upper bound for one process: every hop trained in full (no reuse from
the store, no ASHA stop, no parent logits banked), divided by the concurrency. A
distilled hop costs its child's steps plus a forward pass of its parent.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from takd_search.engine.distill import pick_device, trial_device
from takd_search.models import create_model_from_name
from takd_search.progress import fmt_seconds
from takd_search.run_path import describe_recipe
from takd_search.search import disk_plan
from takd_search.search.methods import trial_counts
from takd_search.search.space import PathSpace


def _probe(name: str, ds, batch_size: int, device: str, steps: int = 3) -> tuple[float, float]:
    """(seconds per training step, seconds per forward pass) of model `name` on a
    batch of `batch_size` real training images (after one warm-up step)."""
    import torch  # torch: not loaded by torch-free callers

    shape = (1, ds.input_shape[0]) + (1,) * (len(ds.input_shape) - 1)  # images or signals
    n = min(batch_size, len(ds.x_train))
    x = ds.x_train[:n].float().div(1.0 if ds.is_signal else 255.0)
    x = (x - torch.tensor(ds.mean).view(shape)) / torch.tensor(ds.std).view(shape)
    y = ds.y_train[:n]
    x, y = x.to(device), y.to(device)
    net = create_model_from_name(name, ds.num_classes, ds.input_shape).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    def sync():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    train = (time.perf_counter() - t0) / steps
    net.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(steps):
            net(x)
        sync()
    return train, (time.perf_counter() - t0) / steps


def plan(
    space,
    ds,
    sizes: dict[str, int],
    train,
    results_dir: Path,
    store_root=None,
    no_store: bool = False,
    address: str | None = None,
    device: str | None = None,
    resume=None,
) -> dict:
    """The plan as a dict (see the module doc): {'space', 'data', 'models', 'phases',
    'resources', 'where', 'compute'}; seconds are estimates, accuracies absent."""
    teacher, student, candidates = space.model_names()
    everyone = [teacher, *candidates, student]
    path_space = PathSpace(space, sizes, classes=ds.num_classes)
    phases = _phases(space, path_space, everyone)
    dev = str(pick_device(trial_device(device, space.resources.gpu)))  # as the trials will
    compute = _compute(space, ds, train, dev, everyone, phases)
    concurrency, where_ray = _concurrency(space, address)
    if concurrency:
        concurrency = min(concurrency, space.search.batch)  # a batch is all that can run
        compute["wall_s_at_most"] = compute["train_s_at_most"] / concurrency
    store = (
        None
        if no_store
        else str(Path(store_root or os.environ.get("TAKD_STORE") or results_dir / ".store"))
    )
    run_dir = (
        str(resume)
        if resume
        else f"{results_dir}/{space.name}-<timestamp> (or the newest unfinished run of this "
        "space with the same settings: --new for a fresh one)"
    )
    # the disk the run may fill, next to the free space (a real run refuses what won't fit)
    disk = disk_plan.for_plan(
        space, ds, sizes, train, results_dir, store, concurrency or 1, resume
    )
    return {
        "disk": {**disk.__dict__, "total": disk.total, "needed": disk.needed, "text": disk.text()},
        "space": space.name,
        "data": {
            "dataset": space.data.dataset,
            "train": len(ds.x_train),
            "test": len(ds.x_test),
            "val_fraction": space.data.val_fraction,
            "input_shape": list(ds.input_shape),
            "classes": ds.num_classes,
        },
        "models": {m: sizes[m] for m in everyone},
        "epochs": train.epochs,
        "train": describe_recipe(train),  # the recipe every hop trains with (after --set)
        "paths": path_space.n_paths(),
        "phases": phases,
        "resources": {
            "cpu_per_trial": space.resources.cpu,
            "gpu_per_trial": space.resources.gpu,
            "concurrency": concurrency,
            "ray": where_ray,
            "device": dev,
        },
        "where": {"run_dir": run_dir, "store": store},
        "compute": compute,
    }


def _phases(space, path_space, everyone: list[str]) -> list[dict]:
    """Trials and new hops (at most) per phase, from the run's own arithmetic
    (methods.trial_counts); `kind` says what one trial trains, for the estimate."""
    teacher, candidates = everyone[0], everyone[1:-1]
    longest = min(len(candidates), space.max_tas) + 2  # models in the longest path
    n_search = space.search.n_trials
    if space.search.sampler == "grid" and n_search is None:
        n_search = path_space.grid_size()
    counts = trial_counts(space, n_search, heuristic=bool(candidates))
    seeds = list(space.baselines.confirm_seeds)
    # a distilled retraining trains its TAs and student (with reseed_teacher, its teacher
    # too); the teacher comes from NoKD (or the user's file)
    per_run = longest - 1 + (1 if space.baselines.reseed_teacher and teacher != "teacher" else 0)
    distilled = counts["confirm"] - len(seeds)  # the chosen configurations' report seeds
    return [
        {"phase": "nokd", "trials": len(everyone), "kind": "nokd",
         "hops_at_most": len(everyone) - (1 if teacher == "teacher" else 0)},
        {"phase": "search", "trials": n_search, "kind": "path",
         "time_budget_s": space.search.time_budget_s, "sampler": space.search.sampler,
         "scheduler": space.search.scheduler, "hops_at_most": (n_search or 0) * (longest - 1)},
        {"phase": "blkd", "trials": counts["blkd"], "kind": "direct",
         "hops_at_most": counts["blkd"]},
        {"phase": "tune", "trials": counts["tune"], "kind": "heuristic",
         "hops_at_most": 2 * counts["tune"]},
        {"phase": "select", "trials": counts["select"], "kind": "hops",
         "select_seeds": counts["select_seeds"], "hops_at_most": counts["select"] * per_run},
        {"phase": "confirm", "trials": counts["confirm"], "kind": "hops", "seeds": seeds,
         "hops_at_most": distilled * per_run + len(seeds)},
    ]  # fmt: skip


def _compute(space, ds, train, dev: str, everyone: list[str], phases: list[dict]) -> dict:
    """Training seconds at most (no reuse, no early stop), from a timing probe of every
    model on a real batch."""
    n_train = len(ds.split(space.data.val_fraction, space.data.split_seed)[0])
    steps_per_epoch = math.ceil(n_train / train.batch_size)
    probe = {}
    for m in everyone:
        if m == "teacher":
            continue
        tr, fw = _probe(m, ds, train.batch_size, dev)
        probe[m] = {"step_s": tr, "forward_s": fw, "hop_s": tr * steps_per_epoch * train.epochs}
    e = train.epochs * steps_per_epoch
    smallest_parent = min((probe[m]["forward_s"] for m in probe), default=0.0)

    def kd_hop(child: str) -> float:
        return probe[child]["hop_s"] + smallest_parent * e

    children = everyone[1:]
    hop_mean = sum(kd_hop(m) for m in children) / len(children) if children else 0.0
    longest = min(len(everyone) - 2, space.max_tas) + 2
    per_trial = {
        "nokd": sum(p["hop_s"] for p in probe.values()) / max(1, len(probe)),
        "path": hop_mean * (longest - 1),
        "direct": kd_hop(everyone[-1]),
        "heuristic": hop_mean * 2,
    }
    total = sum(
        ph["hops_at_most"] * hop_mean
        if ph["kind"] == "hops"
        else (ph["trials"] or 0) * per_trial[ph["kind"]]
        for ph in phases
    )
    return {
        "probe": probe,
        "steps_per_epoch": steps_per_epoch,
        "train_s_at_most": total,
        "wall_s_at_most": None,
    }


def _concurrency(space, address: str | None) -> tuple[int | None, str]:
    """Trials at once on this machine's local Ray (None on a cluster) and where Ray is."""
    if address:
        return None, f"the Ray cluster at {address}"
    import torch  # torch: not loaded by torch-free callers

    cpus = os.cpu_count() or 1
    by_cpu = max(1, int(cpus // max(space.resources.cpu, 1e-9)))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    by_gpu = int(gpus // space.resources.gpu) if space.resources.gpu else by_cpu
    concurrency = max(1, min(by_cpu, by_gpu, space.resources.concurrency or by_cpu))
    return concurrency, f"a local Ray on this machine ({cpus} CPUs, {gpus} GPUs)"


def plan_text(p: dict) -> str:
    """The plan for a person: a few lines per section."""
    d = p["data"]
    out = [
        f"dry run of {p['space']}: nothing is trained or written",
        f"data     {d['dataset']}: {d['train']} training images ({100 * d['val_fraction']:.0f}% "
        f"held out for validation), {d['test']} test, {d['input_shape']}, {d['classes']} classes",
        "models   " + ", ".join(f"{m} ({n:,} params)" for m, n in p["models"].items()),
        f"paths    {p['paths']} distinct paths, {p['epochs']} epochs per hop",
        f"train    {p['train']}",
        "phases",
    ]
    for ph in p["phases"]:
        trials = ph["trials"] if ph["trials"] is not None else "as many as fit"
        extra = ""
        if ph["phase"] == "search":
            budget = f", time budget {fmt_seconds(ph['time_budget_s'])}" if ph.get(
                "time_budget_s"
            ) else ""  # fmt: skip
            extra = f" ({ph['sampler']} sampler, {ph['scheduler']} scheduler{budget})"
        if ph["phase"] in ("blkd", "tune"):
            what = "BLKD" if ph["phase"] == "blkd" else "the heuristic's path"
            extra = f" ({what}: as many proposals as the search)"
        if ph["phase"] == "select":
            extra = f" (each procedure's top-k x selection seeds {ph['select_seeds']})"
        if ph["phase"] == "confirm":
            extra = (
                f" (the chosen path, BLKD, heuristic, NoKD and BLKD at the path's own T/alpha "
                f"x report seeds {ph['seeds']})"
            )
        out.append(
            f"  {ph['phase']:8s} {trials} trials{extra}, at most {ph['hops_at_most']} new hops"
        )
    r = p["resources"]
    conc = r["concurrency"] if r["concurrency"] is not None else "what the cluster fits"
    share = r["gpu_per_trial"]
    share = f" ({int(1 / share)} trials share each GPU: use MPS, docs/engine.md)" if (
        0 < share < 1
    ) else ""  # fmt: skip
    out.append(
        f"resources {r['cpu_per_trial']} CPU + {r['gpu_per_trial']} GPU per trial on "
        f"{r['device']}, {conc} trials at once, on {r['ray']}{share}"
    )
    c = p["compute"]
    per = ", ".join(f"{m} {1000 * v['step_s']:.1f} ms/step" for m, v in c["probe"].items())
    out.append(f"probe    {per} ({c['steps_per_epoch']} steps per epoch)")
    wall = (
        f", about {fmt_seconds(c['wall_s_at_most'])} of wall time at that concurrency"
        if c["wall_s_at_most"] is not None
        else ""
    )
    out.append(
        f"compute  at most {fmt_seconds(c['train_s_at_most'])} of training{wall} (no reuse, "
        "no early stop: the store and ASHA make it less)"
    )
    w = p["where"]
    out.append(f"results  {w['run_dir']}")
    out.append(f"store    {w['store'] or 'none (--no-store: nothing reused or kept)'}")
    out.append(p["disk"]["text"])
    return "\n".join(out)

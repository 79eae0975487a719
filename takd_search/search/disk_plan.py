"""The disk a run will need, against the free space where it writes (issue 25).

`takd-search run --dry-run` prints it; a real run refuses in one line (`DiskWontFit`, exit
2) before anything is written when it cannot fit. What is counted, each an upper bound:

* **store hops**: every hop the phases may train (the dry run's `hops_at_most`: no reuse,
  no ASHA stop), each `weights.pt` = selected weights + each snapshot epoch + the final
  weights, sized from the model's state_dict (fp32);
* **logit banks**: only shared parents are banked (engine/banks.py): the teacher, once
  per child seed (search, selection and report seeds) and per parent weights (its selected
  weights, its `parent_fraction` snapshots), one bank per epoch with augmentation, [N_train,
  C] fp16 each; never more than the bank cap (TAKD_BANK_CAP, default 16 GiB);
* **checkpoints**: a resumable checkpoint per concurrently training hop (weights,
  momentum, selected weights, snapshots), twice while it is replaced;
* **run folder**: Tune's per-epoch result rows of every trial, the CSVs and reports;
* a fixed margin for Ray's session files and logs.

For `cifar100_vgg` at full size (45,000 training images, 100 classes, 150 epochs) this is
about 23 GiB (docs/engine.md, bench/RESULTS.md); banking every parent, as before, was
60-110 GB of banks alone.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from takd_search.config import ParamSpace
from takd_search.engine.banks import DEFAULT_CAP, bank_bytes, parse_bytes
from takd_search.errors import UserError
from takd_search.models import create_model_from_name
from takd_search.search.methods import trial_counts
from takd_search.search.space import PathSpace, snapshot_epochs

GiB = 1 << 30
# per trial and epoch, an upper bound: Tune's result row (a JSON line and a CSV row, ~1-2
# KB with the trial's config), this tool's curve row, and the trial's share of Tune's
# experiment state (7.6 KB per trial in the CPU rehearsal, bench/RESULTS.md)
RUN_BYTES_PER_TRIAL_EPOCH = 8 << 10
RUN_FIXED_BYTES = 64 << 20  # space.json, CSVs, report, Tune's experiment state
RAY_MARGIN_BYTES = 1 << 30  # Ray's session folder (logs, spilled objects) and slack


class DiskWontFit(UserError):
    """The run's disk estimate exceeds the free space where it writes."""


@dataclass
class DiskEstimate:
    """Bytes a run may write, by kind, and the free space it is compared with."""

    store_hops: int
    banks: int
    banks_planned: int  # before the cap
    bank_cap: int
    checkpoints: int
    run_folder: int
    margin: int = RAY_MARGIN_BYTES
    hops: int = 0
    bank_files: int = 0
    bounded: bool = True  # False: search.n_trials unset, the search part is not counted
    free: dict[str, int] = field(default_factory=dict)  # folder -> free bytes on its disk
    already: int = 0  # bytes a resumed run already has on disk (not needed again)

    @property
    def total(self) -> int:
        return self.store_hops + self.banks + self.checkpoints + self.run_folder + self.margin

    @property
    def needed(self) -> int:
        return max(0, self.total - self.already)

    def shortfall(self) -> tuple[str, int] | None:
        """(folder, free bytes) of a disk that cannot hold what is written to it, or None.
        Store and run folder on one disk are compared together."""
        if not self.free:
            return None
        least = min(self.free.items(), key=lambda kv: kv[1])
        return least if least[1] < self.needed else None

    def text(self) -> str:
        """One line for the dry run."""
        cap = f" (cap {self.bank_cap / GiB:.0f} GiB)" if self.banks < self.banks_planned else ""
        parts = (
            f"store hops {self.store_hops / GiB:.1f} GiB ({self.hops} hops), "
            f"banks {self.banks / GiB:.1f} GiB ({self.bank_files} files{cap}), "
            f"checkpoints {self.checkpoints / GiB:.2f} GiB, run folder "
            f"{self.run_folder / GiB:.2f} GiB, margin {self.margin / GiB:.0f} GiB"
        )
        free = "; ".join(f"{f / GiB:.1f} GiB free at {p}" for p, f in self.free.items())
        verdict = ""
        if self.shortfall():
            verdict = " -> does NOT fit: the run would be refused"
        unbounded = "" if self.bounded else " (search.n_trials unset: search not counted)"
        return (
            f"disk     at most {self.needed / GiB:.1f} GiB{unbounded}: {parts}; "
            f"{free or 'free space unknown'}{verdict}"
        )


def state_bytes(name: str, classes: int, input_shape) -> int:
    """Bytes of one fp32 state_dict of model `name` (weights and BatchNorm buffers)."""
    with torch.device("meta"):  # shapes only: nothing allocated
        net = create_model_from_name(name, classes, input_shape)
    return sum(t.numel() * t.element_size() for t in net.state_dict().values())


def estimate(
    space,
    *,
    n_train: int,
    classes: int,
    input_shape,
    epochs: int,
    augment: str,
    sizes: dict[str, int],
    concurrency: int,
    n_search: int | None,
    bank_cap: int,
) -> DiskEstimate:
    """The disk estimate of a run of `space` (see the module doc). n_search: the search's
    trial count (None: unset). sizes: parameters per model name (a brought teacher's)."""
    teacher, student, candidates = space.model_names()
    children = [*candidates, student]
    brought = teacher == "teacher"

    def sbytes(m: str) -> int:
        return sizes[m] * 4 if m == "teacher" else state_bytes(m, classes, input_shape)

    snaps = len(snapshot_epochs(space, epochs))
    per_hop = lambda m: (2 + snaps) * sbytes(m) + (64 << 10)  # noqa: E731  # + meta.json
    child_hop = max(per_hop(m) for m in children)
    # the phases' hop bounds, as the dry run counts them (dryrun.plan)
    longest = min(len(candidates), space.max_tas) + 2
    # the run's own trial arithmetic (methods.trial_counts), as the dry run counts it
    counts = trial_counts(space, n_search, heuristic=bool(candidates))
    seeds, select = list(space.baselines.confirm_seeds), counts["select_seeds"]
    n = n_search or 0
    n_blkd, n_tune = counts["blkd"], counts["tune"]
    # selection seeds of every procedure's candidates, report seeds of the chosen ones
    distilled_runs = counts["select"] + counts["confirm"] - len(seeds)
    reseed = bool(space.baselines.reseed_teacher) and not brought
    nokd_models = [m for m in (teacher, *children) if m != "teacher"]
    hops_child = n * (longest - 1) + n_blkd + n_tune * 2  # the heuristic's path: 2 hops
    hops_child += distilled_runs * (longest - 1) + len(seeds)
    store_hops = sum(per_hop(m) for m in nokd_models) + hops_child * child_hop
    store_hops += (distilled_runs * per_hop(teacher)) if reseed else 0
    hops = len(nokd_models) + hops_child + (distilled_runs if reseed else 0)

    # banks: the teacher is the shared parent, once per child seed and parent weights
    child_seeds = {int(space.search.seed), *map(int, select), *map(int, seeds)}
    fracs = [float(f) for f in ParamSpace(space.distill.parent_fraction).values()]
    variants = 1 if brought else snaps + (max(fracs) >= 1.0)
    views = epochs if augment != "none" else 1
    bank_files = len(child_seeds) * max(1, variants) * views
    planned = bank_files * bank_bytes(n_train, classes)
    banks = min(planned, bank_cap)

    biggest = max(sbytes(m) for m in (teacher, *children))
    checkpoints = max(1, concurrency) * 2 * (3 + snaps) * biggest
    # the dry run's trial counts: NoKD, search, BLKD, tune, selection, confirmation
    trials = len([teacher, *children]) + n + n_blkd + n_tune + counts["select"]
    trials += counts["confirm"]
    run_folder = trials * epochs * RUN_BYTES_PER_TRIAL_EPOCH + RUN_FIXED_BYTES
    return DiskEstimate(
        store_hops=store_hops,
        banks=banks,
        banks_planned=planned,
        bank_cap=bank_cap,
        checkpoints=checkpoints,
        run_folder=run_folder,
        hops=hops,
        bank_files=min(bank_files, bank_cap // bank_bytes(n_train, classes)),
        bounded=n_search is not None,
    )


def free_space(places: list) -> dict[str, int]:
    """Free bytes per disk: {first folder on that disk: free}; folders not made yet are
    measured at their nearest existing parent."""
    out: dict[str, int] = {}
    seen: set[int] = set()
    for p in places:
        if p is None:
            continue
        q = Path(p).resolve()
        while not q.exists() and q != q.parent:
            q = q.parent
        try:
            dev = os.stat(q).st_dev
            free = shutil.disk_usage(q).free
        except OSError:
            continue
        if dev not in seen:
            seen.add(dev)
            out[str(p)] = free
    return out


def du(path) -> int:
    """Bytes of the files under `path` (0 when absent)."""
    p = Path(path)
    if not p.exists():
        return 0
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def for_plan(
    space, ds, sizes, train, results_dir, store, concurrency: int, resume=None
) -> DiskEstimate:
    """The estimate of a checked run (RunPlan fields), with the free space of its disks."""
    train_part = ds.split(space.data.val_fraction, space.data.split_seed)[0]
    n_search = space.search.n_trials
    if space.search.sampler == "grid" and n_search is None:
        n_search = PathSpace(space, sizes, classes=ds.num_classes).grid_size()
    est = estimate(
        space,
        n_train=len(train_part),
        classes=ds.num_classes,
        input_shape=ds.input_shape,
        epochs=train.epochs,
        augment=space.data.augment or ds.augment,
        sizes=sizes,
        concurrency=concurrency,
        n_search=n_search,
        bank_cap=parse_bytes(os.environ.get("TAKD_BANK_CAP") or DEFAULT_CAP),
    )
    if store is None:  # --no-store: nothing kept but the run folder
        est.store_hops = est.banks = est.checkpoints = est.bank_files = 0
    est.free = free_space([store, results_dir])
    if resume is not None and store is not None:  # what a resumed run wrote is there
        est.already = du(resume) + du(Path(store) / "hops") + du(Path(store) / "banks")
    return est


def check_fits(est: DiskEstimate) -> None:
    """One line, exit 2, when the estimate does not fit (TAKD_DISK_CHECK=0 skips it)."""
    if os.environ.get("TAKD_DISK_CHECK", "1") in ("0", "off", "no"):
        return
    short = est.shortfall()
    if short:
        where, free = short
        raise DiskWontFit(
            f"the run needs up to {est.needed / GiB:.1f} GiB of disk but {where} has "
            f"{free / GiB:.1f} GiB free: free space there, move --results/--store to a "
            "bigger disk, lower TAKD_BANK_CAP or --trials (the estimate is an upper bound: "
            "TAKD_DISK_CHECK=0 skips this check)"
        )

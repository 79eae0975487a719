"""Run one path (teacher -> assistants -> student) hop by hop through the hop store.

A path is a list of canonical model names, largest first. Each hop trains the next model
from its parent's soft targets (`chain` guidance) or from the averaged soft targets of
every earlier model of the path (`dense`, DGKD-style). The first model trains from
scratch. Every hop goes through `Store.get_or_train`, so a prefix shared with an earlier
trial or run is loaded instead of trained, and every parent's logits for a view schedule
come from its logit bank when one exists."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from takd_search import models
from takd_search.engine.augment import DeviceData
from takd_search.engine.distill import accuracy, load_model, precision, train_logits
from takd_search.engine.hop import HopParams, HopResult, HopSpec, TrainConfig
from takd_search.engine.path import PathError
from takd_search.engine.store import Store
from takd_search.engine.train import TrainingDiverged, train_hop

GUIDANCE = ("chain", "dense")


@dataclass
class Context:
    """What every hop of a run shares: data on the device, training recipe, store."""

    data: DeviceData
    train: TrainConfig
    store: Store
    snapshot_epochs: tuple[int, ...] = ()
    on_event: Callable[[str, dict], None] | None = None
    # models a user brought (issue: bring your own teacher): name -> (spec, result, module)
    external: dict = field(default_factory=dict)
    # measure each hop on the test split: only where a test number is reported (run-path,
    # NoKD/BLKD baselines, confirmation); search trials select on validation alone
    evaluate_test: bool = True

    def emit(self, kind: str, **info) -> None:
        if self.on_event is not None:
            self.on_event(kind, info)

    def spec(self, model: str, seed: int, **kw) -> HopSpec:
        return HopSpec(
            data=self.data.ds.fingerprint,
            val_fraction=self.data.val_fraction,
            split_seed=self.data.split_seed,
            model=model,
            train=replace(self.train, augment=self.data.augment),
            seed=seed,
            precision=precision(self.data.device),
            **kw,
        )

    def make(self, model: str) -> Callable[[], torch.nn.Module]:
        return lambda: models.create_model_from_name(
            model, self.data.num_classes, self.data.input_shape
        )


@dataclass
class Trained:
    """One hop as the chain sees it: lineage, result, whether it came from the store."""

    name: str
    spec: HopSpec
    result: HopResult
    reused: bool


def bank_key(
    parent: HopSpec, parent_epoch: int | None, data: DeviceData, seed: int, epoch: int
) -> str:
    """Identity of a parent's logits for one epoch's views: parent lineage, which of its
    weights, the view schedule (augmentation, the child's seed, the epoch) and the split.
    Without augmentation every epoch shows the same views, so the epoch is dropped."""
    views_epoch = epoch if data.augment != "none" else 0
    blob = f"{parent.key}|{parent_epoch}|{data.augment}|{seed}|{views_epoch}"
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def bank_series(parent: HopSpec, parent_epoch: int | None, data: DeviceData, seed: int) -> str:
    """The banks of every epoch of one (parent, weights, view schedule): what children
    share, and what the bank policy counts readers of (engine/banks.py)."""
    return bank_key(parent, parent_epoch, data, seed, -1)


def teacher_logits(
    ctx: Context,
    parent: Trained,
    parent_epoch: int | None,
    seed: int,
    reader: str | None = None,
):
    """A per-epoch provider of the parent's logits for a child with seed `seed`.

    Logits are rounded to fp16 whether they come from the bank or a live forward pass,
    so a child trains on identical targets either way (same lineage, same network).
    reader: the child's key. Banks are written only for parents that will be read again
    (engine/banks.py): one trained from scratch or brought, or one a second child reads;
    other parents' logits are computed live (without augmentation, once, kept in memory).
    """
    cache: dict[str, torch.Tensor] = {}
    module: list[torch.nn.Module] = []
    shared = parent.name in ctx.external or parent.spec.from_scratch
    series = bank_series(parent.spec, parent_epoch, ctx.data, seed)
    bank = ctx.store.banks.wants(series, reader, shared)

    def get(epoch: int) -> torch.Tensor:
        key = bank_key(parent.spec, parent_epoch, ctx.data, seed, epoch)
        if key in cache:
            return cache[key]
        logits = ctx.store.load_bank(key)
        if logits is None:
            if not module:
                state = (
                    None  # a brought teacher: its module is ctx.external's
                    if parent.name in ctx.external
                    else parent.result.state
                    if parent_epoch is None
                    else parent.result.snapshots[parent_epoch]
                )
                module.append(ext_or_build(ctx, parent.name, state))
            logits = train_logits(module[0], ctx.data, ctx.data.views(seed, epoch))
            ctx.store.stats.parent_passes += 1
            if bank:  # written by the background writer, served from memory until then
                ctx.store.save_bank(key, logits)
        cache.clear()  # one epoch at a time: banks with augmentation are [N, C] each
        cache[key] = logits.to(ctx.data.device, torch.float16).float()
        return cache[key]

    return get


def ext_or_build(ctx: Context, name: str, state: dict) -> torch.nn.Module:
    """A parent module in eval mode: the user's own teacher, or one of ours with `state`."""
    if name in ctx.external:
        return ctx.external[name][2]
    return load_model(ctx.make(name), state, ctx.data.device)


def train_one(
    ctx: Context,
    name: str,
    seed: int,
    parents: Sequence[Trained] = (),
    params: HopParams | None = None,
    *,
    need_snapshots: tuple[int, ...] = (),
    label: dict | None = None,
) -> Trained:
    """Train (or load) model `name`, distilled from `parents` with `params`."""
    if name in ctx.external:
        spec, result, _ = ctx.external[name]
        return Trained(name, spec, result, True)
    params = params or HopParams()
    if parents and parents[-1].name in ctx.external and params.parent_epoch is not None:
        params = replace(params, parent_epoch=None)  # a brought teacher has no epochs
    if parents:
        spec = ctx.spec(
            name,
            seed,
            parents=tuple(p.spec.key for p in parents),
            T=params.T,
            alpha=params.alpha,
            kd_epochs=params.kd_epochs,
            parent_epoch=params.parent_epoch,
        )
    else:
        spec = ctx.spec(name, seed)
    # an entry lacking a needed snapshot is never replaced: its fork is trained instead
    canon = ctx.store.resolve(spec.canonical(), need_snapshots)
    info = {"model": name, "key": canon.key, **(label or {})}

    def train() -> HopResult:
        ctx.emit("hop_start", **info, status="training")
        teachers = []
        if canon.parents:
            for i, p in enumerate(parents):
                # teacher early stop applies to the direct parent (the last one)
                pe = params.parent_epoch if i == len(parents) - 1 else None
                teachers.append(teacher_logits(ctx, p, pe, seed, reader=canon.key))
        snaps = tuple(sorted(set(ctx.snapshot_epochs) | set(need_snapshots)))
        try:
            return _train(teachers, snaps)
        finally:
            # the hop's last banks are on disk before it counts as done (at most the
            # writer's queue to wait for): a later process finds them
            ctx.store.banks.flush()

    def _train(teachers, snaps) -> HopResult:
        return train_hop(
            ctx.make(name),
            ctx.data,
            ctx.train,
            seed=seed,
            teachers=teachers,
            T=params.T,
            alpha=params.alpha if canon.parents else 0.0,
            kd_epochs=canon.kd_epochs,
            snapshot_epochs=snaps,
            on_epoch=lambda row: ctx.emit("epoch", **info, **row),
            # a retried trial continues the hop from its last checkpoint
            resume=ctx.store.resume_state(canon.key),
            on_checkpoint=lambda state: ctx.store.checkpoint(canon.key, state),
            evaluate_test=ctx.evaluate_test,
            name=name,
        )

    result, reused = ctx.store.get_or_train(canon, train, need_snapshots=need_snapshots)
    if ctx.evaluate_test and result.test_acc is None:
        # trained by a search hop, which never looks at the test set: measured now, from
        # the stored weights (the entry itself is never rewritten)
        module = load_model(ctx.make(name), result.state, ctx.data.device)
        result = replace(result, test_acc=accuracy(module, ctx.data, "test"))
    trained = Trained(name, canon, result, reused)
    ctx.emit(
        "hop_end",
        **info,
        status="reused" if reused else "trained",
        val_acc=result.val_acc,
        test_acc=result.test_acc,
        seconds=result.seconds,
    )
    return trained


def run_chain(
    ctx: Context,
    path: Sequence[str],
    hops: Sequence[HopParams] | HopParams | None = None,
    *,
    guidance: str = "chain",
    seed: int = 0,
    teacher_seed: int | None = None,
) -> list[Trained]:
    """Train every model of `path` in order; returns one `Trained` per model.

    hops: the settings of hop 1..k (one per child), or one HopParams for all.
    teacher_seed: the seed of the first model when it is a teacher (a path of two or more
    models); None: `seed`, as every other model. Seeded confirmation keeps the search's
    teacher this way and retrains only what distils from it.
    """
    if guidance not in GUIDANCE:
        raise PathError(f"unknown guidance {guidance!r}: use chain or dense")
    path = list(path)
    if hops is None or isinstance(hops, HopParams):
        hops = [hops or HopParams()] * (len(path) - 1)
    if len(hops) != len(path) - 1:
        raise PathError(f"{len(path)} models need {len(path) - 1} hop settings, got {len(hops)}")
    done: list[Trained] = []
    for i, name in enumerate(path):
        params = hops[i - 1] if i else None
        child_pe = hops[i].parent_epoch if i < len(hops) else None
        parents = [] if i == 0 else (done[:] if guidance == "dense" else [done[-1]])
        own_seed = teacher_seed if i == 0 and len(path) > 1 and teacher_seed is not None else seed
        try:
            trained = train_one(
                ctx,
                name,
                own_seed,
                parents,
                params,
                need_snapshots=(child_pe,) if child_pe else (),
                label={"hop": i + 1, "hops": len(path), "parent": done[-1].name if i else None},
            )
        except TrainingDiverged as e:
            # what the caller needs for a table with the failed hop: the hops before it
            e.chain, e.model, e.hop = list(done), name, i + 1
            raise
        done.append(trained)
    return done


def hop_rows(chain: Sequence[Trained], hops: Sequence[HopParams] | None = None) -> list[dict]:
    """One flat dict per hop, for tables and JSON."""
    rows = []
    for i, t in enumerate(chain):
        s, r = t.spec, t.result
        rows.append(
            {
                "hop": i + 1,
                "model": t.name,
                "parent": chain[i - 1].name if i else None,
                "params": r.params,
                "T": s.T,
                "alpha": s.alpha,
                "kd_epochs": s.kd_epochs,
                "parent_epoch": s.parent_epoch,
                # "given": a brought teacher used as it came (measured, never trained here)
                "status": "given"
                if s.teacher and not r.epochs
                else "reused"
                if t.reused
                else "trained",
                "val_acc": r.val_acc,
                "test_acc": r.test_acc,
                "best_epoch": r.best_epoch,
                "epochs": r.epochs,
                "seconds": round(r.seconds, 2),
                "seconds_saved": round(r.seconds, 2) if t.reused and r.epochs else 0.0,
                "key": s.key,
                # per-epoch learning curve (epoch, train_loss, train_acc, val_acc, lr, kd,
                # seconds): what report plots as KD-vs-alone curves; [] for a brought teacher
                "curve": list(r.curve),
            }
        )
    return rows

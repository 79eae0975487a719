"""Training one hop: the SGD loop with warm-up and cosine, divergence and did-not-learn checks.

The loss is distill.kd_loss (Hinton's); the parents never run here: the caller hands in,
per epoch, their logits for every training image under that epoch's views (computed
live or read from a logit bank), so a hop's cost is independent of its parents' size.
A hop that diverges or ends near chance raises (TrainingDiverged / HopDidNotLearn): a
network that did not learn is a failed hop, never a result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from functools import partial

import torch

from takd_search.engine.augment import DeviceData
from takd_search.engine.distill import (
    TeacherLogits,
    accuracy,
    autocast,
    deterministic,
    evaluate,
    kd_terms,
    soft_targets,
)
from takd_search.engine.hop import HopResult, TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite or absurdly large: the hop stops at once and is
    never stored."""


class HopDidNotLearn(TrainingDiverged):
    """The hop ended near chance: its best validation accuracy is within a small margin
    of chance, or its cross-entropy never fell clearly below ln C. Like divergence it is
    a failed hop (never stored, remembered as failed), not a result: a dead hop that a
    search or a confirmation averaged in would bias every number built on it."""


# A healthy loss stays within a few times log(classes) (T^2 * KL adds at most a few
# hundred at T = 20). Above this the run has blown up even if BatchNorm later drags it
# back to chance accuracy, which is what lr = 50 does on digits (loss ~1e17, finite).
DIVERGED_LOSS = 1e6


# Steps between divergence checks. The check reads the worst loss back to the host, which
# on an accelerator waits for every queued kernel: it is the one read-back a training step
# may make. On a CPU the read is free, so every step is checked (the loss is caught at once).
CHECK_EVERY = 16
CHECK_EVERY_CPU = 1


# "Did not learn": the best validation accuracy is not clearly above chance, i.e. within
# LEARNED_SIGMAS binomial standard errors of guessing (or LEARNED_MIN_MARGIN, whichever is
# larger; 144 digits val images: 17.5% for 10 classes), or its validation cross-entropy
# stayed within a factor LEARNED_LOSS_FRACTION of ln C all along (outputs near uniform).
# A network that learns anything beats both after one epoch on every data set measured
# (docs/engine.md).
LEARNED_SIGMAS = 3.0


LEARNED_MIN_MARGIN = 0.02


LEARNED_LOSS_FRACTION = 0.95


def _lr_factor(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    if cfg.schedule == "step":
        epoch = step // steps_per_epoch
        return 0.1 ** ((epoch >= cfg.epochs * 0.5) + (epoch >= cfg.epochs * 0.75))
    if cfg.schedule == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {cfg.schedule!r}: use cosine, step or constant")


def learning_problem(
    name: str, curve: Sequence[dict], val_labels: torch.Tensor, num_classes: int
) -> str | None:
    """Why a finished hop counts as not learned (one line naming the fix), or None.

    chance: the share of the most frequent class in the validation split (1/C when the
    split is balanced; a network that always answers one class scores at most this).
    The cross-entropy is the validation images' (un-augmented), not the training views':
    under pad-4 crops of 8x8 digits a distilled plain2's training cross-entropy stays above
    ln C (2.53) while its validation accuracy climbs to 53% (docs/engine.md).
    """
    n = len(val_labels)
    ln_c = math.log(num_classes)
    best_val = max((r["val_acc"] for r in curve), default=float("nan"))
    best_ce = min((r.get("val_ce", float("nan")) for r in curve), default=float("nan"))
    fix = "add warm-up (train.warmup_epochs) or lower train.lr"
    if n and best_val == best_val:
        counts = torch.bincount(val_labels.cpu(), minlength=num_classes).float()
        chance = float(counts.max() / n)
        margin = max(LEARNED_MIN_MARGIN, LEARNED_SIGMAS * math.sqrt(chance * (1 - chance) / n))
        # past halfway from chance to 100% is learned however few the validation images
        if best_val <= min(chance + margin, (1 + chance) / 2):
            return (
                f"{name} did not learn (val {100 * best_val:.1f}%, chance "
                f"{100 * chance:.1f}%): {fix}"
            )
    # stuck at ln C = outputs near uniform, the dead hop's signature; a cross-entropy far
    # above ln C is confidence (e.g. a student of a wrongly fed teacher), judged by accuracy
    if (
        best_ce == best_ce
        and LEARNED_LOSS_FRACTION * ln_c <= best_ce <= ln_c / LEARNED_LOSS_FRACTION
    ):
        return (
            f"{name} did not learn (cross-entropy never below {best_ce:.3f}, "
            f"ln C = {ln_c:.3f}): {fix}"
        )
    return None


def _check(worst: float, epoch: int, step: int, lr: float) -> None:
    if not worst <= DIVERGED_LOSS:  # also catches NaN
        raise TrainingDiverged(
            f"the loss diverged to {worst:.3g} in epoch {epoch} (step {step}) at peak "
            f"learning rate {lr:g}: lower the learning rate"
        )


def _hop_state(
    model, opt, epoch, curve, best_val, best_epoch, best_state, snapshots, seconds
) -> dict:
    """Everything `train_hop(resume=...)` needs to continue after `epoch`."""
    return {
        "epoch": epoch,
        "model": _cpu_state(model),
        "opt": opt.state_dict(),
        "curve": list(curve),
        "best_val": best_val,
        "best_epoch": best_epoch,
        "best_state": best_state,
        "snapshots": dict(snapshots),
        "seconds": seconds,
    }


def _cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train_hop(
    make_model: Callable[[], torch.nn.Module],
    data: DeviceData,
    cfg: TrainConfig,
    *,
    seed: int = 0,
    teachers: Sequence[TeacherLogits] = (),
    T: float = 4.0,
    alpha: float = 0.0,
    kd_epochs: int | None = None,
    snapshot_epochs: Sequence[int] = (),
    on_epoch: Callable[[dict], None] | None = None,
    resume: dict | None = None,
    on_checkpoint: Callable[[Callable[[], dict]], None] | None = None,
    evaluate_test: bool = True,
    name: str = "the network",
    require_learning: bool = True,
) -> HopResult:
    """Train one network; distil from `teachers` (if any) during the first `kd_epochs`.

    make_model: builds the child (called after seeding, so initialisation is seeded).
    teachers: per-epoch logit providers of the parents (dense guidance averages their
    soft targets). kd_epochs: student early stop; after that many epochs the hop trains
    on hard labels only (None: all epochs). snapshot_epochs: 1-based epochs whose weights
    are kept (for children that distil from an early-stopped parent).
    on_epoch: called after every epoch with that epoch's curve row.
    on_checkpoint: called after every epoch with a function that returns the hop's full
    state (cheap to call, costly to run: the caller decides when to save); `resume`
    continues from such a state. Views depend only on (seed, epoch), so a resumed hop
    trains exactly as an uninterrupted one would.
    evaluate_test: measure the selected weights on the test split (False: test_acc is
    None; a search hop never looks at the test set). name: the model, for messages.
    Raises TrainingDiverged as soon as the loss is not finite, and HopDidNotLearn (a
    TrainingDiverged) at the end when the hop stayed near chance (`learning_problem`).
    """
    torch.manual_seed(seed)
    device = data.device
    deterministic(device)  # GPU hops as repeatable as the kernels allow (docs/engine.md)
    model = make_model().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if cfg.optimizer != "sgd":
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}: use sgd")
    # no weight decay on BN/bias (decaying BN scales fights BN; measured: docs/engine.md)
    exempt = not cfg.weight_decay_all
    decay = [p for p in model.parameters() if p.ndim > 1 or not exempt]
    no_decay = [p for p in model.parameters() if p.ndim <= 1 and exempt]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    groups += [{"params": no_decay}] if no_decay else []
    opt = torch.optim.SGD(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        # one kernel for all parameters instead of a loop of small ops per tensor: ~5x
        # cheaper steps on CPU (a quarter of plain10's hop time on digits went to the
        # for-loop step); the same update up to float rounding
        fused=device.type in ("cpu", "cuda"),
    )
    n = data.n_train
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    kd_epochs = cfg.epochs if kd_epochs is None else kd_epochs
    keep = set(snapshot_epochs)

    start = time.perf_counter()
    curve: list[dict] = []
    best_val, best_epoch, best_state, snapshots = -1.0, 0, None, {}
    first, before = 1, 0.0  # first epoch to train; seconds spent before a resume
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        curve, snapshots = list(resume["curve"]), dict(resume["snapshots"])
        best_val, best_epoch, best_state = (
            resume["best_val"],
            resume["best_epoch"],
            resume["best_state"],
        )
        first, before = resume["epoch"] + 1, resume["seconds"]
    step = (first - 1) * steps_per_epoch
    for epoch in range(first, cfg.epochs + 1):
        model.train()
        # the epoch's order, crop shifts and flips, copied to the device here, once: a step
        # then only slices and gathers on the device (no host-to-device copy, no sync)
        views = data.views(seed, epoch)
        distil = bool(teachers) and alpha > 0 and epoch <= kd_epochs
        targets_all = soft_targets([t(epoch) for t in teachers], T) if distil else None
        loss_sum = torch.zeros((), device=device)
        ce_sum = torch.zeros((), device=device)
        worst = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        check_every = CHECK_EVERY_CPU if device.type == "cpu" else CHECK_EVERY
        for i in range(0, n, cfg.batch_size):
            idx = views.order[i : i + cfg.batch_size]  # on the device
            b = min(cfg.batch_size, n - i)  # len(idx) without asking the device
            x = data.train_batch(idx, views)
            if device.type == "cuda" and x.dim() == 4:  # images; signals stay [B, C, L]
                x = x.contiguous(memory_format=torch.channels_last)
            y = data.y_train[idx]
            lr = cfg.lr * _lr_factor(cfg, step, total, steps_per_epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            with autocast(device):
                logits = model(x)
            targets = targets_all[idx] if targets_all is not None else None
            loss, ce = kd_terms(logits, targets, y, T, alpha if distil else 0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * b
            ce_sum += ce.detach() * b
            # nan_to_num: NaN compares False, so count it as +inf for the check
            worst = torch.maximum(worst, torch.nan_to_num(loss.detach(), nan=math.inf))
            correct += (logits.detach().argmax(1) == y).sum()
            step += 1
            if step % check_every == 0 or i + cfg.batch_size >= n:
                _check(worst.item(), epoch, step, cfg.lr)
        train_loss = loss_sum.item() / n
        val, val_ce = evaluate(model, data, "val")
        row = {
            "epoch": epoch,
            "train_loss": round(train_loss, 6),
            # the hard-label part alone: comparable with ln C whether or not the hop distils
            "train_ce": round(ce_sum.item() / n, 6),
            "train_acc": round(correct.item() / n, 6),
            "val_acc": round(val, 6),
            "val_ce": round(val_ce, 6),
            "lr": lr,
            "kd": distil,
            "seconds": round(before + time.perf_counter() - start, 3),
        }
        curve.append(row)
        if val > best_val:
            best_val, best_epoch, best_state = val, epoch, _cpu_state(model)
        if epoch in keep:
            snapshots[epoch] = _cpu_state(model)
        if on_checkpoint is not None and epoch < cfg.epochs:
            # before the report: Ray may stop the trial right after it (a thunk: the store
            # decides whether this epoch is worth saving)
            on_checkpoint(
                partial(
                    _hop_state,
                    model,
                    opt,
                    epoch,
                    curve,
                    best_val,
                    best_epoch,
                    best_state,
                    snapshots,
                    before + time.perf_counter() - start,
                )
            )
        if on_epoch is not None:
            on_epoch(row)

    # require_learning=False only for throughput benchmarks on random labels, which time
    # the training and never store or report its outcome
    problem = learning_problem(name, curve, data.y_val, data.num_classes)
    if problem and require_learning:
        raise HopDidNotLearn(problem)
    last_val = curve[-1]["val_acc"]
    final_state = _cpu_state(model)
    model.load_state_dict(best_state)
    test = accuracy(model, data, "test") if evaluate_test else None
    return HopResult(
        val_acc=best_val,
        val_acc_last=last_val,
        best_epoch=best_epoch,
        test_acc=test,
        epochs=cfg.epochs,
        params=params,
        seconds=before + time.perf_counter() - start,
        curve=curve,
        state=best_state,
        snapshots={**snapshots, cfg.epochs: final_state},
        device=str(device),
    )

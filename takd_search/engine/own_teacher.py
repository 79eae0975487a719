"""A user's teacher as the first model of a chain: built, measured, optionally fine-tuned
(one ordinary hop in the store), and attached to the chain's context as a `Trained`
whose weights are the file's.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
from torch import nn

from takd_search.engine.chain import Trained
from takd_search.engine.distill import accuracy, load_model, precision
from takd_search.engine.hop import HopResult, HopSpec, TrainConfig
from takd_search.engine.train import train_hop
from takd_search.models import count_params
from takd_search.teacher.build import build_teacher
from takd_search.teacher.source import NAME, TeacherSource


def _on_device(module: nn.Module, device) -> nn.Module:
    module = module.to(device)
    if torch.device(device).type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    return module.eval()


# ---- joining a run ------------------------------------------------------------------------
# the teacher hop of a teacher used as given: trained elsewhere, nothing trained here
AS_GIVEN = dict(
    epochs=0,
    batch_size=0,
    lr=0.0,
    momentum=0.0,
    nesterov=False,
    weight_decay=0.0,
    warmup_epochs=0,
    augment="none",
)


def attach_teacher(ctx, source: TeacherSource, *, seed: int = 0):
    """Make `source` the path token `teacher` of Context `ctx` (ctx.external) and return
    its `chain.Trained`: measured on the validation and test splits (or loaded from the
    store when this file, contract and split were measured before), fine-tuned first when
    asked. Children distil from it like from any parent."""
    data = ctx.data
    ds = data.ds

    def fresh() -> nn.Module:  # takes the run's input, normalised with its statistics
        return build_teacher(source, ds.num_classes, ds.input_shape, data.mean, data.std)

    ft = source.finetune
    if ft is not None:
        cfg = replace(
            ctx.train,
            epochs=ft.epochs,
            lr=ft.lr if ft.lr is not None else ctx.train.lr / 10,
            schedule="cosine",
            warmup_epochs=0,
            augment=data.augment,
        )
        seed_used = seed
    else:
        cfg, seed_used = TrainConfig(**AS_GIVEN), 0
    spec = HopSpec(
        data=ds.fingerprint,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
        model=NAME,
        train=cfg,
        seed=seed_used,
        teacher=source.digest,
        precision=precision(data.device),
    )
    info = {"model": NAME, "key": spec.key}

    if ft is not None:

        def train():
            ctx.emit("hop_start", **info, status="fine-tuning")
            return train_hop(
                fresh,
                data,
                cfg,
                seed=seed_used,
                on_epoch=lambda row: ctx.emit("epoch", **info, **row),
                name="the fine-tuned teacher",
            )

        result, reused = ctx.store.get_or_train(spec, train)
        module = load_model(fresh, result.state, data.device)
    else:
        module = _on_device(fresh(), data.device)
        result = ctx.store.load(spec.key)
        reused = result is not None
        if result is None:
            t0 = time.perf_counter()
            val, test = accuracy(module, data, "val"), accuracy(module, data, "test")
            result = HopResult(
                val_acc=val,
                val_acc_last=val,
                best_epoch=0,
                test_acc=test,
                epochs=0,
                params=count_params(module),
                seconds=time.perf_counter() - t0,
                device=str(data.device),
            )
            if ctx.store.reuse:
                ctx.store.save(spec, result)
    ctx.emit(
        "hop_end",
        **info,
        status="reused" if reused else ("fine-tuned" if ft else "measured"),
        val_acc=result.val_acc,
        test_acc=result.test_acc,
        seconds=result.seconds,
    )
    ctx.external[NAME] = (spec, result, module)
    return Trained(NAME, spec, result, reused)

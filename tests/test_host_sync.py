"""No host synchronisation in the training step (issue 25).

No GPU runs the tests, so the proof is a count on the CPU of every call that would copy
between host and device or read a value back on an accelerator: `Tensor.to/.cpu/.cuda/
.numpy/.tolist`, tensors made from host data (`torch.tensor`, `torch.as_tensor`), and
every scalar read (`aten._local_scalar_dense`: `.item()`, `bool()`, `int()`, `float()`,
seen by a dispatch mode, so no path around the Python spies escapes it).

One epoch is trained at two batch sizes (81 and 11 steps): were any step to transfer, the
count would grow with the steps. It does not, except for the periodic loss check, which
adds exactly one read per check.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from takd_search import models
from takd_search.engine import train as train_mod
from takd_search.engine.augment import DeviceData
from takd_search.engine.distill import load_model, train_logits
from takd_search.engine.hop import TrainConfig

SPIED_METHODS = ("to", "cpu", "cuda", "numpy", "tolist")
SPIED_FUNCTIONS = ("tensor", "as_tensor")


class _Reads(TorchDispatchMode):
    """Counts scalar reads from a tensor (on an accelerator each waits for the device)."""

    def __init__(self, counts: Counter):
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.counts["scalar_read"] += 1
        return func(*args, **(kwargs or {}))


def _counted_epoch(data, teacher, batch_size: int) -> Counter:
    """Transfer-like calls made while train_hop trains one distilled epoch."""
    counts: Counter = Counter()
    with pytest.MonkeyPatch.context() as mp:
        _spy(mp, counts)
        make = lambda: models.create_model_from_name("plain2", 10, data.input_shape)  # noqa: E731
        cfg = TrainConfig(epochs=1, batch_size=batch_size, warmup_epochs=0)
        with _Reads(counts):
            train_mod.train_hop(
                make,
                data,
                cfg,
                seed=1,
                teachers=[teacher],
                T=4.0,
                alpha=0.5,
                evaluate_test=False,
                require_learning=False,
            )
    return counts


def _spy(monkeypatch, counts: Counter) -> None:
    for name in SPIED_METHODS:
        real = getattr(torch.Tensor, name)

        def spy(self, *a, _real=real, _name=name, **k):
            counts[_name] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    for name in SPIED_FUNCTIONS:
        real = getattr(torch, name)

        def fspy(*a, _real=real, _name=name, **k):
            counts[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(torch, name, fspy)


@pytest.fixture
def distil_setup(digits):
    torch.set_num_threads(1)
    data = DeviceData(digits, "cpu", val_fraction=0.1, split_seed=0, augment="crop_flip")
    make = lambda: models.create_model_from_name("plain2", 10, data.input_shape)  # noqa: E731
    parent = load_model(make, make().state_dict(), "cpu")
    banked = {e: train_logits(parent, data, data.views(1, e)) for e in (1,)}
    return data, lambda epoch: banked[epoch]


def test_a_training_step_copies_nothing_between_host_and_device(distil_setup, monkeypatch):
    data, teacher = distil_setup
    monkeypatch.setattr(train_mod, "CHECK_EVERY_CPU", 10**9)  # only the end-of-epoch check
    big, small = 16, 128
    assert (math.ceil(data.n_train / big), math.ceil(data.n_train / small)) == (81, 11)
    many = _counted_epoch(data, teacher, big)
    few = _counted_epoch(data, teacher, small)
    # the same calls for 81 steps as for 11: per step, zero
    assert many == few, (many, few)
    # what remains is per hop or per epoch: the model moved over once, the view schedule
    # (order, shifts, flips) once, the selected weights copied out, and the epoch's end
    # (loss sums, evaluation, the one loss check) reading a few scalars
    assert many["scalar_read"] <= 12 and many["to"] > 0, many


def test_the_loss_check_is_the_one_read_back_and_the_spy_sees_it(distil_setup, monkeypatch):
    """Checked every 4 steps: the reads grow by exactly one per check (so the counter is
    live, and the check is the only per-step read)."""
    data, teacher = distil_setup
    monkeypatch.setattr(train_mod, "CHECK_EVERY_CPU", 10**9)
    base = _counted_epoch(data, teacher, 16)
    monkeypatch.setattr(train_mod, "CHECK_EVERY_CPU", 4)
    checked = _counted_epoch(data, teacher, 16)
    steps = math.ceil(data.n_train / 16)  # 81: checks at steps 4, 8, ..., 80 and the last
    extra = steps // 4
    assert checked["scalar_read"] - base["scalar_read"] == extra == 20
    assert {k: v for k, v in checked.items() if k != "scalar_read"} == {
        k: v for k, v in base.items() if k != "scalar_read"
    }

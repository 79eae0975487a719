"""The bank policy (engine/banks.py): only shared parents' logits go to disk, off the
training thread, within a least-recently-used cap."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from takd_search.engine.augment import DeviceData
from takd_search.engine.banks import Banks, bank_bytes, parse_bytes
from takd_search.engine.chain import Context, bank_series, run_chain
from takd_search.engine.hop import HopParams, TrainConfig
from takd_search.engine.store import Store

HOP = HopParams(T=4.0, alpha=0.5)


@pytest.fixture
def flip_ctx(digits, tmp_path):
    """Digits with flips (a bank per epoch, as CIFAR's crop+flip), 2 epochs per hop."""
    torch.set_num_threads(1)
    data = DeviceData(digits, "cpu", augment="flip")
    return Context(data, TrainConfig(epochs=2, batch_size=128), Store(tmp_path / "s"))


def _banks(store) -> list:
    return sorted((store.root / "banks").glob("*.pt"))


def test_a_one_off_assistant_writes_no_bank_and_a_shared_teacher_is_reused(flip_ctx):
    ctx, store = flip_ctx, flip_ctx.store
    teacher, ta, _ = run_chain(ctx, ["plain6", "plain4", "plain2"], HOP)
    n, c = ctx.data.n_train, 10
    assert (n, bank_bytes(n, c)) == (1293, 29956)
    # the teacher (from scratch) is banked for its 2 epochs; the TA's logits were computed
    # live for its one child: 0 bytes written for it
    banks = _banks(store)
    assert len(banks) == 2 and store.stats.bank_writes == 2
    assert store.stats.bank_bytes_written == sum(p.stat().st_size for p in banks)
    assert all(2 * n * c < p.stat().st_size <= bank_bytes(n, c) for p in banks)
    assert store.stats.parent_passes == 4  # teacher 2 epochs + TA 2 epochs
    # a second student of the same teacher reads its banks: no teacher pass, no write
    run_chain(ctx, ["plain6", "plain2"], HOP)
    assert store.stats.parent_passes == 4 and store.stats.bank_hits == 2
    assert store.stats.bank_writes == 2
    # a second child of the TA makes it shared: from then on its banks are written
    run_chain(ctx, ["plain6", "plain4", "plain2"], [HOP, HopParams(T=2.0, alpha=0.5)])
    assert store.stats.bank_writes == 4 and len(_banks(store)) == 4
    marks = store.root / "readers" / bank_series(ta.spec, None, ctx.data, 0)
    assert len(os.listdir(marks)) == 2


def test_bank_writes_run_off_the_training_thread(flip_ctx, monkeypatch):
    store = flip_ctx.store
    threads = []
    real = store.banks._write
    monkeypatch.setattr(
        store.banks,
        "_write",
        lambda key, t: (threads.append(threading.current_thread().name), real(key, t))[1],
    )
    logits = torch.randn(1293, 10)
    store.save_bank("a" * 32, logits)
    # served from memory while queued, bit-equal to what lands on disk (fp16 there)
    assert store.load_bank("a" * 32) is not None
    store.banks.flush()
    assert threads == ["takd-bank-writer"]
    assert torch.equal(store.load_bank("a" * 32), logits.half())


def test_the_cap_evicts_the_least_recently_used_bank(tmp_path):
    one = bank_bytes(1293, 10)
    store = Store(tmp_path / "s", bank_cap_bytes=int(2.5 * one))
    t = torch.randn(1293, 10)
    store.save_bank("a" * 32, t)
    store.save_bank("b" * 32, t)
    store.banks.flush()
    now = time.time()
    os.utime(store.root / "banks" / f"{'a' * 32}.pt", (now - 100, now - 100))
    os.utime(store.root / "banks" / f"{'b' * 32}.pt", (now - 50, now - 50))
    assert store.load_bank("a" * 32) is not None  # a read makes "a" the most recent
    store.save_bank("c" * 32, t)
    store.banks.flush()
    assert [p.stem[0] for p in _banks(store)] == ["a", "c"]  # "b", least recent, went
    assert store.stats.banks_evicted == 1 and store.banks.total_bytes() <= 2.5 * one


def test_policy_none_writes_nothing_and_sizes_parse(flip_ctx, tmp_path):
    store = Store(tmp_path / "n")
    store.banks = Banks(store, lambda *a: None, policy="none")
    ctx = Context(flip_ctx.data, flip_ctx.train, store)
    run_chain(ctx, ["plain4", "plain2"], HOP)
    assert _banks(store) == [] and store.stats.parent_passes == 2
    assert parse_bytes("16G") == 16 << 30 and parse_bytes("500MiB") == 500 << 20
    assert parse_bytes("1048576") == 1 << 20
    with pytest.raises(ValueError, match="16G"):
        parse_bytes("lots")

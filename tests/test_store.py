import dataclasses
import multiprocessing as mp
import shutil
import time

import pytest
import torch

from takd_search.engine.chain import Context, run_chain, teacher_logits
from takd_search.engine.distill import train_logits
from takd_search.engine.hop import HopParams, HopResult, HopSpec, TrainConfig
from takd_search.engine.store import Store


def _spec(**kw):
    base = dict(
        data="abc",
        val_fraction=0.1,
        split_seed=0,
        model="plain4",
        train=TrainConfig(epochs=3),
        seed=0,
        parents=("p1",),
        T=4.0,
        alpha=0.5,
        kd_epochs=2,
        parent_epoch=None,
    )
    base.update(kw)
    return HopSpec(**base)


def _result(v=0.5):
    w = torch.randn(3, 3)
    return HopResult(
        val_acc=v,
        val_acc_last=v,
        best_epoch=1,
        test_acc=v,
        epochs=3,
        params=9,
        seconds=2.0,
        curve=[{"epoch": 1}],
        state={"w": w},
        snapshots={3: {"w": w}},
    )


def test_same_lineage_same_key_any_change_new_key():
    assert _spec().key == _spec().key
    changes = dict(
        data="abd",
        val_fraction=0.2,
        split_seed=1,
        model="plain2",
        train=TrainConfig(epochs=4),
        seed=1,
        parents=("p2",),
        T=3.0,
        alpha=0.6,
        kd_epochs=1,
        parent_epoch=2,
        teacher="f00",
        precision="bf16",
        fork=(2,),
    )
    for field in dataclasses.fields(HopSpec):
        assert field.name in changes, f"key property not tested for {field.name}"
        assert _spec(**{field.name: changes[field.name]}).key != _spec().key, field.name
    for field in dataclasses.fields(TrainConfig):
        value = getattr(TrainConfig(), field.name)
        other = {
            bool: lambda v: not v,
            int: lambda v: v + 1,
            float: lambda v: v * 2,
            str: lambda v: v + "x",
            type(None): lambda v: "flip",
        }[type(value)](value)
        changed = _spec(train=dataclasses.replace(TrainConfig(epochs=3), **{field.name: other}))
        assert changed.key != _spec().key, field.name


def test_settings_that_cannot_matter_do_not_split_keys():
    scratch = _spec(parents=(), T=None, alpha=None, kd_epochs=None)
    assert _spec(alpha=0.0).key == scratch.key  # KD with alpha 0 is training alone
    assert _spec(kd_epochs=0).key == scratch.key
    assert _spec(kd_epochs=3).key == _spec(kd_epochs=None).key  # all 3 epochs
    assert _spec(kd_epochs=5).key == _spec(kd_epochs=None).key


def test_second_get_or_train_does_not_train(store):
    calls = []
    train = lambda: calls.append(1) or _result()  # noqa: E731
    r1, reused1 = store.get_or_train(_spec(), train)
    fresh = Store(store.root)  # a new process: nothing in memory
    r2, reused2 = fresh.get_or_train(_spec(), train)
    assert (len(calls), reused1, reused2) == (1, False, True)
    assert torch.equal(r1.state["w"], r2.state["w"])
    assert fresh.stats.reused == 1 and fresh.stats.seconds_saved == 2.0


def test_truncated_entry_is_reported_once_and_retrained(store, caplog):
    store.get_or_train(_spec(), _result)
    weights = store.root / "hops" / _spec().key / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:40])
    calls = []
    fresh = Store(store.root)
    with caplog.at_level("WARNING"):
        _, reused = fresh.get_or_train(_spec(), lambda: calls.append(1) or _result())
        _, reused2 = Store(store.root).get_or_train(_spec(), lambda: calls.append(1))
    assert (reused, reused2, len(calls)) == (False, True, 1)
    assert len([r for r in caplog.records if "corrupt" in r.message]) == 1
    assert len(list((store.root / "corrupt").iterdir())) == 1


def test_missing_snapshot_never_replaces_a_stored_entry(store):
    """A stored hop that lacks a snapshot a child needs stays as it is (bytes and all):
    re-training is bit-identical only on one device and torch build, so the re-trained
    network is a fork with its own key, and the original keeps meaning what its children
    and logit banks were made from."""
    from takd_search.engine.store import EntryExists

    spec = _spec()
    store.get_or_train(spec, _result)
    entry = store.root / "hops" / spec.key
    before = {f.name: f.read_bytes() for f in entry.iterdir()}
    calls = []

    def retrain():
        calls.append(1)
        snaps = {1: {"w": torch.ones(1)}, 3: {"w": torch.ones(1)}}
        return dataclasses.replace(_result(), snapshots=snaps)

    fresh = Store(store.root)
    fork = fresh.resolve(spec, (1,))
    assert fork.key != spec.key and fork.fork == (1,)
    r, reused = fresh.get_or_train(spec, retrain, need_snapshots=(1,))
    assert not reused and 1 in r.snapshots and len(calls) == 1
    assert {f.name: f.read_bytes() for f in entry.iterdir()} == before  # untouched
    assert 1 not in Store(store.root).load(spec.key).snapshots
    assert (store.root / "hops" / fork.key / "meta.json").exists()
    # the fork is found again, and trained never more
    again = Store(store.root)
    assert again.get_or_train(spec, lambda: 1 / 0, need_snapshots=(1,))[1]
    assert again.resolve(spec, (1,)).key == fork.key
    # and nothing can write over an entry
    with pytest.raises(EntryExists):
        Store(store.root).save(spec, retrain())
    assert {f.name: f.read_bytes() for f in entry.iterdir()} == before


def _race(root, counter, barrier):
    barrier.wait()

    def train():
        with open(counter, "a") as f:
            f.write("x")
        time.sleep(1.0)
        return _result()

    Store(root, stale_after=30).get_or_train(_spec(), train)


def test_two_processes_racing_train_once(tmp_path):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    counter = tmp_path / "count"
    procs = [ctx.Process(target=_race, args=(tmp_path / "s", counter, barrier)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert counter.read_text() == "x"


def test_stale_lock_is_broken(store):
    lock = store.root / "locks" / f"{_spec().key}.lock"
    lock.write_text("dead 1\n")
    old = time.time() - 120
    import os

    os.utime(lock, (old, old))
    _, reused = Store(store.root, stale_after=5).get_or_train(_spec(), _result)
    assert not reused and not lock.exists()


def test_logit_bank_equals_fresh_parent_forward(digits_data, store):
    ctx = Context(digits_data, TrainConfig(epochs=2, batch_size=128), store)
    teacher = run_chain(ctx, ["plain4"])[0]
    get = teacher_logits(ctx, teacher, None, seed=0)
    first = get(1)
    assert store.stats.bank_misses == 1 and store.stats.parent_passes == 1
    again = teacher_logits(ctx, teacher, None, seed=0)(2)  # same views without augmentation
    assert store.stats.bank_hits == 1 and store.stats.parent_passes == 1
    from takd_search import models

    module = models.create_model_from_name("plain4", 10, digits_data.input_shape)
    module.load_state_dict(teacher.result.state)
    fresh = train_logits(module, digits_data, digits_data.views(0, 2))
    torch.testing.assert_close(again, fresh, atol=2e-2, rtol=1e-3)
    assert torch.equal(first, again)


def test_augmented_banks_are_per_epoch(digits, store):
    from takd_search.engine.augment import DeviceData

    data = DeviceData(digits, "cpu", augment="flip")
    ctx = Context(data, TrainConfig(epochs=1, batch_size=128), store)
    teacher = run_chain(ctx, ["plain4"])[0]
    get = teacher_logits(ctx, teacher, None, seed=0)
    e1, e2 = get(1), get(2)
    assert not torch.equal(e1, e2) and store.stats.parent_passes == 2
    torch.testing.assert_close(teacher_logits(ctx, teacher, None, 0)(2), e2)
    assert store.stats.bank_hits == 1


def test_chain_reuses_prefixes_and_banks(digits_data, store):
    ctx = Context(digits_data, TrainConfig(epochs=2, batch_size=128), store)
    hop = HopParams(T=4.0, alpha=0.5)
    a = run_chain(ctx, ["plain10", "plain6", "plain2"], hop)
    assert [t.reused for t in a] == [False, False, False]
    b = run_chain(ctx, ["plain10", "plain6", "plain4"], hop)
    assert [t.reused for t in b] == [True, True, False]
    assert store.stats.trained == 4 and store.stats.reused == 2
    passes = store.stats.parent_passes
    c = run_chain(ctx, ["plain10", "plain4"], hop)  # plain10's bank is already there
    assert store.stats.parent_passes == passes and not c[1].reused
    assert b[1].result is not None and a[0].spec.key == b[0].spec.key


def test_no_store_trains_everything_and_writes_nothing(digits_data, tmp_path):
    s = Store(None)
    ctx = Context(digits_data, TrainConfig(epochs=1, batch_size=128), s)
    run_chain(ctx, ["plain4", "plain2"], HopParams())
    run_chain(ctx, ["plain4", "plain2"], HopParams())
    assert s.stats.trained == 4 and s.stats.reused == 0 and s.stats.bank_hits == 0


def test_gc_and_usage(store):
    store.get_or_train(_spec(), _result)
    assert store.usage()["hops"]["files"] == 2
    assert store.gc(older_than_s=3600)["hops"] == 0
    assert store.gc()["hops"] == 1 and store.entries() == []


@pytest.mark.parametrize("T", [1.0])
def test_dense_guidance_keys_on_all_ancestors(digits_data, store, T):
    ctx = Context(digits_data, TrainConfig(epochs=1, batch_size=128), store)
    dense = run_chain(ctx, ["plain6", "plain4", "plain2"], HopParams(T=T), guidance="dense")
    chain = run_chain(ctx, ["plain6", "plain4", "plain2"], HopParams(T=T))
    assert len(dense[2].spec.parents) == 2 and len(chain[2].spec.parents) == 1
    assert dense[2].spec.key != chain[2].spec.key and chain[1].reused


def test_a_killed_hop_resumes_from_its_checkpoint_exactly(digits_data, tmp_path):
    """Stop a hop after 2 of 4 epochs (as a dying worker would), then train it again:
    it continues from the checkpoint and ends bit-identical to an uninterrupted hop."""
    cfg = TrainConfig(epochs=4, batch_size=128)
    whole = run_chain(Context(digits_data, cfg, Store(tmp_path / "a")), ["plain4"])[0]

    store = Store(tmp_path / "b", checkpoint_every_s=0)

    class Died(Exception):
        pass

    def die_after_epoch_2(kind, info):
        if kind == "epoch" and info["epoch"] == 2:
            raise Died

    with pytest.raises(Died):
        run_chain(Context(digits_data, cfg, store, on_event=die_after_epoch_2), ["plain4"])
    assert (store.root / "partial" / f"{whole.spec.key}.pt").exists()
    epochs = []
    ctx = Context(
        digits_data,
        cfg,
        store,
        on_event=lambda k, i: epochs.append(i["epoch"]) if k == "epoch" else None,
    )
    again = run_chain(ctx, ["plain4"])[0]
    assert epochs == [3, 4]  # only the missing epochs were trained
    assert all(
        torch.equal(again.result.state[k], whole.result.state[k]) for k in whole.result.state
    )
    assert [r["val_acc"] for r in again.result.curve] == [r["val_acc"] for r in whole.result.curve]
    assert not (store.root / "partial" / f"{whole.spec.key}.pt").exists()


def test_a_diverged_hop_is_remembered_and_fails_fast(digits_data, tmp_path):
    from takd_search.engine.train import TrainingDiverged

    cfg = TrainConfig(epochs=2, batch_size=64, lr=50.0, weight_decay=0.0)
    store = Store(tmp_path / "s")
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        run_chain(Context(digits_data, cfg, store), ["plain4"])
    t0 = time.perf_counter()
    with pytest.raises(TrainingDiverged, match="recorded in"):
        run_chain(Context(digits_data, cfg, Store(tmp_path / "s")), ["plain4"])
    assert time.perf_counter() - t0 < 5  # no training the second time
    assert len(list((store.root / "failed").iterdir())) == 1


def test_trained_log_counts_each_training_once(digits_data, store):
    ctx = Context(digits_data, TrainConfig(epochs=1, batch_size=128), store)
    run_chain(ctx, ["plain4", "plain2"], HopParams())
    run_chain(ctx, ["plain4", "plain2"], HopParams())
    keys = store.trained_keys()
    assert len(keys) == 2 and len(set(keys)) == 2


def test_corrupt_logit_bank_is_reported_once_and_recomputed(digits_data, store, caplog):
    ctx = Context(digits_data, TrainConfig(epochs=1, batch_size=128), store)
    teacher = run_chain(ctx, ["plain4"])[0]
    good = teacher_logits(ctx, teacher, None, seed=0)(1)
    store.banks.flush()  # written by the background writer
    (bank,) = list((store.root / "banks").iterdir())
    bank.write_bytes(bank.read_bytes()[:100])
    fresh = Store(store.root)
    ctx2 = Context(digits_data, TrainConfig(epochs=1, batch_size=128), fresh)
    with caplog.at_level("WARNING"):
        again = teacher_logits(ctx2, teacher, None, seed=0)(1)
        teacher_logits(ctx2, teacher, None, seed=0)(1)
    assert torch.equal(good, again)
    assert fresh.stats.parent_passes == 1 and fresh.stats.bank_hits == 1
    assert len([r for r in caplog.records if "logit bank" in r.message]) == 1


def test_read_only_open_makes_no_folders(tmp_path, digits_data):
    """export opens a store with create=False: it reads hops and writes nothing, so a
    read-only mount of a store works."""
    (trained,) = run_chain(
        Context(digits_data, TrainConfig(epochs=1, batch_size=128), Store(tmp_path / "s")),
        ["plain2"],
    )
    ro = tmp_path / "ro"
    (ro / "hops").mkdir(parents=True)
    shutil.copytree(tmp_path / "s" / "hops" / trained.spec.key, ro / "hops" / trained.spec.key)
    got = Store(ro, create=False).load(trained.spec.key)
    assert got is not None and got.val_acc == trained.result.val_acc
    assert sorted(p.name for p in ro.iterdir()) == ["hops"]


# ---- the recipe fingerprint -----------------------------------------------------------
# What a tiny deterministic CPU training computes (plain2 on digits: two epochs from
# scratch, then two epochs distilled from it with crop+flip views). Every stored hop's key
# carries store.RECIPE_VERSION; when a change to the engine changes these numbers, old
# entries would be served as this code's results. So: bump RECIPE_VERSION, then put the
# new numbers here with it.
GOLDEN = {
    "recipe_version": 2,
    # train_loss per epoch, val_acc per epoch, sum of |selected weights|
    "scratch": [1.442282, 0.174254, 0.902778, 0.951389, 325.930950258522],
    "distilled": [2.041375, 1.754466, 0.340278, 0.527778, 259.9035941634138],
}


def _fingerprint_run(digits) -> dict:
    from takd_search import models
    from takd_search.engine.augment import DeviceData
    from takd_search.engine.distill import load_model
    from takd_search.engine.train import train_hop

    torch.set_num_threads(1)
    plain = DeviceData(digits, "cpu", val_fraction=0.1, split_seed=0, augment="none")
    aug = DeviceData(digits, "cpu", val_fraction=0.1, split_seed=0, augment="crop_flip")
    make = lambda: models.create_model_from_name("plain2", 10, plain.input_shape)  # noqa: E731
    cfg = TrainConfig(epochs=2, batch_size=64)
    a = train_hop(make, plain, cfg, seed=0)
    parent = load_model(make, a.state, "cpu")
    teacher = lambda epoch: train_logits(parent, aug, aug.views(1, epoch))  # noqa: E731
    b = train_hop(make, aug, cfg, seed=1, teachers=[teacher], T=4.0, alpha=0.5)

    def numbers(r) -> list[float]:
        wsum = sum(
            float(v.double().abs().sum()) for v in r.state.values() if v.is_floating_point()
        )
        return (
            [row["train_loss"] for row in r.curve] + [row["val_acc"] for row in r.curve] + [wsum]
        )

    return {"scratch": numbers(a), "distilled": numbers(b)}


def test_recipe_fingerprint_is_pinned(digits):
    """Fails when the engine's computation changes: bump store.RECIPE_VERSION and update
    GOLDEN (the numbers are printed). Compared to 1e-4 relative, so float rounding of
    another CPU passes and any change of recipe, schedule, loss or data path does not."""
    from takd_search.engine.hop import RECIPE_VERSION

    got = _fingerprint_run(digits)
    hint = (
        f"the training computation changed: bump RECIPE_VERSION in takd_search/engine/store.py "
        f"(now {RECIPE_VERSION}) so stored hops of the old recipe are never served, then set "
        f"GOLDEN in tests/test_store.py to recipe_version {RECIPE_VERSION + 1} and {got}"
    )
    if GOLDEN["recipe_version"] != RECIPE_VERSION:
        pytest.fail(
            f"RECIPE_VERSION is {RECIPE_VERSION} but GOLDEN pins {GOLDEN['recipe_version']}: "
            f"set GOLDEN to recipe_version {RECIPE_VERSION} and {got}"
        )
    for part in ("scratch", "distilled"):
        assert got[part] == pytest.approx(GOLDEN[part], rel=1e-4), hint

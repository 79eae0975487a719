"""The engine learns, matches a plain PyTorch loop, and fails loudly when a hop does not
learn (issue 13). Real data: scikit-learn's digits, and the same digits written to an npz
file at 28x28 (read by the real npz loader)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from takd_search import models
from takd_search.engine.augment import DeviceData
from takd_search.engine.hop import TrainConfig
from takd_search.engine.train import HopDidNotLearn, learning_problem, train_hop

ALL_MODELS = [
    "plain2",
    "plain4",
    "plain6",
    "plain8",
    "plain10",
    "resnet8",
    "resnet20",
    "mlp2x256",
]


def _make(name, data):
    return lambda: models.create_model_from_name(name, data.num_classes, data.input_shape)


# ---- every network learns --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_learns_on_digits_for_every_seed(digits, name):
    """The default recipe (one warm-up epoch, then cosine) takes every family and depth
    well clear of chance (10%) for three seeds, in 4 epochs of digits."""
    data = DeviceData(digits, "cpu", val_fraction=0.1, split_seed=0)
    cfg = TrainConfig(epochs=4, batch_size=64)
    accs = [train_hop(_make(name, data), data, cfg, seed=s, name=name).test_acc for s in range(3)]
    assert min(accs) > 0.6, accs


@pytest.fixture(scope="module")
def digits28(tmp_path_factory, digits):
    """The digits upsampled 8x8 -> 28x28 (bilinear), as an MNIST-like npz file."""
    from takd_search.data import load_dataset

    def up(x):
        y = F.interpolate(x.float(), size=(28, 28), mode="bilinear", align_corners=False)
        return y.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()

    path = tmp_path_factory.mktemp("npz") / "digits28.npz"
    np.savez(
        path,
        x_train=up(digits.x_train),
        y_train=digits.y_train.numpy(),
        x_test=up(digits.x_test),
        y_test=digits.y_test.numpy(),
    )
    return load_dataset(f"npz:{path}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["plain2", "plain4"])
def test_28x28_npz_learns_for_every_seed(digits28, name):
    """28x28 inputs (where the issue saw plain4 stay at chance without warm-up): the npz
    recipe's batch and lr, three epochs (33 steps), three seeds. (resnet8 is not here: in
    33 steps it reaches 42-59%, learning but not yet "clearly"; it is checked on 8x8.)"""
    from takd_search.run_path import recipe

    data = DeviceData(digits28, "cpu", val_fraction=0.1, split_seed=0)
    cfg = recipe("npz", epochs=3)
    accs = [train_hop(_make(name, data), data, cfg, seed=s, name=name).test_acc for s in range(3)]
    assert min(accs) > 0.6, accs


# ---- parity with a plain PyTorch loop ---------------------------------------------------
def _reference(name, data, cfg, seed):
    """The same training written as a plain PyTorch loop: torch.optim.SGD (not fused),
    LambdaLR warm-up + cosine, the engine's visiting order and parameter groups."""
    torch.manual_seed(seed)
    model = _make(name, data)()
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest}],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
    )
    n = data.n_train
    per = math.ceil(n / cfg.batch_size)
    total, warm = per * cfg.epochs, per * cfg.warmup_epochs

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    x_all = data.normalize(data.x_train)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = data.views(seed, epoch).order
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(x_all[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model


@pytest.mark.parametrize("name", ["plain2", "resnet8"])
def test_engine_matches_a_plain_pytorch_loop(digits_data, name):
    """Same data, model, seed and recipe: the engine's weights equal a plain loop's up to
    float rounding (the fused SGD step rounds differently): every weight within 1e-3 and
    validation predictions identical but for at most 1 image of 144. The rest of the
    engine (banks, views, checkpoints) is bookkeeping around this loop."""
    cfg = TrainConfig(epochs=3, batch_size=64)
    res = train_hop(_make(name, digits_data), digits_data, cfg, seed=3, name=name)
    ref = _reference(name, digits_data, cfg, seed=3)
    last = res.snapshots[cfg.epochs]
    worst = max(
        (last[k].float() - v.float()).abs().max().item() for k, v in ref.state_dict().items()
    )
    assert worst < 1e-3, worst
    ref.eval()
    with torch.no_grad():
        ref_pred = ref(digits_data.normalize(digits_data.x_val)).argmax(1)
    eng = _make(name, digits_data)()
    eng.load_state_dict(last)
    eng.eval()
    with torch.no_grad():
        eng_pred = eng(digits_data.normalize(digits_data.x_val)).argmax(1)
    assert (ref_pred != eng_pred).sum().item() <= 1
    assert res.curve[-1]["val_acc"] > 0.8


# ---- a hop that did not learn is a failed hop -------------------------------------------
def test_a_hop_that_does_not_learn_fails_with_one_line(digits_data):
    cfg = TrainConfig(epochs=2, batch_size=128, lr=1e-7, warmup_epochs=0)
    with pytest.raises(HopDidNotLearn) as err:
        train_hop(_make("plain4", digits_data), digits_data, cfg, seed=0, name="plain4")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("plain4 did not learn (")
    assert msg.endswith(": add warm-up (train.warmup_epochs) or lower train.lr")


def test_learning_problem_thresholds():
    labels = torch.arange(10).repeat(15)  # 150 balanced images: chance 10%
    ok = [{"val_acc": 0.9, "val_ce": 0.4}]
    assert learning_problem("m", ok, labels, 10) is None
    at_chance = [{"val_acc": 0.105, "val_ce": 1.0}]
    msg = learning_problem("plain4", at_chance, labels, 10)
    assert msg.startswith("plain4 did not learn (val 10.5%, chance 10.0%)")
    # 3 standard errors of 150 guesses at 10% is 7.3 points: 17% is still chance
    assert learning_problem("m", [{"val_acc": 0.17, "val_ce": 1.0}], labels, 10)
    assert learning_problem("m", [{"val_acc": 0.2, "val_ce": 1.0}], labels, 10) is None
    # near-uniform outputs (cross-entropy ~ ln 10 = 2.303) fail even above that margin
    flat = [{"val_acc": 0.3, "val_ce": 2.25}]
    assert "cross-entropy never below 2.250" in learning_problem("m", flat, labels, 10)
    # far above ln C is overconfidence, not a dead hop: judged by its accuracy
    assert learning_problem("m", [{"val_acc": 0.6, "val_ce": 7.5}], labels, 10) is None


def test_a_failed_hop_is_never_stored_and_fails_fast_next_time(digits_data, store):
    from takd_search.engine.chain import Context, run_chain
    from takd_search.engine.train import TrainingDiverged

    ctx = Context(digits_data, TrainConfig(epochs=1, batch_size=128, lr=1e-7), store)
    with pytest.raises(HopDidNotLearn, match="plain2 did not learn"):
        run_chain(ctx, ["plain2"], seed=0)
    assert not list((store.root / "hops").iterdir())
    (marker,) = (store.root / "failed").iterdir()
    assert "did not learn" in json.loads(marker.read_text())["error"]
    # a retry (another trial, another process) fails at once, without training
    calls = []
    ctx.on_event = lambda kind, info: calls.append(kind)
    with pytest.raises(TrainingDiverged, match="did not learn"):
        run_chain(ctx, ["plain2"], seed=0)
    assert "epoch" not in calls


def test_run_path_shows_the_failed_hop_and_exits_1(tmp_path, capsys):
    from takd_search.cli import main

    code = main(
        ["run-path", "--path", "plain4>plain2", "--epochs", "2", "--batch-size", "128"]
        + ["--lr", "1e-7", "--warmup-epochs", "0", "--results", str(tmp_path), "--name", "r"]
    )
    assert code == 1
    cap = capsys.readouterr()
    failed = [ln for ln in cap.err.splitlines() if ln.startswith("takd-search: failed:")]
    assert len(failed) == 2  # the teacher, and the student alone (NoKD)
    assert "plain4 did not learn (val" in failed[0] and "train.warmup_epochs" in failed[0]
    table = cap.out.splitlines()
    assert [ln.split()[4] for ln in table[2:5]] == ["failed", "not", "failed"]
    out = json.loads((tmp_path / "r" / "chain.json").read_text())
    assert [h["status"] for h in out["hops"]] == ["failed", "not run"]
    assert out["student_alone"]["status"] == "failed" and len(out["failed"]) == 2
    assert not list((tmp_path / ".store" / "hops").iterdir())


# ---- hygiene ----------------------------------------------------------------------------
def test_normalisation_uses_the_training_part_only(digits):
    import pickle

    from takd_search.data.dataset import _channel_stats

    digits = pickle.loads(pickle.dumps(digits))  # its own split cache: the fixture is shared
    data = DeviceData(digits, "cpu", val_fraction=0.2, split_seed=1)
    train_idx, val_idx = digits.split(0.2, 1)
    assert data.mean == pytest.approx(_channel_stats(digits.x_train[train_idx])[0])
    assert data.std == pytest.approx(_channel_stats(digits.x_train[train_idx])[1])
    assert data.mean != pytest.approx(digits.mean, rel=1e-6)  # the whole file's differ
    # training images normalise to mean 0, std 1
    x = data.normalize(data.x_train)
    assert x.mean().item() == pytest.approx(0, abs=1e-4)
    assert x.std(unbiased=False).item() == pytest.approx(1, abs=1e-3)


def test_search_hops_never_look_at_the_test_set(digits_data, store):
    from takd_search.engine.chain import Context, run_chain

    ctx = Context(digits_data, TrainConfig(epochs=2, batch_size=128), store, evaluate_test=False)
    (hop,) = run_chain(ctx, ["plain2"], seed=0)
    assert hop.result.test_acc is None
    meta = json.loads((store.root / "hops" / hop.spec.key / "meta.json").read_text())
    assert meta["metrics"]["test_acc"] is None
    assert meta["lineage"]["precision"] == "fp32" and meta["lineage"]["recipe_version"] >= 2
    # a reported hop (NoKD, confirmation) reuses it and measures the test set only now
    ctx.evaluate_test = True
    (again,) = run_chain(ctx, ["plain2"], seed=0)
    assert again.reused and 0.5 < again.result.test_acc <= 1
    assert json.loads((store.root / "hops" / hop.spec.key / "meta.json").read_text()) == meta


# ---- recipes ----------------------------------------------------------------------------
def test_takd_recipe_follows_the_published_code():
    from takd_search.run_path import recipe

    plain = recipe("cifar100", "takd", family="plain")
    assert (plain.lr, plain.schedule, plain.warmup_epochs) == (0.01, "constant", 0)
    assert (plain.weight_decay, plain.weight_decay_all, plain.nesterov) == (1e-4, True, False)
    assert recipe("cifar100", "takd", family="resnet").lr == 0.1
    assert recipe("digits").warmup_epochs == 1  # the default warms up
    assert recipe("digits", "takd", epochs=3).epochs == 3


def test_weight_decay_all_decays_batchnorm_too(digits_data):
    """TAKD's code decays every parameter; the default spares BatchNorm and bias."""
    import dataclasses

    cfg = TrainConfig(epochs=2, batch_size=64, weight_decay=0.05)
    kw = dict(seed=0, name="plain2")
    a = train_hop(_make("plain2", digits_data), digits_data, cfg, **kw).snapshots[2]
    all_cfg = dataclasses.replace(cfg, weight_decay_all=True)
    b = train_hop(_make("plain2", digits_data), digits_data, all_cfg, **kw).snapshots[2]
    bn = "features.1.weight"  # the first BatchNorm's scale, 1 at the start
    assert b[bn].abs().mean() < a[bn].abs().mean() - 0.01


def test_datasets_command_prints_each_recipe(capsys):
    from takd_search.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "training recipe per data set" in out
    assert "digits       30 epochs, batch 64, SGD lr 0.05 (cosine after 1 warm-up" in out
    assert "--recipe takd 160 epochs" in out or "--recipe takd" in out
    assert "constant" in out and "every parameter" in out


# ---- through a real search ---------------------------------------------------------------
@pytest.mark.slow
def test_a_search_trial_that_does_not_learn_fails_and_the_search_goes_on(tmp_path):
    """The failure path is divergence's: trials.csv says `failed` with the one line, and
    the run finishes with the trials that learned. A grid of 1 path x 2 learning rates;
    at lr 1e-7 nothing moves from its initialisation. BLKD gets both rates too (its
    budget matches the search's), so one of its trials learns."""
    import subprocess
    import sys

    import pandas as pd

    space = tmp_path / "dead.yaml"
    space.write_text(
        "data: {dataset: digits}\n"
        "models: {family: plain, teacher: 4, student: 2}\n"
        "train: {epochs: 2, batch_size: 64, lr: [0.05, 1.0e-7]}\n"
        "distill: {T: 4.0, alpha: 0.5, kd_fraction: 1.0, parent_fraction: 1.0}\n"
        "search: {n_trials: 2, seed: 0, sampler: grid, max_failures: 0}\n"
        "resources: {cpu: 1, concurrency: 1}\n"
        "baselines: {confirm_top_k: 1, confirm_seeds: [1], blkd_trials: 2}\n"
    )
    res = tmp_path / "results"
    r = subprocess.run(
        [sys.executable, "-m", "takd_search.cli", "run", "--space", str(space)]
        + ["--results", str(res)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = [p for p in res.iterdir() if p.is_dir() and not p.name.startswith(".")]
    trials = pd.read_csv(run_dir / "trials.csv")
    search = trials[trials.phase == "search"]
    dead, ok = search[search.lr == 1e-7], search[search.lr == 0.05]
    assert len(dead) == 1 and len(ok) == 1
    assert (dead.status == "failed").all() and (ok.status == "completed").all()
    (line,) = dead.error
    assert "plain4 did not learn (val" in line and "train.warmup_epochs" in line
    assert "Traceback" not in r.stderr

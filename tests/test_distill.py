import math

import pytest
import torch
import torch.nn.functional as F

from takd_search import models
from takd_search.engine.distill import kd_loss, soft_targets, train_logits
from takd_search.engine.hop import TrainConfig
from takd_search.engine.train import TrainingDiverged, train_hop


def test_alpha_zero_is_cross_entropy():
    torch.manual_seed(0)
    s, t, y = torch.randn(16, 10), torch.randn(16, 10), torch.randint(0, 10, (16,))
    ce = F.cross_entropy(s, y)
    assert torch.equal(kd_loss(s, soft_targets([t], 4.0), y, 4.0, 0.0), ce)
    assert torch.equal(kd_loss(s, None, y, 4.0, 0.7), ce)


def test_kd_loss_value_matches_formula():
    torch.manual_seed(1)
    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    T, alpha = 3.0, 0.25
    p_t = F.softmax(t / T, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, 1))).sum(1).mean()  # batchmean
    want = (1 - alpha) * F.cross_entropy(s, y) + alpha * T * T * kl
    got = kd_loss(s, soft_targets([t], T), y, T, alpha)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_gradient_reaches_student_not_parent(digits_data):
    parent = models.create_model("plain", 4, 10, digits_data.input_shape)
    student = models.create_model("plain", 2, 10, digits_data.input_shape)
    views = digits_data.views(0, 1)
    t = train_logits(parent, digits_data, views)
    assert not t.requires_grad
    idx = views.order[:32]
    x = digits_data.train_batch(idx, views)
    loss = kd_loss(student(x), soft_targets([t[idx]], 4.0), digits_data.y_train[idx], 4.0, 1.0)
    loss.backward()
    assert all(p.grad is None for p in parent.parameters())
    grads = [p.grad.abs().sum().item() for p in student.parameters()]
    assert all(g > 0 for g in grads)


def test_t_squared_keeps_soft_gradient_scale():
    """Hinton's T^2: the soft term's gradient wrt the student logits stays the same order
    of magnitude as T grows; without it, it falls like 1/T^2 (Intel Distiller's bug)."""
    torch.manual_seed(0)
    t = torch.randn(64, 10) * 3
    s0 = torch.randn(64, 10) * 3
    norms, raw = [], []
    for T in (2.0, 4.0, 8.0, 16.0):
        s = s0.clone().requires_grad_(True)
        kd_loss(s, soft_targets([t], T), torch.zeros(64, dtype=torch.long), T, 1.0).backward()
        norms.append(s.grad.norm().item())
        raw.append(norms[-1] / T**2)
    assert max(norms) / min(norms) < 2.0
    assert max(raw) / min(raw) > 30.0


def test_cpu_run_is_bit_for_bit_repeatable(digits_data):
    cfg = TrainConfig(epochs=2, batch_size=64)
    make = lambda: models.create_model("plain", 4, 10, digits_data.input_shape)  # noqa: E731
    a = train_hop(make, digits_data, cfg, seed=3)
    b = train_hop(make, digits_data, cfg, seed=3)
    c = train_hop(make, digits_data, cfg, seed=4)
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert a.curve[-1]["train_loss"] == b.curve[-1]["train_loss"]
    assert not all(torch.equal(a.state[k], c.state[k]) for k in a.state)


@pytest.mark.slow  # a whole search or a long training: the second tier
def test_plain10_from_scratch_reaches_95_percent_on_digits(digits_data):
    from takd_search.run_path import recipe

    cfg = recipe("digits")
    make = lambda: models.create_model("plain", 10, 10, digits_data.input_shape)  # noqa: E731
    r = train_hop(make, digits_data, cfg, seed=0)
    assert r.test_acc >= 0.95, r.test_acc
    assert r.val_acc >= 0.93
    assert len(r.curve) == cfg.epochs and r.best_epoch >= 1
    assert r.params == models.count_params(make())


def test_kd_epochs_and_snapshots(digits_data):
    parent = models.create_model("plain", 4, 10, digits_data.input_shape)
    bank = {}

    def teacher(epoch):
        bank.setdefault(epoch, train_logits(parent, digits_data, digits_data.views(0, epoch)))
        return bank[epoch]

    cfg = TrainConfig(epochs=4, batch_size=128)
    make = lambda: models.create_model("plain", 2, 10, digits_data.input_shape)  # noqa: E731
    r = train_hop(
        make,
        digits_data,
        cfg,
        teachers=[teacher],
        T=4.0,
        alpha=0.9,
        kd_epochs=2,
        snapshot_epochs=(1, 3),
    )
    assert [row["kd"] for row in r.curve] == [True, True, False, False]
    assert sorted(bank) == [1, 2]  # the parent is not asked after the student stops KD
    assert sorted(r.snapshots) == [1, 3, 4]
    assert any(not torch.equal(r.snapshots[1][k], r.snapshots[4][k]) for k in r.snapshots[1])


def test_diverging_hop_stops_at_once(digits_data):
    cfg = TrainConfig(epochs=5, batch_size=64, lr=50.0, weight_decay=0.0)
    make = lambda: models.create_model("plain", 4, 10, digits_data.input_shape)  # noqa: E731
    seen = []
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train_hop(make, digits_data, cfg, on_epoch=seen.append)
    assert len(seen) <= 1


@pytest.mark.gpu
def test_cuda_bf16_channels_last_hop(digits):
    from takd_search.engine.augment import DeviceData

    data = DeviceData(digits, "cuda")
    cfg = TrainConfig(epochs=3)
    make = lambda: models.create_model("plain", 4, 10, data.input_shape)  # noqa: E731
    r = train_hop(make, data, cfg)
    assert r.device.startswith("cuda") and math.isfinite(r.curve[-1]["train_loss"])
    assert r.val_acc > 0.5

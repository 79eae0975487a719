import torch

from takd_search.engine.augment import PAD, DeviceData, Views, apply_views, epoch_views


def test_views_are_a_pure_function_of_seed_and_epoch():
    a = epoch_views(100, seed=1, epoch=3, augment="crop_flip")
    b = epoch_views(100, seed=1, epoch=3, augment="crop_flip")
    c = epoch_views(100, seed=1, epoch=4, augment="crop_flip")
    assert torch.equal(a.order, b.order) and torch.equal(a.shift, b.shift)
    assert torch.equal(a.flip, b.flip)
    assert not torch.equal(a.order, c.order)
    assert sorted(a.order.tolist()) == list(range(100))
    assert a.shift.min() >= 0 and a.shift.max() <= 2 * PAD
    assert epoch_views(10, 0, 1, "none").identity


def test_crop_offsets_and_flip_move_pixels_as_stated():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    idx = torch.tensor([0, 1])
    centre = Views(idx, shift=torch.tensor([[PAD, PAD], [0, 0]]), flip=torch.tensor([False, True]))
    out = apply_views(x, idx, centre)
    assert torch.equal(out[0], x[0].float())  # offset PAD in padded space = no shift
    # offset 0: the image moves PAD pixels down-right, zeros enter top-left; then flipped
    moved = torch.zeros(3, 8, 8)
    moved[:, PAD:, PAD:] = x[1, :, : 8 - PAD, : 8 - PAD].float()
    assert torch.equal(out[1], moved.flip(2))


def test_resized_crop_keeps_shape_and_range():
    x = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    v = epoch_views(4, 0, 1, "resized_crop_flip")
    out = apply_views(x, torch.arange(4), v)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255


def test_device_data_splits_and_normalises(digits):
    d = DeviceData(digits, "cpu", val_fraction=0.1, split_seed=0)
    assert d.n_train + len(d.y_val) == len(digits.y_train)
    assert len(d.y_test) == 360
    x = d.normalize(d.x_train)
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1
    views = d.views(0, 1)
    b = d.train_batch(views.order[:5], views)
    assert b.shape == (5, 1, 8, 8) and b.dtype == torch.float32

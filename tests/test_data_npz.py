"""takd_search.data.npz on tiny npz files built in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from takd_search.data import DataError, load_dataset


def test_npz_grayscale(tmp_path):
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    x_te = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    y_tr, y_te = np.arange(30) % 3, np.arange(10) % 4  # test label 3 unseen in train is fine
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    ds = load_dataset(f"npz:{path}")
    assert ds.name == f"npz:{path}" and ds.augment == "none"
    assert tuple(ds.x_train.shape) == (30, 1, 28, 28) and ds.num_classes == 4
    np.testing.assert_array_equal(ds.x_train[:, 0].numpy(), x_tr)
    assert ds.y_test.tolist() == y_te.tolist()
    np.testing.assert_allclose(ds.mean, [x_tr.mean() / 255.0], rtol=1e-10)


def test_npz_colour_and_float(tmp_path):
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (8, 5, 6, 3), dtype=np.uint8)
    x_tr[2, 1, 4, 2] = 77  # row 1, column 4, channel 2
    y = np.array([[0], [1]] * 4)  # Keras CIFAR stores labels as [N, 1]
    path = tmp_path / "c.npz"
    np.savez(path, x_train=x_tr, y_train=y, x_test=x_tr[:2], y_test=y[:2])
    ds = load_dataset(f"npz:{path}")
    assert tuple(ds.x_train.shape) == (8, 3, 5, 6) and int(ds.x_train[2, 2, 1, 4]) == 77
    assert ds.num_classes == 2 and ds.y_train.tolist() == [0, 1] * 4

    np.savez(path, x_train=x_tr / 255.0, y_train=y, x_test=x_tr[:2] / 255.0, y_test=y[:2])
    assert load_dataset(f"npz:{path}").fingerprint == ds.fingerprint  # floats * 255, rounded

    np.savez(path, x_train=x_tr * 2.0, y_train=y, x_test=x_tr[:2], y_test=y[:2])
    with pytest.raises(DataError, match="uint8 0..255 or floats in \\[0, 1\\]"):
        load_dataset(f"npz:{path}")


def test_npz_errors(tmp_path):
    path = tmp_path / "bad.npz"
    with pytest.raises(DataError, match=f"npz file {path} not found"):
        load_dataset(f"npz:{path}")
    x, y = np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 0, 1])
    np.savez(path, x_train=x, y_train=y, x_test=x)
    with pytest.raises(DataError, match=r"lacks key\(s\) y_test: save it"):
        load_dataset(f"npz:{path}")
    np.savez(path, x_train=x, y_train=y[:3], x_test=x, y_test=y)
    with pytest.raises(DataError, match="x_train has 4 images but y_train has 3 labels"):
        load_dataset(f"npz:{path}")
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=-y)
    with pytest.raises(DataError, match="y_test has negative label -1"):
        load_dataset(f"npz:{path}")
    np.savez(path, x_train=x, y_train=y + 0.5, x_test=x, y_test=y)
    with pytest.raises(DataError, match="store labels as integers"):
        load_dataset(f"npz:{path}")
    np.savez(path, x_train=x, y_train=y * 0, x_test=x, y_test=y * 0)
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(f"npz:{path}")

"""takd_search.data.digits: scikit-learn's bundled digits, loaded as a Dataset."""

from __future__ import annotations

import numpy as np
import torch
from test_data_cifar import CIFAR10, _md5, make_cifar  # the tiny official-format archive

from takd_search.data import load_dataset
from takd_search.data.cifar import CIFAR_MD5


def test_digits_shapes_stats_and_fingerprint(tmp_path, monkeypatch):
    ds = load_dataset("digits")
    assert ds.name == "digits"
    assert tuple(ds.x_train.shape) == (1437, 1, 8, 8)
    assert tuple(ds.x_test.shape) == (360, 1, 8, 8)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.x_train.is_contiguous() and ds.input_shape == (1, 8, 8)
    assert ds.num_classes == 10 and ds.class_names == tuple("0123456789")
    assert int(ds.x_train.max()) == 255 and int(ds.x_train.min()) == 0
    assert set(ds.y_test.tolist()) == set(range(10))
    assert ds.augment == "none"
    x = ds.x_train.numpy() / 255.0
    np.testing.assert_allclose(ds.mean, x.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(ds.std, x.std(axis=(0, 2, 3)), rtol=1e-10)
    # pixel 0..16 -> round(v*255/16): 16 -> 255, 8 -> 128 (127.5 rounds to even), 1 -> 16
    assert set(np.unique(ds.x_train.numpy())) <= {round(v * 255 / 16) for v in range(17)}

    again = load_dataset("Digits")
    assert again.fingerprint == ds.fingerprint and len(ds.fingerprint) == 64
    assert torch.equal(again.x_test, ds.x_test)

    monkeypatch.setitem(CIFAR_MD5, CIFAR10, _md5(make_cifar(tmp_path)[0]))
    cifar = load_dataset("cifar10", tmp_path, download=False)
    assert cifar.fingerprint != ds.fingerprint

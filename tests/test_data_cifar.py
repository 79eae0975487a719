"""takd_search.data.cifar on tiny archives built in tmp_path in the official format."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

from takd_search.data import DataError, cifar, load_dataset

CIFAR10 = "cifar-10-python.tar.gz"
CIFAR100 = "cifar-100-python.tar.gz"


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _add_pickle(tf: tarfile.TarFile, name: str, obj) -> None:
    blob = pickle.dumps(obj, protocol=2)  # the official files are Python 2 pickles
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tf.addfile(info, io.BytesIO(blob))


def make_cifar(root, kind: str = "cifar10", per_batch: int = 4, n_test: int = 6, meta=True):
    """A tiny CIFAR archive in root, laid out as the official one; returns (path, arrays)."""
    rng = np.random.default_rng(1 if kind == "cifar10" else 2)
    k = 10 if kind == "cifar10" else 100
    folder, label_key, train, test, meta_name, names_key, archive = {
        "cifar10": (
            "cifar-10-batches-py", "labels", [f"data_batch_{i}" for i in range(1, 6)],
            "test_batch", "batches.meta", "label_names", CIFAR10,
        ),
        "cifar100": (
            "cifar-100-python", "fine_labels", ["train"], "test", "meta", "fine_label_names",
            CIFAR100,
        ),
    }[kind]  # fmt: skip
    arrays = {"x_train": [], "y_train": []}
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive
    with tarfile.open(path, "w:gz") as tf:
        for b in train:
            x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            y = [int(v) for v in rng.integers(0, k, per_batch)]
            _add_pickle(tf, f"{folder}/{b}", {"batch_label": b, "data": x, label_key: y})
            arrays["x_train"].append(x)
            arrays["y_train"] += y
        x = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
        x[0, 2 * 1024 + 5 * 32 + 7] = 201  # channel 2 (blue), row 5, column 7 of image 0
        y = [int(v) for v in rng.integers(0, k, n_test)]
        _add_pickle(tf, f"{folder}/{test}", {"data": x, label_key: y})
        if meta:
            _add_pickle(tf, f"{folder}/{meta_name}", {names_key: [f"c{i}" for i in range(k)]})
    arrays["x_train"] = np.concatenate(arrays["x_train"])
    arrays.update(x_test=x, y_test=y)
    return path, arrays


def test_cifar10_from_archive(tmp_path, monkeypatch):
    path, arr = make_cifar(tmp_path)
    monkeypatch.setitem(cifar.CIFAR_MD5, CIFAR10, _md5(path))
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.name == "cifar10" and ds.augment == "crop_flip"
    assert tuple(ds.x_train.shape) == (20, 3, 32, 32) and tuple(ds.x_test.shape) == (6, 3, 32, 32)
    assert ds.num_classes == 10 and ds.class_names[:2] == ("c0", "c1")
    assert int(ds.x_test[0, 2, 5, 7]) == 201
    np.testing.assert_array_equal(ds.x_train.numpy(), arr["x_train"].reshape(20, 3, 32, 32))
    assert ds.y_train.tolist() == arr["y_train"] and ds.y_test.tolist() == arr["y_test"]
    x = ds.x_train.numpy() / 255.0
    np.testing.assert_allclose(ds.mean, x.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(ds.std, x.std(axis=(0, 2, 3)), rtol=1e-10)


def test_cifar100_archive_and_extracted_folder(tmp_path, monkeypatch):
    path, arr = make_cifar(tmp_path / "a", "cifar100", per_batch=12, meta=False)
    monkeypatch.setitem(cifar.CIFAR_MD5, CIFAR100, _md5(path))
    ds = load_dataset("cifar-100", tmp_path / "a", download=False)
    assert ds.name == "cifar100" and ds.num_classes == 100
    assert ds.class_names[:3] == ("0", "1", "2")  # no meta file: numbered classes
    assert tuple(ds.x_train.shape) == (12, 3, 32, 32) and int(ds.x_test[0, 2, 5, 7]) == 201
    assert ds.y_train.tolist() == arr["y_train"]

    with tarfile.open(path) as tf:
        tf.extractall(tmp_path / "b", filter="data")
    extracted = load_dataset("cifar100", tmp_path / "b", download=False)
    assert extracted.fingerprint == ds.fingerprint


def test_cifar_wrong_md5(tmp_path):
    path, _ = make_cifar(tmp_path)
    with pytest.raises(DataError, match=r"has md5 [0-9a-f]{32}, expected c58f30108f") as e:
        load_dataset("cifar10", tmp_path)
    assert str(path) in str(e.value) and "delete it and download again" in str(e.value)
    assert "\n" not in str(e.value)


def test_cifar_own_archive_is_accepted_by_its_md5(tmp_path, monkeypatch):
    """TAKD_CIFAR_MD5 names a local archive's md5 (bench/rehearse_cifar100.py): accepted; a
    corrupt copy of it is still refused, naming that md5."""
    path, arr = make_cifar(tmp_path, "cifar100", per_batch=12, meta=False)
    monkeypatch.setenv("TAKD_CIFAR_MD5", _md5(path).upper())
    ds = load_dataset("cifar100", tmp_path, download=False)
    assert ds.y_train.tolist() == arr["y_train"]
    monkeypatch.setenv("TAKD_CIFAR_MD5", "0" * 32)
    with pytest.raises(DataError, match="not the md5 in TAKD_CIFAR_MD5"):
        load_dataset("cifar100", tmp_path, download=False)


def test_cifar_missing_archive_without_download(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path, download=False)
    msg = str(e.value)
    assert msg.startswith(f"CIFAR-10 archive not found: put {CIFAR10} in {tmp_path}")
    assert "download disabled" in msg and "TAKD_DATA" in msg


def test_cifar_failed_download_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cifar, "CIFAR_URL", "http://127.0.0.1:9/")
    target = tmp_path / "data"
    with pytest.raises(DataError) as e:
        load_dataset("cifar100", target)
    msg = str(e.value)
    assert f"put {CIFAR100} in {target}" in msg and "download failed:" in msg
    assert "\n" not in msg
    assert not target.exists()  # the folder it made, and the partial file, are gone

    tmp_path.joinpath("keep").mkdir()
    with pytest.raises(DataError):
        load_dataset("cifar100", tmp_path / "keep")
    assert list(tmp_path.joinpath("keep").iterdir()) == []


def test_cifar_download_from_local_server(tmp_path, monkeypatch):
    served, _ = make_cifar(tmp_path / "served")
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served")
    )
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(cifar, "CIFAR_URL", f"http://127.0.0.1:{server.server_port}/")
        # a download whose md5 is wrong is refused and removed
        with pytest.raises(DataError, match="download failed: got md5"):
            load_dataset("cifar10", tmp_path / "dl")
        assert not (tmp_path / "dl").exists()
        monkeypatch.setitem(cifar.CIFAR_MD5, CIFAR10, _md5(served))
        ds = load_dataset("cifar10", tmp_path / "dl")
    finally:
        server.shutdown()
        server.server_close()
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [CIFAR10]
    assert (tmp_path / "dl" / CIFAR10).read_bytes() == served.read_bytes()
    assert tuple(ds.x_train.shape) == (20, 3, 32, 32)

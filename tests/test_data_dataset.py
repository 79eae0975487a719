"""Tests of takd_search.data on tiny files built in tmp_path in the real formats."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import shutil
import tarfile
import threading

import numpy as np
import PIL.Image
import pytest
import torch

from takd_search import data
from takd_search.data import DataError, dataset_status, load_dataset, split_train_val

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


# --- digits ---------------------------------------------------------------------------------


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

    monkeypatch.setitem(data.CIFAR_MD5, CIFAR10, _md5(make_cifar(tmp_path)[0]))
    cifar = load_dataset("cifar10", tmp_path, download=False)
    assert cifar.fingerprint != ds.fingerprint


def test_unknown_name_and_image_size_for_fixed_sets():
    with pytest.raises(DataError, match=r"unknown data set 'foo': use digits, mnist1d, cifar10"):
        load_dataset("foo")
    with pytest.raises(DataError, match="image_size=32 applies only to folder"):
        load_dataset("digits", image_size=32)
    assert load_dataset("digits", image_size=8).input_shape == (1, 8, 8)


def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TAKD_DATA", str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("TAKD_DATA")
    monkeypatch.chdir(tmp_path)
    assert data.resolve_data_dir() == tmp_path / "data"


# --- CIFAR ----------------------------------------------------------------------------------


def test_cifar10_from_archive(tmp_path, monkeypatch):
    path, arr = make_cifar(tmp_path)
    monkeypatch.setitem(data.CIFAR_MD5, CIFAR10, _md5(path))
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
    monkeypatch.setitem(data.CIFAR_MD5, CIFAR100, _md5(path))
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


def test_cifar_missing_archive_without_download(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path, download=False)
    msg = str(e.value)
    assert msg.startswith(f"CIFAR-10 archive not found: put {CIFAR10} in {tmp_path}")
    assert "download disabled" in msg and "TAKD_DATA" in msg


def test_cifar_failed_download_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "CIFAR_URL", "http://127.0.0.1:9/")
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
        monkeypatch.setattr(data, "CIFAR_URL", f"http://127.0.0.1:{server.server_port}/")
        # a download whose md5 is wrong is refused and removed
        with pytest.raises(DataError, match="download failed: got md5"):
            load_dataset("cifar10", tmp_path / "dl")
        assert not (tmp_path / "dl").exists()
        monkeypatch.setitem(data.CIFAR_MD5, CIFAR10, _md5(served))
        ds = load_dataset("cifar10", tmp_path / "dl")
    finally:
        server.shutdown()
        server.server_close()
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [CIFAR10]
    assert (tmp_path / "dl" / CIFAR10).read_bytes() == served.read_bytes()
    assert tuple(ds.x_train.shape) == (20, 3, 32, 32)


def test_dataset_status(tmp_path):
    make_cifar(tmp_path)
    rows = {r["name"]: r for r in dataset_status(tmp_path)}
    assert list(rows) == ["digits", "mnist1d", "cifar10", "cifar100", "npz:PATH", "folder:PATH"]
    assert rows["digits"]["available"] is True
    assert rows["cifar10"] == {**rows["cifar10"], "available": True}
    assert rows["cifar10"]["where"] == str(tmp_path / CIFAR10)
    assert rows["cifar100"]["available"] is False
    assert rows["cifar100"]["where"].startswith("download on first use")
    assert rows["npz:PATH"]["available"] == "-" and rows["folder:PATH"]["available"] == "-"
    assert all(r["description"] for r in rows.values())


# --- npz ------------------------------------------------------------------------------------


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


# --- image folder ---------------------------------------------------------------------------


def make_folder(root, size=(40, 30), per_class=(3, 2), classes=("cat", "dog", "emu"), mode="RGB"):
    """root/{train,test}/<class>/<i>.png with a solid colour per class."""
    for split, n in zip(("train", "test"), per_class, strict=True):
        for k, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                colour = (40 * k + 10, 200 - 40 * k, 7 * i) if mode == "RGB" else 60 * k + i
                PIL.Image.new(mode, size, colour).save(d / f"{i}.png")
    return root


def test_folder_load_resize_and_cache(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "imgs")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")  # ignored
    ds = load_dataset(f"folder:{root}")
    assert ds.name == f"folder:{root}"
    assert ds.class_names == ("cat", "dog", "emu") and ds.num_classes == 3
    # 40 px > 32: default size 64, which gets the resized-crop augmentation
    assert tuple(ds.x_train.shape) == (9, 3, 64, 64) and tuple(ds.x_test.shape) == (6, 3, 64, 64)
    assert ds.augment == "resized_crop_flip"
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.x_train[3, :, 10, 10].tolist() == [50, 160, 0]  # dog, image 0: solid colour
    caches = list((root / ".takd_cache").glob("*.pt"))
    assert [p.name.split("-")[0] for p in caches] == ["64"]

    def refuse(*a, **k):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    again = load_dataset(f"folder:{root}")
    assert again.fingerprint == ds.fingerprint and again.augment == ds.augment
    monkeypatch.undo()

    small = load_dataset(f"folder:{root}", image_size=16)
    assert small.input_shape == (3, 16, 16) and small.augment == "crop_flip"
    assert len(list((root / ".takd_cache").glob("*.pt"))) == 2


def test_folder_grayscale_small(tmp_path):
    root = make_folder(tmp_path / "g", size=(20, 12), mode="L")
    ds = load_dataset(f"folder:{root}")
    assert ds.input_shape == (1, 32, 32) and ds.augment == "none"
    assert int(ds.x_train[6, 0, 5, 5]) == 120  # emu, image 0: value 60*2 + 0


def test_folder_errors(tmp_path):
    root = tmp_path / "f"
    (root / "train").mkdir(parents=True)
    (root / "test" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="train has no class sub-folders: expected train/<class>"):
        load_dataset(f"folder:{root}")
    (root / "train" / "a").mkdir()
    (root / "train" / "b").mkdir()
    with pytest.raises(DataError, match=f"image folder {root / 'train' / 'a'} has no images"):
        load_dataset(f"folder:{root}")
    no_test = make_folder(tmp_path / "x")
    shutil.rmtree(no_test / "test")
    with pytest.raises(DataError, match="has no test/ folder: expected test/<class>/"):
        load_dataset(f"folder:{no_test}")

    ok = make_folder(tmp_path / "ok")
    (ok / "test" / "yak").mkdir()
    with pytest.raises(DataError, match="classes yak missing from train/"):
        load_dataset(f"folder:{ok}")
    (ok / "test" / "yak").rmdir()
    (ok / "train" / "dog" / "1.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"image .*dog/1\.png cannot be read"):
        load_dataset(f"folder:{ok}")


# --- validation split -----------------------------------------------------------------------


def test_split_train_val():
    labels = torch.arange(1000) % 7  # classes of 143 or 142 images
    tr, va = split_train_val(labels, 0.1, seed=0)
    assert tr.dtype == va.dtype == torch.int64
    assert len(va) == 100 and len(tr) == 900
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(1000))
    for c in range(7):
        n_c = int((labels == c).sum())
        assert abs(int((labels[va] == c).sum()) - 0.1 * n_c) <= 1
    tr2, va2 = split_train_val(labels, 0.1, seed=0)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    _, va3 = split_train_val(labels, 0.1, seed=1)
    assert not torch.equal(va, va3)
    assert len(split_train_val(labels, 0.5)[1]) == 500
    for bad in (0, 0.0, -0.1, 0.51, 1.0):
        with pytest.raises(DataError, match=r"fraction must be in \(0, 0.5\]"):
            split_train_val(labels, bad)
    with pytest.raises(DataError, match="stratified"):
        split_train_val(torch.tensor([0, 0, 0, 1]), 0.5)  # class 1 has a single image


def test_split_is_cached_on_the_dataset_and_travels_with_it(digits):
    """The driver splits once; a pickled copy (what a Ray worker gets) carries the split
    and gives the same indices without splitting again."""
    from takd_search.data import split_train_val

    tr, va = digits.split(0.1, 0)
    assert digits.split(0.1, 0)[0] is tr  # cached: the same tensor object
    want_tr, want_va = split_train_val(digits.y_train, 0.1, 0)
    assert torch.equal(tr, want_tr) and torch.equal(va, want_va)
    copy = pickle.loads(pickle.dumps(digits))
    assert set(copy._splits) == {(0.1, 0)}
    assert torch.equal(copy.split(0.1, 0)[1], va)
    assert not torch.equal(digits.split(0.2, 0)[1], va)

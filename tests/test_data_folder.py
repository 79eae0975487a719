"""takd_search.data.folder on tiny image folders built in tmp_path."""

from __future__ import annotations

import shutil

import PIL.Image
import pytest

from takd_search.data import DataError, load_dataset


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

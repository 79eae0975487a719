"""folder:PATH: an image folder, PATH/{train,test}/<class>/<image>, decoded with Pillow.

The way to bring one's own images: classes are the sub-folders, images of any size are
squashed to one square side (32 or 64 px by default), and the decoded tensors are cached
beside the images so that every later load (every trial's worker) skips the decoding.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from takd_search.data.dataset import DataError, Dataset, make_dataset, write_cache
from takd_search.data.registry import LoadRequest, register_dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # Pillow modes decoded as one channel
_CACHE_VERSION = "1"  # bump when the folder cache layout changes, so stale caches are ignored
STATUS = {
    "name": "folder:PATH",
    "description": "images in PATH/train/<class>/ and PATH/test/<class>/",
    "available": "-",
    "where": "PATH",
}


@register_dataset(
    "folder",
    status=STATUS,
    recipe={"epochs": 30, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4},
    arg="PATH",
    bare=False,
)
def load(request: LoadRequest) -> Dataset:
    """The registered loader of "folder:PATH"; the one data set that reads image_size."""
    return _load_folder(Path(request.arg).expanduser().resolve(), request.image_size)


def _load_folder(root: Path, image_size: int | None) -> Dataset:
    """PATH/train/<class>/<image> and PATH/test/<class>/<image> (png, jpg, jpeg, bmp).

    Classes are the sorted sub-folders of train/. Images are decoded with Pillow, made RGB
    (or L when every image is grayscale), EXIF-rotated, and squashed to image_size x
    image_size pixels with bilinear filtering (aspect ratio not kept). The decoded tensors
    are cached in PATH/.takd_cache/<size>-<hash>.pt, keyed by the file list, sizes, mtimes
    and the requested size, so later loads skip decoding; the folder may be deleted freely.
    """
    name = f"folder:{root}"
    if not root.is_dir():
        raise DataError(f"image folder {root} not found: check the path in folder:PATH")
    if image_size is not None and not 1 <= int(image_size) <= 4096:
        raise DataError(f"image_size={image_size} for {name}: use a side in 1..4096 pixels")
    train_dir, test_dir = root / "train", root / "test"
    for d in (train_dir, test_dir):
        if not d.is_dir():
            raise DataError(
                f"image folder {root} has no {d.name}/ folder: expected "
                f"{d.name}/<class>/<image>.png"
            )
    classes = _class_dirs(train_dir)
    if not classes:
        raise DataError(
            f"image folder {train_dir} has no class sub-folders: expected "
            "train/<class>/<image>.png"
        )
    test_classes = _class_dirs(test_dir)
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise DataError(
            f"image folder {test_dir} has classes {', '.join(unknown)} missing from train/: "
            "give test/ only class folders that train/ has"
        )
    if not test_classes:
        raise DataError(
            f"image folder {test_dir} has no class sub-folders: expected test/<class>/<image>.png"
        )
    splits = {
        "train": _list_images(train_dir, classes, classes),
        "test": _list_images(test_dir, test_classes, classes),
    }

    digest = _folder_digest(root, splits, image_size)
    cache_dir = root / ".takd_cache"
    cached = _read_cache(cache_dir, digest, image_size)
    if cached is not None:
        x_tr, y_tr, x_te, y_te = cached
    else:
        headers = {p: _image_header(p) for items in splits.values() for p, _ in items}
        size = image_size or (32 if max(max(s) for s, _ in headers.values()) <= 32 else 64)
        mode = "L" if all(m in GRAY_MODES for _, m in headers.values()) else "RGB"
        x_tr, y_tr = _decode_images(splits["train"], size, mode)
        x_te, y_te = _decode_images(splits["test"], size, mode)
        write_cache(cache_dir / f"{size}-{digest}.pt", x_tr, y_tr, x_te, y_te)
    size, channels = x_tr.shape[-1], x_tr.shape[1]
    if size >= 64:
        augment = "resized_crop_flip"
    elif size <= 32 and channels == 3:
        augment = "crop_flip"
    else:
        augment = "none"
    return make_dataset(name, x_tr, y_tr, x_te, y_te, tuple(classes), augment)


def _folder_digest(root: Path, splits: dict, image_size: int | None) -> str:
    """Cache key: the exact file list (path, bytes, mtime) and the size request, so an
    added, removed or edited image, or another size, never hits a stale cache."""
    h = hashlib.sha256(f"v{_CACHE_VERSION};size={image_size or 'auto'};".encode())
    for split, items in splits.items():
        for p, _ in items:
            st = p.stat()
            rel = p.relative_to(root).as_posix()
            h.update(f"{split}/{rel}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _class_dirs(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_images(d: Path, classes: list[str], all_classes: list[str]) -> list[tuple[Path, int]]:
    """(image path, class index into all_classes) for every image under d/<class>/, sorted."""
    items = []
    for c in classes:
        files = sorted(
            p
            for p in (d / c).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DataError(
                f"image folder {d / c} has no images: put .png/.jpg/.jpeg/.bmp files in it or "
                "remove the folder"
            )
        items += [(p, all_classes.index(c)) for p in files]
    return items


def _image_header(path: Path) -> tuple[tuple[int, int], str]:
    """((width, height), mode) read from the header only, without decoding pixels."""
    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except Exception as e:
        raise DataError(f"image {path} cannot be read ({e}): replace or delete it") from e


def _decode_images(
    items: list[tuple[Path, int]], size: int, mode: str
) -> tuple[torch.Tensor, ...]:
    """Decode and resize images -> (uint8 [N, C, size, size], int64 [N])."""
    x = np.empty((len(items), 1 if mode == "L" else 3, size, size), dtype=np.uint8)
    for i, (path, _) in enumerate(items):
        try:
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img).convert(mode)
                img = img.resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except Exception as e:
            raise DataError(f"image {path} cannot be read ({e}): replace or delete it") from e
        x[i] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    y = np.array([label for _, label in items], dtype=np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def _read_cache(cache_dir: Path, digest: str, image_size: int | None):
    """(x_train, y_train, x_test, y_test) from a matching cache file, or None."""
    pattern = f"{image_size}-{digest}.pt" if image_size else f"*-{digest}.pt"
    for path in sorted(cache_dir.glob(pattern)) if cache_dir.is_dir() else []:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            return blob["x_train"], blob["y_train"], blob["x_test"], blob["y_test"]
        except Exception:  # a damaged cache is only a cache: decode again
            continue
    return None

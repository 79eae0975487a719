"""Data sets: a small registry of loaders and the seeded validation split.

Every loader returns a `Dataset` of uint8 image tensors [N, C, H, W] (or float32 1-D
signals [N, C, L]) with int64 labels, the per-channel mean/std of the training inputs (in
[0, 1] units for images, the signal's own units for signals) and a content fingerprint.
Nothing here augments or batches: that happens on the training device (`augment.py`).

Names: "digits" (scikit-learn's bundled 8x8 digits, works offline), "mnist1d" and
"mnist1d:N" (Greydanus' MNIST-1D, 40-point signals generated offline from a seed),
"cifar10", "cifar100" (the official python archives, read straight from the tar.gz),
"npz:PATH" (Keras-style x_train/y_train/x_test/y_test arrays, images or 1-D signals) and
"folder:PATH" (PATH/{train,test}/<class>/<image>).
Files are looked for in `resolve_data_dir()`: --data-dir, else $TAKD_DATA, else ./data.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from takd_search.errors import UserError

BUILTIN = ("digits", "mnist1d", "cifar10", "cifar100")  # plus mnist1d:N, npz:PATH, folder:PATH
# MNIST-1D: default total samples (the package splits 80/20 into train/test). 12,500 gives
# 10,000 train / 2,500 test, so a 0.2 validation fraction leaves 8,000 to train on and
# 2,000 to select on: enough for 1-point effects to stand out of the noise.
MNIST1D_SAMPLES = 12_500
MNIST1D_SEED = 42  # the package's own default seed
MNIST1D_MAX_SAMPLES = 1_000_000
_MNIST1D_VERSION = "1"  # bump when the generated arrays change, so stale caches are ignored
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"  # + archive file name
# Official archive checksums; module-level so tests can point them at a tiny archive.
CIFAR_MD5 = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # Pillow modes decoded as one channel
_CACHE_VERSION = "1"  # bump when the folder cache layout changes, so stale caches are ignored
_md5_cache: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> md5 hex


class DataError(UserError):
    """A data set cannot be loaded; str(e) is one line naming the file and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).splitlines()))  # always one line


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """One data set in memory, images as uint8 [N, C, H, W] (or 1-D signals as float32
    [N, C, L]) and labels as int64 [N].

    mean/std are per-channel statistics of all of x_train/255 for images, of x_train itself
    for signals (population std, clamped to >= 1e-3), for describing the data; training
    normalises with `train_stats`, the same statistics over the training part of the
    validation split only: a model input is (x/255 - mean)/std (images) or (x - mean)/std
    (signals). augment names the default augmentation ("none", "crop_flip" or
    "resized_crop_flip"; signals take "none"). fingerprint is a sha256 hex of the inputs
    and labels (shapes included, name excluded): the same data under two names has one
    fingerprint.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str
    class_names: tuple[str, ...]
    fingerprint: str

    def split(self, fraction: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """`split_train_val` of this data set's training labels, cached on the object.

        The cache, {(fraction, seed): (train_idx, val_idx)} in `_splits`, is pickled with
        the data set: computed once where the data is loaded, a Ray worker gets it and
        neither recomputes the split nor imports scikit-learn (0.8 s of every new worker's
        start, two workers per phase)."""
        key = (float(fraction), int(seed))
        cache = self.__dict__.setdefault("_splits", {})  # frozen: not through setattr
        if key not in cache:
            cache[key] = split_train_val(self.y_train, fraction, seed)
        return cache[key]

    def train_stats(
        self, fraction: float = 0.1, seed: int = 0
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std) of x/255 over the *training part* of `split(fraction,
        seed)`: what a model trained on that split is normalised with. The validation
        images stay unseen by every statistic, as the test images are. Cached like splits."""
        key = (float(fraction), int(seed))
        cache = self.__dict__.setdefault("_stats", {})  # beside `_splits`, the same way
        if key not in cache:
            cache[key] = _channel_stats(self.x_train[self.split(fraction, seed)[0]])
        return cache[key]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image, or (C, L) of one 1-D signal."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def is_signal(self) -> bool:
        """True for 1-D signals [N, C, L] (float32), False for images [N, C, H, W] (uint8)."""
        return self.x_train.dim() == 3

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.input_shape))
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"shape={shape}, classes={self.num_classes}, augment={self.augment!r}, "
            f"fingerprint={self.fingerprint[:12]})"
        )


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds data files: `data_dir`, else $TAKD_DATA, else ./data (absolute)."""
    chosen = data_dir if data_dir is not None else os.environ.get("TAKD_DATA") or "data"
    return Path(chosen).expanduser().absolute()


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    image_size: int | None = None,
) -> Dataset:
    """Load data set `name` (see the module docstring) into memory.

    download: fetch a missing CIFAR archive into the data folder. image_size: side in pixels
    that folder images are resized to (default 32 if every image is <= 32 px, else 64); the
    other data sets have a fixed size, and asking for a different one is an error.
    """
    name = str(name).strip()
    kind, _, arg = name.partition(":")
    if kind.lower() in ("npz", "folder") and arg:
        path = Path(arg).expanduser().resolve()
        if kind.lower() == "folder":
            return _load_folder(path, image_size)
        ds = _load_npz(path)
    else:
        key = name.lower().replace("-", "").replace("_", "")
        if kind.lower().replace("-", "").replace("_", "") == "mnist1d":
            ds = _load_mnist1d(*_mnist1d_args(name, arg), resolve_data_dir(data_dir))
        elif key == "digits":
            ds = _load_digits()
        elif key in ("cifar10", "cifar100"):
            ds = _load_cifar(key, resolve_data_dir(data_dir), download)
        else:
            raise DataError(
                f"unknown data set {name!r}: use {', '.join(BUILTIN)}, mnist1d:N, npz:PATH or "
                "folder:PATH"
            )
    if image_size is not None and tuple(ds.input_shape[1:]) != (image_size,) * 2:
        size = "x".join(map(str, ds.input_shape[1:]))
        raise DataError(
            f"image_size={image_size} applies only to folder:PATH data sets: {ds.name} is "
            f"{size}; leave image_size unset"
        )
    return ds


def dataset_status(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One row per known data set for `takd-search datasets`: name, description, available
    (True/False, or "-" for the path patterns) and where the data comes from."""
    root = resolve_data_dir(data_dir)
    rows = [
        {
            "name": "digits",
            "description": "8x8 grayscale handwritten digits, 10 classes, 1437 train / 360 test",
            "available": True,
            "where": "scikit-learn (bundled)",
        },
        {
            "name": "mnist1d",
            "description": (
                f"40-point 1-D signals, 10 classes, {int(MNIST1D_SAMPLES * 0.8)} train / "
                f"{MNIST1D_SAMPLES - int(MNIST1D_SAMPLES * 0.8)} test (mnist1d:N for N "
                "samples in all, 80/20)"
            ),
            "available": _mnist1d_installed(),
            "where": "generated offline by the mnist1d package"
            if _mnist1d_installed()
            else "pip install mnist1d",
        },
    ]
    for key, desc in (
        ("cifar10", "32x32 colour images, 10 classes, 50000 train / 10000 test"),
        ("cifar100", "32x32 colour images, 100 classes, 50000 train / 10000 test"),
    ):
        archive, folder = _cifar_paths(key, root)
        found = next((p for p in (archive, folder) if p.exists()), None)
        rows.append(
            {
                "name": key,
                "description": desc,
                "available": found is not None,
                "where": str(found) if found else f"download on first use (into {root})",
            }
        )
    rows.append(
        {
            "name": "npz:PATH",
            "description": (
                "x_train, y_train, x_test, y_test arrays (as Keras' mnist.npz): images, or "
                "1-D signals [N, L] / [N, C, L]"
            ),
            "available": "-",
            "where": "PATH",
        }
    )
    rows.append(
        {
            "name": "folder:PATH",
            "description": "images in PATH/train/<class>/ and PATH/test/<class>/",
            "available": "-",
            "where": "PATH",
        }
    )
    return rows


def split_train_val(
    labels: torch.Tensor, fraction: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified (train_idx, val_idx) over range(len(labels)), both sorted int64.

    The two are disjoint and cover every index, and depend only on (labels, fraction, seed),
    so every trial of a search selects on the same validation images.
    """
    if not 0.0 < float(fraction) <= 0.5:
        raise DataError(f"validation fraction must be in (0, 0.5], got {fraction}")
    from sklearn.model_selection import train_test_split  # 0.8 s import: only when splitting

    y = torch.as_tensor(labels).detach().cpu().reshape(-1).numpy()
    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(y)), test_size=float(fraction), stratify=y, random_state=int(seed)
        )
    except ValueError as e:  # e.g. a class with one image, or fewer val images than classes
        raise DataError(
            f"cannot carve a stratified validation split of {fraction} from {len(y)} "
            f"training labels: {e}; use a larger data set or another fraction"
        ) from e
    return torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(val_idx))


# --- building and checking a Dataset -------------------------------------------------------


def _make_dataset(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    class_names: tuple[str, ...],
    augment: str,
) -> Dataset:
    """Check the arrays (dtype, shape, label range) and add statistics and fingerprint."""
    x_train, x_test = x_train.contiguous(), x_test.contiguous()
    y_train, y_test = y_train.to(torch.int64).contiguous(), y_test.to(torch.int64).contiguous()
    num_classes = len(class_names)
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if not (
            (x.dtype == torch.uint8 and x.dim() == 4)
            or (x.dtype == torch.float32 and x.dim() == 3)
        ):
            raise DataError(
                f"{name}: {split} inputs must be uint8 images [N, C, H, W] or float32 "
                "signals [N, C, L]"
            )
        if len(x) == 0 or len(x) != len(y):
            raise DataError(
                f"{name}: {split} split has {len(x)} images and {len(y)} labels; it needs "
                "the same, non-zero number of each"
            )
        if y.min() < 0 or y.max() >= num_classes:
            raise DataError(
                f"{name}: {split} labels span {int(y.min())}..{int(y.max())}, outside "
                f"0..{num_classes - 1}; fix the labels"
            )
    if x_train.dim() == 3 and x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{name}: train signals are [C, L] = {list(x_train.shape[1:])} but test signals "
            f"are {list(x_test.shape[1:])}; store both splits with one channel count and length"
        )
    if x_train.dim() == 3 and not (
        bool(torch.isfinite(x_train).all()) and bool(torch.isfinite(x_test).all())
    ):
        raise DataError(f"{name}: signals contain NaN or infinite values; clean them first")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{name}: train images are {tuple(x_train.shape[1:])} but test images are "
            f"{tuple(x_test.shape[1:])}; store both splits at one size"
        )
    if num_classes < 2:
        raise DataError(f"{name}: only {num_classes} class; a classifier needs at least 2")
    mean, std = _channel_stats(x_train)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        mean=mean,
        std=std,
        augment=augment,
        class_names=tuple(class_names),
        fingerprint=_fingerprint(x_train, y_train, x_test, y_test),
    )


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images x/255, from 256-bin histograms
    (exact, and no float copy of a 150 MB CIFAR train set); of float signals x as they are
    (in float64, so a long signal set sums without float32 drift)."""
    if x.is_floating_point():
        flat = x.transpose(0, 1).reshape(x.shape[1], -1).to(torch.float64)
        mean = flat.mean(1)
        std = ((flat - mean[:, None]) ** 2).mean(1).sqrt().clamp(min=1e-3)
        return tuple(map(float, mean)), tuple(map(float, std))
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = counts.sum()
        mean = float((counts * values).sum() / n)
        var = float((counts * (values - mean) ** 2).sum() / n)
        means.append(mean)
        stds.append(max(var**0.5, 1e-3))  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)


def _fingerprint(*tensors: torch.Tensor) -> str:
    """sha256 hex over each tensor's dtype, shape and bytes."""
    h = hashlib.sha256()
    for t in tensors:
        arr = t.detach().cpu().contiguous().numpy()
        h.update(f"{arr.dtype.str}{arr.shape};".encode())
        h.update(arr.reshape(-1).view(np.uint8))  # hashed in place, no bytes copy
    return h.hexdigest()


# --- digits ---------------------------------------------------------------------------------


def _load_digits() -> Dataset:
    """scikit-learn's 1797 8x8 digits (pixels 0..16 -> round(v*255/16)); a fixed stratified
    20% test split (random_state=0) stands in for the missing official one: 1437 / 360."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # [N, 1, 8, 8]
    y = bunch.target.astype(np.int64)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    tr, te = np.sort(tr), np.sort(te)
    return _make_dataset(
        "digits",
        torch.from_numpy(x[tr]),
        torch.from_numpy(y[tr]),
        torch.from_numpy(x[te]),
        torch.from_numpy(y[te]),
        tuple(str(i) for i in range(10)),
        "none",
    )


# --- MNIST-1D -------------------------------------------------------------------------------


def _mnist1d_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("mnist1d") is not None


def _mnist1d_args(name: str, arg: str) -> tuple[int, int]:
    """(num_samples, seed) from "mnist1d", "mnist1d:N" or "mnist1d:N:SEED"."""
    parts = arg.split(":") if arg else []
    usage = "write mnist1d, mnist1d:N (N samples in all) or mnist1d:N:SEED"
    if len(parts) > 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise DataError(f"data set {name!r}: {usage}, N and SEED whole numbers")
    n = int(parts[0]) if parts else MNIST1D_SAMPLES
    seed = int(parts[1]) if len(parts) > 1 else MNIST1D_SEED
    if not 100 <= n <= MNIST1D_MAX_SAMPLES:
        raise DataError(
            f"data set {name!r}: N = {n} samples is out of range; use 100..{MNIST1D_MAX_SAMPLES}"
        )
    return n, seed


def _load_mnist1d(num_samples: int, seed: int, root: Path) -> Dataset:
    """MNIST-1D (Greydanus 2020) made by the package's own generator, never its downloader.

    `make_dataset` with the package's default arguments, `num_samples` and `seed`: 40-point
    signals, split 80/20 into train/test by the package. The same (num_samples, seed) gives
    the same bytes on any machine, offline. The generator reseeds Python's and NumPy's
    global generators, so their states are saved and restored around it. The arrays are
    cached (float32) in <data dir>/.takd_cache/mnist1d-v<version>-<N>-<seed>.pt, best
    effort: generation takes about 1 s per 5,000 samples, the cache a few milliseconds.
    """
    name = (
        "mnist1d"
        if (num_samples, seed) == (MNIST1D_SAMPLES, MNIST1D_SEED)
        else (f"mnist1d:{num_samples}" + (f":{seed}" if seed != MNIST1D_SEED else ""))
    )
    cache = root / ".takd_cache" / f"mnist1d-v{_MNIST1D_VERSION}-{num_samples}-{seed}.pt"
    arrays = None
    if cache.is_file():
        try:
            blob = torch.load(cache, map_location="cpu", weights_only=True)
            arrays = blob["x_train"], blob["y_train"], blob["x_test"], blob["y_test"]
        except Exception:  # a damaged cache is only a cache: generate again
            arrays = None
    if arrays is None:
        arrays = _generate_mnist1d(num_samples, seed)
        _write_cache(cache, *arrays)
    return _make_dataset(name, *arrays, tuple(str(i) for i in range(10)), "none")


def _generate_mnist1d(num_samples: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test): float32 [N, 1, 40] signals and int64 labels."""
    import random

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except Exception as e:  # not installed, or broken
        raise DataError(f"mnist1d needs the mnist1d package ({e}): pip install mnist1d") from e
    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)

    def signals(a) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)[:, None, :])

    def labels(a) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64))

    return signals(d["x"]), labels(d["y"]), signals(d["x_test"]), labels(d["y_test"])


# --- CIFAR ----------------------------------------------------------------------------------


def _cifar_paths(key: str, root: Path) -> tuple[Path, Path]:
    """(archive, extracted folder) where CIFAR `key` is looked for."""
    if key == "cifar10":
        return root / "cifar-10-python.tar.gz", root / "cifar-10-batches-py"
    return root / "cifar-100-python.tar.gz", root / "cifar-100-python"


def _load_cifar(key: str, root: Path, download: bool) -> Dataset:
    """CIFAR-10/100 from the official archive in `root` (md5-checked, downloaded if missing
    and allowed) or from its already-extracted folder."""
    title = "CIFAR-10" if key == "cifar10" else "CIFAR-100"
    archive, folder = _cifar_paths(key, root)
    if key == "cifar10":
        train = [f"data_batch_{i}" for i in range(1, 6)]
        test, meta, label_key, names_key = ["test_batch"], "batches.meta", "labels", "label_names"
    else:
        train, test, meta = ["train"], ["test"], "meta"
        label_key, names_key = "fine_labels", "fine_label_names"
    if not archive.exists() and not folder.is_dir():
        if not download:
            raise DataError(_missing_archive(title, archive, "download disabled"))
        _download(title, archive)
    if archive.exists():
        _check_md5(title, archive)
        pickles = _read_tar_pickles(title, archive, folder.name, [*train, *test, meta])
    else:
        pickles = _read_folder_pickles(title, folder, [*train, *test, meta])
    x_tr, y_tr = _decode_batches(title, [pickles[m] for m in train], label_key)
    x_te, y_te = _decode_batches(title, [pickles[m] for m in test], label_key)
    n_classes = 10 if key == "cifar10" else 100
    names = tuple(str(s) for s in (pickles.get(meta) or {}).get(names_key, ()))
    if len(names) != n_classes:  # the meta file is optional; fall back to fixed names
        names = CIFAR10_CLASSES if key == "cifar10" else tuple(str(i) for i in range(100))
    return _make_dataset(key, x_tr, y_tr, x_te, y_te, names, "crop_flip")


def _missing_archive(title: str, archive: Path, reason: str) -> str:
    return (
        f"{title} archive not found: put {archive.name} in {archive.parent} "
        f"(or pass --data-dir DIR / set TAKD_DATA); {reason}"
    )


def _md5(path: Path) -> str:
    """md5 hex of a file, computed once per process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _md5_cache:
        h = hashlib.md5()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _md5_cache[key] = h.hexdigest()
    return _md5_cache[key]


def _check_md5(title: str, archive: Path) -> None:
    expected, got = CIFAR_MD5[archive.name], _md5(archive)
    if got != expected:
        raise DataError(
            f"{title} archive {archive} has md5 {got}, expected {expected}: the file is "
            "corrupt or not the official archive; delete it and download again"
        )


def _download(title: str, archive: Path) -> None:
    """Fetch `archive` from CIFAR_URL into its folder: stream to a temp file there, check its
    md5, then rename into place, so a failed or cut-off download leaves nothing behind."""
    url = CIFAR_URL + archive.name
    made_dir = not archive.parent.exists()
    tmp = None
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".part", dir=archive.parent)
        print(f"downloading {title} from {url} to {archive}", file=sys.stderr, flush=True)
        h = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                h.update(chunk)
        if h.hexdigest() != CIFAR_MD5[archive.name]:
            raise OSError(f"got md5 {h.hexdigest()}, expected {CIFAR_MD5[archive.name]}")
        os.replace(tmp, archive)
    except Exception as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if made_dir:  # do not leave behind an empty folder we created
            try:
                archive.parent.rmdir()
            except OSError:
                pass
        raise DataError(_missing_archive(title, archive, f"download failed: {e}")) from e


def _read_tar_pickles(title: str, archive: Path, prefix: str, members: list[str]) -> dict:
    """Unpickle `prefix/member` for each wanted member, in one pass over the tar.gz."""
    wanted = {f"{prefix}/{m}": m for m in members}
    out = {}
    try:
        with tarfile.open(archive, "r:gz") as tf:
            for info in tf:
                if info.name in wanted and info.isfile():
                    # pickle is safe to load here: the archive's md5 was checked first
                    out[wanted[info.name]] = pickle.load(tf.extractfile(info), encoding="latin1")
    except (OSError, EOFError, tarfile.TarError, pickle.UnpicklingError) as e:
        raise DataError(
            f"{title} archive {archive} cannot be read ({e}); delete it and download again"
        ) from e
    _require_members(title, archive, members, out)
    return out


def _read_folder_pickles(title: str, folder: Path, members: list[str]) -> dict:
    """Unpickle each member present in an extracted CIFAR folder."""
    out = {}
    for m in members:
        if (folder / m).is_file():
            try:
                with open(folder / m, "rb") as f:
                    out[m] = pickle.load(f, encoding="latin1")
            except (OSError, EOFError, pickle.UnpicklingError) as e:
                raise DataError(
                    f"{title} file {folder / m} cannot be read ({e}); delete {folder} and use "
                    "the official archive"
                ) from e
    _require_members(title, folder, members, out)
    return out


def _require_members(title: str, where: Path, members: list[str], found: dict) -> None:
    # the meta file (last member) only names the classes, so it may be absent
    missing = [m for m in members[:-1] if m not in found]
    if missing:
        raise DataError(
            f"{title} data in {where} lacks {', '.join(missing)}: it is not the official "
            "archive; delete it and download again"
        )


def _decode_batches(title: str, batches: list, label_key: str) -> tuple[torch.Tensor, ...]:
    """Concatenate CIFAR pickles: data uint8 [N, 3072] (channel planes of 32x32, row-major)
    -> images uint8 [N, 3, 32, 32]; labels -> int64 [N]."""
    xs, ys = [], []
    for b in batches:
        try:
            x = np.asarray(b["data"])
            y = np.asarray(b[label_key], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(
                f"{title} batch lacks 'data' or {label_key!r} ({e}): not the official archive;"
                " delete it and download again"
            ) from e
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise DataError(
                f"{title} batch data is {x.dtype} {x.shape}, expected uint8 [N, 3072]: not the "
                "official archive; delete it and download again"
            )
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


# --- npz ------------------------------------------------------------------------------------


def _load_npz(path: Path) -> Dataset:
    """Arrays x_train, y_train, x_test, y_test as in Keras' mnist.npz.

    Images are [N, H, W] (grayscale) or [N, H, W, C] (C <= 4; channels-first [N, C, H, W] is
    accepted when unambiguous), either uint8 0..255, integers within 0..255, or floats in
    [0, 1] (scaled by 255 and rounded). 1-D signals are [N, L] or [N, C, L] (C <= 4 < L),
    of any finite float or integer values, kept as float32; an optional `layout` entry
    ("signals" or "images") settles a [N, A, B] array the shape rule reads the other way.
    Labels are non-negative integers, [N] or [N, 1]; num_classes = largest label + 1.
    Default augmentation: "none".
    """
    if not path.is_file():
        raise DataError(f"npz file {path} not found: check the path in npz:PATH")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z]
            if missing:
                raise DataError(
                    f"npz file {path} lacks key(s) {', '.join(missing)}: save it with "
                    "np.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...)"
                )
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            layout = _npz_layout(path, z["layout"]) if "layout" in z else None
    except DataError:
        raise
    except Exception as e:  # not a zip, object arrays (pickles refused), truncated file
        raise DataError(f"npz file {path} cannot be read ({e}): save it with np.savez") from e
    for key in ("x_train", "x_test"):  # text or records: no number to scale
        if arrays[key].dtype.kind not in "biuf":
            raise DataError(
                f"npz file {path}: {key} is {arrays[key].dtype}, not numbers; store images "
                "as uint8 0..255 or floats in [0, 1]"
            )
    if _npz_is_signal(path, arrays["x_train"], arrays["x_test"], layout):
        x_train = _npz_signals(path, "x_train", arrays["x_train"])
        x_test = _npz_signals(path, "x_test", arrays["x_test"])
    else:
        x_train = _npz_images(path, "x_train", arrays["x_train"])
        x_test = _npz_images(path, "x_test", arrays["x_test"])
    y_train = _npz_labels(path, "y_train", arrays["y_train"])
    y_test = _npz_labels(path, "y_test", arrays["y_test"])
    _check_label_range(path, y_train, y_test)
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y) or len(x) == 0:
            raise DataError(
                f"npz file {path}: x_{split} has {len(x)} images but y_{split} has {len(y)} "
                "labels; store one label per image (and at least one image)"
            )
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    names = tuple(str(i) for i in range(num_classes))
    return _make_dataset(f"npz:{path}", x_train, y_train, x_test, y_test, names, "none")


def _check_label_range(path: Path, *ys: torch.Tensor) -> None:
    """Classes are 0..max label; a maximum far above the number of distinct labels (ids
    like 10^12, not class indices) would build that many outputs and class names."""
    y = torch.cat([t for t in ys if t.numel()])
    if not y.numel():
        return
    top, distinct = int(y.max()), int(torch.unique(y).numel())
    if top + 1 > max(256, 4 * distinct):
        raise DataError(
            f"npz file {path}: labels go up to {top} but only {distinct} distinct labels "
            "occur; number the classes 0..K-1 (e.g. np.unique(y, return_inverse=True)[1])"
        )


def _npz_images(path: Path, key: str, x: np.ndarray) -> torch.Tensor:
    """[N, H, W] or [N, H, W, C] images of an accepted dtype -> uint8 [N, C, H, W]."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[3] <= 4:
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] <= 4):  # channels-first already, else unknown
        raise DataError(
            f"npz file {path}: {key} has shape {x.shape}; store images as [N, H, W] or "
            "[N, H, W, C]"
        )
    if x.dtype == np.uint8:
        pass
    elif np.issubdtype(x.dtype, np.integer) and (x.size == 0 or (x.min() >= 0 and x.max() <= 255)):
        x = x.astype(np.uint8)
    elif np.issubdtype(x.dtype, np.floating) and (x.size == 0 or (x.min() >= 0 and x.max() <= 1)):
        x = np.round(x * 255.0).astype(np.uint8)
    else:
        lo, hi = (x.min(), x.max()) if x.size and x.dtype != bool else ("-", "-")
        raise DataError(
            f"npz file {path}: {key} is {x.dtype} with values {lo}..{hi}; store images as "
            "uint8 0..255 or floats in [0, 1]"
        )
    return torch.from_numpy(np.ascontiguousarray(x))


def _npz_layout(path: Path, value: np.ndarray) -> str:
    """The npz's optional `layout` entry: "signals" or "images"."""
    text = str(value.item()) if value.ndim == 0 and value.dtype.kind in "US" else None
    if text not in ("signals", "images"):
        raise DataError(
            f"npz file {path}: layout is {value!r}; store layout='signals' or "
            "layout='images', or leave it out"
        )
    return text


def _npz_is_signal(path: Path, x_train: np.ndarray, x_test: np.ndarray, layout) -> bool:
    """Whether x_train/x_test hold 1-D signals ([N, L], or [N, C, L] with C <= 4 < L; a
    grayscale image is never 4 pixels high) rather than images; `layout` overrides."""

    def looks_1d(x: np.ndarray) -> bool:
        return x.ndim == 2 or (x.ndim == 3 and x.shape[1] <= 4 < x.shape[2])

    if layout is not None:
        signal = layout == "signals"
    else:
        signal = looks_1d(x_train)
    if signal and x_train.ndim != x_test.ndim:
        raise DataError(
            f"npz file {path}: x_train has shape {x_train.shape} but x_test has shape "
            f"{x_test.shape}; store both as [N, L] or both as [N, C, L]"
        )
    if layout is None and looks_1d(x_test) != signal:
        raise DataError(
            f"npz file {path}: x_train has shape {x_train.shape} but x_test has shape "
            f"{x_test.shape}: one reads as 1-D signals, the other as images; store both alike"
        )
    return signal


def _npz_signals(path: Path, key: str, x: np.ndarray) -> torch.Tensor:
    """[N, L] or [N, C, L] finite float or integer signals -> float32 [N, C, L]."""
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[2] < 1 or x.shape[1] < 1:
        raise DataError(
            f"npz file {path}: {key} has shape {x.shape}; store 1-D signals as [N, L] or [N, C, L]"
        )
    if x.dtype == bool or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise DataError(
            f"npz file {path}: {key} is {x.dtype}; store 1-D signals as floats or integers"
        )
    if np.issubdtype(x.dtype, np.floating) and x.size and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DataError(
            f"npz file {path}: {key} has {bad} NaN or infinite value(s); clean the signals "
            "before saving"
        )
    with np.errstate(over="ignore"):  # an overflow is reported below, as one line
        out = x.astype(np.float32)
    if x.size and not np.isfinite(out).all():  # e.g. float64 1e300 overflows float32
        raise DataError(
            f"npz file {path}: {key} has values beyond float32's range "
            f"({float(np.abs(x).max()):.3g}); rescale the signals"
        )
    return torch.from_numpy(np.ascontiguousarray(out))


def _npz_labels(path: Path, key: str, y: np.ndarray) -> torch.Tensor:
    """Non-negative integer labels [N] or [N, 1] -> int64 [N]."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"npz file {path}: {key} is {y.dtype} {y.shape}; store labels as integers [N]"
        )
    if y.size and y.min() < 0:
        raise DataError(
            f"npz file {path}: {key} has negative label {int(y.min())}; labels must be 0..K-1"
        )
    return torch.from_numpy(y.astype(np.int64))


# --- image folder ---------------------------------------------------------------------------


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
        _write_cache(cache_dir / f"{size}-{digest}.pt", x_tr, y_tr, x_te, y_te)
    size, channels = x_tr.shape[-1], x_tr.shape[1]
    if size >= 64:
        augment = "resized_crop_flip"
    elif size <= 32 and channels == 3:
        augment = "crop_flip"
    else:
        augment = "none"
    return _make_dataset(name, x_tr, y_tr, x_te, y_te, tuple(classes), augment)


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


def _write_cache(path: Path, x_tr, y_tr, x_te, y_te) -> None:
    """Save the decoded tensors atomically (temp file + os.replace); best effort, since a
    read-only data folder should still load, only more slowly."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save({"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, f)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)

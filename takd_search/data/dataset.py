"""The in-memory data set and what every loader shares: checks, statistics, the split.

`Dataset` is what every loader returns: uint8 image tensors [N, C, H, W] (or float32 1-D
signals [N, C, L]) with int64 labels, the per-channel mean/std of the training inputs (in
[0, 1] units for images, the signal's own units for signals) and a content fingerprint.
`make_dataset` is the one constructor the loaders call, so every data set gets the same
checks (dtype, shape, label range) and the same statistics; `split_train_val` is the seeded
validation split every trial selects on. Nothing here augments or batches: that happens on
the training device (`engine/augment.py`). The loaders themselves live one per file beside this
one and are found through `registry.py`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from takd_search.atomic import replacing
from takd_search.errors import UserError


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


def make_dataset(
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


# --- the tensor cache of generated (MNIST-1D) and decoded (image folder) data sets ----------


def write_cache(path: Path, x_tr, y_tr, x_te, y_te) -> None:
    """Save the decoded tensors whole or not at all (atomic.replacing); best effort, since
    a read-only data folder should still load, only more slowly."""
    try:
        with replacing(path) as tmp:
            torch.save({"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, tmp)
    except OSError:
        pass

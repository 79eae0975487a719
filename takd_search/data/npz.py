"""npz:PATH: Keras-style arrays (x_train, y_train, x_test, y_test), images or 1-D signals.

The way to bring one's own data as arrays: `np.savez(PATH, x_train=..., ...)`, as Keras'
mnist.npz is stored. The shape and dtype rules that tell images from signals, and every
one-line error for an array that fits neither, live here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from takd_search.data.dataset import DataError, Dataset, make_dataset
from takd_search.data.registry import LoadRequest, register_dataset

STATUS = {
    "name": "npz:PATH",
    "description": (
        "x_train, y_train, x_test, y_test arrays (as Keras' mnist.npz): images, or "
        "1-D signals [N, L] / [N, C, L]"
    ),
    "available": "-",
    "where": "PATH",
}


@register_dataset(
    "npz",
    status=STATUS,
    recipe={"epochs": 20, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4},
    arg="PATH",
    bare=False,
)
def load(request: LoadRequest) -> Dataset:
    """The registered loader of "npz:PATH" (PATH relative to the working folder, or ~)."""
    return _load_npz(Path(request.arg).expanduser().resolve())


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
    return make_dataset(f"npz:{path}", x_train, y_train, x_test, y_test, names, "none")


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

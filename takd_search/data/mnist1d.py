"""MNIST-1D (Greydanus 2020): 40-point 1-D signals, generated offline from a seed.

"mnist1d" is 12,500 signals, "mnist1d:N" N in all, "mnist1d:N:SEED" another seed. The
mnist1d package's own generator makes them (never its downloader), so the same name gives
the same bytes on any machine without a network; the arrays are cached in the data folder.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import torch

from takd_search.data.dataset import (
    DataError,
    Dataset,
    make_dataset,
    resolve_data_dir,
    write_cache,
)
from takd_search.data.registry import LoadRequest, register_dataset

# MNIST-1D: default total samples (the package splits 80/20 into train/test). 12,500 gives
# 10,000 train / 2,500 test, so a 0.2 validation fraction leaves 8,000 to train on and
# 2,000 to select on: enough for 1-point effects to stand out of the noise.
MNIST1D_SAMPLES = 12_500
MNIST1D_SEED = 42  # the package's own default seed
MNIST1D_MAX_SAMPLES = 1_000_000
_MNIST1D_VERSION = "1"  # bump when the generated arrays change, so stale caches are ignored


def _status(root: Path) -> dict:
    """The `takd-search datasets` row: available when the mnist1d package is installed."""
    return {
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
    }


# The recipe converges in seconds on a CPU, like digits'.
@register_dataset(
    "mnist1d",
    status=_status,
    recipe={"epochs": 15, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4},
    arg="N",
)
def load(request: LoadRequest) -> Dataset:
    """The registered loader: "mnist1d", "mnist1d:N" or "mnist1d:N:SEED"."""
    args = _mnist1d_args(request.name, request.arg)
    return _load_mnist1d(*args, resolve_data_dir(request.data_dir))


def _mnist1d_installed() -> bool:
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
        write_cache(cache, *arrays)
    return make_dataset(name, *arrays, tuple(str(i) for i in range(10)), "none")


def _generate_mnist1d(num_samples: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test): float32 [N, 1, 40] signals and int64 labels."""
    try:  # an optional package: imported only when MNIST-1D is generated
        # optional package: only when this data set is generated
        from mnist1d.data import get_dataset_args
        from mnist1d.data import make_dataset as make_mnist1d
    except Exception as e:  # not installed, or broken
        raise DataError(f"mnist1d needs the mnist1d package ({e}): pip install mnist1d") from e
    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_mnist1d(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)

    def signals(a) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)[:, None, :])

    def labels(a) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64))

    return signals(d["x"]), labels(d["y"]), signals(d["x_test"]), labels(d["y_test"])

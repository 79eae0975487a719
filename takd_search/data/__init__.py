"""Data sets: a registry of loaders, one file per data set, and the seeded validation split.

Every loader returns a `Dataset` of uint8 image tensors [N, C, H, W] (or float32 1-D
signals [N, C, L]) with int64 labels, the per-channel mean/std of the training inputs (in
[0, 1] units for images, the signal's own units for signals) and a content fingerprint.
Nothing here augments or batches: that happens on the training device (`engine/augment.py`).

Names: "digits" (scikit-learn's bundled 8x8 digits, works offline), "mnist1d" and
"mnist1d:N" (Greydanus' MNIST-1D, 40-point signals generated offline from a seed),
"cifar10", "cifar100" (the official python archives, read straight from the tar.gz),
"npz:PATH" (Keras-style x_train/y_train/x_test/y_test arrays, images or 1-D signals) and
"folder:PATH" (PATH/{train,test}/<class>/<image>).
Files are looked for in `resolve_data_dir()`: --data-dir, else $TAKD_DATA, else ./data.

Layout: `dataset.py` (Dataset, its checks and statistics, the split), `registry.py`
(`register_dataset`, `load_dataset`, `dataset_status`), and one module per data set, each
registering itself when imported below. A new data set is one more such module and its
import here. Names are re-exported for `from takd_search.data import load_dataset`; a test
that patches a module-level value (CIFAR_URL, a private helper) patches the module that
reads it (`takd_search.data.cifar`, `takd_search.data.folder`), not this package.
"""

from __future__ import annotations

# Importing each data-set module registers it; this order is `takd-search datasets`' order.
# isort: off
from takd_search.data import digits, mnist1d, cifar, npz, folder  # noqa: F401

# isort: on
from takd_search.data.cifar import CIFAR10_CLASSES, CIFAR_MD5, CIFAR_URL
from takd_search.data.dataset import (
    DataError,
    Dataset,
    make_dataset,
    resolve_data_dir,
    split_train_val,
)
from takd_search.data.folder import GRAY_MODES, IMAGE_EXTENSIONS
from takd_search.data.mnist1d import MNIST1D_MAX_SAMPLES, MNIST1D_SAMPLES, MNIST1D_SEED
from takd_search.data.registry import (
    DatasetEntry,
    LoadRequest,
    dataset_choices,
    dataset_recipes,
    dataset_status,
    entries,
    is_dataset_name,
    list_datasets,
    load_dataset,
    register_dataset,
)

BUILTIN = tuple(e.name for e in entries() if e.bare)  # plus mnist1d:N, npz:PATH, folder:PATH

__all__ = [
    "BUILTIN",
    "CIFAR10_CLASSES",
    "CIFAR_MD5",
    "CIFAR_URL",
    "GRAY_MODES",
    "IMAGE_EXTENSIONS",
    "MNIST1D_MAX_SAMPLES",
    "MNIST1D_SAMPLES",
    "MNIST1D_SEED",
    "DataError",
    "Dataset",
    "DatasetEntry",
    "LoadRequest",
    "dataset_choices",
    "dataset_recipes",
    "dataset_status",
    "entries",
    "is_dataset_name",
    "list_datasets",
    "load_dataset",
    "make_dataset",
    "register_dataset",
    "resolve_data_dir",
    "split_train_val",
]

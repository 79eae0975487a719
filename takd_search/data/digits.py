"""scikit-learn's bundled 8x8 handwritten digits: the data set that works offline.

Small enough to train on a CPU in seconds, so it is the default of the shipped spaces and
of the tests; scikit-learn has no official test split, so a fixed stratified one is made.
"""

from __future__ import annotations

import numpy as np
import torch

from takd_search.data.dataset import Dataset, make_dataset
from takd_search.data.registry import LoadRequest, register_dataset

STATUS = {
    "name": "digits",
    "description": "8x8 grayscale handwritten digits, 10 classes, 1437 train / 360 test",
    "available": True,
    "where": "scikit-learn (bundled)",
}


# The recipe converges in seconds on a CPU: plain10 from scratch reaches >= 95% test accuracy.
@register_dataset(
    "digits",
    status=STATUS,
    recipe={"epochs": 30, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4},
)
def load(request: LoadRequest) -> Dataset:
    """The registered loader: "digits" takes no argument and no data folder."""
    return _load_digits()


def _load_digits() -> Dataset:
    """scikit-learn's 1797 8x8 digits (pixels 0..16 -> round(v*255/16)); a fixed stratified
    20% test split (random_state=0) stands in for the missing official one: 1437 / 360."""
    # scikit-learn takes 0.8 s to import: only when digits is loaded, not in every worker
    from sklearn.datasets import load_digits

    # scikit-learn (0.8 s to import): only when digits are loaded
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # [N, 1, 8, 8]
    y = bunch.target.astype(np.int64)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    tr, te = np.sort(tr), np.sort(te)
    return make_dataset(
        "digits",
        torch.from_numpy(x[tr]),
        torch.from_numpy(y[tr]),
        torch.from_numpy(x[te]),
        torch.from_numpy(y[te]),
        tuple(str(i) for i in range(10)),
        "none",
    )

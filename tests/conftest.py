"""Shared fixtures: real data (scikit-learn's bundled digits) and a store in tmp_path."""

from __future__ import annotations

import os

import pytest
import torch

# Ray/torch in tests: keep each process to the cores CI has and keep Ray quiet.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# One thread: on a busy 2-core machine a second thread makes small convolutions 10-30x
# slower (threads wait on each other); Ray trials run in their own processes anyway.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """`gpu` tests skip, saying why, when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is present on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits():
    from takd_search.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def digits_data(digits):
    from takd_search.augment import DeviceData

    return DeviceData(digits, "cpu", val_fraction=0.1, split_seed=0)


@pytest.fixture
def store(tmp_path):
    from takd_search.store import Store

    return Store(tmp_path / "store")

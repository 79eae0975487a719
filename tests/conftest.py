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


# Whole searches through Ray (each a few minutes on 2 shared cores): `slow`, so that
# `pytest -m "not slow"` is the quick subset (README); CI runs everything. Listed here
# rather than in each file: the files are edited by several people at once.
SLOW = {
    "test_search.py": {
        "test_digits_search_with_4_trials_writes_the_run_folder",
    },
    "test_mnist1d.py": {"test_run_mnist1d_plain_end_to_end"},
    "test_faults.py": {
        "test_sigkill_then_same_command_completes_without_retraining",
        "test_sigint_and_sigterm_stop_cleanly_and_resume",
        "test_dead_worker_is_retried_from_its_checkpoint",
        "test_a_diverging_trial_fails_with_its_reason_and_the_search_goes_on",
        "test_two_searches_sharing_a_store_train_each_hop_once",
    },
}


def pytest_collection_modifyitems(config, items):
    """`slow` on the whole-search tests above; `gpu` tests skip, saying why, when no CUDA
    device is present."""
    for item in items:
        if item.originalname in SLOW.get(item.path.name, ()):
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is present on this machine")
    for item in items:
        # the marker itself: item.keywords also holds the names of the folders above the
        # test, so a checkout in a folder named gpu would skip every test
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits():
    from takd_search.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def digits_data(digits):
    from takd_search.engine.augment import DeviceData

    return DeviceData(digits, "cpu", val_fraction=0.1, split_seed=0)


@pytest.fixture
def store(tmp_path):
    from takd_search.engine.store import Store

    return Store(tmp_path / "store")

"""Shared fixtures: real data (scikit-learn's bundled digits) and a store in tmp_path."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch

from takd_search.progress import print_to_stderr

# Ray/torch in tests: keep each process to the cores CI has and keep Ray quiet.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# One thread: on a busy 2-core machine a second thread makes small convolutions 10-30x
# slower (threads wait on each other); Ray trials run in their own processes anyway.
torch.set_num_threads(1)


# Two tiers, chosen by the fixtures a test uses (never a hand-kept list):
# - the default tier (`pytest -q`, the README's command): the orchestration runs through
#   the in-process runner (no Ray), so whole searches take seconds; one pytest-xdist
#   worker per core;
# - the `ray` tier (`pytest -q -m ray -n 0`, also run by CI): every test that asks for a
#   fixture in RAY_FIXTURES, i.e. that starts Ray (a local Ray through the `ray_runner`
#   fixture, a real head on 127.0.0.1 through `head`/`client_env`), one at a time;
# - `slow` tests (`pytest -q -m "slow and not ray"`): whole searches, long trainings.
os.environ.setdefault("TAKD_SEARCH_RUNNER", "inprocess")
# progress lines on stderr, as the CLI prints them (tests read them with capsys)
print_to_stderr()
RAY_FIXTURES = {"ray_runner", "head", "client_env", "ray_head"}


@pytest.fixture
def ray_runner(monkeypatch):
    """Run searches in this test (and the CLI processes it starts) through Ray Tune."""
    monkeypatch.setenv("TAKD_SEARCH_RUNNER", "ray")
    return "ray"


def pytest_collection_modifyitems(config, items):
    """`ray` on every test that uses a Ray fixture; `gpu` tests skip, saying why, when no
    CUDA device is present."""
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)
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


@pytest.fixture
def cli(capsys, monkeypatch):
    """The command line run in this process, as `takd-search ARGS` would run it in a
    shell: cli(*args, cwd=None) -> CompletedProcess with the exit code (argparse's exit
    too), stdout and stderr. A subprocess per call costs 3-8 s of imports on 2 cores; the
    tests that need a real process (signals, rlimits, import checks, one end-to-end run
    per kind of error) start one themselves."""
    from takd_search.cli import main

    monkeypatch.delenv("TAKD_STORE", raising=False)  # the tests' own stores only

    def call(*args, cwd=None) -> subprocess.CompletedProcess:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's errors
            code = e.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return call

"""takd_search.data.dataset: the data folder and the seeded validation split."""

from __future__ import annotations

import pickle

import pytest
import torch

from takd_search.data import DataError, resolve_data_dir, split_train_val


def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TAKD_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("TAKD_DATA")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir() == tmp_path / "data"


def test_split_train_val():
    labels = torch.arange(1000) % 7  # classes of 143 or 142 images
    tr, va = split_train_val(labels, 0.1, seed=0)
    assert tr.dtype == va.dtype == torch.int64
    assert len(va) == 100 and len(tr) == 900
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(1000))
    for c in range(7):
        n_c = int((labels == c).sum())
        assert abs(int((labels[va] == c).sum()) - 0.1 * n_c) <= 1
    tr2, va2 = split_train_val(labels, 0.1, seed=0)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    _, va3 = split_train_val(labels, 0.1, seed=1)
    assert not torch.equal(va, va3)
    assert len(split_train_val(labels, 0.5)[1]) == 500
    for bad in (0, 0.0, -0.1, 0.51, 1.0):
        with pytest.raises(DataError, match=r"fraction must be in \(0, 0.5\]"):
            split_train_val(labels, bad)
    with pytest.raises(DataError, match="stratified"):
        split_train_val(torch.tensor([0, 0, 0, 1]), 0.5)  # class 1 has a single image


def test_split_is_cached_on_the_dataset_and_travels_with_it(digits):
    """The driver splits once; a pickled copy (what a Ray worker gets) carries the split
    and gives the same indices without splitting again."""
    from takd_search.data import split_train_val

    tr, va = digits.split(0.1, 0)
    assert digits.split(0.1, 0)[0] is tr  # cached: the same tensor object
    want_tr, want_va = split_train_val(digits.y_train, 0.1, 0)
    assert torch.equal(tr, want_tr) and torch.equal(va, want_va)
    copy = pickle.loads(pickle.dumps(digits))
    assert set(copy._splits) == {(0.1, 0)}
    assert torch.equal(copy.split(0.1, 0)[1], va)
    assert not torch.equal(digits.split(0.2, 0)[1], va)

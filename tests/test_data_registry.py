"""takd_search.data.registry: names, `takd-search datasets` rows, recipes, a new data set."""

from __future__ import annotations

import pytest
import torch
from test_data_cifar import CIFAR10, make_cifar  # the tiny official-format archive

from takd_search.data import (
    DataError,
    dataset_choices,
    dataset_recipes,
    dataset_status,
    entries,
    is_dataset_name,
    list_datasets,
    load_dataset,
    make_dataset,
    register_dataset,
    registry,
)


def test_unknown_name_and_image_size_for_fixed_sets():
    with pytest.raises(DataError, match=r"unknown data set 'foo': use digits, mnist1d, cifar10"):
        load_dataset("foo")
    with pytest.raises(DataError, match="image_size=32 applies only to folder"):
        load_dataset("digits", image_size=32)
    assert load_dataset("digits", image_size=8).input_shape == (1, 8, 8)


def test_dataset_status(tmp_path):
    make_cifar(tmp_path)
    rows = {r["name"]: r for r in dataset_status(tmp_path)}
    assert list(rows) == ["digits", "mnist1d", "cifar10", "cifar100", "npz:PATH", "folder:PATH"]
    assert rows["digits"]["available"] is True
    assert rows["cifar10"] == {**rows["cifar10"], "available": True}
    assert rows["cifar10"]["where"] == str(tmp_path / CIFAR10)
    assert rows["cifar100"]["available"] is False
    assert rows["cifar100"]["where"].startswith("download on first use")
    assert rows["npz:PATH"]["available"] == "-" and rows["folder:PATH"]["available"] == "-"
    assert all(r["description"] for r in rows.values())


@pytest.fixture
def registry_copy(monkeypatch):
    """The registry as it is, restored after the test: a data set registered in a test is
    gone again for the next one."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry


def test_a_new_data_set_is_one_registration(registry_copy, tmp_path):
    """A data set registered from outside the package, with nothing else edited: a tiny set
    of 4x4 stripes (vertical = class 0, horizontal = class 1) loads by name in any spelling,
    gets the checks and statistics of every data set, lists in `takd-search datasets`,
    brings its recipe and passes the space-file name check."""
    requests = []

    def status(root):
        where = str(root / "stripes")
        return {"name": "stripes", "description": "4x4 stripes", "available": True, "where": where}

    @register_dataset("stripes", status=status, recipe={"epochs": 3, "batch_size": 8, "lr": 0.1})
    def load(request):
        requests.append(request)
        x = torch.zeros(12, 1, 4, 4, dtype=torch.uint8)
        x[0::2, 0, :, 1] = 255  # even images: column 1 lit
        x[1::2, 0, 2, :] = 255  # odd images: row 2 lit
        y = torch.arange(12) % 2
        names = ("vertical", "horizontal")
        return make_dataset("stripes", x[:8], y[:8], x[8:], y[8:], names, "none")

    ds = load_dataset("Stripes", tmp_path)
    assert (requests[0].name, requests[0].arg, requests[0].data_dir) == ("Stripes", "", tmp_path)
    assert ds.name == "stripes" and ds.input_shape == (1, 4, 4) and ds.num_classes == 2
    assert ds.class_names == ("vertical", "horizontal")
    assert ds.y_train.tolist() == [0, 1] * 4 and ds.y_test.tolist() == [0, 1] * 2
    assert int(ds.x_train[0, 0, 3, 1]) == 255 and int(ds.x_train[1, 0, 2, 3]) == 255
    assert int(ds.x_train[0].sum()) == int(ds.x_train[1].sum()) == 4 * 255
    # 4 of 16 pixels lit in every image: mean 0.25, population std sqrt(0.25 * 0.75)
    assert ds.mean == pytest.approx((0.25,)) and ds.std == pytest.approx((0.75**0.5 / 2,))
    assert len(ds.fingerprint) == 64 and ds.fingerprint != load_dataset("digits").fingerprint
    assert torch.equal(load_dataset("STRIPES").x_test, ds.x_test)

    rows = dataset_status(tmp_path)
    assert [r["name"] for r in rows][-1] == "stripes" and len(rows) == 7
    assert rows[-1] == {
        "name": "stripes",
        "description": "4x4 stripes",
        "available": True,
        "where": str(tmp_path / "stripes"),
    }
    assert dataset_recipes()["stripes"] == {"epochs": 3, "batch_size": 8, "lr": 0.1}
    assert is_dataset_name("stripes") and not is_dataset_name("stripes:x")
    assert "stripes" in list_datasets() and "stripes" in dataset_choices()
    with pytest.raises(DataError, match=r"unknown data set 'stripes:x': use digits, .*stripes"):
        load_dataset("stripes:x")
    assert len(requests) == 2  # the refused spelling never reached the loader


def test_the_registry_is_the_only_list(registry_copy):
    """Every registered name loads, lists, has a recipe and passes the space-file check;
    a data set dropped from the registry is unknown everywhere at once."""
    assert list_datasets() == ["digits", "mnist1d", "cifar10", "cifar100", "npz", "folder"]
    assert list(dataset_recipes()) == list_datasets()
    assert [e.forms() for e in entries()][1:2] == [["mnist1d", "mnist1d:N"]]
    assert all(is_dataset_name(f.replace("N", "500")) for e in entries() for f in e.forms())
    assert not is_dataset_name("Digits") and not is_dataset_name("npz")  # space files: exact

    del registry._REGISTRY["digits"]
    assert not is_dataset_name("digits") and "digits" not in dataset_recipes()
    assert "digits" not in [r["name"] for r in dataset_status()]
    with pytest.raises(DataError, match=r"unknown data set 'digits': use mnist1d, cifar10"):
        load_dataset("digits")
    with pytest.raises(ValueError, match="lower case"):
        register_dataset("My-Set", status={}, recipe={})

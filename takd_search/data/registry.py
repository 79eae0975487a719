"""The data-set registry: one entry per data set, registered by the file that loads it.

As `models.register_model` does for model families, each data-set module decorates its
loader with `register_dataset`, giving the data set's name (or the prefix of a `name:ARG`
spec such as `npz:PATH`), its row in `takd-search datasets` and its default training recipe.
`load_dataset`, `dataset_status`, `dataset_recipes` (what `run_path.RECIPES` is built
from) and `is_dataset_name` (the check of a space file's `data.dataset`) all read this one
table, so a new data set is one file plus one registration (and its import in
`data/__init__.py`); before, data sets were listed by hand in four places.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from takd_search.data.dataset import DataError, Dataset, resolve_data_dir


@dataclass(frozen=True)
class LoadRequest:
    """What `load_dataset` hands a loader.

    name: the spec as given (stripped), for messages; arg: the text after its first ":"
    ("" when none); data_dir: the --data-dir value as given (None: $TAKD_DATA, else ./data:
    `resolve_data_dir(request.data_dir)`); download: a missing file may be fetched;
    image_size: the side images are to be resized to (a loader that cannot resize ignores
    it, and `load_dataset` refuses a data set of another size).
    """

    name: str
    arg: str
    data_dir: str | os.PathLike | None
    download: bool
    image_size: int | None


Loader = Callable[[LoadRequest], Dataset]
StatusRow = Mapping[str, object]  # {"name", "description", "available", "where"}


@dataclass(frozen=True)
class DatasetEntry:
    """One registered data set (see `register_dataset` for the fields)."""

    name: str
    loader: Loader
    status: StatusRow | Callable[[Path], StatusRow]
    recipe: Mapping[str, object]
    arg: str | None
    bare: bool

    def forms(self) -> list[str]:
        """How a user writes it: ["digits"], ["mnist1d", "mnist1d:N"], ["npz:PATH"]."""
        return ([self.name] if self.bare else []) + (
            [f"{self.name}:{self.arg}"] if self.arg is not None else []
        )


_REGISTRY: dict[str, DatasetEntry] = {}  # canonical name -> entry, in registration order


def _key(kind: str) -> str:
    """The canonical spelling of a name: "CIFAR-10" and "cifar_10" are "cifar10"."""
    return kind.lower().replace("-", "").replace("_", "")


def register_dataset(
    name: str,
    *,
    status: StatusRow | Callable[[Path], StatusRow],
    recipe: Mapping[str, object],
    arg: str | None = None,
    bare: bool = True,
) -> Callable[[Loader], Loader]:
    """Register `loader(request: LoadRequest) -> Dataset` as data set `name` (a decorator).

    name: canonical (lower case, no "-" or "_"); any spelling that `_key` maps onto it loads.
    status: the data set's row in `takd-search datasets` ({"name", "description",
    "available", "where"}): a dict, or a function of the data folder returning one (to say
    whether its files are there). recipe: its default training settings as TrainConfig
    field -> value (`run_path.RECIPES` builds the TrainConfig; data imports no training
    code). arg: the placeholder of the form `name:ARG` ("N", "PATH"), None when the name takes
    no argument. bare: whether the name alone is a data set (mnist1d beside mnist1d:N) or
    only `name:ARG` is (npz:PATH). Registering a name again replaces it, as models does.
    """
    if not name or _key(name) != name or ":" in name:
        raise ValueError(f"data set name {name!r}: use lower case, without '-', '_' or ':'")
    if not bare and arg is None:
        raise ValueError(f"data set {name!r}: a name that is not bare needs its arg")

    def decorate(loader: Loader) -> Loader:
        _REGISTRY[name] = DatasetEntry(name, loader, status, dict(recipe), arg, bare)
        return loader

    return decorate


def entries() -> tuple[DatasetEntry, ...]:
    """Every registered data set, in registration order."""
    return tuple(_REGISTRY.values())


def list_datasets() -> list[str]:
    """The registered names, in registration order (`takd-search datasets` order)."""
    return list(_REGISTRY)


def dataset_choices() -> str:
    """Every way to name a data set, one phrase: what an unknown name's error ends with."""
    forms = [e.name for e in _REGISTRY.values() if e.bare]
    forms += [f"{e.name}:{e.arg}" for e in _REGISTRY.values() if e.arg is not None]
    return forms[0] if len(forms) == 1 else f"{', '.join(forms[:-1])} or {forms[-1]}"


def is_dataset_name(name: str) -> bool:
    """Whether `name` is a data set spelled as a space file must spell it: a bare name
    exactly ("digits", "mnist1d"), or `name:` and an argument for one that takes one
    ("mnist1d:N", "npz:PATH"). `load_dataset` also takes "Digits" or "cifar-10"; a space
    file does not, since its spelling also picks the recipe (`run_path.recipe`)."""
    return any(
        (name == e.name and e.bare) or (e.arg is not None and name.startswith(f"{e.name}:"))
        for e in _REGISTRY.values()
    )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    image_size: int | None = None,
) -> Dataset:
    """Load data set `name` (see the package docstring) into memory.

    download: fetch a missing CIFAR archive into the data folder. image_size: side in pixels
    that folder images are resized to (default 32 if every image is <= 32 px, else 64); the
    other data sets have a fixed size, and asking for a different one is an error.
    """
    name = str(name).strip()
    kind, colon, arg = name.partition(":")
    entry = _REGISTRY.get(_key(kind))
    if entry is None or (colon and entry.arg is None) or (not arg and not entry.bare):
        raise DataError(f"unknown data set {name!r}: use {dataset_choices()}")
    ds = entry.loader(LoadRequest(name, arg, data_dir, download, image_size))
    if image_size is not None and tuple(ds.input_shape[1:]) != (image_size,) * 2:
        size = "x".join(map(str, ds.input_shape[1:]))
        raise DataError(
            f"image_size={image_size} applies only to folder:PATH data sets: {ds.name} is "
            f"{size}; leave image_size unset"
        )
    return ds


def dataset_status(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One row per registered data set for `takd-search datasets`: name, description,
    available (True/False, or "-" for the path patterns) and where the data comes from."""
    root = resolve_data_dir(data_dir)
    return [dict(e.status(root) if callable(e.status) else e.status) for e in entries()]


def dataset_recipes() -> dict[str, dict]:
    """Registered name -> its default training settings (TrainConfig field -> value)."""
    return {e.name: dict(e.recipe) for e in _REGISTRY.values()}

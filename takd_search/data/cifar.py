"""CIFAR-10 and CIFAR-100 from the official python archives, md5-checked.

The archive (downloaded into the data folder on first use, unless disabled) is read
straight from the tar.gz, or an already-extracted folder is read; the batches are plain
pickles, so torchvision is not needed (its CUDA wheels fail to import beside a CPU torch).

An archive of one's own in the same format (a re-packed copy, or the synthetic full-size
archive of bench/rehearse_cifar100.py) is accepted when `TAKD_CIFAR_MD5` names its md5: the
check still catches a corrupt file, and the data's content fingerprint (part of every
store key) keeps its hops apart from the official data's.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from takd_search.atomic import replacing
from takd_search.data.dataset import DataError, Dataset, make_dataset, resolve_data_dir
from takd_search.data.registry import LoadRequest, register_dataset

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"  # + archive file name
# Official archive checksums; module-level so tests can point them at a tiny archive.
CIFAR_MD5 = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_md5_cache: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> md5 hex
# TAKD's optimiser settings (SGD momentum 0.9, batch 128, weight decay 1e-4, 150 epochs)
# with a peak lr of 0.1; how this differs from TAKD's published code: docs/engine.md.
RECIPE = {"epochs": 150, "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "nesterov": False}


def _status(key: str, description: str):
    """The `takd-search datasets` row of CIFAR `key`: available when the archive or its
    extracted folder is in the data folder."""

    def row(root: Path) -> dict:
        archive, folder = _cifar_paths(key, root)
        found = next((p for p in (archive, folder) if p.exists()), None)
        return {
            "name": key,
            "description": description,
            "available": found is not None,
            "where": str(found) if found else f"download on first use (into {root})",
        }

    return row


@register_dataset(
    "cifar10",
    status=_status("cifar10", "32x32 colour images, 10 classes, 50000 train / 10000 test"),
    recipe=RECIPE,
)
def load_cifar10(request: LoadRequest) -> Dataset:
    """The registered loader of "cifar10" (also "CIFAR-10")."""
    return _load_cifar("cifar10", resolve_data_dir(request.data_dir), request.download)


@register_dataset(
    "cifar100",
    status=_status("cifar100", "32x32 colour images, 100 classes, 50000 train / 10000 test"),
    recipe=RECIPE,
)
def load_cifar100(request: LoadRequest) -> Dataset:
    """The registered loader of "cifar100" (also "CIFAR-100")."""
    return _load_cifar("cifar100", resolve_data_dir(request.data_dir), request.download)


def _cifar_paths(key: str, root: Path) -> tuple[Path, Path]:
    """(archive, extracted folder) where CIFAR `key` is looked for."""
    if key == "cifar10":
        return root / "cifar-10-python.tar.gz", root / "cifar-10-batches-py"
    return root / "cifar-100-python.tar.gz", root / "cifar-100-python"


def _load_cifar(key: str, root: Path, download: bool) -> Dataset:
    """CIFAR-10/100 from the official archive in `root` (md5-checked, downloaded if missing
    and allowed) or from its already-extracted folder."""
    title = "CIFAR-10" if key == "cifar10" else "CIFAR-100"
    archive, folder = _cifar_paths(key, root)
    if key == "cifar10":
        train = [f"data_batch_{i}" for i in range(1, 6)]
        test, meta, label_key, names_key = ["test_batch"], "batches.meta", "labels", "label_names"
    else:
        train, test, meta = ["train"], ["test"], "meta"
        label_key, names_key = "fine_labels", "fine_label_names"
    if not archive.exists() and not folder.is_dir():
        if not download:
            raise DataError(_missing_archive(title, archive, "download disabled"))
        _download(title, archive)
    if archive.exists():
        _check_md5(title, archive)
        pickles = _read_tar_pickles(title, archive, folder.name, [*train, *test, meta])
    else:
        pickles = _read_folder_pickles(title, folder, [*train, *test, meta])
    x_tr, y_tr = _decode_batches(title, [pickles[m] for m in train], label_key)
    x_te, y_te = _decode_batches(title, [pickles[m] for m in test], label_key)
    n_classes = 10 if key == "cifar10" else 100
    names = tuple(str(s) for s in (pickles.get(meta) or {}).get(names_key, ()))
    if len(names) != n_classes:  # the meta file is optional; fall back to fixed names
        names = CIFAR10_CLASSES if key == "cifar10" else tuple(str(i) for i in range(100))
    return make_dataset(key, x_tr, y_tr, x_te, y_te, names, "crop_flip")


def _missing_archive(title: str, archive: Path, reason: str) -> str:
    return (
        f"{title} archive not found: put {archive.name} in {archive.parent} "
        f"(or pass --data-dir DIR / set TAKD_DATA); {reason}"
    )


def _md5(path: Path) -> str:
    """md5 hex of a file, computed once per process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _md5_cache:
        h = hashlib.md5()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _md5_cache[key] = h.hexdigest()
    return _md5_cache[key]


def _check_md5(title: str, archive: Path) -> None:
    own = os.environ.get("TAKD_CIFAR_MD5", "").strip().lower()
    expected, got = own or CIFAR_MD5[archive.name], _md5(archive)
    if got != expected:
        which = "the md5 in TAKD_CIFAR_MD5" if own else "the official archive"
        raise DataError(
            f"{title} archive {archive} has md5 {got}, expected {expected}: the file is "
            f"corrupt or not {which}; delete it and download again"
        )


def _download(title: str, archive: Path) -> None:
    """Fetch `archive` from CIFAR_URL into its folder: stream to a temp file there, check its
    md5, then rename into place, so a failed or cut-off download leaves nothing behind."""
    url = CIFAR_URL + archive.name
    made_dir = not archive.parent.exists()
    try:
        print(f"downloading {title} from {url} to {archive}", file=sys.stderr, flush=True)
        h = hashlib.md5()
        # a cut-off or mismatched download raises inside the block: nothing is renamed
        with (
            replacing(archive) as tmp,
            open(tmp, "wb") as out,
            urllib.request.urlopen(url, timeout=60) as resp,
        ):
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                h.update(chunk)
            if h.hexdigest() != CIFAR_MD5[archive.name]:
                raise OSError(f"got md5 {h.hexdigest()}, expected {CIFAR_MD5[archive.name]}")
    except Exception as e:
        if made_dir:  # do not leave behind an empty folder we created
            try:
                archive.parent.rmdir()
            except OSError:
                pass
        raise DataError(_missing_archive(title, archive, f"download failed: {e}")) from e


def _read_tar_pickles(title: str, archive: Path, prefix: str, members: list[str]) -> dict:
    """Unpickle `prefix/member` for each wanted member, in one pass over the tar.gz."""
    wanted = {f"{prefix}/{m}": m for m in members}
    out = {}
    try:
        with tarfile.open(archive, "r:gz") as tf:
            for info in tf:
                if info.name in wanted and info.isfile():
                    # pickle is safe to load here: the archive's md5 was checked first
                    out[wanted[info.name]] = pickle.load(tf.extractfile(info), encoding="latin1")
    except (OSError, EOFError, tarfile.TarError, pickle.UnpicklingError) as e:
        raise DataError(
            f"{title} archive {archive} cannot be read ({e}); delete it and download again"
        ) from e
    _require_members(title, archive, members, out)
    return out


def _read_folder_pickles(title: str, folder: Path, members: list[str]) -> dict:
    """Unpickle each member present in an extracted CIFAR folder."""
    out = {}
    for m in members:
        if (folder / m).is_file():
            try:
                with open(folder / m, "rb") as f:
                    out[m] = pickle.load(f, encoding="latin1")
            except (OSError, EOFError, pickle.UnpicklingError) as e:
                raise DataError(
                    f"{title} file {folder / m} cannot be read ({e}); delete {folder} and use "
                    "the official archive"
                ) from e
    _require_members(title, folder, members, out)
    return out


def _require_members(title: str, where: Path, members: list[str], found: dict) -> None:
    # the meta file (last member) only names the classes, so it may be absent
    missing = [m for m in members[:-1] if m not in found]
    if missing:
        raise DataError(
            f"{title} data in {where} lacks {', '.join(missing)}: it is not the official "
            "archive; delete it and download again"
        )


def _decode_batches(title: str, batches: list, label_key: str) -> tuple[torch.Tensor, ...]:
    """Concatenate CIFAR pickles: data uint8 [N, 3072] (channel planes of 32x32, row-major)
    -> images uint8 [N, 3, 32, 32]; labels -> int64 [N]."""
    xs, ys = [], []
    for b in batches:
        try:
            x = np.asarray(b["data"])
            y = np.asarray(b[label_key], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(
                f"{title} batch lacks 'data' or {label_key!r} ({e}): not the official archive;"
                " delete it and download again"
            ) from e
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise DataError(
                f"{title} batch data is {x.dtype} {x.shape}, expected uint8 [N, 3072]: not the "
                "official archive; delete it and download again"
            )
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

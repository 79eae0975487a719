"""The one way files are written: whole or not at all, then durable.

A reader (a resumed run, another trial, `takd-search report`, pandas) sees either the old
file or the whole new one, never a truncated one, even when the writer is killed or the
disk fills mid-write: the bytes go to a temporary file in the same folder (or in a
`tmp_dir` on the same file system, which `takd-search store gc` empties), are fsynced, and
the file is renamed into place. The folder is then fsynced too, so the rename survives a
power cut. New files get the mode open() would give (0o666 minus the umask), not
mkstemp's 0o600, so run folders stay readable to a team or a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _file_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened (some network file systems)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path; when the block ends without an error, that file becomes
    `path` (fsynced, renamed, folder fsynced). On an error it is removed and `path` is
    untouched. For writers that want a file name (torch.save, torch.jit.save, ONNX,
    downloads); `write_atomic` is the shorthand for bytes and text."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    tmp = Path(name)
    try:
        os.fchmod(fd, _file_mode())
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` (text is UTF-8 encoded) to `path`, whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    """`obj` as JSON; numpy and torch scalars become numbers, anything else unknown its
    str()."""
    return write_atomic(path, json.dumps(obj, indent=indent, default=_jsonable) + "\n")


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    return str(x)

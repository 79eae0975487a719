"""Where a job's results and hop store go (`--storage`): an absolute path every node
sees (NFS) is used directly; a pyarrow URI (`s3://`, `gs://`, `file://`) gets the run
folders copied in before and out after the run, and with them the hop-store entries they
name (`needed_hops`: the trained networks `export` reads), under `URI/store/hops/`
(see docs/cluster.md).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from takd_search.errors import UserError, first_line


def storage_kind(storage: str) -> str:
    """'path' (absolute, shared) or 'uri' (pyarrow filesystem URI); else a UserError."""
    if "://" in storage:
        scheme = storage.split("://", 1)[0].lower()
        try:
            import pyarrow.fs as pafs  # pyarrow: only for remote storage

            pafs.FileSystem.from_uri(storage)
        except ImportError:
            raise UserError(
                f"--storage {storage}: URIs need pyarrow (pip install pyarrow)"
            ) from None
        except Exception as e:
            raise UserError(
                f"--storage {storage}: pyarrow cannot open {scheme}:// here ({first_line(e)}): "
                "use an absolute path every node sees, or s3://, gs://, file://"
            ) from None
        return "uri"
    if not os.path.isabs(storage):
        raise UserError(
            f"--storage {storage} is not absolute: the job runs in a temporary copy on the "
            "cluster, so pass an absolute path every node sees (e.g. /mnt/shared/takd) or a URI"
        )
    return "path"


def download(uri: str, local: Path, skip_same: bool = False) -> int:
    """Copy the tree at `uri` into `local` (nothing if it does not exist); files copied.
    skip_same: leave a local file of the same size as it is (hop-store entries are never
    rewritten, so the same name and size is the same file)."""
    import pyarrow.fs as pafs  # pyarrow: only for remote storage

    fs, root = pafs.FileSystem.from_uri(uri)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return 0
    n = 0
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        dest = local / os.path.relpath(info.path, root)
        if skip_same and dest.is_file() and dest.stat().st_size == info.size:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        n += 1
    return n


def upload(local: Path, uri: str, only=None, skip_same: bool = False) -> int:
    """Copy the files under `local` to `uri` (symlinks such as ray_logs are skipped).
    only: the top-level names under `local` to copy (default all); skip_same: leave a
    file already there with the same size (see download)."""
    import pyarrow.fs as pafs  # pyarrow: only for remote storage

    fs, root = pafs.FileSystem.from_uri(uri)
    only = None if only is None else set(only)
    n = 0
    for folder, dirs, files in os.walk(local):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        if only is not None and Path(folder) == Path(local):
            dirs[:] = [d for d in dirs if d in only]
            files = [f for f in files if f in only]
        for f in files:
            p = os.path.join(folder, f)
            if os.path.islink(p):
                continue
            rel = os.path.relpath(p, local).replace(os.sep, "/")
            dest = f"{root.rstrip('/')}/{rel}"
            if skip_same:
                info = fs.get_file_info(dest)
                if info.type == pafs.FileType.File and info.size == os.path.getsize(p):
                    continue
            fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
            with open(p, "rb") as src, fs.open_output_stream(dest) as out:
                shutil.copyfileobj(src, out)
            n += 1
    return n


def needed_hops(results: Path, store: Path) -> list[str]:
    """The keys of the hop-store entries under `store/hops/` that a file of the run
    folders under `results` names (CSVs, JSON): the networks `export` and a resume read."""
    hops = store / "hops"
    if not hops.is_dir():
        return []
    have = {p.name for p in hops.iterdir() if p.is_dir()}
    if not have:
        return []
    shortest = min(len(k) for k in have)
    token = re.compile(rf"[0-9a-f]{{{shortest},}}")
    named: set[str] = set()
    for folder, dirs, files in os.walk(results):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for f in files:
            if f.endswith((".csv", ".json")):
                try:
                    text = Path(folder, f).read_text(errors="replace")
                except OSError:
                    continue
                named.update(t for t in token.findall(text) if t in have)
    return sorted(named)

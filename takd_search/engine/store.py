"""The hop store: every network is trained once per lineage, every parent's soft labels
are computed once per view schedule, and both are reused by every trial and run.

Layout under the store root (default `results/.store`, `--store PATH` or `TAKD_STORE`):

    hops/<key>/meta.json     lineage, metrics, curve, provenance, sha256 of weights.pt
    hops/<key>/weights.pt    {"state": selected weights, "snapshots": {epoch: weights}}
    banks/<key>.pt           one parent's fp16 logits [N_train, C] for one epoch's views,
                             kept for shared parents only, LRU-capped (engine/banks.py)
    readers/<series>/<child> which children read a parent's logits (when to bank them)
    locks/<key>.lock         held while a process trains <key>; refreshed every few seconds
    partial/<key>.pt         the latest checkpoint of a hop being trained (resumed on retry)
    failed/<key>.json        why a hop cannot be trained (diverged): a retry fails at once
    trained.log              one line per training: time, key, model, host, pid, seconds

An entry is written into a private temporary folder and renamed into place, so a reader
sees either nothing or a whole entry. Its checksum is verified on every load: a
truncated or corrupt entry is reported once, moved aside to `corrupt/` and retrained.
Two processes that want the same missing hop serialise on its lock file: one trains, the
other waits and loads. The lock is an fcntl lock the kernel drops when its holder dies (a
crashed trainer's lock is free at once); where the file system has none, an O_EXCL file
whose holder is checked by pid on the same host and by heartbeat elsewhere
(`engine.locks.HopLock`).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from takd_search.atomic import replacing, write_json
from takd_search.engine.banks import Banks
from takd_search.engine.hop import HopResult, HopSpec
from takd_search.engine.locks import HopLock, remove_dead_locks
from takd_search.engine.train import TrainingDiverged
from takd_search.errors import UserError

log = logging.getLogger("takd_search.store")


@dataclass
class StoreStats:
    """What the store did for this process: visible in the chain's output and the CSVs."""

    trained: int = 0
    reused: int = 0
    seconds_saved: float = 0.0
    bank_hits: int = 0
    bank_misses: int = 0
    parent_passes: int = 0  # full passes of a parent over the training split
    bank_writes: int = 0  # banks written to disk (by the background writer)
    bank_bytes_written: int = 0
    bank_write_errors: int = 0
    banks_evicted: int = 0  # least recently used banks deleted to stay within the cap
    corrupt: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class CorruptEntry(Exception):
    pass


class EntryExists(Exception):
    """A save under a key that already has an entry: entries are never overwritten."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _provenance(result: HopResult) -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "device": result.device,
        "seconds": round(result.seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class Store:
    """A persistent hop store rooted at a folder (local disk or a shared/NFS mount).

    root=None or reuse=False turns every lookup into a miss and writes nothing
    (`--no-store`, for benchmarks); the chain hands parents to children itself.
    """

    def __init__(
        self,
        root: str | os.PathLike | None,
        *,
        reuse: bool = True,
        stale_after: float = 60.0,
        poll: float = 0.25,
        checkpoint_every_s: float | None = None,
        create: bool = True,
        bank_cap_bytes: int | None = None,
    ):
        """create=False opens an existing store for reading only (e.g. `export` from a
        read-only mount): no folder is made, nothing is written. bank_cap_bytes: the logit
        banks' total size (None: TAKD_BANK_CAP or 16 GiB; engine/banks.py)."""
        self.root = Path(root).expanduser().resolve() if root is not None else None
        self.reuse = reuse and self.root is not None
        self.stale_after = stale_after
        self.poll = poll
        # how often a hop in training saves a resumable checkpoint (seconds of wall time)
        self.checkpoint_every_s = (
            float(os.environ.get("TAKD_CHECKPOINT_S", 30))
            if checkpoint_every_s is None
            else checkpoint_every_s
        )
        self.stats = StoreStats()
        self._memory: dict[str, HopResult] = {}
        self._last_checkpoint: dict[str, float] = {}
        self.banks = Banks(self, _torch_save, bank_cap_bytes)
        if self.root is not None and create:
            try:
                for sub in ("hops", "banks", "locks", "tmp", "partial", "failed"):
                    (self.root / sub).mkdir(parents=True, exist_ok=True)
                # folders that exist on a read-only mount pass mkdir: write to be sure
                probe = self.root / "tmp" / f".probe-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise UserError(
                    f"cannot write to the hop store {self.root} ({e.strerror}): pass --store "
                    "DIR on a writable disk, or --no-store to keep no weights"
                ) from None

    # ---- hops --------------------------------------------------------------------------
    def _entry(self, key: str) -> Path:
        return self.root / "hops" / key

    def has(self, key: str) -> bool:
        return self.reuse and (self._entry(key) / "meta.json").exists()

    def load(self, key: str) -> HopResult | None:
        """The stored result for `key`, or None if absent or corrupt (corrupt is moved
        aside and reported once)."""
        if not self.reuse:
            return None
        if key in self._memory:
            return self._memory[key]
        entry = self._entry(key)
        if not entry.exists():
            return None
        try:
            result = self._read(entry)
        except CorruptEntry as e:
            self._discard(entry, f"hop {key[:12]}", str(e))
            return None
        self._memory[key] = result
        return result

    def _read(self, entry: Path) -> HopResult:
        try:
            meta = json.loads((entry / "meta.json").read_text())
            weights = entry / "weights.pt"
            if _sha256(weights) != meta["sha256"]["weights.pt"]:
                raise CorruptEntry("weights.pt checksum mismatch")
            blob = torch.load(weights, map_location="cpu", weights_only=True)
        except CorruptEntry:
            raise
        except Exception as e:  # truncated json, missing file, unpicklable weights
            raise CorruptEntry(f"{type(e).__name__}: {e}") from None
        m = meta["metrics"]
        return HopResult(
            **m,
            state=blob["state"],
            snapshots={int(k): v for k, v in blob["snapshots"].items()},
        )

    def _discard(self, path: Path, what: str, why: str) -> None:
        msg = f"store: {what} is corrupt ({why}); discarded, it will be retrained"
        log.warning(msg)
        self.stats.corrupt.append(msg)
        dest = self.root / "corrupt" / f"{path.name}.{uuid.uuid4().hex[:8]}"
        try:
            dest.parent.mkdir(exist_ok=True)
            os.replace(path, dest)
        except OSError:  # a read-only store: the entry stays; it is not used
            shutil.rmtree(path, ignore_errors=True)

    def save(self, spec: HopSpec, result: HopResult) -> None:
        key = spec.key
        tmp = self.root / "tmp" / f"{key}.{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            buf = io.BytesIO()
            torch.save({"state": result.state, "snapshots": result.snapshots}, buf)
            (tmp / "weights.pt").write_bytes(buf.getvalue())
            meta = {
                "key": key,
                "lineage": spec.lineage(),
                "metrics": result.metrics(),
                "provenance": _provenance(result),
                "sha256": {"weights.pt": hashlib.sha256(buf.getvalue()).hexdigest()},
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            for f in tmp.iterdir():  # durable before it becomes visible
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            entry = self._entry(key)
            if entry.exists():
                # never replaced: children and banks keyed on it must keep meaning the
                # network they were made from (a corrupt entry was moved aside already)
                raise EntryExists(f"hop {key[:12]} is already stored; it is never replaced")
            try:
                os.replace(tmp, entry)  # onto a non-empty folder this fails: no overwrite
            except OSError as e:
                # another process put a whole entry there since the check above (the same
                # lineage): keep the winner's, drop ours
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                log.info("store: hop %s was saved by another process meanwhile", key[:12])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._memory[key] = result
        (self.root / "partial" / f"{key}.pt").unlink(missing_ok=True)

    def get_or_train(
        self,
        spec: HopSpec,
        train: Callable[[], HopResult],
        *,
        need_snapshots: tuple[int, ...] = (),
    ) -> tuple[HopResult, bool]:
        """(result, reused). Trains at most once across processes sharing the store.

        Entries are never overwritten. A stored entry that lacks a snapshot in
        `need_snapshots` stays as it is (its children and banks keep meaning it); the hop
        is trained again under a forked lineage (`HopSpec.fork`, see `resolve`): the
        caller keys children on `resolve(spec, need_snapshots)`, not on `spec`.
        """
        spec = self.resolve(spec, need_snapshots)
        key = spec.key
        ok = lambda r: r is not None and all(e in r.snapshots for e in need_snapshots)  # noqa: E731
        result = self.load(key)
        if ok(result):
            return self._reused(key, result)
        if not self.reuse:
            return self._trained(spec, train()), False
        with self._lock(key):
            self._memory.pop(key, None)
            result = self.load(key)  # another process may have finished it meanwhile
            if ok(result):
                return self._reused(key, result)
            if result is not None:  # a fork lacking epochs: never overwritten, so refused
                raise EntryExists(f"hop {key[:12]} is stored without epochs {need_snapshots}")
            failed = self.failure(key)
            if failed:
                raise TrainingDiverged(f"{failed} (recorded in {self.root}/failed/{key}.json)")
            try:
                return self._trained(spec, train()), False
            except TrainingDiverged as e:
                self.mark_failed(key, str(e))
                raise

    def resolve(self, spec: HopSpec, need_snapshots: tuple[int, ...] = ()) -> HopSpec:
        """The spec whose entry serves `spec` with `need_snapshots`: `spec` itself, unless
        its stored entry lacks one of those snapshots; then the fork that keeps them."""
        need = tuple(sorted(set(need_snapshots)))
        if not need or spec.fork or not self.reuse:
            return spec
        stored = self.load(spec.key)
        if stored is None or all(e in stored.snapshots for e in need):
            return spec
        return dataclasses.replace(spec, fork=need)

    def _reused(self, key: str, result: HopResult) -> tuple[HopResult, bool]:
        self.stats.reused += 1
        self.stats.seconds_saved += result.seconds
        return result, True

    def _trained(self, spec: HopSpec, result: HopResult) -> HopResult:
        self.stats.trained += 1
        if self.reuse:
            self.save(spec, result)
            line = (
                f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {spec.key} {spec.model} "
                f"{socket.gethostname()} {os.getpid()} {result.seconds:.2f}\n"
            )
            fd = os.open(self.root / "trained.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:  # one small O_APPEND write per line: lines never interleave
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return result

    def trained_keys(self) -> list[str]:
        """Every key trained into this store, in order, once per training (trained.log)."""
        log_file = self.root / "trained.log" if self.root else None
        if not log_file or not log_file.exists():
            return []
        return [ln.split()[1] for ln in log_file.read_text().splitlines() if ln.strip()]

    # ---- failures and partial checkpoints ------------------------------------------------
    def mark_failed(self, key: str, why: str) -> None:
        if self.reuse:
            write_json(
                self.root / "failed" / f"{key}.json", {"key": key, "error": why}, indent=None
            )

    def failure(self, key: str) -> str | None:
        path = self.root / "failed" / f"{key}.json" if self.reuse else None
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())["error"]
        except (OSError, ValueError, KeyError):
            return None

    def checkpoint(self, key: str, state: Callable[[], dict]) -> None:
        """Save a hop-in-training's state if `checkpoint_every_s` passed since the last."""
        if not self.reuse:
            return
        now = time.monotonic()
        last = self._last_checkpoint.setdefault(key, now)
        if now - last < self.checkpoint_every_s:
            return
        self._last_checkpoint[key] = now
        # a full disk leaves no truncated file behind (the temporary file is removed)
        with replacing(self.root / "partial" / f"{key}.pt", tmp_dir=self.root / "tmp") as tmp:
            _torch_save(state(), tmp)

    def resume_state(self, key: str) -> dict | None:
        """The latest checkpoint of hop `key`, if a killed attempt left one."""
        path = self.root / "partial" / f"{key}.pt" if self.reuse else None
        if path is None or not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            self._discard(path, f"checkpoint of hop {key[:12]}", f"{type(e).__name__}: {e}")
            return None

    # ---- locks -------------------------------------------------------------------------
    def _lock(self, key: str) -> HopLock:
        return HopLock(self.root / "locks" / f"{key}.lock", self.stale_after, self.poll)

    # ---- logit banks -------------------------------------------------------------------
    def load_bank(self, key: str) -> torch.Tensor | None:
        """A bank's logits (fp16, CPU), or None: see engine/banks.py."""
        return self.banks.load(key)

    def save_bank(self, key: str, logits: torch.Tensor) -> None:
        """Queue a bank for the background writer (fp16 on disk); see engine/banks.py."""
        self.banks.save(key, logits)

    # ---- listing and pruning -----------------------------------------------------------
    def entries(self) -> list[dict]:
        """One dict per stored hop: key, model, lineage, metrics, bytes, created."""
        rows = []
        if self.root is None or not (self.root / "hops").is_dir():
            return rows
        for entry in sorted((self.root / "hops").iterdir()):
            try:
                meta = json.loads((entry / "meta.json").read_text())
            except Exception:
                continue
            size = sum(f.stat().st_size for f in entry.iterdir())
            rows.append({**meta, "bytes": size, "mtime": entry.stat().st_mtime})
        return rows

    def usage(self) -> dict:
        """Bytes and counts per kind of entry."""
        out = {}
        for sub in ("hops", "banks", "corrupt", "tmp"):
            d = self.root / sub
            files = [f for f in d.rglob("*") if f.is_file()] if d.exists() else []
            out[sub] = {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}
        return out

    def gc(self, older_than_s: float | None = None) -> dict:
        """Delete entries unused for `older_than_s` seconds (all when None), plus every
        corrupt, temporary and stale-lock leftover. Returns what was removed."""
        now, removed = time.time(), {"hops": 0, "banks": 0, "bytes": 0}

        def old(p: Path) -> bool:
            return older_than_s is None or now - p.stat().st_mtime > older_than_s

        for sub in ("hops", "banks"):
            for p in list((self.root / sub).iterdir()):
                if old(p):
                    removed["bytes"] += sum(
                        f.stat().st_size
                        for f in ([p] if p.is_file() else p.rglob("*"))
                        if f.is_file()
                    )
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                    removed[sub] += 1
        # reader marks go with everything; after a partial gc they still count reuse
        for sub in ("corrupt", "tmp", *(("readers",) if older_than_s is None else ())):
            shutil.rmtree(self.root / sub, ignore_errors=True)
            (self.root / sub).mkdir(exist_ok=True)
        removed["locks"] = remove_dead_locks(self.root / "locks")
        return removed


def _torch_save(obj, path: Path) -> None:
    """torch.save, but a full disk says so: torch reports it as a RuntimeError ("enforce
    fail at inline_container.cc ... unexpected pos"), which names no disk."""
    try:
        torch.save(obj, path)
    except RuntimeError as e:
        try:
            full = shutil.disk_usage(path.parent).free < 1 << 20
        except OSError:
            full = False
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from e
        raise


def default_root(results_dir: str | os.PathLike = "results") -> Path:
    """`TAKD_STORE` if set, else `<results_dir>/.store`."""
    env = os.environ.get("TAKD_STORE")
    return Path(env) if env else Path(results_dir) / ".store"

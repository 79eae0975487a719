"""Logit banks: a parent's fp16 logits for one epoch's views, kept on disk only where they
will be read again, written off the training thread, and capped in total size.

A bank for CIFAR-100 is [45,000, 100] fp16 = 9 MB per epoch; with augmentation every
epoch has its own, so a 150-epoch hop's parent is 1.35 GB. Banking every parent filled a
64 GiB disk partway through `cifar100_vgg` (issue 25): a trial's teacher assistant has
continuous T and alpha, so its banks were written once and never read. The policy here:

* **shared parents are banked**: a hop trained from scratch (the teacher, NoKD hops, a
  brought teacher) is the parent of many children;
* **a distilled parent is banked once it is measured to be shared**: each child that asks
  for a parent's logits leaves a reader mark (`readers/<family>/<child>`); from the second
  reader on, the parent's banks are written. Its first child computes them live (one
  forward pass of the parent per epoch, what a bank miss costs anyway), and without
  augmentation keeps the one tensor in memory: bytes written for a one-off parent = 0;
* **writes happen on a background thread** (the device-to-host copy, sha256 and
  torch.save of 9 MB per epoch no longer stall training); a bank waiting to be written is
  served from memory;
* **the banks' total size is capped** (`TAKD_BANK_CAP`, default 16 GiB) with least-
  recently-used eviction: a read touches the file's mtime, a write evicts the oldest.

`TAKD_BANKS` = shared (default) | all | none chooses the policy (all: the old behaviour,
every parent banked; none: every parent computed live).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import queue
import threading
from pathlib import Path

import torch

from takd_search.atomic import replacing

log = logging.getLogger("takd_search.store")

POLICIES = ("shared", "all", "none")
DEFAULT_CAP = 16 << 30  # bytes: 16 GiB of banks, about 12 teacher x seed series of CIFAR-100
SHARED_AFTER = 2  # readers of a distilled parent's series before its banks are written


def parse_bytes(text: str | int | float) -> int:
    """'16G', '500M', '2.5T', '1048576' -> bytes (binary units: G = 2**30)."""
    if isinstance(text, (int, float)):
        return int(text)
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(float(t))
    except ValueError:
        raise ValueError(f"{text!r} is not a size like 16G, 500M or a number of bytes") from None


def bank_bytes(n_train: int, classes: int) -> int:
    """Bytes of one bank file on disk, at most: fp16 logits plus torch.save's zip headers
    and checksum (1,705 bytes measured for [45,000, 100] and [1,293, 10]; 4 KiB allowed)."""
    return 2 * n_train * classes + 4096


class Banks:
    """The logit banks of one store (`store.banks`): read, policy, background writes, cap."""

    def __init__(self, store, save, cap_bytes: int | None = None, policy: str | None = None):
        """store: the Store these banks belong to; save(obj, path): its torch.save that
        names a full disk."""
        self.store = store
        self._save = save
        self.root: Path | None = store.root / "banks" if store.reuse else None
        env_cap = os.environ.get("TAKD_BANK_CAP")
        self.cap = cap_bytes if cap_bytes is not None else parse_bytes(env_cap or DEFAULT_CAP)
        self.policy = (policy or os.environ.get("TAKD_BANKS") or "shared").lower()
        if self.policy not in POLICIES:
            raise ValueError(f"TAKD_BANKS={self.policy!r}: use one of {', '.join(POLICIES)}")
        self._pending: dict[str, torch.Tensor] = {}  # key -> logits queued, not yet on disk
        self._lock = threading.Lock()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    # ---- policy ------------------------------------------------------------------------
    def wants(self, family: str, reader: str | None, shared: bool) -> bool:
        """Should the banks of series `family` (one parent, its weights, the view schedule
        of one child seed) be written? Leaves `reader`'s mark first (a child's key)."""
        if self.root is None or self.policy == "none":
            return False
        if self.policy == "all" or shared:
            return True
        marks = self.root.parent / "readers" / family
        if reader is not None:
            marks.mkdir(parents=True, exist_ok=True)
            (marks / reader[:32]).touch()
        try:
            return len(os.listdir(marks)) >= SHARED_AFTER
        except OSError:
            return False

    # ---- reading -----------------------------------------------------------------------
    def load(self, key: str) -> torch.Tensor | None:
        stats = self.store.stats
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None:  # queued for writing by this process: served from memory
            stats.bank_hits += 1
            return pending
        path = self.root / f"{key}.pt" if self.root is not None else None
        if path is None or not path.exists():
            stats.bank_misses += 1
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            logits = blob["logits"]
            if hashlib.sha256(logits.numpy().tobytes()).hexdigest() != blob["sha256"]:
                raise ValueError("checksum mismatch")
        except FileNotFoundError:  # evicted by another process since the check: a miss
            stats.bank_misses += 1
            return None
        except Exception as e:
            self.store._discard(path, f"logit bank {key[:12]}", f"{type(e).__name__}: {e}")
            stats.bank_misses += 1
            return None
        try:
            os.utime(path)  # recently used: the cap evicts the least recently used first
        except OSError:
            pass
        stats.bank_hits += 1
        return logits

    # ---- writing (background) ----------------------------------------------------------
    def save(self, key: str, logits: torch.Tensor) -> None:
        """Queue `logits` [N, C] (any device, any float dtype) to be written as fp16."""
        if self.root is None:
            return
        logits = logits.detach()
        with self._lock:
            self._pending[key] = logits
        if self._thread is None:
            self._queue = queue.Queue(maxsize=8)  # bounded: a slow disk slows training
            self._thread = threading.Thread(target=self._run, name="takd-bank-writer", daemon=True)
            self._thread.start()
            atexit.register(self.flush)  # a process that ends normally loses no bank
        self._queue.put(key)

    def flush(self) -> None:
        """Wait until every queued bank is on disk (or failed and was logged)."""
        if self._queue is not None:
            self._queue.join()

    def _run(self) -> None:
        while True:
            key = self._queue.get()
            try:
                with self._lock:
                    logits = self._pending.get(key)
                if logits is not None:
                    self._write(key, logits)
            except Exception as e:  # a bank is a cache: a failed write is a later miss
                self.store.stats.bank_write_errors += 1
                why = f"{type(e).__name__}: {e}"
                log.warning("store: logit bank %s not written (%s)", key[:12], why)
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                self._queue.task_done()

    def _write(self, key: str, logits: torch.Tensor) -> None:
        half = logits.to("cpu", torch.float16).contiguous()
        blob = {"logits": half, "sha256": hashlib.sha256(half.numpy().tobytes()).hexdigest()}
        path = self.root / f"{key}.pt"
        # a full disk leaves no truncated bank behind (the temporary file is removed)
        with replacing(path, tmp_dir=self.store.root / "tmp") as tmp:
            self._save(blob, tmp)
        self.store.stats.bank_writes += 1
        self.store.stats.bank_bytes_written += path.stat().st_size
        self.evict()

    # ---- the cap -----------------------------------------------------------------------
    def evict(self) -> int:
        """Delete least-recently-used banks until their total is within the cap; returns
        how many were deleted. Every process sharing the store enforces the same cap."""
        if self.root is None:
            return 0
        files = []
        for p in self.root.glob("*.pt"):
            try:
                st = p.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            files.append((st.st_mtime, p.name, st.st_size, p))
        total = sum(f[2] for f in files)
        gone = 0
        for _, _, size, p in sorted(files):
            if total <= self.cap:
                break
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            total -= size
            gone += 1
        self.store.stats.banks_evicted += gone
        return gone

    def total_bytes(self) -> int:
        if self.root is None or not self.root.exists():
            return 0
        return sum(p.stat().st_size for p in self.root.glob("*.pt"))
